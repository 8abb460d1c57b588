"""Locating the data files of installed PyPI packages, and where maeir caches derived data.

The embedded data (``pip install maeir[data]``) is read from files that ship inside other packages'
wheels; they are located through the import machinery without importing those packages.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
from pathlib import Path

DATA_EXTRA_HINT = "pip install maeir[data]"
WIKI_PACKAGE = "gensim"
LEE_PARTS = ("test", "test_data", "lee_background.cor")


class MissingDataPackageError(ImportError):
    """An optional package that holds embedded data (``maeir[data]``) is not installed."""


def cache_dir() -> Path:
    """Where maeir caches derived data: ``$MAEIR_CACHE``, else ``~/.cache/maeir``."""
    env = os.environ.get("MAEIR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "maeir"


def package_file(package: str, *parts: str) -> Path:
    """Path of the data file ``parts`` inside the installed ``package`` (which is not imported).

    Raises :class:`MissingDataPackageError` naming the pip extra when the package is missing, and
    :class:`FileNotFoundError` when the package is there but the file is not.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise MissingDataPackageError(
            f"the embedded data needs the Python package {package!r}, which is not installed: "
            f"run `{DATA_EXTRA_HINT}` (or `pip install {package}`)"
        )
    roots: list[Path] = []
    if spec.submodule_search_locations:
        roots = [Path(location) for location in spec.submodule_search_locations]
    elif spec.origin:
        roots = [Path(spec.origin).parent]
    for root in roots:
        candidate = root.joinpath(*parts)
        if candidate.is_file():
            return candidate
    if not roots:  # installed in an unusual way (zip import ...): ask importlib.resources (imports it)
        try:
            resource = importlib.resources.files(package).joinpath(*parts)
            if resource.is_file() and isinstance(resource, Path):
                return resource
        except (ImportError, TypeError, FileNotFoundError):
            pass
    where = ", ".join(str(root) for root in roots) or "?"
    raise FileNotFoundError(
        f"{'/'.join(parts)} not found in the installed package {package!r} ({where}); "
        f"reinstall it with `pip install --force-reinstall {package}` or `{DATA_EXTRA_HINT}`"
    )


def lee_corpus_path() -> Path:
    """gensim's ``lee_background.cor``: 300 short news documents, one per line (plain text)."""
    return package_file(WIKI_PACKAGE, *LEE_PARTS)
