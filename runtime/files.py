"""Atomic writes: a file appears complete under its final name, or not at all."""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # What tempfile.mkstemp does (O_EXCL on a random name), without importing tempfile and
    # shutil (about 15 ms of ganrun's start-up); mode 0666 less the umask, like any new file.
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temp name beside {path}")
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_target(path: Path) -> None:
    """A one-line error unless `path` can become a regular file: it must not be a folder or a
    special file (renaming onto a FIFO or a device would replace it), and its parent must not
    be a file."""
    from runtime.errors import GanEdgeError
    if path.exists() and not path.is_file():
        raise GanEdgeError(f"{path} exists and is not a regular file; choose another name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise GanEdgeError(f"{parent} is a file, not a folder; cannot write {path}")
            break


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def check_writable_dir(folder: str | Path, option: str) -> None:
    """Create `folder` if needed and prove it writable now, before any long work is done."""
    from runtime.errors import GanEdgeError
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GanEdgeError(f"{option} {folder} is a file, not a folder; pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise GanEdgeError(f"cannot write to {option} {folder} ({e.strerror}); pass a writable "
                           f"folder") from None


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
