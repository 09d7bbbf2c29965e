"""gan-edge runtime: generate samples from an exported ONNX generator with onnxruntime alone.

Also the project's base layer: its errors, atomic files, CLI wrapper, precisions and image
helpers are shared by training/ and export/. Imports point down to it only: runtime imports
neither training/ nor export/ nor TensorFlow, so that it installs and starts on a device with
onnxruntime alone; training/ and export/ may import runtime/, export/ may import training/, and
training/ never imports export/.
"""
