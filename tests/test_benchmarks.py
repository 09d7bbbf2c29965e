"""The benchmark report: goals computed from the measurements, Markdown that says how to remake
it, and PNG charts, checked on a small hand-made set of measurements (no timing asserts)."""
import json
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import CALIBRATION, assert_one_line_error, cli, run_cli


def _measurements() -> dict:
    speed = {"keras_call": {1: 100.0, 25: 900.0, 256: 1500.0},
             "onnx_fp32": {1: 2000.0, 25: 9000.0, 256: 10000.0},
             "onnx_int8": {1: 2500.0, 25: 15000.0, 256: 20000.0},
             "onnx_fp16": {1: 1500.0, 25: 7000.0, 256: 8000.0}}
    side = {"wall_s_median": 0.3, "wall_s_min": 0.28, "wall_s_max": 0.4,
            "peak_rss_mb_median": 85.0, "peak_rss_mb_min": 84.0, "peak_rss_mb_max": 86.0}
    quality = {"classifier_score": 8.31, "frechet_distance": None, "classes_covered": 10,
               "kl_to_uniform": 0.01, "n_samples": 1000}
    return {
        "host": "testhost", "date": "2026-11-23 12:00", "quick": True, "arch": "dcgan-mnist",
        "machine": {"cpus": 2, "platform": "Linux", "processor": "x86_64", "python": "3.11",
                    "other_work_share": 0.125},
        "command": "python -m benchmarks --quick --arch dcgan-mnist --run dcgan-mnist",
        "model_source": "trained checkpoint dcgan-mnist/epoch_040",
        "training": [{"arch": "mlp-mnist", "project_s_per_step": 0.005,
                      "article_s_per_step": 0.06, "speedup": 12.0}],
        "generation": {"images_per_s": speed, "flops_per_image": 2e8, "peak_gflops": 150.0,
                       "peak_note": "numpy matmul", "note": "",
                       "fraction_of_peak": {n: {b: 0.1 for b in per} for n, per in speed.items()}},
        "cold_start": {"ganrun": side, "keras_script": {**side, "wall_s_median": 4.5},
                       "ganrun_default": side, "import_floor": {**side, "wall_s_median": 0.2},
                       "speedup_wall": 15.0, "default_over_floor": 1.5,
                       "ganrun_default_phases_s": {"import numpy and onnxruntime": 0.12,
                                                   "import click": 0.01,
                                                   "open the model": 0.02}},
        "files": {"fp32": {"bytes": 4_000_000, **quality},
                  "int8": {"bytes": 1_000_000, **quality, "classifier_score": 8.35},
                  "fp16": {"bytes": 2_000_000, **quality}},
    }


def test_report_computes_goals_and_writes_json_markdown_and_charts(tmp_path):
    from benchmarks.__main__ import _goals, _write
    from benchmarks.report import other_work_text
    report = _measurements()
    report["goals"] = _goals(report)
    goals = {g["goal"]: g for g in report["goals"]}
    assert goals["int8_size_ratio"]["measured"] == 0.25 and goals["int8_size_ratio"]["met"]
    assert goals["int8_speedup_b256"]["measured"] == 2.0
    assert goals["fp32_over_keras_b256"]["measured"] == 10000 / 1500
    assert goals["int8_over_keras_b256"]["measured"] == 20000 / 1500
    assert goals["fp32_over_keras_b256"]["met"] and goals["int8_over_keras_b256"]["met"]
    assert abs(goals["int8_quality_delta"]["measured"] - 0.04) < 1e-9
    assert goals["train_speedup_mlp-mnist"]["met"] is False  # 12x against a 15x goal
    assert goals["train_speedup_dcgan-mnist"]["measured"] is None  # not in this run
    assert goals["ganrun_wall_s"]["met"] is False and goals["ganrun_rss_mb"]["met"]
    assert goals["default_over_floor"]["measured"] == 1.5 and goals["default_over_floor"]["met"] is False
    _write(report, tmp_path)
    saved = json.loads((tmp_path / "testhost-2026-11-23.json").read_text())
    assert saved["goals"] == json.loads(json.dumps(report["goals"]))
    md = (tmp_path / "testhost-2026-11-23.md").read_text()
    assert "Made by `python -m benchmarks --quick --arch dcgan-mnist --run dcgan-mnist`." in md
    assert "| int8 file size / fp32 file size | <= 0.3 | 0.25 | yes |" in md
    assert "not measured" in md  # the missing Frechet distance and DCGAN training goal
    assert "| import_floor | 0.20 s" in md
    assert "| import click | 10.0 ms |" in md
    assert "| the steps after the import floor's, summed | 30.0 ms |" in md
    assert "| whole process above the import floor (difference of the medians above) | 100.0 ms |" in md
    assert other_work_text(0.125, 2) in md
    assert len(report["charts"]) == 2
    for chart in report["charts"]:
        with Image.open(chart) as img:
            assert img.format == "PNG" and Path(chart).parent == tmp_path


def test_a_named_report_takes_its_name_and_a_bad_name_is_an_error(tmp_path):
    from benchmarks.__main__ import _goals, _write
    report = {**_measurements(), "name": "testhost-2026-11-23-intel"}  # another machine that day
    report["goals"] = _goals(report)
    _write(report, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"testhost-2026-11-23-intel{end}"
        for end in ("-cold-start.png", "-generation.png", ".json", ".md")]
    result = run_cli("-m", "benchmarks", "--name", "../elsewhere")
    assert_one_line_error(result, "--name '../elsewhere' must be a plain file name")


def test_train_step_times_the_projects_step_as_training_runs_it_and_the_articles_loop(
        monkeypatch):
    """The real measurement, one step a round: both loops build and step on this machine."""
    from benchmarks import train_step
    from training.acceleration import Acceleration
    from training.config import get_config
    built = []
    project_step = train_step._project_step
    monkeypatch.setattr(train_step, "_project_step",
                        lambda cfg, x, acceleration: built.append(acceleration) or
                        project_step(cfg, x, acceleration))
    measured = train_step.measure("gan-1d", steps=1, rounds=1)
    assert built == [Acceleration.decide(get_config("gan-1d"))]
    assert measured["project_s_per_step"] > 0 and measured["article_s_per_step"] > 0


def test_start_up_phases_time_each_step_of_ganrun_in_a_fresh_process(tmp_path):
    """Where ganrun's start-up goes, as the report tells it: every step timed, and the grid
    that the timed steps wrote is the one ganrun itself writes."""
    import sys

    from benchmarks import cold_start
    from conftest import cli
    seconds = cold_start._phases(Path(sys.executable), tmp_path)
    assert len(seconds) == len(cold_start.PHASES) and all(s > 0 for s in seconds)
    assert cli("runtime.cli", "--n", "25", "--out", str(tmp_path / "ganrun.png")).returncode == 0
    assert (tmp_path / "phases.png").read_bytes() == (tmp_path / "ganrun.png").read_bytes()


def test_unknown_arch_is_an_error():
    result = run_cli("-m", "benchmarks", "--arch", "nope")
    assert result.returncode == 2 and result.stderr.strip().startswith("error: unknown architecture")


def test_device_benchmark_measures_every_file_on_every_device_it_finds(exported_runs, tmp_path):
    """The GPU benchmark on whatever this machine has (the CPU alone, under CI): every file
    gets a speed row and a ganrun row from the provider it asked for, fp32 on the CPU is the
    reference it agrees with exactly, and the Markdown says how to make it again."""
    from runtime.generator import choose_device
    models = exported_runs["mlp-mnist"] / "export"
    result = run_cli("-m", "benchmarks.device", "--models", str(models), "--quick",
                     "--out", str(tmp_path / "results"))
    assert result.returncode == 0, result.stderr
    md_path = Path(result.stdout.strip())
    report = json.loads(md_path.with_suffix(".json").read_text())
    devices = ["cpu", "cuda"] if choose_device("auto").gpu else ["cpu"]
    names = [f"{p} {d}" for d in devices for p in ("fp32", "int8", "fp16")]
    assert list(report["images_per_s"]) == names and list(report["ganrun"]) == names
    assert all(v > 0 for per in report["images_per_s"].values() for v in per.values())
    assert report["providers"] == {n: ("CUDAExecutionProvider" if n.endswith("cuda")
                                       else "CPUExecutionProvider") for n in names}
    diff = report["max_abs_diff_vs_fp32_cpu"]
    assert diff["fp32 cpu"] == 0 and 0 < diff["fp16 cpu"] < 0.05
    assert all(x["runs"] == 2 and x["wall_s_median"] > 0 for x in report["ganrun"].values())
    md = md_path.read_text()
    assert "Made by `python -m benchmarks.device --quick --models export`." in md
    assert all(f"| {n} |" in md for n in names)


def test_device_benchmark_needs_the_fp32_reference(tmp_path):
    (tmp_path / "generator.int8.onnx").write_bytes(b"")
    result = run_cli("-m", "benchmarks.device", "--models", str(tmp_path), "--quick")
    assert_one_line_error(result, "has no generator.fp32.onnx")


def test_quality_goals_judge_each_goal_from_the_figures_it_names(tiny_runs, tmp_path):
    """The goals report on a DCGAN run that has not reached epoch 40, then on one that has (a
    scored row written as training writes it): each row met, missed or not measured, with the
    shipped index's default and mlp-fashion judged from the index the package holds."""
    import shutil
    from runtime.shipped import load_index
    from training.rundir import RunDir
    run = tmp_path / "dcgan"
    shutil.copytree(tiny_runs["dcgan-mnist"], run)

    def goals():
        result = run_cli("-m", "benchmarks.quality_goals", "--dcgan-run", str(run),
                         "--out-dir", str(tmp_path / "results"))
        assert result.returncode == 0, result.stderr
        report = json.loads((tmp_path / "results" / "quality-goals.json").read_text())
        assert (tmp_path / "results" / "quality-goals.md").read_text() in result.stdout
        return {row["what"]: row for goal in report["goals"] for row in goal["rows"]}

    rows = goals()
    trained = rows["dcgan-mnist, epoch_040, trained generator"]
    assert trained["met"] is None and trained["source"].startswith("not reached")
    index = load_index()
    default = next(r for what, r in rows.items() if what.startswith(f"default ({index['default']}"))
    scores = index["models"][index["default"]]["scores"]
    assert default["figures"] == {"classifier_score": scores["classifier_score"],
                                  "frechet_distance": scores["frechet_distance"]}
    assert default["met"] == (scores["classifier_score"] >= 9.0
                              and scores["frechet_distance"] <= 10.0)

    scored = {"checkpoint": "epoch_040", "step": 10**6, "epoch": 40.0, "classifier_score": 9.1,
              "frechet_distance": 8.0, "classes_covered": 10, "kl_to_uniform": 0.04,
              "n_samples": 10000, "ema_classifier_score": 9.3, "ema_frechet_distance": 7.0,
              "ema_classes_covered": 10, "ema_kl_to_uniform": 0.06, "ema_n_samples": 10000}
    RunDir(run).append_metrics(scored)
    rows = goals()
    assert rows["dcgan-mnist, epoch_040, trained generator"]["met"] is True
    averaged = rows["dcgan-mnist, epoch_040, averaged generator"]
    assert averaged["met"] is False and averaged["figures"]["kl_to_uniform"] == 0.06


def test_quality_goals_refuse_a_run_of_another_system(tiny_runs):
    result = run_cli("-m", "benchmarks.quality_goals", "--dcgan-run", str(tiny_runs["gan-1d"]),
                     "--out-dir", "/nonexistent-never-written")
    assert_one_line_error(result, "not dcgan-mnist")


def _knob_section(checkpoint: str, command: str) -> dict:
    row = {"knob": "plain", "samples_per_s": 1000.0, "classifier_score": 8.0,
           "frechet_distance": 9.0, "classes_covered": 10, "kl_to_uniform": 0.01}
    return {"arch": "mlp-smooth-mnist", "checkpoint": checkpoint, "weights": "raw",
            "date": "2026-11-29", "machine": "x86_64, testcpu", "command": command,
            "rows": [row]}


def test_knobs_report_keeps_the_sections_it_did_not_measure_while_they_are_still_shipped():
    from benchmarks.knobs import markdown, merged
    index = {"default": "b", "models": {name: {"checkpoint": "epoch_010", "weights": "raw"}
                                        for name in ("a", "b", "c", "d")}}
    index["models"]["c"]["checkpoint"] = "epoch_020"  # shipped again since it was measured
    old = {"n_samples": 2000, "seed": 0, "models": {
        name: {**_knob_section("epoch_010", "python -m benchmarks.knobs"), "default": name == "a"}
        for name in ("a", "b", "c", "gone")}}
    logged = []
    report = merged(old, {"d": _knob_section("epoch_010", "python -m benchmarks.knobs --model d"),
                          "b": _knob_section("epoch_010", "python -m benchmarks.knobs --model b")},
                    2000, index, log=logged.append)
    assert list(report["models"]) == ["a", "b", "d"]  # the index's order; c and gone dropped
    assert report["models"]["b"]["command"].endswith("--model b")
    assert [m["default"] for m in report["models"].values()] == [False, True, False]
    assert len(logged) == 2 and all("dropped" in line for line in logged)
    md = markdown(report)
    assert "## b (epoch_010) (default)" in md
    assert "Made by `python -m benchmarks.knobs` on 2026-11-29 (x86_64, testcpu)." in md
    assert "Made by `python -m benchmarks.knobs --model d` on" in md


def test_knobs_refuse_to_mix_sample_counts_before_measuring(tmp_path):
    (tmp_path / "knobs.json").write_text(json.dumps({"n_samples": 10000, "seed": 0,
                                                     "models": {}}))
    result = run_cli("-m", "benchmarks.knobs", "--model", "mlp-smooth-mnist", "--n", "2000",
                     "--out", str(tmp_path))
    assert_one_line_error(result, "10,000 samples per cell", "--n 10000")


def test_int8_ranges_builds_both_calibrations_and_measures_them_as_validation_does(tiny_runs,
                                                                                  tmp_path):
    from conftest import cli
    run = tiny_runs["mlp-mnist"]  # the smallest image model: what is measured is the same
    name = sorted((run / "checkpoints").iterdir())[-1].name
    result = cli("benchmarks.int8_ranges", "--run", str(run), "--checkpoints", name,
                 "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "int8-ranges-mlp-mnist.json").read_text())
    (row,) = report["rows"]
    assert row["checkpoint"] == name and "classifier_score" in row["keras"]
    for ranges in ("minmax", "percentile"):
        m = row[ranges]
        assert 0 < m["mean"] < m["p99_9"] < m["worst"] <= 1, m  # fractions of the range
        assert m["classifier_score"] >= 1 and m["frechet_distance"] > 0
    assert row["minmax"] != row["percentile"]  # two files, not one measured twice
    markdown = (tmp_path / "int8-ranges-mlp-mnist.md").read_text()
    assert f"| {name}, {row['weights']} |" in markdown and "| percentile |" in markdown


def test_int8_ranges_names_a_missing_checkpoint_before_measuring(tiny_runs, tmp_path):
    result = run_cli("-m", "benchmarks.int8_ranges", "--run", str(tiny_runs["dcgan-mnist"]),
                     "--checkpoints", "epoch_999", "--out", str(tmp_path))
    assert_one_line_error(result, "has no complete checkpoint epoch_999")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_score_noise_scores_each_shipped_image_model_on_several_latent_sets(tmp_path):
    """The margin's report: every shipped image model, each set of latents scored apart (the
    sets differ, so the scores do), and the margin it states is the rule's own."""
    from runtime import shipped
    from runtime.core.scores import SCORE_MARGIN
    result = cli("benchmarks.score_noise", "--seeds", "2", "--samples", "200",
                 "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "score-noise.json").read_text())
    images = {n for n, e in shipped.load_index()["models"].items() if e["arch"] != "gan-1d"}
    assert set(report["models"]) == images
    for figures in report["models"].values():
        scores = figures["classifier_score"]["values"]
        assert len(scores) == 2 and scores[0] != scores[1] and figures["classifier_score"]["std"] > 0
    assert report["margin"] == SCORE_MARGIN
    assert (tmp_path / "score-noise.md").read_text().startswith("# ")


def test_other_work_is_what_other_processes_take_not_the_benchmarks_own():
    """A busy child process counts as other work until the benchmark waits for it; from then
    on its CPU time is the benchmark's own, as a contender's timed in its own process is."""
    import subprocess
    import sys

    from benchmarks.report import OtherWork
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    child = subprocess.Popen([sys.executable, "-c", busy])
    stat, deadline = Path(f"/proc/{child.pid}/stat"), time.monotonic() + 60
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not yet waited for
        assert time.monotonic() < deadline, "the busy child did not finish"
        time.sleep(0.01)
    _, busy_before, own_before = OtherWork.now()
    child.wait()
    _, busy_after, own_after = OtherWork.now()
    # the child's half second (and its start-up) leaves the others' seconds with the wait
    moved = (busy_before - own_before) - (busy_after - own_after)
    assert 0.45 <= moved <= 0.9, moved


@pytest.mark.slow  # a fresh process per contender and round
def test_foreign_measures_every_contender_of_both_shapes_and_states_each_goal(tmp_path,
                                                                              monkeypatch):
    """The foreign-generator report on narrow models, one short round: every contender of
    each shape timed at each batch, gan-edge's files (made by the export pipeline) within the
    validation bounds of their source on the report's own latents, every goal stated at each
    batch. int8 calibrates on 64 latents here instead of 512: what is built is the same."""
    from benchmarks import foreign
    from benchmarks.report import cpu_kind
    from export.validate import MAX_ABS, MEAN_ABS
    monkeypatch.setattr(foreign, "CALIBRATION", CALIBRATION)
    result = cli("benchmarks.foreign", "--batches", "2,3", "--rounds", "1", "--seconds", "0",
                 "--keras-width", "2", "--ngf", "2", "--ganrun-n", "5", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    md = Path(result.stdout.strip())
    assert md == tmp_path / f"foreign-{cpu_kind()}.md"
    report = json.loads(md.with_suffix(".json").read_text())
    shapes = report["shapes"]
    assert list(shapes["keras"]["contenders"]) == list(foreign.CONTENDERS)
    assert list(shapes["pytorch"]["contenders"]) == list(foreign.CONTENDERS)[1:]
    for name, shape in shapes.items():
        lo, hi = shape["output_range"]
        for contender, c in shape["contenders"].items():
            assert set(c["images_per_s"]) == {"2", "3"} and min(c["images_per_s"].values()) > 0
            if contender == shape["reference"]:
                continue
            precision = c["precision"]
            assert c["mean_abs"] <= c["max_abs"]
            assert c["mean_bound"] == MEAN_ABS[precision] * (hi - lo)  # narrow: no widening
            if contender.startswith("gan_edge"):
                assert c["within_bounds"] and c["conv_transpose"] == 0, (name, contender, c)
                assert c["tail_abs"] <= MAX_ABS[precision] * (hi - lo)
                assert c["mean_abs"] <= MEAN_ABS[precision] * (hi - lo)
        assert shape["contenders"]["stock_int8"]["conv_transpose"] > 0  # no int8 kernel for them
        # whole ganrun processes: each file at the batch it picks, and at the largest timed
        assert [(r["file"], r["default"]) for r in shape["ganrun"]] == [
            ("gan_edge_fp32", True), ("gan_edge_int8", True),
            ("gan_edge_fp32", False), ("gan_edge_int8", False)]
        assert [r["batch"] for r in shape["ganrun"][2:]] == [3, 3]
        assert all(r["wall_s"] > 0 and r["peak_rss_mb"] > 0 for r in shape["ganrun"])
    ratios = [g for g in report["goals"] if g["batch"] is not None]
    assert len(ratios) == len(foreign.GOALS) * 2 and all(isinstance(g["met"], bool) for g in ratios)
    within = [g for g in report["goals"] if g["batch"] is None]
    assert len(within) == 4 and all(g["met"] for g in within)
    text = md.read_text()
    assert "Made by `python -m benchmarks.foreign --batches 2,3 --rounds 1 --seconds 0 " \
           "--keras-width 2 --ngf 2 --ganrun-n 5` on" in text
    assert text.count("| keras | gan-edge int8 / Keras's own call |") == 2
    assert "read the ratios" in text and "random weights" in text


def test_foreign_refuses_a_bad_batch_list_in_one_line(tmp_path):
    result = cli("benchmarks.foreign", "--batches", "64,x", "--out", str(tmp_path))
    assert_one_line_error(result, "--batches", "64,256")
    assert list(tmp_path.iterdir()) == []


def test_speed_is_timed_only_after_a_batch_size_has_settled():
    """onnxruntime allocates a new batch size's memory on its second call: a contender whose
    first two calls of each size are slow must be timed at its settled rate."""
    import time

    from benchmarks.generation import time_contenders
    calls = {}

    def settles_on_the_third_call(z):
        calls[len(z)] = calls.get(len(z), 0) + 1
        if calls[len(z)] <= 2:
            time.sleep(0.2)
    rates = time_contenders({"it": settles_on_the_third_call}, (4, 8), 3, 0.0, 1)["it"]
    assert rates[4] > 4 / 0.005 and rates[8] > 8 / 0.005  # under 5 ms a call: no slow call timed
