"""gan-edge runtime: generate samples from an exported ONNX generator with onnxruntime alone."""
