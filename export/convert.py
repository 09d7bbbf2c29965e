"""Keras -> ONNX through tf2onnx: the one wrapper every export uses (generators,
discriminators, classifiers), and the generator's conversion, followed by the exact rewrites
that onnxruntime runs faster (export/rewrite.py).

tf2onnx's `from_keras` fails on Keras 3 models (onnx/tensorflow-onnx#2448), so we convert a
tf.function with a named input signature, returning a dict to name the output.
"""
from __future__ import annotations

from training.config import GANConfig

# Col2Im, which the rewrite of a Conv to a few channels needs, came in opset 18.
OPSET = 18


def function_to_onnx(call, inputs, output: str, opset: int):
    """An onnx.ModelProto of `call` on the named tf.TensorSpecs `inputs`, whose result is the
    one output `output`; every input's and output's first dimension is the dynamic `batch`."""
    import tensorflow as tf
    import tf2onnx

    @tf.function(input_signature=inputs)
    def serve(*tensors):
        return {output: tf.identity(call(*tensors), name=output)}

    model, _ = tf2onnx.convert.from_function(serve, input_signature=inputs, opset=opset)
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return model


def to_onnx(generator, cfg: GANConfig, opset: int = OPSET, rewrite: bool = True):
    """An onnx.ModelProto with input z [N, latent_dim] (and, for a conditional generator,
    label int64 [N]) and output sample [N, *sample_shape]; `rewrite`: with the exact rewrites
    (what every export ships; off only to compare)."""
    import tensorflow as tf

    from export.rewrite import rewrite as rewrite_graph
    inputs = [tf.TensorSpec((None, cfg.latent_dim), tf.float32, name="z")]
    if cfg.conditional:
        inputs.append(tf.TensorSpec((None,), tf.int64, name="label"))

        def call(z, label):
            return generator([z, tf.cast(label, tf.int32)], training=False)
    else:
        def call(z):
            return generator(z, training=False)
    model = function_to_onnx(call, inputs, "sample", opset)
    return rewrite_graph(model) if rewrite else model
