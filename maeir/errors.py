"""Errors for bad user input: every message names the file, the line and the field at fault.

An error about a field (``field=...``) without a file is located automatically: where the last
parsed config file set that field (:func:`maeir.config_file.parse_args` records the lines, method
fields as ``method_config.name``), else on the command line (``command line: argument --field``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

_CONFIG_SOURCES: dict[str, tuple[str, int | None]] = {}


def set_config_sources(sources: Mapping[str, tuple[str, int | None]]) -> None:
    """Record where each field of the current command came from: ``{field: (config file, line)}``."""
    _CONFIG_SOURCES.clear()
    _CONFIG_SOURCES.update(sources)


def config_source(field: str) -> tuple[str, int | None] | None:
    """The config file and line that set ``field`` (``a.b``: else where ``a`` was set), or None."""
    if field in _CONFIG_SOURCES:
        return _CONFIG_SOURCES[field]
    head = field.split(".", 1)[0]
    return _CONFIG_SOURCES.get(head)


class InputError(ValueError):
    """A malformed file or argument: ``path:line: field 'x': message``.

    ``line`` is 1-based; ``field`` is the record field or config key at fault (either may be None).
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        line: int | None,
        message: str,
        field: str | None = None,
    ) -> None:
        if path is None and line is None and field:
            path, line = config_source(field) or (None, None)
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.field = field
        self.message = message
        if self.path is None and field:
            head, _, rest = field.partition(".")
            where = f"command line: argument --{head}"
            what = f"field '{rest}': " if rest else ""
        else:
            where = self.path or "<input>"
            if line is not None:
                where += f":{line}"
            what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class ConfigError(InputError):
    """A bad key or value in a YAML/JSON config file or on the command line."""


class CorpusFormatError(InputError):
    """A malformed record in a data file (text corpus, TSV, JSONL)."""
