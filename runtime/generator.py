"""Generator: an exported gan-edge ONNX file behind an onnxruntime session.

Everything about the model (latent size, sample shape, output range, arch) comes from the
file's metadata_props, written by ganexport; nothing is guessed from the graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.errors import GanEdgeError

REQUIRED_METADATA = ("gan.arch", "gan.latent_dim", "gan.sample_shape", "gan.output_range",
                     "gan.precision")


@dataclass(frozen=True)
class ModelInfo:
    arch: str
    latent_dim: int
    sample_shape: tuple[int, ...]
    output_range: tuple[float, float]
    precision: str
    metadata: dict  # every metadata_prop, e.g. gan.metrics and gan.epoch, for callers to read

    @classmethod
    def from_metadata(cls, meta: dict, path: Path) -> "ModelInfo":
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise GanEdgeError(f"{path} is not a gan-edge generator (metadata lacks "
                               f"{', '.join(missing)}); export it with ganexport")
        try:
            lo, hi = (float(v) for v in meta["gan.output_range"].split(","))
            return cls(meta["gan.arch"], int(meta["gan.latent_dim"]),
                       tuple(int(d) for d in meta["gan.sample_shape"].split(",")), (lo, hi),
                       meta["gan.precision"], meta)
        except ValueError:
            raise GanEdgeError(f"{path} has malformed gan.* metadata; re-export it with "
                               f"ganexport") from None


@dataclass(frozen=True)
class Device:
    providers: tuple[str, ...]  # onnxruntime execution providers, in order of preference
    gpu: bool
    note: str                   # one line for the user: what was chosen, and why


def choose_device(device: str) -> Device:
    """What `device` ('auto', 'cpu', 'cuda') means on this machine."""
    import onnxruntime as ort
    if device == "cpu":
        return Device(("CPUExecutionProvider",), False, "device: cpu")
    if "CUDAExecutionProvider" in ort.get_available_providers() and _cuda_usable():
        return Device(("CUDAExecutionProvider", "CPUExecutionProvider"), True, "device: cuda")
    if device == "cuda":
        raise GanEdgeError("--device cuda, but no usable CUDA GPU (needs onnxruntime-gpu, an "
                           "NVIDIA driver and CUDA libraries); use --device cpu or auto")
    return Device(("CPUExecutionProvider",), False, "device: cpu (no usable CUDA GPU found)")


def _cuda_usable() -> bool:
    """Ask the driver before onnxruntime does: ORT prints a wall of errors when CUDA is absent."""
    import ctypes
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 \
            and count.value > 0
    except OSError:
        return False


class Generator:
    def __init__(self, session, info: ModelInfo, path: Path, device: Device):
        self.session, self.info, self.path, self.device = session, info, path, device

    @property
    def arch(self) -> str:
        return self.info.arch

    @classmethod
    def from_file(cls, path: str | Path, device: str | Device = "cpu",
                  threads: int = 0) -> "Generator":
        """Open an exported generator on `device` (a name, or a choose_device() already made).
        threads=0 lets onnxruntime use every core."""
        import onnxruntime as ort
        path = Path(path)
        if not path.is_file():
            raise GanEdgeError(f"model file {path} does not exist")
        if isinstance(device, str):
            device = choose_device(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # one small graph: parallel branches do not pay here
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=list(device.providers))
        except Exception as e:  # ORT raises several types for unreadable models
            raise GanEdgeError(f"{path} is not a loadable ONNX model ({str(e).splitlines()[0][:150]})"
                               ) from None
        meta = session.get_modelmeta().custom_metadata_map
        info = ModelInfo.from_metadata(meta, path)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if (len(inputs) != 1 or inputs[0].name != "z" or len(inputs[0].shape) != 2
                or inputs[0].shape[1] != info.latent_dim or [o.name for o in outputs] != ["sample"]):
            raise GanEdgeError(f"{path} does not have the generator interface (input z "
                               f"[N, {info.latent_dim}], output sample); re-export it with ganexport")
        return cls(session, info, path, device)

    def run(self, z: np.ndarray) -> np.ndarray:
        return self.session.run(["sample"], {"z": np.ascontiguousarray(z, np.float32)})[0]

    def generate(self, n: int, seed: int = 0, batch: int = 256):
        """Yield samples in the model's declared range, `batch` at a time (bounded memory).
        Latents for the whole request come from one seeded stream, so the samples do not
        depend on the batch size."""
        rng = np.random.default_rng(seed)
        for start in range(0, n, batch):
            k = min(batch, n - start)
            yield self.run(rng.standard_normal((k, self.info.latent_dim)).astype(np.float32))
