"""ganrun and the runtime package: light imports, real PNGs, determinism, bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, assert_one_line_error

HEAVY = ("tensorflow", "keras", "training", "export", "tf2onnx", "matplotlib")


def ganrun(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd or ROOT)


@pytest.fixture(scope="module")
def model(tiny_runs):
    from export.exporter import export_checkpoint
    run = tiny_runs["mlp-mnist"]
    out = run / "runtime-test-export"
    export_checkpoint(sorted((run / "checkpoints").iterdir())[-1], out, ("fp32", "int8"),
                      quality_samples=200, progress=lambda m: None)
    return out / "generator.fp32.onnx"


def test_runtime_loads_no_heavy_module(model, tmp_path):
    code = ("import sys, runtime.cli, runtime.generator, runtime.render\n"
            f"from runtime.cli import main\n"
            f"main.main(['--model', {str(model)!r}, '--n', '4', '--out', {str(tmp_path / 'g.png')!r}],"
            " standalone_mode=False)\n"
            f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]\n"
            "assert not heavy, heavy\n")
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


def test_samples_do_not_depend_on_batch_size(model):
    from runtime.generator import Generator
    gen = Generator.from_file(model)
    one = np.concatenate(list(gen.generate(10, seed=3, batch=10)))
    many = np.concatenate(list(gen.generate(10, seed=3, batch=3)))
    np.testing.assert_allclose(one, many, atol=1e-6)


def test_out_dir_writes_one_png_per_sample(model, tmp_path):
    result = ganrun("--model", str(model), "--n", "5", "--out", str(tmp_path / "g.png"),
                    "--out-dir", str(tmp_path / "each"), "--batch", "2")
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "each").glob("*.png"))
    assert len(files) == 5
    with Image.open(files[0]) as img:
        assert img.size == (28, 28)


def test_gan_1d_models_write_a_scatter_or_csv(tiny_runs, tmp_path):
    export = tiny_runs["gan-1d"] / "export" / "generator.fp32.onnx"
    if not export.exists():
        from export.exporter import export_checkpoint
        run = tiny_runs["gan-1d"]
        export_checkpoint(sorted((run / "checkpoints").iterdir())[-1], run / "export",
                          ("fp32",), quality_samples=200, progress=lambda m: None)
    result = ganrun("--model", str(export), "--n", "50", "--out", str(tmp_path / "p.csv"))
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "x,y" and len(rows) == 51
    result = ganrun("--model", str(export), "--n", "50", "--out", str(tmp_path / "p.png"))
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "p.png") as img:
        assert img.size == (480, 480)


def test_embedded_default_generates_digits_the_evaluator_recognises(tmp_path):
    from runtime.generator import Generator, default_model_path
    from training.classifier import load_classifier
    path = default_model_path()
    gen = Generator.from_file(path)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert gen.info.precision == "int8" and gen.info.arch == manifest["arch"]
    result = ganrun("--n", "25", "--out", str(tmp_path / "grid.png"))
    assert result.returncode == 0, result.stderr
    samples = np.concatenate(list(gen.generate(1000, seed=0)))
    lo, hi = gen.info.output_range
    probs, _ = load_classifier("mnist").predict((samples - lo) / (hi - lo))
    counts = np.bincount(probs.argmax(1), minlength=10)
    assert (counts >= 10).all(), counts  # every digit appears
    # Many are confidently one digit (untrained generators score ~0 here). The quality goals
    # (classifier score >= 9) are measured in the README's table, not asserted.
    assert np.mean(probs.max(1) >= 0.9) > 0.3


@pytest.mark.parametrize("args, fragment", [
    (["--n", "0"], "--n must be between 1 and"),
    (["--n", "-5"], "--n must be between 1 and"),
    (["--n", "100000000"], "--n must be between 1 and"),
    (["--out", "grid.xyz"], "cannot write .xyz"),
    (["--out", "/no/such/folder/grid.png"], "does not exist"),
    (["--model", "/no/such/model.onnx"], "does not exist"),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(args, fragment, tmp_path):
    result = ganrun(*args, cwd=tmp_path)
    assert_one_line_error(result, fragment)
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
    import onnx
    from onnx import TensorProto, helper
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model.read_bytes()[:2000])
    not_onnx = tmp_path / "text.onnx"
    not_onnx.write_text("hello")
    graph = helper.make_graph([helper.make_node("Identity", ["z"], ["sample"])], "g",
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 4, 4])],
                              [helper.make_tensor_value_info("sample", TensorProto.FLOAT, [None, 4, 4])])
    wrong_rank = tmp_path / "rank3.onnx"
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in {"gan.arch": "x", "gan.latent_dim": "4", "gan.sample_shape": "4",
                 "gan.output_range": "0,1", "gan.precision": "fp32"}.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(wrong_rank))
    no_meta = tmp_path / "nometa.onnx"
    del m.metadata_props[:]
    onnx.save(m, str(no_meta))
    out = tmp_path / "out.png"
    for path, fragment in ((truncated, "not a loadable ONNX model"),
                           (not_onnx, "not a loadable ONNX model"),
                           (wrong_rank, "does not have the generator interface"),
                           (no_meta, "not a gan-edge generator")):
        assert_one_line_error(ganrun("--model", str(path), "--out", str(out)), fragment)
        assert not out.exists()
