"""The file names of runtime/core/artifacts.py against what is committed: the shipped models,
the run records, and checkpoint names read back as they were written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.core import artifacts
from runtime.shipped import MODELS_DIR
from training.config import REGISTRY

RECORDS = Path(__file__).parent.parent / "docs" / "records"


@pytest.mark.parametrize("unit,number,name", [("epoch", 40, "epoch_040"), ("epoch", 100, "epoch_100"),
                                              ("step", 1000, "step_001000"),
                                              ("step", 20_000, "step_020000")])
def test_checkpoint_names_round_trip(unit, number, name):
    assert artifacts.format_checkpoint(unit, number) == name
    assert artifacts.parse_checkpoint(name) == (unit, number)


def test_other_names_are_no_checkpoints():
    for name in ("epoch_", "step_x", ".tmp-epoch_040-abc", "epoch_040.bak", "generator.keras"):
        assert artifacts.parse_checkpoint(name) is None


def test_registry_checkpoints_parse():
    """Every system's recommended and last checkpoint is a name the parser reads back."""
    for cfg in REGISTRY.values():
        for name in (cfg.recommended, cfg.last_checkpoint):
            unit, number = artifacts.parse_checkpoint(name)
            assert artifacts.format_checkpoint(unit, number) == name


def test_shipped_models_use_the_names():
    index = json.loads((MODELS_DIR / artifacts.SHIPPED_INDEX_FILE).read_text())
    for name, entry in index["models"].items():
        manifest = json.loads((MODELS_DIR / name / artifacts.MANIFEST_FILE).read_text())
        for f in manifest["files"]:
            assert f["file"] == artifacts.generator_file(f["precision"])
            assert (MODELS_DIR / name / f["file"]).is_file()
        assert manifest["discriminator"]["file"] == artifacts.DISCRIMINATOR_FILE
        assert entry["discriminator"] == f"{name}/{artifacts.DISCRIMINATOR_FILE}"
        assert artifacts.parse_checkpoint(entry["checkpoint"]) is not None
        owned = {p.name for pattern in artifacts.EXPORTED_PATTERNS
                 for p in (MODELS_DIR / name).glob(pattern)}
        assert owned == {f["file"] for f in manifest["files"]} | {artifacts.DISCRIMINATOR_FILE}


def test_records_use_the_names():
    records = [p for p in RECORDS.iterdir() if (p / artifacts.CONFIG_FILE).is_file()]
    assert records
    for record in records:
        assert (record / artifacts.METRICS_FILE).is_file()
        for line in (record / artifacts.METRICS_FILE).read_text().splitlines():
            assert artifacts.parse_checkpoint(json.loads(line)["checkpoint"]) is not None


def test_out_dir_files():
    assert artifacts.is_out_dir_file(artifacts.sample_file(7))
    assert artifacts.is_out_dir_file(artifacts.LABELS_FILE)
    for name in ("grid.png", "sample_7.png", "sample_0000007.png", "labels.csv.tmp"):
        assert not artifacts.is_out_dir_file(name)
