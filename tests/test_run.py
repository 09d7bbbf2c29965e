"""python -m training.run: the run folder, resuming, and bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, assert_one_line_error, run_cli, tiny_run


def test_a_few_steps_write_the_whole_run_directory(tiny_runs):
    run = tiny_runs["mlp-mnist"]
    config = json.loads((run / "config.json").read_text())
    assert config["arch"] == "mlp-mnist" and config["seed"] == 0
    assert config["data"]["sha256"] and config["schedule"]["total_steps"] == 4
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


@pytest.mark.parametrize("xla, atol", [("--xla", 1e-6), ("--no-xla", 1e-4)])
def test_resume_after_more_steps_matches_one_uninterrupted_run(tmp_path, tiny_mnist, xla, atol):
    """Dropout RNG, Adam moments, the averaged weights, data and latents all continue where they
    stopped. Each run is a fresh process, as a user's would be. XLA-compiled steps repeat to
    1e-6; without XLA (the DCGAN's default) TensorFlow's threaded CPU kernels may round a little
    differently from one process to the next even with op determinism on, hence 1e-4 (a wrong
    optimiser or RNG state moves weights by far more after one Adam step)."""
    def train(folder, steps, *more):
        result = run_cli("-m", "training.run", "--arch", "dcgan-mnist", "--steps", str(steps),
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


def _start(run_dir, *extra, steps=3000):
    return subprocess.Popen(
        [sys.executable, "-m", "training.run", "--arch", "gan-1d", "--steps", str(steps),
         "--eval-every", "250", "--run-dir", str(run_dir), "--quiet", "--eval-samples", "200",
         *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        # A shell runs background jobs with SIGINT ignored, and children inherit that; give
        # the run the disposition a terminal user's process has, so Ctrl-C is what we test.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_checkpoint(run_dir, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if list(run_dir.glob("checkpoints/step_*/state.json")):
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended before its first checkpoint: {proc.stderr.read()}")
        time.sleep(0.02)
    pytest.fail("no checkpoint appeared")


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tmp_path):
    killed = tmp_path / "killed"
    proc = _start(killed)
    _wait_for_checkpoint(killed, proc)
    proc.kill()
    proc.wait()
    steps_at_kill = max(int(p.name.split("_")[1]) for p in (killed / "checkpoints").glob("step_*"))
    assert steps_at_kill < 3000, "the run finished before it could be killed"
    resumed = run_cli("-m", "training.run", "--arch", "gan-1d", "--run-dir", str(killed),
                      "--resume", "--quiet", "--eval-samples", "200")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    straight = tmp_path / "straight"
    done = _start(straight)
    assert done.wait(timeout=300) == 0, done.stderr.read()
    rows = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(250, 3001, 250))
    want = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == len(want)
    for got, ref in zip(rows, want):  # evaluations are seeded by step: same scores
        for key in ("d_acc_real", "d_acc_fake", "energy_distance", "mean_abs_error"):
            assert got[key] == pytest.approx(ref[key], abs=1e-5), (got["step"], key)
    for a, b in zip(_final_weights(straight), _final_weights(killed), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_ctrl_c_stops_with_one_line_that_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "int"
    # Far more steps than can finish before the signal lands, even on a fast machine: a run of
    # a few thousand steps can end before SIGINT arrives.
    proc = _start(run_dir, steps=10**7)
    _wait_for_checkpoint(run_dir, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted at step")
    assert "--resume" in err


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
    result = run_cli("-m", "training.run", "--data-dir", str(tmp_path), "--steps", "1",
                     "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(result, "holds no mnist files")


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

    from runtime.errors import GanEdgeError
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
