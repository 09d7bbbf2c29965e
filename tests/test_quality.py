"""Quality metrics on constructed inputs with known answers, and the best-checkpoint rule."""
import json

import numpy as np
import pytest

from runtime.core.scores import best_row
from training.quality import (class_accuracy, class_coverage, classifier_score, confident_share,
                              energy_distance, frechet_distance, function_metrics)


def one_hot(labels, n=10):
    return np.eye(n)[labels]


def test_perfect_classifier_on_a_balanced_set_scores_n_classes():
    assert classifier_score(one_hot(np.arange(1000) % 10)) == pytest.approx(10, rel=1e-6)


def test_one_class_scores_one_and_covers_one_class():
    probs = one_hot(np.full(500, 3))
    assert classifier_score(probs) == pytest.approx(1.0)
    cov = class_coverage(probs)
    assert cov["classes_covered"] == 1
    assert cov["kl_to_uniform"] == pytest.approx(np.log(10))
    assert cov["class_histogram"][3] == 1.0


def test_balanced_set_has_zero_kl_to_uniform():
    assert class_coverage(one_hot(np.arange(100) % 10))["kl_to_uniform"] == pytest.approx(0, abs=1e-12)


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 16))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # Same covariance, mean shifted by 3 in one coordinate: distance = 9.
    b = a.copy()
    b[:, 0] += 3
    assert frechet_distance(a, b) == pytest.approx(9, rel=1e-6)
    # Scaled by 2: ||mu||^2 + Tr(C + 4C - 2*2C) = ||mu||^2 + Tr(C), about 16 here.
    expected = np.sum(a.mean(0) ** 2) + np.trace(np.cov(a, rowvar=False))
    assert frechet_distance(a, 2 * a) == pytest.approx(expected, rel=1e-6)


def test_class_accuracy_is_the_share_of_each_asked_class_put_in_that_class():
    labels = np.arange(1000) % 10
    predicted = labels.copy()
    predicted[labels == 3] = np.where(np.arange(100) < 20, 5, 3)  # a fifth of the 3s read as 5
    acc = class_accuracy(one_hot(predicted), labels)
    assert acc["class_accuracy_per_class"][3] == pytest.approx(0.8)
    assert acc["class_accuracy_min"] == pytest.approx(0.8)
    assert acc["class_accuracy"] == pytest.approx(0.98)


def test_confident_share():
    probs = np.array([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9]])
    assert confident_share(probs) == pytest.approx(2 / 3)


def test_energy_distance_and_function_metrics():
    rng = np.random.default_rng(0)
    x = rng.random(1000) - 0.5
    real = np.stack([x, x * x], 1)
    assert energy_distance(real, real) == pytest.approx(0, abs=1e-12)
    m = function_metrics(real, real)
    assert m["mean_abs_error"] == 0 and m["share_in_domain"] == 1.0
    off = function_metrics(real + [0, 0.5], real)
    assert off["mean_abs_error"] == pytest.approx(0.5) and off["energy_distance"] > 0.1


def _row(step, score, covered, fd):
    """A scored row as training writes it (the numbers are the test's)."""
    hist = [0.1] * 10
    return {"step": step, "epoch": float(step), "checkpoint": f"epoch_{step:03d}",
            "classifier_score": score, "classes_covered": covered, "class_histogram": hist,
            "frechet_distance": fd, "kl_to_uniform": 0.0, "n_samples": 1000}


def test_best_rule_takes_the_lowest_frechet_among_scores_near_the_best(tmp_path):
    from runtime.core.scores import SCORE_MARGIN
    from training.rundir import RunDir
    run = RunDir(tmp_path)
    near, far = 8.7 - SCORE_MARGIN / 2, 8.7 - 2 * SCORE_MARGIN
    rows = [_row(1, 9.5, 9, 10.0),   # highest score but a class missing
            _row(2, far, 10, 5.0),   # lowest distance, but its score is clearly worse
            _row(3, 8.7, 10, 30.0),  # the highest score of those with every class
            _row(4, near, 10, 20.0),  # best: as good a score, within noise, and closer
            _row(5, near, 10, 20.0),  # a tie with the earlier one
            _row(6, 8.7, 10, 40.0)]
    run.write_metrics(rows)
    best = run.write_best(run.read_metrics())
    assert best["checkpoint"] == "epoch_004"
    assert json.loads((tmp_path / "best.json").read_text())["step"] == 4
    # Without a class missing anywhere, coverage decides nothing; with every class missing
    # somewhere, the rule still ranks by score and distance.
    assert best_row(rows[1:])["checkpoint"] == "epoch_004"
    assert best_row([_row(1, 9.5, 9, 10.0), _row(2, 9.48, 9, 8.0)])["checkpoint"] == "epoch_002"


def test_best_rule_picks_between_trained_and_averaged_generator_alike():
    row = {**_row(1, 8.7, 10, 30.0), "ema_classifier_score": 8.69, "ema_frechet_distance": 10.0,
           "ema_classes_covered": 10, "ema_kl_to_uniform": 0.0, "ema_n_samples": 1000}
    assert best_row([row])["weights"] == "ema"
    assert best_row([{**row, "ema_frechet_distance": 31.0}])["weights"] == "raw"


@pytest.mark.network
def test_shipped_evaluator_loads_offline_and_reaches_its_stated_accuracy(real_mnist):
    from training.classifier import MIN_ACCURACY, load_classifier
    ev = load_classifier("mnist")
    assert ev.info["test_accuracy"] >= MIN_ACCURACY["mnist"]
    probs, feats = ev.predict(real_mnist.x_test / 255.0)
    accuracy = float(np.mean(probs.argmax(1) == real_mnist.y_test))
    assert accuracy == pytest.approx(ev.info["test_accuracy"], abs=2e-4)  # as stated, here too
    assert feats.shape == (10000, 128)


@pytest.mark.network
def test_real_test_digits_score_near_ten(real_mnist):
    from training.classifier import load_classifier
    from training.quality import image_metrics
    ev = load_classifier("mnist")
    probs, feats = ev.predict(real_mnist.x_test[:2000] / 255.0)
    m = image_metrics(probs, feats, feats)
    assert m["classifier_score"] > 9.0 and m["classes_covered"] == 10


def test_evaluate_scores_a_run_and_the_results_table_reads_it(tiny_runs, tiny_mnist, tmp_path):
    from conftest import cli, private_copy
    from training.results import table
    run = private_copy(tiny_runs["mlp-mnist"], tmp_path / "run")
    result = cli("training.evaluate", "--run", str(run), "--n", "200", "--write", "--data-dir",
                 str(tiny_mnist))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("step_000004: score ")
    assert "best: step_000004" in result.stdout
    text = table([run])
    assert "| real mnist test split | - | 9.7" in text  # the shipped baseline
    assert "| mlp-mnist, best | step_000004 |" in text
    assert "| dcgan-mnist, best | not measured yet |" in text
    # article 000 picks epoch 40 of its 100: both rows, for its claim that they are as good
    assert "| dcgan-mnist, recommended (epoch_040) | not measured yet |" in text
    assert "| dcgan-mnist, end of schedule (epoch_100) | not measured yet |" in text
    assert "mlp-fashion, end of schedule" not in text  # its pick is its last epoch


@pytest.mark.network
def test_shipped_fashion_evaluator_reaches_its_stated_accuracy(real_fashion_mnist):
    from training.classifier import MIN_ACCURACY, load_classifier
    data = real_fashion_mnist
    ev = load_classifier("fashion_mnist")
    assert ev.info["test_accuracy"] >= MIN_ACCURACY["fashion_mnist"]
    probs, _ = ev.predict(data.x_test / 255.0)
    assert float(np.mean(probs.argmax(1) == data.y_test)) == pytest.approx(
        ev.info["test_accuracy"], abs=2e-4)


def test_without_a_test_split_the_frechet_distance_is_left_out_and_ranks_nothing():
    from training.quality import image_metrics
    probs = one_hot(np.arange(100) % 10)
    m = image_metrics(probs, np.zeros((100, 4)), None)
    assert m["frechet_distance"] is None and m["classifier_score"] == pytest.approx(10)
    # Without distances the highest score wins, and a tie keeps the earlier checkpoint.
    assert best_row([_row(1, 8.7, 10, None), _row(2, 8.7, 10, None)])["step"] == 1
    assert best_row([_row(1, 8.7, 10, None), _row(2, 8.72, 10, None)])["step"] == 2


def test_results_claim_sets_the_articles_pick_beside_windows_of_epochs(tiny_runs, tmp_path):
    import shutil

    from conftest import assert_one_line_error, run_cli
    from training.results import claim
    from training.rundir import RunDir
    shutil.copy(tiny_runs["dcgan-mnist"] / "config.json", tmp_path / "config.json")
    run = RunDir(tmp_path)

    def row(epoch):  # score epoch/10, distance 100 - epoch; the averaged one from epoch 50
        r = {**_row(epoch * 234, epoch / 10, 9 if epoch == 35 else 10, 100.0 - epoch),
             "epoch": float(epoch), "checkpoint": f"epoch_{epoch:03d}"}
        ema = {"ema_classifier_score": epoch / 20, "ema_frechet_distance": None,
               "ema_classes_covered": 10, "ema_kl_to_uniform": 0.0, "ema_n_samples": 1000}
        return {**r, **ema} if epoch >= 50 else r
    run.write_metrics([row(e) for e in range(1, 61)])
    lines = claim(tmp_path).splitlines()
    assert lines[0].startswith("Article 000's claim: epoch_040 is as good as epoch_100. ")
    assert "evaluated through epoch_060" in lines[0]
    assert lines[4] == "| epoch_040, the article's pick | 40 | 4.00 | 60.0 | 10/10 | - | - |"
    assert lines[5] == ("| the 10 evaluations up to it | 31 to 40 | 3.55 (3.10 to 4.00) "
                        "| 64.5 (60.0 to 69.0) | 9/10 | - | - |")
    assert lines[6] == ("| the last 10 evaluated | 51 to 60 | 5.55 (5.10 to 6.00) "
                        "| 44.5 (40.0 to 49.0) | 10/10 | 2.77 (2.55 to 3.00) | - |")
    assert lines[7] == "| epoch_100, the end of the schedule | not reached yet |  |  |  |  |  |"
    run.write_metrics([row(e) for e in range(1, 101)])
    assert claim(tmp_path).splitlines()[7] == (
        "| epoch_100, the end of the schedule | 100 | 10.00 | 0.0 | 10/10 | 5.00 | - |")

    result = run_cli("-m", "training.results", "--claim", str(tiny_runs["mlp-fashion"]))
    assert_one_line_error(result, "picks the last checkpoint of its schedule")
    result = run_cli("-m", "training.results", "--claim", str(tmp_path), str(tmp_path))
    assert_one_line_error(result, "--claim describes one run")


def test_quality_plot_of_a_run_without_distances_says_so_without_warnings(tmp_path):
    import warnings

    from PIL import Image

    from training.plots import save_quality_by_epoch
    rows = [{**_row(e, e / 2, 10, None), "epoch": float(e)} for e in range(1, 6)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of an empty legend, a log of nothing
        out = save_quality_by_epoch({"run": rows}, "no test split", tmp_path / "q.png",
                                     {"pick": 3})
    with Image.open(out) as img:
        assert img.format == "PNG"


def test_results_plot_draws_one_runs_quality_per_epoch(tiny_runs, tmp_path):
    from PIL import Image

    from conftest import run_cli
    out = tmp_path / "epochs.png"
    result = run_cli("-m", "training.results", "--plot", str(out), str(tiny_runs["dcgan-mnist"]))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 1000
    gan_1d = run_cli("-m", "training.results", "--plot", str(out), str(tiny_runs["gan-1d"]))
    assert gan_1d.returncode == 2 and "no scored image evaluations" in gan_1d.stderr


def test_results_plot_compares_runs_of_one_system(tiny_runs, tmp_path):
    """Several runs of one system in one picture: here a tiny DCGAN run beside the committed
    record of a long one, the picture of the two different from that of the tiny run alone."""
    from PIL import Image

    from conftest import ROOT, assert_one_line_error, run_cli
    import shutil
    tiny = tiny_runs["dcgan-mnist"]
    # --plot labels runs by folder name: the record under a name of its own
    record = shutil.copytree(ROOT / "docs" / "records" / "dcgan-mnist", tmp_path / "record")
    alone, both = tmp_path / "alone.png", tmp_path / "both.png"
    assert run_cli("-m", "training.results", "--plot", str(alone), str(tiny)).returncode == 0
    result = run_cli("-m", "training.results", "--plot", str(both), str(tiny), str(record))
    assert result.returncode == 0, result.stderr
    with Image.open(both) as img, Image.open(alone) as single:
        assert img.format == "PNG" and img.size == single.size
        assert np.asarray(img).tobytes() != np.asarray(single).tobytes()
    mixed = run_cli("-m", "training.results", "--plot", str(both), str(tiny),
                    str(tiny_runs["mlp-fashion"]))
    assert_one_line_error(mixed, "compares runs of one system", "dcgan-mnist, mlp-fashion")
    twice = run_cli("-m", "training.results", "--plot", str(both), str(tiny), str(tiny))
    assert_one_line_error(twice, "folders with different names")


def test_evaluate_scores_one_onnx_file_or_one_checkpoint(exported_runs, tiny_mnist):
    """--onnx scores an exported file as export validation does (same latents, same data);
    --checkpoint scores that checkpoint alone, without writing anything."""
    from conftest import cli, snapshot
    from training.evaluate import score_onnx
    run = exported_runs["mlp-mnist"]
    before = snapshot(run)
    onnx_file = run / "export" / "generator.fp32.onnx"
    result = cli("training.evaluate", "--onnx", str(onnx_file), "--n", "200", "--data-dir",
                 str(tiny_mnist))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{onnx_file}: {score_onnx(onnx_file, 200, tiny_mnist).format()}\n"
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    fp32 = next(f for f in manifest["files"] if f["precision"] == "fp32")["quality"]
    assert f"score {fp32['classifier_score']:.2f}" in result.stdout  # export scored 200 too
    scored = cli("training.evaluate", "--run", str(run), "--checkpoint", "step_000004", "--n",
                 "200")
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.startswith("step_000004: score ") and " | averaged: score " in scored.stdout
    assert snapshot(run) == before
