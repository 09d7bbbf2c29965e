"""python -m benchmarks: measure gan-edge against its alternatives, write a report.

Writes benchmarks/results/<host>-<date>.json and .md plus PNG charts (or --name's files).
Contenders alternate in rounds inside one process tree so that machine drift hits all of them;
no figure here is asserted in tests.
"""
from __future__ import annotations

import os
import platform
import re
import socket
import tempfile
import time
from pathlib import Path

import click

from runtime.core.command import run_cli
from runtime.core.cpu import cpu_name
from runtime.core.errors import GanEdgeError
from runtime.core.files import check_writable_dir
from runtime.core.precision import PRECISIONS
from runtime.core.samples import IMAGE
from runtime.core.scores import without_histogram

GOALS = [  # (key in the report's "goals", description, comparison, target)
    ("train_speedup_mlp-mnist", "train step vs article loop, mlp-mnist", ">=", 15.0),
    ("train_speedup_dcgan-mnist", "train step vs article loop, dcgan-mnist", ">=", 1.0),
    ("int8_size_ratio", "int8 file size / fp32 file size", "<=", 0.30),
    ("int8_speedup_b256", "int8 / fp32 throughput, batch 256", ">=", 1.5),
    ("fp32_over_keras_b256", "fp32 ONNX / Keras call throughput, batch 256", ">=", 1.2),
    ("int8_over_keras_b256", "int8 ONNX / Keras call throughput, batch 256", ">=", 2.0),
    ("int8_quality_delta", "|classifier score int8 - fp32|", "<=", 0.1),
    ("ganrun_wall_s", "ganrun --n 25 wall time, median (s)", "<=", 0.25),
    ("ganrun_rss_mb", "ganrun --n 25 peak RSS, median (MB)", "<=", 90.0),
    ("cold_start_speedup", "Keras script / ganrun wall time", ">=", 15.0),
    ("default_over_floor", "ganrun --n 25 (shipped default) / import numpy+onnxruntime, wall",
     "<=", 1.25),
]


def _find_checkpoint(arch: str, run: str | None) -> Path | None:
    """The best (else newest) evaluation checkpoint of `run`, or of the newest run of `arch`;
    None where no run was named and none of `arch` has one yet (an untrained one is measured).
    A run named with --run that is not there, is of another arch or holds no checkpoint is an
    error: its figures would not be the ones asked for."""
    from training.rundir import RunDir

    def best_of(found: RunDir) -> Path:
        return found.find_checkpoint(best=found.read_best() is not None).path
    if run is None:
        try:
            return best_of(RunDir.newest(arch))
        except GanEdgeError:
            return None
    found = RunDir(run)
    if not found.path.is_dir():
        raise GanEdgeError(f"--run {run} does not exist; pass a run folder of "
                           f"`python -m training.run`, or leave --run out")
    trained = found.read_config()["arch"]
    if trained != arch:
        raise GanEdgeError(f"--run {run} is a {trained} run, not {arch}; pass --arch {trained}")
    return best_of(found)


def _models(arch: str, run: str | None, tmp: Path, log) -> tuple[dict, object, Path, str]:
    """ONNX files per contender, the Keras generator, its .keras path, and where it came from."""
    import keras
    import onnx

    from export.exporter import build_file, metadata, write_metadata
    from export.quantize import quantize_int8
    from export.sources import gan_edge_source
    from runtime.core.artifacts import KERAS_GENERATOR_FILES
    from training.config import get_config
    from training.models import build_generator
    cfg = get_config(arch)
    ckpt = _find_checkpoint(arch, run)
    if ckpt is not None:
        # Named by run folder and checkpoint only: no path of this machine in the report.
        source = f"trained checkpoint {ckpt.parent.parent.name}/{ckpt.name}"
        keras_path = ckpt / KERAS_GENERATOR_FILES["raw"]
        generator = keras.saving.load_model(keras_path, compile=False)
    else:  # speed does not depend on training; quality figures are then marked untrained
        source = "untrained (randomly initialised) generator: quality figures are not meaningful"
        keras.utils.set_random_seed(0)
        generator = build_generator(cfg)
        keras_path = tmp / "generator.keras"
        generator.save(keras_path)
    log(f"models from: {source}")
    source = gan_edge_source(generator, cfg, keras_path)
    files = {p: build_file(p, source.model, source.spec, tmp) for p in PRECISIONS}
    plain = source.model  # as tf2onnx writes it: build_file rewrites a copy
    if any(node.op_type == "ConvTranspose" for node in plain.graph.node):
        # the DCGAN: also fp32 and int8 as tf2onnx writes them, to show what the rewrite buys
        files["fp32_no_rewrite"] = tmp / "fp32_no_rewrite.onnx"
        onnx.save(plain, str(files["fp32_no_rewrite"]))
        files["int8_no_rewrite"] = tmp / "int8_no_rewrite.onnx"
        quantize_int8(files["fp32_no_rewrite"], files["int8_no_rewrite"], source.spec)
    info = {"name": "benchmark", "step": 0, "epoch": 0}
    for precision, path in files.items():
        write_metadata(path, metadata(source.spec, precision.split("_")[0], checkpoint=info))
    return files, generator, keras_path, source


def run_benchmarks(arch: str, train_archs: list[str], run: str | None, quick: bool,
                   out_dir: Path, log=print, name: str | None = None) -> dict:
    import numpy as np

    from benchmarks import cold_start, generation, train_step
    from benchmarks.report import OtherWork
    from runtime.generator import Generator
    from training.config import get_config
    from training.evaluate import eval_latents, score_samples
    cfg = get_config(arch)
    other_work = OtherWork()
    host, date = socket.gethostname(), time.strftime("%Y-%m-%d %H:%M")
    report = {"host": host, "date": date, "name": name or f"{host}-{date[:10]}",
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "processor": cpu_name(),
                          "python": platform.python_version()},
              "quick": quick, "arch": arch,
              "command": " ".join(["python -m benchmarks", *(["--quick"] if quick else []),
                                   "--arch", arch, *(f"--train-arch {a}" for a in train_archs),
                                   *(["--run", Path(run).name] if run else []),
                                   *(["--name", name] if name else [])])}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files, generator, keras_path, source = _models(arch, run, tmp, log)
        report["model_source"] = source

        log("training: project train step vs the articles' loop")
        def steps(a):  # a DCGAN step costs ~1.5 s here, an MLP step a few ms
            return (1 if quick else 3) if get_config(a).family == "dcgan" else (5 if quick else 30)
        report["training"] = [train_step.measure(a, steps(a), rounds=1 if quick else 3)
                              for a in train_archs]

        log("generation: images per second in-process")
        sessions = {p: Generator.from_file(f) for p, f in files.items()}
        contenders = {"keras_predict": lambda z: generator.predict(z, verbose=0, batch_size=len(z)),
                      "keras_call": lambda z: generator(z, training=False).numpy(),
                      **{f"onnx_{p}": s.run for p, s in sessions.items()}}
        batches = (1, 25, 256)
        speed = generation.time_contenders(contenders, batches, cfg.latent_dim,
                                           min_seconds=0.2 if quick else 1.0,
                                           rounds=1 if quick else 3)
        flops = generation.generator_flops(generator)
        peak = generation.measure_peak_gflops(0.5 if quick else 2.0)
        report["generation"] = {
            "images_per_s": speed, "flops_per_image": flops, "peak_gflops": peak,
            "peak_note": "best rate of numpy's 1024x1024 float32 matmul on all cores",
            "fraction_of_peak": {n: {b: v * flops / 1e9 / peak for b, v in per.items()}
                                 for n, per in speed.items()},
            "note": "fp16 is measured on the CPU, where onnxruntime runs it slower than fp32; "
                    "it is the GPU format" if "CUDAExecutionProvider" not in
                    sessions["fp32"].session.get_providers() else ""}

        log("cold start: whole ganrun process (installed from a wheel) vs a Keras script")
        report["cold_start"] = cold_start.measure(files["int8"], keras_path, tmp,
                                                  repeats=2 if quick else 7,
                                                  root=Path(__file__).resolve().parents[1])

        log("files: size and quality per precision")
        n = 1000 if quick else 10_000
        z = eval_latents(cfg, n)
        report["files"] = {}
        for p, s in sessions.items():
            samples = np.concatenate([s.run(z[i:i + 500]) for i in range(0, n, 500)])
            q = score_samples(cfg, samples)
            report["files"][p] = {"bytes": files[p].stat().st_size,
                                  **without_histogram(q.to_row())}
    report["machine"]["other_work_share"] = other_work.share()
    report["goals"] = _goals(report)
    return _write(report, out_dir)


def _goals(r: dict) -> list[dict]:
    from training.config import get_config
    values = {f"train_speedup_{t['arch']}": t["speedup"] for t in r["training"]}
    f, g, c = r["files"], r["generation"]["images_per_s"], r["cold_start"]
    values["int8_size_ratio"] = f["int8"]["bytes"] / f["fp32"]["bytes"]
    values["int8_speedup_b256"] = g["onnx_int8"][256] / g["onnx_fp32"][256]
    values["fp32_over_keras_b256"] = g["onnx_fp32"][256] / g["keras_call"][256]
    values["int8_over_keras_b256"] = g["onnx_int8"][256] / g["keras_call"][256]
    if get_config(r["arch"]).kind == IMAGE:  # a point generator has no classifier score
        values["int8_quality_delta"] = abs(f["int8"]["classifier_score"]
                                           - f["fp32"]["classifier_score"])
    values["ganrun_wall_s"] = c["ganrun"]["wall_s_median"]
    values["ganrun_rss_mb"] = c["ganrun"]["peak_rss_mb_median"]
    values["cold_start_speedup"] = c["speedup_wall"]
    values["default_over_floor"] = c.get("default_over_floor")  # reports before it lack it
    out = []
    for key, what, op, target in GOALS:
        v = values.get(key)
        met = None if v is None else (v >= target if op == ">=" else v <= target)
        out.append({"goal": key, "what": what, "target": f"{op} {target:g}", "measured": v,
                    "met": met})
    return out


def _write(report: dict, out_dir: Path) -> dict:
    from benchmarks.report import charts, markdown, write_report
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = report.get("name") or f"{report['host']}-{report['date'][:10]}"  # older reports lack it
    report["charts"] = charts(report, out_dir, stem)
    md = write_report(out_dir, stem, report, markdown(report))
    report["paths"] = [str(md.with_suffix(".json")), str(md)]
    return report


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quick", is_flag=True, help="One short round of everything (a minute or two).")
@click.option("--arch", default="dcgan-mnist", show_default=True,
              help="Generator measured for generation, cold start and files.")
@click.option("--train-arch", "train_archs", multiple=True,
              default=("mlp-mnist", "dcgan-mnist"), show_default=True,
              help="Architectures whose train step is measured.")
@click.option("--run", type=click.Path(file_okay=False),
              help="Run whose best checkpoint to measure [default: newest runs/<arch>-*].")
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False))
@click.option("--name", default=None,
              help="Name of the report's files, for another machine on the same day  "
                   "[default: HOST-DATE, e.g. vm-2026-12-02].")
def main(quick, arch, train_archs, run, out_dir, name):
    """Measure training speed, generation speed, cold start and file size/quality side by side."""
    from training.config import REGISTRY
    for a in (arch, *train_archs):
        if a not in REGISTRY:
            raise GanEdgeError(f"unknown architecture {a!r}; known: {', '.join(REGISTRY)}")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise GanEdgeError(f"--name {name!r} must be a plain file name (letters, digits, '.', "
                           f"'_', '-'), e.g. headline-avx512-amx")
    if run is not None:
        _find_checkpoint(arch, run)  # an explicit run must hold one: refused before the work
    check_writable_dir(out_dir, "--out")  # before the minutes of work, not after them
    report = run_benchmarks(arch, list(train_archs), run, quick, Path(out_dir),
                            log=lambda m: click.echo(m, err=True), name=name)
    for p in report["paths"]:
        click.echo(p)


if __name__ == "__main__":
    run_cli(main)
