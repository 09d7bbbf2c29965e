"""Where an export's generator comes from: a gan-edge run's checkpoint (`--run`), a Keras 3 file
(`--keras`) or an ONNX file (`--onnx`). Each yields a Source: the fp32 ONNX graph on the file
contract, the reference that every exported file is validated against (Keras's own call, or
onnxruntime on the source file as given), the Spec, and where it came from. Everything after
this module (rewrite, quantize, validate, metadata, manifest: export/exporter.py) is one
pipeline for all three; only here is it known which source a generator came from.

A model file is code from a stranger: `.keras` files load only in Keras's safe mode, and an
ONNX file's external data must lie in its own folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from export import adapt
from export.convert import OPSET
from runtime.core.errors import GanEdgeError
from runtime.core.files import sha256_file
from runtime.core.spec import NORMAL, Spec

SCORED_SHAPE = (28, 28, 1)  # the shape gan-edge's classifiers score (training/classifier.py)
RUN, KERAS, ONNX = "run", "keras", "onnx"


@dataclass
class SourceDiscriminator:
    """The discriminator that goes with the generator, for `ganrun --keep`."""
    file: Path
    sha256: str
    build: Callable  # () -> onnx.ModelProto: input sample [N, *shape] (+ label), output logit
    logits: Callable  # logits(samples) or logits(samples, labels): the reference, [N]


@dataclass
class Source:
    kind: str                    # RUN, KERAS or ONNX
    file: Path                   # the generator's file: a checkpoint's .keras, or the one given
    sha256: str
    spec: Spec
    predict: Callable            # predict(z) or predict(z, labels) -> samples: the reference
    build: Callable              # () -> the fp32 onnx.ModelProto on the file contract
    opset: int
    checkpoint: dict | None = None  # a run's: name, step, epoch, weights, metrics, path
    discriminator: SourceDiscriminator | None = None
    scorer: Callable | None = None  # scorer(predict, n) -> Scores, where a classifier fits
    unscored: str = ""              # else why quality is not scored, for people

    @cached_property
    def model(self):
        """The fp32 graph, made on first use: by an export, and by the validation of an fp32
        file, whose bounds follow the source's longest sums."""
        return self.build()


class Flags(NamedTuple):
    """What the graph of a --keras or --onnx source cannot tell (ganexport's flags)."""
    name: str | None = None
    output_range: tuple[float, float] | None = None
    classes: tuple[str, ...] | None = None
    latent_prior: str = NORMAL
    layout: str | None = None
    dataset: str | None = None
    discriminator: Path | None = None


# -- a gan-edge run --------------------------------------------------------------------------

def run_source(checkpoint_dir: Path, weights: str = "auto", data_dir=None, opset: int = OPSET,
               discriminator: bool = True) -> Source:
    """The generator of one checkpoint of a run: `weights` "raw", "ema" (the averaged one) or
    "auto" (the one the best-checkpoint rule prefers there), with the checkpoint's
    discriminator unless `discriminator` is False. Quality is scored against the test split of
    `data_dir`, by default the run's own data set."""
    from training.rundir import RunDir
    checkpoint_dir = Path(checkpoint_dir)
    run = RunDir.of_checkpoint(checkpoint_dir)
    cfg = run.gan_config()
    checkpoint = run.checkpoint(checkpoint_dir.resolve().name)
    if weights == "auto":
        weights = run.preferred_weights(checkpoint.name)
    if weights not in checkpoint.weights():
        raise GanEdgeError(f"{checkpoint_dir} has no {weights} generator (it has: "
                           f"{', '.join(checkpoint.weights()) or 'none'}); the averaged one exists "
                           f"only in runs trained with --ema above 0")
    file = checkpoint.generator_file(weights)
    generator = _load_checkpoint_model(file)
    if generator.count_params() != cfg.param_counts[0] and cfg.param_counts[0]:
        raise GanEdgeError(f"{file} has {generator.count_params()} parameters, not "
                           f"{cfg.name}'s {cfg.param_counts[0]}: mismatched checkpoint")
    info = {"name": checkpoint.name, "step": checkpoint.step,
            "epoch": round(checkpoint.epoch, 4), "metrics": run.metrics_for(checkpoint.name, weights),
            "weights": weights, "path": checkpoint_dir}
    source = gan_edge_source(generator, cfg, file, opset, data_dir or run.data_dir(), info)
    if discriminator:
        source.discriminator = _run_discriminator(checkpoint.discriminator_file(), source.spec,
                                                  opset)
    return source


def spec_of(cfg) -> Spec:
    """A registry system's Spec (training.config.GANConfig)."""
    from training.data import CLASS_NAMES
    names = tuple(CLASS_NAMES[cfg.dataset]) if cfg.conditional else ()
    return Spec(cfg.name, cfg.latent_dim, tuple(cfg.sample_shape), tuple(cfg.output_range),
                names, NORMAL, cfg.dataset)


def gan_edge_source(generator, cfg, file: Path, opset: int = OPSET, data_dir=None,
                    checkpoint: dict | None = None) -> Source:
    """A Source of a Keras generator that gan-edge built for registry system `cfg`."""
    from export.convert import generator_to_onnx
    spec = spec_of(cfg)
    call = _keras_call(generator, 0, 1 if cfg.conditional else None)
    return Source(RUN, Path(file), sha256_file(file), spec, _predict(call),
                  lambda: generator_to_onnx(call, spec.latent_dim, spec.conditional, opset),
                  opset, checkpoint, scorer=_scorer(spec, data_dir))


def _load_checkpoint_model(file: Path):
    """A checkpoint's Keras model, or a one-line error that says to pick another checkpoint."""
    import keras
    try:
        return keras.saving.load_model(file, compile=False)
    except Exception as e:
        raise GanEdgeError(f"cannot load {file} ({type(e).__name__}); the checkpoint is "
                           f"corrupt: pick another with --epoch/--step") from None


def _run_discriminator(file: Path, spec: Spec, opset: int) -> SourceDiscriminator:
    import training.models  # noqa: F401  registers GlobalBatchDropout, which most of them hold
    from export import discriminator as disc
    model = _load_checkpoint_model(file)
    forward = disc.logit_fn(model)
    return SourceDiscriminator(file, sha256_file(file),
                               lambda: disc.to_onnx(forward, spec, opset), forward)


# -- a Keras 3 file --------------------------------------------------------------------------

def keras_source(path: Path, flags: Flags, opset: int = OPSET, data_dir=None) -> Source:
    """A Keras 3 generator saved as a .keras file: one latent input [batch, L], for a
    conditional generator an integer label input [batch] or [batch, 1], one output
    [batch, H, W, C] (C = 1 or 3) or [batch, 2]."""
    from export.convert import generator_to_onnx
    path = Path(path)
    model = _load_keras_file(path)
    latent, label = _keras_inputs(model, path)
    dims = _keras_output(model, path)
    call = _keras_call(model, latent, label)
    latent_dim = int(model.inputs[latent].shape[1])
    graph = generator_to_onnx(call, latent_dim, label is not None, opset)
    spec = _spec(graph, flags, path, latent_dim, tuple(dims[1:]), label is not None)
    return _foreign(KERAS, path, spec, _predict(call), lambda: graph, opset, flags, data_dir)


def _load_keras_file(path: Path):
    """A .keras file loaded in Keras's safe mode, or one line saying why it cannot be."""
    import re

    import keras
    if not path.is_file():
        raise GanEdgeError(f"{path} does not exist or is not a file")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:
        text = str(e)
        if "`Lambda` layer" in text or "safe_mode" in text:
            raise GanEdgeError(f"{path} holds a Lambda layer, whose Python code Keras's safe mode "
                               f"refuses to run; rebuild the generator with built-in layers "
                               f"only (gan-edge never loads model files unsafely)") from None
        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
        if missing:
            raise GanEdgeError(f"{path} needs custom code ({missing[1]}) that is not part of "
                               f"Keras; rebuild the generator with built-in layers only (gan-edge "
                               f"loads no custom objects)") from None
        first = text.strip().splitlines()[0][:200] if text.strip() else type(e).__name__
        raise GanEdgeError(f"cannot load {path} as a Keras 3 model ({first}); pass a .keras "
                           f"file saved by Keras 3's model.save") from None


def _keras_inputs(model, path: Path) -> tuple[int, int | None]:
    """(latent input's index, label input's index or None)."""
    try:
        inputs = list(model.inputs)
    except Exception:
        inputs = None
    if not inputs:
        raise GanEdgeError(f"{path} is a model without declared inputs (a subclassed model); "
                           f"save a functional or Sequential model")
    latents, labels = [], []
    for i, t in enumerate(inputs):
        shape, integer = tuple(t.shape), "int" in str(t.dtype)
        if shape[0] is not None:
            raise GanEdgeError(f"{path}: input {t.name} has a fixed batch size {shape[0]}; "
                               f"build it with keras.Input(shape) (batch left open)")
        if shape[1:] in ((), (1,)) and (integer or len(inputs) > 1):
            labels.append(i)
        elif len(shape) == 2 and shape[1] and not integer:
            latents.append(i)
        else:
            raise GanEdgeError(f"{path}: input {t.name} is {t.dtype} {list(shape)}; a generator "
                               f"takes a latent [batch, L] and, if conditional, an integer "
                               f"label [batch]")
    return _one_latent(path, latents, labels, ("latent", "label"), "[batch, L]")


def _one_latent(path: Path, latents: list, labels: list, kinds: tuple[str, str], shapes: str):
    """(the latent input, the label input or None) of a source's inputs sorted into `latents`
    and `labels`, or a one-line error where they are not one latent and at most one label;
    `kinds` names the two sorts of input, `shapes` the latent shapes taken."""
    if len(latents) != 1 or len(labels) > 1:
        what = (f"{len(latents)} {kinds[0]} inputs" if len(latents) != 1 else
                f"{len(labels)} {kinds[1]} inputs")
        raise GanEdgeError(f"{path} has {what}; gan-edge exports a generator of one latent "
                           f"{shapes} and at most one label [batch]")
    return latents[0], labels[0] if labels else None


def _keras_output(model, path: Path) -> tuple:
    if len(model.outputs) != 1:
        raise GanEdgeError(f"{path} has {len(model.outputs)} outputs; a generator has one, its "
                           f"samples")
    dims = tuple(model.outputs[0].shape)
    _check_output_dims(dims, path)
    if len(dims) == 4 and dims[3] not in adapt.CHANNELS:
        raise GanEdgeError(f"{path}'s output is {list(dims[1:])} per sample: {dims[3]} channels "
                           f"last; gan-edge draws grey (1) or RGB (3) images")
    return dims


def _keras_call(model, latent: int, label: int | None):
    """call(z) or call(z, label) -> the model's output, with z and the label (int64 [N] as the
    file takes it, a tensor or an array) in the order of the model's inputs. Keras casts and
    shapes each to its input (a float32 [N, 1] label input takes int64 [N])."""
    import keras
    if label is None:
        return lambda z: model(z, training=False)

    def call(z, labels):
        inputs = [None, None]
        inputs[latent] = keras.ops.convert_to_tensor(z)
        inputs[label] = keras.ops.convert_to_tensor(labels)
        return model(inputs, training=False)
    return call


def _predict(call):
    """The reference `predict(z, labels=None)` of a Keras call: samples as a numpy array."""
    def predict(z, labels=None):
        return np.asarray(call(z) if labels is None else call(z, labels))
    return predict


# -- an ONNX file ----------------------------------------------------------------------------

def onnx_source(path: Path, flags: Flags, data_dir=None) -> Source:
    """A generator exported to ONNX elsewhere (e.g. by torch.onnx.export): one float32 latent
    [batch, L] or [batch, L, 1, 1], optionally one integer label [batch] or [batch, 1], one
    output [batch, C, H, W] or [batch, H, W, C] (C = 1 or 3) or [batch, 2], only the batch
    dynamic. The reference is onnxruntime on the file as given."""
    from onnx import TensorProto
    path = Path(path)
    model = adapt.load(path)
    session = adapt.session(path)
    version = adapt.opset(model)
    if version < adapt.MIN_OPSET:
        raise GanEdgeError(f"{path} uses opset {version}; export it with opset "
                           f"{adapt.MIN_OPSET} or later (torch.onnx.export(..., "
                           f"opset_version=17))")
    latents, labels = [], []
    for t in adapt.graph_inputs(model):
        if t.elem_type == TensorProto.FLOAT:
            latents.append(t)
        elif t.elem_type in (TensorProto.INT64, TensorProto.INT32):
            labels.append(t)
        else:
            raise GanEdgeError(f"{path}: input {t.name} is neither float32 (a latent) nor an "
                               f"integer (a label); gan-edge exports a generator of one latent "
                               f"and at most one label")
    latent, label = _one_latent(path, latents, labels, ("float (latent)", "integer (label)"),
                                "[batch, L] or [batch, L, 1, 1]")
    latent_dim = _onnx_latent_dim(latent, path)
    if label is not None and (label.dims is None or len(label.dims) not in (1, 2)
                              or len(label.dims) == 2 and label.dims[1] != 1):
        raise GanEdgeError(f"{path}: label input {label.name} is {label.dims}; a label is "
                           f"[batch] or [batch, 1]")
    for t in (latent, label):
        if t is not None and adapt.is_fixed(t.dims[0]):
            raise GanEdgeError(f"{path}: input {t.name} has a fixed batch size {t.dims[0]}; "
                               f"export with a dynamic batch (torch.onnx.export(..., "
                               f"dynamic_axes={{'{t.name}': {{0: 'batch'}}, ...}}))")
    out = adapt.output(model)
    if out.elem_type != TensorProto.FLOAT:
        raise GanEdgeError(f"{path}: output {out.name} is not float32")
    _check_output_dims(out.dims, path)
    layout = (adapt.image_layout(out.dims, flags.layout, f"{path}'s output")
              if len(out.dims) == 4 else None)
    shape = adapt.sample_shape(out.dims, layout)
    predict = _onnx_predict(session, latent, label, layout)
    _probe(predict, latent_dim, label is not None, shape, path)

    wrapper = adapt.Wrapper(model)
    wrapper.latent(latent, latent_dim)
    if label is not None:
        wrapper.label(label)
    wrapper.sample(out, layout, shape)
    spec = _spec(model, flags, path, latent_dim, shape, label is not None)
    return _foreign(ONNX, path, spec, predict, lambda: model, version, flags, data_dir)


def _onnx_latent_dim(latent: adapt.Tensor, path: Path) -> int:
    dims = latent.dims
    if dims is not None and len(dims) == 2 and adapt.is_fixed(dims[1]):
        return dims[1]
    if dims is not None and len(dims) == 4 and adapt.is_fixed(dims[1]) and dims[2:] == (1, 1):
        return dims[1]
    raise GanEdgeError(f"{path}: latent input {latent.name} is {list(dims or ['?'])}; a latent "
                       f"is [batch, L] or [batch, L, 1, 1] with L fixed")


def _onnx_predict(session, latent: adapt.Tensor, label: adapt.Tensor | None,
                  layout: str | None):
    """onnxruntime on the source file, fed and read as the contract's file is: z [N, L],
    labels [N] of any integer type, samples channels last."""
    from onnx import TensorProto

    def predict(z, labels=None):
        z = np.asarray(z, np.float32)
        feed = {latent.name: z.reshape(len(z), -1, 1, 1) if len(latent.dims) == 4 else z}
        if label is not None:
            dtype = np.int64 if label.elem_type == TensorProto.INT64 else np.int32
            labels = np.asarray(labels).astype(dtype)
            feed[label.name] = labels.reshape(-1, 1) if len(label.dims) == 2 else labels
        out = session.run(None, feed)[0]
        return out.transpose(0, 2, 3, 1) if layout == "nchw" else out
    return predict


def _probe(predict, latent_dim: int, conditional: bool, shape: tuple, path: Path) -> None:
    """Two samples from the source, before any work: what the graph declares must be what it
    makes."""
    z = np.random.default_rng(0).standard_normal((2, latent_dim)).astype(np.float32)
    try:
        out = predict(z, np.zeros(2, np.int64) if conditional else None)
    except Exception as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise GanEdgeError(f"{path} fails on two probe latents ({first})") from None
    if out.shape != (2, *shape):
        raise GanEdgeError(f"{path} declares samples of shape {shape} but makes "
                           f"{tuple(out.shape[1:])}; export it with its real output shape")


# -- what every foreign source shares ----------------------------------------------------------

def _check_output_dims(dims, path: Path) -> None:
    """An output of known rank, 4 (images) or 2 (points of 2 values), every dim but the batch
    fixed."""
    if dims is None:
        raise GanEdgeError(f"{path}'s output has an unknown rank; export it with its shape "
                           f"declared ([batch, C, H, W], [batch, H, W, C] or [batch, 2])")
    if len(dims) not in (2, 4):
        raise GanEdgeError(f"{path}'s output is {list(dims)}; a generator's is [batch, C, H, W], "
                           f"[batch, H, W, C] or [batch, 2]")
    if not all(adapt.is_fixed(d) for d in dims[1:]):
        raise GanEdgeError(f"{path}'s output is {list(dims)}: a dynamic sample size; export "
                           f"it with only the batch dimension dynamic")
    if len(dims) == 2 and dims[1] != 2:
        raise GanEdgeError(f"{path}'s output is {list(dims)}: {dims[1]} values per sample; "
                           f"gan-edge takes images [batch, H, W, C] or points [batch, 2] "
                           f"(reshape a flat image in the model)")


def _spec(graph, flags: Flags, path: Path, latent_dim: int, shape: tuple,
          conditional: bool) -> Spec:
    """The Spec of a foreign generator from its graph on the file contract (input `label`
    where conditional) and the flags for what the graph cannot tell (each missing one a
    one-line error naming its flag)."""
    found = adapt.final_range(graph)
    if flags.output_range is not None and found is not None and flags.output_range != found:
        raise GanEdgeError(f"--output-range {_range_text(flags.output_range)} contradicts the "
                           f"graph, which ends in {'tanh' if found[0] < 0 else 'sigmoid'} "
                           f"({_range_text(found)}); leave the flag out")
    output_range = flags.output_range or found
    if output_range is None:
        raise GanEdgeError(f"{path}'s output does not end in tanh or sigmoid, so its range is "
                           f"unknown; pass --output-range (e.g. -1,1 or 0,1)")
    classes = flags.classes or _dataset_classes(flags.dataset, conditional)
    if not conditional and flags.classes:
        raise GanEdgeError(f"--classes names classes, but {path} takes no label input; leave "
                           f"the flag out")
    if conditional:
        if not classes:
            raise GanEdgeError(f"{path} is conditional (it takes a label); pass --classes with "
                               f"its class names in label order (e.g. --classes cat,dog) or "
                               f"their count (--classes 10)")
        rows = adapt.embedding_rows(graph, "label")
        if rows is not None and rows != len(classes):
            raise GanEdgeError(f"--classes names {len(classes)} classes, but {path}'s label "
                               f"embedding has {rows} rows; name {rows}")
    if flags.dataset:
        _check_dataset(flags.dataset, shape, classes if conditional else None)
    return Spec(flags.name or path.stem, latent_dim, tuple(shape), output_range,
                tuple(classes) if conditional else (), flags.latent_prior, flags.dataset)


def _range_text(r) -> str:
    return f"{r[0]:g},{r[1]:g}"


def _dataset_classes(dataset: str | None, conditional: bool) -> tuple[str, ...] | None:
    if dataset is None or not conditional:
        return None
    from training.data import CLASS_NAMES
    return tuple(CLASS_NAMES[dataset])


def _check_dataset(dataset: str, shape: tuple, classes) -> None:
    """--dataset names the data set that gan-edge's classifier scores: its samples' shape,
    and for a conditional generator its classes in label order."""
    from training.data import CLASS_NAMES
    if tuple(shape) != SCORED_SHAPE:
        raise GanEdgeError(f"--dataset {dataset}: gan-edge's classifier scores 28x28x1 samples, "
                           f"not {'x'.join(map(str, shape))}; leave the flag out")
    if classes is not None and tuple(classes) != tuple(CLASS_NAMES[dataset]):
        raise GanEdgeError(f"--classes must be {dataset}'s classes in label order with "
                           f"--dataset {dataset} ({','.join(CLASS_NAMES[dataset])}); leave "
                           f"--classes out to take them")


def _foreign(kind: str, path: Path, spec: Spec, predict, build, opset: int, flags: Flags,
             data_dir) -> Source:
    source = Source(kind, path, sha256_file(path), spec, predict, build, opset,
                    scorer=_scorer(spec, data_dir) if spec.dataset else None)
    if source.scorer is None:
        source.unscored = (f"gan-edge has no classifier for "
                           f"{'x'.join(map(str, spec.sample_shape))} samples"
                           if tuple(spec.sample_shape) != SCORED_SHAPE else
                           "no --dataset named (mnist or fashion_mnist, which gan-edge's "
                           "classifiers score)")
    if flags.discriminator is not None:
        source.discriminator = foreign_discriminator(Path(flags.discriminator), spec)
    return source


def _scorer(spec: Spec, data_dir):
    """scorer(predict, n): the quality scores of n samples on the evaluation latents, against
    the test split of `data_dir` (None: the standard data set)."""
    def scorer(predict, n: int):
        from training.evaluate import score_generated
        return score_generated(predict, spec, n, data_dir)
    return scorer


def foreign_discriminator(path: Path, spec: Spec) -> SourceDiscriminator:
    """--discriminator FILE: a .keras discriminator of the generator's samples (and labels)
    ending in Dense(1), or an ONNX one (export/adapt.py reads its layout)."""
    if path.suffix == ".keras":
        return _keras_discriminator(path, spec)
    if path.suffix == ".onnx":
        return _onnx_discriminator(path, spec)
    raise GanEdgeError(f"--discriminator {path}: pass a .keras or an .onnx file")


def _keras_discriminator(path: Path, spec: Spec) -> SourceDiscriminator:
    from export import discriminator as disc
    from export.validate import ValidationError
    model = _load_keras_file(path)
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    want = [tuple(spec.sample_shape)] + ([()] if spec.conditional else [])
    if shapes != want:
        raise GanEdgeError(f"--discriminator {path} takes {shapes}; the generator's "
                           f"discriminator takes {want} (its samples"
                           f"{', then labels' if spec.conditional else ''})")
    try:
        forward = disc.logit_fn(model)
    except ValidationError as e:
        raise GanEdgeError(f"--discriminator {path}: {e}") from None
    return SourceDiscriminator(path, sha256_file(path),
                               lambda: disc.to_onnx(forward, spec, OPSET), forward)


def _onnx_discriminator(path: Path, spec: Spec) -> SourceDiscriminator:
    from export import discriminator as disc
    model = adapt.load(path)
    adapt.session(path)
    fp32, reference = disc.adapt_onnx(model, spec, path)
    return SourceDiscriminator(path, sha256_file(path), lambda: fp32, reference)
