"""The source's discriminator (a checkpoint's, or --discriminator FILE: Keras or ONNX) as a small
int8 ONNX file beside the generator, for discriminator filtering on the device (`ganrun
--keep`).

The file outputs the discriminator's logit, not its sigmoid: near 1 the sigmoid saturates
(and int8 would round it to 256 levels), which would tie the very samples that filtering has
to rank. What matters on the device is the ranking, so validation checks that choosing by the int8
file gains (nearly) what choosing by the source gains, not only that its numbers are close: samples
that trade places at the boundary cost little, a scrambled ranking costs everything.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export.validate import ValidationError
from runtime.core.artifacts import DISCRIMINATOR_FILE
from runtime.core.errors import GanEdgeError
from runtime.core.spec import Spec

KEEP_FRACTION = 0.5     # validation: of what choosing the half (--keep 0.5) by the source's
MIN_GAIN_KEPT = 0.9     # logits gains in their mean, choosing by int8 must keep at least 90 %
MIN_SPREAD = 0.02       # ... judged only where the logits spread over 2 % of their scale
# int8 weights move each weight by at most 0.4 % of its channel's largest; through several
# layers the logits move by up to 3.8 % of their largest (shipped models, measured): 10 % allowed.
MAX_LOGIT_ERROR = 0.1


def logit_fn(discriminator):
    """The discriminator up to its last layer's pre-activation: all layers but the last, then
    that Dense without its sigmoid; for a conditional (functional) discriminator, which ends in
    a sigmoid Activation, the model up to that layer's input, called on [x, labels]."""
    import keras
    *body, last = discriminator.layers
    if isinstance(last, keras.layers.Activation) and len(discriminator.inputs) == 2:
        logits = keras.Model(discriminator.inputs, last.input)
        return lambda x, labels: logits([keras.ops.convert_to_tensor(x),
                                         keras.ops.convert_to_tensor(labels)], training=False)
    if not isinstance(last, keras.layers.Dense) or last.units != 1:
        raise ValidationError("the discriminator does not end in Dense(1); cannot take its logit")

    def forward(x):
        for layer in body:
            x = layer(x, training=False)
        return keras.ops.matmul(x, last.kernel) + last.bias
    return forward


def to_onnx(forward, spec: Spec, opset: int = 17):
    """An onnx.ModelProto of `forward` (logit_fn's) with input sample [N, *sample_shape] (and
    label int64 [N] for a conditional model) and output logit [N, 1]."""
    import tensorflow as tf

    from export.convert import function_to_onnx
    inputs = [tf.TensorSpec((None, *spec.sample_shape), tf.float32, name="sample")]
    if spec.conditional:
        inputs.append(tf.TensorSpec((None,), tf.int64, name="label"))

        def call(sample, label):
            return forward(sample, tf.cast(label, tf.int32))
    else:
        call = forward
    return function_to_onnx(call, inputs, "logit", opset)


def adapt_onnx(model, spec: Spec, path: Path):
    """An ONNX discriminator (e.g. from torch.onnx.export) as the file's: input sample
    [N, *sample_shape] channels last (and label int64 [N]), output logit [N, 1], with a final
    sigmoid taken off; and the reference logits(samples[, labels]) of onnxruntime on the
    source as given (its sigmoid's input read as a second output)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from export import adapt
    inputs = adapt.graph_inputs(model)
    floats = [t for t in inputs if t.elem_type == TensorProto.FLOAT]
    ints = [t for t in inputs if t.elem_type in (TensorProto.INT64, TensorProto.INT32)]
    shape = tuple(spec.sample_shape)
    want = f"samples {list(shape)}" + (" and labels [batch]" if spec.conditional else "")
    if len(floats) != 1 or len(ints) != int(spec.conditional) or len(inputs) != len(floats) + len(ints):
        raise GanEdgeError(f"--discriminator {path} takes {len(inputs)} inputs; the generator's "
                           f"discriminator takes {want}")
    x = floats[0]
    layout = None
    if x.dims is not None and len(x.dims) == 4 and x.dims[1:] == (shape[2], shape[0], shape[1]):
        layout = "nchw"
    if not (layout or x.dims is not None and tuple(x.dims[1:]) == shape):
        raise GanEdgeError(f"--discriminator {path} takes {list(x.dims or ['?'])}; the "
                           f"generator's discriminator takes {want} (channels first or last)")
    if adapt.is_fixed(x.dims[0]):
        raise GanEdgeError(f"--discriminator {path} has a fixed batch size {x.dims[0]}; export "
                           f"it with a dynamic batch")
    if len(model.graph.output) != 1:
        raise GanEdgeError(f"--discriminator {path} has {len(model.graph.output)} outputs; a "
                           f"discriminator has one, its score")
    out = model.graph.output[0].name
    node = adapt.final_op(model)
    scored = out
    reference_model = model
    if node is not None and node.op_type == "Sigmoid":
        scored = node.input[0]
        reference_model = onnx.ModelProto()
        reference_model.CopyFrom(model)
        reference_model.graph.output.append(helper.make_tensor_value_info(
            scored, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(reference_model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    label = ints[0] if ints else None

    def logits(samples, labels=None):
        samples = np.asarray(samples, np.float32)
        feed = {x.name: samples.transpose(0, 3, 1, 2) if layout else samples}
        if label is not None:
            dtype = np.int64 if label.elem_type == TensorProto.INT64 else np.int32
            feed[label.name] = np.asarray(labels).astype(dtype).reshape(
                (-1, 1) if len(label.dims) == 2 else (-1,))
        return session.run([scored], feed)[0].reshape(-1)

    probe = np.zeros((2, *shape), np.float32)
    try:
        logits(probe, np.zeros(2, np.int64) if label is not None else None)
    except Exception as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise GanEdgeError(f"--discriminator {path} fails on two probe samples ({first})") from None
    fp32 = onnx.ModelProto()
    fp32.CopyFrom(model)
    if scored != out:  # the sigmoid passes its input on: the layout ops after it stay
        sigmoid = next(n for n in fp32.graph.node if n.output[0] == node.output[0])
        sigmoid.op_type = "Identity"
    wrapper = adapt.Wrapper(fp32, ("sample", "label", "logit"))
    nodes = ([helper.make_node("Transpose", ["sample"], [wrapper.name(x.name)],
                               perm=[0, 3, 1, 2])] if layout else [])
    wrapper.feed(x, "sample", TensorProto.FLOAT, ["batch", *shape], nodes)
    if label is not None:
        wrapper.label(label)
    new_out = fp32.graph.output[0].name
    to_column = wrapper.const(np.array([-1, 1], np.int64), "logit_shape")
    wrapper.emit(new_out, "logit", ["batch", 1],
                 helper.make_node("Reshape", [new_out, to_column], ["logit"]))
    return fp32, logits


def build(fp32_model, tmp: Path) -> Path:
    """Write the file into `tmp`: int8 weights, float32 compute. Static int8 (the generators'
    kind) was tried first: on a barely trained DCGAN, whose logits differ by 1e-3, rounding
    the activations scrambled the ranking; the weights alone round far less."""
    import onnx

    from export.quantize import int8_weights_only
    fp32, out = tmp / "discriminator.fp32.onnx", tmp / DISCRIMINATOR_FILE
    onnx.save(fp32_model, str(fp32))
    int8_weights_only(fp32, out)
    return out


def validate(path: Path, logits, samples: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """How well the int8 file ranks generated `samples` (of classes `labels`, for a conditional
    model) as its source does (`logits(samples[, labels])`: logit_fn's of a Keras model, or
    onnxruntime on an ONNX one), or ValidationError."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"sample": samples.astype(np.float32)}
    if labels is not None:
        feed["label"] = labels.astype(np.int64)
    got = session.run(["logit"], feed)[0].ravel()
    want = np.asarray(logits(samples) if labels is None else logits(samples, labels)).ravel()
    if not np.isfinite(got).all():
        raise ValidationError(f"{path}: the discriminator gives non-finite logits")
    scale = float(np.abs(want).max())
    if not np.abs(got - want).max() <= MAX_LOGIT_ERROR * scale + 1e-6:
        raise ValidationError(f"{path}: logits differ from the source's by up to "
                              f"{np.abs(got - want).max():.3g}, above {MAX_LOGIT_ERROR:.0%} of "
                              f"their scale {scale:.3g}")
    k = int(len(samples) * KEEP_FRACTION)
    ours, best = np.argsort(-got)[:k], np.argsort(-want)[:k]
    gain = float((want[ours].mean() - want.mean()) / (want[best].mean() - want.mean()))
    rank_corr = float(np.corrcoef(np.argsort(np.argsort(got)), np.argsort(np.argsort(want)))[0, 1])
    # A discriminator that barely tells these samples apart (an untrained one) has no ranking
    # for the file to keep: its order is the weights' rounding noise. Report, do not judge.
    judged = float(want.std()) >= MIN_SPREAD * scale
    if judged and not gain >= MIN_GAIN_KEPT:
        raise ValidationError(f"{path}: choosing by the int8 logits keeps {gain:.0%} of what "
                              f"choosing by the source's gains at --keep {KEEP_FRACTION}; bound "
                              f"{MIN_GAIN_KEPT:.0%}")
    return {"n_samples": len(samples), "gain_kept": gain, "ranking_checked": judged,
            "same_choice": len(np.intersect1d(ours, best)) / k, "rank_correlation": rank_corr,
            "max_abs_logit": float(np.abs(got - want).max()), "logit_scale": scale,
            "logit_std": float(want.std())}
