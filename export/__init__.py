"""ganexport: a chosen generator checkpoint to validated ONNX (fp32, int8, fp16)."""
