"""python -m benchmarks.int8_layers: what the export's two choices against rounding error give.

The export folds per-channel scales and shifts (batch normalisation) into the layers before
them (export/rewrite.py), and keeps the generator's output layer in float in the int8 file
(export/quantize.py). For a run's checkpoint, builds the int8 file with each choice on and off
and the fp16 file with and without the folding, and measures them the way the export's
validation does: differences from Keras on its seeded latents (99.9th percentile, worst value,
mean, as fractions of the output range) and, for a conditional generator, the mean difference
of the worst label. Writes benchmarks/results/int8-layers-<arch>.json and .md.

    python -m benchmarks.int8_layers --run RUN_DIR --checkpoint epoch_010
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np

from benchmarks.report import cpu_text, table_head, write_report
from runtime.core.command import run_cli
from runtime.core.files import check_writable_dir

# (precision, folded, output layer in float); the export's own choice is the first of each.
VARIANTS = (("int8", True, True), ("int8", True, False), ("int8", False, True),
            ("int8", False, False), ("fp16", True, None), ("fp16", False, None))


def measure(run, checkpoint, log=print) -> list[dict]:
    import keras
    import onnx

    from export.exporter import metadata, write_metadata
    from export.quantize import convert_fp16, quantize_int8
    from export.rewrite import rewrite
    from export.sources import gan_edge_source
    from export.validate import MAX_ABS, MEAN_ABS, TAIL, differences, label_differences
    from runtime.generator import Generator
    cfg = run.gan_config()
    weights = run.preferred_weights(checkpoint.name)
    generator = keras.saving.load_model(checkpoint.generator_file(weights), compile=False)
    source = gan_edge_source(generator, cfg, checkpoint.generator_file(weights))
    lo, hi = cfg.output_range
    info = {"name": checkpoint.name, "weights": weights, "step": checkpoint.step,
            "epoch": checkpoint.epoch}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fold in (True, False):
            onnx.save(rewrite(source.build(), fold=fold),
                      str(Path(tmp) / f"fp32-{fold}.onnx"))
        for precision, fold, float_output in VARIANTS:
            log(f"{checkpoint.name}: {precision}, folded {fold}, output layer float {float_output}")
            fp32, path = Path(tmp) / f"fp32-{fold}.onnx", Path(tmp) / "file.onnx"
            if precision == "fp16":
                convert_fp16(fp32, path)
            else:
                quantize_int8(fp32, path, source.spec, float_output_layer=float_output)
            # What the runtime reads
            write_metadata(path, metadata(source.spec, precision, checkpoint=info))
            gen = Generator.from_file(path)
            diffs = np.concatenate(list(differences(path, gen, source.predict,
                                                    source.spec).values()))
            row = {"precision": precision, "folded": fold, "float_output_layer": float_output,
                   "bytes": path.stat().st_size,
                   "tail": float(np.quantile(diffs, TAIL[precision])) / (hi - lo),
                   "tail_share": TAIL[precision], "tail_bound": MAX_ABS[precision],
                   "worst": float(diffs.max()) / (hi - lo), "mean": float(diffs.mean()) / (hi - lo),
                   "mean_bound": MEAN_ABS[precision]}
            if cfg.conditional:
                by_label = label_differences(gen, source.predict, source.spec)
                means = [float(by_label[k].mean()) / (hi - lo) for k in range(cfg.n_classes)]
                row.update(worst_label=int(np.argmax(means)), worst_label_mean=max(means))
            row["passes"] = bool(row["tail"] <= row["tail_bound"] and row["mean"] <= row[
                "mean_bound"] and row.get("worst_label_mean", 0) <= row["mean_bound"])
            rows.append(row)
    return rows


def markdown(r: dict) -> str:
    from export.validate import BATCHES, MAX_ABS, MEAN_ABS, TAIL
    batches = f"{', '.join(map(str, BATCHES[:-1]))} and {BATCHES[-1]}"

    def bounds(precision: str) -> str:
        tail = "worst value" if TAIL[precision] == 1.0 else f"{TAIL[precision] * 100:g}th percentile"
        return f"{precision} {tail} {MAX_ABS[precision]:g} and mean {MEAN_ABS[precision]:g}"
    lines = [f"# Rounding error of the int8 and fp16 files of `{r['arch']}`", "",
             f"Made by `{r['command']}` on {r['date']} ({r['machine']}); checkpoint "
             f"{r['checkpoint']} ({r['weights']} weights).", "",
             "Differences from Keras as fractions of the output range, on the export's "
             f"validation latents (batches of {batches}); the worst label's mean on its 16 "
             f"latents per label. Bounds (export/validate.py): {bounds('int8')} (for the whole "
             f"file and for every label); {bounds('fp16')}. folded: batch normalisation folded "
             "into the layer before it; float output layer: the last Conv or MatMul and what "
             "follows it computed in float in the int8 file. The first row of each precision is "
             "what the export makes. The int8 kernels are the CPU's, so the figures hold for "
             "this machine.", "",
             *table_head("precision", "folded", "float output layer", "bytes", "99.9th pct",
                         "worst", "mean", "worst label (mean)", "within the bounds")]
    for row in r["rows"]:
        label = (f"{row['worst_label']} ({row['worst_label_mean']:.4f})"
                 if "worst_label" in row else "-")
        float_output = {None: "-", True: "yes", False: "no"}[row["float_output_layer"]]
        lines.append(f"| {row['precision']} | {'yes' if row['folded'] else 'no'} | "
                     f"{float_output} | {row['bytes']:,} | {row['tail']:.4f} | "
                     f"{row['worst']:.4f} | {row['mean']:.4f} | {label} | "
                     f"{'yes' if row['passes'] else 'no'} |")
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The run whose checkpoint to export.")
@click.option("--checkpoint", "name", required=True, help="The checkpoint's name, e.g. epoch_010.")
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False))
def main(run_dir, name, out_dir):
    """Compare the int8 and fp16 files with and without the export's rounding choices."""
    from training.rundir import RunDir
    run = RunDir(run_dir)
    checkpoint = run.checkpoint(name)
    arch = run.gan_config().name
    check_writable_dir(out_dir, "--out")  # before the minutes of work, not after them
    rows = measure(run, checkpoint, log=lambda m: click.echo(m, err=True))
    report = {"arch": arch, "checkpoint": name, "weights": run.preferred_weights(name),
              "date": time.strftime("%Y-%m-%d"), "machine": cpu_text(avx512=True),
              "command": f"python -m benchmarks.int8_layers --run RUN_DIR --checkpoint {name}",
              "rows": rows}
    click.echo(str(write_report(Path(out_dir), f"int8-layers-{arch}", report, markdown(report))))


if __name__ == "__main__":
    run_cli(main)
