"""The frozen classifiers whose features and predictions score generated images.

One small CNN per image data set, trained by this module's command and shipped inside the
package (training/classifiers/<dataset>.keras + .json with its provenance and the real-data
baselines), so that scores compare across machines and runs without any download:

    python -m training.classifier --dataset mnist

(training/evaluate.py is the other side: it scores generators with these classifiers.)
"""
from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

import click
import numpy as np

from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.files import atomic_path, write_text_atomic

CLASSIFIER_DIR = Path(__file__).parent / "classifiers"
FEATURE_LAYER = "features"
MIN_ACCURACY = {"mnist": 0.99, "fashion_mnist": 0.90}
# --dataset of the commands that make a classifier (this one, and export.classifier's int8 file).
dataset_option = click.option("--dataset", type=click.Choice(list(MIN_ACCURACY)), default="mnist",
                              show_default=True)


def build_classifier():
    """[N,28,28,1] in [0,1] -> 10 class probabilities; the 128-d 'features' layer feeds the
    Frechet distance."""
    import keras
    from keras import layers
    x = inputs = keras.Input((28, 28, 1))
    for filters in (32, 64):
        x = layers.MaxPooling2D()(layers.Conv2D(filters, 3, activation="relu")(x))
    x = layers.Dropout(0.25)(layers.Flatten()(x))
    x = layers.Dense(128, activation="relu", name=FEATURE_LAYER)(x)
    outputs = layers.Dense(10, activation="softmax")(layers.Dropout(0.25)(x))
    return keras.Model(inputs, outputs, name="classifier")


class Classifier:
    """A loaded classifier: probabilities and features for images in [0, 1]."""

    def __init__(self, model, info: dict):
        import keras
        self.info = info
        self.model = keras.Model(model.inputs[0],
                                 [model.output, model.get_layer(FEATURE_LAYER).output])

    def predict(self, images01: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(images01, np.float32).reshape(-1, 28, 28, 1)
        probs, feats = [], []
        for i in range(0, len(x), batch):
            p, f = self.model(x[i:i + batch], training=False)
            probs.append(np.asarray(p))
            feats.append(np.asarray(f))
        return np.concatenate(probs), np.concatenate(feats)

    def reference_features(self, dataset: str, data_dir=None) -> np.ndarray | None:
        """Features of the test split that the Frechet distance compares with, or None (said
        once, on stderr) where the split cannot be had: every other metric needs no real data."""
        return _reference_features(self, dataset, str(data_dir) if data_dir else None)


@lru_cache(maxsize=None)
def _reference_features(classifier: Classifier, dataset: str, data_dir: str | None):
    from training.data import load_images
    try:
        data = load_images(dataset, data_dir)
    except GanEdgeError as e:
        click.echo(f"note: Frechet distance left out, no {dataset} test split here ({e})",
                   err=True)
        return None
    return classifier.predict(data.x_test / 255.0)[1]


def classifier_path(dataset: str) -> Path:
    return CLASSIFIER_DIR / f"{dataset}.keras"


def classifier_info(dataset: str) -> dict:
    """The shipped classifier's provenance and real-data baselines (no Keras needed)."""
    return json.loads(classifier_path(dataset).with_suffix(".json").read_text())


@lru_cache(maxsize=None)
def load_classifier(dataset: str) -> Classifier:
    import keras
    path = classifier_path(dataset)
    if not path.is_file():
        raise GanEdgeError(f"no classifier for {dataset} at {path}; train one with: "
                           f"python -m training.classifier --dataset {dataset}")
    return Classifier(keras.saving.load_model(path, compile=False), classifier_info(dataset))


def train_classifier(dataset: str, epochs: int = 8, seed: int = 0, data_dir=None) -> dict:
    import keras

    from training.data import load_images
    from training.quality import image_metrics

    data = load_images(dataset, data_dir)
    keras.utils.set_random_seed(seed)
    model = build_classifier()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  loss="sparse_categorical_crossentropy")
    x_train = (data.x_train / 255.0).astype("float32")[..., None]
    x_test = (data.x_test / 255.0).astype("float32")[..., None]
    start = time.time()
    model.fit(x_train, data.y_train, batch_size=128, epochs=epochs, verbose=2,
              validation_data=(x_test, data.y_test))
    accuracy = float(model.evaluate(x_test, data.y_test, verbose=0)[1])
    if accuracy < MIN_ACCURACY[dataset]:
        raise GanEdgeError(f"the classifier reached {accuracy:.4f} test accuracy, below the required "
                           f"{MIN_ACCURACY[dataset]}; train longer with --epochs")

    classifier = Classifier(model, {})
    test_probs, test_feats = classifier.predict(x_test)
    _, train_feats = classifier.predict(x_train[:10_000])
    # Real-data baselines, computed exactly as generated samples are scored: the test split as
    # the "samples" (its Frechet distance is train-vs-test, since test-vs-test is 0 by design).
    baseline = image_metrics(test_probs, train_feats, test_feats)
    info = {
        "dataset": dataset, "test_accuracy": round(accuracy, 5), "epochs": epochs, "seed": seed,
        "command": f"python -m training.classifier --dataset {dataset} --epochs {epochs} "
                   f"--seed {seed}",
        "train_seconds": round(time.time() - start, 1), "data_sha256": data.sha256,
        "keras": keras.__version__, "params": model.count_params(),
        "baseline_real": baseline,
        "baseline_note": "test split (10,000) scored as samples; Frechet distance of 10,000 train "
                         "images against the test split",
    }
    path = classifier_path(dataset)
    path.parent.mkdir(exist_ok=True)
    with atomic_path(path) as tmp:
        model.save(tmp)
    write_text_atomic(path.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return info


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@dataset_option
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--data-dir", type=click.Path(), help="Folder with the data set's files.")
def main(dataset, epochs, seed, data_dir):
    """Train and ship the scoring classifier for one data set (writes training/classifiers/)."""
    info = train_classifier(dataset, epochs, seed, data_dir)
    click.echo(json.dumps({k: info[k] for k in ("dataset", "test_accuracy", "params")}))


if __name__ == "__main__":
    run_cli(main)
