"""A conditional generator end to end on the device side: ganrun --class makes the asked
classes directly (no rejection), labels are drawn uniformly without it, and --walk, --keep,
--min-confidence, --out-dir and the Python API carry the labels."""
import csv
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import CALIBRATION, assert_one_line_error, run_cli
from runtime.classify import MIN_TRIES, TRIES_PER_SAMPLE


@pytest.fixture(scope="module")
def conditional_file(tiny_runs, tmp_path_factory):
    """A tiny cgan-mnist run's int8 export, in a folder of this module's own."""
    from export.exporter import export_checkpoint
    run = tmp_path_factory.mktemp("cgan") / "run"
    shutil.copytree(tiny_runs["cgan-mnist"], run, ignore=shutil.ignore_patterns("export"))
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    export_checkpoint(ckpt, run / "export", ("int8",), quality_samples=200,
                      progress=lambda msg: None, calibration=CALIBRATION)
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


def _stream(gen, n, seed, labels):
    """The tiles of the seed's first n latents (numpy's stream, as ganrun draws them) made with
    `labels`, by Generator.run 256 at a time: what ganrun's samples must be."""
    from runtime.core.images import to_uint8
    z = np.random.default_rng(seed).standard_normal((n, gen.info.latent_dim)).astype(np.float32)
    labels = np.asarray(labels)
    return np.concatenate([to_uint8(gen.run(z[i:i + 256], labels[i:i + 256]),
                                    gen.info.output_range) for i in range(0, n, 256)])


def _positions(out_dir, rows, stream):
    """Where each written sample lies in `stream`: one place each, in increasing order."""
    found = []
    for i in range(len(rows)):
        places = np.flatnonzero((stream == _tile(out_dir, i)).all(axis=(1, 2))).tolist()
        assert len(places) == 1, f"sample {i} is the stream's sample at {places}, not at one place"
        found += places
    assert found == sorted(set(found)), found
    return found


def test_class_generates_the_asked_class_directly(conditional_file, tmp_path):
    from runtime.generator import Generator
    out_dir, rows = _ganrun(conditional_file, tmp_path, "--n", "6", "--class", "3",
                            "--seed", "4")
    assert [r["class"] for r in rows] == ["3"] * 6 and "confidence" not in rows[0]
    # no rejection: sample i is the generator's output for the seed's i-th latent and label 3
    want = _stream(Generator.from_file(conditional_file), 6, 4, np.full(6, 3))
    for i in range(6):
        np.testing.assert_array_equal(_tile(out_dir, i), want[i])


def test_without_class_labels_are_drawn_uniformly_and_seeded(conditional_file, tmp_path):
    """Without --class, labels come from the seed's own stream, the one the Python API's
    labels_for(n, seed) documents, and the latents stay those of the seed: each sample is
    Generator.run on the seed's latent and label. Another seed draws other labels and latents."""
    from runtime.generator import Generator
    gen = Generator.from_file(conditional_file)
    drawn = {}
    for seed in (1, 2):
        out_dir, rows = _ganrun(conditional_file, tmp_path / str(seed), "--n", "200", "--seed",
                                str(seed))
        classes = [int(r["class"]) for r in rows]
        assert classes == gen.labels_for(200, seed).tolist()
        want = _stream(gen, 200, seed, classes)
        for i in (0, 1, 99, 199):
            np.testing.assert_array_equal(_tile(out_dir, i), want[i])
        counts = np.bincount(classes, minlength=10)
        assert counts.min() >= 5 and counts.max() <= 40  # every class, none dominant (n = 200)
        drawn[seed] = classes, _tile(out_dir, 0)
    assert drawn[1][0] != drawn[2][0]
    # the same label, another latent: seed 2's first sample made with seed 1's first label
    assert not np.array_equal(_stream(gen, 1, 2, drawn[1][0][:1])[0], drawn[1][1])


def test_class_all_gives_one_row_per_class(conditional_file, tmp_path):
    _, rows = _ganrun(conditional_file, tmp_path, "--n", "30", "--cols", "3", "--class", "all")
    assert [int(r["class"]) for r in rows] == [k for k in range(10) for _ in range(3)]


def test_keep_and_min_confidence_keep_the_asked_class(conditional_file, tmp_path):
    """Each sample that --keep or --min-confidence keeps is the generator's output for its
    place in the seed's stream and the label asked there, and labels.csv gives that label."""
    from runtime.generator import Generator
    gen = Generator.from_file(conditional_file)
    # --keep 0.5 --n 8: 16 samples tried, the first 8 asked as 2, the next 8 as 5
    out_dir, kept = _ganrun(conditional_file, tmp_path / "keep", "--n", "8", "--keep", "0.5",
                            "--class", "2,5")
    asked = gen.labels_for(16, 0, [2, 5])
    assert asked.tolist() == [2] * 8 + [5] * 8 and len(kept) == 8
    where = _positions(out_dir, kept, _stream(gen, 16, 0, asked))
    assert [r["class"] for r in kept] == [str(asked[j]) for j in where]
    # without --class, labels drawn from the seed's stream, judged and kept with their samples
    out_dir, kept = _ganrun(conditional_file, tmp_path / "drawn", "--n", "8", "--keep", "0.5",
                            "--seed", "3")
    asked = gen.labels_for(16, 3)
    where = _positions(out_dir, kept, _stream(gen, 16, 3, asked))
    assert [r["class"] for r in kept] == [str(asked[j]) for j in where]
    out_dir, sure = _ganrun(conditional_file, tmp_path / "sure", "--n", "4", "--class", "1",
                            "--min-confidence", "0")
    # --min-confidence still asks the classifier: a sample is kept where it agrees with the ask
    assert [r["class"] for r in sure] == ["1"] * 4 and all("confidence" in r for r in sure)
    # its samples lie anywhere in the tries it may make before it gives up
    tries = max(MIN_TRIES, TRIES_PER_SAMPLE * 4)
    _positions(out_dir, sure, _stream(gen, tries, 0, np.ones(tries, np.int64)))


def test_walk_holds_each_tiles_class(conditional_file, tmp_path):
    """Every frame of the GIF is, tile for tile, Generator.run on that frame's latents with each
    tile's asked class."""
    from PIL import ImageSequence

    from runtime.core.images import GridCanvas, to_uint8
    from runtime.generator import Generator
    from runtime.walk import walk_latents
    gen = Generator.from_file(conditional_file)
    h, w = gen.info.sample_shape[:2]
    frames = {}
    for spec, labels in (("7", [7] * 4), ("3,8", [3, 3, 8, 8])):
        out = tmp_path / f"walk-{spec}.gif"
        result = run_cli("-m", "runtime.cli", "--model", str(conditional_file), "--n", "4",
                         "--walk", "2", "--class", spec, "--quiet", "--out", str(out))
        assert result.returncode == 0, result.stderr
        with Image.open(out) as gif:
            got = [np.asarray(f.convert("L")) for f in ImageSequence.Iterator(gif)]
        assert len(got) == 24
        for f, z in enumerate(walk_latents(4, gen.info.spec, 2, seed=0)):
            canvas = GridCanvas(4, (h, w))
            for i, tile in enumerate(to_uint8(gen.run(z, np.asarray(labels)),
                                              gen.info.output_range)):
                canvas.put(i, tile)
            scale = got[f].shape[1] // canvas.pixels.shape[1]  # the GIF is enlarged for viewing
            np.testing.assert_array_equal(got[f][::scale, ::scale], canvas.pixels,
                                          err_msg=f"--class {spec}, frame {f}")
        frames[spec] = got
    assert not np.array_equal(frames["7"][12], frames["3,8"][12])


def test_a_class_the_model_lacks_is_a_one_line_error(conditional_file, tmp_path):
    result = run_cli("-m", "runtime.cli", "--model", str(conditional_file), "--class", "12",
                     "--out", str(tmp_path / "x.png"))
    assert_one_line_error(result, "'12'", "choose from 0, 1")
    assert not (tmp_path / "x.png").exists()


def test_the_python_api_takes_labels(conditional_file):
    from runtime.generator import Generator
    gen = Generator.from_file(conditional_file)
    assert gen.labels_for(5, seed=0, classes=[4]).tolist() == [4] * 5
    labels = gen.labels_for(5, seed=0, classes=[4, 9])
    assert labels.tolist() == [4, 4, 4, 9, 9]
    by_batch = np.concatenate(list(gen.generate(5, seed=0, batch=2, labels=labels)))
    whole = np.concatenate(list(gen.generate(5, seed=0, batch=5, labels=labels)))
    np.testing.assert_array_equal(by_batch, whole)
    z = np.random.default_rng(0).standard_normal((5, gen.info.latent_dim)).astype(np.float32)
    np.testing.assert_array_equal(whole, gen.run(z, labels))  # sample i made as labels[i]
    other = np.concatenate(list(gen.generate(5, seed=0, labels=gen.labels_for(5, 0, [9]))))
    assert not np.array_equal(whole, other)
