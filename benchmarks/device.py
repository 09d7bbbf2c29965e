"""GPU against CPU: exported generators through onnxruntime's CUDA provider and its CPU one,
side by side in one run.

    python -m benchmarks.device --models DIR

DIR is a ganexport output folder (generator.fp32/fp16/int8.onnx). Needs only the runtime
(onnxruntime-gpu, numpy): it runs on a GPU machine that has no TensorFlow. Measures images
per second in-process per precision and device, whole `ganrun --n 25` processes, and how far
each device's samples are from fp32 on the CPU. Writes benchmarks/results/gpu-<gpu>-<date>.json
and .md; nothing here is asserted in tests.
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from benchmarks.report import machine_text, table_head, write_report
from runtime.core.artifacts import generator_file
from runtime.core.command import run_cli
from runtime.core.cpu import cpu_name
from runtime.core.errors import GanEdgeError
from runtime.core.files import check_writable_dir
from runtime.core.precision import PRECISIONS

BATCHES = (1, 25, 256, 2048)
QUICK_BATCHES = (1, 25, 256)


def gpu_name() -> str:
    """The GPU and its driver as nvidia-smi names them, or why there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "no GPU (nvidia-smi not found)"
    first = out.stdout.strip().splitlines()[:1]
    if out.returncode or not first:
        return "no GPU (nvidia-smi found none)"
    name, driver = (x.strip() for x in first[0].split(",", 1))
    return f"{name}, driver {driver}"


def measure(models: Path, quick: bool, log) -> dict:
    import onnxruntime as ort

    from benchmarks.cold_start import run_once, summarize
    from benchmarks.generation import time_contenders
    from runtime.generator import Generator, choose_device
    files = {p: models / generator_file(p) for p in PRECISIONS
             if (models / generator_file(p)).is_file()}
    if "fp32" not in files:
        raise GanEdgeError(f"{models} has no {generator_file('fp32')}, the reference the other files "
                           f"are compared with; export it with ganexport --precision fp32,fp16,int8")
    devices = ["cpu"]
    if choose_device("auto").gpu:
        devices.append("cuda")
    else:
        log("no usable CUDA GPU here: measuring the CPU only")
    gens = {f"{p} {d}": Generator.from_file(f, device=d) for d in devices for p, f in files.items()}
    report = {"gpu": gpu_name(), "onnxruntime": ort.__version__,
              "providers": {name: g.session.get_providers()[0] for name, g in gens.items()},
              "arch": gens["fp32 cpu"].arch, "output_range": gens["fp32 cpu"].info.output_range}

    batches = QUICK_BATCHES if quick else BATCHES
    log(f"in-process: images per second at batches {', '.join(map(str, batches))}")
    latent = gens["fp32 cpu"].info.latent_dim
    report["images_per_s"] = time_contenders({n: g.run for n, g in gens.items()}, batches,
                                             latent, min_seconds=0.2 if quick else 0.5,
                                             rounds=1 if quick else 3)

    # The same latents through every contender: how far each lands from fp32 on the CPU.
    z = np.random.default_rng(1).standard_normal((256, latent)).astype(np.float32)
    reference = gens["fp32 cpu"].run(z)
    report["max_abs_diff_vs_fp32_cpu"] = {n: float(np.abs(g.run(z) - reference).max())
                                          for n, g in gens.items()}

    log("whole process: ganrun --n 25 to a PNG")
    repeats = 2 if quick else 5
    samples = {name: [] for name in gens}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):  # contenders alternate, so drift hits all of them
            for name in gens:
                precision, device = name.split()
                samples[name].append(run_once(
                    [sys.executable, "-m", "runtime.cli", "--model", str(files[precision]),
                     "--device", device, "--n", "25", "--quiet", "--out", f"{tmp}/grid.png"]))
    report["ganrun"] = {name: summarize(runs) for name, runs in samples.items()}
    return report


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [f"# gan-edge on a GPU: {r['gpu']}, {r['date']}", "",
             f"Host: {machine_text(m)}, onnxruntime {r['onnxruntime']}. "
             f"Generator: `{r['arch']}` from `{r['models']}`. "
             f"CPU rows use this host's {m['cpus']} cores; the `cuda` rows run on the GPU "
             f"(provider actually used: "
             + ", ".join(f"{n}: {p}" for n, p in r["providers"].items()) + ").", "",
             f"Made by `{r['command']}`.", "",
             "## In-process: images per second", ""]
    speed = r["images_per_s"]
    batches = list(next(iter(speed.values())))
    lines += table_head("file, device", *(f"batch {b}" for b in batches))
    for name, per in speed.items():
        lines.append(f"| {name} | " + " | ".join(f"{per[b]:,.0f}" for b in batches) + " |")
    if "fp32 cuda" in speed:
        lines += ["", "Ratios at each batch (higher: the first is faster):", "",
                  *table_head("ratio", *(f"batch {b}" for b in batches))]
        for a, b in (("fp32 cuda", "fp32 cpu"), ("fp16 cuda", "fp32 cuda"),
                     ("fp16 cuda", "int8 cpu")):
            if a in speed and b in speed:
                lines.append(f"| {a} / {b} | " + " | ".join(
                    f"{speed[a][n] / speed[b][n]:.2f}x" for n in batches) + " |")
    lo, hi = r["output_range"]
    lines += ["", f"## Agreement with fp32 on the CPU (256 latents, outputs in {lo:g}..{hi:g})", "",
              "| file, device | max abs difference |", "|---|---|"]
    lines += [f"| {n} | {d:.2g} |" for n, d in r["max_abs_diff_vs_fp32_cpu"].items()]
    lines += ["", "## Whole process: `ganrun --n 25` to a PNG (start-up, session, 25 images)", "",
              "| file, device | wall median (min-max) | peak RSS median |", "|---|---|---|"]
    for n, x in r["ganrun"].items():
        lines.append(f"| {n} | {x['wall_s_median']:.2f} s ({x['wall_s_min']:.2f}-"
                     f"{x['wall_s_max']:.2f}) | {x['peak_rss_mb_median']:.0f} MB |")
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--models", required=True, type=click.Path(exists=True, file_okay=False),
              help="A ganexport output folder holding generator.fp32.onnx (and fp16, int8).")
@click.option("--quick", is_flag=True, help="One short round of everything.")
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False))
def main(models, quick, out_dir):
    """Measure exported generators on the GPU (onnxruntime's CUDA provider) against the CPU."""
    check_writable_dir(out_dir, "--out")  # before the minutes of work, not after them
    report = measure(Path(models), quick, log=lambda m: click.echo(m, err=True))
    report.update(date=time.strftime("%Y-%m-%d %H:%M"), models=Path(models).name,
                  command=" ".join(["python -m benchmarks.device", *(["--quick"] if quick else []),
                                    "--models", Path(models).name]),
                  machine={"cpus": os.cpu_count(), "processor": cpu_name(),
                           "platform": platform.platform(), "python": platform.python_version()})
    report = json.loads(json.dumps(report))  # batch keys become strings, as in the .json
    slug = re.sub(r"[^a-z0-9]+", "-", report["gpu"].split(",")[0].lower()).strip("-") or "none"
    click.echo(str(write_report(Path(out_dir), f"gpu-{slug}-{report['date'][:10]}", report,
                                markdown(report))))


if __name__ == "__main__":
    run_cli(main)
