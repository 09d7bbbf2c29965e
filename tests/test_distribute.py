"""--strategy: two logical CPU devices and two local worker processes train the same numbers as
one device; checkpoints move between replica counts; bad strategy input is one line.

The runs are short: two epochs of two steps on a data set of 128 images, evaluated and
checkpointed after each epoch, so that a run resumes from the checkpoint its reference run
kept at step 2 and both rows at step 4 cover the same steps.

One device runs with --no-xla here: XLA's float rounding differs from plain TensorFlow's (which
every multi-replica run uses), and Adam turns such 1e-7 differences into 1e-3 to 1e-2 within
a few steps. Without XLA on both sides, replicas must agree with one device to TOL.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, make_digits, run_cli, write_idx

TOL = 1e-5  # measured here: 1e-8 to 2e-7 after 3 to 4 steps
ARCH = "mlp-fashion"  # has dropout, whose masks must not depend on the replica count either
IMAGES = 128  # two steps an epoch at mlp-fashion's batch of 64
STEPS = ("--steps", "4")  # two epochs: evaluations and checkpoints epoch_001 and epoch_002
LAST = "epoch_002"
ONE = ("--strategy", "default", "--no-xla")
TWO = ("--strategy", "mirrored", "--cpu-devices", "2")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """The tiny data set (conftest.tiny_mnist) with only its first IMAGES training images, in
    MNIST's format, which is Fashion-MNIST's. Not any draw of images will do: with some, a unit
    of the discriminator sits so near its LeakyReLU's kink that the replicas' 1e-8 rounding
    differences flip its slope, and Adam makes that 1e-5 within two steps."""
    folder = tmp_path_factory.mktemp("small-set")
    (x, y), (xt, yt) = make_digits(512, 0), make_digits(128, 1)
    for prefix, images, labels in (("train", x[:IMAGES], y[:IMAGES]), ("t10k", xt, yt)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return folder


def _train(run_dir, data_dir, *args):
    result = subprocess.run(
        [sys.executable, "-m", "training.run", "--arch", ARCH, "--run-dir", str(run_dir),
         "--data-dir", str(data_dir), "--eval-samples", "100", "--eval-every", "1", "--quiet",
         *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _checkpoint_arrays(run_dir, name=LAST) -> dict:
    """Every number a checkpoint holds: the networks' weights (the averaged generator's too) and
    the optimisers' state."""
    import keras

    import training.models  # noqa: F401  the discriminator's GlobalBatchDropout
    ckpt = run_dir / "checkpoints" / name
    arrays = {}
    for net in ("generator", "generator_ema", "discriminator"):
        model = keras.saving.load_model(ckpt / f"{net}.keras", compile=False)
        arrays.update({f"{net}/{i}": w for i, w in enumerate(model.get_weights())})
    with np.load(ckpt / "training_state.npz") as f:
        arrays.update(dict(f))
    return arrays


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_training(run_dir, reference_dir):
    """Every number of the last checkpoint, and the losses and scores of each row, within TOL
    of the reference run's."""
    got, ref = _checkpoint_arrays(run_dir), _checkpoint_arrays(reference_dir)
    assert got.keys() == ref.keys()
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=TOL, err_msg=key)
    rows, ref_rows = _metrics(run_dir), _metrics(reference_dir)
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows] == [2, 4]
    for row, ref_row in zip(rows, ref_rows):
        for key in ("d_loss", "g_loss", "d_acc", "classifier_score", "frechet_distance",
                    "ema_classifier_score"):
            assert row[key] == pytest.approx(ref_row[key], abs=TOL), (row["step"], key)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, small_set):
    run = tmp_path_factory.mktemp("one") / "run"
    _train(run, small_set, *STEPS, *ONE)
    return run


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory, small_set):
    run = tmp_path_factory.mktemp("two") / "run"
    result = _train(run, small_set, *STEPS, *TWO)
    assert "MirroredStrategy, 2 replicas" in result.stderr
    return run


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_one_device(one_device, two_devices):
    assert_same_training(two_devices, one_device)
    state = json.loads((two_devices / "checkpoints" / LAST / "state.json").read_text())
    assert state["replicas"] == 2


@pytest.mark.parametrize("first, then", [("two_devices", ONE), ("one_device", TWO)],
                         ids=["two-then-one", "one-then-two"])
@pytest.mark.slow
def test_a_checkpoint_resumes_under_another_replica_count(first, then, tmp_path, small_set,
                                                          one_device, request):
    """The run of `first`, as a run stopped after its checkpoint at step 2 leaves it (its
    later checkpoint gone), resumed under the other replica count: it ends as one device's."""
    run = shutil.copytree(request.getfixturevalue(first), tmp_path / "run")
    shutil.rmtree(run / "checkpoints" / LAST)
    result = _train(run, small_set, "--resume", *STEPS, *then)
    assert "from epoch_001 (step 2)" in result.stderr
    assert json.loads((run / "checkpoints" / LAST / "state.json").read_text())["replicas"] == (
        2 if then == TWO else 1)
    assert_same_training(run, one_device)


def _cluster_ports(n: int) -> list[int]:
    """n free localhost ports below the kernel's ephemeral range: a port the kernel picks for
    bind(0) or an outgoing connection is never one of these, so none is taken between being
    chosen here and TensorFlow binding it (holding it bound would not do: TensorFlow's gRPC
    server refuses SO_REUSEPORT). Drawn at random, so that two suites on one machine do not
    pick alike."""
    import random
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = []
    for port in random.sample(range(max(1024, low - 8000), low), 200):
        with socket.socket() as s:
            try:
                s.bind(("localhost", port))
            except OSError:
                continue  # in use
        ports.append(port)
        if len(ports) == n:
            return ports
    pytest.fail(f"no {n} free ports below {low}")


def _spawn_workers(run_dirs, data_dir, *args, env=None) -> list[subprocess.Popen]:
    """One training process per run folder, each a worker of one localhost cluster; `env`:
    extra variables for some workers, by index."""
    workers = [f"localhost:{port}" for port in _cluster_ports(len(run_dirs))]
    procs = []
    for index, run_dir in enumerate(run_dirs):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "training.run", "--arch", ARCH, "--quiet", "--run-dir",
             str(run_dir), "--data-dir", str(data_dir), "--eval-samples", "100", "--eval-every",
             "1", "--strategy", "multiworker", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": json.dumps(tf_config),
                 **(env or {}).get(index, {})}))
    return procs


def _finish(procs, timeout=240) -> list[subprocess.CompletedProcess]:
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:  # say why: a worker that never joined, or one stuck
        for p in procs:
            p.kill()
        said = [p.communicate()[1] for p in procs]  # retried, communicate loses no output
        pytest.fail(f"a worker did not finish in {timeout} s; what each said:\n" + "\n".join(
            f"worker {i} (exit {p.returncode}): {err[-1500:]}"
            for i, (p, err) in enumerate(zip(procs, said))), pytrace=False)
    finally:
        for p in procs:
            p.kill()
    return [subprocess.CompletedProcess(p.args, p.returncode, out, err)
            for p, (out, err) in zip(procs, outputs)]


def _start_workers(run_dirs, data_dir, *args) -> list[subprocess.CompletedProcess]:
    return _finish(_spawn_workers(run_dirs, data_dir, *args))


@pytest.mark.slow
def test_two_workers_on_localhost_train_like_one_device(tmp_path, small_set, one_device):
    results = _start_workers([tmp_path / "worker0", tmp_path / "worker1"], small_set, *STEPS)
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "MultiWorkerMirroredStrategy, 2 replicas" in result.stderr
    assert_same_training(tmp_path / "worker0", one_device)
    assert not (tmp_path / "worker1").exists(), "only the chief (worker 0) writes"


@pytest.mark.slow
def test_a_run_folder_in_use_stops_every_worker_not_only_the_chief(small_set, one_device):
    results = _start_workers([one_device, one_device], small_set, *STEPS)
    for result in results:  # neither waits for the other: both stop before joining
        assert_one_line_error(result, "already holds a run")


@pytest.mark.slow
@pytest.mark.timeout(900)  # above the 240 s each of its three waits on the workers may take
def test_losing_a_worker_stops_the_other_with_one_line_and_both_resume(tmp_path, small_set):
    """Worker 1 kills itself (GAN_EDGE_FAULT) right after the cluster's second checkpoint step:
    the chief, stopped in the next step's all-reduce, ends with one line; both resume."""
    run = tmp_path / "run"  # one folder for both, as on one host or on shared storage
    procs = _spawn_workers([run, run], small_set, "--steps", "100000",
                           env={1: {"GAN_EDGE_FAULT": "kill@checkpoint:2"}})
    chief, lost = _finish(procs)
    assert lost.returncode == -9, lost.stderr[-3000:]
    assert_one_line_error(chief, "lost another process of the cluster", "--resume")
    last = max(json.loads(p.read_text())["step"] for p in run.glob("checkpoints/*/state.json"))
    assert last == 4  # 2 steps an epoch: epoch_002
    for result in _start_workers([run, run], small_set, "--resume", "--steps", str(last + 4)):
        assert result.returncode == 0, result.stderr[-3000:]
        assert "resuming" in result.stderr
    assert (run / "checkpoints" / "epoch_004").is_dir()


@pytest.mark.slow
def test_bad_strategy_input_is_one_line(tmp_path, small_set):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    base = ("-m", "training.run", "--arch", ARCH, "--steps", "2", "--data-dir", str(small_set))
    result = subprocess.run([sys.executable, *base, "--run-dir", str(tmp_path / "a"),
                             "--strategy", "multiworker"], cwd=ROOT, capture_output=True,
                            text=True, env=env, timeout=120)
    assert_one_line_error(result, "needs TF_CONFIG")
    result = subprocess.run([sys.executable, *base, "--run-dir", str(tmp_path / "b"),
                             "--strategy", "multiworker"], cwd=ROOT, capture_output=True,
                            text=True, env={**env, "TF_CONFIG": "{not json"}, timeout=120)
    assert_one_line_error(result, "TF_CONFIG is not valid JSON")
    result = run_cli(*base, "--run-dir", str(tmp_path / "c"), "--cpu-devices", "0")
    assert_one_line_error(result, "--cpu-devices must be a positive integer")
    # 64 real images per step do not split over 3 replicas.
    result = run_cli(*base, "--run-dir", str(tmp_path / "d"), "--strategy", "mirrored",
                     "--cpu-devices", "3")
    assert_one_line_error(result, "(64) does not split evenly over 3 replicas")
    assert not (tmp_path / "d" / "checkpoints").exists()


@pytest.mark.parametrize("cluster, task, writes", [
    ({"worker": ["a:1", "b:2"]}, {"type": "worker", "index": 0}, True),
    ({"worker": ["a:1", "b:2"]}, {"type": "worker", "index": 1}, False),
    ({"chief": ["a:1"], "worker": ["b:2"]}, {"type": "chief", "index": 0}, True),
    ({"chief": ["a:1"], "worker": ["b:2"]}, {"type": "worker", "index": 0}, False),
])
def test_only_the_chief_writes(monkeypatch, cluster, task, writes):
    from training.distribute import is_writer
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert is_writer("multiworker") is writes
    assert is_writer("auto") is writes  # auto means multiworker under a cluster
    assert is_writer("mirrored") is True  # one process: it always writes
