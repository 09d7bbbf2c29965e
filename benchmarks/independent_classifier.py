"""python -m benchmarks.independent_classifier: a second MNIST classifier, the judge of
`ganrun --class` on unconditional models.

`ganrun --class 7` on an unconditional model keeps the samples that the project's classifier
(training/classifier.py, shipped as int8 in runtime/classifiers/) puts in class 7; graded by that
same classifier its choice is right by construction. This classifier grades it instead: another
architecture, trained separately (its own seed) on MNIST's training split, and used by nothing
that ganrun runs. benchmarks/knobs.py scores --class with it.

How it differs from the project's classifier:

    project's  Conv 32 3x3 valid, ReLU, MaxPool; Conv 64 3x3 valid, ReLU, MaxPool; Dropout .25;
               Dense 128 ReLU; Dropout .25; Dense 10 softmax                  (225,034 weights)
    this one   Conv 16 5x5 same, BatchNorm, ReLU; Conv 32 5x5 stride 2, BatchNorm, ReLU;
               Conv 64 3x3 stride 2, BatchNorm, ReLU; Dense 10 softmax
               (5x5 kernels, strided convolutions instead of pooling, batch normalisation, no
               hidden dense layer, no dropout; 63,450 weights)

Writes benchmarks/classifiers/mnist-independent.onnx (fp32, input `image` [N, 28, 28, 1] in
[0, 1], output `probs` [N, 10]; metadata `gan.independent_classifier`: test accuracy, seed,
command, data SHA-256) and benchmarks/results/independent-classifier.md. Training is seeded and
deterministic; it takes a couple of minutes on 2 CPU cores.

    python -m benchmarks.independent_classifier
"""
from __future__ import annotations

import json
import platform
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import click
import numpy as np

from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.files import atomic_path, write_text_atomic

MODEL_FILE = Path(__file__).parent / "classifiers" / "mnist-independent.onnx"
REPORT_FILE = Path(__file__).parent / "results" / "independent-classifier.md"
METADATA_KEY = "gan.independent_classifier"
MIN_ACCURACY = 0.99
EPOCHS = 5
BATCH = 128
SEED = 1  # not the project's classifier's seed (0): trained separately
MAX_ONNX_DIFF = 1e-4  # probabilities, ONNX against Keras


def build():
    """[N, 28, 28, 1] in [0, 1] -> 10 class probabilities (see the module's docstring)."""
    import keras
    from keras import layers
    x = inputs = keras.Input((28, 28, 1))
    for filters, kernel, stride in ((16, 5, 1), (32, 5, 2), (64, 3, 2)):  # 28 -> 28 -> 14 -> 7
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(x))
    return keras.Model(inputs, outputs, name="independent_classifier")


class IndependentClassifier:
    """The committed ONNX file in an onnxruntime session (no TensorFlow needed)."""

    def __init__(self, path: Path = MODEL_FILE):
        from runtime.session import open_session
        train = "train it with: python -m benchmarks.independent_classifier"
        self.session = open_session(path, f"no second classifier at {path}; {train}", train)
        self.info = json.loads(self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])

    def predict(self, images01: np.ndarray, batch: int = 1000) -> np.ndarray:
        """[N, 28, 28(, 1)] in [0, 1] -> class probabilities [N, 10]."""
        x = np.ascontiguousarray(images01, np.float32).reshape(-1, 28, 28, 1)
        return np.concatenate([self.session.run(["probs"], {"image": x[i:i + batch]})[0]
                               for i in range(0, len(x), batch)]) if len(x) else np.zeros((0, 10))


@lru_cache(maxsize=1)
def load() -> IndependentClassifier:
    return IndependentClassifier()


def train(epochs: int = EPOCHS, seed: int = SEED, data_dir=None, log=print) -> dict:
    """Train, export to ONNX, check it against Keras, write the file and the report."""
    import keras
    import onnx
    import tensorflow as tf

    from export.classifier import to_onnx
    from export.exporter import write_metadata
    from runtime.core.cpu import cpu_name
    from training.data import load_images

    data = load_images("mnist", data_dir)
    x_train = (data.x_train / 255.0).astype(np.float32)[..., None]
    x_test = (data.x_test / 255.0).astype(np.float32)[..., None]
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()  # the same weights on every run
    model = build()
    steps = epochs * -(-len(x_train) // BATCH)
    # The learning rate decays to zero: the last epochs settle the weights (and batch norm's
    # statistics) instead of jumping about the minimum.
    rate = keras.optimizers.schedules.CosineDecay(1e-3, steps)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.time()
    model.fit(x_train, data.y_train, batch_size=BATCH, epochs=epochs, verbose=2)
    seconds = time.time() - start
    keras_probs = model.predict(x_test, batch_size=1000, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "independent.onnx"
        onnx.save(to_onnx(model), str(path))
        write_metadata(path, {METADATA_KEY: "{}"})
        probs = IndependentClassifier(path).predict(x_test)
        diff = float(np.abs(probs - keras_probs).max())
        if diff > MAX_ONNX_DIFF:
            raise GanEdgeError(f"the ONNX classifier differs from Keras by up to {diff:.2g} "
                               f"(bound {MAX_ONNX_DIFF:g}); not written")
        predicted = probs.argmax(1)
        accuracy = float(np.mean(predicted == data.y_test))
        if accuracy < MIN_ACCURACY:
            raise GanEdgeError(f"the second classifier reached {accuracy:.2%} test accuracy, below "
                               f"{MIN_ACCURACY:.0%}; train longer with --epochs")
        project = _project_predictions(x_test)
        info = {
            "dataset": "mnist", "test_accuracy": round(accuracy, 5),
            "test_accuracy_per_class": [round(float(np.mean(predicted[data.y_test == k] == k)), 5)
                                        for k in range(10)],
            "agreement_with_project_classifier": round(float(np.mean(predicted == project)), 5),
            "both_wrong": int(np.sum((predicted != data.y_test) & (project != data.y_test))),
            "params": model.count_params(), "epochs": epochs, "seed": seed,
            "command": f"python -m benchmarks.independent_classifier --epochs {epochs} "
                       f"--seed {seed}",
            "train_seconds": round(seconds, 1), "machine": f"{platform.machine()}, {cpu_name()}",
            "date": time.strftime("%Y-%m-%d"), "keras": keras.__version__,
            "data_sha256": data.sha256, "max_abs_diff_onnx_keras": diff,
        }
        write_metadata(path, {METADATA_KEY: json.dumps(info)})
        with atomic_path(MODEL_FILE) as out:
            out.write_bytes(path.read_bytes())
    write_text_atomic(REPORT_FILE, report(info, MODEL_FILE.stat().st_size))
    log(f"{MODEL_FILE.name}: test accuracy {accuracy:.2%}, {seconds:.0f} s of training")
    return info


def _project_predictions(x_test: np.ndarray) -> np.ndarray:
    """The project's classifier's classes for the test split, as ganrun runs it (int8 ONNX)."""
    from runtime.classify import Classifier
    project = Classifier("mnist")
    return np.concatenate([project.predict(x_test[i:i + 1000]).argmax(1)
                           for i in range(0, len(x_test), 1000)])


def report(info: dict, size: int) -> str:
    per_class = " | ".join(f"{a:.2%}" for a in info["test_accuracy_per_class"])
    return "\n".join([
        "# The second MNIST classifier (the judge of `ganrun --class`)", "",
        f"Made by `{info['command']}` on {info['date']} ({info['machine']}): "
        f"{info['train_seconds']:.0f} s of training on the 60,000 training digits; "
        f"`benchmarks/classifiers/{MODEL_FILE.name}`, fp32 ONNX, {size / 1e3:.0f} kB, "
        f"{info['params']:,} weights. Its architecture and how it differs from the project's "
        f"classifier: `benchmarks/independent_classifier.py`.", "",
        "On the 10,000 real test digits:", "",
        "| test accuracy | agrees with the project's classifier (int8, as ganrun runs it) | "
        "digits both get wrong |", "|---|---|---|",
        f"| {info['test_accuracy']:.2%} | {info['agreement_with_project_classifier']:.2%} | "
        f"{info['both_wrong']} |", "",
        "| class | " + " | ".join(str(k) for k in range(10)) + " |",
        "|---" * 11 + "|",
        f"| test accuracy | {per_class} |", "",
        "The ONNX file gives the Keras model's probabilities to within "
        f"{info['max_abs_diff_onnx_keras']:.1g} on the test split.", ""])


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--epochs", default=EPOCHS, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=SEED, show_default=True, type=int)
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False),
              help="Folder with MNIST's files [default: the loader's sources].")
def main(epochs, seed, data_dir):
    """Train the second MNIST classifier and write it as ONNX with its report."""
    train(epochs, seed, data_dir, log=lambda m: click.echo(m, err=True))
    click.echo(str(MODEL_FILE))


if __name__ == "__main__":
    run_cli(main)
