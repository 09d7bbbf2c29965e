"""The precisions an export comes in, and where each one runs best."""

PRECISIONS = ("fp32", "int8", "fp16")
# fp16 is a GPU format: onnxruntime's CPU provider runs it slower than fp32.
TARGET = {"fp32": "cpu", "int8": "cpu", "fp16": "gpu"}
