"""Side-by-side measurements of gan-edge against what users would otherwise run."""
import os

# TensorFlow prints INFO and WARNING lines at import; our CLIs speak for themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
