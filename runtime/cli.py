"""ganrun: generate samples from an exported generator (the embedded default or --model)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from runtime.cli_util import run_cli
from runtime.errors import GanEdgeError
from runtime.precision import PRECISIONS

MAX_N = 100_000


def _check_out(out: Path, is_1d: bool) -> str:
    """The output format for `out`, or a one-line error before any work is done."""
    from runtime.images import pillow_format
    suffix = out.suffix.lower()
    if suffix == ".csv":
        if not is_1d:
            raise GanEdgeError("CSV output is for gan-1d models; use an image extension such as .png")
        fmt = "CSV"
    else:
        fmt = pillow_format(suffix)
        if fmt is None:
            raise GanEdgeError(f"cannot write {suffix or 'files without an extension'}; use .png "
                               f"(or another Pillow format{', or .csv' if is_1d else ''})")
    if not out.parent.is_dir():
        raise GanEdgeError(f"folder {out.parent} does not exist; create it first")
    return fmt


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--n", "n", default=25, show_default=True, type=int, help="How many samples.")
@click.option("--out", type=click.Path(dir_okay=False), default="grid.png", show_default=True,
              help="Grid image (or scatter / .csv for gan-1d models).")
@click.option("--out-dir", type=click.Path(file_okay=False),
              help="Also write one PNG per sample into this folder.")
@click.option("--model", type=click.Path(dir_okay=False),
              help="An ONNX file from ganexport [default: the embedded generator].")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--cols", type=int, help="Grid columns [default: square-ish].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--precision", type=click.Choice(["auto", *PRECISIONS]), default="auto",
              show_default=True, help="Which embedded file: auto = int8 on CPU, fp16 on GPU.")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(min=0),
              help="CPU threads for onnxruntime (0 = one per core).")
@click.option("--batch", default=256, show_default=True, type=click.IntRange(1, 65536),
              help="Samples per onnxruntime call; memory stays bounded for any --n.")
@click.option("--quiet", is_flag=True, help="Print only the output path.")
def main(n, out, out_dir, model, seed, cols, device, precision, threads, batch, quiet):
    """Generate samples from a gan-edge ONNX generator into a PNG grid."""
    from runtime.generator import Generator, choose_device, default_model_path
    from runtime.render import render

    if not 1 <= n <= MAX_N:
        raise GanEdgeError(f"--n must be between 1 and {MAX_N:,}, got {n}")
    if cols is not None and cols < 1:
        raise GanEdgeError(f"--cols must be positive, got {cols}")
    if model is not None and precision != "auto":
        raise GanEdgeError("--precision picks among the embedded files; with --model, choose the "
                           "file itself")
    chosen = choose_device(device)
    if model is None:
        model = default_model_path(precision, chosen.gpu)
    gen = Generator.from_file(model, device=chosen, threads=threads)
    out = Path(out)
    fmt = _check_out(out, gen.info.sample_shape == (2,))
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    if not quiet:
        click.echo(f"{Path(model).name}: {gen.info.arch}, {gen.info.precision}; "
                   f"{gen.device.note}", err=True)
    render(gen, n, seed, batch, out, fmt, cols, Path(out_dir) if out_dir else None)
    click.echo(str(out))


def entry() -> None:
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    entry()
