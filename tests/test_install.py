"""What the README promises a device: `pip install 'gan-edge[cpu]'` into a bare environment, then
`ganrun` from any folder, with the shipped models inside the package and no TensorFlow."""
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "runtime", "training", "export")
HEAVY_DISTRIBUTIONS = {  # pip names; test_runtime.HEAVY lists module names
    "tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "matplotlib"}


def _run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600,
                          **kw)


@pytest.mark.network
@pytest.mark.slow
def test_the_wheel_with_the_cpu_extra_installs_and_generates_on_its_own(tmp_path):
    # Build from a copy of the tracked sources, so the build writes nothing into the checkout.
    src = tmp_path / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    built = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", src, "-w",
                 tmp_path / "dist")
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("gan_edge-*.whl"))

    device = tmp_path / "device"
    assert _run(sys.executable, "-m", "venv", device).returncode == 0
    installed = _run(device / "bin" / "pip", "install", "-q", f"{wheel}[cpu]")
    assert installed.returncode == 0, installed.stderr[-2000:]
    listed = _run(device / "bin" / "python", "-m", "pip", "list", "--format=freeze").stdout
    names = {line.split("==")[0].lower() for line in listed.split()}
    assert {"gan-edge", "onnxruntime", "numpy", "pillow", "click"} <= names
    assert not names & HEAVY_DISTRIBUTIONS, names & HEAVY_DISTRIBUTIONS

    elsewhere = tmp_path / "elsewhere"  # not the checkout: the installed package must suffice
    elsewhere.mkdir()
    where = _run(device / "bin" / "python", "-c", "import runtime; print(runtime.__file__)",
                 cwd=elsewhere)
    assert where.stdout.startswith(str(device)), where.stdout + where.stderr
    result = _run(device / "bin" / "ganrun", "--n", "25", "--out", "grid.png", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    listing = _run(device / "bin" / "ganrun", "--list", cwd=elsewhere)
    assert listing.returncode == 0 and "(default)" in listing.stdout, listing.stderr
    # The same PNG, byte for byte, as this checkout's ganrun draws.
    reference = _run(sys.executable, "-m", "runtime.cli", "--n", "25", "--out",
                     tmp_path / "reference.png", cwd=ROOT)
    assert reference.returncode == 0, reference.stderr
    assert (elsewhere / "grid.png").read_bytes() == (tmp_path / "reference.png").read_bytes()
