"""Atomic writes: a file appears complete under its final name, or not at all."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _new_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        os.close(fd)  # releases the hold
        if os.path.exists(tmp):
            os.unlink(tmp)


def _new_temp(path: Path) -> tuple[int, Path]:
    """A new temp file beside `path`, open for writing and held (see _hold): its descriptor and
    its name, unique to this caller. What tempfile.mkstemp does (O_EXCL on a random name),
    without importing tempfile and shutil (about 15 ms of ganrun's start-up); mode 0666 less
    the umask, like any new file."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}{path.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temp name beside {path}")
    _hold(fd)
    return fd, tmp


@contextlib.contextmanager
def temp_folder(parent: Path, prefix: str):
    """A hidden temp folder in `parent` (prefix ".tmp-..."), held while the block runs and
    removed after it, whatever it holds."""
    import shutil
    import tempfile
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        _hold(fd)
        yield tmp
    finally:
        os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)


# The temp names above: ".NAME.<12 hex>.SUFFIX" files and ".tmp-..." folders.
_TEMP_FILE = re.compile(r"^\..+\.[0-9a-f]{12}(\.[^.]*)?$")
_TEMP_FOLDER = ".tmp-"


def is_temp_name(name: str) -> bool:
    """Whether `name` is one of the temp files or folders above (a writer's, live or killed)."""
    return bool(_TEMP_FILE.match(name)) or name.startswith(_TEMP_FOLDER)


def _hold(fd: int) -> None:
    """Hold a temp file or folder by the kernel's lock on it for as long as its writer has it
    open, so that remove_stale_temps can tell a live writer's temp from a killed one's (the
    lock goes away with the process, however that ends)."""
    import fcntl
    fcntl.flock(fd, fcntl.LOCK_EX)  # a new inode: nobody else holds it


def remove_stale_temps(folder: str | Path, target: str | None = None) -> list[Path]:
    """Remove the temp files and folders that a killed writer left in `folder` (only those of
    `target`, a file name, if given); a live writer's are held and stay. Returns the removed."""
    import fcntl
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if target is not None and not entry.name.startswith(f".{target}."):
            continue
        is_dir = entry.is_dir() and not entry.is_symlink()
        if not (_TEMP_FILE.match(entry.name) and entry.is_file() and not entry.is_symlink()
                or is_dir and entry.name.startswith(_TEMP_FOLDER) and target is None):
            continue
        try:
            fd = os.open(entry, os.O_RDONLY)
        except OSError:
            continue  # gone already, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live writer's
        finally:
            os.close(fd)
        if is_dir:
            import shutil  # here: ganrun starts without it (see atomic_path)
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def check_target(path: Path) -> None:
    """A one-line error unless `path` can become a regular file: it must not be a folder or a
    special file (renaming onto a FIFO or a device would replace it), and its parent must not
    be a file."""
    from runtime.core.errors import GanEdgeError
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
    from runtime.core.errors import GanEdgeError
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GanEdgeError(f"{option} {folder} is a file, not a folder; pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A probe of its own name (two processes probing one folder must not remove each
        # other's), held like any temp file so that no remove_stale_temps takes it meanwhile.
        fd, probe = _new_temp(folder / ".write-test")
        try:
            os.unlink(probe)
        finally:
            os.close(fd)
    except OSError as e:
        raise GanEdgeError(f"cannot write to {option} {folder} ({e.strerror}); pass a writable "
                           f"folder") from None


@contextlib.contextmanager
def hold_folder(folder: str | Path, option: str, writer: str):
    """Hold `folder` for one `writer` while the block runs: another that asks for it meanwhile
    gets a one-line error instead of mixing its files with this one's. The lock is the
    kernel's, on the folder itself (nothing is left in it), so it goes away with the process
    however that ends. A folder made here that is still empty at the end is removed: a writer
    that stopped before writing leaves no folder behind."""
    import fcntl

    from runtime.core.errors import GanEdgeError
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
        made = True
    except FileExistsError:
        made = False
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GanEdgeError(f"{option} {folder} is in use by another {writer}, which holds it "
                               f"until it ends; wait for it, or pass another {option}") from None
        except OSError:
            pass  # a file system that cannot lock folders (NFS): each file is still whole
        yield folder
    finally:
        if made:
            with contextlib.suppress(OSError):  # not empty: the writer's files are there
                folder.rmdir()
        os.close(fd)


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
