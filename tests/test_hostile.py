"""Hostile files and faults: every case must end in exit status 2 with one `error:` line and no
traceback, and leave every file that existed before byte for byte as it was (and no new file
where the command would have written).

Cases by class: data that could be lost or mixed; models whose metadata lies or whose outputs
are broken; corrupt run-folder files; unbounded numbers; the file system saying no; formats
Pillow lists but cannot write; damaged data files; answers that must be clear.
"""
import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import assert_one_line_error, make_digits, run_cli, write_idx


def snapshot(folder: Path) -> dict:
    """Every file and folder under `folder`, files with their SHA-256."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else p.is_dir()
    return out


@pytest.fixture
def run(tiny_runs, tmp_path):
    """A private copy of a tiny trained mlp-mnist run, exported (fp32, int8)."""
    from export.exporter import export_checkpoint
    src = tiny_runs["mlp-mnist"]
    copy = tmp_path / "run"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("export", "*-export", "web-*"))
    export_checkpoint(sorted((copy / "checkpoints").iterdir())[-1], copy / "export",
                      ("fp32", "int8"), quality_samples=200, progress=lambda m: None)
    return copy


def check(result, folder: Path, before: dict, *fragments: str) -> None:
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2, result.stderr
    assert snapshot(folder) == before


def ganrun(*args, cwd=None):
    return run_cli("-m", "runtime.cli", *args, cwd=cwd)


# -- data lost or mixed ------------------------------------------------------------------------

def test_repeated_precisions_and_stray_folders_leave_the_export_as_it_was(run):
    before = snapshot(run)
    check(run_cli("-m", "export.cli", "--run", str(run), "--precision", "fp32,fp32",
                  "--quality-samples", "100"), run, before, "repeats a precision")
    (run / "export" / "generator.fp16.onnx").mkdir()  # a folder where a file would go
    before = snapshot(run)
    check(run_cli("-m", "export.cli", "--run", str(run), "--quality-samples", "100"), run, before,
          "generator.fp16.onnx exists and is not a regular file")


def test_a_run_folder_without_config_is_never_adopted(run):
    (run / "config.json").unlink()
    before = snapshot(run)
    check(run_cli("-m", "training.run", "--arch", "mlp-mnist", "--steps", "2", "--run-dir",
                  str(run)), run, before, "holds files but no config.json")


def test_a_run_folder_in_use_is_refused(run):
    """A second training process on a held run folder gets one line (the lock is the kernel's:
    held here by the test itself, as a running training would hold it)."""
    with open(run / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = snapshot(run)
        check(run_cli("-m", "training.run", "--arch", "mlp-mnist", "--run-dir", str(run),
                      "--resume", "--steps", "8"), run, before, "in use by another training",
              "fuser")


def test_grid_that_out_dir_would_overwrite_is_refused(run, tmp_path):
    model = run / "export" / "generator.int8.onnx"
    (tmp_path / "out").mkdir()
    before = snapshot(tmp_path / "out")
    check(ganrun("--model", str(model), "--n", "3", "--out", str(tmp_path / "out" / "sample_000000.png"),
                 "--out-dir", str(tmp_path / "out")), tmp_path / "out", before,
          "would be overwritten by --out-dir")


# -- models that lie or break ------------------------------------------------------------------

def _with_metadata(src: Path, dst: Path, **changes) -> Path:
    model = onnx.load(str(src))
    for prop in model.metadata_props:
        if prop.key in changes:
            prop.value = changes[prop.key]
    onnx.save(model, str(dst))
    return dst


def _broken_generator(path: Path) -> Path:
    """z [N, 4] -> z / 0: NaN and infinite samples, with honest-looking metadata."""
    graph = helper.make_graph(
        [helper.make_node("Div", ["z", "zero"], ["flat"]),
         helper.make_node("Reshape", ["flat", "shape"], ["sample"])], "broken",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("sample", TensorProto.FLOAT, ["batch", 2, 2, 1])],
        [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
         helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 2, 2, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in {"gan.arch": "mlp-mnist", "gan.latent_dim": "4", "gan.sample_shape": "2,2,1",
                 "gan.output_range": "-1,1", "gan.precision": "fp32"}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("changes, fragment", [
    ({"gan.sample_shape": "14,14,1"}, "metadata says (14, 14, 1)"),
    ({"gan.output_range": "5,6"}, "outside its declared range"),
    ({"gan.output_range": "1,1"}, "impossible gan.* metadata"),
    ({"gan.output_range": "nan,1"}, "impossible gan.* metadata"),
    ({"gan.latent_dim": str(2**40)}, "impossible gan.* metadata"),
    ({"gan.sample_shape": "100000,100000"}, "impossible gan.* metadata"),
    ({"gan.sample_shape": "0,28,1"}, "impossible gan.* metadata"),
    ({"gan.latent_dim": "abc"}, "malformed gan.* metadata"),
])
def test_models_whose_metadata_lies_are_refused(run, tmp_path, changes, fragment):
    (tmp_path / "m").mkdir()
    lying = _with_metadata(run / "export" / "generator.fp32.onnx", tmp_path / "m" / "g.onnx",
                           **changes)
    before = snapshot(tmp_path)
    check(ganrun("--model", str(lying), "--out", str(tmp_path / "g.png")), tmp_path, before,
          fragment)


def test_validate_refuses_what_ganrun_refuses(run, tmp_path):
    """ganexport --validate runs the same checks: a file it passes is a file ganrun runs."""
    lying = _with_metadata(run / "export" / "generator.fp32.onnx",
                           run / "export" / "lying.onnx", **{"gan.sample_shape": "14,14,1"})
    before = snapshot(run)
    check(run_cli("-m", "export.cli", "--validate", str(lying), "--quality-samples", "100"), run,
          before, "metadata says (14, 14, 1)")


def test_a_model_with_non_finite_outputs_is_refused(tmp_path):
    broken = _broken_generator(tmp_path / "broken.onnx")
    before = snapshot(tmp_path)
    check(ganrun("--model", str(broken), "--out", str(tmp_path / "g.png")), tmp_path, before,
          "NaN or infinite values")


# -- corrupt run-folder files ------------------------------------------------------------------

@pytest.mark.parametrize("name, content, command, fragment", [
    ("best.json", '{"checkpoint": ', ["export.cli", "--best"], "best.json is corrupt"),
    ("best.json", '{"checkpoint": 5}', ["export.cli", "--best"], "best.json is corrupt"),
    ("metrics.jsonl", '{"step": 4}\n{not json\n', ["training.results"], "line 2 is corrupt"),
    ("metrics.jsonl", '[1, 2]\n', ["export.cli", "--best"], "line 1 is corrupt"),
    ("config.json", '{"arch": 5}', ["export.cli"], "does not name an arch"),
    ("config.json", '{"arch": "mlp-mnist"', ["training.results"], "config.json is corrupt"),
    ("config.json", '{"arch": "biggan", "config": {}}', ["training.results"],
     "which this version does not know"),
    ("checkpoints/step_000004/state.json", '{"step": "x"}', ["export.cli"], "state.json is corrupt"),
    ("checkpoints/step_000004/state.json", '{"step": null, "epoch": 1}', ["export.cli"],
     "state.json is corrupt"),
])
def test_corrupt_run_files_are_one_line_errors(run, name, content, command, fragment):
    (run / name).write_text(content)
    before = snapshot(run)
    module, *rest = command
    args = ["-m", module, *(["--run", str(run)] if module == "export.cli" else [str(run)]), *rest]
    check(run_cli(*args), run, before, fragment)


def test_corrupt_manifest_beside_a_file_is_a_one_line_error(run):
    (run / "export" / "manifest.json").write_text("{")
    before = snapshot(run)
    check(run_cli("-m", "export.cli", "--validate", str(run / "export" / "generator.int8.onnx")),
          run, before, "manifest.json")


# -- numbers without bounds --------------------------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["--cols", "0"], "--cols"),
    (["--cols", "100000"], "--cols"),
    (["--n", "10000", "--cols", "10000", "--out", "g.jpg"], "above 65,500 per side"),
    (["--threads", "1000000"], "--threads"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**32)], "--seed"),
    (["--batch", "0"], "--batch"),
])
def test_ganrun_numbers_are_bounded(run, tmp_path, args, fragment):
    before = snapshot(tmp_path)
    out = [] if "--out" in args else ["--out", "g.png"]
    check(ganrun("--model", str(run / "export" / "generator.int8.onnx"), *args, *out,
                 cwd=tmp_path), tmp_path, before, fragment)


@pytest.mark.parametrize("args, fragment", [
    (["-m", "training.run", "--arch", "mlp-mnist", "--steps", "2", "--eval-samples", "1"],
     "--eval-samples must be between 100"),
    (["-m", "training.run", "--arch", "mlp-mnist", "--steps", "2", "--seed", "-3"], "--seed"),
    (["-m", "training.evaluate", "--n", "0", "--run", "RUN"], "--n"),
    (["-m", "training.evaluate", "--n", "10000000", "--run", "RUN"], "--n"),
    (["-m", "export.cli", "--run", "RUN", "--quality-samples", "1000000000"], "--quality-samples"),
])
def test_training_and_export_numbers_are_bounded(run, tmp_path, args, fragment):
    before = snapshot(run)
    args = [str(run) if a == "RUN" else a for a in args]
    if args[1] == "training.run":
        args += ["--run-dir", str(tmp_path / "new")]
    check(run_cli(*args), run, before, fragment)
    assert not (tmp_path / "new").exists()


# -- the file system says no -------------------------------------------------------------------

def test_file_system_refusals_name_the_path(run, tmp_path):
    model = run / "export" / "generator.int8.onnx"
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    (tmp_path / "plain.txt").write_text("x")
    before = snapshot(tmp_path)
    cases = [
        (["--model", str(fifo), "--out", str(tmp_path / "a.png")], "is not a regular file"),
        (["--model", str(model), "--out", str(tmp_path / "plain.txt" / "g.png")],
         "plain.txt is a file, not a folder"),
        (["--model", str(model), "--out", "/proc/gan-edge-grid.png"], "/proc/"),
        (["--model", str(model), "--out", str(tmp_path / "a.png"), "--out-dir",
          str(tmp_path / "plain.txt")], "plain.txt' is a file"),
    ]
    for args, fragment in cases:
        check(ganrun(*args), tmp_path, before, fragment)
    # A FIFO as --out is not replaced by a PNG: renaming onto it would destroy it.
    check(ganrun("--model", str(model), "--out", str(fifo)), tmp_path, before,
          "exists and is not a regular file")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_disk_is_one_line_and_leaves_nothing(run, tmp_path):
    """The PNG's bytes go to /dev/full (ENOSPC on write), as on a disk that fills up while
    ganrun writes: one line, and no temp file left beside the grid."""
    code = (
        "import sys, runtime.images as im\n"
        "def full(self, data):\n"
        "    with open('/dev/full', 'wb') as fh:\n"
        "        fh.write(data)\n"
        "        fh.flush()\n"
        "im.Path.write_bytes = full\n"
        "from runtime.cli import entry\n"
        f"sys.argv = ['ganrun', '--model', {str(run / 'export' / 'generator.int8.onnx')!r}, "
        f"'--out', {str(tmp_path / 'grid.png')!r}]\n"
        "entry()\n")
    before = snapshot(tmp_path)
    check(run_cli("-c", code), tmp_path, before, "No space left on device")


# -- formats Pillow lists but cannot write -----------------------------------------------------

@pytest.mark.parametrize("suffix", [".xbm", ".grib", ".xyz"])
def test_unwritable_formats_are_refused_before_generating(run, tmp_path, suffix):
    before = snapshot(tmp_path)
    check(ganrun("--model", str(run / "export" / "generator.int8.onnx"), "--out",
                 str(tmp_path / f"g{suffix}")), tmp_path, before, f"cannot write {suffix}")


# -- damaged data files ------------------------------------------------------------------------

def _data_dir(root: Path, **overrides) -> Path:
    folder = root / "data"
    folder.mkdir()
    x, y = make_digits(64, 0)
    xt, yt = make_digits(32, 1)
    parts = {"train-images-idx3-ubyte.gz": x, "train-labels-idx1-ubyte.gz": y,
             "t10k-images-idx3-ubyte": xt, "t10k-labels-idx1-ubyte": yt}
    for name, array in parts.items():
        if name in overrides:
            (folder / name).write_bytes(overrides[name])
        else:
            write_idx(folder / name, array, gz=name.endswith(".gz"))
    for name, content in overrides.items():
        if name not in parts:
            (folder / name).write_bytes(content) if isinstance(content, bytes) else \
                (folder / name).mkdir()
    return folder


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("overrides, fragment", [
    ({"t10k-images-idx3-ubyte": _idx(np.zeros((32, 32, 32)))}, "not N x 28 x 28"),
    ({"t10k-images-idx3-ubyte": _idx(np.zeros((32, 784)))}, "not N x 28 x 28"),
    ({"train-images-idx3-ubyte.gz": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage!!"},
     "cannot read"),
    ({"SHA256SUMS": b"0123abcd\n"}, "SHA256SUMS line 1 is not"),
    ({"t10k-labels-idx1-ubyte": _idx(np.full(32, 12))}, "not one class 0-9"),
])
def test_damaged_data_files_are_one_line_errors(tmp_path, overrides, fragment):
    data = _data_dir(tmp_path, **overrides)
    before = snapshot(tmp_path)
    check(run_cli("-m", "training.run", "--arch", "mlp-mnist", "--steps", "2", "--data-dir",
                  str(data), "--run-dir", str(tmp_path / "new")), tmp_path, before, fragment)


def test_a_folder_named_like_an_npz_is_not_read_as_one(tmp_path):
    """A directory called mnist.npz beside good IDX files: the IDX files are used."""
    from training.data import load_images
    data = _data_dir(tmp_path, **{"mnist.npz": None})
    assert load_images("mnist", data).x_train.shape == (64, 28, 28)


# -- answers that must be clear --------------------------------------------------------------

def test_resume_with_fewer_steps_than_done_keeps_the_schedule(run):
    before = snapshot(run)
    check(run_cli("-m", "training.run", "--arch", "mlp-mnist", "--run-dir", str(run), "--resume",
                  "--steps", "2"), run, before, "is at step 4, past the 2 steps asked for")


def test_the_resume_hint_survives_spaces_and_quotes(tmp_path):
    """The command printed after Ctrl-C, read back as a shell would, names the run folder even
    when its path has a space or a quote."""
    import shlex

    from training.rundir import RunDir
    from training.run import resume_command
    folder = tmp_path / "with space" / "it's here"
    words = shlex.split(resume_command("gan-1d", RunDir(folder)))
    assert words[words.index("--run-dir") + 1] == str(folder) and words[-1] == "--resume"


def test_results_refuse_two_runs_of_one_system(run, tiny_runs):
    before = snapshot(run)
    check(run_cli("-m", "training.results", str(run), str(tiny_runs["mlp-mnist"])), run, before,
          "are both mlp-mnist runs")


def test_evaluate_write_restores_a_lost_metrics_file(run):
    (run / "metrics.jsonl").unlink()
    result = run_cli("-m", "training.evaluate", "--run", str(run), "--n", "100", "--write")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["checkpoint"] for r in rows] == ["step_000004"] and "classifier_score" in rows[0]
