"""ganrun and the runtime package: light imports, real PNGs, determinism, bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, assert_one_line_error, cli, save_graph

HEAVY = ("tensorflow", "keras", "training", "export", "tf2onnx", "matplotlib")
# Light, but start-up time that plain generation does without (the score classes, Pillow).
DEFERRED = ("dataclasses", "runtime.core.scores", "PIL", "runtime.core.progress")


def ganrun(*args, cwd=None):
    """ganrun in this process, through its entry point's wrapper (test_install and the README
    example below start it as a fresh process)."""
    return cli("runtime.cli", *args, cwd=cwd or ROOT)


@pytest.fixture(scope="module")
def model(exported_runs):
    return exported_runs["mlp-mnist"] / "export" / "generator.fp32.onnx"


def test_runtime_loads_no_heavy_module(model, tmp_path):
    code = ("import sys, runtime.cli, runtime.generator, runtime.render\n"
            f"from runtime.cli import main\n"
            f"main.main(['--model', {str(model)!r}, '--n', '4', '--out', {str(tmp_path / 'g.png')!r}],"
            " standalone_mode=False)\n"
            f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]\n"
            "assert not heavy, heavy\n"
            f"deferred = [m for m in {DEFERRED!r} if m in sys.modules]\n"
            "assert not deferred, deferred\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_grid_png_has_the_right_size_and_same_seed_gives_same_bytes(model, tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    for out, seed in ((a, "1"), (b, "1"), (c, "2")):
        result = ganrun("--model", str(model), "--n", "25", "--seed", seed, "--out", str(out))
        assert result.returncode == 0, result.stderr
    with Image.open(a) as img:
        # 5x5 tiles of 28 px with 2 px gutters = 152 px, enlarged 3x for viewing.
        assert img.size == (456, 456) and img.mode == "L"
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_walk_writes_a_looping_gif_of_k_times_the_frames(model, tmp_path):
    from runtime.walk import FRAMES_PER_STEP, slerp
    out = tmp_path / "walk.gif"
    result = ganrun("--model", str(model), "--n", "4", "--walk", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as img:
        assert img.format == "GIF" and img.n_frames == 3 * FRAMES_PER_STEP
        assert img.size == (4 * 62, 4 * 62)  # 2x2 tiles of 28 px, 2 px gutters, enlarged 4x
        first = np.asarray(img.convert("L"))
        img.seek(1)
        assert not np.array_equal(first, np.asarray(img.convert("L")))  # it moves
    # Spherical interpolation: the ends are the keys, the middle keeps their norm.
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 5, 100))
    np.testing.assert_allclose(slerp(a, b, 0.0), a, atol=1e-6)
    np.testing.assert_allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = np.linalg.norm(slerp(a, b, 0.5), axis=1)
    assert np.all(mid > 0.9 * np.minimum(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)))


@pytest.mark.parametrize("shape", [(1, 1), (28, 28), (3, 457)])
def test_png_writer_round_trips_through_pillow(shape, tmp_path):
    """ganrun writes PNGs without Pillow (start-up time); Pillow must read back the pixels."""
    from runtime.core.images import save_png
    pixels = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    save_png(pixels, tmp_path / "a.png", scale=2)
    with Image.open(tmp_path / "a.png") as img:
        assert img.format == "PNG" and img.mode == "L"
        assert np.array_equal(np.asarray(img), pixels.repeat(2, 0).repeat(2, 1))


def test_samples_do_not_depend_on_batch_size(model):
    from runtime.generator import Generator
    gen = Generator.from_file(model)
    one = np.concatenate(list(gen.generate(10, seed=3, batch=10)))
    many = np.concatenate(list(gen.generate(10, seed=3, batch=3)))
    np.testing.assert_allclose(one, many, atol=1e-6)


def test_keep_returns_the_top_fraction_by_the_discriminator(model, tmp_path):
    """ganrun --keep 0.25 --n 6: of the 24 samples that the same seed generates, the 6 that
    the discriminator file (run here in a session of the test's own) scores highest, in
    generated order, as PNGs read back; small batches exercise the streaming choice."""
    import onnxruntime as ort

    from runtime.generator import Generator
    from runtime.core.images import to_uint8
    gen = Generator.from_file(model)
    samples = np.concatenate(list(gen.generate(24, seed=4)))
    session = ort.InferenceSession(str(model.parent / "discriminator.int8.onnx"),
                                   providers=["CPUExecutionProvider"])
    logits = session.run(["logit"], {"sample": samples})[0].ravel()
    top = np.sort(np.argsort(-logits, kind="stable")[:6])
    result = ganrun("--model", str(model), "--n", "6", "--keep", "0.25", "--seed", "4",
                    "--batch", "5", "--out", str(tmp_path / "g.png"), "--out-dir",
                    str(tmp_path / "kept"))
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "kept").glob("sample_*.png"))
    assert len(files) == 6
    want = to_uint8(samples[top], gen.info.output_range)
    for path, tile in zip(files, want):
        with Image.open(path) as img:
            assert np.array_equal(np.asarray(img), tile), path
    assert not (tmp_path / "kept" / "labels.csv").exists()


def test_keep_needs_the_discriminator_of_the_same_checkpoint(model, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "g.onnx").write_bytes(model.read_bytes())
    assert_one_line_error(ganrun("--model", str(alone / "g.onnx"), "--keep", "0.5", "--out",
                                 str(tmp_path / "a.png")), "needs the discriminator")
    # The discriminator of another checkpoint beside it is refused, not used.
    import onnx
    other = onnx.load(str(model.parent / "discriminator.int8.onnx"))
    for prop in other.metadata_props:
        if prop.key == "gan.checkpoint":
            prop.value = "epoch_999"
    onnx.save(other, str(alone / "discriminator.int8.onnx"))
    assert_one_line_error(ganrun("--model", str(alone / "g.onnx"), "--keep", "0.5", "--out",
                                 str(tmp_path / "a.png")), "is not the discriminator of")
    assert not (tmp_path / "a.png").exists()


def test_out_dir_writes_one_png_per_sample(model, tmp_path):
    result = ganrun("--model", str(model), "--n", "5", "--out", str(tmp_path / "g.png"),
                    "--out-dir", str(tmp_path / "each"), "--batch", "2")
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "each").glob("*.png"))
    assert len(files) == 5
    with Image.open(files[0]) as img:
        assert img.size == (28, 28)


def test_gan_1d_models_write_a_scatter_or_csv(exported_runs, tmp_path):
    export = exported_runs["gan-1d"] / "export" / "generator.fp32.onnx"
    assert_one_line_error(ganrun("--model", str(export), "--walk", "3", "--out",
                                 str(tmp_path / "w.gif")), "gan-1d models draw a scatter")
    assert_one_line_error(ganrun("--model", str(export), "--class", "1", "--out",
                                 str(tmp_path / "c.png")), "gan-1d has no classes")
    assert not list(tmp_path.iterdir())
    result = ganrun("--model", str(export), "--n", "50", "--out", str(tmp_path / "p.csv"))
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "x,y" and len(rows) == 51
    result = ganrun("--model", str(export), "--n", "50", "--out", str(tmp_path / "p.png"))
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "p.png") as img:
        assert img.size == (480, 480)


def test_shipped_models_load_and_agree_with_their_manifests():
    from runtime.core.files import sha256_file
    from runtime.generator import Generator
    from runtime.shipped import MODELS_DIR, load_index
    from training.config import REGISTRY
    index = load_index()
    assert index["models"][index["default"]]["dataset"] == "mnist"
    # every seed system of the articles ships its generator, and so does the conditional default
    from training.config import OWN
    shipped = {entry["arch"] for entry in index["models"].values()}
    assert {name for name, cfg in REGISTRY.items() if cfg.article != OWN} <= shipped
    assert shipped <= set(REGISTRY)
    assert index["models"][index["default"]]["conditional"]
    total = 0
    for name, entry in index["models"].items():
        manifest = json.loads((MODELS_DIR / name / "manifest.json").read_text())
        # No path of the machine that made it: relative, and inside the repository (runs/).
        assert not manifest["checkpoint"].startswith("/")
        assert (MODELS_DIR / name / manifest["checkpoint"]).resolve().is_relative_to(ROOT), \
            f"{name}'s manifest points outside the repository: ship it from a run under runs/"
        listed = {f["precision"]: f for f in manifest["files"]}
        assert set(listed) == set(entry["files"])
        for precision, rel in entry["files"].items():
            path = MODELS_DIR / rel
            assert sha256_file(path) == listed[precision]["sha256"], path
            assert path.stat().st_size == listed[precision]["bytes"]
            total += listed[precision]["bytes"]
            gen = Generator.from_file(path)
            assert gen.info.arch == manifest["arch"] == entry["arch"]
            assert gen.info.precision == precision
            assert float(gen.info.metadata["gan.epoch"]) == manifest["epoch"] == entry["epoch"]
            assert gen.info.metadata.get("gan.weights", "raw") == entry["weights"]
        if "discriminator" in entry:  # what ganrun --keep uses
            path, listed = MODELS_DIR / entry["discriminator"], manifest["discriminator"]
            assert sha256_file(path) == listed["sha256"] and path.stat().st_size == listed["bytes"]
            total += listed["bytes"]
    from export.ship import BUDGET_BYTES
    assert total <= BUDGET_BYTES  # the budget for everything shipped


# Shipped models whose files predate today's export rules: each leaves this set when it is
# shipped again (docs/reproduce.md). A new export rule fails every model here until each is
# shipped with it, which is the point: a shipped file is made the way the exporter makes files.
MADE_BY_EARLIER_RULES = {"dcgan-mnist"}


def test_every_shipped_model_is_made_by_todays_export_rules():
    """A manifest lists the rules that made its files (export.exporter.EXPORT_RULES): a model
    shipped without them, or before a rule was added, fails here until it is exported again."""
    from export.exporter import EXPORT_RULES
    from runtime.shipped import MODELS_DIR, load_index
    earlier = {name for name in load_index()["models"]
               if json.loads((MODELS_DIR / name / "manifest.json").read_text()).get(
                   "export_rules") != EXPORT_RULES}
    assert earlier == MADE_BY_EARLIER_RULES


@pytest.mark.slow
def test_shipped_files_reproduce_their_manifests_quality_figures():
    """The documents' figures for the shipped files come from their manifests: regenerate each
    file's validation samples (the same seeded latents) on this machine and score them again.
    Other CPUs may round a few activations differently, hence the small tolerances."""
    from runtime.generator import Generator
    from runtime.shipped import MODELS_DIR, load_index
    from training.config import get_config
    from training.evaluate import generate, score_samples
    for name, entry in load_index()["models"].items():
        manifest = json.loads((MODELS_DIR / name / "manifest.json").read_text())
        cfg = get_config(entry["arch"])
        for listed in manifest["files"]:
            claimed = listed["quality"]
            gen = Generator.from_file(MODELS_DIR / name / listed["file"])
            ours = score_samples(cfg, generate(gen.run, cfg, claimed["n_samples"], 500))
            where = f"{name} {listed['precision']}"
            if "energy_distance" in claimed:  # gan-1d
                assert ours.energy_distance == pytest.approx(claimed["energy_distance"],
                                                                abs=2e-4), where
                continue
            assert ours.classifier_score == pytest.approx(claimed["classifier_score"],
                                                             abs=0.02), where
            assert ours.classes_covered == claimed["classes_covered"], where
            assert ours.kl_to_uniform == pytest.approx(claimed["kl_to_uniform"], abs=0.005), where
            if ours.frechet_distance is not None:  # None: no test split on this machine
                assert ours.frechet_distance == pytest.approx(claimed["frechet_distance"],
                                                                 rel=0.02), where


def test_list_and_model_by_name(tmp_path):
    from runtime.shipped import load_index
    index = load_index()
    listed = ganrun("--list")
    assert listed.returncode == 0, listed.stderr
    for name in index["models"]:
        assert name in listed.stdout
    assert f"{index['default']} (default)" in listed.stdout
    named = ganrun("--model", index["default"], "--n", "4", "--out", str(tmp_path / "a.png"))
    default = ganrun("--n", "4", "--out", str(tmp_path / "b.png"))
    assert named.returncode == default.returncode == 0, named.stderr + default.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert_one_line_error(ganrun("--model", "no-such-model", "--out", str(tmp_path / "c.png")),
                          "no shipped model named 'no-such-model'", index["default"])


def test_embedded_default_generates_digits_the_evaluator_recognises(tmp_path):
    from runtime.generator import Generator
    from runtime.shipped import MODELS_DIR, load_index, model_entry, model_file
    from training.classifier import load_classifier
    path = model_file(model_entry())
    gen = Generator.from_file(path)
    manifest = json.loads((MODELS_DIR / load_index()["default"] / "manifest.json").read_text())
    assert gen.info.precision == "int8" and gen.info.arch == manifest["arch"]
    result = ganrun("--n", "25", "--out", str(tmp_path / "grid.png"))
    assert result.returncode == 0, result.stderr
    samples = np.concatenate(list(gen.generate(1000, seed=0)))
    lo, hi = gen.info.output_range
    probs, _ = load_classifier("mnist").predict((samples - lo) / (hi - lo))
    counts = np.bincount(probs.argmax(1), minlength=10)
    assert (counts >= 10).all(), counts  # every digit appears
    # Many are confidently one digit (untrained generators score ~0 here). The quality goals
    # (classifier score >= 9) are measured in the knob report, not asserted.
    assert np.mean(probs.max(1) >= 0.9) > 0.3


TINY = "TINY"  # in a case's arguments: the tiny exported generator (the `model` fixture)


@pytest.mark.parametrize("args, fragment", [
    # --walk
    (["--model", TINY, "--walk", "1", "--out", "w.gif"], "--walk must be between 2 and"),
    (["--model", TINY, "--walk", "3", "--out", "w.png"], "name --out *.gif"),
    (["--model", TINY, "--out", "grid.gif"], "only for --walk K"),
    (["--model", TINY, "--walk", "3", "--out", "w.gif", "--out-dir", "each"],
     "does not combine with --walk"),
    (["--model", TINY, "--walk", "3", "--n", "401", "--out", "w.gif"], "at most 400 tiles"),
    # --keep
    (["--model", TINY, "--keep", "0"], "in (0, 1], got 0"),
    (["--model", TINY, "--keep", "1.5"], "in (0, 1], got 1.5"),
    (["--model", TINY, "--keep", "-0.5"], "in (0, 1], got -0.5"),
    (["--model", TINY, "--keep", "0.5", "--class", "7"], "does not combine with --class"),
    (["--model", TINY, "--keep", "0.5", "--walk", "3", "--out", "w.gif"], "does not combine"),
    (["--model", TINY, "--keep", "0.0001", "--n", "1000"], "above 2,000,000"),
    (["--model", TINY, "--keep", "0.5", "--n", "20000"], "at most 10,000"),
    # numbers without bounds
    (["--model", TINY, "--cols", "0", "--out", "g.png"], "--cols"),
    (["--model", TINY, "--cols", "100000", "--out", "g.png"], "--cols"),
    (["--model", TINY, "--n", "10000", "--cols", "10000", "--out", "g.jpg"],
     "above 65,500 per side"),
    (["--model", TINY, "--threads", "1000000", "--out", "g.png"], "--threads"),
    (["--model", TINY, "--seed", "-1", "--out", "g.png"], "--seed"),
    (["--model", TINY, "--seed", str(2**32), "--out", "g.png"], "--seed"),
    (["--model", TINY, "--batch", "0", "--out", "g.png"], "--batch"),
    # --class on an unconditional model, where it filters by the classifier (a conditional
    # model's --class combines with --walk and needs no bound on --n: tests/test_conditional.py)
    (["--model", "mlp-smooth-mnist", "--class", "12", "--out-dir", "each"],
     "not a class of this model"),
    (["--model", "mlp-smooth-mnist", "--min-confidence", "1.5", "--out-dir", "each"],
     "a probability in [0, 1]"),
    (["--model", "mlp-smooth-mnist", "--class", "7", "--walk", "3", "--out", "w.gif"],
     "do not combine with --walk"),
    (["--model", "mlp-smooth-mnist", "--class", "7", "--n", "20000", "--out-dir", "each"],
     "at most 10,000"),
    (["--model", "mlp-smooth-mnist", "--class", "7", "--min-confidence", "1", "--n", "50",
      "--out-dir", "each"], "this model rarely makes them"),
    # the shipped default
    (["--n", "0"], "--n must be between 1 and"),
    (["--n", "-5"], "--n must be between 1 and"),
    (["--n", "100000000"], "--n must be between 1 and"),
    (["--out", "grid.xyz"], "cannot write .xyz"),
    (["--out", "/no/such/folder/grid.png"], "does not exist"),
    (["--model", "/no/such/model.onnx"], "does not exist"),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(args, fragment, request, tmp_path):
    if TINY in args:  # asked for only here: the other cases need no exported run
        args = [str(request.getfixturevalue("model")) if a == TINY else a for a in args]
    result = ganrun(*args, cwd=tmp_path)
    assert_one_line_error(result, fragment)
    assert result.returncode == 2, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_device_cuda_runs_on_a_gpu_and_is_refused_without_one(tmp_path):
    from runtime.generator import choose_device
    result = ganrun("--device", "cuda", "--out", str(tmp_path / "grid.png"))
    if choose_device("auto").gpu:
        assert result.returncode == 0, result.stderr
        assert "device: cuda" in result.stderr
    else:
        assert_one_line_error(result, "no usable CUDA GPU")
        assert list(tmp_path.iterdir()) == []


def test_models_that_are_not_generators_are_refused(model, tmp_path):
    from onnx import TensorProto, helper
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model.read_bytes()[:2000])
    not_onnx = tmp_path / "text.onnx"
    not_onnx.write_text("hello")
    graph = helper.make_graph([helper.make_node("Identity", ["z"], ["sample"])], "g",
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 4, 4])],
                              [helper.make_tensor_value_info("sample", TensorProto.FLOAT, [None, 4, 4])])
    wrong_rank = save_graph(graph, tmp_path / "rank3.onnx", {
        "gan.arch": "x", "gan.latent_dim": "4", "gan.sample_shape": "4",
        "gan.output_range": "0,1", "gan.precision": "fp32"})
    no_meta = save_graph(graph, tmp_path / "nometa.onnx", {})
    out = tmp_path / "out.png"
    for path, fragment in ((truncated, "not a loadable ONNX model"),
                           (not_onnx, "not a loadable ONNX model"),
                           (wrong_rank, "does not have the generator interface"),
                           (no_meta, "not a gan-edge generator")):
        assert_one_line_error(ganrun("--model", str(path), "--out", str(out)), fragment)
        assert not out.exists()


def test_class_choice_returns_only_that_class_and_a_labelled_data_set(tmp_path):
    """The shipped default, asked for sevens: the Keras classifier (not the runtime's int8
    copy) reads the PNG files back and must see sevens; labels.csv lists them all."""
    from training.classifier import load_classifier
    result = ganrun("--class", "7", "--min-confidence", "0.9", "--n", "12", "--out",
                    str(tmp_path / "grid.png"), "--out-dir", str(tmp_path / "sevens"))
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "sevens" / "labels.csv").read_text().splitlines()
    assert rows[0] == "file,class,confidence" and len(rows) == 13
    images = []
    for row in rows[1:]:
        name, label, confidence = row.split(",")
        assert label == "7" and float(confidence) >= 0.9
        with Image.open(tmp_path / "sevens" / name) as img:
            images.append(np.asarray(img, np.float32) / 255.0)
    probs, _ = load_classifier("mnist").predict(np.stack(images))
    assert (probs.argmax(1) == 7).all(), probs.argmax(1)


def test_class_names_of_fashion_mnist_are_accepted():
    from runtime.classify import Classifier
    from runtime.core.errors import GanEdgeError
    classifier = Classifier("fashion_mnist")
    assert classifier.parse("sneaker, Bag") == [7, 8] and classifier.parse("0,T-shirt/top") == [0]
    with pytest.raises(GanEdgeError, match="choose from T-shirt/top, Trouser"):
        classifier.parse("Hat")


def test_auto_precision_prefers_the_devices_file_and_falls_back_to_any():
    from runtime.core.errors import GanEdgeError
    from runtime.shipped import model_file
    both = {"arch": "x", "files": {"int8": "x/generator.int8.onnx", "fp16": "x/generator.fp16.onnx"}}
    int8_only = {"arch": "x", "files": {"int8": "x/generator.int8.onnx"}}
    assert model_file(both).name == "generator.int8.onnx"
    assert model_file(both, gpu=True).name == "generator.fp16.onnx"
    assert model_file(int8_only, gpu=True).name == "generator.int8.onnx"  # shipped without fp16
    with pytest.raises(GanEdgeError, match="has no fp16 file; choose one of int8"):
        model_file(int8_only, "fp16")


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_precision_picks_that_file_of_a_shipped_model(precision, tmp_path):
    """ganrun --model NAME --precision P draws with NAME's P file: its note names the file, and
    its grid is the one that file draws when passed as --model."""
    from runtime.shipped import MODELS_DIR
    picked = ganrun("--model", "mlp-mnist", "--precision", precision, "--n", "9", "--out",
                    str(tmp_path / "picked.png"))
    assert picked.returncode == 0, picked.stderr
    assert picked.stderr.startswith(f"generator.{precision}.onnx: mlp-mnist, {precision};")
    direct = ganrun("--model", str(MODELS_DIR / "mlp-mnist" / f"generator.{precision}.onnx"),
                    "--n", "9", "--out", str(tmp_path / "direct.png"))
    assert direct.returncode == 0, direct.stderr
    assert (tmp_path / "picked.png").read_bytes() == (tmp_path / "direct.png").read_bytes()


def test_precision_a_model_lacks_or_with_a_file_is_one_line(model, tmp_path):
    assert_one_line_error(ganrun("--model", "dcgan-mnist", "--precision", "fp16", "--out",
                                 str(tmp_path / "a.png")), "has no fp16 file; choose one of int8")
    assert_one_line_error(ganrun("--model", str(model), "--precision", "int8", "--out",
                                 str(tmp_path / "a.png")), "picks among a shipped model's files")
    assert list(tmp_path.iterdir()) == []


class _SessionWithoutCuda:
    """onnxruntime's session where its CUDA provider failed to load: a real CPU session that,
    as onnxruntime does then, lists the CPU provider alone."""

    real = None  # onnxruntime's own class, kept before the test replaces it with this one

    def __init__(self, path, options, providers):
        assert providers[0] == "CUDAExecutionProvider"
        self._session = self.real(path, options, providers=["CPUExecutionProvider"])

    def __getattr__(self, name):
        return getattr(self._session, name)


@pytest.mark.parametrize("asked", ["auto", "cuda"])
def test_a_cuda_provider_that_does_not_start_falls_back_or_is_refused(model, tmp_path, monkeypatch,
                                                                     asked):
    """A GPU machine whose CUDA libraries do not load: auto says it runs on the CPU and draws
    what the CPU draws; --device cuda, which asked for the GPU, is one line that names the
    library that failed and how to get it."""
    import onnxruntime as ort

    from runtime import generator
    gpu = generator.Device(("CUDAExecutionProvider", *generator.CPU), True, "device: cuda",
                           required=asked == "cuda",
                           load_log="Failed to load libcudnn.so.9: cannot open shared object file")
    monkeypatch.setattr(generator, "choose_device", lambda device: gpu)
    monkeypatch.setattr(_SessionWithoutCuda, "real", ort.InferenceSession)
    monkeypatch.setattr(ort, "InferenceSession", _SessionWithoutCuda)
    result = ganrun("--model", str(model), "--device", asked, "--n", "4", "--out",
                    str(tmp_path / "gpu.png"))
    if asked == "cuda":
        assert_one_line_error(result, "could not start CUDA (Failed to load libcudnn.so.9",
                              "onnxruntime-gpu[cuda,cudnn]")
        assert list(tmp_path.iterdir()) == []
        return
    assert result.returncode == 0, result.stderr
    assert "device: cpu (onnxruntime could not start CUDA)" in result.stderr
    monkeypatch.undo()
    cpu = ganrun("--model", str(model), "--device", "cpu", "--n", "4", "--out",
                 str(tmp_path / "cpu.png"))
    assert cpu.returncode == 0, cpu.stderr
    assert (tmp_path / "gpu.png").read_bytes() == (tmp_path / "cpu.png").read_bytes()
