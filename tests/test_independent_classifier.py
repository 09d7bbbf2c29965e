"""The second MNIST classifier that judges `ganrun --class`, the precision the knob report
measures with it, and the confidence floor ganrun applies to --class on an unconditional model."""
import json

import numpy as np
import pytest

from conftest import ROOT, run_cli

KNOBS = ROOT / "benchmarks" / "results" / "knobs.json"


def test_second_classifier_loads_offline_and_reaches_its_stated_accuracy(real_mnist):
    from benchmarks.independent_classifier import MIN_ACCURACY, IndependentClassifier
    from runtime.classify import Classifier
    judge = IndependentClassifier()
    assert judge.info["test_accuracy"] >= MIN_ACCURACY
    x = real_mnist.x_test / 255.0
    predicted = judge.predict(x).argmax(1)
    accuracy = float(np.mean(predicted == real_mnist.y_test))
    assert accuracy == pytest.approx(judge.info["test_accuracy"], abs=2e-4)  # as stated, here too
    # Another network than the one ganrun chooses with: it disagrees on some test digits.
    project = Classifier("mnist").predict(x).argmax(1)
    agreement = float(np.mean(predicted == project))
    assert agreement == pytest.approx(judge.info["agreement_with_project_classifier"], abs=2e-4)
    assert agreement < 1


def test_class_precision_is_the_judges_agreement_per_class_averaged_over_classes():
    from benchmarks.knobs import class_precision
    chosen = np.repeat(np.arange(10), [100] * 9 + [10])  # class 9 chosen rarely
    judged = chosen.copy()
    judged[:20] = 5  # a fifth of the zeros read as fives by the judge
    judged[-5:] = 4  # half of the nines as fours
    p = class_precision(judged, chosen)
    assert p["class_precision_per_class"][0] == pytest.approx(0.8)
    assert p["class_precision_per_class"][9] == pytest.approx(0.5)
    assert p["class_precision_min"] == pytest.approx(0.5)
    assert p["class_precision"] == pytest.approx((0.8 + 0.5 + 8) / 10)  # each class counts once
    no_sevens = class_precision(chosen[chosen != 7], chosen[chosen != 7])
    assert no_sevens["class_precision_per_class"][7] is None and no_sevens["class_precision"] == 1


def _section(default: bool, precisions: dict, score: float = 8.0, conditional=False) -> dict:
    rows = [{"knob": knob, "classifier_score": score, "class_precision": p}
            for knob, p in precisions.items()] + [{"knob": "truncation 2", "classifier_score": 1}]
    return {"default": default, "conditional": conditional, "rows": rows}


def test_class_default_is_the_smallest_floor_that_reaches_the_goal_on_the_default_model():
    from benchmarks.knobs import CLASS_GOAL, class_default
    assert CLASS_GOAL == 0.97
    floors = {"plain": 0.9, "--min-confidence 0.5": 0.95, "--min-confidence 0.9": 0.971,
              "--min-confidence 0.99": 0.99}
    report = {"models": {"a": _section(False, {"plain": 0.99}, score=9.5),
                         "b": _section(True, floors)}}
    assert class_default(report) == {"model": "b", "goal": 0.97, "min_confidence": 0.9}
    report["models"]["b"]["rows"][0]["class_precision"] = 0.98  # no floor needed
    assert class_default(report)["min_confidence"] == 0.0
    # A conditional default has no floor to pick: the best-scoring unconditional model decides.
    report["models"]["b"] = _section(True, {"plain": 0.999}, conditional=True)
    report["models"]["c"] = _section(False, {"plain": 0.5}, score=3.0)
    assert class_default(report) == {"model": "a", "goal": 0.97, "min_confidence": 0.0}
    report["models"] = {"c": report["models"]["c"]}
    assert class_default(report)["min_confidence"] is None  # none reaches it: said so


def test_ganruns_class_floor_is_the_one_the_knob_report_picked():
    from benchmarks.knobs import CLASS_GOAL
    from runtime.cli import CLASS_MIN_CONFIDENCE
    report = json.loads(KNOBS.read_text())
    pick = report["class_default"]
    assert pick["min_confidence"] == CLASS_MIN_CONFIDENCE, \
        "runtime/cli.py's CLASS_MIN_CONFIDENCE is not the floor benchmarks.knobs picked"
    row = next(r for r in report["models"][pick["model"]]["rows"]
               if r["knob"] == f"--min-confidence {CLASS_MIN_CONFIDENCE:g}")
    assert row["class_precision"] >= CLASS_GOAL


def _labels(folder):
    rows = (folder / "labels.csv").read_text().splitlines()[1:]
    return [(label, float(conf)) for _, label, conf in (r.split(",") for r in rows)]


def test_class_on_an_unconditional_model_applies_the_floor_unless_min_confidence_is_given(
        tmp_path):
    from runtime.cli import CLASS_MIN_CONFIDENCE
    common = ("-m", "runtime.cli", "--model", "mlp-smooth-mnist", "--class", "7", "--n", "60")
    floored = run_cli(*common, "--out", str(tmp_path / "a.png"), "--out-dir", str(tmp_path / "a"))
    assert floored.returncode == 0, floored.stderr
    chosen = _labels(tmp_path / "a")
    assert len(chosen) == 60 and all(label == "7" for label, _ in chosen)
    assert min(conf for _, conf in chosen) >= CLASS_MIN_CONFIDENCE
    explicit = run_cli(*common, "--min-confidence", "0", "--out", str(tmp_path / "b.png"),
                       "--out-dir", str(tmp_path / "b"))
    assert explicit.returncode == 0, explicit.stderr
    chosen = _labels(tmp_path / "b")
    assert all(label == "7" for label, _ in chosen)
    assert min(conf for _, conf in chosen) < CLASS_MIN_CONFIDENCE  # the floor was not applied
