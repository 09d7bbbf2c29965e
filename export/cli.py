"""ganexport: export a generator to validated ONNX files, from a gan-edge run, a Keras 3 file or
an ONNX file (export/sources.py)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import click

from export.convert import OPSET
from export.quantize import CALIBRATION_SAMPLES
from runtime.core.artifacts import MANIFEST_FILE, generator_file
from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.files import check_writable_dir, hold_folder
from runtime.core.precision import PRECISIONS, parse_precisions
from runtime.core.scores import read_scores
from runtime.core.spec import PRIORS

DATASETS = ("mnist", "fashion_mnist")  # those gan-edge's classifiers score (training/classifier.py)


def validate_only(path: Path, checkpoint: Path | None, quality_samples: int, data_dir=None) -> dict:
    """Validate one existing file of a run's export against its source checkpoint (from
    manifest.json beside it, or `checkpoint`)."""
    from export.sources import run_source
    from export.validate import validate
    from runtime.generator import Generator
    if not path.is_file():
        raise GanEdgeError(f"{path} does not exist")
    gen = Generator.from_file(path)
    if checkpoint is None:
        manifest = path.parent / MANIFEST_FILE
        if not manifest.is_file():
            raise GanEdgeError(f"no {MANIFEST_FILE} beside {path} to find its checkpoint; pass "
                               f"--checkpoint-dir")
        # Relative to the manifest's folder (absolute in manifests of older versions).
        try:
            found = json.loads(manifest.read_text())
            if found.get("source", "run") != "run":
                raise GanEdgeError(f"{path} was exported from a {found['source']} file, "
                                   f"{found.get('source_path')}; pass it with --{found['source']} "
                                   f"FILE and the export's other flags")
            checkpoint = manifest.parent / found["checkpoint"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise GanEdgeError(f"{manifest} is corrupt (no readable checkpoint); pass "
                               f"--checkpoint-dir, or export again") from None
    source = run_source(checkpoint, gen.info.metadata.get("gan.weights", "raw"), data_dir,
                        discriminator=False)
    return validate(path, source, gen.info.precision, quality_samples)


def checkpoint_options(command):
    """--epoch, --step, --best: which checkpoint of the run to export (RunDir.find_checkpoint)."""
    for option in reversed((
            click.option("--epoch", type=int, help="Export checkpoints/epoch_NNN (after N epochs)."),
            click.option("--step", type=int,
                         help="Export checkpoints/step_NNNNNN (iteration schedules)."),
            click.option("--best", is_flag=True,
                         help="Export the checkpoint the quality metrics rank best."))):
        command = option(command)
    return command


def sampling_options(command):
    """--quality-samples, --calibration-samples: how much validation scores, how much int8
    calibration sees (ganexport and export.ship)."""
    command = click.option(
        "--calibration-samples", default=CALIBRATION_SAMPLES, show_default=True,
        type=click.IntRange(16, 100_000),
        help="Seeded latents from the prior that set the int8 file's activation ranges.")(command)
    return click.option(
        "--quality-samples", default=2000, show_default=True, type=click.IntRange(100, 100_000),
        help="Samples scored to check that each file keeps its source's quality.")(command)


def _output_range(ctx, param, value):
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise click.BadParameter(f"{value!r} is not LO,HI with LO < HI (e.g. -1,1 or 0,1)")
    return lo, hi


def _classes(ctx, param, value):
    """Comma-separated names, or a count N for the names 0 .. N-1."""
    if value is None:
        return None
    if value.strip().isdigit():
        return tuple(str(k) for k in range(int(value)))
    names = tuple(n.strip() for n in value.split(","))
    if len(names) < 2 or not all(names) or len(set(names)) != len(names):
        raise click.BadParameter(f"{value!r} is not two or more distinct comma-separated names "
                                 f"(or a count)")
    return names


# Options that only one kind of source takes, with the value each has when not given.
RUN_ONLY = {"epoch": None, "step": None, "best": False, "weights": "auto", "checkpoint_dir": None}
FILE_ONLY = {"name": None, "output_range": None, "classes": None, "latent_prior": "normal",
             "layout": None, "dataset": None, "discriminator": None}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--run", "run_dir", type=click.Path(file_okay=False),
              help="Source: a gan-edge run folder [default: the newest under runs/].")
@click.option("--keras", "keras_file", type=click.Path(dir_okay=False),
              help="Source: a Keras 3 generator saved as .keras (loaded in Keras's safe mode).")
@click.option("--onnx", "onnx_file", type=click.Path(dir_okay=False),
              help="Source: a generator exported to ONNX elsewhere, e.g. by torch.onnx.export.")
@checkpoint_options
@click.option("--weights", type=click.Choice(["auto", "raw", "ema"]), default="auto",
              show_default=True,
              help="--run: the trained generator (raw), the averaged one (ema), or auto: the one "
                   "the best-checkpoint rule prefers at that checkpoint.")
@click.option("--name", help="--keras/--onnx: the model's name in its files [default: the "
                             "file's name without suffix].")
@click.option("--output-range", callback=_output_range, metavar="LO,HI",
              help="--keras/--onnx: the range of the samples, e.g. -1,1; needed where the graph "
                   "does not end in tanh or sigmoid.")
@click.option("--classes", callback=_classes, metavar="NAMES",
              help="--keras/--onnx, conditional generators: the class names in label order, "
                   "comma-separated, or their count N for 0..N-1.")
@click.option("--latent-prior", type=click.Choice(PRIORS), default="normal", show_default=True,
              help="--keras/--onnx: the latents it was trained on, N(0, 1) or U(-1, 1).")
@click.option("--layout", type=click.Choice(["nchw", "nhwc"]),
              help="--onnx: the output's layout, where the graph leaves it open "
                   "[default: read from where the 1 or 3 channels are].")
@click.option("--dataset", type=click.Choice(DATASETS),
              help="--keras/--onnx, 28x28x1 samples: the data set it was trained on, to score "
                   "quality with gan-edge's classifier [default: quality not scored].")
@click.option("--discriminator", type=click.Path(dir_okay=False),
              help="--keras/--onnx: its discriminator (.keras or .onnx), exported beside it "
                   "for ganrun --keep.")
@click.option("--precision", default=",".join(PRECISIONS), show_default=True,
              help="Comma-separated: fp32, int8 (CPU), fp16 (GPU).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output folder [default: <run>/export, or <FILE without suffix>-export beside "
                   "a --keras/--onnx file].")
@click.option("--opset", type=click.IntRange(13, 21),
              help=f"ONNX opset of --run and --keras files [default: {OPSET}]; below 18 a "
                   f"single-channel last layer is not rewritten (no Col2Im). An --onnx file "
                   f"keeps its own.")
@sampling_options
@click.option("--validate", "validate_file", type=click.Path(dir_okay=False),
              help="Only validate this exported file against its source: a run's checkpoint "
                   "(from the manifest beside it), or --keras/--onnx FILE with the export's "
                   "flags.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False),
              help="With --validate: the checkpoint folder the file came from.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False),
              help="Data set whose test split the quality check uses [default: the run's own, "
                   "else the standard data set].")
@click.option("--web", "web_dir", type=click.Path(file_okay=False),
              help="Also write a static web page that generates with the exported files in the "
                   "browser (onnxruntime-web; needs npm to build).")
def main(run_dir, keras_file, onnx_file, epoch, step, best, weights, name, output_range, classes,
         latent_prior, layout, dataset, discriminator, precision, out_dir, opset, quality_samples,
         calibration_samples, validate_file, checkpoint_dir, data_dir, web_dir):
    """Export a generator to ONNX (fp32, int8, fp16), each file validated against its source.

    The source is a gan-edge run (--run; without --epoch/--step/--best its newest evaluation
    checkpoint), a Keras 3 file (--keras) or an ONNX file (--onnx). Every file takes z
    [batch, L] (and label [batch] where conditional) and gives sample [batch, H, W, C]
    channels last, whatever the source's layout. What a file's graph cannot tell comes from
    the flags marked --keras/--onnx; a missing one is an error that names it.
    """
    given = click.get_current_context().params
    chosen = [flag for flag, value in (("--run", run_dir), ("--keras", keras_file),
                                       ("--onnx", onnx_file)) if value is not None]
    if len(chosen) > 1:
        raise GanEdgeError(f"pass one source, not {' and '.join(chosen)}")
    kind = chosen[0][2:] if chosen else "run"
    own, others = (RUN_ONLY, FILE_ONLY) if kind == "run" else (FILE_ONLY, RUN_ONLY)
    stray = [key for key, default in others.items() if given[key] != default]
    if kind == "keras" and layout is not None:
        stray.append("layout")
    if kind == "onnx" and opset is not None:
        raise GanEdgeError("--opset applies to --run and --keras; an --onnx file keeps its own "
                           "opset")
    if stray:
        flags = ", ".join("--" + key.replace("_", "-") for key in stray)
        raise GanEdgeError(f"{flags} cannot be used with --{kind}; see ganexport --help")
    opset = opset or OPSET

    if validate_file and kind == "run":
        report = validate_only(Path(validate_file),
                               Path(checkpoint_dir) if checkpoint_dir else None, quality_samples,
                               data_dir)
        click.echo(json.dumps(report, indent=2))
        return
    precisions = parse_precisions(precision)
    if kind == "run":
        from training.rundir import RunDir
        run = RunDir(run_dir) if run_dir else RunDir.newest()
        if not run.path.is_dir():
            raise GanEdgeError(f"run folder {run} does not exist")
        checkpoint = run.find_checkpoint(epoch, step, best).path
        out = Path(out_dir) if out_dir else run.export_dir
    else:
        file = Path(keras_file or onnx_file)
        out = Path(out_dir) if out_dir else file.parent / f"{file.stem}-export"
    if web_dir is not None:
        from export.web import DEFAULT_PRECISIONS, check_site_dir
        # The page's usual files (int8 for WebAssembly, fp16 for WebGPU) of those exported.
        web_precisions = [p for p in DEFAULT_PRECISIONS if p in precisions] or precisions
        check_site_dir(Path(web_dir))  # before the export's minutes, not after

    from export import sources
    if kind == "run":
        check_writable_dir(out, "--out")  # before the run's models are loaded
        click.get_current_context().with_resource(hold_folder(out, "--out", "export"))
        click.echo(f"exporting {checkpoint}", err=True)
        source = sources.run_source(checkpoint, weights, data_dir, opset)
    else:
        flags = sources.Flags(name, output_range, classes, latent_prior, layout, dataset,
                              Path(discriminator) if discriminator else None)
        click.echo(f"reading {file}", err=True)
        # Read (and refused, where it must be) before anything is written.
        source = (sources.keras_source(file, flags, opset, data_dir) if kind == "keras"
                  else sources.onnx_source(file, flags, data_dir))
        if not validate_file:
            check_writable_dir(out, "--out")
            click.get_current_context().with_resource(hold_folder(out, "--out", "export"))
    if validate_file:
        from export.validate import validate
        from runtime.generator import Generator
        path = Path(validate_file)
        if not path.is_file():
            raise GanEdgeError(f"{path} does not exist")
        report = validate(path, source, Generator.from_file(path).info.precision, quality_samples)
        click.echo(json.dumps(report, indent=2))
        return

    from export.exporter import export_source
    manifest = export_source(source, out, precisions, quality_samples,
                             progress=lambda msg: click.echo(msg, err=True),
                             calibration=calibration_samples)
    click.echo(str(out / MANIFEST_FILE))
    if source.checkpoint is not None:
        click.echo(f"  {manifest['checkpoint_name']}, {manifest['weights']} weights", err=True)
    else:
        click.echo(f"  {source.file.name} (SHA-256 {source.sha256[:12]}...), "
                   f"{source.spec.describe()}", err=True)
    for f in manifest["files"]:
        scores = read_scores(f["quality"])
        score = scores.headline() if scores is not None else "quality not scored"
        worst = max(v for k, v in f["parity"].items() if k.startswith("max_abs_batch_"))
        click.echo(f"  {f['file']}: {f['bytes'] / 1e6:.2f} MB, |diff| vs source: max "
                   f"{worst:.2g}, mean {f['parity']['mean_abs']:.2g}; {score}", err=True)
    if web_dir is not None:
        from export.web import build_site
        files = {p: out / generator_file(p) for p in web_precisions}
        site = build_site(files, Path(web_dir), manifest["arch"])
        click.echo(f"  web page: {Path(web_dir) / 'index.html'} "
                   f"({site['folder_bytes'] / 1e6:.1f} MB; serve it with python -m http.server "
                   f"-d {web_dir})", err=True)


def entry() -> None:
    run_cli(main)


if __name__ == "__main__":
    entry()
