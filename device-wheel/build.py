"""Build the device wheel: runtime/ alone (ganrun and the shipped ONNX files), published as
gan-edge-runtime, for machines that generate but never train or export.

    python device-wheel/build.py [--out dist]

Its pyproject.toml is written here from the root one, so the version, the dependencies, the
[cpu]/[gpu] extras and the runtime's package data have one home; the wheel is built from a
staged copy of runtime/ under build/, so the build writes nothing into the checkout but the
wheel itself. Fails when the wheel is over BUDGET_BYTES.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from export.ship import BUDGET_BYTES as MODELS_BUDGET  # noqa: E402 (light: no TensorFlow)
from runtime.core.command import run_cli  # noqa: E402
from runtime.core.errors import GanEdgeError  # noqa: E402
from runtime.core.files import check_writable_dir  # noqa: E402

NAME = "gan-edge-runtime"
# The shipped models' own budget, and 1 MB for the code and the two classifiers (0.5 MB): a
# wheel over it means something besides the runtime got in.
BUDGET_BYTES = MODELS_BUDGET + 1_000_000
EXTRAS = ("cpu", "gpu")  # onnxruntime or onnxruntime-gpu; the training and export extras stay out


def pyproject(root: dict) -> str:
    """The device wheel's pyproject.toml, from the root project's."""
    project = root["project"]
    extras = project["optional-dependencies"]
    data = root["tool"]["setuptools"]["package-data"]["runtime"]

    def toml_list(items) -> str:  # JSON's strings and lists are TOML's too
        return json.dumps(list(items))
    lines = [
        "[build-system]",
        f"requires = {toml_list(root['build-system']['requires'])}",
        f"build-backend = {json.dumps(root['build-system']['build-backend'])}",
        "",
        "[project]",
        f"name = {json.dumps(NAME)}",
        f"version = {json.dumps(project['version'])}",
        'description = "gan-edge\'s runtime alone: ganrun and the shipped ONNX generators, for '
        'devices that generate but never train."',
        f"requires-python = {json.dumps(project['requires-python'])}",
        f"license = {json.dumps(project['license'])}",
        f"dependencies = {toml_list(project['dependencies'])}",
        "",
        "[project.optional-dependencies]",
        *(f"{e} = {toml_list(extras[e])}" for e in EXTRAS),
        "",
        "[project.scripts]",
        f"ganrun = {json.dumps(project['scripts']['ganrun'])}",
        "",
        "[tool.setuptools]",
        'packages = ["runtime", "runtime.core"]',
        "",
        "[tool.setuptools.package-data]",
        f"runtime = {toml_list(data)}",
        "",
    ]
    return "\n".join(lines)


def stage(folder: Path) -> None:
    """A fresh copy of runtime/, LICENSE and the generated pyproject.toml in `folder`."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(ROOT / "runtime", folder / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "LICENSE", folder / "LICENSE")
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (folder / "pyproject.toml").write_text(pyproject(root))


def build(out: Path, staging: Path) -> Path:
    """Build the wheel into `out`; return its path."""
    stage(staging)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{NAME.replace('-', '_')}-*.whl"):
        old.unlink()  # one wheel per folder: the one just built
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                             str(out), str(staging)], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"error: building the device wheel failed:\n{result.stderr[-3000:]}")
    return next(out.glob(f"{NAME.replace('-', '_')}-*.whl"))


def check_staging(folder: Path) -> None:
    """`folder` is emptied before each build: refuse one that holds anything but a staged copy."""
    check_writable_dir(folder.parent, "--staging's parent")
    if folder.exists() and not folder.is_dir():
        raise GanEdgeError(f"--staging {folder} is a file, not a folder; pass a folder")
    staged = folder / "pyproject.toml"
    if folder.is_dir() and any(folder.iterdir()) and not (
            staged.is_file() and f"name = {json.dumps(NAME)}" in staged.read_text()):
        raise GanEdgeError(f"--staging {folder} holds files that are not a staged device wheel, "
                           f"and it would be emptied; pass a new or empty folder")


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               help=__doc__.split("\n\n")[0])
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=ROOT / "dist",
              help="Folder for the wheel [default: the checkout's dist/].")
@click.option("--staging", type=click.Path(file_okay=False, path_type=Path),
              default=ROOT / "build" / "device-wheel",
              help="Folder for the staged copy, emptied first [default: the checkout's "
                   "build/device-wheel/].")
def main(out: Path, staging: Path) -> None:
    check_staging(staging)  # both before the build, not after it
    check_writable_dir(out, "--out")
    wheel = build(out, staging)
    size = wheel.stat().st_size
    click.echo(f"{wheel}: {size / 1e6:.1f} MB (budget {BUDGET_BYTES / 1e6:.1f} MB)")
    if size > BUDGET_BYTES:
        raise GanEdgeError(f"the device wheel is {size / 1e6:.1f} MB, over its budget of "
                           f"{BUDGET_BYTES / 1e6:.1f} MB; see what it holds with `unzip -l "
                           f"{wheel}`")


if __name__ == "__main__":
    run_cli(main)
