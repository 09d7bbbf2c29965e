"""gan-edge training: the articles' GANs in Keras 3, with evaluation and resumable runs."""
