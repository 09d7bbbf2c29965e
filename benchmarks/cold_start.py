"""Whole-process cold start: `ganrun --n 25` vs the articles' way (a Keras script), wall time
and peak RSS of each process, contenders alternating; and plain `ganrun --n 25` (the shipped
default) against the floor that no onnxruntime tool can go under, importing numpy and
onnxruntime.

ganrun and the floor run as a user's install runs them: from a wheel of this checkout
installed (not editable) into a fresh venv, by its `ganrun` console script, in a folder
outside the checkout. That venv sees this interpreter's site-packages (numpy, onnxruntime,
click, Pillow) through a .pth line, which does not run the .pth files in it, so the editable
install's import hook is not loaded there."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

KERAS_SCRIPT = """
import sys
import numpy as np
import keras
from PIL import Image
g = keras.saving.load_model(sys.argv[1], compile=False)
x = g.predict(np.random.default_rng(0).standard_normal((25, g.input_shape[1])), verbose=0)
tiles = (np.clip(x[..., 0], 0, 1) * 255).astype(np.uint8)
Image.fromarray(np.vstack([np.hstack(list(tiles[r * 5:(r + 1) * 5])) for r in range(5)])).save(sys.argv[2])
"""


# Linux keeps the peak RSS of a process across exec, and a child forked from this (large)
# benchmark process starts out sharing its memory: wait4 here would report our own peak. A
# small wrapper process starts each command and reports the command's own figures.
_WRAPPER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
if status:
    sys.exit(err.decode()[-500:])
print(wall, usage.ru_maxrss / 1024)
"""


# ganrun --n 25's steps on the shipped default, timed inside one process (what cli.main does,
# step by step), to say where the time above the import floor goes.
PHASES = ("import numpy and onnxruntime", "import click", "import ganrun's modules",
          "import numpy.random (seeded latents)", "open the model (session, probe run)",
          "generate 25 and write the PNG")
_PHASES_SCRIPT = """
import json, sys, time
t = [time.perf_counter()]
import numpy, onnxruntime
t.append(time.perf_counter())
import click
t.append(time.perf_counter())
import runtime.cli
from pathlib import Path
from runtime import shipped
from runtime.generator import Generator, choose_device
from runtime.render import render
t.append(time.perf_counter())
import numpy.random
t.append(time.perf_counter())
device = choose_device("auto")
gen = Generator.from_file(shipped.model_file(shipped.model_entry(None), "auto", device.gpu),
                          device=device)
t.append(time.perf_counter())
render(gen, 25, 0, 256, Path(sys.argv[1]), "PNG", None, None, asked=gen.labels_for(25, 0))
t.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""


def run_once(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one run of `cmd` (Linux reports ru_maxrss in KiB)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-S", "-c", _WRAPPER, *cmd], capture_output=True,
                            text=True, env=env, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {result.stderr[-500:]}")
    wall, rss = result.stdout.split()
    return float(wall), float(rss)


def _phases(python: Path, cwd: Path) -> list[float]:
    """Seconds of each of PHASES in one fresh process."""
    import json
    done = subprocess.run([str(python), "-c", _PHASES_SCRIPT, "phases.png"], cwd=cwd,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the start-up steps failed: {done.stderr[-500:]}")
    return json.loads(done.stdout)


def summarize(runs: list[tuple[float, float]]) -> dict:
    """Median, min and max of run_once's (wall, peak RSS) pairs for one command."""
    wall, rss = np.array(runs).T
    return {"wall_s_median": float(np.median(wall)), "wall_s_min": float(wall.min()),
            "wall_s_max": float(wall.max()), "peak_rss_mb_median": float(np.median(rss)),
            "peak_rss_mb_min": float(rss.min()), "peak_rss_mb_max": float(rss.max()),
            "runs": len(runs)}


SOURCES = ("pyproject.toml", "README.md", "LICENSE", "runtime", "training", "export")
PIP = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]


def build_wheel(root: Path, tmp: Path) -> Path:
    """The gan-edge wheel of the checkout at `root`, built in `tmp` from a copy, so that the
    build writes nothing into the checkout (tests/test_install.py installs it too)."""
    src = tmp / "src"
    for name in SOURCES:
        if (root / name).is_dir():
            shutil.copytree(root / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, src / name)
    subprocess.run([*PIP, "wheel", "--no-deps", str(src), "-w", str(tmp / "dist")], check=True)
    return next((tmp / "dist").glob("gan_edge-*.whl"))


def install_wheel(root: Path, tmp: Path) -> Path:
    """Build a wheel of the checkout at `root`, install it without dependencies into a fresh
    venv that sees this interpreter's packages, and return that venv's bin folder."""
    wheel, venv = build_wheel(root, tmp), tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"], check=True,
                          capture_output=True, text=True).stdout.strip()
    Path(site, "gan_edge_benchmark_base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([*PIP, "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                    "--no-index", str(wheel)], check=True)
    return venv / "bin"


def measure(onnx_model: Path, keras_model: Path, out_dir: Path, repeats: int,
            root: Path) -> dict:
    """Cold start of ganrun, installed from a wheel of `root`, against a Keras script and the
    import floor, in a folder outside the checkout."""
    bin_dir = install_wheel(root, out_dir / "install")
    elsewhere = out_dir / "elsewhere"
    elsewhere.mkdir()
    ganrun = [str(bin_dir / "ganrun"), "--model", str(onnx_model), "--n", "25", "--quiet",
              "--out", "ganrun.png"]
    keras_cmd = [sys.executable, "-c", KERAS_SCRIPT, str(keras_model), "keras.png"]
    commands = {"ganrun": ganrun, "keras_script": keras_cmd,
                "ganrun_default": [str(bin_dir / "ganrun"), "--n", "25", "--quiet",
                                   "--out", "default.png"],
                "import_floor": [str(bin_dir / "python"), "-c", "import numpy, onnxruntime"]}
    samples = {name: [] for name in commands}
    phases = []
    for _ in range(repeats):
        for name, cmd in commands.items():
            samples[name].append(run_once(cmd, cwd=elsewhere))
        phases.append(_phases(bin_dir / "python", elsewhere))
    out = {name: summarize(runs) for name, runs in samples.items()}
    out["ganrun_default_phases_s"] = dict(zip(PHASES, np.median(phases, axis=0).tolist()))
    out["speedup_wall"] = out["keras_script"]["wall_s_median"] / out["ganrun"]["wall_s_median"]
    out["default_over_floor"] = (out["ganrun_default"]["wall_s_median"]
                                 / out["import_floor"]["wall_s_median"])
    return out
