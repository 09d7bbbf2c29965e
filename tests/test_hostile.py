"""Hostile files and faults: every case must end in exit status 2 with one `error:` line and no
traceback, and leave every file that existed before byte for byte as it was (and no new file
where the command would have written).

Cases by class: data that could be lost or mixed; models whose metadata lies or whose outputs
are broken; corrupt or incomplete run-folder files; checkpoints that lack a file; clusters
that cannot exist; unbounded numbers; the file system saying no; formats Pillow lists but
cannot write; damaged data files; temp files of killed runs; answers that used to be unclear.

Cases decided before any training starts run in this process through the CLI's own wrapper
(conftest.cli); those that train, or need a fresh process, run as subprocesses.
"""
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import (CALIBRATION, ROOT, assert_one_line_error, cli, make_digits, private_copy, run_cli,
                      save_graph, snapshot, write_idx)


@pytest.fixture
def run(exported_runs, tmp_path):
    """A private copy of a tiny trained mlp-mnist run, exported (all precisions)."""
    return private_copy(exported_runs["mlp-mnist"], tmp_path / "run")


def refused(folder: Path, command: list[str], *fragments: str, cwd: Path | None = None,
            fresh_process: bool = False) -> None:
    """`python -m command` ends in exit status 2 with one `error:` line naming each fragment,
    and leaves every file under `folder` as it was. It runs in this process through the CLI's
    own wrapper, or where it trains (TensorFlow's global settings must not leak here) in a
    fresh one."""
    before = snapshot(folder)
    result = run_cli("-m", *command, cwd=cwd) if fresh_process else cli(*command, cwd=cwd)
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2, result.stderr
    assert snapshot(folder) == before


GANRUN = "runtime.cli"


def ganrun(*args, cwd=None):
    return cli(GANRUN, *args, cwd=cwd)


# -- data lost or mixed ------------------------------------------------------------------------

def test_repeated_precisions_and_stray_folders_leave_the_export_as_it_was(run):
    refused(run, ["export.cli", "--run", str(run), "--precision", "fp32,fp32",
                  "--quality-samples", "100"], "repeats a precision")
    (run / "export" / "generator.fp16.onnx").unlink()
    (run / "export" / "generator.fp16.onnx").mkdir()  # a folder where a file would go
    refused(run, ["export.cli", "--run", str(run), "--quality-samples", "100"],
            "generator.fp16.onnx exists and is not a regular file")


def test_a_run_folder_without_config_is_never_adopted(run):
    (run / "config.json").unlink()
    refused(run, ["training.run", "--arch", "mlp-mnist", "--steps", "2", "--run-dir", str(run)],
            "holds files but no config.json")


def test_a_folder_of_temp_files_alone_is_a_new_run_not_a_foreign_folder(tmp_path):
    """The chief of a multi-worker run probes its new folder (a temp file, for an instant)
    while its workers check the folder: they must not take the probe for foreign files."""
    from runtime.core.errors import GanEdgeError
    from training.rundir import RunDir
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".lock").touch()
    (folder / ".write-test.0123456789ab").touch()
    (folder / ".tmp-export-0123456789ab").mkdir()
    assert RunDir(folder).prepare("gan-1d", resume=False, writer=False) is None
    (folder / "notes.txt").touch()
    with pytest.raises(GanEdgeError, match="holds files but no config.json"):
        RunDir(folder).prepare("gan-1d", resume=False, writer=False)


def test_a_run_folder_in_use_is_refused(run):
    """A second training process on a held run folder gets one line (the lock is the kernel's:
    held here by the test itself, as a running training would hold it; flock locks of two
    open files conflict within one process too)."""
    with open(run / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused(run, ["training.run", "--arch", "mlp-mnist", "--run-dir", str(run), "--resume",
                      "--steps", "8"], "in use by another training", "fuser")


def test_grid_that_out_dir_would_overwrite_is_refused(run, tmp_path):
    model = run / "export" / "generator.int8.onnx"
    (tmp_path / "out").mkdir()
    refused(tmp_path / "out", [GANRUN, "--model", str(model), "--n", "3", "--out",
                               str(tmp_path / "out" / "sample_000000.png"),
                               "--out-dir", str(tmp_path / "out")],
            "would be overwritten by --out-dir")


def _at_once(*commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Start every command (`python ...`) at once, then wait for them all."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen([sys.executable, *c], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
    outs = [p.communicate(timeout=600) for p in procs]
    return [subprocess.CompletedProcess(c, p.returncode, *o)
            for c, p, o in zip(commands, procs, outs)]


def _finished_or_told(results, writer: str) -> None:
    """Each finished, or was told in one line that another `writer` held the folder; one
    finished."""
    for result in results:
        if result.returncode != 0:
            assert_one_line_error(result, f"in use by another {writer}")
    assert any(r.returncode == 0 for r in results), [r.stderr for r in results]


def test_two_writability_probes_of_one_folder_do_not_collide(tmp_path):
    probe = ("from runtime.core.files import check_writable_dir\n"
             f"for _ in range(3000):\n    check_writable_dir({str(tmp_path)!r}, '--out')\n")
    for result in _at_once(["-c", probe], ["-c", probe]):
        assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_folder_held_by_another_writer_is_refused(run, tmp_path):
    """The hold is the kernel's, on the folder: taken here by the test itself, as a running
    export or ganrun takes it (flock locks of two open files conflict within one process)."""
    from runtime.core.files import hold_folder
    with hold_folder(run / "export", "--out", "export"):
        refused(run, ["export.cli", "--run", str(run), "--precision", "fp32",
                      "--quality-samples", "100"], "in use by another export")
    each = tmp_path / "each"
    with hold_folder(each, "--out-dir", "ganrun"):
        refused(tmp_path, [GANRUN, "--model", str(run / "export" / "generator.int8.onnx"),
                           "--n", "2", "--out", str(tmp_path / "g.png"), "--out-dir", str(each)],
                "in use by another ganrun")


def _consistent_export(export: Path) -> dict:
    """The manifest lists exactly the ONNX files the folder holds, each with its SHA-256, and
    no temp file is left."""
    from runtime.core.files import sha256_file
    manifest = json.loads((export / "manifest.json").read_text())
    listed = [*manifest["files"], manifest["discriminator"]]
    assert sorted(p.name for p in export.glob("*.onnx")) == sorted(f["file"] for f in listed)
    for entry in listed:
        assert sha256_file(export / entry["file"]) == entry["sha256"], entry["file"]
    assert _hidden(export) == []
    return manifest


@pytest.mark.slow
def test_two_exports_into_one_folder_at_once(run):
    """Two ganexport processes of two precisions into one export folder, started together:
    each finishes or is told that the other holds the folder, and the folder is one export's
    whole, consistent set."""
    results = _at_once(*(["-m", "export.cli", "--run", str(run), "--precision", p,
                          "--quality-samples", "100", "--calibration-samples", str(CALIBRATION)]
                         for p in ("fp32", "int8")))
    _finished_or_told(results, "export")
    manifest = _consistent_export(run / "export")
    assert [f["precision"] for f in manifest["files"]] in (["fp32"], ["int8"])


def test_two_ganruns_into_one_out_dir_at_once(run, tmp_path):
    """Two ganruns of two seeds and sizes fill one --out-dir together: each finishes or is told
    that the other holds the folder, and the folder holds one run's samples, no mix of both
    (unheld, they overwrite each other's samples, and the larger leaves its extra ones)."""
    model = str(run / "export" / "generator.int8.onnx")

    def args(seed, out_dir):
        return ["-m", GANRUN, "--model", model, "--n", str(500 * seed), "--seed", str(seed),
                "--quiet", "--out", str(tmp_path / f"grid{seed}.png"), "--out-dir",
                str(out_dir), "--replace"]
    alone = {seed: run_cli(*args(seed, tmp_path / f"alone{seed}")) for seed in (1, 2)}
    assert all(r.returncode == 0 for r in alone.values()), [r.stderr for r in alone.values()]
    results = _at_once(args(2, tmp_path / "both"), args(1, tmp_path / "both"))
    _finished_or_told(results, "ganrun")
    got = snapshot(tmp_path / "both")
    assert got in (snapshot(tmp_path / "alone1"), snapshot(tmp_path / "alone2"))


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
    return save_graph(graph, path, {
        "gan.arch": "mlp-mnist", "gan.latent_dim": "4", "gan.sample_shape": "2,2,1",
        "gan.output_range": "-1,1", "gan.precision": "fp32"})


@pytest.mark.parametrize("changes, fragment", [
    ({"gan.sample_shape": "14,14,1"}, "metadata says (14, 14, 1)"),
    ({"gan.output_range": "5,6"}, "outside its declared range"),
    ({"gan.output_range": "1,1"}, "impossible gan.* metadata"),
    ({"gan.output_range": "nan,1"}, "impossible gan.* metadata"),
    ({"gan.latent_dim": str(2**40)}, "impossible gan.* metadata"),
    ({"gan.sample_shape": "100000,100000"}, "impossible gan.* metadata"),
    ({"gan.sample_shape": "0,28,1"}, "impossible gan.* metadata"),
    ({"gan.latent_dim": "abc"}, "malformed gan.* metadata"),
    ({"gan.largest_tensor_bytes": "-1"}, "malformed gan.* metadata"),
    ({"gan.largest_tensor_bytes": "\u00b2"}, "malformed gan.* metadata"),
    ({"gan.largest_tensor_bytes": "9" * 5000}, "malformed gan.* metadata"),
])
def test_models_whose_metadata_lies_are_refused(run, tmp_path, changes, fragment):
    (tmp_path / "m").mkdir()
    lying = _with_metadata(run / "export" / "generator.fp32.onnx", tmp_path / "m" / "g.onnx",
                           **changes)
    refused(tmp_path, [GANRUN, "--model", str(lying), "--out", str(tmp_path / "g.png")], fragment)


def test_validate_refuses_what_ganrun_refuses(run, tmp_path):
    """ganexport --validate runs the same checks: a file it passes is a file ganrun runs."""
    lying = _with_metadata(run / "export" / "generator.fp32.onnx",
                           run / "export" / "lying.onnx", **{"gan.sample_shape": "14,14,1"})
    refused(run, ["export.cli", "--validate", str(lying), "--quality-samples", "100"],
            "metadata says (14, 14, 1)")


def test_a_model_with_non_finite_outputs_is_refused(tmp_path):
    broken = _broken_generator(tmp_path / "broken.onnx")
    refused(tmp_path, [GANRUN, "--model", str(broken), "--out", str(tmp_path / "g.png")],
            "NaN or infinite values")


# -- corrupt run-folder files ------------------------------------------------------------------

@pytest.mark.parametrize("name, content, command, fragment", [
    ("best.json", '{"checkpoint": ', ["export.cli", "--best"], "best.json is corrupt"),
    ("best.json", '{"checkpoint": 5}', ["export.cli", "--best"], "best.json is corrupt"),
    ("metrics.jsonl", '{"step": 4, "epoch": 1, "checkpoint": "step_000004"}\n{not json\n',
     ["training.results"], "line 2 is corrupt"),
    ("metrics.jsonl", '[1, 2]\n', ["export.cli", "--best"], "line 1 is corrupt"),
    ("config.json", '{"arch": 5}', ["export.cli"], "does not name an arch"),
    ("config.json", '{"arch": "mlp-mnist"', ["training.results"], "config.json is corrupt"),
    ("config.json", '{"arch": "biggan", "config": {}, "seed": 0, "ema": 0.999, "schedule": '
     '{"total_steps": 4, "eval_every_steps": 4}}', ["training.results"],
     "which this version does not know"),
    ("checkpoints/step_000004/state.json", '{"step": "x"}', ["export.cli"], "state.json is corrupt"),
    ("checkpoints/step_000004/state.json", '{"step": null, "epoch": 1}', ["export.cli"],
     "state.json is corrupt"),
])
def test_corrupt_run_files_are_one_line_errors(run, name, content, command, fragment):
    (run / name).write_text(content)
    module, *rest = command
    refused(run, [module, *(["--run", str(run)] if module == "export.cli" else [str(run)]), *rest],
            fragment)


def test_corrupt_manifest_beside_a_file_is_a_one_line_error(run):
    (run / "export" / "manifest.json").write_text("{")
    refused(run, ["export.cli", "--validate", str(run / "export" / "generator.int8.onnx")],
            "manifest.json")


# -- numbers without bounds --------------------------------------------------------------------

# (ganrun's: tests/test_runtime.py, with its other bad input)
@pytest.mark.parametrize("args, fragment", [
    (["training.run", "--arch", "mlp-mnist", "--steps", "2", "--eval-samples", "1"],
     "--eval-samples must be between 100"),
    (["training.run", "--arch", "mlp-mnist", "--steps", "2", "--seed", "-3"], "--seed"),
    (["training.evaluate", "--n", "0", "--run", "RUN"], "--n"),
    (["training.evaluate", "--n", "10000000", "--run", "RUN"], "--n"),
    (["export.cli", "--run", "RUN", "--quality-samples", "1000000000"], "--quality-samples"),
])
def test_training_and_export_numbers_are_bounded(run, tmp_path, args, fragment):
    args = [str(run) if a == "RUN" else a for a in args]
    if args[0] == "training.run":
        args += ["--run-dir", str(tmp_path / "new")]
    refused(run, args, fragment)
    assert not (tmp_path / "new").exists()


# -- the file system says no -------------------------------------------------------------------

def test_file_system_refusals_name_the_path(run, tmp_path):
    model = run / "export" / "generator.int8.onnx"
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    (tmp_path / "plain.txt").write_text("x")
    cases = [
        (["--model", str(fifo), "--out", str(tmp_path / "a.png")], "is not a regular file"),
        (["--model", str(model), "--out", str(tmp_path / "plain.txt" / "g.png")],
         "plain.txt is a file, not a folder"),
        (["--model", str(model), "--out", "/proc/gan-edge-grid.png"], "/proc/"),
        (["--model", str(model), "--out", str(tmp_path / "a.png"), "--out-dir",
          str(tmp_path / "plain.txt")], "plain.txt' is a file"),
    ]
    for args, fragment in cases:
        refused(tmp_path, [GANRUN, *args], fragment)
    # A FIFO as --out is not replaced by a PNG: renaming onto it would destroy it.
    refused(tmp_path, [GANRUN, "--model", str(model), "--out", str(fifo)],
            "exists and is not a regular file")


def test_a_full_disk_is_one_line_and_leaves_nothing(run, tmp_path, monkeypatch):
    """The PNG's bytes go to /dev/full (ENOSPC on write; Linux, as the suite), as on a disk
    that fills up while ganrun writes: one line, and no temp file left beside the grid."""
    import runtime.core.images as im

    def full(self, data):
        with open("/dev/full", "wb") as fh:
            fh.write(data)
            fh.flush()
    monkeypatch.setattr(im.Path, "write_bytes", full)
    (tmp_path / "out").mkdir()
    refused(tmp_path / "out", [GANRUN, "--model", str(run / "export" / "generator.int8.onnx"),
                               "--out", str(tmp_path / "out" / "grid.png")],
            "No space left on device")


# -- formats Pillow lists but cannot write -----------------------------------------------------

@pytest.mark.parametrize("suffix", [".xbm", ".grib", ".xyz"])
def test_unwritable_formats_are_refused_before_generating(run, tmp_path, suffix):
    refused(tmp_path, [GANRUN, "--model", str(run / "export" / "generator.int8.onnx"), "--out",
                       str(tmp_path / f"g{suffix}")], f"cannot write {suffix}")


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
    refused(tmp_path, ["training.run", "--arch", "mlp-mnist", "--steps", "2", "--data-dir",
                       str(data), "--run-dir", str(tmp_path / "new")], fragment)


def test_a_folder_named_like_an_npz_is_not_read_as_one(tmp_path):
    """A directory called mnist.npz beside good IDX files: the IDX files are used."""
    from training.data import load_images
    data = _data_dir(tmp_path, **{"mnist.npz": None})
    assert load_images("mnist", data).x_train.shape == (64, 28, 28)


# -- answers that must be clear --------------------------------------------------------------

@pytest.mark.slow
def test_resume_with_fewer_steps_than_done_keeps_the_schedule(run):
    """A subprocess: it builds the GAN, and TensorFlow's global settings must not leak here."""
    refused(run, ["training.run", "--arch", "mlp-mnist", "--run-dir", str(run), "--resume",
                  "--steps", "2"], "is at step 4, past the 2 steps asked for", fresh_process=True)


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
    refused(run, ["training.results", str(run), str(tiny_runs["mlp-mnist"])],
            "are both mlp-mnist runs")


def test_evaluate_write_restores_a_lost_metrics_file(run):
    (run / "metrics.jsonl").unlink()
    result = cli("training.evaluate", "--run", str(run), "--n", "100", "--write")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["checkpoint"] for r in rows] == ["step_000004"] and "classifier_score" in rows[0]


# -- run files that parse but lack what their readers need -------------------------------------

def _edit_json(path: Path, drop=(), **set_) -> None:
    data = json.loads(path.read_text())
    for key in drop:
        data.pop(key)
    path.write_text(json.dumps({**data, **set_}))


RESUME = ["training.run", "--arch", "mlp-mnist", "--resume", "--steps", "8", "--run-dir", "RUN"]


@pytest.mark.parametrize("name, drop, set_, command, fragment", [
    ("best.json", ["classifier_score"], {}, ["training.results", "RUN"], "best.json is corrupt"),
    ("best.json", ["n_samples", "frechet_distance"], {}, ["training.results", "RUN"],
     "best.json is corrupt"),
    ("best.json", [], {"kl_to_uniform": "low"}, ["training.results", "RUN"],
     "best.json is corrupt"),
    ("best.json", ["step"], {}, ["export.cli", "--run", "RUN", "--best"], "best.json is corrupt"),
    ("best.json", ["ema_n_samples"], {}, ["training.results", "RUN"], "best.json is corrupt"),
    ("config.json", ["seed"], {}, ["training.results", "--plot", "PLOT", "RUN"],
     "config.json is incomplete"),
    ("config.json", ["schedule"], {}, ["training.results", "RUN"], "config.json is incomplete"),
    ("config.json", [], {"data": "mnist"}, ["training.evaluate", "--run", "RUN"],
     "config.json is incomplete"),
    ("config.json", ["config"], {}, ["export.cli", "--run", "RUN"], "config.json is incomplete"),
    ("config.json", ["seed"], {}, RESUME, "config.json is incomplete"),
    ("config.json", [], {"schedule": {"total_steps": "4"}}, RESUME, "config.json is incomplete"),
    ("config.json", [], {"ema": 2}, RESUME, "config.json is incomplete"),
    ("config.json", [], {"acceleration": {"xla": "yes"}}, ["training.evaluate", "--run", "RUN"],
     "config.json is corrupt"),
])
def test_run_files_that_lack_keys_are_one_line_errors(run, tmp_path, name, drop, set_, command,
                                                      fragment):
    _edit_json(run / name, drop, **set_)
    places = {"RUN": str(run), "PLOT": str(tmp_path / "q.png")}
    refused(run, [places.get(a, a) for a in command], fragment)
    assert not (tmp_path / "q.png").exists()


def test_a_metrics_row_that_lacks_scores_is_a_one_line_error(run):
    rows = (run / "metrics.jsonl").read_text().splitlines()
    row = json.loads(rows[-1])
    del row["classes_covered"]
    (run / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    for command in (["training.results", str(run)],
                    ["training.evaluate", "--run", str(run), "--n", "100", "--write"],
                    ["export.cli", "--run", str(run), "--best"]):
        refused(run, command, "metrics.jsonl line 1 is corrupt", "classes_covered")


# -- checkpoints that lack a file --------------------------------------------------------------

@pytest.mark.parametrize("damage, fragment", [
    ("delete generator.keras", "generator.keras is missing"),
    ("truncate generator.keras", "cannot load"),
    ("truncate generator_ema.keras", "cannot load"),
    ("empty generator.keras", "cannot load"),
    ("delete state.json", "has no evaluation checkpoints"),  # an unfinished save
])
def test_evaluate_a_checkpoint_that_lacks_a_file(run, damage, fragment):
    action, name = damage.split()
    target = run / "checkpoints" / "step_000004" / name
    if action == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[:1000] if action == "truncate" else b"")
    for args in (["--checkpoint", "step_000004"], []):
        refused(run, ["training.evaluate", "--run", str(run), "--n", "100", "--write", *args],
                fragment)


def test_evaluate_onnx_refuses_files_that_are_not_this_versions_generators(run, tmp_path):
    export = run / "export"
    (tmp_path / "m").mkdir()
    unknown = _with_metadata(export / "generator.fp32.onnx", tmp_path / "m" / "u.onnx",
                             **{"gan.arch": "biggan-imagenet"})
    other = _with_metadata(export / "generator.fp32.onnx", tmp_path / "m" / "o.onnx",
                           **{"gan.arch": "gan-1d", "gan.sample_shape": "28,28,1"})
    broken = _broken_generator(tmp_path / "m" / "b.onnx")
    for path, fragment in ((unknown, "unknown architecture 'biggan-imagenet'"),
                           (other, "says it is gan-1d, but takes 100 latents"),
                           (broken, "NaN or infinite"),
                           (export / "discriminator.int8.onnx", "not a gan-edge generator"),
                           (tmp_path / "none.onnx", "does not exist")):
        refused(tmp_path, ["training.evaluate", "--onnx", str(path), "--n", "100"], str(path),
                fragment)


# -- clusters that cannot exist ----------------------------------------------------------------

@pytest.mark.parametrize("tf_config, fragment", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ("[1, 2]", "TF_CONFIG's cluster must map"),
    ('{"cluster": {"worker": "localhost:1"}, "task": {"type": "worker", "index": 0}}',
     "TF_CONFIG's cluster must map"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
     "TF_CONFIG's cluster must map"),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}}', "TF_CONFIG's task must name"),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "ps"}}',
     "TF_CONFIG's task must name"),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", '
     '"index": 2}}', "task index 2 is outside its cluster"),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", '
     '"index": -1}}', "task index -1 is outside its cluster"),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", '
     '"index": "one"}}', "task index 'one' is outside its cluster"),
])
@pytest.mark.parametrize("strategy", ["auto", "multiworker"])
def test_a_cluster_that_cannot_exist_is_one_line(tmp_path, tiny_mnist, monkeypatch, tf_config,
                                                 fragment, strategy):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    refused(tmp_path, ["training.run", "--arch", "mlp-mnist", "--steps", "2", "--data-dir",
                       str(tiny_mnist), "--run-dir", str(tmp_path / "new"), "--strategy",
                       strategy], fragment)


# -- earlier output beside new output ----------------------------------------------------------

def test_out_dir_with_earlier_samples_is_refused_unless_replaced(run, tmp_path):
    model = str(run / "export" / "generator.int8.onnx")
    each = tmp_path / "each"
    first = ganrun("--model", model, "--n", "6", "--seed", "1", "--out", str(tmp_path / "a.png"),
                   "--out-dir", str(each))
    assert first.returncode == 0, first.stderr
    (each / "labels.csv").write_text("file,class,confidence\n")  # as a --class run leaves
    (each / "notes.txt").write_text("mine")
    refused(tmp_path, [GANRUN, "--model", model, "--n", "3", "--seed", "2", "--out",
                       str(tmp_path / "b.png"), "--out-dir", str(each)],
            "holds 7 files of an earlier run", "--replace")
    refused(tmp_path, [GANRUN, "--model", model, "--replace", "--out", str(tmp_path / "b.png")],
            "--replace replaces the samples in --out-dir")
    second = ganrun("--model", model, "--n", "3", "--seed", "2", "--out", str(tmp_path / "b.png"),
                    "--out-dir", str(each), "--replace")
    assert second.returncode == 0, second.stderr
    # All of the earlier run's files are gone or replaced; the user's own file stays.
    assert sorted(p.name for p in each.iterdir()) == [
        "notes.txt", "sample_000000.png", "sample_000001.png", "sample_000002.png"]
    again = ganrun("--model", model, "--n", "3", "--seed", "2", "--out", str(tmp_path / "c.png"),
                   "--out-dir", str(tmp_path / "fresh"))
    assert again.returncode == 0, again.stderr
    for i in range(3):
        name = f"sample_{i:06d}.png"
        assert (each / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()


def test_an_export_of_fewer_precisions_names_the_files_it_removed(run):
    result = cli("export.cli", "--run", str(run), "--precision", "int8", "--quality-samples",
                 "100", "--calibration-samples", str(CALIBRATION))
    assert result.returncode == 0, result.stderr
    export = run / "export"
    for gone in ("generator.fp32.onnx", "generator.fp16.onnx"):
        assert not (export / gone).exists()
        assert any(line.startswith("removed ") and gone in line
                   for line in result.stderr.splitlines()), result.stderr
    manifest = json.loads((export / "manifest.json").read_text())
    # What the folder holds is what the manifest lists.
    assert sorted(p.name for p in export.glob("*.onnx")) == sorted(
        [f["file"] for f in manifest["files"]] + [manifest["discriminator"]["file"]])


# -- temp files of killed runs -----------------------------------------------------------------

def _killed_while_writing(folder: Path, kind: str) -> None:
    """A process that dies by SIGKILL in the middle of writing into `folder` the way gan-edge
    writes (an atomic file, or an export's temp folder)."""
    code = {"file": "from runtime.core.files import atomic_path\n"
                    f"with atomic_path({str(folder / 'sample_000000.png')!r}) as tmp:\n"
                    "    tmp.write_bytes(b'half a png')\n"
                    "    os.kill(os.getpid(), signal.SIGKILL)\n",
            "folder": "from runtime.core.files import temp_folder\n"
                      f"with temp_folder(Path({str(folder)!r}), '.tmp-export-') as tmp:\n"
                      "    (tmp / 'fp32.onnx').write_bytes(b'half a model')\n"
                      "    os.kill(os.getpid(), signal.SIGKILL)\n"}[kind]
    result = subprocess.run([sys.executable, "-c", "import os, signal\nfrom pathlib import Path\n"
                             + code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == -9, result.stderr


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_temp_files_of_a_killed_ganrun_are_removed_by_the_next_run(run, tmp_path):
    from runtime.core.files import atomic_path
    each = tmp_path / "each"
    each.mkdir()
    _killed_while_writing(each, "file")
    _killed_while_writing(tmp_path, "file")  # beside the grid: another name, not ganrun's
    assert len(_hidden(each)) == 1
    with atomic_path(each / "live.png") as live:  # a writer that is still at work keeps its own
        live.write_bytes(b"x")
        result = ganrun("--model", str(run / "export" / "generator.int8.onnx"), "--n", "2",
                        "--out", str(tmp_path / "g.png"), "--out-dir", str(each))
        assert result.returncode == 0, result.stderr
        assert _hidden(each) == [live.name]
    assert len(_hidden(tmp_path)) == 1, "only temp files of ganrun's own targets are its to remove"
    assert sorted(p.name for p in each.iterdir()) == ["live.png", "sample_000000.png",
                                                       "sample_000001.png"]


def test_temp_files_of_a_killed_export_are_removed_by_the_next_export(run):
    export = run / "export"
    _killed_while_writing(export, "folder")
    _killed_while_writing(export, "file")
    assert len(_hidden(export)) == 2
    result = cli("export.cli", "--run", str(run), "--precision", "fp32", "--quality-samples",
                 "100")
    assert result.returncode == 0, result.stderr
    assert _hidden(export) == []
    assert result.stderr.count("left in") == 2


@pytest.mark.slow
def test_temp_folders_of_a_killed_training_are_removed_when_it_resumes(tmp_path, tiny_mnist):
    run = tmp_path / "run"
    first = run_cli("-m", "training.run", "--arch", "gan-1d", "--steps", "4", "--eval-every", "2",
                    "--run-dir", str(run), "--quiet", "--eval-samples", "100",
                    env={"GAN_EDGE_FAULT": "kill@checkpoint:1"})
    assert first.returncode == -9, first.stderr
    _killed_while_writing(run / "checkpoints", "folder")  # as a kill inside a checkpoint save
    _killed_while_writing(run, "file")
    resumed = run_cli("-m", "training.run", "--arch", "gan-1d", "--run-dir", str(run), "--resume",
                      "--quiet", "--eval-samples", "100")
    assert resumed.returncode == 0, resumed.stderr
    assert not list(run.rglob(".tmp-*")) and _hidden(run) == [".lock"]
    assert resumed.stderr.count("left by a training process that was killed") == 2


# -- every entry point a user types ------------------------------------------------------------

def _venv_without_onnxruntime(wheel: Path, venv: Path) -> Path:
    """A bare venv holding `wheel` installed as a user installs it who forgets the [cpu]
    extra: its dependencies (numpy, Pillow, click) but no onnxruntime. They come from this
    interpreter's own copies, linked in with their records, so pip finds them installed and
    needs no index. Returns the venv's bin folder."""
    from importlib import metadata
    assert subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv]).returncode == 0
    site = next((venv / "lib").glob("python3*/site-packages"))
    for name in ("numpy", "pillow", "click"):
        dist = metadata.distribution(name)
        for top in {f.parts[0] for f in dist.files} - {".."}:
            (site / top).symlink_to(dist.locate_file(top))
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python",
                                "install", "-q", "--isolated", "--no-index", wheel],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv / "bin"


def test_ganrun_without_onnxruntime_names_the_extra(device_wheel, tmp_path):
    """The device wheel installed without [cpu]: ganrun --list works (it needs no
    onnxruntime), and generating is one line naming the install command of this wheel file."""
    bin_dir = _venv_without_onnxruntime(device_wheel, tmp_path / "venv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def user(*args):
        return subprocess.run([str(a) for a in args], cwd=elsewhere, capture_output=True,
                              text=True, timeout=120)
    assert user(bin_dir / "python", "-c", "import onnxruntime").returncode != 0
    assert user(bin_dir / "ganrun", "--list").returncode == 0
    for args in (["--n", "4"], ["--device", "cuda"]):
        result = user(bin_dir / "ganrun", *args)
        assert_one_line_error(result, "onnxruntime is not installed",
                              f"pip install '{device_wheel}[cpu]'", "[gpu]")
        assert result.returncode == 2
    assert list(elsewhere.iterdir()) == []


# RUN: a tiny mlp-mnist run (step_000004); BARE: one without checkpoints; NOT_A_RUN: a folder
# without config.json; MISSING: nothing; EXPORT: RUN's export folder.
@pytest.mark.parametrize("module, args, fragment", [
    ("benchmarks.__main__", ["--run", "MISSING"], "MISSING does not exist"),
    ("benchmarks.__main__", ["--arch", "mlp-mnist", "--run", "BARE"], "no evaluation checkpoints"),
    ("benchmarks.__main__", ["--arch", "mlp-mnist", "--run", "NOT_A_RUN"], "not a training run"),
    ("benchmarks.__main__", ["--run", "RUN"], "is a mlp-mnist run, not dcgan-mnist"),
    ("benchmarks.__main__", ["--arch", "biggan"], "unknown architecture 'biggan'"),
    ("benchmarks.__main__", ["--out", "/proc/gan-edge"], "cannot write to --out /proc/gan-edge"),
    ("benchmarks.ablation", ["--arch", "mlp-mnist"], "--arch must be a conditional system"),
    ("benchmarks.ablation", ["--out", "/proc/gan-edge"], "cannot write to --out /proc/gan-edge"),
    ("benchmarks.device", ["--models", "MISSING"], "MISSING' does not exist"),
    ("benchmarks.device", ["--models", "EXPORT", "--out", "/proc/gan-edge"],
     "cannot write to --out /proc/gan-edge"),
    ("benchmarks.ema", ["--decays", "0.9,x"], "--decays must be numbers"),
    ("benchmarks.ema", ["--out", "/proc/gan-edge"], "cannot write to --out /proc/gan-edge"),
    ("benchmarks.independent_classifier", ["--epochs", "0"], "--epochs"),
    ("benchmarks.int8_layers", ["--run", "RUN", "--checkpoint", "epoch_999"], "epoch_999"),
    ("benchmarks.int8_layers", ["--run", "RUN", "--checkpoint", "step_000004", "--out",
                                "/proc/gan-edge"], "cannot write to --out /proc/gan-edge"),
    ("benchmarks.int8_ranges", ["--run", "RUN", "--checkpoints", "step_000004,epoch_999"],
     "epoch_999"),
    ("benchmarks.int8_ranges", ["--run", "RUN", "--checkpoints", "step_000004", "--out",
                                "/proc/gan-edge"], "cannot write to --out /proc/gan-edge"),
    ("benchmarks.knobs", ["--model", "biggan"], "no shipped model named 'biggan'"),
    ("benchmarks.knobs", ["--model", "gan-1d"], "gan-1d model"),
    ("benchmarks.knobs", ["--out", "/proc/gan-edge"], "cannot write to --out /proc/gan-edge"),
    ("benchmarks.quality_goals", ["--dcgan-run", "NOT_A_RUN"], "not a training run"),
    ("benchmarks.quality_goals", ["--out-dir", "/proc/gan-edge"], "/proc/gan-edge"),
    ("benchmarks.train_step", ["--out", "/proc/gan-edge.md"], "cannot write"),
])
def test_benchmarks_answer_bad_input_in_one_line(run, tmp_path, module, args, fragment):
    """Each refused before its minutes of work: a named run that is not there, or holds no
    checkpoint, is never replaced by an untrained generator; a report folder that cannot be
    written is found before the measuring, not after it."""
    import shutil
    bare = private_copy(run, tmp_path / "bare")
    shutil.rmtree(bare / "checkpoints")
    (tmp_path / "not-a-run").mkdir()
    places = {"RUN": run, "BARE": bare, "NOT_A_RUN": tmp_path / "not-a-run",
              "MISSING": tmp_path / "MISSING", "EXPORT": run / "export"}
    refused(tmp_path, [module, *(str(places.get(a, a)) for a in args)],
            fragment.replace("MISSING", str(tmp_path / "MISSING")))


def test_scripts_answer_bad_input_in_one_line(tmp_path):
    """The scripts run by path (`make wheel`, `make docs`) through the same wrapper."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    build = [str(ROOT / "device-wheel" / "build.py"), "--staging", str(tmp_path / "stage")]
    cases = [
        ([*build, "--out", "/proc/gan-edge-dist"], "cannot write to --out /proc/gan-edge-dist"),
        ([*build, "--out", str(mine / "notes.txt")], "notes.txt' is a file"),
        ([build[0], "--staging", str(mine), "--out", str(tmp_path / "dist")],
         "not a staged device wheel"),
        ([str(ROOT / "docs" / "generate.py"), "--check", "--gallery"], "pass one of them"),
        ([str(ROOT / "docs" / "generate.py"), "--bogus"], "--bogus"),
    ]
    for args, fragment in cases:
        before = snapshot(tmp_path)
        result = run_cli(*args)
        assert_one_line_error(result, fragment)
        assert result.returncode == 2, result.stderr
        assert snapshot(tmp_path) == before
