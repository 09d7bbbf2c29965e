"""python -m benchmarks.foreign: gan-edge on generators it did not train, against the stock tools.

Two shapes (benchmarks/foreign_shapes.py), with fixed-seed random weights: keras-io's face DCGAN
as a Keras 3 model, and the PyTorch examples' DCGAN as torch.onnx.export lays it out. For each,
images per second at each batch size of every contender, alternating in rounds, each contender
timed alone in a fresh process (benchmarks/generation.py's loop), and each one's difference from
the reference that ganexport validates against (Keras's call; onnxruntime on the source file) on
the same latents:

- Keras's own call (the Keras shape only);
- source fp32: the file of Keras's `model.export(path, format="onnx")`, or the PyTorch-shaped
  file itself, in onnxruntime;
- stock int8: onnxruntime's `quant_pre_process` then `quantize_static` (QDQ, per channel,
  otherwise its defaults) of that source file, calibrated on latents from the prior;
- gan-edge fp32 and int8: what `ganexport --keras FILE` or `ganexport --onnx FILE` makes
  (export/sources.py and export/exporter.py, validation included).

Writes benchmarks/results/foreign-<CPU kind>.json and .md.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
import warnings
from pathlib import Path

import click
import numpy as np

from benchmarks.foreign_shapes import KERAS_IO_WIDTH, PYTORCH_NGF
from benchmarks.generation import WARM_UP_CALLS
from benchmarks.report import (OtherWork, cpu_kind, cpu_text, other_work_text, table_head,
                               write_report)
from export.quantize import CALIBRATION_SAMPLES
from runtime.core.command import run_cli
from runtime.core.files import check_writable_dir
from runtime.core.batch import CALL_TENSOR_BYTES, MAX_DEFAULT_BATCH

CALIBRATION = CALIBRATION_SAMPLES  # latents that calibrate both int8 files, ours and the stock one
DIFF_SAMPLES = 256    # latents on which every contender is compared with the reference
GANRUN_N = 1024       # samples each whole ganrun process draws, by default
SEED = 1
KERAS, PYTORCH = "keras", "pytorch"
# name -> (what it is, precision whose validation bounds apply); in the report's order
CONTENDERS = {
    "keras_call": ("Keras's own call, model(z, training=False)", "fp32"),
    "source_fp32": ("the source file in onnxruntime", "fp32"),
    "stock_int8": ("onnxruntime's quantize_static of the source file", "int8"),
    "gan_edge_fp32": ("gan-edge's fp32 file", "fp32"),
    "gan_edge_int8": ("gan-edge's int8 file", "int8"),
}
# (shape, goal key, what, numerator, denominator, target): images/s ratios at each batch
GOALS = [
    (shape, f"int8_over_{other}", f"gan-edge int8 / {CONTENDERS[other][0]}", "gan_edge_int8",
     other, target)
    for shape in (KERAS, PYTORCH)
    for other, target in (("source_fp32", 2.0), ("stock_int8", 2.5))
] + [
    (KERAS, "int8_over_keras_call", "gan-edge int8 / Keras's own call", "gan_edge_int8",
     "keras_call", 2.0),
    (KERAS, "fp32_over_source_fp32", "gan-edge fp32 / the file of Keras's own model.export",
     "gan_edge_fp32", "source_fp32", 1.2),
    (PYTORCH, "fp32_over_source_fp32", "gan-edge fp32 / the source file", "gan_edge_fp32",
     "source_fp32", 0.95),
]


def _quiet():
    """Keras's export and tf2onnx print progress and warnings meant for their developers."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _session(path: Path):
    """An onnxruntime session with the options gan-edge's own files get (runtime/session.py),
    so that only the graphs differ."""
    from runtime.session import open_session
    return open_session(path, f"{path} was not written", "the benchmark made a broken file")


def stock_int8(source: Path, out: Path, latents: np.ndarray) -> None:
    """onnxruntime's static quantization as its documentation gives it: quant_pre_process,
    then quantize_static with QDQ nodes, per-channel weights and its defaults otherwise,
    calibrated on `latents` shaped as the source's input takes them."""
    from onnxruntime.quantization import QuantFormat, quant_pre_process, quantize_static
    name = _session(source).get_inputs()[0].name
    prepared = out.with_name(f"{out.stem}-prepared.onnx")
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)

    class Reader:  # onnxruntime's CalibrationDataReader protocol
        batches = iter(latents[i:i + 64] for i in range(0, len(latents), 64))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {name: batch}
    with _quiet():
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True)


def _onnx_runner(path: Path, latent_shape: tuple, nchw: bool):
    """run(z [N, L]) -> samples NHWC, from a file whose input is [N, *latent_shape] and whose
    output is NCHW where `nchw` (both a view: no copy is timed)."""
    session = _session(path)
    name = session.get_inputs()[0].name

    def run(z):
        out = session.run(None, {name: z.reshape(len(z), *latent_shape)})[0]
        return out.transpose(0, 2, 3, 1) if nchw else out
    return run


def _runner(recipe):
    """run(z [N, L]) -> samples NHWC of a contender, built from its recipe: ("keras", .keras
    file), ("onnx", file, latent shape, output NCHW?) or ("gan_edge", file)."""
    kind, path, *layout = recipe
    if kind == "keras":
        import keras
        model = keras.saving.load_model(path, compile=False)
        return lambda z: model(z, training=False).numpy()
    if kind == "onnx":
        return _onnx_runner(Path(path), tuple(layout[0]), layout[1])
    from runtime.generator import Generator
    return Generator.from_file(Path(path)).run


def _time_alone(recipe, batches, latent_dim: int, seconds: float) -> dict:
    from benchmarks.generation import time_contenders
    return time_contenders({"it": _runner(recipe)}, batches, latent_dim, seconds, 1)["it"]


def time_apart(recipes: dict, batches, latent_dim: int, seconds: float, rounds: int,
               log=print) -> dict:
    """{name: {batch: images/s}}: medians over rounds, in each of which every contender in
    turn is timed at every batch alone in a fresh process. One process for all would hold every
    contender's peak memory at once (onnxruntime's arenas keep theirs): at keras-io's widths and
    batch 256 that passed 21 GB."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from runtime.core.errors import GanEdgeError
    rates = {name: {b: [] for b in batches} for name in recipes}
    for r in range(rounds):
        log(f"round {r + 1} of {rounds}")
        for name, recipe in recipes.items():
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                try:
                    got = pool.submit(_time_alone, recipe, batches, latent_dim, seconds).result()
                except BrokenProcessPool:
                    raise GanEdgeError(f"the process timing {name} died (out of memory?); "
                                       f"try smaller --batches") from None
            for b in batches:
                rates[name][b].append(got[b])
    return {name: {b: float(np.median(v)) for b, v in per.items()}
            for name, per in rates.items()}


def _gan_edge(source, out_dir: Path, log) -> tuple[dict, list[str]]:
    """gan-edge's fp32 and int8 files of `source`, by the export pipeline (validated): name ->
    path; and the lines it said about layers that no rewrite covers."""
    from export.exporter import export_source
    notes = []

    def progress(line):
        log(line)
        if line.startswith("no rewrite covers"):
            notes.append(line)
    manifest = export_source(source, out_dir, ("fp32", "int8"), progress=progress,
                             calibration=CALIBRATION)
    return {f"gan_edge_{f['precision']}": out_dir / f["file"] for f in manifest["files"]}, notes


def _keras_contenders(width: int, tmp: Path, log) -> tuple[dict, dict, dict]:
    """The Keras shape: recipes, their files, and what the report says of the shape."""
    import keras

    from benchmarks.foreign_shapes import face_dcgan
    from export.sources import Flags, keras_source
    model = face_dcgan(width)
    calibration = np.random.default_rng(0).standard_normal((CALIBRATION, 128)).astype(np.float32)
    model(calibration[:2], training=False)  # Keras exports only a model that has been called
    keras_path, source_path = tmp / "face.keras", tmp / "face-keras-export.onnx"
    model.save(keras_path)
    log("keras: model.export(format='onnx')")
    with _quiet():
        model.export(str(source_path), format="onnx", verbose=False)
    log("keras: stock quantize_static of that file")
    stock_int8(source_path, tmp / "face-stock-int8.onnx", calibration)
    log("keras: ganexport --keras")
    files, notes = _gan_edge(keras_source(keras_path, Flags()), tmp / "face-export", log)
    files.update(source_fp32=source_path, stock_int8=tmp / "face-stock-int8.onnx")
    recipes = {"keras_call": ("keras", str(keras_path)),
               **{n: ("onnx", str(files[n]), (128,), False) for n in ("source_fp32", "stock_int8")},
               **{n: ("gan_edge", str(files[n])) for n in ("gan_edge_fp32", "gan_edge_int8")}}
    shape = {"what": f"keras-io's face DCGAN, a Keras {keras.__version__} model: latent 128, "
                     f"Dense to 8x8x{width}, Conv2DTranspose 4x4 stride 2 'same' to "
                     f"{width}, {2 * width} and {4 * width} channels (LeakyReLU 0.2), Conv2D "
                     f"5x5 'same' to 64x64x3, sigmoid",
             "source": "the file of Keras's own model.export(path, format=\"onnx\")",
             "reference": "keras_call", "latent_dim": 128, "output_range": [0.0, 1.0],
             "no_rewrite": notes}
    return recipes, files, shape


def _pytorch_contenders(ngf: int, tmp: Path, log) -> tuple[dict, dict, dict]:
    """The PyTorch shape: recipes, their files, and what the report says of the shape."""
    from benchmarks.foreign_shapes import torch_dcgan
    from export.sources import Flags, onnx_source
    source_path = torch_dcgan(tmp / "netG.onnx", nz=100, ngf=ngf)
    calibration = np.random.default_rng(0).standard_normal((CALIBRATION, 100, 1, 1))
    log("pytorch: stock quantize_static of the source file")
    stock_int8(source_path, tmp / "netG-stock-int8.onnx", calibration.astype(np.float32))
    log("pytorch: ganexport --onnx")
    files, notes = _gan_edge(onnx_source(source_path, Flags()), tmp / "netG-export", log)
    files.update(source_fp32=source_path, stock_int8=tmp / "netG-stock-int8.onnx")
    recipes = {**{n: ("onnx", str(files[n]), (100, 1, 1), True)
                  for n in ("source_fp32", "stock_int8")},
               **{n: ("gan_edge", str(files[n])) for n in ("gan_edge_fp32", "gan_edge_int8")}}
    widths = ", ".join(str(ngf * k) for k in (8, 4, 2, 1))
    shape = {"what": f"the PyTorch examples' DCGAN as torch.onnx.export lays it out: z "
                     f"[N, 100, 1, 1], ConvTranspose 4x4 to {widths} and 3 channels, "
                     f"BatchNormalization and ReLU after each but the last, Tanh, sample "
                     f"[N, 3, 64, 64] (NCHW)",
             "source": "the file itself", "reference": "source_fp32", "latent_dim": 100,
             "output_range": [-1.0, 1.0], "no_rewrite": notes}
    return recipes, files, shape


def _differences(recipes: dict, reference: str, latent_dim: int, output_range,
                 source_graph) -> dict:
    """Each contender's |difference| from the reference on the same DIFF_SAMPLES seeded
    latents, with the bounds export/validate.py holds a file of its precision to
    (`source_graph`: the source's unrewritten fp32 graph, whose sums set fp32's)."""
    from export.validate import TAIL, bounds
    z = np.random.default_rng(SEED).standard_normal((DIFF_SAMPLES, latent_dim)).astype(np.float32)

    def samples(recipe):  # one contender in memory at a time
        run = _runner(recipe)
        return np.concatenate([run(z[i:i + 64]) for i in range(0, len(z), 64)])
    want = samples(recipes[reference])
    out = {}
    for name, recipe in recipes.items():
        if name == reference:
            continue
        precision = CONTENDERS[name][1]
        diffs = np.abs(samples(recipe) - want).ravel()
        tail = float(np.quantile(diffs, TAIL[precision]))
        tail_bound, mean_bound = bounds(precision, output_range, source_graph)
        out[name] = {"mean_abs": float(diffs.mean()), "max_abs": float(diffs.max()),
                     "tail_share": TAIL[precision], "tail_abs": tail,
                     "tail_bound": tail_bound, "mean_bound": mean_bound,
                     "within_bounds": bool(tail <= tail_bound and diffs.mean() <= mean_bound)}
    return out


def _file_facts(path: Path) -> dict:
    """Size, and the ConvTranspose layers left (onnxruntime's CPU provider has no int8 kernel
    for them: in an int8 file they compute in float)."""
    import onnx
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    return {"bytes": path.stat().st_size, "conv_transpose": ops.count("ConvTranspose")}


def measure_shape(kind: str, width: int, batches, rounds: int, seconds: float, ganrun_n: int,
                  log=print) -> dict:
    """One shape's contenders: images per second (medians of alternating rounds), differences
    from the reference, file facts."""
    import onnx

    from export.validate import longest_sum
    with tempfile.TemporaryDirectory() as tmp_name:
        make = _keras_contenders if kind == KERAS else _pytorch_contenders
        recipes, files, shape = make(width, Path(tmp_name), log)
        log(f"{kind}: differences from {shape['reference']}")
        source_graph = onnx.load(files["source_fp32"]).graph
        shape["longest_sum"] = longest_sum(source_graph)
        diffs = _differences(recipes, shape["reference"], shape["latent_dim"],
                             shape["output_range"], source_graph)
        log(f"{kind}: images per second at batch {', '.join(map(str, batches))}, each "
            f"contender alone in a process")
        speed = time_apart(recipes, batches, shape["latent_dim"], seconds, rounds, log)
        shape["ganrun"] = ganrun_runs({n: files[n] for n in ("gan_edge_fp32", "gan_edge_int8")},
                                      ganrun_n, max(batches), rounds, log)
        shape["contenders"] = {
            name: {"what": CONTENDERS[name][0], "precision": CONTENDERS[name][1],
                   "images_per_s": speed[name], **diffs.get(name, {}),
                   **(_file_facts(files[name]) if name in files else {})}
            for name in CONTENDERS if name in recipes}
    return shape


def ganrun_runs(files: dict, n: int, batch: int, rounds: int, log=print) -> list[dict]:
    """Whole `ganrun --n N` processes on each file, at the batch the file picks by itself
    and at `batch`, alternating in rounds: a row for each, with the medians of wall seconds and
    peak RSS."""
    import sys

    from benchmarks.cold_start import run_once
    from runtime.generator import Generator
    picks = {name: Generator.from_file(path).info.default_batch for name, path in files.items()}
    cases = [(name, None) for name in files] + [(name, batch) for name in files
                                                if picks[name] != batch]
    got = {case: [] for case in cases}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            log(f"ganrun --n {n}: round {r + 1} of {rounds}")
            for name, asked in cases:
                got[name, asked].append(run_once(
                    [sys.executable, "-m", "runtime.cli", "--model", str(files[name]), "--n",
                     str(n), "--out", f"{tmp}/grid.png", "--quiet",
                     *([] if asked is None else ["--batch", str(asked)])]))
    rows = []
    for (name, asked), runs in got.items():
        wall, rss = np.median(np.array(runs), axis=0)
        rows.append({"file": name, "batch": asked or picks[name], "default": asked is None,
                     "wall_s": float(wall), "peak_rss_mb": float(rss)})
    return rows


def goals(shapes: dict, batches) -> list[dict]:
    """Each goal at each batch, and each gan-edge file within its validation bounds."""
    rows = []
    for shape, key, what, num, den, target in GOALS:
        speed = shapes[shape]["contenders"]
        for b in batches:
            ratio = speed[num]["images_per_s"][b] / speed[den]["images_per_s"][b]
            rows.append({"shape": shape, "goal": key, "what": what, "batch": b,
                         "target": f">= {target:g}", "measured": ratio, "met": ratio >= target})
    for shape, figures in shapes.items():
        for name in ("gan_edge_fp32", "gan_edge_int8"):
            c = figures["contenders"][name]
            rows.append({"shape": shape, "goal": f"{name}_within_bounds",
                         "what": f"{c['what']} within the validation bounds of its source",
                         "batch": None, "target": "within", "measured": c["within_bounds"],
                         "met": c["within_bounds"]})
    return rows


def _rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def markdown(r: dict) -> str:
    from export.validate import BATCHES, FP32_SUM_TERMS
    batches = r["settings"]["batches"]
    m = r["machine"]
    lines = [f"# gan-edge on generators it did not train ({r['kind']})", "",
             f"Made by `{r['command']}` on {r['date']} ({m['cpu']}, {m['cpus']} CPUs).", "",
             f"{other_work_text(m['other_work_share'], m['cpus'])} The contenders alternate in "
             f"rounds ({r['settings']['rounds']} rounds, medians), so drift hits them all alike: "
             f"read the ratios, not the rates. Each is "
             f"timed alone in a fresh process, so none holds another's memory, and only after "
             f"{r['settings']['warm_up_calls']} calls of each batch size (onnxruntime allocates a "
             f"new size's memory on its second).", "",
             "The generators have fixed-seed random weights (benchmarks/foreign_shapes.py), not "
             "trained ones: speed does not depend on the weights. Their widths: the Keras "
             f"model's first is {r['settings']['keras_width']} (keras-io's: {KERAS_IO_WIDTH}), "
             f"the PyTorch-shaped one's ngf {r['settings']['ngf']} (the PyTorch example's: "
             f"{PYTORCH_NGF}). The differences are from the "
             "reference that `ganexport` validates against (Keras's own call for the Keras "
             "model, onnxruntime on the source file for the PyTorch-shaped one), on the same "
             f"{r['settings']['diff_samples']} seeded latents for every contender; 'within "
             "bounds' applies export/validate.py's bounds for the contender's precision (fp32: "
             f"worst value and mean, widened where the source sums over more than "
             f"{FP32_SUM_TERMS:,} terms; int8: 99.9th percentile and mean), which `ganexport` also "
             f"checks on its own latents (batches {', '.join(map(str, BATCHES))}). Stock int8: "
             "onnxruntime's `quant_pre_process`, then `quantize_static` with QDQ nodes and "
             "per-channel weights (its defaults otherwise), calibrated on "
             f"{r['settings']['calibration']} latents from N(0, 1). onnxruntime has no int8 "
             "ConvTranspose kernel: the ConvTranspose column counts those a file has left.", "",
             "## Goals", "", *table_head("shape", "goal", "batch", "target", "measured", "met")]
    for g in r["goals"]:
        measured = (f"{g['measured']:.2f}x" if isinstance(g["measured"], float)
                    else ("yes" if g["measured"] else "no"))
        lines.append(f"| {g['shape']} | {g['what']} | {g['batch'] or '-'} | {g['target']} | "
                     f"{measured} | {'yes' if g['met'] else '**no**'} |")
    for kind, shape in r["shapes"].items():
        uncovered = "; ".join(shape["no_rewrite"]) or "none"
        lines += ["", f"## {kind}: {shape['what']}", "",
                  f"Source fp32: {shape['source']}. Reference for the differences: "
                  f"{shape['reference']}. Layers that no gan-edge rewrite covers (they stay as "
                  f"the source has them): {uncovered}. The source's longest sum adds "
                  f"{shape['longest_sum']:,} terms: fp32's bounds are "
                  f"{shape['contenders']['gan_edge_fp32']['tail_bound']:.3g} at most and "
                  f"{shape['contenders']['gan_edge_fp32']['mean_bound']:.3g} on average.", "",
                  *table_head("contender", *(f"images/s, batch {b}" for b in batches),
                              "mean abs diff", "max abs diff", "within bounds", "size",
                              "ConvTranspose")]
        for name, c in shape["contenders"].items():
            if name == shape["reference"]:
                diff = ["reference", "reference", "-"]
            else:
                diff = [f"{c['mean_abs']:.2g}", f"{c['max_abs']:.2g}",
                        "yes" if c["within_bounds"] else "**no**"]
            size = f"{c['bytes'] / 1e6:.2f} MB" if "bytes" in c else "-"
            lines.append(f"| {name} | " + " | ".join(_rate(c["images_per_s"][b])
                                                      for b in batches)
                         + f" | {' | '.join(diff)} | {size} | {c.get('conv_transpose', '-')} |")
        lines += ["", f"Whole `ganrun --n {r['settings']['ganrun_n']}` processes on gan-edge's "
                      f"files (medians of the rounds): at the batch each file picks by itself (the graph's "
                      f"largest tensor within {CALL_TENSOR_BYTES >> 20} MB a call, at most "
                      f"{MAX_DEFAULT_BATCH}) and at `--batch {max(batches)}`.", "",
                  *table_head("file", "batch", "seconds", "peak memory")]
        for row in shape["ganrun"]:
            lines.append(f"| {row['file']} | {row['batch']}{' (its own)' if row['default'] else ''}"
                         f" | {row['wall_s']:.1f} | {row['peak_rss_mb']:,.0f} MB |")
    return "\n".join(lines) + "\n"


def run(out_dir: Path, batches, rounds: int, seconds: float, keras_width: int, ngf: int,
        ganrun_n: int, command: str, log=print) -> Path:
    other_work = OtherWork()
    shapes = {KERAS: measure_shape(KERAS, keras_width, batches, rounds, seconds, ganrun_n, log),
              PYTORCH: measure_shape(PYTORCH, ngf, batches, rounds, seconds, ganrun_n, log)}
    report = {"kind": cpu_kind(), "date": time.strftime("%Y-%m-%d"), "command": command,
              "machine": {"cpu": cpu_text(avx512=True), "cpus": os.cpu_count(),
                          "other_work_share": other_work.share()},
              "weights": "fixed-seed random",
              "settings": {"batches": list(batches), "rounds": rounds, "min_seconds": seconds,
                           "keras_width": keras_width, "ngf": ngf, "calibration": CALIBRATION,
                           "diff_samples": DIFF_SAMPLES, "ganrun_n": ganrun_n,
                           "warm_up_calls": WARM_UP_CALLS},
              "shapes": shapes, "goals": goals(shapes, batches)}
    return write_report(out_dir, f"foreign-{report['kind']}", report, markdown(report))


def _batches(ctx, param, value: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(b) for b in value.split(","))
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of positive batch "
                                 f"sizes, e.g. 64,256")
    return batches


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--batches", default="64,256", show_default=True, callback=_batches,
              help="Batch sizes to time, comma-separated.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1),
              help="Alternating rounds; each rate is the median of its rounds.")
@click.option("--seconds", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Least time each contender runs in a round (at least 2 calls).")
@click.option("--keras-width", default=KERAS_IO_WIDTH, show_default=True,
              type=click.IntRange(1), help="The Keras model's first width (keras-io's: 128).")
@click.option("--ngf", default=PYTORCH_NGF, show_default=True, type=click.IntRange(1),
              help="The PyTorch-shaped model's ngf (the PyTorch example's: 64).")
@click.option("--ganrun-n", default=GANRUN_N, show_default=True, type=click.IntRange(1),
              help="Samples each whole ganrun process draws.")
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False))
def main(batches, rounds, seconds, keras_width, ngf, ganrun_n, out_dir):
    """Compare gan-edge's fp32 and int8 files of two foreign generator shapes with Keras's call,
    the source file in onnxruntime and onnxruntime's stock int8 (minutes at full width)."""
    check_writable_dir(out_dir, "--out")  # before the minutes of work, not after them
    defaults = {"--batches": "64,256", "--rounds": 3, "--seconds": 1.0,
                "--keras-width": KERAS_IO_WIDTH, "--ngf": PYTORCH_NGF, "--ganrun-n": GANRUN_N}
    given = {"--batches": ",".join(map(str, batches)), "--rounds": rounds, "--seconds": seconds,
             "--keras-width": keras_width, "--ngf": ngf, "--ganrun-n": ganrun_n}
    command = " ".join(["python -m benchmarks.foreign", *(f"{k} {v:g}" if isinstance(v, float)
                                                          else f"{k} {v}"
                                                          for k, v in given.items()
                                                          if v != defaults[k])])
    click.echo(str(run(Path(out_dir), batches, rounds, seconds, keras_width, ngf, ganrun_n,
                       command, log=lambda m: click.echo(m, err=True))))


if __name__ == "__main__":
    run_cli(main)
