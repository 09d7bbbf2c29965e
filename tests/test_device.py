"""The device wheel (`make wheel`, docs/device.md): what it holds, and ganrun from it on an
emulated Raspberry Pi (tests/arm64.py) drawing what x86 draws, for every shipped model and an
exported one that gan-edge did not train. Its offline install route into a bare venv:
tests/test_install.py.

The emulated test needs Debian's and PyPI's registries once (tests/arm64.py caches what it
fetches); where they cannot be reached it skips saying so, and under CI=true it fails instead.
"""
import email
import json
import math
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

import arm64
import conftest
from conftest import ROOT, missing
from export.validate import MEAN_ABS

# Bounds of arm64 against x86 on the same seeded latents (docs/device.md says what they cover).
# int8 generators: the same values, pixels and CSV text, as both emulated CPUs gave.
# fp16 generators: on cortex-a76, which has fp16 arithmetic, onnxruntime takes another path
# than on x86 and cortex-a72 (which agree bit for bit), where each sum of up to 1,024 products
# is rounded to 11 significant bits. The worst value measured was 1.7 % of the output range
# off over RAW_N = 16 latents (2.5 % over 32), 6 of 255 levels in the images, and the mean
# 0.04 %: FP16_BOUND is three times that worst, and the mean is held to what ganexport holds
# an fp16 file to against Keras.
FP16_BOUND = 0.05                              # share of the output range, any one value
FP16_MEAN = MEAN_ABS["fp16"]                   # share of the output range, on average
FP16_PIXELS = math.ceil(FP16_BOUND * 255) + 1  # 8-bit levels; +1: either side may round up
# fp32 generators (the foreign one's): float rounding apart, as sums of products in another
# order and with fused multiply-adds; its worst was below 0.005 % of the range (the summary
# line), and one 8-bit level where a value lies at a level's edge.
FP32_BOUND, FP32_PIXELS = 1e-4, 1
# The discriminators (--keep) are weight-only int8 files. onnxruntime on x86 fuses them into
# MatMulNBits, whose kernel there differs from plain fp32 arithmetic (mlp-smooth-mnist's: by
# up to 0.04 in a logit); cortex-a72's logits are plain fp32's. The worst gap measured was 0.049
# (an fp16 generator's samples on cortex-a76); LOGIT_BOUND is twice that, at most 2.5 % in
# probability. --keep may then pick differently, but only among samples that near its cut.
LOGIT_BOUND = 0.1


def _run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


def test_the_device_wheel_holds_the_runtime_and_its_models_alone(device_wheel):
    with zipfile.ZipFile(device_wheel) as z:
        names = set(z.namelist())
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(z.read(meta_name))
        scripts = z.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    info = meta_name.split("/")[0]
    assert {n.split("/")[0] for n in names} == {"runtime", info}, "only runtime/ is shipped"
    # Every file of runtime/ (code, shipped generators, discriminators, classifiers), no other.
    here = {p.relative_to(ROOT).as_posix() for p in (ROOT / "runtime").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}
    assert {n for n in names if n.startswith("runtime/")} == here
    index = json.loads((ROOT / "runtime" / "models" / "index.json").read_text())
    for entry in index["models"].values():
        for file in [*entry["files"].values(), entry["discriminator"]]:
            assert f"runtime/models/{file}" in names
    assert not [n for n in names if n.endswith(".keras")]

    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = root["optional-dependencies"]
    assert meta["Name"] == "gan-edge-runtime" and meta["Version"] == root["version"]
    assert meta["Requires-Python"] == root["requires-python"]
    assert set(meta.get_all("Requires-Dist")) == {
        *root["dependencies"], *(f'{r}; extra == "{e}"' for e in ("cpu", "gpu") for r in extras[e])}
    assert [line for line in scripts.splitlines() if "=" in line] == [
        "ganrun = runtime.cli:entry"]


def test_docs_state_the_wheels_size(device_wheel):
    stated = re.search(r"the wheel is (\d+\.\d) MB", (ROOT / "docs" / "device.md").read_text())
    assert stated, "docs/device.md no longer states the wheel's size"
    assert stated[1] == f"{device_wheel.stat().st_size / 1e6:.1f}", (
        "docs/device.md states another size than `make wheel` prints now: put its figure there")


def _pixels(path: Path) -> np.ndarray:
    """An image's (every frame's) pixels, as int16 so that differences do not wrap."""
    with Image.open(path) as img:
        return np.stack([np.asarray(f.convert("RGB"), np.int16)
                         for f in ImageSequence.Iterator(img)])


def _values(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path).astype(np.float64)
    if path.suffix == ".csv":
        return np.loadtxt(path, delimiter=",", skiprows=1)
    return _pixels(path)


def _picks(logits: np.ndarray, n: int) -> set[int]:
    """The samples --keep keeps: the n highest logits, the earlier one on a tie."""
    return set(np.argsort(-logits, kind="stable")[:n].tolist())


def _bound(file: Path, precision: str, span: float) -> float:
    """How far `file`'s values may lie from x86's: raw values and CSV points in the model's
    units, images in 8-bit levels."""
    if precision == "int8":
        return 0.0
    values, pixels = {"fp16": (FP16_BOUND, FP16_PIXELS), "fp32": (FP32_BOUND, FP32_PIXELS)}[precision]
    return values * span if file.suffix in (".npy", ".csv") else pixels


def compare(x86: Path, arm: Path, values_only: bool = False) -> tuple[list[str], list[str]]:
    """(problems, summary): what in `arm` (device_cases.py's outputs; `values_only`: of
    --values-only) lies outside the bounds from `x86`'s, and one line per file of a model
    saying how far it lies."""
    from device_cases import KEEP_N
    problems, summary = [], []
    for stem, (lo, hi) in json.loads((x86 / "ranges.json").read_text()).items():
        precision = stem.rsplit(".", 1)[1]
        logit_gap, differ = 0.0, set()
        if (x86 / f"{stem}.keep-logits.npy").is_file():
            logits = [np.load(d / f"{stem}.keep-logits.npy") for d in (x86, arm)]
            logit_gap = float(np.abs(logits[0] - logits[1]).max())
            if logit_gap > LOGIT_BOUND:
                problems.append(f"{stem}: discriminator logits differ by {logit_gap:.3g}")
            cut = np.sort(logits[0])[-KEEP_N]
            differ = _picks(logits[0], KEEP_N) ^ _picks(logits[1], KEEP_N)
            if any(abs(logits[0][i] - cut) > 2 * LOGIT_BOUND for i in differ):
                problems.append(f"{stem}: --keep picks differ away from its cut")
        worst = {"values": 0.0, "pixels": 0.0}
        colour = np.load(x86 / f"{stem}.raw.npy").shape[-1] == 3
        for file in sorted(x86.glob(f"{stem}.*")):
            if values_only and not file.name.endswith(".raw.npy"):
                continue  # the ganrun cases: not run there
            if file.name.endswith(".keep-logits.npy") or (differ and ".keep." in file.name):
                continue  # other picks are other samples: compared by their logits above
            if precision != "int8" and file.name.endswith(".scatter.png"):
                continue  # the CSV's points drawn, where a moved dot is a whole dot apart
            if precision != "int8" and file.suffix == ".gif" and colour:
                continue  # a colour GIF's palette is fitted to its frames: any change moves it
            if not (arm / file.name).is_file():
                problems.append(f"{file.name}: not written on arm64")
                continue
            a, b = _values(file), _values(arm / file.name)
            if a.shape != b.shape:
                problems.append(f"{file.name}: shape {b.shape}, x86's {a.shape}")
                continue
            gaps = np.abs(a - b)
            gap, bound = float(gaps.max()), _bound(file, precision, hi - lo)
            if gap > bound:
                problems.append(f"{file.name}: differs from x86 by {gap:.3g} (bound "
                                f"{bound:.3g})")
            if file.suffix == ".npy" and gaps.mean() > FP16_MEAN * (hi - lo):
                problems.append(f"{file.name}: differs from x86 by {gaps.mean():.3g} on "
                                f"average (bound {FP16_MEAN * (hi - lo):.3g})")
            kind = "values" if file.suffix in (".npy", ".csv") else "pixels"
            worst[kind] = max(worst[kind], gap / (hi - lo) if kind == "values" else gap)
        values, pixels = worst["values"], worst["pixels"]
        summary.append(f"{stem}: values {f'{values:.2%} of the range' if values else 'equal'}"
                       f", pixels {f'{pixels:.0f} levels' if pixels else 'equal'}, logits "
                       f"{logit_gap:.3f}, --keep picks "
                       f"{f'{len(differ) // 2} other samples' if differ else 'the same'}")
    return problems, summary


@pytest.fixture(scope="module")
def emulated(device_wheel, tmp_path_factory):
    """(emulator, site): the emulated arm64 Python and the device wheel installed for it."""
    site = tmp_path_factory.mktemp("arm64-site")
    try:
        emu = arm64.emulator()
        emu.install(device_wheel, site)
    except arm64.Unreachable as e:
        missing(f"the arm64 emulation cannot be set up: {e}")
    return emu, site


@pytest.fixture(scope="module")
def foreign_files(foreign_export) -> list[Path]:
    """The exported files of a generator gan-edge did not train (64x64 RGB), which the device
    cases run beside the shipped models."""
    return sorted(foreign_export.glob("generator.*.onnx"))


@pytest.fixture(scope="module")
def x86_outputs(tmp_path_factory, foreign_files) -> Path:
    out = tmp_path_factory.mktemp("x86")
    done = _run(sys.executable, ROOT / "tests" / "device_cases.py", out, *foreign_files,
                cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.network  # the emulator and the aarch64 wheels, fetched once into a cache
@pytest.mark.slow
@pytest.mark.timeout(1800)  # about a minute of CPU time each; far longer on a busy machine
@pytest.mark.parametrize("cpu", arm64.CPUS)
def test_ganrun_on_an_emulated_raspberry_pi_draws_what_x86_draws(cpu, emulated, x86_outputs,
                                                                    foreign_files, tmp_path):
    """Every shipped model and an exported foreign one, through the device wheel's ganrun on a
    Pi 4's CPU; on a Pi 5's, their values and logits alone: the ganrun cases are the same
    Python on both, and what differs between the two CPUs is arithmetic (the Pi 5's fp16 and
    dot-product instructions), which the values show."""
    emu, site = emulated
    out = tmp_path / cpu
    values_only = cpu != arm64.CPUS[0]
    done = emu.run(cpu, site, ROOT / "tests" / "device_cases.py", out, *foreign_files,
                   *(["--values-only"] if values_only else []), cwd=tmp_path,
                   capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"{cpu}:\n{done.stderr}")  # the time per model, for pytest -s
    machine, runtime_dir = (out / "where.txt").read_text().split()
    assert machine == "aarch64" and Path(runtime_dir).is_relative_to(site), (machine, runtime_dir)
    problems, summary = compare(x86_outputs, out, values_only)
    print("\n".join(f"{cpu} against x86: {line}" for line in summary))
    assert problems == []


@pytest.mark.slow  # it builds what the emulated test compares, and guards only that test
def test_the_comparison_finds_a_changed_pixel_and_a_moved_value(x86_outputs, tmp_path):
    """compare() is what the emulated test rests on: it must see a difference beyond a bound."""
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(x86_outputs, copy)
    assert compare(x86_outputs, copy)[0] == []
    grid = next(copy.glob("*.int8.grid.png"))
    pixels = np.asarray(Image.open(grid)).copy()
    pixels[5, 5] ^= 1
    Image.fromarray(pixels).save(grid)
    raw = next(copy.glob("*.fp16.raw.npy"))
    values = np.load(raw)
    values.flat[0] += 0.2
    np.save(raw, values)
    logits = next(copy.glob("*.keep-logits.npy"))
    np.save(logits, np.load(logits) + 1)
    problems = "\n".join(compare(x86_outputs, copy)[0])
    assert grid.name in problems and raw.name in problems and logits.name.split(".keep")[0] in \
        problems, problems


def test_a_registry_out_of_reach_is_told_apart_from_a_failed_fetch(monkeypatch):
    """Only an unreachable registry may skip the arm64 test, and under CI=true not even that."""
    import http.server
    import threading

    class Refusing(http.server.BaseHTTPRequestHandler):  # answers every request with 501
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        up = f"http://127.0.0.1:{server.server_port}/"
        with pytest.raises(RuntimeError, match="failed"):
            arm64._fetch(["false"], up, "a fetch")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(arm64.Unreachable, match="cannot be reached"):
        arm64._fetch(["false"], up, "a fetch")  # the same port, closed now
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        missing("the registries cannot be reached")
