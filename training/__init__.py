"""gan-edge training: the articles' GANs in Keras 3, with evaluation and resumable runs."""
import os

# TensorFlow prints INFO and WARNING lines at import; our CLIs speak for themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
