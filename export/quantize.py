"""int8 (static QDQ, calibrated on the generator's own prior) and fp16 variants of an fp32 file."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


class _LatentReader:
    """Calibration batches of z ~ N(0, I), seeded, as the generator sees them in use."""

    def __init__(self, latent_dim: int, n: int = 512, batch: int = 64, seed: int = 0):
        z = np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)
        self._batches = iter([{"z": z[i:i + batch]} for i in range(0, n, batch)])

    def get_next(self):
        return next(self._batches, None)


def quantize_int8(fp32_path: Path, out_path: Path, latent_dim: int, calibration: int = 512) -> None:
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out_path), _LatentReader(latent_dim, calibration),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax)


def convert_fp16(fp32_path: Path, out_path: Path) -> None:
    """fp16 weights and compute with float32 z and sample kept, so callers need not change.
    A GPU format: onnxruntime's CPU provider runs it slower than fp32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    onnx.save(model, str(out_path))
