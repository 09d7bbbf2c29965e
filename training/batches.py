"""tf.data streams of real training batches, keyed by step so that a resumed run sees the same data."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from runtime.core.samples import POINT
from training.config import GANConfig


def real_batches(cfg: GANConfig, x_train: np.ndarray | None, seed: int,
                 start_step: int, total_steps: int,
                 y_train: np.ndarray | None = None) -> tf.data.Dataset:
    """One [half_batch, *sample_shape] float32 batch of real samples for each of the steps
    start_step .. total_steps-1; for a conditional system, (samples, int32 class labels [half_batch])
    from `y_train`. Images are drawn with replacement, as the articles' randint does,
    from a stateless RNG keyed by (seed, step). Each element is one global batch: under a
    strategy, tf.distribute splits it along the first axis between the replicas."""
    half = cfg.d_half_batch
    if cfg.kind == POINT:
        def batch(step):
            x = tf.random.stateless_uniform((half,), seed=[seed, step]) - 0.5
            return tf.stack([x, x * x], axis=1)
    else:
        images = tf.constant(x_train)  # uint8 [N, 28, 28]: 47 MB for MNIST, scaled per batch
        n = int(x_train.shape[0])
        labels = tf.constant(y_train) if cfg.conditional else None
        lo, hi = cfg.output_range

        def batch(step):
            idx = tf.random.stateless_uniform((half,), seed=[seed, step], maxval=n, dtype=tf.int64)
            x = tf.cast(tf.gather(images, idx), tf.float32) * ((hi - lo) / 255.0) + lo
            x = tf.reshape(x, (half, *cfg.sample_shape))
            return (x, tf.cast(tf.gather(labels, idx), tf.int32)) if cfg.conditional else x
    options = tf.data.Options()
    # Every worker builds the same batches and keeps its replicas' slices (there are no files
    # to shard by); building a batch is one gather, cheap next to a train step.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return (tf.data.Dataset.range(start_step, total_steps)
            .map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(options))

