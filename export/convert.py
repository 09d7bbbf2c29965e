"""Keras -> ONNX through tf2onnx: the one wrapper every Keras conversion uses (generators,
discriminators, classifiers), and a generator's conversion to the file contract.

tf2onnx's `from_keras` fails on Keras 3 models (onnx/tensorflow-onnx#2448), so we convert a
tf.function with a named input signature, returning a dict to name the output.
"""
from __future__ import annotations

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


def generator_to_onnx(call, latent_dim: int, conditional: bool, opset: int = OPSET):
    """An onnx.ModelProto of a Keras generator on the file contract: input z [N, latent_dim]
    float32 (and, for a conditional generator, label int64 [N]), output sample
    [N, *sample_shape]. `call(z)` or `call(z, label)` calls the model (export/sources.py)."""
    import tensorflow as tf
    inputs = [tf.TensorSpec((None, latent_dim), tf.float32, name="z")]
    if conditional:
        inputs.append(tf.TensorSpec((None,), tf.int64, name="label"))
    return function_to_onnx(call, inputs, "sample", opset)
