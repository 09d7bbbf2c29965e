"""ganexport: pick a generator checkpoint, export it to validated ONNX files."""
from __future__ import annotations

import json
from pathlib import Path

import click

from export.convert import OPSET
from runtime.core.artifacts import MANIFEST_FILE, generator_file
from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.files import check_writable_dir, hold_folder
from runtime.core.precision import PRECISIONS, parse_precisions
from runtime.core.scores import read_scores


def validate_only(path: Path, checkpoint: Path | None, quality_samples: int, data_dir=None) -> dict:
    """Validate one existing file against its source checkpoint (from manifest.json beside it)."""
    import keras

    from export.validate import validate
    from runtime.generator import Generator
    from training.rundir import RunDir
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
            checkpoint = manifest.parent / json.loads(manifest.read_text())["checkpoint"]
        except (ValueError, KeyError, TypeError):
            raise GanEdgeError(f"{manifest} is corrupt (no readable checkpoint); pass "
                               f"--checkpoint-dir, or export again") from None
    run = RunDir.of_checkpoint(checkpoint)
    weights = gen.info.metadata.get("gan.weights", "raw")
    found = run.checkpoint(checkpoint.resolve().name)
    if weights not in found.weights():
        raise GanEdgeError(f"{checkpoint} holds no {weights} generator to validate {path} "
                           f"against; pass its checkpoint folder with --checkpoint-dir")
    generator = keras.saving.load_model(found.generator_file(weights), compile=False)
    return validate(path, generator, run.gan_config(), gen.info.precision, quality_samples,
                    data_dir=data_dir or run.data_dir())


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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--run", "run_dir", type=click.Path(file_okay=False),
              help="Run folder [default: the newest under runs/].")
@checkpoint_options
@click.option("--precision", default=",".join(PRECISIONS), show_default=True,
              help="Comma-separated: fp32, int8 (CPU), fp16 (GPU).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output folder [default: <run>/export].")
@click.option("--opset", default=OPSET, show_default=True, type=click.IntRange(13, 21),
              help="ONNX opset; below 18 the DCGAN's last layer is not rewritten (no Col2Im).")
@click.option("--quality-samples", default=2000, show_default=True, type=click.IntRange(100, 100_000),
              help="Samples scored to check that int8/fp16 keep fp32's quality.")
@click.option("--validate", "validate_file", type=click.Path(dir_okay=False),
              help="Only validate this exported file against its checkpoint.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False),
              help="With --validate: the checkpoint folder the file came from.")
@click.option("--weights", type=click.Choice(["auto", "raw", "ema"]), default="auto",
              show_default=True,
              help="The trained generator (raw), the averaged one (ema), or auto: the one the "
                   "best-checkpoint rule prefers at that checkpoint.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False),
              help="Data set whose test split the quality check uses [default: the run's own, "
                   "else the standard data set].")
@click.option("--web", "web_dir", type=click.Path(file_okay=False),
              help="Also write a static web page that generates with the exported files in the "
                   "browser (onnxruntime-web; needs npm to build).")
def main(run_dir, epoch, step, best, precision, out_dir, opset, quality_samples, validate_file,
         checkpoint_dir, weights, data_dir, web_dir):
    """Export a generator checkpoint to ONNX (fp32, int8, fp16), validated against Keras.

    Without --epoch/--step/--best the newest evaluation checkpoint is used.
    """
    if validate_file:
        report = validate_only(Path(validate_file),
                               Path(checkpoint_dir) if checkpoint_dir else None, quality_samples,
                               data_dir)
        click.echo(json.dumps(report, indent=2))
        return
    precisions = parse_precisions(precision)
    from training.rundir import RunDir
    run = RunDir(run_dir) if run_dir else RunDir.newest()
    if not run.path.is_dir():
        raise GanEdgeError(f"run folder {run} does not exist")
    checkpoint = run.find_checkpoint(epoch, step, best).path
    out = Path(out_dir) if out_dir else run.export_dir
    check_writable_dir(out, "--out")
    click.get_current_context().with_resource(hold_folder(out, "--out", "export"))
    if web_dir is not None:
        from export.web import DEFAULT_PRECISIONS, check_site_dir
        # The page's usual files (int8 for WebAssembly, fp16 for WebGPU) of those exported.
        web_precisions = [p for p in DEFAULT_PRECISIONS if p in precisions] or precisions
        check_site_dir(Path(web_dir))  # before the export's minutes, not after
    click.echo(f"exporting {checkpoint}", err=True)
    from export.exporter import export_checkpoint
    manifest = export_checkpoint(checkpoint, out, precisions, opset, quality_samples,
                                 progress=lambda msg: click.echo(msg, err=True), data_dir=data_dir,
                                 weights=weights)
    click.echo(str(out / MANIFEST_FILE))
    click.echo(f"  {manifest['checkpoint_name']}, {manifest['weights']} weights", err=True)
    for f in manifest["files"]:
        score = read_scores(f["quality"]).headline()
        worst = max(v for k, v in f["parity"].items() if k.startswith("max_abs_batch_"))
        click.echo(f"  {f['file']}: {f['bytes'] / 1e6:.2f} MB, |diff| vs Keras: max {worst:.2g}, "
                   f"mean {f['parity']['mean_abs']:.2g}; {score}", err=True)
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
