"""The documents: their generated parts are current, their commands and code run as written,
their links and pictures point to what is there, and the run records they cite read as runs."""
import importlib.util
import json
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, assert_one_line_error

_spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate)

README = ROOT / "README.md"
# [text](target) and ![alt](target); web addresses and in-page anchors are not files.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
DOCS = sorted([README, ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md"),
               *(ROOT / "benchmarks" / "results").glob("*.md")])
HEAVY = ("tensorflow", "keras", "training", "export", "tf2onnx", "matplotlib")


def _code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, re.S | re.M)


# -- generated parts ---------------------------------------------------------------------------

def test_generated_parts_are_what_make_docs_writes():
    stale = generate.stale_documents()
    assert not stale, f"out of date (run `make docs`): {[str(p.relative_to(ROOT)) for p in stale]}"


def test_a_stale_block_is_found_and_rewritten(tmp_path):
    doc = tmp_path / "page.md"
    fresh = generate.render("intro\n<!-- generated: ganrun-list -->\n<!-- end: ganrun-list -->\n")
    assert "(default)" in fresh  # the listing was filled in
    doc.write_text(fresh.replace("(default)", "(the best)"))
    assert generate.stale_documents([doc]) == [doc]
    assert doc.read_text() != fresh  # checking changes nothing
    assert generate.stale_documents([doc], write=True) == [doc]
    assert doc.read_text() == fresh
    assert generate.stale_documents([doc]) == []


def test_the_generated_tables_hold_every_shipped_model_and_registry_entry():
    from runtime.shipped import load_index
    from training.config import REGISTRY
    results, registry = generate.shipped_results(), generate.registry()
    index = load_index()
    for name in index["models"]:
        assert f"| `{name}`" in results
    assert f"| `{index['default']}` (default) |" in results
    for name in REGISTRY:
        assert f"| `{name}` |" in registry


@pytest.mark.parametrize("text, fragment", [
    ("<!-- generated: no-such-block -->\n<!-- end: no-such-block -->\n", "does not know"),
    ("<!-- generated: ganrun-list -->\nno end\n", "without its pair"),
])
def test_a_bad_block_is_one_error(text, fragment):
    from runtime.core.errors import GanEdgeError
    with pytest.raises(GanEdgeError, match=fragment):
        generate.render(text)


def test_make_docs_check_exits_nonzero_naming_the_stale_file(tmp_path):
    """The command itself: a clean checkout passes; a copy with a stale README fails in one line."""
    ok = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--check"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    # A copy of the generator pointed at a copy of the documents, one block edited.
    copy = tmp_path / "repo"
    (copy / "docs").mkdir(parents=True)
    (copy / "docs" / "generate.py").write_text((ROOT / "docs" / "generate.py").read_text())
    listing = generate.ganrun_list()
    (copy / "README.md").write_text(README.read_text().replace(listing, listing.replace(
        "(default)", "(the best)")))
    (copy / "benchmarks").symlink_to(ROOT / "benchmarks")
    (copy / "docs" / "records").symlink_to(ROOT / "docs" / "records")
    stale = subprocess.run([sys.executable, str(copy / "docs" / "generate.py"), "--check"],
                           capture_output=True, text=True, timeout=120)
    assert stale.returncode == 1
    assert stale.stderr.strip() == ("error: out of date: README.md; run `make docs` and commit "
                                    "the result")


# -- the README's shape and commands -----------------------------------------------------------

def test_the_readme_is_short_and_reaches_ganrun_early():
    lines = README.read_text().splitlines()
    assert len(lines) <= 220
    first = next(i for i, line in enumerate(lines, 1) if line.startswith("ganrun"))
    assert first <= 60, f"the first ganrun command is on line {first}"


def test_the_readmes_python_example_draws_what_ganrun_draws(tmp_path):
    """The README's Python block, run as written: it needs no heavy module, and its PNG is the
    one that the ganrun command it names writes."""
    [code] = _code_blocks(README.read_text(), "python")
    check = f"\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    command = re.search(r"`(ganrun --model dcgan-mnist [^`]*)`", " ".join(
        README.read_text().split()))[1]
    (tmp_path / "cli").mkdir()
    cli = subprocess.run([sys.executable, "-m", "runtime.cli", *shlex.split(command)[1:]],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path / "cli")
    assert cli.returncode == 0, cli.stderr
    assert (tmp_path / "digits.png").read_bytes() == (tmp_path / "cli" / "digits.png").read_bytes()


def test_every_ganrun_line_of_the_readme_runs(tmp_path):
    """Each `ganrun ...` line of the README's code blocks, as a user types it, in an empty
    folder that holds only the exported files the lines name (a shipped int8 file here, and a
    64x64 RGB generator for the exported faces)."""
    from foreign import color_generator
    from runtime.shipped import MODELS_DIR, load_index
    index = load_index()
    lines = [line.split("#")[0].strip() for block in _code_blocks(README.read_text(), "bash")
             for line in block.splitlines() if line.startswith("ganrun")]
    assert len(lines) >= 8
    exported = MODELS_DIR / index["models"]["dcgan-mnist"]["files"]["int8"]
    (tmp_path / "generator.int8.onnx").write_bytes(exported.read_bytes())
    (tmp_path / "faces").mkdir()
    color_generator(tmp_path / "faces" / "generator.int8.onnx", 64, 64, 3)
    for line in lines:
        args = shlex.split(line)[1:]
        result = subprocess.run([sys.executable, "-m", "runtime.cli", *args],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert result.returncode == 0, f"{line}: {result.stderr}"
        if "--list" not in args and "--help" not in args:
            out = args[args.index("--out") + 1] if "--out" in args else "grid.png"
            assert (tmp_path / out).stat().st_size > 0, line
    assert len(list((tmp_path / "digits").glob("*.png"))) == 1000
    assert Image.open(tmp_path / "walk.gif").n_frames > 1


def test_ganrun_list_in_the_readme_is_what_ganrun_prints():
    listed = subprocess.run([sys.executable, "-m", "runtime.cli", "--list"], capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "```\n" + listed.stdout + "```" in README.read_text()


# -- links and pictures ------------------------------------------------------------------------

@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    targets = [t for t in LINK.findall(doc.read_text())
               if not re.match(r"[a-z]+:|#", t)]
    missing = [t for t in targets if not (doc.parent / t.split("#")[0]).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to what is not there: {missing}"


def test_the_link_pattern_finds_links_and_pictures():
    text = "see [q](docs/quality.md) and ![grid](docs/gallery/x.png), not [web](https://x.org)"
    assert LINK.findall(text) == ["docs/quality.md", "docs/gallery/x.png", "https://x.org"]


def test_the_gallery_is_what_make_gallery_draws(tmp_path):
    """One picture per shipped model, each what its caption's command draws today (int8
    kernels of other CPUs may round a few pixels differently)."""
    from runtime.shipped import load_index
    names = list(load_index()["models"])
    assert sorted(p.stem for p in (ROOT / "docs" / "gallery").glob("*.png")) == sorted(names)
    drawn = {p.stem: p for p in generate.draw_gallery(tmp_path)}
    assert sorted(drawn) == sorted(names)
    for name in names:
        out = drawn[name]
        ours = np.asarray(Image.open(out).convert("L"), dtype=np.int16)
        shown = np.asarray(Image.open(ROOT / "docs" / "gallery" / out.name).convert("L"),
                           dtype=np.int16)
        assert ours.shape == shown.shape, name
        assert np.mean(np.abs(ours - shown) > 16) < 0.01, name


# -- run records -------------------------------------------------------------------------------

RECORDS = sorted(p for p in (ROOT / "docs" / "records").iterdir() if p.is_dir())


def test_every_record_is_a_known_system_named_for_it():
    from training.config import REGISTRY
    assert RECORDS, "docs/records holds no run record"
    for record in RECORDS:
        assert record.name in REGISTRY, f"{record.name}: records are named for their --arch"
        assert sorted(p.name for p in record.iterdir()) == ["best.json", "config.json",
                                                            "metrics.jsonl"]


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.name)
def test_a_record_reads_as_a_run_with_the_pick_the_rule_makes(record):
    """docs/records/<arch>: a run's config.json, metrics.jsonl and best.json, no weights. The
    results commands read it as a run folder; its best.json is the rule's pick of its rows;
    it names no path of the machine that wrote it."""
    from runtime.core.scores import best_row
    from training.rundir import RunDir
    run = RunDir(record)
    rows = run.read_metrics()
    assert run.arch == record.name and isinstance(run.read_config()["seed"], int)
    assert rows and all("classifier_score" in r or "energy_distance" in r for r in rows)
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    assert run.read_best() == best_row(rows)
    for path in record.iterdir():
        # An absolute path: a string that is one, or a data source "kind:PATH".
        assert not re.search(r'"([a-z-]+:)?(/|[A-Za-z]:\\\\)', path.read_text()), \
            f"{path} names a path"
    result = subprocess.run([sys.executable, "-m", "training.results", str(record)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"| {record.name}, best | {json.loads((record / 'best.json').read_text())['checkpoint']}" \
        in result.stdout


def test_the_results_command_refuses_a_folder_that_is_not_a_record(tmp_path):
    result = subprocess.run([sys.executable, "-m", "training.results", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert_one_line_error(result, str(tmp_path), "config.json")


# -- the product describes itself, not its making ----------------------------------------------

HISTORY = re.compile(
    r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth"
    r"|\d+(st|nd|rd|th)) (machine|session|run)s?\b"
    r"|lost with (its|their) machines?|went with (its|their) machines?|\bas before\b",
    re.I)
SCANNED = [README, ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md"),
           *(ROOT / "benchmarks" / "results").glob("*.md"),
           *(p for folder in ("benchmarks", "training", "export", "runtime", "tests")
             for p in (ROOT / folder).rglob("*.py") if p.name != "test_docs.py")]


def test_no_document_or_comment_tells_how_the_project_was_made():
    found = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
             for p in SCANNED for i, line in enumerate(p.read_text().splitlines(), 1)
             if HISTORY.search(line)]
    assert not found, "\n".join(found)


def test_the_history_pattern_catches_ordinals_and_spares_plain_words():
    assert HISTORY.search("on the ninth machine") and HISTORY.search("the 7th run")
    assert HISTORY.search("six runs were lost with their machines")
    assert not HISTORY.search("the first evaluation") and not HISTORY.search("a second replica")
