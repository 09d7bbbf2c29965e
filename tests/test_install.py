"""What the README and docs/device.md promise a device: a wheel installed into a bare venv
(gan-edge with its [cpu] extra from PyPI, or the device wheel offline from dependencies
downloaded beforehand) runs `ganrun` from any folder, with the shipped models inside the
package and no TensorFlow, and draws what this checkout draws, from its own models and (the
device wheel) from a colour file exported from a generator gan-edge did not train."""
import subprocess
import sys
from pathlib import Path

import pytest

import arm64
from conftest import ROOT, missing

HEAVY_DISTRIBUTIONS = {  # pip names; test_runtime.HEAVY lists module names
    "tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "matplotlib"}
WHEELS = {"gan-edge", "gan-edge-runtime"}


def _run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600,
                          **kw)


def _install(wheel: Path, venv: Path, *options: str) -> Path:
    """A bare venv at `venv` with `wheel[cpu]` installed by the venv's own pip (`options`: where
    from); returns its bin folder."""
    assert _run(sys.executable, "-m", "venv", venv).returncode == 0
    installed = _run(venv / "bin" / "pip", "install", "-q", *options, f"{wheel}[cpu]")
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv / "bin"


def _assert_generates_alone(bin_dir: Path, tmp_path: Path, distribution: str,
                            not_importable: tuple[str, ...] = (),
                            foreign: Path | None = None) -> None:
    """The venv holds `distribution` and the runtime's dependencies, neither the other wheel
    nor anything heavy; from a folder outside the checkout its `runtime` is the installed one,
    `not_importable` packages do not import, `ganrun --list` marks a default, and `ganrun --n
    25` draws, byte for byte, the PNG this checkout's ganrun draws; so does `ganrun --model
    foreign` (an exported file of a generator gan-edge did not train), where given."""
    listed = _run(bin_dir / "python", "-m", "pip", "list", "--format=freeze").stdout
    names = {line.split("==")[0].lower() for line in listed.split()}
    assert {distribution, "onnxruntime", "numpy", "pillow", "click"} <= names
    unwanted = HEAVY_DISTRIBUTIONS | (WHEELS - {distribution})
    assert not names & unwanted, names & unwanted

    elsewhere = tmp_path / "elsewhere"  # not the checkout: the installed package must suffice
    elsewhere.mkdir()
    where = _run(bin_dir / "python", "-c", "import runtime; print(runtime.__file__)",
                 cwd=elsewhere)
    assert where.stdout.startswith(str(bin_dir.parent)), where.stdout + where.stderr
    for package in not_importable:
        imported = _run(bin_dir / "python", "-c", f"import {package}", cwd=elsewhere)
        assert imported.returncode != 0, f"{package} is importable from {distribution}"
    result = _run(bin_dir / "ganrun", "--n", "25", "--out", "grid.png", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    listing = _run(bin_dir / "ganrun", "--list", cwd=elsewhere)
    assert listing.returncode == 0 and "(default)" in listing.stdout, listing.stderr
    reference = _run(sys.executable, "-m", "runtime.cli", "--n", "25", "--out",
                     tmp_path / "reference.png", cwd=ROOT)
    assert reference.returncode == 0, reference.stderr
    assert (elsewhere / "grid.png").read_bytes() == (tmp_path / "reference.png").read_bytes()
    if foreign is not None:
        args = ["--model", foreign, "--n", "6", "--seed", "3"]
        result = _run(bin_dir / "ganrun", *args, "--out", "foreign.png", cwd=elsewhere)
        assert result.returncode == 0, result.stderr
        reference = _run(sys.executable, "-m", "runtime.cli", *args, "--out",
                         tmp_path / "foreign.png", cwd=ROOT)
        assert reference.returncode == 0, reference.stderr
        assert (elsewhere / "foreign.png").read_bytes() == (tmp_path / "foreign.png").read_bytes()


@pytest.mark.network
@pytest.mark.slow
def test_the_wheel_with_the_cpu_extra_installs_and_generates_on_its_own(tmp_path):
    from benchmarks.cold_start import build_wheel
    wheel = build_wheel(ROOT, tmp_path / "build")
    _assert_generates_alone(_install(wheel, tmp_path / "device"), tmp_path, "gan-edge")


@pytest.mark.network
@pytest.mark.slow
def test_the_offline_route_installs_into_a_bare_venv_and_generates(device_wheel, foreign_export,
                                                                   tmp_path):
    # On a connected machine: the dependencies for the target (here the same platform).
    deps = tmp_path / "deps"
    fetched = _run(sys.executable, "-m", "pip", "download", "-q", "-d", deps,
                   f"{device_wheel}[cpu]")
    if fetched.returncode != 0:
        if not arm64._reachable("https://pypi.org/simple/"):
            missing("PyPI cannot be reached to download the dependencies")
        pytest.fail(fetched.stderr[-2000:])
    # On the device: no index; --isolated ignores any pip config that would point it at other
    # wheels.
    bin_dir = _install(device_wheel, tmp_path / "device", "--isolated", "--no-index",
                       "--find-links", str(deps))
    _assert_generates_alone(bin_dir, tmp_path, "gan-edge-runtime",
                            not_importable=("training", "export"),
                            foreign=foreign_export / "generator.int8.onnx")
