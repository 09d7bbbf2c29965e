"""The generators shipped inside the package: runtime/models/<name>/ (files + manifest.json),
listed in runtime/models/index.json, which `python -m export.ship` writes.

index.json: {"default": NAME, "models": {NAME: {"arch", "article", "dataset", "checkpoint",
"epoch", "weights", "scores", "files": {precision: "NAME/generator.<precision>.onnx"},
"discriminator": "NAME/discriminator.int8.onnx" (for ganrun --keep), "conditional"}}}.
The default is the MNIST generator that the best-checkpoint rule prefers among those shipped.
"""
from __future__ import annotations

import json
from pathlib import Path

from runtime.core.artifacts import SHIPPED_INDEX_FILE
from runtime.core.errors import GanEdgeError
from runtime.core.precision import PRECISIONS, TARGET
from runtime.core.samples import IMAGE

MODELS_DIR = Path(__file__).parent / "models"


def load_index(folder: Path = MODELS_DIR) -> dict:
    path = folder / SHIPPED_INDEX_FILE
    try:
        index = json.loads(path.read_text())
        if index["default"] not in index["models"]:
            raise KeyError(index["default"])
        return index
    except FileNotFoundError:
        raise GanEdgeError(f"no shipped models in {folder} ({SHIPPED_INDEX_FILE} is missing); pass --model "
                           f"FILE, or reinstall gan-edge") from None
    except (ValueError, KeyError, TypeError):
        raise GanEdgeError(f"{path} is damaged; reinstall gan-edge, or pass --model FILE") from None


def model_entry(name: str | None = None) -> dict:
    """Shipped model `name` (None: the default) as index.json lists it."""
    index = load_index()
    name = name or index["default"]
    if name not in index["models"]:
        raise GanEdgeError(f"no shipped model named {name!r}; shipped: "
                           f"{', '.join(index['models'])} (see ganrun --list)")
    return index["models"][name]


def model_file(entry: dict, precision: str = "auto", gpu: bool = False) -> Path:
    """The file of a shipped model (its model_entry) for `precision`; "auto" takes the first
    that exists of those made for the device (fp16 on a GPU, else int8), then fp32, then
    whatever the model has (a model shipped without fp16 still runs on a GPU, as int8)."""
    files = entry["files"]
    if precision == "auto":
        target = "gpu" if gpu else "cpu"
        order = [p for p in PRECISIONS if TARGET[p] == target and p != "fp32"] + ["fp32"]
        precision = next((p for p in [*order, *files] if p in files), None)
    if precision not in files:
        raise GanEdgeError(f"shipped model {entry['arch']} has no {precision} file; choose one "
                           f"of {', '.join(files)}")
    return MODELS_DIR / files[precision]


def is_shipped_name(value: str) -> bool:
    """A --model value that names a shipped model rather than a file path."""
    return "/" not in value and not value.endswith(".onnx") and not Path(value).exists()


def _size(n_bytes: int) -> str:
    """1.3 MB, or 45 kB below a megabyte (where "0.0 MB" would say nothing)."""
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{max(1, round(n_bytes / 1e3))} kB"


def listing() -> list[str]:
    """One line per shipped model, for ganrun --list."""
    # here: defining the score classes (dataclasses) is start-up time that plain generation
    # does not need (python -X importtime -m runtime.cli --n 25)
    from runtime.core.scores import read_scores
    index = load_index()
    rows = [("name", "article", "checkpoint", "scores", "files")]
    for name, m in index["models"].items():
        s = read_scores(m["scores"])
        scores = s.headline()
        if s.kind == IMAGE:
            scores += f", FD {s.text('frechet_distance')}, {s.text('classes_covered')} classes"
            if s.class_accuracy is not None:  # a conditional model: how often it makes the class
                scores += f", class accuracy {s.text('class_accuracy')}"
        files = {**m["files"], **({"discriminator": m["discriminator"]} if "discriminator" in m
                                  else {})}
        sizes = ", ".join(f"{p} {_size((MODELS_DIR / f).stat().st_size)}"
                          for p, f in files.items())
        weights = ", averaged" if m["weights"] == "ema" else ""
        rows.append((name + (" (default)" if name == index["default"] else ""), m["article"],
                     f"{m['checkpoint']}{weights}", scores, sizes))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
