"""In-process generation speed: Keras predict, Keras direct call, onnxruntime per precision.

Images per second at several batch sizes, contenders alternating in rounds, and the fraction
of the machine's fp32 peak each reaches, from the generator's FLOP count.
"""
from __future__ import annotations

import time

import numpy as np


def generator_flops(generator) -> int:
    """Multiply-adds x 2 for one sample through Dense, Conv2D and Conv2DTranspose layers: a
    Dense layer uses each kernel weight once; a convolution uses its whole kernel (kh x kw x
    C_in x C_out) once per pixel of its output, a transposed one once per pixel of its input."""
    import keras
    flops = 0
    for layer in generator.layers:
        weights = int(np.prod(layer.kernel.shape)) if hasattr(layer, "kernel") else 0
        if isinstance(layer, keras.layers.Dense):
            flops += 2 * weights
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            pixels = layer.input if isinstance(layer, keras.layers.Conv2DTranspose) else layer.output
            h, w = pixels.shape[1:3]
            flops += 2 * h * w * weights
    return flops


def measure_peak_gflops(seconds: float = 1.0, n: int = 1024) -> float:
    """Achievable fp32 peak, estimated as numpy's best n x n float32 matmul rate (BLAS on every
    core). Not the datasheet peak: what a well-tuned GEMM really gets on this machine."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ a
        best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return best


# Calls of a new batch size before timing. Keras traces its graph on the first. onnxruntime
# records the memory a shape needs on the first and allocates it on the second, whose page
# faults make it several times slower than the calls after it where tensors are hundreds of MB
# (keras-io's face DCGAN at batch 256).
WARM_UP_CALLS = 2


def time_contenders(contenders: dict, batches, latent_dim: int, min_seconds: float,
                    rounds: int) -> dict:
    """{name: {batch: images/s}} as medians over alternating rounds."""
    rng = np.random.default_rng(0)
    results = {name: {b: [] for b in batches} for name in contenders}
    for batch in batches:
        z = rng.standard_normal((batch, latent_dim)).astype(np.float32)
        for fn in contenders.values():
            for _ in range(WARM_UP_CALLS):
                fn(z)
        for _ in range(rounds):
            for name, fn in contenders.items():
                calls, start = 0, time.perf_counter()
                while True:
                    fn(z)
                    calls += 1
                    elapsed = time.perf_counter() - start
                    if elapsed >= min_seconds and calls >= 2:
                        break
                results[name][batch].append(calls * batch / elapsed)
    return {name: {b: float(np.median(v)) for b, v in per.items()}
            for name, per in results.items()}
