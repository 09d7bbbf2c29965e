"""python -m export.classifier --dataset mnist: the scoring classifier as int8 ONNX for the runtime.

The runtime uses it to choose samples by class (`ganrun --class 7`) without TensorFlow. Input
`image` [N, 28, 28, 1] in [0, 1], output `probs` [N, 10]; its metadata names the data set and
the classes. Validated on the test split before it is written: the int8 file must agree with
the Keras classifier on at least MIN_AGREEMENT of the images and lose at most
MAX_ACCURACY_DROP of its accuracy.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import numpy as np

from runtime.core.command import run_cli
from runtime.classify import classifier_file
from runtime.core.errors import GanEdgeError
from runtime.core.files import atomic_path
from training.classifier import classifier_path, dataset_option

# Measured here: MNIST agrees on 99.95 %; Fashion-MNIST on 99.44 % with 512 calibration images
# and 99.35 % with 2,048 (MinMax ranges widen with more data). Its accuracy is what users see.
MIN_AGREEMENT = 0.99
MAX_ACCURACY_DROP = 0.005
CALIBRATION = 512


def to_onnx(model, opset: int = 17):
    """An onnx.ModelProto of an MNIST-shaped classifier: input image [N, 28, 28, 1] in [0, 1],
    output probs [N, 10]."""
    import tensorflow as tf

    from export.convert import function_to_onnx
    return function_to_onnx(lambda image: model(image, training=False),
                            [tf.TensorSpec((None, 28, 28, 1), tf.float32, name="image")], "probs",
                            opset)


def export_classifier(dataset: str, data_dir=None, log=print) -> dict:
    import keras
    import onnx
    import onnxruntime as ort

    from export.exporter import write_metadata
    from export.quantize import quantize_int8
    from training.data import CLASS_NAMES, load_images
    model = keras.saving.load_model(classifier_path(dataset), compile=False)
    data = load_images(dataset, data_dir)
    x = (data.x_test / 255.0).astype(np.float32)[..., None]
    want = np.concatenate([model(x[i:i + 1000], training=False).numpy()
                           for i in range(0, len(x), 1000)]).argmax(1)
    keras_accuracy = float(np.mean(want == data.y_test))
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(to_onnx(model), str(fp32))
        log(f"quantizing, calibrated on {CALIBRATION} test images")
        # minmax, as the shipped classifiers were made: this command remakes them as they are
        quantize_int8(fp32, int8, inputs={"image": x[:CALIBRATION]}, ranges="minmax")
        session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
        got = session.run(["probs"], {"image": x})[0].argmax(1)
        agreement = float(np.mean(got == want))
        accuracy = float(np.mean(got == data.y_test))
        if agreement < MIN_AGREEMENT or accuracy < keras_accuracy - MAX_ACCURACY_DROP:
            raise GanEdgeError(f"the int8 classifier agrees with Keras on {agreement:.2%} of the "
                               f"test split (bound {MIN_AGREEMENT:.0%}) and reaches {accuracy:.2%} "
                               f"against Keras's {keras_accuracy:.2%} (bound: "
                               f"{MAX_ACCURACY_DROP:.1%} lower); not written")
        info = {"dataset": dataset, "classes": list(CLASS_NAMES[dataset]),
                "test_accuracy": round(accuracy, 5), "keras_test_accuracy": round(keras_accuracy, 5),
                "agreement_with_keras": round(agreement, 5)}
        write_metadata(int8, {"gan.classifier": json.dumps(info)})
        with atomic_path(classifier_file(dataset)) as out:
            out.write_bytes(int8.read_bytes())
    return info


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@dataset_option
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False),
              help="Folder with the data set's files [default: the loader's sources].")
def main(dataset, data_dir):
    """Write runtime/classifiers/<dataset>.int8.onnx from the shipped Keras classifier."""
    info = export_classifier(dataset, data_dir, log=lambda m: click.echo(m, err=True))
    click.echo(f"{classifier_file(dataset)}: test accuracy {info['test_accuracy']:.2%} (Keras "
               f"{info['keras_test_accuracy']:.2%}), agrees with Keras on "
               f"{info['agreement_with_keras']:.2%}")


if __name__ == "__main__":
    run_cli(main)
