"""Generator: an exported gan-edge ONNX file behind an onnxruntime session.

Everything about the model (latent size, sample shape, output range, arch) comes from the
file's metadata_props, written by ganexport; nothing is guessed from the graph.
"""
from __future__ import annotations

import json
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


def choose_providers(device: str) -> tuple[list[str], str]:
    """Providers for `device` ('auto', 'cpu', 'cuda') and a one-line note of what was chosen."""
    import onnxruntime as ort
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"], "device: cpu"
    if "CUDAExecutionProvider" in available and _cuda_usable():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], "device: cuda"
    if device == "cuda":
        raise GanEdgeError("--device cuda, but no usable CUDA GPU (needs onnxruntime-gpu, an "
                           "NVIDIA driver and CUDA libraries); use --device cpu or auto")
    return ["CPUExecutionProvider"], "device: cpu (no usable CUDA GPU found)"


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
    def __init__(self, session, info: ModelInfo, path: Path, device_note: str):
        self.session, self.info, self.path, self.device_note = session, info, path, device_note

    @property
    def arch(self) -> str:
        return self.info.arch

    @classmethod
    def from_file(cls, path: str | Path, device: str = "cpu", threads: int = 0) -> "Generator":
        """Open an exported generator. threads=0 lets onnxruntime use every core."""
        import onnxruntime as ort
        path = Path(path)
        if not path.is_file():
            raise GanEdgeError(f"model file {path} does not exist")
        providers, note = choose_providers(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # one small graph: parallel branches do not pay here
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
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
        return cls(session, info, path, note)

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


def default_model_path(precision: str = "auto", device_note: str = "device: cpu") -> Path:
    """The generator shipped inside the package: int8 on CPU, fp16 on GPU (where they exist)."""
    folder = Path(__file__).parent / "models"
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise GanEdgeError(f"no embedded model in {folder}; pass --model FILE (see README: "
                           f"'Remaking the embedded model')")
    files = {f["precision"]: folder / f["file"] for f in json.loads(manifest.read_text())["files"]}
    if precision == "auto":
        order = ["fp16", "int8", "fp32"] if "cuda" in device_note.split("(")[0] else ["int8", "fp32"]
        precision = next((p for p in order if p in files), None)
    if precision not in files:
        raise GanEdgeError(f"the embedded model has no {precision} file; choose one of "
                           f"{', '.join(files)}")
    return files[precision]


