"""Citations stay inside the repository, and the ones that point into docs/ resolve.

Code and documents cite the upstream source of a fact, or a section of a document in docs/
(docs/sources.md collects the outside facts). The team's research notes were never part of
the repository, so nothing may cite them; a cited document must exist, a cited "§N" must be
a numbered section of it, and every dotted ``hcasim....`` target in docs/design-notes.md's
map must name something importable.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: Written so that this file does not match itself: each names a document or a path that is
#: not in the repository (the research notes, their folder, the machine's work tree).
FORBIDDEN = [
    re.compile(r"\b(?:ibsim|inband|mlx5[-]crypto)\.md\b"),
    re.compile(r"\bverbs[-]clients\b|\bmstflint[-]local\b"),
    re.compile(r"(?<![\w/])secure-host\.md\b"),  # docs/secure-host.md is ours; bare is the notes'
    re.compile(r"\bshared[/]"),
    re.compile(r"\breference[/]"),
    re.compile(r"\b[Rr]eference\s+§"),
    re.compile(r"\bsecure-host\s+reference\b"),
    re.compile(r"\bref\s+§"),
    re.compile(r"(?<![\w.])/work[/]"),
]

CITED_DOC = re.compile(r"\bdocs/([A-Za-z0-9_-]+\.md)\b")
#: A section citation such as "docs/sources.md §3.2"; also chains ("§9.1-§9.2", "§5.1, §7.3",
#: "§15.1 and §18") and a chain broken over a comment line ("docs/sources.md\n    #: §14.1").
CITED_SECTIONS = re.compile(
    r"\bdocs/(?P<doc>[A-Za-z0-9_-]+\.md)"
    r"(?P<chain>(?:[\s#:]*(?:,|and|-)?[\s#:]*§\d+(?:\.\d+)?\b)+)"
)
SECTION = re.compile(r"§(\d+(?:\.\d+)?)")
HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)?)\.? ", re.MULTILINE)
DOTTED = re.compile(r"`(hcasim(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")


def _text_files(*tops: Path) -> Iterator[Path]:
    for top in tops:
        if top.is_file():
            yield top
            continue
        for path in sorted(top.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            if path.suffix in {".so", ".pyc", ".pyd", ".o", ".db"}:
                continue
            yield path


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _sections(doc: Path) -> set[str]:
    return set(HEADING.findall(doc.read_text(encoding="utf-8")))


def test_nothing_cites_documents_outside_the_repository() -> None:
    bad = []
    tops = [ROOT / "src", ROOT / "tests", ROOT / "bench", DOCS, ROOT / "README.md"]
    for path in _text_files(*tops):
        text = _read(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in FORBIDDEN):
                bad.append(f"{_rel(path)}:{number}: {line.strip()}")
    assert not bad, "cites a document that is not in the repository:\n" + "\n".join(bad)


def test_cited_documents_exist() -> None:
    missing = []
    for path in _text_files(ROOT / "src", ROOT / "tests", DOCS, ROOT / "README.md"):
        text = _read(path)
        if text is None:
            continue
        for name in sorted(set(CITED_DOC.findall(text))):
            if not (DOCS / name).is_file():
                missing.append(f"{_rel(path)}: docs/{name}")
    assert not missing, "cites a missing document:\n" + "\n".join(missing)


def test_cited_sections_exist() -> None:
    known: dict[str, set[str]] = {}
    missing = []
    for path in _text_files(ROOT / "src", ROOT / "tests", DOCS, ROOT / "README.md"):
        text = _read(path)
        if text is None:
            continue
        for match in CITED_SECTIONS.finditer(text):
            doc = DOCS / match["doc"]
            if not doc.is_file():
                continue  # reported by test_cited_documents_exist
            sections = known.setdefault(doc.name, _sections(doc))
            for number in SECTION.findall(match["chain"]):
                if number not in sections:
                    missing.append(f"{_rel(path)}: docs/{doc.name} §{number}")
    assert not missing, "cites a section that does not exist:\n" + "\n".join(sorted(set(missing)))


def test_sources_sections_are_numbered_and_unique() -> None:
    numbers = HEADING.findall((DOCS / "sources.md").read_text(encoding="utf-8"))
    assert numbers, "docs/sources.md has no numbered sections"
    assert len(numbers) == len(set(numbers)), "docs/sources.md repeats a section number"


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            target = getattr(target, name)
        return target
    raise ModuleNotFoundError(dotted)


MAP_TARGETS = sorted(set(DOTTED.findall((DOCS / "design-notes.md").read_text(encoding="utf-8"))))


def test_design_notes_map_has_targets() -> None:
    assert len(MAP_TARGETS) > 20


@pytest.mark.parametrize("dotted", MAP_TARGETS)
def test_design_notes_map_target_resolves(dotted: str) -> None:
    try:
        _resolve(dotted)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"docs/design-notes.md names {dotted}, which does not resolve: {exc}")
