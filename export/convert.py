"""Keras generator -> ONNX through tf2onnx, then the exact rewrites that onnxruntime runs
faster (export/rewrite.py).

tf2onnx's `from_keras` fails on Keras 3 models (onnx/tensorflow-onnx#2448), so we convert a
tf.function with a named input signature, returning a dict to name the output.
"""
from __future__ import annotations

from training.config import GANConfig

# Col2Im, which the rewrite of a single-channel Conv needs, came in opset 18.
OPSET = 18


def to_onnx(generator, cfg: GANConfig, opset: int = OPSET, rewrite: bool = True):
    """An onnx.ModelProto with input z [N, latent_dim] (and, for a conditional generator,
    label int64 [N]) and output sample [N, *sample_shape]; `rewrite`: with the exact rewrites
    (what every export ships; off only to compare)."""
    import tensorflow as tf
    import tf2onnx

    from export.rewrite import rewrite as rewrite_graph
    z_spec = tf.TensorSpec((None, cfg.latent_dim), tf.float32, name="z")
    if cfg.conditional:
        spec = [z_spec, tf.TensorSpec((None,), tf.int64, name="label")]

        @tf.function(input_signature=spec)
        def serve(z, label):
            sample = generator([z, tf.cast(label, tf.int32)], training=False)
            return {"sample": tf.identity(sample, name="sample")}
    else:
        spec = [z_spec]

        @tf.function(input_signature=spec)
        def serve(z):
            return {"sample": tf.identity(generator(z, training=False), name="sample")}

    model, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    for value in (*model.graph.input, *model.graph.output):  # name the dynamic batch dimension
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return rewrite_graph(model) if rewrite else model
