"""The names of the files that gan-edge writes in one part and reads in another: exported
generators and discriminators, the manifest and the shipped index, a run's config, metrics
and best row, checkpoint folders and what they hold, and ganrun's --out-dir files. Training,
export and the runtime all take the names from here, so a name changes in one place and every
reader follows.
"""
from __future__ import annotations

import re

# An export (runs/<name>/export/, or a shipped runtime/models/<name>/): ganexport writes these,
# ganrun, the web page, the benchmarks and export.ship read them.
MANIFEST_FILE = "manifest.json"
DISCRIMINATOR_FILE = "discriminator.int8.onnx"  # for ganrun --keep, beside the generators
SHIPPED_INDEX_FILE = "index.json"  # runtime/models/: the shipped models and the default


def generator_file(precision: str) -> str:
    """The exported generator of one precision (fp32, int8, fp16)."""
    return f"generator.{precision}.onnx"


# Every ONNX file an export owns: it removes those of an earlier export that it did not write.
EXPORTED_PATTERNS = (generator_file("*"), "discriminator.*.onnx")


# A training run's folder (training/rundir.py knows the rest of its layout).
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
BEST_FILE = "best.json"

# A checkpoint folder: the trained generator and, for runs that average, the averaged one;
# the discriminator; what a resumed run needs beyond the weights; and its step and epoch.
KERAS_GENERATOR_FILES = {"raw": "generator.keras", "ema": "generator_ema.keras"}
KERAS_DISCRIMINATOR_FILE = "discriminator.keras"
TRAINING_STATE_FILE = "training_state.npz"
CHECKPOINT_STATE_FILE = "state.json"

_CHECKPOINT_NAME = re.compile(r"^(epoch|step)_(\d+)$")


def format_checkpoint(unit: str, number: int) -> str:
    """A checkpoint's name: epoch_040 after 40 whole epochs (unit "epoch"), step_001000 after
    1000 steps (any other unit)."""
    return f"epoch_{number:03d}" if unit == "epoch" else f"step_{number:06d}"


def parse_checkpoint(name: str) -> tuple[str, int] | None:
    """("epoch", 40) for epoch_040, ("step", 1000) for step_001000; None for other names."""
    match = _CHECKPOINT_NAME.match(name)
    return (match[1], int(match[2])) if match else None


# ganrun --out-dir: one PNG per sample, and their classes where known.
LABELS_FILE = "labels.csv"
_SAMPLE_FILE = re.compile(r"sample_\d{6}\.png")


def sample_file(index: int) -> str:
    return f"sample_{index:06d}.png"


def is_out_dir_file(name: str) -> bool:
    """Whether ganrun --out-dir writes files called `name` (a sample, or the labels)."""
    return name == LABELS_FILE or _SAMPLE_FILE.fullmatch(name) is not None
