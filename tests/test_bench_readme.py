"""bench/README.md maps every measured claim to its command and results file; these keep it true.

A results file nobody's claim names, a script the map does not mention, or a file the docs cite that
is not there fails here (the numbers themselves are checked by rerunning the commands, not by tests).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
MAP = BENCH / "README.md"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# a path the docs write as bench/<script> or bench/results/<file> (the file name ends at a space, quote, ...)
CITED = re.compile(r"bench/(?:results/)?[\w.\-/]+\.(?:py|sh|md|tsv|jsonl|json|txt)")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _named(name: str, text: str) -> bool:
    """``name`` as a whole file name (``scale.py`` is not named by ``graph_scale.py``)."""
    return re.search(rf"(?<![\w./-]){re.escape(name)}(?![\w-])", text) is not None


def _results_files() -> list[Path]:
    return sorted(p for p in (BENCH / "results").rglob("*") if p.is_file())


pytestmark = pytest.mark.skipif(not MAP.exists(), reason="no bench/ in this checkout")


def test_every_results_file_is_in_the_map():
    text = _text(MAP)
    missing = [str(p.relative_to(BENCH / "results")) for p in _results_files()
               if p.name != "notes.md" and not _named(str(p.relative_to(BENCH / "results")), text)]
    assert missing == []


def test_every_script_is_in_the_map():
    text = _text(MAP)
    scripts = [p.name for p in sorted(BENCH.iterdir()) if p.suffix in (".py", ".sh")]
    assert [s for s in scripts if not _named(s, text) and not _named(f"bench/{s}", text)] == []


def test_every_file_the_map_and_the_docs_cite_exists():
    cited = {m for path in [MAP, *DOCS] for m in CITED.findall(_text(path))}
    results = {p.name for p in _results_files()} | {str(p.relative_to(BENCH / "results")) for p in _results_files()}
    named_results = set(re.findall(r"`([\w.\-/]+\.(?:md|tsv|jsonl|json|txt))`", _text(MAP)))
    missing = sorted(c for c in cited if not (REPO / c).exists())
    missing += sorted(n for n in named_results
                      if n not in results and not (REPO / n).exists() and not (BENCH / n).exists())
    assert missing == []
