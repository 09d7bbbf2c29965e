"""ganexport --keras and --onnx: generators that gan-edge did not train, each built with fixed
seeds and random weights (here, or in benchmarks/foreign_shapes.py for the two shapes the
benchmark measures too; the tests are about the graph), exported, validated against their
source and run; and the sources it refuses, each with one line and nothing written."""
import ast
import json
import re
import shlex
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from benchmarks.foreign_shapes import face_dcgan, torch_dcgan
from conftest import CALIBRATION, ROOT, assert_one_line_error, cli, snapshot

PRECISIONS = ("fp32", "int8", "fp16")
# What each file may differ from its source, as fractions of the output range: the largest
# (int8: its 99.9th percentile) and the mean, as docs/export.md states them.
PROMISED_MAX = {"fp32": 5e-6, "fp16": 5e-3, "int8": 0.5}
PROMISED_SHARE = {"fp32": 1.0, "fp16": 1.0, "int8": 0.999}
PROMISED_MEAN = {"fp32": 1e-6, "fp16": 1e-3, "int8": 0.02}


# -- the generators ----------------------------------------------------------------------------

def face_discriminator(width: int = 8):
    """The same example's discriminator: Conv2D 4x4 stride 2 with LeakyReLU, three times,
    Flatten, Dropout, Dense(1, sigmoid); widths divided likewise."""
    import keras
    from keras import layers
    keras.utils.set_random_seed(1)
    stack = [keras.Input((64, 64, 3))]
    for filters in (width, 2 * width, 2 * width):
        stack += [layers.Conv2D(filters, 4, strides=2, padding="same"),
                  layers.LeakyReLU(negative_slope=0.2)]
    stack += [layers.Flatten(), layers.Dropout(0.2), layers.Dense(1, activation="sigmoid")]
    return keras.Sequential(stack, name="discriminator")


def conditional_generator(latent: int = 16, classes: int = 10):
    """A conditional generator with an Embedding of its label (keras.Input((1,)), float32 as
    Keras makes it by default), 28x28x1 in [-1, 1]."""
    import keras
    from keras import layers
    keras.utils.set_random_seed(2)
    he = {"kernel_initializer": "he_normal"}
    z, label = keras.Input((latent,), name="noise"), keras.Input((1,), name="digit")
    embedded = layers.Embedding(classes, 8, embeddings_initializer="random_normal")(label)
    x = layers.Concatenate()([z, layers.Flatten()(embedded)])
    x = layers.Reshape((7, 7, 8))(layers.Dense(7 * 7 * 8, **he)(x))
    x = layers.LeakyReLU(negative_slope=0.2)(layers.Conv2DTranspose(8, 4, strides=2,
                                                                     padding="same", **he)(x))
    x = layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh", **he)(x)
    return keras.Model([label, z], x)  # the label first: the exporter reads which is which


def torch_discriminator(path: Path, ndf: int = 4, names=("input.1", "18")) -> Path:
    """The PyTorch examples' DCGAN discriminator as torch.onnx.export writes it: input
    [N, 3, 64, 64], Conv 4x4 stride 2 pads 1 with LeakyReLU 0.2 four times, a Conv 4x4 to one
    channel, Sigmoid, then view(-1, 1).squeeze(1): output [N]. Widths (ndf 64 there) smaller;
    no batch normalisation (the generator's file has it)."""
    rng = np.random.default_rng(5)
    nodes, inits, x, c_in = [], [], names[0], 3
    for i, c_out in enumerate((ndf, ndf * 2, ndf * 4, ndf * 8, 1)):
        w = f"main.{2 * i}.weight"
        weight = rng.normal(0.0, np.sqrt(2 / (c_in * 16)), (c_out, c_in, 4, 4))
        inits.append(numpy_helper.from_array(weight.astype(np.float32), w))
        y = f"/main/main.{2 * i}/Conv_output_0"
        last = c_out == 1
        nodes.append(helper.make_node("Conv", [x, w], [y], kernel_shape=[4, 4],
                                      strides=[1, 1] if last else [2, 2],
                                      pads=[0, 0, 0, 0] if last else [1, 1, 1, 1]))
        x, c_in = y, c_out
        if not last:
            nodes.append(helper.make_node("LeakyRelu", [y], [f"/main/main.{2 * i + 1}/out"],
                                          alpha=0.2))
            x = f"/main/main.{2 * i + 1}/out"
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), "onnx::Reshape_9"))
    nodes += [helper.make_node("Sigmoid", [x], ["/main/main.9/Sigmoid_output_0"]),
              helper.make_node("Reshape", ["/main/main.9/Sigmoid_output_0", "onnx::Reshape_9"],
                               [names[1]])]
    graph = helper.make_graph(
        nodes, "main_graph", [helper.make_tensor_value_info(names[0], TensorProto.FLOAT,
                                                            ["batch_size", 3, 64, 64])],
        [helper.make_tensor_value_info(names[1], TensorProto.FLOAT, ["batch_size"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


# -- shared exports ----------------------------------------------------------------------------

def ganexport(*args):
    return cli("export.cli", *args, "--quality-samples", "100",
               "--calibration-samples", str(CALIBRATION))


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    """The keras-io-shaped generator and its discriminator, saved, and their export."""
    folder = tmp_path_factory.mktemp("face")
    face_dcgan().save(folder / "face.keras")
    face_discriminator().save(folder / "critic.keras")
    result = ganexport("--keras", folder / "face.keras", "--discriminator",
                       folder / "critic.keras", "--out", folder / "export")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def torch_shaped(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch")
    torch_dcgan(folder / "dcgan.onnx")
    torch_discriminator(folder / "netD.onnx")
    result = ganexport("--onnx", folder / "dcgan.onnx", "--discriminator", folder / "netD.onnx",
                       "--out", folder / "export")
    assert result.returncode == 0, result.stderr
    return folder


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "export" / "manifest.json").read_text())


def _assert_within_bounds(gen, reference, spec_range, precision, latents, labels=None):
    got = gen.run(latents, labels)
    want = np.asarray(reference(latents) if labels is None else reference(latents, labels))
    assert got.shape == want.shape
    diffs = np.abs(got - want).ravel()
    lo, hi = spec_range
    assert np.quantile(diffs, PROMISED_SHARE[precision]) <= PROMISED_MAX[precision] * (hi - lo)
    assert diffs.mean() <= PROMISED_MEAN[precision] * (hi - lo)


# -- from a Keras file -------------------------------------------------------------------------

def test_a_keras_face_dcgan_exports_to_files_that_match_keras(face):
    import keras

    from runtime.core.files import sha256_file
    from runtime.generator import Generator
    model = keras.saving.load_model(face / "face.keras", compile=False)
    manifest = _manifest(face)
    assert manifest["source"] == "keras" and manifest["arch"] == "face"
    assert manifest["source_sha256"] == sha256_file(face / "face.keras")
    assert [f["precision"] for f in manifest["files"]] == list(PRECISIONS)
    z = np.random.default_rng(11).standard_normal((9, 128)).astype(np.float32)
    for entry in manifest["files"]:
        assert entry["quality"] == {"not_scored": "gan-edge has no classifier for 64x64x3 samples"}
        gen = Generator.from_file(face / "export" / entry["file"])
        assert gen.info.sample_shape == (64, 64, 3) and gen.info.output_range == (0.0, 1.0)
        assert gen.info.metadata["gan.source_file"] == "face.keras"
        assert gen.info.metadata["gan.source_sha256"] == manifest["source_sha256"]
        _assert_within_bounds(gen, lambda x: model(x, training=False), (0, 1), entry["precision"], z)


def _largest_tensor_when_run(path: Path) -> int:
    """The bytes per sample of the largest tensor that running the file's graph as written makes
    (onnxruntime's fusions off), seen by running it at batch 1 and 2 with every node's output
    exposed: a per-sample tensor grows by one sample."""
    import onnx
    import onnxruntime as ort
    model = onnx.load(str(path))
    names = [out for node in model.graph.node for out in node.output if out]
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names
                              if n not in {o.name for o in model.graph.output})
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options)
    latent = session.get_inputs()[0].shape[1]
    sizes = [[t.nbytes for t in session.run(None, {"z": np.zeros((n, latent), np.float32)})]
             for n in (1, 2)]
    return max(two - one for one, two in zip(*sizes))


def test_each_file_states_the_largest_tensor_its_graph_makes(face, torch_shaped):
    """gan.largest_tensor_bytes, by which ganrun sizes its calls, is the largest tensor the
    file's graph makes per sample, in every precision."""
    from runtime.generator import Generator
    for folder in (face, torch_shaped):
        for entry in _manifest(folder)["files"]:
            path = folder / "export" / entry["file"]
            stated = Generator.from_file(path).info.metadata["gan.largest_tensor_bytes"]
            assert int(stated) == _largest_tensor_when_run(path), path


def test_a_keras_discriminator_goes_with_its_generator_for_keep(face):
    import keras

    from export.discriminator import logit_fn
    from runtime.discriminator import Discriminator
    from runtime.generator import Generator
    entry = _manifest(face)["discriminator"]
    assert entry["file"] == "discriminator.int8.onnx" and entry["ranking"]["n_samples"] == 100
    gen = Generator.from_file(face / "export" / "generator.int8.onnx")
    disc = Discriminator.beside(gen)
    samples = gen.run(np.random.default_rng(4).standard_normal((32, 128)).astype(np.float32))
    critic = keras.saving.load_model(face / "critic.keras", compile=False)
    want = np.asarray(logit_fn(critic)(samples)).ravel()
    got = disc.logits(samples)
    assert np.abs(got - want).max() <= 0.1 * np.abs(want).max()


# -- from an ONNX file -------------------------------------------------------------------------

def test_a_torch_shaped_onnx_dcgan_exports_channels_last_and_matches_its_source(torch_shaped):
    import onnxruntime as ort

    from runtime.generator import Generator
    manifest = _manifest(torch_shaped)
    assert manifest["source"] == "onnx" and manifest["arch"] == "dcgan"
    assert manifest["opset"] == 17
    source = ort.InferenceSession(str(torch_shaped / "dcgan.onnx"),
                                  providers=["CPUExecutionProvider"])

    def reference(z):  # the source as PyTorch's users run it: z [N, 100, 1, 1], NCHW out
        return source.run(None, {"input.1": z.reshape(len(z), 100, 1, 1)})[0].transpose(0, 2, 3, 1)
    z = np.random.default_rng(12).standard_normal((9, 100)).astype(np.float32)
    for entry in manifest["files"]:
        path = torch_shaped / "export" / entry["file"]
        graph = onnx.load(str(path)).graph
        assert [i.name for i in graph.input] == ["z"] and [o.name for o in graph.output] == \
            ["sample"]
        gen = Generator.from_file(path)
        assert gen.info.sample_shape == (64, 64, 3) and gen.info.output_range == (-1.0, 1.0)
        assert gen.info.latent_dim == 100 and gen.info.arch == "dcgan"
        _assert_within_bounds(gen, reference, (-1, 1), entry["precision"], z)


def test_an_onnx_discriminator_goes_with_its_generator_for_keep(torch_shaped):
    """Its sigmoid is taken off (the file gives logits) and its NCHW input made channels last:
    the file's logits are the source's pre-sigmoid values on the same samples."""
    import onnxruntime as ort

    from runtime.discriminator import Discriminator
    from runtime.generator import Generator
    entry = _manifest(torch_shaped)["discriminator"]
    assert entry["ranking"]["n_samples"] == 100
    gen = Generator.from_file(torch_shaped / "export" / "generator.int8.onnx")
    disc = Discriminator.beside(gen)
    assert disc.metadata["gan.source_file"] == "netD.onnx"
    samples = gen.run(np.random.default_rng(6).standard_normal((32, 100)).astype(np.float32))
    source = onnx.load(str(torch_shaped / "netD.onnx"))
    source.graph.output.append(helper.make_tensor_value_info(
        "/main/main.9/Sigmoid_output_0", TensorProto.FLOAT, None))
    probability, _ = ort.InferenceSession(source.SerializeToString()).run(
        None, {"input.1": samples.transpose(0, 3, 1, 2)})
    want = np.log(probability) - np.log1p(-probability)
    got = disc.logits(samples)
    assert np.abs(got - want).max() <= 0.1 * np.abs(want).max()


def test_a_discriminator_of_another_export_is_refused_for_keep(torch_shaped, tmp_path):
    """Paired by the generator source's SHA-256: the discriminator exported with another
    generator of the same name (other weights: a retrained one) is not used beside this one."""
    import shutil

    from runtime.core.errors import GanEdgeError
    from runtime.discriminator import Discriminator
    from runtime.generator import Generator
    torch_dcgan(tmp_path / "dcgan.onnx", ngf=2)
    result = ganexport("--onnx", tmp_path / "dcgan.onnx", "--discriminator",
                       torch_shaped / "netD.onnx", "--precision", "fp32", "--out",
                       tmp_path / "other")
    assert result.returncode == 0, result.stderr
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(torch_shaped / "export" / "generator.int8.onnx", mixed)
    shutil.copy(tmp_path / "other" / "discriminator.int8.onnx", mixed)
    with pytest.raises(GanEdgeError, match="is not the discriminator of"):
        Discriminator.beside(Generator.from_file(mixed / "generator.int8.onnx"))


def test_validate_alone_checks_a_file_against_the_source_it_is_given(torch_shaped, face):
    exported = torch_shaped / "export" / "generator.int8.onnx"
    result = ganexport("--validate", exported, "--onnx", torch_shaped / "dcgan.onnx")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parity"]["mean_abs"] < 0.04
    assert_one_line_error(ganexport("--validate", face / "export" / "generator.fp32.onnx",
                                    "--onnx", torch_shaped / "dcgan.onnx"),
                          "metadata says face", "the source is dcgan")
    assert_one_line_error(ganexport("--validate", exported), "--onnx FILE")


def test_a_uniform_prior_is_what_the_file_draws_from_and_calibrates_on(tmp_path):
    """--latent-prior uniform: the runtime draws z ~ U(-1, 1) for it, and int8 calibration
    sees such latents (its activation ranges differ from a normal prior's)."""
    from onnx import numpy_helper

    from runtime.generator import Generator
    torch_dcgan(tmp_path / "g.onnx")
    scales = {}
    for prior in ("normal", "uniform"):
        result = ganexport("--onnx", tmp_path / "g.onnx", "--latent-prior", prior,
                           "--precision", "fp32,int8", "--out", tmp_path / prior)
        assert result.returncode == 0, result.stderr
        graph = onnx.load(str(tmp_path / prior / "generator.int8.onnx")).graph
        scales[prior] = {t.name: numpy_helper.to_array(t) for t in graph.initializer
                         if t.name.endswith("_scale")}
    assert scales["normal"].keys() == scales["uniform"].keys()
    assert any(not np.allclose(scales["normal"][k], scales["uniform"][k]) for k in scales["normal"])
    gen = Generator.from_file(tmp_path / "uniform" / "generator.fp32.onnx")
    assert gen.info.metadata["gan.latent_prior"] == "uniform"
    drawn = np.concatenate(list(gen.generate(5, seed=3, batch=2)))
    z = np.random.default_rng(3).uniform(-1, 1, (5, 100)).astype(np.float32)
    np.testing.assert_array_equal(drawn, gen.run(z))


def test_a_file_naming_an_unknown_prior_is_refused(torch_shaped, tmp_path):
    from runtime.core.errors import GanEdgeError
    from runtime.generator import Generator
    model = onnx.load(str(torch_shaped / "export" / "generator.fp32.onnx"))
    for prop in model.metadata_props:
        if prop.key == "gan.latent_prior":
            prop.value = "cauchy"
    onnx.save(model, str(tmp_path / "g.onnx"))
    with pytest.raises(GanEdgeError, match="impossible gan.* metadata"):
        Generator.from_file(tmp_path / "g.onnx")


def test_the_normal_prior_draws_what_it_always_drew():
    from runtime.core.spec import Spec
    spec = Spec("m", 7, (2,), (-1.0, 1.0))
    np.testing.assert_array_equal(
        spec.latents(np.random.default_rng(9), 5),
        np.random.default_rng(9).standard_normal((5, 7)).astype(np.float32))


# -- a conditional Keras generator -------------------------------------------------------------

@pytest.fixture(scope="module")
def conditional(tmp_path_factory, tiny_mnist):
    """The conditional generator, exported as an MNIST generator, scored on the tiny data set."""
    folder = tmp_path_factory.mktemp("conditional")
    conditional_generator().save(folder / "cgan.keras")
    result = ganexport("--keras", folder / "cgan.keras", "--dataset", "mnist", "--data-dir",
                       tiny_mnist, "--name", "my-cgan", "--out", folder / "export")
    assert result.returncode == 0, result.stderr
    return folder


def test_a_conditional_keras_generator_takes_labels_and_is_scored(conditional, tmp_path):
    import keras
    from PIL import Image

    from runtime.generator import Generator
    model = keras.saving.load_model(conditional / "cgan.keras", compile=False)
    manifest = _manifest(conditional)
    assert manifest["arch"] == "my-cgan"
    rng = np.random.default_rng(13)
    z, labels = rng.standard_normal((20, 16)).astype(np.float32), np.arange(20) % 10
    for entry in manifest["files"]:
        assert entry["quality"]["n_samples"] == 100
        assert len(entry["parity"]["mean_abs_by_label"]) == 10
        gen = Generator.from_file(conditional / "export" / entry["file"])
        assert gen.info.class_names == tuple("0123456789")
        assert gen.info.metadata["gan.dataset"] == "mnist"
        _assert_within_bounds(gen, lambda x, k: model([k.astype(np.float32)[:, None], x]),
                              (-1, 1), entry["precision"], z, labels)
    out = tmp_path / "threes.png"
    result = cli("runtime.cli", "--model", conditional / "export" / "generator.int8.onnx",
                 "--n", "4", "--class", "3", "--out", out)
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size[0] > 2 * 28


def test_a_points_generator_with_a_linear_output_takes_its_range_from_the_flag(tmp_path):
    """A generator of points (article 004's shape, built with Keras) ends in a linear layer:
    --output-range gives its range, and ganrun draws its points."""
    import keras
    from keras import layers
    from PIL import Image

    from runtime.generator import Generator
    keras.utils.set_random_seed(4)
    keras.Sequential([keras.Input((5,)), layers.Dense(15, activation="relu"),
                      layers.Dense(2)]).save(tmp_path / "points.keras")
    result = ganexport("--keras", tmp_path / "points.keras", "--output-range", "-0.5,0.5",
                       "--out", tmp_path / "export")
    assert result.returncode == 0, result.stderr
    gen = Generator.from_file(tmp_path / "export" / "generator.int8.onnx")
    assert gen.info.sample_shape == (2,) and gen.info.output_range == (-0.5, 0.5)
    ran = cli("runtime.cli", "--model", tmp_path / "export" / "generator.int8.onnx", "--n", "50",
              "--out", tmp_path / "points.png")
    assert ran.returncode == 0, ran.stderr
    assert Image.open(tmp_path / "points.png").size[0] > 100


# -- sources outside the contract --------------------------------------------------------------

def _tiny_onnx(path: Path, inputs, out_dims, nodes, inits=(), out="out") -> Path:
    """A hand-made ONNX generator file: `inputs` (name, elem type, dims), `nodes` to `out`."""
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info(n, t, d) for n, t, d in inputs],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_dims)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _image_head(shape) -> tuple[list, list]:
    """z [N, 4] -> MatMul -> Reshape to [-1, *shape] -> Tanh -> out."""
    size = int(np.prod(shape))
    w = np.random.default_rng(0).standard_normal((4, size)).astype(np.float32)
    return ([helper.make_node("MatMul", ["z", "w"], ["flat"]),
             helper.make_node("Reshape", ["flat", "shape"], ["image"]),
             helper.make_node("Tanh", ["image"], ["out"])],
            [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.array([-1, *shape], np.int64), "shape")])


def _lambda_generator(path: Path) -> Path:
    import keras
    from keras import layers
    z = keras.Input((8,))
    x = layers.Lambda(lambda t: t * 2)(layers.Dense(4 * 4 * 3)(z))
    keras.Model(z, layers.Activation("tanh")(layers.Reshape((4, 4, 3))(x))).save(path)
    return path


def _custom_layer_generator(path: Path) -> Path:
    """A generator with a layer class of its own, saved, then its class forgotten (as on a
    machine that does not have its code)."""
    import keras
    from keras import layers

    @keras.saving.register_keras_serializable(package="test_sources")
    class Doubled(layers.Layer):
        def call(self, x):
            return x * 2
    z = keras.Input((8,))
    x = Doubled()(layers.Dense(4 * 4 * 3)(z))
    keras.Model(z, layers.Activation("tanh")(layers.Reshape((4, 4, 3))(x))).save(path)
    del keras.saving.get_custom_objects()["test_sources>Doubled"]
    return path


def _two_latents(path: Path) -> Path:
    head, inits = _image_head((3, 4, 4))
    return _tiny_onnx(path, [("a", TensorProto.FLOAT, ["N", 4]), ("b", TensorProto.FLOAT, ["N", 4])],
                      ["N", 3, 4, 4], [helper.make_node("Add", ["a", "b"], ["z"]), *head], inits)


def _unknown_rank(path: Path) -> Path:
    """The output is z reshaped to a shape whose length only running it tells."""
    return _tiny_onnx(path, [("z", TensorProto.FLOAT, ["N", 4])], None, [
        helper.make_node("Shape", ["z"], ["s"]),
        helper.make_node("Compress", ["s", "keep"], ["kept"]),
        helper.make_node("Reshape", ["z", "kept"], ["y"]),
        helper.make_node("Tanh", ["y"], ["out"])],
        [numpy_helper.from_array(np.array([True, True]), "keep")])


def _unknown_op(path: Path) -> Path:
    return _tiny_onnx(path, [("z", TensorProto.FLOAT, ["N", 4])], ["N", 4],
                      [helper.make_node("NoSuchOp", ["z"], ["out"])])


def _image(shape, dims):
    def make(path: Path) -> Path:
        head, inits = _image_head(shape)
        return _tiny_onnx(path, [("z", TensorProto.FLOAT, ["N", 4])], dims, head, inits)
    return make


def _weights_outside(path: Path) -> Path:
    """The torch-shaped file with its weights in a file one folder up."""
    model = onnx.load(str(torch_dcgan(path)))
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    (path.parent.parent / "weights.bin").write_bytes((path.parent / "weights.bin").read_bytes())
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    onnx.save(model, str(path))
    (path.parent / "weights.bin").unlink()
    return path


def _junk(path: Path) -> Path:
    path.write_bytes(b"not a model")
    return path


REFUSED = [
    ("lambda.keras", _lambda_generator, [], "Lambda layer"),
    ("custom.keras", _custom_layer_generator, [], "needs custom code (Doubled)"),
    ("two.onnx", _two_latents, [], "2 float (latent) inputs"),
    ("unknown.onnx", _unknown_rank, [], "unknown rank"),
    ("unloadable.onnx", _unknown_op, [], "onnxruntime cannot load"),
    ("dynamic.onnx", lambda p: torch_dcgan(p, output_dims=["batch_size", 3, "h", "w"]), [],
     "dynamic sample size"),
    ("linear.onnx", lambda p: torch_dcgan(p, final=None), [], "--output-range"),
    ("tanh.onnx", torch_dcgan, ["--output-range", "0,1"], "contradicts"),
    ("cgan.keras", lambda p: conditional_generator().save(p), [], "--classes"),
    ("cgan3.keras", lambda p: conditional_generator().save(p), ["--classes", "a,b,c"],
     "embedding has 10 rows"),
    ("square.onnx", _image((3, 4, 3), ["N", 3, 4, 3]), [], "--layout"),
    ("rgba.onnx", _image((4, 5, 6), ["N", 4, 5, 6]), [], "grey (1) or RGB (3)"),
    ("fixed.onnx", lambda p: torch_dcgan(p, batch=1, output_dims=[1, 3, 64, 64]), [],
     "dynamic batch"),
    ("outside.onnx", _weights_outside, [], "outside its own folder"),
    ("junk.onnx", _junk, [], "not a readable ONNX file"),
    ("flags.keras", lambda p: face_dcgan(2).save(p), ["--layout", "nchw"],
     "--layout cannot be used with --keras"),
    ("epoch.onnx", torch_dcgan, ["--epoch", "3"], "--epoch cannot be used with --onnx"),
    ("opset.onnx", torch_dcgan, ["--opset", "18"], "keeps its own opset"),
]


@pytest.mark.parametrize("name, make, flags, fragment", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_source_outside_the_contract_is_one_line_and_writes_nothing(tmp_path, name, make,
                                                                      flags, fragment):
    source = tmp_path / "in" / name
    source.parent.mkdir()
    make(source)
    before = snapshot(tmp_path)
    kind = "--keras" if name.endswith(".keras") else "--onnx"
    result = ganexport(kind, source, *flags, "--out", tmp_path / "out")
    assert_one_line_error(result, fragment)
    assert result.returncode == 2
    assert snapshot(tmp_path) == before


def test_two_sources_at_once_are_refused(tmp_path):
    assert_one_line_error(ganexport("--keras", tmp_path / "a.keras", "--onnx",
                                    tmp_path / "b.onnx"), "pass one source")


# -- docs/bring-your-own.md --------------------------------------------------------------------

GUIDE = ROOT / "docs" / "bring-your-own.md"


def _guide_commands(section: str = "") -> list[list[str]]:
    """The ganexport command lines of the guide's shell blocks (of the section whose heading
    starts with `section`), as argument lists."""
    text = GUIDE.read_text()
    if section:
        text = text[text.index(f"## {section}"):]
        text = text[:text.find("\n## ", 1) if "\n## " in text[1:] else len(text)]
    lines = [line.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)
             for line in block.splitlines()]
    return [shlex.split(line, comments=True)[1:] for line in lines if line.startswith("ganexport ")]


def test_every_ganexport_line_of_the_guide_parses_with_the_flags_ganexport_has():
    from export.cli import main
    commands = _guide_commands()
    assert len(commands) >= 6
    for args in commands:
        main.make_context("ganexport", list(args))  # raises on an unknown flag or a bad value


def test_the_guides_pytorch_route_exports_what_its_torch_snippet_writes(tmp_path):
    """The heredoc script is valid Python that exports in inference mode with a dynamic batch;
    a file named and laid out as it says (built here, without PyTorch) goes through every
    ganexport line of that section."""
    text = GUIDE.read_text()
    script = textwrap.dedent(re.search(r"python - <<'EOF'\n(.*?)\n\s*EOF", text, re.S)[1])
    tree = ast.parse(script)
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    export = next(c for c in calls if ast.unparse(c.func) == "torch.onnx.export")
    assert any(ast.unparse(c.func) == "netG.eval" for c in calls)
    assert calls.index(next(c for c in calls if ast.unparse(c.func) == "netG.eval")) < \
        calls.index(export)
    kw = {k.arg: ast.literal_eval(k.value) for k in export.keywords}
    (latent,), (image,) = kw["input_names"], kw["output_names"]
    assert kw["dynamic_axes"] == {latent: {0: "batch"}, image: {0: "batch"}}
    assert kw["opset_version"] >= 13 and kw["dynamo"] is False
    onnx_file = ast.literal_eval(export.args[2])
    torch_dcgan(tmp_path / onnx_file, batch="batch", names=(latent, image),
                opset=kw["opset_version"])
    torch_discriminator(tmp_path / "netD.onnx")
    commands = _guide_commands("From PyTorch") + _guide_commands("Validating")
    assert [args[:2] for args in commands[:1]] == [["--onnx", onnx_file]]
    for args in commands:
        result = cli("export.cli", *args, "--quality-samples", "100", "--calibration-samples",
                     str(CALIBRATION), cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
    manifest = json.loads((tmp_path / "dcgan" / "manifest.json").read_text())
    assert manifest["files"][0]["file"] == "generator.fp32.onnx" and "discriminator" in manifest


def test_the_rewrites_leave_no_transposed_convolution_or_batch_norm_in_the_torch_shaped_files(
        torch_shaped):
    """Every ConvTranspose of the PyTorch layout is rewritten and every BatchNormalization
    folded, in every file: none is left slow, or in float in int8."""
    for entry in _manifest(torch_shaped)["files"]:
        ops = {n.op_type for n in onnx.load(str(torch_shaped / "export" / entry["file"])).graph.node}
        assert not ops & {"ConvTranspose", "BatchNormalization"}, entry["precision"]


def test_a_layer_that_no_rewrite_covers_stays_and_the_export_names_it(tmp_path):
    """A ConvTranspose in two groups: no rule covers it, so it stays as it is, the export says
    so in a line naming the layer, and the files still match their source."""
    rng = np.random.default_rng(5)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 1, 4, 4)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal((3, 2, 1, 1)).astype(np.float32), "v")]
    source = _tiny_onnx(tmp_path / "grouped.onnx", [("z", TensorProto.FLOAT, ["N", 4, 1, 1])],
                        ["N", 3, 4, 4],
                        [helper.make_node("ConvTranspose", ["z", "w"], ["up"], name="grouped_up",
                                          kernel_shape=[4, 4], group=2),
                         helper.make_node("Conv", ["up", "v"], ["rgb"]),
                         helper.make_node("Sigmoid", ["rgb"], ["out"])], weights)
    result = ganexport("--onnx", source, "--out", tmp_path / "export")
    assert result.returncode == 0, result.stderr
    named = [line for line in result.stderr.splitlines() if "grouped_up" in line]
    assert len(named) == 1 and "2 groups" in named[0]
    for entry in _manifest(tmp_path)["files"]:
        ops = [n.op_type for n in onnx.load(str(tmp_path / "export" / entry["file"])).graph.node]
        assert ops.count("ConvTranspose") == 1, entry["precision"]
