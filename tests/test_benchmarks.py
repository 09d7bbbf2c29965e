"""The benchmark harness runs on tiny models and writes a well-formed report (no timing asserts)."""
import json
from pathlib import Path

from PIL import Image

from conftest import run_cli


def test_quick_harness_writes_json_markdown_and_charts(tmp_path):
    result = run_cli("-m", "benchmarks", "--quick", "--arch", "gan-1d", "--train-arch", "gan-1d",
                     "--run", str(tmp_path / "no-such-run"), "--out", str(tmp_path), timeout=600)
    assert result.returncode == 0, result.stderr
    json_path, md_path = (tmp_path / Path(line).name for line in result.stdout.split())
    report = json.loads(json_path.read_text())
    assert {"training", "generation", "cold_start", "files", "goals"} <= set(report)
    assert report["training"][0]["arch"] == "gan-1d" and report["training"][0]["speedup"] > 0
    assert set(report["files"]) == {"fp32", "int8", "fp16"}
    assert all(g["measured"] is not None for g in report["goals"]
               if g["goal"] in ("ganrun_wall_s", "ganrun_rss_mb", "cold_start_speedup"))
    assert "untrained" in report["model_source"]
    md = md_path.read_text()
    assert "## Goals" in md and "| ganrun |" in md
    assert (f"Made by `python -m benchmarks --quick --arch gan-1d --train-arch gan-1d --run "
            f"{tmp_path / 'no-such-run'}`.") in md  # the report says how to remake it
    for chart in report["charts"]:
        with Image.open(chart) as img:
            assert img.format == "PNG"


def test_unknown_arch_is_an_error():
    result = run_cli("-m", "benchmarks", "--arch", "nope")
    assert result.returncode == 2 and result.stderr.strip().startswith("error: unknown architecture")
