"""Generator: an exported gan-edge ONNX file behind an onnxruntime session.

Everything about the model (latent size and prior, sample shape, output range, arch) comes from
the file's metadata_props, written by ganexport (runtime/core/spec.py); nothing is guessed from
the graph.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from runtime.core.batch import default_batch
from runtime.core.errors import GanEdgeError
from runtime.core.images import CHANNELS
from runtime.core.samples import IMAGE
from runtime.core.spec import REQUIRED_METADATA, Spec
from runtime.session import CPU, import_onnxruntime, open_session


# NamedTuples, not dataclasses: defining a dataclass is start-up time that ganrun saves
# (python -X importtime -m runtime.cli --n 25).
class ModelInfo(NamedTuple):
    spec: Spec      # what the model is (runtime/core/spec.py): the file contract's facts
    precision: str
    metadata: dict  # every metadata_prop, e.g. gan.metrics and gan.epoch, for callers to read

    @property
    def arch(self) -> str:
        return self.spec.name

    @property
    def latent_dim(self) -> int:
        return self.spec.latent_dim

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.spec.sample_shape

    @property
    def output_range(self) -> tuple[float, float]:
        return self.spec.output_range

    @property
    def class_names(self) -> tuple[str, ...]:
        """A conditional generator's classes, by label (gan.class_names); empty: unconditional."""
        return self.spec.class_names

    @property
    def conditional(self) -> bool:
        return self.spec.conditional

    @property
    def kind(self) -> str:
        """runtime.core.samples.IMAGE or POINT."""
        return self.spec.kind

    @property
    def default_batch(self) -> int:
        """Samples per call by default, by the file's largest tensor (runtime/core/batch.py)."""
        return default_batch(int(self.metadata.get("gan.largest_tensor_bytes", 0)))

    @classmethod
    def from_metadata(cls, meta: dict, path: Path) -> "ModelInfo":
        missing = [k for k in (*REQUIRED_METADATA, "gan.precision") if k not in meta]
        if missing:
            raise GanEdgeError(f"{path} is not a gan-edge generator (metadata lacks "
                               f"{', '.join(missing)}); export it with ganexport")
        stated = meta.get("gan.largest_tensor_bytes", "0")
        # ASCII digits only: int() also takes "²", signs, spaces and underscores, or raises on
        # thousands of digits; a real tensor's size has at most 18.
        if not (stated.isascii() and stated.isdigit() and len(stated) <= 18):
            raise GanEdgeError(f"{path} has malformed gan.* metadata (gan.largest_tensor_bytes "
                               f"is not a count of bytes); re-export it with ganexport")
        return cls(Spec.from_metadata(meta, path), meta["gan.precision"], meta)


class Device(NamedTuple):
    providers: tuple[str, ...]  # onnxruntime execution providers, in order of preference
    gpu: bool
    note: str                   # one line for the user: what was chosen, and why
    required: bool = False      # the user asked for this device: falling back is an error
    load_log: str = ""          # what loading the CUDA libraries printed, for the error


CUDA_FIX = ("pip install 'onnxruntime-gpu[cuda,cudnn]' (CUDA and cuDNN from pip), or use "
            "--device cpu")


def choose_device(device: str) -> Device:
    """What `device` ('auto', 'cpu', 'cuda') means on this machine."""
    ort = import_onnxruntime()
    if device == "cpu":
        return Device(CPU, False, "device: cpu")
    if "CUDAExecutionProvider" in ort.get_available_providers() and _cuda_usable():
        return Device(("CUDAExecutionProvider", *CPU), True, "device: cuda",
                      required=device == "cuda", load_log=_preload_cuda_libraries(ort))
    if device == "cuda":
        raise GanEdgeError("--device cuda, but no usable CUDA GPU (needs onnxruntime-gpu, an "
                           "NVIDIA driver and CUDA libraries); use --device cpu or auto")
    return Device(CPU, False, "device: cpu (no usable CUDA GPU found)")


def _preload_cuda_libraries(ort) -> str:
    """onnxruntime-gpu's CUDA provider finds CUDA and cuDNN only on the loader's path, unless
    its preload_dlls (onnxruntime 1.21+) loads the copies that pip put beside it. It prints
    its failures; keep them for the error message instead of the user's stdout."""
    import contextlib
    import io
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return ""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            preload()
        except Exception as e:  # a broken install must not hide the clearer error that follows
            print(e)
    return printed.getvalue().strip()


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
        path = Path(path)
        if path.exists() and not path.is_file():
            raise GanEdgeError(f"model file {path} is not a regular file")
        if isinstance(device, str):
            device = choose_device(device)
        session = open_session(path, f"model file {path} does not exist",
                               "pass a generator file that ganexport wrote", device.providers,
                               threads)
        if device.gpu and session.get_providers()[0] != "CUDAExecutionProvider":
            # onnxruntime falls back to the CPU, with a log line, when its CUDA provider
            # cannot load its libraries: say so rather than claim a GPU that is not used.
            why = device.load_log.splitlines()[0] if device.load_log else \
                "its CUDA or cuDNN libraries did not load"
            if device.required:
                raise GanEdgeError(f"--device cuda, but onnxruntime could not start CUDA ({why}); "
                                   f"{CUDA_FIX}")
            device = Device(CPU, False, "device: cpu (onnxruntime could not start CUDA)")
        meta = session.get_modelmeta().custom_metadata_map
        info = ModelInfo.from_metadata(meta, path)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        wanted = ["z", "label"] if info.conditional else ["z"]
        if ([i.name for i in inputs] != wanted or len(inputs[0].shape) != 2
                or inputs[0].shape[1] != info.latent_dim or [o.name for o in outputs] != ["sample"]):
            label = ", label [N]" if info.conditional else ""
            raise GanEdgeError(f"{path} does not have the generator interface (input z "
                               f"[N, {info.latent_dim}]{label}, output sample); re-export it "
                               f"with ganexport")
        if info.kind == IMAGE and (len(info.sample_shape) != 3 or info.sample_shape[2] not in CHANNELS):
            raise GanEdgeError(f"{path} declares samples of shape {info.sample_shape}, but images are "
                               f"[H, W, 1] (grayscale) or [H, W, 3] (RGB); re-export it with ganexport")
        gen = cls(session, info, path, device)
        gen._probe()
        return gen

    def _probe(self) -> None:
        """Hold the metadata to what the graph does: two seeded latents must give two samples
        of the declared shape, finite, and images inside the declared range (with a margin for
        int8's rounding), so a file whose metadata lies is refused before any work is done."""
        z = self.info.spec.latents(np.random.default_rng(0), 2)
        try:
            out = self.run(z, np.zeros(2, np.int64) if self.conditional else None)  # run()
            # also refuses non-finite values
        except GanEdgeError:
            raise
        except Exception as e:
            raise GanEdgeError(f"{self.path} fails on a probe latent "
                               f"({str(e).splitlines()[0][:150]}); re-export it") from None
        if out.shape != (2, *self.info.sample_shape):
            raise GanEdgeError(f"{self.path} makes samples of shape {out.shape[1:]}, but its "
                               f"metadata says {self.info.sample_shape}; re-export it")
        lo, hi = self.info.output_range
        margin = 0.1 * (hi - lo)
        # Images end in tanh or sigmoid, so their range is a bound; gan-1d's points (a linear
        # output layer) have a nominal range only.
        if len(self.info.sample_shape) == 3 and (out.min() < lo - margin or out.max() > hi + margin):
            raise GanEdgeError(f"{self.path} makes values in {out.min():.3g}..{out.max():.3g}, "
                               f"outside its declared range {lo:g}..{hi:g}; re-export it")

    @property
    def conditional(self) -> bool:
        return self.info.conditional

    def run(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Samples for latents `z` ([N, latent_dim]) and, for a conditional generator, the
        class `labels` ([N] ints) they are asked to be of."""
        feed = {"z": np.ascontiguousarray(z, np.float32)}
        if self.conditional:
            if labels is None or len(labels) != len(z):
                raise GanEdgeError(f"{self.path} is conditional: pass one label per latent")
            feed["label"] = np.ascontiguousarray(labels, np.int64)
        out = self.session.run(["sample"], feed)[0]
        if not np.isfinite(out).all():
            raise GanEdgeError(f"{self.path} produced NaN or infinite values; the model is "
                               f"broken: export a good checkpoint again")
        return out

    def labels_for(self, n: int, seed: int, classes: list[int] | None = None) -> np.ndarray | None:
        """The class of each of n samples of a conditional generator: `classes` in blocks of
        equal length, in order (so a grid of --n 100 --cols 10 --class all has one row per
        class); when None, drawn uniformly from a seeded stream of their own (so the latents
        are those of the same seed without labels); None for an unconditional generator."""
        if not self.conditional:
            return None
        if classes:
            per_class = -(-n // len(classes))  # ceil
            return np.repeat(np.asarray(classes, np.int64), per_class)[:n]
        n_classes = len(self.info.class_names)
        return np.random.default_rng([seed, 1]).integers(0, n_classes, n).astype(np.int64)

    def generate(self, n: int, seed: int = 0, batch: int | None = None,
                 labels: np.ndarray | None = None):
        """Yield samples in the model's declared range, `batch` at a time (bounded memory;
        default: the file's ModelInfo.default_batch).
        Latents for the whole request come from one seeded stream of the model's prior
        (gan.latent_prior), so the samples do not depend on the batch size. A conditional
        generator makes sample i of class labels[i] (default: labels_for(n, seed))."""
        if self.conditional and labels is None:
            labels = self.labels_for(n, seed)
        rng = np.random.default_rng(seed)
        if batch is None:
            batch = self.info.default_batch
        for start in range(0, n, batch):
            k = min(batch, n - start)
            z = self.info.spec.latents(rng, k)
            yield self.run(z, None if labels is None else labels[start:start + k])
