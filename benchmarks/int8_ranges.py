"""python -m benchmarks.int8_ranges: how the int8 file's activation ranges are calibrated, measured.

For each chosen checkpoint of a run, builds the generator's int8 file twice, with each
activation's range set from everything calibration saw ("minmax") and with its 0.001 % most
extreme values dropped ("percentile", what the export uses), and measures both the way the
export's validation does: differences from Keras on its seeded latents (worst value, 99.9th
percentile, mean, as fractions of the output range) and quality on its 2,000 shared latents
against the Keras generator's own. Writes benchmarks/results/int8-ranges-<arch>.json and .md.

    python -m benchmarks.int8_ranges --run RUN_DIR --checkpoints epoch_040,epoch_060,epoch_074
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
from runtime.core.samples import POINT
from runtime.core.scores import Scores, figure

RANGES = ("minmax", "percentile")
QUALITY_SAMPLES = 2000  # the export's own


def measure_checkpoint(run, checkpoint, log=print) -> dict:
    """Keras's quality, then each calibration's parity and quality, for one checkpoint."""
    import keras

    from export.exporter import build_file, metadata, write_metadata
    from export.sources import gan_edge_source
    from export.validate import differences, reference_quality
    from runtime.generator import Generator
    from training.evaluate import generate, score_samples
    cfg, data_dir = run.gan_config(), run.data_dir()
    weights = run.preferred_weights(checkpoint.name)
    generator = keras.saving.load_model(checkpoint.generator_file(weights), compile=False)
    source = gan_edge_source(generator, cfg, checkpoint.generator_file(weights), 17, data_dir)
    lo, hi = cfg.output_range
    keras_quality = reference_quality(source, QUALITY_SAMPLES)
    row = {"checkpoint": checkpoint.name, "weights": weights, "keras": _figures(keras_quality)}
    for ranges in RANGES:
        log(f"{checkpoint.name}: int8 with {ranges} ranges")
        with tempfile.TemporaryDirectory() as tmp:
            path = build_file("int8", source.model, source.spec, Path(tmp), int8_ranges=ranges)
            # What the runtime reads to run it; a temp file, so no provenance beyond that.
            write_metadata(path, metadata(source.spec, "int8", checkpoint={
                "name": checkpoint.name, "weights": weights, "step": checkpoint.step,
                "epoch": checkpoint.epoch}))
            gen = Generator.from_file(path)
            diffs = np.concatenate(list(differences(path, gen, source.predict,
                                                    source.spec).values())) / (hi - lo)
            quality = score_samples(cfg, generate(gen.run, cfg, QUALITY_SAMPLES, 500), data_dir)
        row[ranges] = {"worst": float(diffs.max()), "p99_9": float(np.quantile(diffs, 0.999)),
                       "mean": float(diffs.mean()), **_figures(quality)}
    return row


def _figures(scores: Scores) -> dict:
    """The figures the report keeps: the energy distance, or the classifier score and Frechet
    distance."""
    keys = ("energy_distance",) if scores.kind == POINT else ("classifier_score",
                                                             "frechet_distance")
    return {k: getattr(scores, k) for k in keys}


def _quality_cell(figures: dict, kind: str) -> str:
    """The figures a row keeps, a digit finer than elsewhere: the two calibrations differ by
    hundredths."""
    if kind == POINT:
        return figure("energy_distance", figures["energy_distance"])
    fd = figures["frechet_distance"]
    return f"{figures['classifier_score']:.3f} / {'n/a' if fd is None else f'{fd:.2f}'}"


def markdown(r: dict) -> str:
    from training.config import get_config
    kind = get_config(r["arch"]).kind
    quality = "energy distance" if kind == POINT else "classifier score / Frechet distance"
    lines = [f"# int8 activation ranges on `{r['arch']}`", "",
             f"Made by `{r['command']}` on {r['date']} ({r['machine']}).", "",
             "Differences from Keras as fractions of the output range, on the export's "
             "validation latents (batches of 1, 7 and 64); quality "
             f"({quality}) on its {QUALITY_SAMPLES:,} shared latents. minmax: each activation's "
             "range is everything calibration saw; percentile: its 0.001 % most extreme values "
             "dropped (what the export uses). The int8 kernels are the CPU's, so the figures "
             "hold for this machine.", "",
             *table_head("checkpoint", "Keras", "ranges", "worst", "99.9th percentile", "mean",
                         "int8 quality")]
    for row in r["rows"]:
        for ranges in RANGES:
            m = row[ranges]
            first = (f"{row['checkpoint']}, {row['weights']}", _quality_cell(row["keras"], kind)) \
                if ranges == RANGES[0] else ("", "")
            lines.append(f"| {first[0]} | {first[1]} | {ranges} | {m['worst']:.3f} | "
                         f"{m['p99_9']:.3f} | {m['mean']:.4f} | {_quality_cell(m, kind)} |")
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The run whose checkpoints to quantize.")
@click.option("--checkpoints", "names", required=True,
              help="Comma-separated names of the checkpoints to measure, e.g. "
                   "epoch_040,epoch_074.")
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False))
def main(run_dir, names, out_dir):
    """Compare minmax and percentile activation ranges of the int8 file on a run's checkpoints."""
    from training.rundir import RunDir
    run = RunDir(run_dir)
    checkpoints = [run.checkpoint(name.strip()) for name in names.split(",")]  # all, up front
    arch = run.gan_config().name
    check_writable_dir(out_dir, "--out")  # before the minutes of work, not after them
    rows = [measure_checkpoint(run, c, log=lambda m: click.echo(m, err=True))
            for c in checkpoints]
    report = {"arch": arch, "date": time.strftime("%Y-%m-%d"), "machine": cpu_text(avx512=True),
              "command": f"python -m benchmarks.int8_ranges --run RUN_DIR --checkpoints {names}",
              "rows": rows}
    click.echo(str(write_report(Path(out_dir), f"int8-ranges-{arch}", report, markdown(report))))


if __name__ == "__main__":
    run_cli(main)
