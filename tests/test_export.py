"""ganexport: ONNX parity with Keras, quantized variants within bounds, metadata, bad input."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import CALIBRATION, assert_one_line_error, run_cli
from training.config import REGISTRY


class _Manifests(dict):
    """Each tiny run's manifest, of the session's one export of it, read on first use."""

    def __init__(self, runs):
        super().__init__()
        self.runs = runs

    def __missing__(self, arch):
        self[arch] = json.loads((self.runs[arch] / "export" / "manifest.json").read_text())
        return self[arch]


@pytest.fixture(scope="module")
def exports(exported_runs):
    return _Manifests(exported_runs)


def _keras_generator(run, weights="raw"):
    """The Keras generator an export came from: the trained one, or the averaged one."""
    import keras

    from runtime.core.artifacts import KERAS_GENERATOR_FILES
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    return keras.saving.load_model(ckpt / KERAS_GENERATOR_FILES[weights], compile=False)


# What a user may rely on, stated here independently of export/validate.py's own bounds: the
# largest (int8: the 99.9th percentile) and the mean absolute difference from Keras, as
# fractions of the output range.
PROMISED_MAX = {"fp32": 5e-6, "fp16": 1e-2, "int8": 0.5}
PROMISED_SHARE = {"fp32": 1.0, "fp16": 1.0, "int8": 0.999}
PROMISED_MEAN = {"fp32": 1e-6, "fp16": 2e-3, "int8": 0.03}


# Every system's export, in `make test`; in test-fast one of each family (MLP, DCGAN,
# conditional, points): the others take their family's code paths.
FAST_LOOP = {"mlp-mnist", "dcgan-mnist", "cgan-mnist", "gan-1d"}
EVERY_ARCH = [pytest.param(arch, marks=() if arch in FAST_LOOP else pytest.mark.slow)
              for arch in sorted(REGISTRY)]


@pytest.mark.parametrize("arch", EVERY_ARCH)
def test_every_precision_matches_keras_within_what_the_readme_promises(arch, exports, exported_runs):
    from runtime.generator import Generator
    from training.config import get_config
    cfg = get_config(arch)
    keras_g = _keras_generator(exported_runs[arch], exports[arch]["weights"])
    lo, hi = cfg.output_range
    files = {f["precision"]: f for f in exports[arch]["files"]}
    assert set(files) == {"fp32", "int8", "fp16"}
    # gan-edge's own sums stay within FP32_SUM_TERMS: its fp32 bound is the plain one
    from export.validate import MAX_ABS
    assert files["fp32"]["parity"]["bound"] == MAX_ABS["fp32"] * (hi - lo)
    rng = np.random.default_rng(42)  # latents the export's own validation never saw
    for precision, entry in files.items():
        gen = Generator.from_file(exported_runs[arch] / "export" / entry["file"])
        assert gen.conditional == cfg.conditional
        diffs = []
        for batch in (1, 5, 100):
            z = rng.standard_normal((batch, cfg.latent_dim)).astype(np.float32)
            if cfg.conditional:  # every class, each on several latents
                labels = rng.integers(0, cfg.n_classes, batch)
                got = gen.run(z, labels)
                want = keras_g([z, labels.astype(np.int32)], training=False).numpy()
            else:
                got, want = gen.run(z), keras_g(z, training=False).numpy()
            assert got.shape == want.shape == (batch, *cfg.sample_shape)
            diffs.append(np.abs(got - want).ravel())
        diffs = np.concatenate(diffs)
        assert np.quantile(diffs, PROMISED_SHARE[precision]) <= PROMISED_MAX[precision] * (hi - lo), \
            precision
        assert diffs.mean() <= PROMISED_MEAN[precision] * (hi - lo), precision


def test_metadata_describes_the_model(exports, exported_runs):
    from training.config import get_config
    cfg = get_config("dcgan-mnist")
    path = exported_runs["dcgan-mnist"] / "export" / "generator.int8.onnx"
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["gan.arch"] == "dcgan-mnist"
    assert meta["gan.latent_dim"] == "100" and meta["gan.sample_shape"] == "28,28,1"
    assert meta["gan.output_range"] == "0,1" and meta["gan.precision"] == "int8"
    assert meta["gan.epoch"] == "2" and "classifier_score" in json.loads(meta["gan.metrics"])
    manifest = exports["dcgan-mnist"]
    assert meta["gan.source_sha256"] == manifest["source_sha256"]
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["z"]
    assert [o.name for o in model.graph.output] == ["sample"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert cfg.output_range == (0.0, 1.0)


def test_dcgan_files_carry_the_rewrite_and_int8_quantizes_every_conv(exports, exported_runs):
    """Every DCGAN file is the rewritten graph: no ConvTranspose (which has no int8 kernel),
    the last layer as taps + Col2Im; in int8 every Conv reads dequantized int8 weights."""
    folder = exported_runs["dcgan-mnist"] / "export"
    for precision in ("fp32", "int8", "fp16"):
        graph = onnx.load(str(folder / f"generator.{precision}.onnx")).graph
        ops = [n.op_type for n in graph.node]
        assert "ConvTranspose" not in ops and "Col2Im" in ops and ops.count("Conv") == 3, ops
    graph = onnx.load(str(folder / "generator.int8.onnx")).graph
    made_by = {out: n.op_type for n in graph.node for out in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert all(made_by.get(n.input[0]) == made_by.get(n.input[1]) == "DequantizeLinear"
               for n in convs)


def _conv_transpose_graph(c_in, c_out, size, bias, activation, opset=18):
    """A one-layer ONNX model: ConvTranspose 4x4 stride 2 pads 1 (Keras's 'same'), then
    optionally LeakyRelu, then a single-channel 5x5 Conv, as tf2onnx writes the DCGAN's."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(c_in * 7 + size)
    w = rng.standard_normal((c_in, c_out, 4, 4)).astype(np.float32)
    last = rng.standard_normal((1, c_out, 5, 5)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(last, "last")]
    ins = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b"))
        inits.append(numpy_helper.from_array(rng.standard_normal(1).astype(np.float32), "lb"))
        ins.append("b")
    nodes = [helper.make_node("ConvTranspose", ins, ["up"], kernel_shape=[4, 4], strides=[2, 2],
                              pads=[1, 1, 1, 1])]
    if activation:
        nodes.append(helper.make_node("LeakyRelu", ["up"], ["act"], alpha=0.2))
    nodes.append(helper.make_node("Conv", ["act" if activation else "up", "last",
                                           *(["lb"] if bias else [])], ["y"],
                                  kernel_shape=[5, 5], pads=[2, 2, 2, 2]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", c_in, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, 2 * size, 2 * size])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("c_in,c_out,size,bias,activation", [
    (3, 5, 7, True, True), (16, 32, 6, False, True), (8, 16, 5, True, False)])
def test_onnx_rewrite_computes_what_the_layers_compute(c_in, c_out, size, bias, activation):
    """export/rewrite.py's graph against the original, both run by onnxruntime: the same sums,
    so equal to rounding, with or without biases, with the activation moved or not."""
    import onnxruntime as ort

    from export.rewrite import rewrite
    original = _conv_transpose_graph(c_in, c_out, size, bias, activation)
    rewritten = rewrite(_conv_transpose_graph(c_in, c_out, size, bias, activation))
    onnx.checker.check_model(rewritten, full_check=True)
    ops = [n.op_type for n in rewritten.graph.node]
    assert "ConvTranspose" not in ops and "Col2Im" in ops
    assert (ops.index("LeakyRelu") < ops.index("Transpose")) if activation else "LeakyRelu" not in ops
    x = np.random.default_rng(1).standard_normal((3, c_in, size, size)).astype(np.float32)

    def run(model):
        return ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    want, got = run(original), run(rewritten)
    assert got.shape == want.shape == (3, 1, 2 * size, 2 * size)
    assert np.max(np.abs(got - want)) <= 1e-5 * max(1.0, np.abs(want).max())


def test_onnx_rewrite_below_opset_18_keeps_the_single_channel_conv():
    from export.rewrite import rewrite
    ops = [n.op_type for n in rewrite(_conv_transpose_graph(3, 5, 7, True, True, opset=17)
                                      ).graph.node]
    assert "ConvTranspose" not in ops and "Col2Im" not in ops and ops.count("Conv") == 2


def test_manifest_lists_files_with_hashes_and_figures(exports, exported_runs):
    from runtime.core.files import sha256_file
    run = exported_runs["mlp-mnist"]
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["arch"] == "mlp-mnist" and manifest["tools"]["tf2onnx"]
    from export.exporter import EXPORT_RULES
    assert manifest["export_rules"] == EXPORT_RULES  # the rules that made its files
    assert [f["int8_calibration_samples"] for f in manifest["files"] if f["precision"] == "int8"
            ] == [CALIBRATION]
    assert not Path(manifest["checkpoint"]).is_absolute()  # no path of this machine
    assert (run / "export" / manifest["checkpoint"]).resolve() == \
        sorted((run / "checkpoints").iterdir())[-1].resolve()
    for f in manifest["files"]:
        path = run / "export" / f["file"]
        assert f["bytes"] == path.stat().st_size and f["sha256"] == sha256_file(path)
        assert {"max_abs_batch_64", "tail_abs", "bound", "mean_abs"} <= set(f["parity"])
        assert f.get("int8_ranges") == ("percentile" if f["precision"] == "int8" else None)
        assert "classifier_score" in f["quality"]
    d = manifest["discriminator"]
    path = run / "export" / d["file"]
    assert d["bytes"] == path.stat().st_size and d["sha256"] == sha256_file(path)
    assert d["ranking"]["gain_kept"] >= 0.9 or not d["ranking"]["ranking_checked"]


@pytest.mark.parametrize("arch", EVERY_ARCH)
def test_discriminator_file_gives_the_keras_logits_of_its_checkpoint(arch, exports, exported_runs):
    """The exported discriminator is the checkpoint's, as logits (the sigmoid's inverse of
    what Keras outputs), close enough that ranking by it is ranking by Keras."""
    import keras
    import onnxruntime as ort

    import training.models  # noqa: F401  registers the custom dropout layer
    from training.config import get_config
    run = exported_runs[arch]
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    session = ort.InferenceSession(str(run / "export" / "discriminator.int8.onnx"),
                                   providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["gan.role"] == "discriminator" and meta["gan.arch"] == arch
    assert meta["gan.checkpoint"] == ckpt.name
    cfg = get_config(arch)
    generator = _keras_generator(run)
    z = np.random.default_rng(5).standard_normal((64, cfg.latent_dim)).astype(np.float32)
    labels = np.arange(64, dtype=np.int32) % max(cfg.n_classes, 1)
    inputs = (lambda x: [x, labels]) if cfg.conditional else (lambda x: x)
    samples = generator(inputs(z), training=False).numpy()
    prob = keras.saving.load_model(ckpt / "discriminator.keras", compile=False)(
        inputs(samples), training=False).numpy().ravel().astype(np.float64)
    want = np.log(prob) - np.log1p(-prob)
    feed = {"sample": samples, **({"label": labels.astype(np.int64)} if cfg.conditional else {})}
    got = session.run(["logit"], feed)[0].ravel()
    # int8 weights: a few percent of the logits' scale at most (10 % allowed)
    assert np.abs(got - want).max() <= 0.1 * np.abs(want).max(), (got, want)


def test_subpixel_rewrite_equals_conv_transpose():
    import keras

    from training.reformulation import subpixel_conv_transpose, subpixel_kernel
    keras.utils.set_random_seed(3)
    for c_in, c_out, size in ((3, 5, 7), (128, 128, 14)):
        layer = keras.layers.Conv2DTranspose(c_out, (4, 4), strides=2, padding="same")
        x = np.random.default_rng(0).standard_normal((2, size, size, c_in)).astype(np.float32)
        want = layer(x).numpy()
        kernel, bias = layer.get_weights()
        got = subpixel_conv_transpose(x, subpixel_kernel(kernel), np.tile(bias, 4)).numpy()
        assert got.shape == want.shape == (2, 2 * size, 2 * size, c_out)
        assert np.max(np.abs(got - want)) <= 1e-5


def test_validation_failure_is_typed_and_leaves_no_file(exported_runs, tmp_path, monkeypatch):
    from export import exporter, validate
    run = exported_runs["mlp-mnist"]
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    monkeypatch.setitem(validate.MAX_ABS, "int8", 0.0)  # no int8 file can pass this
    with pytest.raises(validate.ValidationError, match="above its bound") as failure:
        exporter.export_checkpoint(ckpt, tmp_path, ("fp32", "int8"), quality_samples=200,
                                   progress=lambda m: None, calibration=CALIBRATION)
    assert list(tmp_path.iterdir()) == []
    # It names the checkpoint, not the temp file that is gone with the temp folder.
    assert str(failure.value).startswith(f"{ckpt}, exported as int8.onnx: int8 differs")
    assert str(failure.value).endswith("; nothing was written")
    assert ".tmp-export" not in str(failure.value)


def test_int8_bound_holds_its_99_9th_percentile_not_its_worst_value(exports, exported_runs,
                                                                     monkeypatch):
    """A bound between the 99.9th percentile and the worst value passes; one under the 99.9th
    percentile fails: a single stray pixel does not refuse an int8 file, a spread error does."""
    from export import validate
    from export.sources import run_source
    from training.config import get_config
    run, cfg = exported_runs["dcgan-mnist"], get_config("dcgan-mnist")
    entry = next(f for f in exports["dcgan-mnist"]["files"] if f["precision"] == "int8")
    parity = entry["parity"]
    worst = max(v for k, v in parity.items() if k.startswith("max_abs_batch_"))
    assert parity["tail_share"] == 0.999 and parity["tail_abs"] < worst  # else nothing to tell
    lo, hi = cfg.output_range
    source = run_source(sorted((run / "checkpoints").iterdir())[-1],
                        exports["dcgan-mnist"]["weights"])
    path = run / "export" / entry["file"]
    between = (parity["tail_abs"] + worst) / 2
    monkeypatch.setitem(validate.MAX_ABS, "int8", between / (hi - lo))
    assert validate.validate(path, source, "int8", 200)["parity"] == \
        pytest.approx({**parity, "bound": between})
    monkeypatch.setitem(validate.MAX_ABS, "int8", parity["tail_abs"] * 0.9 / (hi - lo))
    with pytest.raises(validate.ValidationError, match=r"on 99\.9% of its values, above"):
        validate.validate(path, source, "int8", 200)


def test_quality_bound_refuses_a_lost_class_but_not_one_at_the_threshold():
    """A class the source makes clearly (at least twice the covered share) that the file no
    longer covers is a dropped mode; a class near the covered share, as an untrained
    generator's are, may tip either way; a class gained is no loss."""
    from export.validate import ValidationError, _quality
    from runtime.core.scores import ImageScores

    def scores(histogram, score=5.0):
        return ImageScores(n_samples=200, classifier_score=score, frechet_distance=None,
                           classes_covered=sum(h >= 0.01 for h in histogram),
                           class_histogram=histogram, kl_to_uniform=0.1, confident_share=0.5)
    source = scores([0.5, 0.485, 0.015, 0.0])
    assert _quality("f", scores([0.5, 0.49, 0.005, 0.005]), source)["classes_covered"] == 2
    assert _quality("f", scores([0.48, 0.48, 0.02, 0.02]), source)["classes_covered"] == 4
    with pytest.raises(ValidationError, match=r"classes lost: 1\).*no class lost"):
        _quality("f", scores([0.9, 0.005, 0.05, 0.045]), source)
    with pytest.raises(ValidationError, match="score within"):
        _quality("f", scores([0.5, 0.485, 0.015, 0.0], score=5.2), source)


def test_fp32_bounds_widen_with_the_longest_sum_of_the_source():
    """Each layer's terms per output value: Conv C*kh*kw, ConvTranspose C*ceil(k/s) per dim,
    Gemm and MatMul their inner size; fp32's bounds grow as the square root of the longest
    beyond FP32_SUM_TERMS, other precisions' do not."""
    from onnx import TensorProto, helper, numpy_helper

    from export.validate import FP32_SUM_TERMS, MAX_ABS, MEAN_ABS, bounds, longest_sum

    def graph(op, weight_shape, **attrs):
        w = numpy_helper.from_array(np.zeros(weight_shape, np.float32), "w")
        node = helper.make_node(op, ["x", "w"], ["y"], **attrs)
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        return helper.make_graph([node], "g", [x], [y], [w])
    assert longest_sum(graph("Conv", (3, 512, 5, 5))) == 512 * 25
    assert longest_sum(graph("Conv", (8, 4, 3, 3), group=2)) == 4 * 9
    assert longest_sum(graph("ConvTranspose", (256, 128, 4, 4), strides=[2, 2])) == 256 * 4
    assert longest_sum(graph("ConvTranspose", (100, 512, 4, 4))) == 100 * 16
    assert longest_sum(graph("ConvTranspose", (6, 4, 5, 5), strides=[2, 2], group=2)) == 3 * 9
    assert longest_sum(graph("Gemm", (10, 300), transB=1)) == 300
    assert longest_sum(graph("Gemm", (300, 10))) == 300
    assert longest_sum(graph("MatMul", (700, 10))) == 700
    # a weight first (x @ W with W as input 0 reads its last dim), through Identity, as Constant
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.zeros((3, 40), np.float32), "w")
    assert longest_sum(helper.make_graph([helper.make_node("MatMul", ["w", "x"], ["y"])], "g",
                                         [x], [y], [w])) == 40
    shared = [helper.make_node("Identity", ["w"], ["w2"]),
              helper.make_node("Gemm", ["x", "w2"], ["y"], transB=1)]
    assert longest_sum(helper.make_graph(shared, "g", [x], [y], [w])) == 40
    constant = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
                    np.zeros((8, 60, 3, 3), np.float32))),
                helper.make_node("Conv", ["x", "c"], ["y"])]
    assert longest_sum(helper.make_graph(constant, "g", [x], [y])) == 540
    short, long = graph("MatMul", (FP32_SUM_TERMS, 4)), graph("MatMul", (4 * FP32_SUM_TERMS, 4))
    assert bounds("fp32", (-1, 1), short) == (2 * MAX_ABS["fp32"], 2 * MEAN_ABS["fp32"])
    assert bounds("fp32", (-1, 1), long) == pytest.approx((4 * MAX_ABS["fp32"],
                                                           4 * MEAN_ABS["fp32"]))
    assert bounds("int8", (0, 1), long) == (MAX_ABS["int8"], MEAN_ABS["int8"])


def test_validate_alone_accepts_a_good_file_and_rejects_a_foreign_one(exports, exported_runs, tmp_path):
    good = exported_runs["mlp-mnist"] / "export" / "generator.fp32.onnx"
    from conftest import cli
    result = cli("export.cli", "--validate", str(good), "--quality-samples", "200")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parity"]["max_abs_batch_64"] <= 1e-5
    model = onnx.load(str(good))
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    assert_one_line_error(cli("export.cli", "--validate", str(foreign)),
                          "not a gan-edge generator")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    assert_one_line_error(cli("export.cli", "--validate", str(junk)),
                          "not a loadable ONNX model")


@pytest.mark.slow  # the Fashion-MNIST system's export, which the fast loop leaves out
def test_export_scores_against_the_data_the_run_was_trained_on(exports, exported_runs, tiny_mnist):
    """The tiny runs train on a --data-dir; export must score against that folder's test split,
    not reach for the real data set (CI hides the system's copies, as on a fresh machine)."""
    from training.evaluate import score_onnx
    run = exported_runs["mlp-fashion"]
    fp32 = next(f for f in exports["mlp-fashion"]["files"] if f["precision"] == "fp32")
    want = score_onnx(run / "export" / "generator.fp32.onnx", 200, data_dir=tiny_mnist)
    assert fp32["quality"]["frechet_distance"] == pytest.approx(want.frechet_distance, rel=1e-5)


@pytest.mark.slow
def test_export_without_a_test_split_says_so_and_validates_the_rest(exported_runs, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(exported_runs["mlp-mnist"], run, ignore=shutil.ignore_patterns("export"))
    config = json.loads((run / "config.json").read_text())
    config["data"]["dir"] = str(tmp_path / "moved-away")  # the data the run was trained on is gone
    (run / "config.json").write_text(json.dumps(config))
    result = run_cli("-m", "export.cli", "--run", str(run), "--precision", "fp32,int8",
                     "--quality-samples", "200", "--calibration-samples", str(CALIBRATION))
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "Frechet distance left out" in notes[0], result.stderr
    files = json.loads((run / "export" / "manifest.json").read_text())["files"]
    assert [f["precision"] for f in files] == ["fp32", "int8"]
    for f in files:  # parity and the classifier-based checks ran; only the distance is missing
        assert f["quality"]["frechet_distance"] is None
        assert isinstance(f["quality"]["classifier_score"], float)
        assert isinstance(f["parity"]["max_abs_batch_64"], float)
    scored = run_cli("-m", "training.evaluate", "--run", str(run), "--n", "200")
    assert scored.returncode == 0, scored.stderr
    assert "FD n/a" in scored.stdout


def test_the_averaged_or_the_trained_generator_is_exported_as_asked(exported_runs, tmp_path):
    from export.exporter import export_checkpoint
    from runtime.generator import Generator
    ckpt = sorted((exported_runs["mlp-mnist"] / "checkpoints").iterdir())[-1]
    z = np.random.default_rng(5).standard_normal((8, 100)).astype(np.float32)
    outputs = {}
    for weights in ("ema", "raw"):
        manifest = export_checkpoint(ckpt, tmp_path / weights, ("fp32",), quality_samples=200,
                                     progress=lambda m: None, weights=weights)
        assert manifest["weights"] == weights
        gen = Generator.from_file(tmp_path / weights / "generator.fp32.onnx")
        assert gen.info.metadata["gan.weights"] == weights
        keras_g = _keras_generator(exported_runs["mlp-mnist"], weights)
        outputs[weights] = gen.run(z)
        np.testing.assert_allclose(outputs[weights], keras_g(z).numpy(), atol=1e-5)
    assert not np.allclose(outputs["ema"], outputs["raw"], atol=1e-4)


def test_bad_export_arguments(exported_runs, tmp_path):
    run = str(exported_runs["mlp-mnist"])
    assert_one_line_error(run_cli("-m", "export.cli", "--run", run, "--epoch", "41"),
                          "no checkpoint epoch_041", "step_000004")
    assert_one_line_error(run_cli("-m", "export.cli", "--run", run, "--precision", "int4"),
                          "unknown precision int4")
    assert_one_line_error(run_cli("-m", "export.cli", "--run", run, "--epoch", "1", "--best"),
                          "at most one of --epoch, --step, --best")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_line_error(run_cli("-m", "export.cli", "--run", run, "--out", str(blocker / "x")),
                          "cannot write to --out")
    assert_one_line_error(run_cli("-m", "export.cli", "--run", str(tmp_path)),
                          "no evaluation checkpoints")
    assert_one_line_error(run_cli("-m", "export.cli", "--run", run, "--data-dir",
                                  str(tmp_path / "none")), "does not exist")


def test_corrupt_checkpoint_is_refused(exported_runs, tmp_path):
    import shutil

    from conftest import cli
    run = tmp_path / "run"
    shutil.copytree(exported_runs["mlp-mnist"], run, ignore=shutil.ignore_patterns("export"))
    g = run / "checkpoints" / "step_000004" / "generator.keras"
    g.write_bytes(g.read_bytes()[:500])
    assert_one_line_error(cli("export.cli", "--run", str(run), "--step", "4"), "corrupt")
    assert not (run / "export").exists() or not list((run / "export").glob("*.onnx"))


def test_a_discriminator_file_of_another_model_fails_validation(exports, exported_runs):
    """export.discriminator.validate holds a file to the Keras discriminator it claims to be."""
    import keras

    import training.models  # noqa: F401  registers the custom dropout layer
    from export.discriminator import logit_fn, validate
    from export.validate import ValidationError
    from training.config import get_config
    cfg = get_config("mlp-mnist")
    ckpt = sorted((exported_runs["mlp-mnist"] / "checkpoints").iterdir())[-1]
    model = keras.saving.load_model(ckpt / "discriminator.keras", compile=False)
    samples = _keras_generator(exported_runs["mlp-mnist"])(
        np.random.default_rng(3).standard_normal((200, cfg.latent_dim)).astype(np.float32),
        training=False).numpy()
    logits = logit_fn(model)
    validate(exported_runs["mlp-mnist"] / "export" / "discriminator.int8.onnx", logits, samples)
    with pytest.raises(ValidationError, match="logits differ from the source's"):
        validate(exported_runs["dcgan-mnist"] / "export" / "discriminator.int8.onnx", logits,
                 samples)


@pytest.mark.slow
def test_ship_fills_a_models_folder_and_its_index(exported_runs, tmp_path, monkeypatch):
    """python -m export.ship: the files asked for, an index naming the MNIST default, the budget.
    The DCGAN's in a fresh process (its discriminator holds our own dropout layer, which must
    load there); the rest in this one, through ganexport's own wrapper."""
    from conftest import cli
    from export import ship
    from runtime.core.errors import GanEdgeError
    models = tmp_path / "models"
    small = ("--quality-samples", "200", "--calibration-samples", str(CALIBRATION))
    shipped = run_cli("-m", "export.ship", "--run", str(exported_runs["dcgan-mnist"]), "--best",
                      "--precision", "int8,fp16", "--models-dir", str(models), *small)
    assert shipped.returncode == 0, shipped.stderr
    assert f"{models / 'dcgan-mnist' / 'generator.int8.onnx'} (" in shipped.stderr
    assert ".dcgan-mnist.new" not in shipped.stderr  # the staging folder is not the user's concern
    shipped = cli("export.ship", "--run", str(exported_runs["gan-1d"]), "--best",
                  "--models-dir", str(models), *small)
    assert shipped.returncode == 0, shipped.stderr
    index = json.loads((models / "index.json").read_text())
    assert sorted(index["models"]["dcgan-mnist"]["files"]) == ["fp16", "int8"]
    # --drop: room in the budget without the run that made the model
    for drop, fragment in (("int8,fp16", "would have no generator file left"),
                           ("fp32", "dcgan-mnist ships no fp32 file (it has int8, fp16)")):
        assert_one_line_error(cli("export.ship", "--name", "dcgan-mnist", "--drop", drop,
                                  "--models-dir", str(models)), fragment)
    assert_one_line_error(cli("export.ship", "--name", "nope", "--drop", "fp16",
                              "--models-dir", str(models)), "no shipped model 'nope'")
    for stray in (("--precision", "int8"), ("--quality-samples", "200")):
        assert_one_line_error(cli("export.ship", "--name", "dcgan-mnist", "--drop", "fp16",
                                  *stray, "--models-dir", str(models)),
                              "--drop takes --name NAME")
    dropped = cli("export.ship", "--name", "dcgan-mnist", "--drop", "fp16",
                  "--models-dir", str(models))
    assert dropped.returncode == 0, dropped.stderr
    index = json.loads((models / "index.json").read_text())
    assert index["default"] == "dcgan-mnist"  # the only MNIST generator
    assert index["models"]["dcgan-mnist"]["files"] == {"int8": "dcgan-mnist/generator.int8.onnx"}
    assert index["models"]["gan-1d"]["files"] == {"int8": "gan-1d/generator.int8.onnx"}
    assert sorted(p.name for p in (models / "dcgan-mnist").iterdir()) == [
        "discriminator.int8.onnx", "generator.int8.onnx", "manifest.json"]
    manifest = json.loads((models / "dcgan-mnist" / "manifest.json").read_text())
    assert not Path(manifest["checkpoint"]).is_absolute()
    int8 = next(f for f in manifest["files"] if f["precision"] == "int8")
    assert int8["int8_calibration_samples"] == CALIBRATION and int8["quality"]["n_samples"] == 200
    assert ship.build_index(models) == (index, sum(p.stat().st_size
                                                   for p in models.glob("*/*.onnx")))
    assert "MB of the 16 MB budget" in dropped.stdout
    monkeypatch.setattr(ship, "BUDGET_BYTES", 1000)
    with pytest.raises(GanEdgeError, match="budget; ship fewer precisions"):
        ship.build_index(models)
    before = {p: p.read_bytes() for p in models.rglob("*") if p.is_file()}
    with pytest.raises(GanEdgeError, match="nothing was changed: with gan-1d .* above the 0 MB budget"):
        ship.main.main(["--run", str(exported_runs["gan-1d"]), "--best", "--precision", "int8,fp32",
                        "--models-dir", str(models), *small], standalone_mode=False)
    assert {p: p.read_bytes() for p in models.rglob("*") if p.is_file()} == before
    assert_one_line_error(run_cli("-m", "export.ship", "--run", str(exported_runs["gan-1d"]),
                                  "--precision", "int4", "--models-dir", str(models)),
                          "unknown precision int4")


@pytest.mark.parametrize("arch", ["cgan-mnist", pytest.param("cgan-fashion",
                                                               marks=pytest.mark.slow)])
def test_a_conditional_file_says_so_and_names_its_classes(arch, exports, exported_runs):
    from runtime.generator import Generator
    from training.data import CLASS_NAMES
    path = exported_runs[arch] / "export" / "generator.int8.onnx"
    gen = Generator.from_file(path)
    assert gen.info.class_names == CLASS_NAMES[gen.info.metadata["gan.dataset"]]
    assert [i.name for i in gen.session.get_inputs()] == ["z", "label"]
    assert gen.session.get_inputs()[1].type == "tensor(int64)"
    parity = {f["precision"]: f["parity"] for f in exports[arch]["files"]}
    assert all(len(p["mean_abs_by_label"]) == 10 for p in parity.values())
    quality = exports[arch]["files"][0]["quality"]
    assert 0 <= quality["class_accuracy_min"] <= quality["class_accuracy"] <= 1
    unconditional = Generator.from_file(exported_runs["mlp-mnist"] / "export" / "generator.int8.onnx")
    assert not unconditional.conditional and unconditional.labels_for(4, 0) is None


def test_a_conditional_generator_refuses_latents_without_labels(exports, exported_runs):
    from runtime.core.errors import GanEdgeError
    from runtime.generator import Generator
    gen = Generator.from_file(exported_runs["cgan-mnist"] / "export" / "generator.fp32.onnx")
    z = np.zeros((3, gen.info.latent_dim), np.float32)
    with pytest.raises(GanEdgeError, match="one label per latent"):
        gen.run(z)
    assert gen.run(z, [1, 2, 3]).shape == (3, 28, 28, 1)


@pytest.mark.parametrize("better", ["ema", "raw"])
def test_weights_auto_exports_the_generator_the_best_checkpoint_rule_prefers(exported_runs,
                                                                            tmp_path, better):
    """ganexport's default (--weights auto) follows the scores of the checkpoint's row: the
    averaged generator where its ema_* scores win, else the trained one."""
    from conftest import cli, private_copy
    from runtime.generator import Generator
    run = private_copy(exported_runs["mlp-mnist"], tmp_path / "run")
    (row,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    winner, loser = ("ema_", "") if better == "ema" else ("", "ema_")
    row.update({f"{winner}classifier_score": 9.0, f"{loser}classifier_score": 2.0,
                f"{winner}classes_covered": 10, f"{loser}classes_covered": 10})
    (run / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    result = cli("export.cli", "--run", str(run), "--precision", "fp32", "--quality-samples",
                 "100", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["weights"] == better
    gen = Generator.from_file(tmp_path / "out" / "generator.fp32.onnx")
    assert gen.info.metadata["gan.weights"] == better
    z = np.random.default_rng(1).standard_normal((4, 100)).astype(np.float32)
    np.testing.assert_allclose(gen.run(z), _keras_generator(run, better)(z).numpy(), atol=1e-5)


def test_opset_is_the_one_asked_for(exported_runs, tmp_path):
    from conftest import cli
    result = cli("export.cli", "--run", str(exported_runs["dcgan-mnist"]), "--precision",
                 "fp32,int8", "--opset", "13", "--quality-samples", "100",
                 "--calibration-samples", str(CALIBRATION), "--out",
                 str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["opset"] == 13
    for name in ("generator.fp32.onnx", "generator.int8.onnx", "discriminator.int8.onnx"):
        model = onnx.load(str(tmp_path / "out" / name))
        assert {o.domain: o.version for o in model.opset_import}[""] == 13, name
    assert_one_line_error(cli("export.cli", "--run", str(exported_runs["dcgan-mnist"]),
                              "--opset", "12"), "--opset")


def test_ship_reindex_writes_the_index_the_package_holds(tmp_path):
    """export.ship --reindex rebuilds index.json from the shipped manifests alone: on a copy
    of the package's models without it, it writes the committed index, byte for byte."""
    import shutil

    from conftest import cli
    from runtime.shipped import MODELS_DIR
    models = shutil.copytree(MODELS_DIR, tmp_path / "models")
    (models / "index.json").unlink()
    result = cli("export.ship", "--reindex", "--models-dir", str(models))
    assert result.returncode == 0, result.stderr
    assert (models / "index.json").read_bytes() == (MODELS_DIR / "index.json").read_bytes()


@pytest.mark.parametrize("arch", ["cgan-mnist", "mlp-mnist"])
def test_int8_keeps_the_output_layer_in_float_and_passes_per_label_parity(arch, exports,
                                                                          exported_runs):
    """The int8 file's output layer (its last Conv, MatMul or Gemm up to `sample`) reads the 8-bit
    output of the layer before, and its weights are stored as int8, but nothing in it is
    quantized again: no QuantizeLinear takes any of its tensors. The manifest's parity figures
    are the file's own, recomputed here against Keras, and every label is within what the
    README promises."""
    from export.quantize import output_layer
    graph = onnx.load(str(exported_runs[arch] / "export" / "generator.int8.onnx")).graph
    layer = output_layer(graph)
    assert layer[-1].op_type in ("Conv", "MatMul", "Gemm") and layer[0].output[0] == "sample"
    made_by = {out: n for n in graph.node for out in n.output}
    tensors = {out for n in layer for out in n.output}
    assert not [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in tensors]
    weight = made_by[layer[-1].input[1]]
    stored = {t.name: t.data_type for t in graph.initializer}
    assert weight.op_type == "DequantizeLinear" and stored[weight.input[0]] == onnx.TensorProto.INT8
    assert made_by[layer[-1].input[0]].op_type == "DequantizeLinear"  # the layer before: 8 bits
    entry = next(f for f in exports[arch]["files"] if f["precision"] == "int8")
    assert entry["int8_float_nodes"] == "output-layer"
    _assert_parity_recomputed(entry["parity"], exported_runs[arch], exports[arch]["weights"],
                              arch)


def _assert_parity_recomputed(parity, run, weights, arch):
    """The int8 file's mean difference from Keras, and a conditional file's by label, as the
    export's validation says it measures them (export/validate.py: seeded latents at batch 1,
    7 and 64, every class at batch 64; per label the same 16 latents of the next seed),
    recomputed from the file and the checkpoint, and held to PROMISED_MEAN."""
    from runtime.generator import Generator
    from training.config import get_config
    cfg = get_config(arch)
    gen = Generator.from_file(run / "export" / "generator.int8.onnx")
    keras_g = _keras_generator(run, weights)
    bound = PROMISED_MEAN["int8"] * (cfg.output_range[1] - cfg.output_range[0])

    def gap(z, labels=None):
        if labels is None:
            return np.abs(gen.run(z) - keras_g(z, training=False).numpy())
        want = keras_g([z, labels.astype(np.int32)], training=False).numpy()
        return np.abs(gen.run(z, labels) - want)
    rng = np.random.default_rng(0)
    gaps = []
    for batch in (1, 7, 64):
        z = rng.standard_normal((batch, cfg.latent_dim)).astype(np.float32)
        labels = (np.arange(batch) + rng.integers(cfg.n_classes)) % cfg.n_classes \
            if cfg.conditional else None
        gaps.append(gap(z, labels).ravel())
    mean = np.concatenate(gaps).mean()
    assert parity["mean_abs"] == pytest.approx(mean, rel=1e-3) and mean <= bound
    if cfg.conditional:
        z = np.random.default_rng(1).standard_normal((16, cfg.latent_dim)).astype(np.float32)
        by_label = [gap(z, np.full(16, k)).mean() for k in range(cfg.n_classes)]
        assert parity["mean_abs_by_label"] == pytest.approx(by_label, rel=1e-3)
        assert max(by_label) <= bound


def _dense_and_conv_graph(bn: bool):
    """Dense -> (batch norm as Mul, Add) -> Relu -> reshape -> ConvTranspose -> (batch norm) ->
    Relu -> Conv, as tf2onnx writes a batch-normalised generator (NCHW)."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(11)
    arrays = {"w": rng.standard_normal((6, 4 * 3 * 3)), "shape": np.array([-1, 4, 3, 3]),
              "t": rng.standard_normal((4, 5, 4, 4)), "last": rng.standard_normal((1, 5, 3, 3)),
              "s1": rng.uniform(0.5, 3, 36), "b1": rng.standard_normal(36),
              "s2": rng.uniform(0.5, 3, (1, 5, 1, 1)), "b2": rng.standard_normal((1, 5, 1, 1))}
    inits = [numpy_helper.from_array(a.astype(np.int64 if k == "shape" else np.float32), k)
             for k, a in arrays.items()]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["d"])]
    nodes += [helper.make_node("Mul", ["d", "s1"], ["d_s"]),
              helper.make_node("Add", ["d_s", "b1"], ["d_b"])] if bn else []
    nodes += [helper.make_node("Relu", ["d_b" if bn else "d"], ["d_r"]),
              helper.make_node("Reshape", ["d_r", "shape"], ["img"]),
              helper.make_node("ConvTranspose", ["img", "t"], ["up"], kernel_shape=[4, 4],
                               strides=[2, 2], pads=[1, 1, 1, 1])]
    nodes += [helper.make_node("Mul", ["s2", "up"], ["up_s"]),
              helper.make_node("Add", ["up_s", "b2"], ["up_b"])] if bn else []
    nodes += [helper.make_node("Relu", ["up_b" if bn else "up"], ["up_r"]),
              helper.make_node("Conv", ["up_r", "last"], ["y"], kernel_shape=[3, 3],
                               pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def test_onnx_rewrite_folds_batch_normalisation_into_the_layers_before_it():
    """Each per-channel Mul and Add after a layer goes into its weights and bias (a MatMul's
    Add stays, as its bias); the graph computes the same to rounding."""
    import onnxruntime as ort

    from export.rewrite import rewrite
    rewritten = rewrite(_dense_and_conv_graph(bn=True))
    onnx.checker.check_model(rewritten, full_check=True)
    ops = [n.op_type for n in rewritten.graph.node]
    plain = [n.op_type for n in rewrite(_dense_and_conv_graph(bn=False)).graph.node]
    assert ops == ["MatMul", "Add"] + plain[1:], ops  # the MatMul's Add stays, as its bias
    assert "ConvTranspose" not in ops and "Col2Im" in ops
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)

    def run(model):
        return ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    want, got = run(_dense_and_conv_graph(bn=True)), run(rewritten)
    assert got.shape == want.shape == (4, 1, 6, 6)
    assert np.max(np.abs(got - want)) <= 1e-5 * np.abs(want).max()
    unfolded = [n.op_type for n in rewrite(_dense_and_conv_graph(bn=True), fold=False).graph.node]
    assert unfolded.count("Mul") == 2


def test_indexing_refuses_a_shipped_manifest_without_scores(tmp_path):
    # ganrun --list and the default's choice read every model's scores from the index.
    from export import ship
    from runtime.core.errors import GanEdgeError
    from runtime.shipped import MODELS_DIR
    manifest = json.loads((MODELS_DIR / "cgan-mnist" / "manifest.json").read_text())
    manifest["metrics"] = {"step": manifest["step"], "epoch": manifest["epoch"]}
    (tmp_path / "cgan-mnist").mkdir()
    (tmp_path / "cgan-mnist" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GanEdgeError, match="holds no scores"):
        ship.build_index(tmp_path)
