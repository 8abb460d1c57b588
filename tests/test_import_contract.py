"""The package layout's import contracts (``.importlinter``): independent methods, shared ground below them,
commands (maeir.cli) on top."""

from __future__ import annotations

import configparser
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import maeir

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    pytest.importorskip("importlinter", reason="import-linter is not installed (pip install import-linter)")
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    result = subprocess.run(
        [lint, "--config", str(REPO / ".importlinter")], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_cli_contract_lists_every_other_top_level_module():
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    listed = set(config["importlinter:contract:cli-on-top"]["source_modules"].split())
    top_level = {f"maeir.{m.name}" for m in pkgutil.iter_modules(maeir.__path__)} - {"maeir.cli"}
    assert listed == top_level


def test_no_library_file_is_over_450_lines():
    """The layout's size rule (issue 12): a module that grows past 450 lines is split by topic."""
    sizes = {str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
             for p in (REPO / "maeir").rglob("*.py")}  # fmt: skip
    assert len(sizes) > 50
    assert {path: n for path, n in sizes.items() if n > 450} == {}
