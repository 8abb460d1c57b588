"""Every ``docs/<file>.md#anchor`` cited in the code, configs, tests and README points at a real heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("maeir", "scripts", "configs", "tests")
SUFFIXES = {".py", ".yaml", ".yml", ".md", ".txt", ".jinja", ".cfg", ".toml"}
LINK = re.compile(r"docs/([\w.-]+\.md)#([\w-]+)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def github_anchor(heading: str) -> str:
    """GitHub's rule: lowercase, drop punctuation other than ``-`` / ``_``, spaces to ``-``."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated heading gets ``-1``, ``-2``, ... as on GitHub)."""
    seen: dict[str, int] = {}
    result = set()
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match:
            anchor = github_anchor(match.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def cited_links(root: Path = ROOT) -> list[tuple[str, str, str]]:
    """``(where, file, anchor)`` for every ``docs/<file>.md#anchor`` in the sources and the README."""
    paths = [root / "README.md"]
    for folder in SOURCES:
        paths += sorted(p for p in (root / folder).rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    links = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in LINK.finditer(line):
                links.append((f"{path.relative_to(root)}:{number}", match.group(1), match.group(2)))
    return links


def broken_links(links, docs: Path = ROOT / "docs") -> list[str]:
    broken = []
    for where, name, anchor in links:
        target = docs / name
        if not target.is_file():
            broken.append(f"{where}: docs/{name} does not exist")
        elif anchor not in anchors(target.read_text(encoding="utf-8")):
            broken.append(f"{where}: docs/{name} has no heading with anchor #{anchor}")
    return broken


def test_github_anchor_rule():
    assert github_anchor("CoT-MAE v2") == "cot-mae-v2"
    assert github_anchor("Shared ground") == "shared-ground"
    assert github_anchor("Methods: what maeir does, and why") == "methods-what-maeir-does-and-why"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_the_code_cites_the_docs():
    links = cited_links()
    assert len(links) > 50  # the design decisions are cited, not only written down
    assert {name for _, name, _ in links} >= {"methods.md"}


def test_every_cited_anchor_exists():
    broken = broken_links(cited_links())
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("target", ["methods.md#no-such-section", "no_such_file.md#dial-mae"])
def test_a_bad_link_is_reported(target, tmp_path):
    (tmp_path / "scripts").mkdir()
    # Assembled here so that this file itself cites no broken link.
    (tmp_path / "README.md").write_text(f"see {'docs'}/{target}\n", encoding="utf-8")
    links = cited_links(tmp_path)
    assert len(links) == 1
    assert len(broken_links(links)) == 1
