"""ganexport: a chosen generator checkpoint to validated ONNX (fp32, int8, fp16)."""
import os

# TensorFlow prints INFO and WARNING lines at import; our CLIs speak for themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
