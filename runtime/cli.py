"""ganrun: generate samples from an exported generator (the embedded default or --model)."""
from __future__ import annotations

from pathlib import Path

import click

from runtime.core.artifacts import LABELS_FILE, is_out_dir_file, sample_file
from runtime.core.batch import DEFAULT_BATCH_TEXT
from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.precision import PRECISIONS
from runtime.core.samples import POINT, kind_of

MAX_N = 100_000
MAX_WALK_N = 400     # tiles per animated frame
MAX_WALK_STEPS = 100
MAX_CHOSEN_N = 10_000  # samples chosen (by class, by discriminator) are held in memory
# --class on an unconditional model without --min-confidence: the smallest confidence floor at
# which a second classifier, one that ganrun does not use, agrees with the choice on 97 % of the
# default model's samples (picked by benchmarks/knobs.py, recorded in its knobs.json; a test holds
# the two equal).
CLASS_MIN_CONFIDENCE = 0.9


def _earlier_samples(out_dir: Path) -> list[Path]:
    """The files of an earlier --out-dir run in `out_dir` (samples and labels.csv)."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir() if is_out_dir_file(p.name))


MAX_SIDE = 65_500          # pixels per side: JPEG's limit, the smallest of the usual formats
MAX_PIXELS = 1 << 28       # a gray grid of 256 M pixels is already far more than anyone looks at;
#                            a colour grid gets a third of them (the same bytes)
MAX_WALK_BYTES = 1 << 30   # a walk's frames, held until the GIF is written (a byte per pixel)


def _check_out(out: Path, sample_shape: tuple[int, ...], walk: int | None,
               out_dir: str | None) -> str:
    """The output format for `out`, or a one-line error before any work is done."""
    from runtime.core.files import check_target
    from runtime.core.images import pillow_format
    check_target(out)
    is_1d = kind_of(sample_shape) == POINT
    if out_dir is not None and out.resolve().parent == Path(out_dir).resolve() and \
            is_out_dir_file(out.name):
        raise GanEdgeError(f"--out {out} would be overwritten by --out-dir's own files "
                           f"(sample_NNNNNN.png, labels.csv); name it otherwise or put it elsewhere")
    suffix = out.suffix.lower()
    if walk is not None:
        if is_1d:
            raise GanEdgeError("--walk animates image grids; gan-1d models draw a scatter or CSV")
        if suffix != ".gif":
            raise GanEdgeError(f"--walk writes an animated GIF; name --out *.gif, not {out.name}")
    elif suffix == ".gif":
        raise GanEdgeError("a .gif is written only for --walk K (an animation); use .png for a "
                           "grid")
    if suffix == ".csv":
        if not is_1d:
            raise GanEdgeError("CSV output is for gan-1d models; use an image extension such as .png")
        fmt = "CSV"
    else:
        fmt = pillow_format(suffix)
        mode = "RGB" if is_1d or sample_shape[-1] == 3 else "L"  # a scatter is drawn in colour
        if fmt is None or not _can_write(fmt, mode):
            raise GanEdgeError(f"cannot write {suffix or 'files without an extension'}"
                               f"{' images' if fmt else ''}; use .png (or another Pillow format"
                               f"{', or .csv' if is_1d else ''})")
    if not out.parent.is_dir():
        raise GanEdgeError(f"folder {out.parent} does not exist; create it first")
    return fmt


def _can_write(fmt: str, mode: str) -> bool:
    """Whether Pillow can write a `mode` image as `fmt` (it lists formats, such as XBM or GRIB,
    that refuse grayscale): tried on a 1x1 image before anything is generated."""
    if fmt == "PNG":
        return True
    import io

    from PIL import Image
    try:
        Image.new(mode, (1, 1)).save(io.BytesIO(), format=fmt)
        return True
    except Exception:  # Pillow raises OSError, KeyError or ValueError here, by format
        return False


def _check_grid_size(n: int, cols: int | None, sample_shape: tuple[int, ...],
                     walk: int | None) -> None:
    """Refuse a grid that no image format can hold, too large to allocate, or a walk whose
    frames are, up front. The bounds are in pixels and bytes, so larger tiles allow fewer."""
    import math

    from runtime.core.images import pixel_shape, view_scale
    if kind_of(sample_shape) == POINT:
        return
    shape = pixel_shape(sample_shape)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    height, width = rows * (shape[0] + 2) + 2, cols * (shape[1] + 2) + 2
    tiles = f"{n} samples of {shape[1]} x {shape[0]}"
    most = MAX_PIXELS // (3 if len(shape) == 3 else 1)
    if max(height, width) > MAX_SIDE or height * width > most:
        raise GanEdgeError(f"a grid of {tiles} in {cols} columns is {width} x {height} pixels, "
                           f"above {MAX_SIDE:,} per side or {most:,} in all; choose --cols "
                           f"nearer the square root of --n, or fewer samples (--n)")
    if walk is not None:
        from runtime.walk import FRAMES_PER_STEP
        frame = height * width * view_scale(width) ** 2
        if walk * FRAMES_PER_STEP * frame > MAX_WALK_BYTES:
            raise GanEdgeError(f"a walk of {tiles} through {walk} latents is {walk * FRAMES_PER_STEP} "
                               f"frames of {width} x {height} pixels, above {MAX_WALK_BYTES >> 20:,} "
                               f"MB in all; choose fewer samples (--n) or latents (--walk)")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--n", "n", default=25, show_default=True, type=int, help="How many samples.")
@click.option("--out", type=click.Path(dir_okay=False), default="grid.png", show_default=True,
              help="Grid image (or scatter / .csv for gan-1d models).")
@click.option("--out-dir", type=click.Path(file_okay=False),
              help="Also write one PNG per sample into this folder.")
@click.option("--model",
              help="A shipped model's name (see --list) or an ONNX file from ganexport "
                   "[default: the shipped MNIST generator that scores best].")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1))
@click.option("--cols", type=click.IntRange(1, MAX_SIDE), help="Grid columns [default: square-ish].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--precision", type=click.Choice(["auto", *PRECISIONS]), default="auto",
              show_default=True, help="Which file of a shipped model: auto = int8 on CPU, fp16 "
                                      "on GPU (else what the model has).")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(0, 1024),
              help="CPU threads for onnxruntime (0 = one per core).")
@click.option("--batch", type=click.IntRange(1, 65536),
              help="Samples per onnxruntime call; memory stays bounded for any --n.  "
                   f"[default: {DEFAULT_BATCH_TEXT}]")
@click.option("--walk", type=int,
              help="Write an animated GIF in which every tile moves smoothly (spherical "
                   "interpolation) through this many seeded latents and back.")
@click.option("--class", "class_spec",
              help="Which classes: digits, or for Fashion-MNIST also names ('7', '3,5', "
                   "'Sneaker,Bag', 'all'). A conditional model generates them directly, in "
                   "equal blocks in order (--n 100 --cols 10 --class all: a row per class); an "
                   "unconditional one keeps only samples the project's classifier puts in them "
                   f"(with --min-confidence {CLASS_MIN_CONFIDENCE:g} unless given).")
@click.option("--min-confidence", type=float,
              help="Keep only samples whose class the classifier gives at least this "
                   "probability (0 to 1) [default: none; with --class on an unconditional "
                   f"model {CLASS_MIN_CONFIDENCE:g}].")
@click.option("--keep", type=float,
              help="Discriminator filtering: generate n / KEEP samples and keep the n that the "
                   "model's own discriminator finds most real (0 < KEEP <= 1).")
@click.option("--replace", is_flag=True,
              help="With --out-dir: replace the samples an earlier run left there (all of its "
                   "sample_NNNNNN.png and labels.csv); without it such a folder is refused.")
@click.option("--list", "list_models", is_flag=True, help="List the shipped models and exit.")
@click.option("--quiet", is_flag=True, help="Print only the output path (no progress).")
def main(n, out, out_dir, model, seed, cols, device, precision, threads, batch, walk, class_spec,
         min_confidence, keep, replace, list_models, quiet):
    """Generate samples from a gan-edge ONNX generator into a PNG grid."""
    from runtime import shipped
    from runtime.generator import Generator, choose_device
    from runtime.render import render

    if list_models:
        click.echo("\n".join(shipped.listing()))
        return

    if not 1 <= n <= MAX_N:
        raise GanEdgeError(f"--n must be between 1 and {MAX_N:,}, got {n}")
    if walk is not None:
        if not 2 <= walk <= MAX_WALK_STEPS:
            raise GanEdgeError(f"--walk must be between 2 and {MAX_WALK_STEPS} latents, got {walk}")
        if n > MAX_WALK_N:
            raise GanEdgeError(f"--walk animates at most {MAX_WALK_N} tiles (--n), got {n}")
        if out_dir is not None:
            raise GanEdgeError("--out-dir writes single samples; it does not combine with --walk")
    if min_confidence is not None and not 0 <= min_confidence <= 1:
        raise GanEdgeError(f"--min-confidence is a probability in [0, 1], got {min_confidence}")
    if replace and out_dir is None:
        raise GanEdgeError("--replace replaces the samples in --out-dir; pass --out-dir too")
    if keep is not None:
        from runtime.discriminator import check_keep
        if min_confidence is not None or walk is not None:
            raise GanEdgeError("--keep filters a grid's samples by the discriminator; it does not "
                               "combine with --min-confidence or --walk")
        if n > MAX_CHOSEN_N:
            raise GanEdgeError(f"--keep chooses at most {MAX_CHOSEN_N:,} samples (--n), got {n}")
        check_keep(keep, n)
    named = model is None or shipped.is_shipped_name(model)
    if not named and precision != "auto":
        raise GanEdgeError("--precision picks among a shipped model's files; with a file for "
                           "--model, choose the file itself")
    chosen = choose_device(device)
    dataset = None
    if named:
        entry = shipped.model_entry(model)
        model, dataset = shipped.model_file(entry, precision, chosen.gpu), entry["dataset"]
    gen = Generator.from_file(model, device=chosen, threads=threads)
    if batch is None:
        batch = gen.info.default_batch
    # A conditional generator makes the asked classes itself; an unconditional one is filtered
    # by the project's classifier, as is any model under --min-confidence.
    choosing = min_confidence is not None or (class_spec is not None and not gen.conditional)
    _check_choice(choosing, class_spec, keep, walk, n)
    out = Path(out)
    fmt = _check_out(out, gen.info.sample_shape, walk, out_dir)
    _check_grid_size(n, cols, gen.info.sample_shape, walk)
    classes = None
    if gen.conditional and class_spec is not None:
        from runtime.classify import parse_classes
        classes = parse_classes(class_spec, gen.info.class_names)
    asked = gen.labels_for(n, seed, classes)  # None for an unconditional generator
    if out_dir is not None:  # one ganrun at a time fills a folder: none mixes in its samples
        from runtime.core.files import hold_folder
        click.get_current_context().with_resource(hold_folder(out_dir, "--out-dir", "ganrun"))
    earlier = _earlier_samples(Path(out_dir)) if out_dir is not None else []
    if earlier and not replace:
        raise GanEdgeError(f"--out-dir {out_dir} holds {len(earlier)} files of an earlier run "
                           f"({earlier[0].name} ...), which new samples would mix with; add "
                           f"--replace to replace them all, or pass an empty folder")
    picked = labels = None
    if choosing:
        picked, labels = _choose(gen, dataset, class_spec, min_confidence, n, seed, batch)
    elif keep is not None:
        from runtime.discriminator import Discriminator, keep_most_real
        picked, _, asked = keep_most_real(gen, Discriminator.beside(gen), n, keep, seed, batch,
                                          classes)
    if labels is None and asked is not None:
        labels = ([gen.info.class_names[k] for k in asked], None)
    from runtime.core.files import remove_stale_temps
    left = remove_stale_temps(out.parent, target=out.name)
    if out_dir is not None:
        left += remove_stale_temps(out_dir)
    if not quiet:
        click.echo(f"{Path(model).name}: {gen.info.arch}, {gen.info.precision}; "
                   f"{gen.device.note}", err=True)
        if left:
            click.echo(f"removed {len(left)} temporary file(s) that a killed run left: "
                       f"{', '.join(str(p) for p in left[:3])}{' ...' if len(left) > 3 else ''}",
                       err=True)
    if walk is not None:
        from runtime.walk import render_walk
        render_walk(gen, n, walk, seed, out, cols, asked)
    else:
        render(gen, n, seed, batch, out, fmt, cols, Path(out_dir) if out_dir else None, picked,
               labels, asked, quiet)
    written = set() if gen.info.kind == POINT else \
        {sample_file(i) for i in range(n)} | ({LABELS_FILE} if labels else set())
    for path in earlier:  # --replace: the earlier run's files that the new ones did not replace
        if path.name not in written:
            path.unlink(missing_ok=True)
    click.echo(str(out))


def _check_choice(choosing: bool, class_spec, keep, walk, n: int) -> None:
    """Options that filter by the classifier (`choosing`) against the others, once the model
    is known: a conditional model's --class is no filter, and combines with --walk and --keep."""
    if choosing:
        if walk is not None:
            raise GanEdgeError("--class and --min-confidence choose samples for a grid; they do "
                               "not combine with --walk (a conditional model's --class does)")
        if n > MAX_CHOSEN_N:
            raise GanEdgeError(f"--class and --min-confidence choose at most {MAX_CHOSEN_N:,} "
                               f"samples (--n), got {n}")
    if keep is not None and choosing and class_spec is not None:
        raise GanEdgeError("--keep filters by the discriminator; on an unconditional model it "
                           "does not combine with --class (a conditional model's --class does)")


def _choose(gen, dataset, class_spec, min_confidence, n, seed, batch):
    """n samples chosen by the classifier, and their (class names, confidences), all found
    before anything is written."""
    import numpy as np

    from runtime.classify import Classifier, chosen_samples
    if gen.info.kind == POINT:
        raise GanEdgeError("--class and --min-confidence are for image models; gan-1d has no "
                           "classes")
    dataset = gen.info.metadata.get("gan.dataset") or dataset
    if dataset is None:
        raise GanEdgeError(f"{gen.path} does not say which data set it was trained on "
                           f"(gan.dataset); export it again with this version of ganexport")
    classifier = Classifier(dataset)
    classes = classifier.parse(class_spec) if class_spec is not None else None
    if min_confidence is None:  # only --class on an unconditional model comes here without it
        min_confidence = CLASS_MIN_CONFIDENCE
    parts = list(chosen_samples(gen, classifier, classes, min_confidence, n, seed, batch))
    samples, labels, conf = (np.concatenate(x) for x in zip(*parts))
    return samples, ([classifier.classes[i] for i in labels], conf)


def entry() -> None:
    run_cli(main)


if __name__ == "__main__":
    entry()
