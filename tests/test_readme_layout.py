"""The README's Layout block and method table are checked against the tree (issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

import maeir.methods

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
LAYOUT = README[README.index("## Layout") :]
BLOCK = LAYOUT[LAYOUT.index("```") + 3 : LAYOUT.index("```", LAYOUT.index("```") + 3)]


def test_every_path_in_the_layout_block_exists():
    listed = re.findall(r"^(\S+/)\s", BLOCK, flags=re.M)
    assert listed, "no paths found in the Layout block"
    missing = [path for path in listed if not (REPO / path).is_dir()]
    assert not missing, f"README Layout lists folders that do not exist: {missing}"


def test_every_subpackage_of_maeir_is_in_the_layout_block():
    listed = set(re.findall(r"^(maeir/\S+?)/", BLOCK, flags=re.M))
    packages = {f"maeir/{p.parent.name}" for p in (REPO / "maeir").glob("*/__init__.py")}
    packages |= {f"maeir/{p.name}" for p in (REPO / "maeir").iterdir() if p.is_dir() and p.name == "metrics"}
    assert packages - listed == set(), f"maeir subpackages missing from README Layout: {packages - listed}"


def test_method_table_links_exist_and_cover_every_method_folder():
    table = LAYOUT[LAYOUT.index("| method |") :]
    links = re.findall(r"\]\(((?:maeir|configs)/[^)]+)\)", table)
    assert links
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, f"README method table links to missing paths: {missing}"
    folders = {p.name for p in (REPO / "maeir" / "methods").iterdir() if (p / "__init__.py").exists()}
    linked = {m.group(1) for m in re.finditer(r"\(maeir/methods/(\w+)\)", table)}
    assert folders == linked
    assert set(maeir.methods.METHODS) <= folders
