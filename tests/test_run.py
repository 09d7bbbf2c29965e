"""python -m training.run: the run folder, resuming, and bad input."""
import json
import os
import signal
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, assert_one_line_error, cli, run_cli, tiny_run


def test_a_few_steps_write_the_whole_run_directory(tiny_runs):
    run = tiny_runs["mlp-mnist"]
    config = json.loads((run / "config.json").read_text())
    assert config["arch"] == "mlp-mnist" and config["seed"] == 0
    assert config["data"]["sha256"] and config["schedule"]["total_steps"] == 4
    from training.acceleration import Acceleration  # evaluations score as the train step ran
    from training.config import get_config
    assert config["acceleration"] == Acceleration.decide(get_config("mlp-mnist")).to_dict()
    ckpt = run / "checkpoints" / "step_000004"
    for name in ("generator.keras", "discriminator.keras", "training_state.npz", "state.json"):
        assert (ckpt / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4]
    for key in ("d_loss", "g_loss", "d_acc_real", "d_acc_fake", "classifier_score",
                "frechet_distance", "classes_covered", "kl_to_uniform", "confident_share"):
        assert key in rows[0], key
    assert rows[0]["n_samples"] == 200
    with Image.open(run / "samples" / "step_000004.png") as img:  # 4x4 grid, as article 002
        assert img.size == (2 * (4 * 30 + 2),) * 2
    for plot in ("losses", "d_accuracy", "classifier_score", "frechet_distance"):
        with Image.open(run / "plots" / f"{plot}.png") as img:
            assert img.format == "PNG"
    assert json.loads((run / "best.json").read_text())["checkpoint"] == "step_000004"
    assert not list(run.rglob(".tmp*")), "temp files left behind"


def test_epoch_schedules_name_checkpoints_by_epoch(tiny_runs):
    # 512 tiny images / batch 256 = 2 steps per epoch, so 4 steps end epoch 2.
    assert (tiny_runs["dcgan-mnist"] / "checkpoints" / "epoch_002").is_dir()


def test_gan_1d_draws_the_article_scatter(tiny_runs):
    run = tiny_runs["gan-1d"]
    with Image.open(run / "samples" / "step_000004.png") as img:
        assert img.format == "PNG"
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"energy_distance", "mean_abs_error", "share_in_domain"} <= set(row)


def _final_weights(run, file="generator.keras"):
    import keras
    last = sorted((run / "checkpoints").iterdir())[-1]
    return keras.saving.load_model(last / file, compile=False).get_weights()


@pytest.mark.slow
@pytest.mark.parametrize("arch, xla, atol", [("mlp-fashion", "--xla", 1e-6),
                                             ("dcgan-mnist", "--no-xla", 1e-4)])
def test_resume_after_more_steps_matches_one_uninterrupted_run(tmp_path, tiny_mnist, arch, xla,
                                                               atol):
    """Dropout RNG (both systems' discriminators drop out), Adam moments, the averaged weights,
    data and latents all continue where they stopped. Each run is a fresh process, as a user's
    would be. XLA-compiled steps repeat to 1e-6 (the MLP system: XLA compiles the DCGAN's step
    the same way, but for far longer); without XLA (the DCGAN's default on AVX-512 CPUs)
    TensorFlow's threaded CPU kernels may round a little differently from one process to the
    next even with op determinism on, hence 1e-4 (a wrong optimiser or RNG state moves weights
    by far more after one Adam step)."""
    def train(folder, steps, *more):
        result = run_cli("-m", "training.run", "--arch", arch, "--steps", str(steps),
                         "--eval-samples", "200", "--data-dir", str(tiny_mnist), "--run-dir",
                         str(folder), "--quiet", xla, *more)
        assert result.returncode == 0, result.stderr[-2000:]
        return folder
    straight = train(tmp_path / "a", 4)
    train(tmp_path / "b", 2)
    resumed = train(tmp_path / "b", 4, "--resume")
    for file in ("generator.keras", "generator_ema.keras"):
        for a, b in zip(_final_weights(straight, file), _final_weights(resumed, file), strict=True):
            np.testing.assert_allclose(a, b, atol=atol, err_msg=file)


@pytest.mark.slow
def test_a_run_without_an_average_starts_one_when_resumed_with_ema(tmp_path, tiny_mnist):
    from training.rundir import RunDir
    run = tiny_run("gan-1d", tmp_path, tiny_mnist, steps=2, ema=0.0)
    assert not list(run.glob("checkpoints/*/generator_ema.keras"))
    result = run_cli("-m", "training.run", "--arch", "gan-1d", "--run-dir", str(run), "--resume",
                     "--steps", "4", "--ema", "0.99", "--quiet", "--eval-samples", "200")
    assert result.returncode == 0, result.stderr
    assert "the averaged generator starts here" in result.stderr
    assert RunDir(run).read_config()["ema"] == 0.99
    last = RunDir(run).eval_checkpoints()[-1]
    assert last.step == 4 and last.weights() == ["raw", "ema"]
    assert "ema_energy_distance" in RunDir(run).read_metrics()[-1]


# gan-1d runs of a few steps, evaluated and checkpointed every EVERY: what resuming must carry
# over (optimiser and RNG states, data and latents) is all there after one step, and a wrong
# one moves the weights far beyond the tolerance within the steps after a resume.
STEPS, EVERY = 60, 10


def _train_1d(run_dir, *extra, steps=STEPS, fault=None, timeout=240):
    """gan-1d in a fresh process, evaluating every EVERY steps; `fault`: GAN_EDGE_FAULT, which
    makes the process kill or interrupt itself at a known step instead of at a moment a test
    could only guess (training.callbacks.injected_fault)."""
    return subprocess.run(
        [sys.executable, "-m", "training.run", "--arch", "gan-1d", "--steps", str(steps),
         "--eval-every", str(EVERY), "--run-dir", str(run_dir), "--quiet", "--eval-samples", "200",
         *extra], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **({"GAN_EDGE_FAULT": fault} if fault else {})},
        # A shell runs background jobs with SIGINT ignored, and children inherit that; give
        # the run the disposition a terminal user's process has, so Ctrl-C is what we test.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _rows(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted_1d(tmp_path_factory):
    """The gan-1d run that the killed and resumed ones must end as: one for the module."""
    straight = tmp_path_factory.mktemp("straight") / "run"
    done = _train_1d(straight)
    assert done.returncode == 0, done.stderr[-2000:]
    return straight


@pytest.mark.slow
@pytest.mark.timeout(600)  # two trainings of at most 240 s each
@pytest.mark.parametrize("fault, steps_kept", [("kill@step:25", [10, 20]),
                                               ("kill@checkpoint:3", [10, 20, 30])])
def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tmp_path, fault, steps_kept,
                                                               uninterrupted_1d):
    """Killed between two checkpoints (its steps since the last one are lost and redone), or
    right after one; resumed, it ends where a run that was never killed ends."""
    killed = tmp_path / "killed"
    first = _train_1d(killed, fault=fault)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert [r["step"] for r in _rows(killed)] == steps_kept
    resumed = _train_1d(killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"from step_{steps_kept[-1]:06d}" in resumed.stderr
    rows, want = _rows(killed), _rows(uninterrupted_1d)
    assert [r["step"] for r in rows] == [r["step"] for r in want] == list(
        range(EVERY, STEPS + 1, EVERY))
    for got, ref in zip(rows, want):  # evaluations are seeded by step: same scores
        for key in ("d_acc_real", "d_acc_fake", "energy_distance", "mean_abs_error"):
            assert got[key] == pytest.approx(ref[key], abs=1e-5), (got["step"], key)
    for a, b in zip(_final_weights(uninterrupted_1d), _final_weights(killed), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ctrl_c_stops_with_one_line_that_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "int"
    result = _train_1d(run_dir, fault="interrupt@checkpoint:2")
    assert_one_line_error(result, "interrupted at step 20", "last checkpoint: step_000020",
                          "--resume")
    assert result.returncode == 2
    assert [r["step"] for r in _rows(run_dir)] == [10, 20]


@pytest.mark.slow
def test_default_progress_is_plain_lines_where_stderr_is_not_a_terminal(tmp_path):
    """Without --quiet and without a terminal (a log, CI): a line every 5 % of the steps and
    one per evaluation, never a carriage-return bar."""
    result = run_cli("-m", "training.run", "--arch", "gan-1d", "--steps", "40", "--eval-every",
                     "20", "--run-dir", str(tmp_path / "run"), "--eval-samples", "200")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    line = re.compile(r"^gan-1d: step (\d+)/40 \((\d+)%\), [0-9.e+-]+ s/step, .*d_loss [0-9.]+.*, "
                      r"about \d+ min left$")
    progress = [m for m in map(line.match, result.stderr.splitlines()) if m]
    assert [int(m[1]) for m in progress] == list(range(2, 41, 2))  # every 5 %
    assert [int(m[2]) for m in progress] == list(range(5, 101, 5))
    evaluations = [x for x in result.stderr.splitlines() if x.startswith("[step_")]
    assert [x.split("]")[0] for x in evaluations] == ["[step_000020", "[step_000040"]
    assert "energy" in evaluations[0]
    assert result.stdout.strip() == str(tmp_path / "run")


def test_a_malformed_fault_hook_is_one_line(tmp_path, monkeypatch):
    from training.callbacks import injected_fault
    from runtime.core.errors import GanEdgeError
    for spec in ("kill", "kill@checkpoint:0", "explode@step:3", "kill@epoch:2"):
        monkeypatch.setenv("GAN_EDGE_FAULT", spec)
        with pytest.raises(GanEdgeError, match="is not ACTION@checkpoint:K or ACTION@step:N"):
            injected_fault()
    monkeypatch.setenv("GAN_EDGE_FAULT", "interrupt@step:7")
    assert injected_fault() == (signal.SIGINT, "step", 7)


@pytest.mark.parametrize("args, fragment", [
    (["--arch", "nope"], "known: dcgan-mnist"),
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--steps", "-3"], "--steps must be a positive integer"),
    (["--epochs", "2", "--steps", "3"], "not both"),
    (["--epochs", "x"], "'x' is not a valid integer"),
])
def test_bad_arguments_are_one_line_errors(args, fragment):
    assert_one_line_error(run_cli("-m", "training.run", *args), fragment)


def test_unwritable_run_dir_is_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli("-m", "training.run", "--run-dir", str(blocker / "run"), "--steps", "1")
    assert_one_line_error(result, "cannot write to --run-dir")


def test_run_dir_of_another_arch_is_refused(tiny_runs):
    result = run_cli("-m", "training.run", "--arch", "gan-1d", "--run-dir",
                     str(tiny_runs["mlp-mnist"]), "--resume")
    assert_one_line_error(result, "belongs to arch 'mlp-mnist'")


def test_existing_run_without_resume_is_refused(tiny_runs):
    result = run_cli("-m", "training.run", "--run-dir", str(tiny_runs["mlp-mnist"]))
    assert_one_line_error(result, "--resume")


def test_missing_data_is_an_error(tmp_path):
    result = cli("training.run", "--data-dir", str(tmp_path), "--steps", "1",
                 "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(result, "holds no mnist files")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_corrupt_checkpoint_on_resume_is_an_error_and_is_kept(tmp_path, tiny_mnist):
    run = tiny_run("mlp-mnist", tmp_path, tiny_mnist, steps=2)
    target = run / "checkpoints" / "step_000002" / "generator.keras"
    target.write_bytes(target.read_bytes()[:1000])
    result = run_cli("-m", "training.run", "--run-dir", str(run), "--resume", "--steps", "4",
                     "--data-dir", str(tiny_mnist))
    assert_one_line_error(result, "corrupt")
    assert target.stat().st_size == 1000, "the checkpoint must not be deleted or rewritten"


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
        tmp_path, tiny_mnist, monkeypatch):
    import tensorflow as tf

    from runtime.core.errors import GanEdgeError
    from training.gan import GAN
    original = GAN.train_step

    def diverging(self, data):  # the losses turn NaN from the 4th step on
        logs = original(self, data)
        return {k: tf.where(self.g_optimizer.iterations >= 4, float("nan"), v)
                for k, v in logs.items()}

    monkeypatch.setattr(GAN, "train_step", diverging)
    with pytest.raises(GanEdgeError, match=r"non-finite \(.*d_loss=nan.*\) at step 4; the last good"):
        tiny_run("mlp-mnist", tmp_path, tiny_mnist, steps=6, eval_every=2)
    names = sorted(p.name for p in (tmp_path / "mlp-mnist" / "checkpoints").iterdir())
    assert names == ["step_000002"]
    assert (tmp_path / "mlp-mnist" / "checkpoints" / "step_000002" / "generator.keras").is_file()
