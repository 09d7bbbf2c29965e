"""A conditional generator end to end on the device side: ganrun --class makes the asked
classes directly (no rejection), labels are drawn uniformly without it, and --walk, --keep,
--min-confidence, --out-dir and the Python API carry the labels."""
import csv
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def conditional_file(tiny_runs, tmp_path_factory):
    """A tiny cgan-mnist run's int8 export, in a folder of this module's own."""
    from export.exporter import export_checkpoint
    run = tmp_path_factory.mktemp("cgan") / "run"
    shutil.copytree(tiny_runs["cgan-mnist"], run, ignore=shutil.ignore_patterns("export"))
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    export_checkpoint(ckpt, run / "export", ("int8",), quality_samples=200,
                      progress=lambda msg: None)
    return run / "export" / "generator.int8.onnx"


def _ganrun(model, tmp_path, *args):
    tmp_path.mkdir(exist_ok=True)
    out_dir = tmp_path / "samples"
    result = run_cli("-m", "runtime.cli", "--model", str(model), "--out",
                     str(tmp_path / "grid.png"), "--out-dir", str(out_dir), "--quiet", *args)
    assert result.returncode == 0, result.stderr
    with open(out_dir / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    return out_dir, rows


def _tile(out_dir, i):
    return np.asarray(Image.open(out_dir / f"sample_{i:06d}.png"))


def test_class_generates_the_asked_class_directly(conditional_file, tmp_path):
    from runtime.generator import Generator
    from runtime.core.images import to_uint8
    out_dir, rows = _ganrun(conditional_file, tmp_path, "--n", "6", "--class", "3",
                            "--seed", "4")
    assert [r["class"] for r in rows] == ["3"] * 6 and "confidence" not in rows[0]
    # no rejection: sample i is the generator's output for the seed's i-th latent and label 3
    gen = Generator.from_file(conditional_file)
    z = np.random.default_rng(4).standard_normal((6, gen.info.latent_dim)).astype(np.float32)
    want = to_uint8(gen.run(z, np.full(6, 3)), gen.info.output_range)
    for i in range(6):
        np.testing.assert_array_equal(_tile(out_dir, i), want[i])


def test_without_class_labels_are_drawn_uniformly_and_seeded(conditional_file, tmp_path):
    _, rows = _ganrun(conditional_file, tmp_path / "a", "--n", "200", "--seed", "1")
    _, again = _ganrun(conditional_file, tmp_path / "b", "--n", "200", "--seed", "1")
    classes = [int(r["class"]) for r in rows]
    assert classes == [int(r["class"]) for r in again]
    counts = np.bincount(classes, minlength=10)
    assert counts.min() >= 5 and counts.max() <= 40  # every class, none dominant (n = 200)


def test_class_all_gives_one_row_per_class(conditional_file, tmp_path):
    _, rows = _ganrun(conditional_file, tmp_path, "--n", "30", "--cols", "3", "--class", "all")
    assert [int(r["class"]) for r in rows] == [k for k in range(10) for _ in range(3)]


def test_keep_and_min_confidence_keep_the_asked_class(conditional_file, tmp_path):
    _, kept = _ganrun(conditional_file, tmp_path / "keep", "--n", "8", "--keep", "0.5",
                      "--class", "2,5")
    assert sorted({r["class"] for r in kept}) <= ["2", "5"] and len(kept) == 8
    _, sure = _ganrun(conditional_file, tmp_path / "sure", "--n", "4", "--class", "1",
                      "--min-confidence", "0")
    # --min-confidence still asks the classifier: a sample is kept where it agrees with the ask
    assert [r["class"] for r in sure] == ["1"] * 4 and all("confidence" in r for r in sure)


def test_walk_holds_each_tiles_class(conditional_file, tmp_path):
    frames = {}
    for spec in ("0", "7"):
        out = tmp_path / f"walk-{spec}.gif"
        result = run_cli("-m", "runtime.cli", "--model", str(conditional_file), "--n", "4",
                         "--walk", "2", "--class", spec, "--quiet", "--out", str(out))
        assert result.returncode == 0, result.stderr
        with Image.open(out) as gif:
            frames[spec] = gif.n_frames, np.asarray(gif.convert("L"))
    assert frames["0"][0] == frames["7"][0] == 24
    assert not np.array_equal(frames["0"][1], frames["7"][1])


def test_a_class_the_model_lacks_is_a_one_line_error(conditional_file, tmp_path):
    result = run_cli("-m", "runtime.cli", "--model", str(conditional_file), "--class", "12",
                     "--out", str(tmp_path / "x.png"))
    assert_one_line_error(result, "'12'", "choose from 0, 1")
    assert not (tmp_path / "x.png").exists()


def test_the_python_api_takes_labels(conditional_file):
    from runtime.generator import Generator
    gen = Generator.from_file(conditional_file)
    labels = gen.labels_for(5, seed=0, classes=[4])
    assert labels.tolist() == [4] * 5
    by_batch = np.concatenate(list(gen.generate(5, seed=0, batch=2, labels=labels)))
    whole = np.concatenate(list(gen.generate(5, seed=0, batch=5, labels=labels)))
    np.testing.assert_array_equal(by_batch, whole)
    other = np.concatenate(list(gen.generate(5, seed=0, labels=gen.labels_for(5, 0, [9]))))
    assert not np.array_equal(whole, other)
