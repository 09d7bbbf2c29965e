"""The checkpoint's discriminator as a small int8 ONNX file beside the generator, for
discriminator filtering on the device (`ganrun --keep`).

The file outputs the discriminator's logit, not its sigmoid: near 1 the sigmoid saturates
(and int8 would round it to 256 levels), which would tie the very samples that filtering has
to rank. What matters on the device is the ranking, so validation checks that choosing by the int8
file gains (nearly) what choosing by Keras gains, not only that its numbers are close: samples
that trade places at the boundary cost little, a scrambled ranking costs everything.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export.validate import ValidationError
from runtime.core.artifacts import DISCRIMINATOR_FILE
from training.config import GANConfig

KEEP_FRACTION = 0.5     # validation: of what choosing the half (--keep 0.5) by Keras's logits
MIN_GAIN_KEPT = 0.9     # gains in mean Keras logit, choosing by int8 must keep at least 90 %
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


def to_onnx(discriminator, cfg: GANConfig, opset: int = 17):
    """An onnx.ModelProto with input sample [N, *sample_shape] (and label int64 [N] for a
    conditional model) and output logit [N, 1]."""
    import tensorflow as tf

    from export.convert import function_to_onnx
    forward = logit_fn(discriminator)
    inputs = [tf.TensorSpec((None, *cfg.sample_shape), tf.float32, name="sample")]
    if cfg.conditional:
        inputs.append(tf.TensorSpec((None,), tf.int64, name="label"))

        def call(sample, label):
            return forward(sample, tf.cast(label, tf.int32))
    else:
        call = forward
    return function_to_onnx(call, inputs, "logit", opset)


def build(discriminator, cfg: GANConfig, tmp: Path, opset: int) -> Path:
    """Write the file into `tmp`: int8 weights, float32 compute. Static int8 (the generators'
    kind) was tried first: on a barely trained DCGAN, whose logits differ by 1e-3, rounding
    the activations scrambled the ranking; the weights alone round far less."""
    import onnx

    from export.quantize import int8_weights_only
    fp32, out = tmp / "discriminator.fp32.onnx", tmp / DISCRIMINATOR_FILE
    onnx.save(to_onnx(discriminator, cfg, opset), str(fp32))
    int8_weights_only(fp32, out)
    return out


def validate(path: Path, discriminator, samples: np.ndarray,
             labels: np.ndarray | None = None) -> dict:
    """How well the int8 file ranks generated `samples` (of classes `labels`, for a conditional
    model) as Keras does, or ValidationError."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"sample": samples.astype(np.float32)}
    if labels is not None:
        feed["label"] = labels.astype(np.int64)
    got = session.run(["logit"], feed)[0].ravel()
    forward = logit_fn(discriminator)
    want = np.asarray(forward(samples) if labels is None else forward(samples, labels)).ravel()
    if not np.isfinite(got).all():
        raise ValidationError(f"{path}: the discriminator gives non-finite logits")
    scale = float(np.abs(want).max())
    if not np.abs(got - want).max() <= MAX_LOGIT_ERROR * scale + 1e-6:
        raise ValidationError(f"{path}: logits differ from Keras's by up to "
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
                              f"choosing by Keras's gains at --keep {KEEP_FRACTION}; bound "
                              f"{MIN_GAIN_KEPT:.0%}")
    return {"n_samples": len(samples), "gain_kept": gain, "ranking_checked": judged,
            "same_choice": len(np.intersect1d(ours, best)) / k, "rank_correlation": rank_corr,
            "max_abs_logit": float(np.abs(got - want).max()), "logit_scale": scale,
            "logit_std": float(want.std())}
