"""Errors for bad user input: every message names the file, the line and the field at fault."""

from __future__ import annotations

import os


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
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path or "<input>"
        if line is not None:
            where += f":{line}"
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class ConfigError(InputError):
    """A bad key or value in a YAML/JSON config file or on the command line."""


class CorpusFormatError(InputError):
    """A malformed record in a data file (text corpus, TSV, JSONL)."""
