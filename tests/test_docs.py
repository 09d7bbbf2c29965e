"""The repository's Markdown: every relative link and picture points to a file that is there."""
import re

import pytest

from conftest import ROOT

# [text](target) and ![alt](target); web addresses and in-page anchors are not files.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
               *(ROOT / "benchmarks" / "results").glob("*.md")])


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    targets = [t for t in LINK.findall(doc.read_text())
               if not re.match(r"[a-z]+:|#", t)]
    missing = [t for t in targets if not (doc.parent / t.split("#")[0]).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to what is not there: {missing}"


def test_the_link_pattern_finds_links_and_pictures():
    text = "see [runs](docs/runs.md) and ![grid](docs/demo-grid.png), not [web](https://x.org)"
    assert LINK.findall(text) == ["docs/runs.md", "docs/demo-grid.png", "https://x.org"]
