"""Plain-text pre-training corpora: one text per line (``.txt``) or per JSON record (``.jsonl``/``.json``).

Every file is checked first, in plain Python and streaming, so that a bad record fails with a
:class:`~maeir.errors.CorpusFormatError` naming the file, the 1-based line and the field, instead of
an obscure error from deep inside ``datasets``/``pyarrow``. The checked file is then loaded with
``datasets.load_dataset("json" | "text", data_files=..., split="train")`` (local files only: no
network). The few valid files that ``datasets`` cannot read itself (a UTF-8 byte-order mark, blank
lines together with fields of mixed types, Unicode line separators inside a ``.txt`` line) are
loaded from a normalised copy that holds just the texts, cached under ``maeir``'s cache folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import datasets

from ..datasets.embedded import cache_dir, embedded_wikipedia_corpus
from ..errors import ConfigError, CorpusFormatError

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".text", ".cor")  # .cor: gensim's one-document-per-line corpora
JSON_SUFFIXES = (".jsonl", ".json")
_BOM = b"\xef\xbb\xbf"
# Characters inside a line that str.splitlines() (and so the ``text`` loader) treats as line breaks.
_EXTRA_LINE_BREAKS = ("\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


@dataclasses.dataclass
class CorpusCheck:
    """What the validation pass saw: records, and quirks that ``datasets`` does not read itself."""

    records: int = 0
    blank_lines: int = 0
    bom: bool = False
    odd_line_breaks: bool = False

    @property
    def needs_copy(self) -> bool:
        return self.bom or self.odd_line_breaks


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _lines(path: Path, check: CorpusCheck):
    """``(line_no, text)`` of each line, decoded strictly as UTF-8 (a leading BOM is noted and dropped)."""
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(_BOM):
                check.bom = True
                raw = raw[len(_BOM) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad = raw.rstrip(b"\r\n")[err.start : err.start + 4]
                raise CorpusFormatError(
                    path,
                    line_no,
                    f"invalid UTF-8 (byte {err.start + 1} of the line: {bad!r}); re-save the file as UTF-8",
                ) from None
            yield line_no, text.rstrip("\r\n")


def check_json_lines(path: str | os.PathLike, text_field: str = "text") -> CorpusCheck:
    """Check a JSON-lines corpus: every non-blank line a JSON object with a non-empty string ``text_field``."""
    path = Path(path)
    check = CorpusCheck()
    for line_no, line in _lines(path, check):
        if not line.strip():
            check.blank_lines += 1
            continue
        try:
            record = json.loads(line, parse_constant=_reject_constant)
        except json.JSONDecodeError as err:
            hint = ""
            if check.records == 0 and line.strip() in ("[", "{"):
                hint = " (expected JSON Lines: one complete JSON object per line, not a JSON array or an indented object)"
            raise CorpusFormatError(
                path, line_no, f"not valid JSON: {err.msg} at column {err.colno}{hint}"
            ) from None
        except ValueError as err:
            raise CorpusFormatError(path, line_no, f"not valid JSON: {err}") from None
        if not isinstance(record, dict):
            raise CorpusFormatError(
                path, line_no, f"expected a JSON object {{...}}, found {_json_type(record)}"
            )
        if text_field not in record:
            fields = ", ".join(repr(key) for key in list(record)[:8]) or "none"
            raise CorpusFormatError(
                path, line_no, f"missing (the record has fields: {fields})", field=text_field
            )
        value = record[text_field]
        if not isinstance(value, str):
            raise CorpusFormatError(
                path, line_no, f"expected a string, found {_json_type(value)}", field=text_field
            )
        if not value.strip():
            raise CorpusFormatError(path, line_no, "empty text", field=text_field)
        check.records += 1
    if check.records == 0:
        raise CorpusFormatError(path, None, "the corpus is empty: no JSON records")
    return check


def check_text_lines(path: str | os.PathLike) -> CorpusCheck:
    """Check a one-text-per-line corpus: valid UTF-8 with at least one non-empty line."""
    path = Path(path)
    check = CorpusCheck()
    for _line_no, line in _lines(path, check):
        if not line.strip():
            check.blank_lines += 1
            continue
        if any(ch in line for ch in _EXTRA_LINE_BREAKS):
            check.odd_line_breaks = True
        check.records += 1
    if check.records == 0:
        raise CorpusFormatError(path, None, "the corpus is empty: no non-empty lines")
    return check


def _normalised_texts(path: Path, is_json: bool, text_field: str):
    check = CorpusCheck()
    for _line_no, line in _lines(path, check):
        if not line.strip():
            continue
        yield json.loads(line)[text_field] if is_json else line


def _normalised_copy(path: Path, is_json: bool, text_field: str) -> Path:
    """A JSON-lines copy ``{"text": ...}`` of the texts, cached under ``maeir``'s cache folder.

    Keyed by the file's resolved path, size and modification time, so ``datasets`` finds its Arrow
    cache again on the next load of the same unchanged file.
    """
    stat = path.stat()
    key = hashlib.sha256(
        f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{text_field}".encode()
    ).hexdigest()[:20]
    copy = cache_dir() / "corpora" / f"{path.stem}-{key}.jsonl"
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{copy.name}.", suffix=".tmp", dir=copy.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                for text in _normalised_texts(path, is_json, text_field):
                    handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
            os.replace(tmp, copy)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return copy


def load_text_corpus(
    path: str | os.PathLike | None = None,
    text_field: str = "text",
    max_samples: int | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """A corpus as a :class:`datasets.Dataset` with the single column ``text``.

    ``path`` None: the embedded Wikipedia passages (:func:`maeir.datasets.embedded.embedded_wikipedia_corpus`);
    ``.txt`` (also ``.text``, ``.cor``): one example per non-empty line; ``.jsonl``/``.json`` (JSON lines): the ``text_field`` of
    each record. ``max_samples`` keeps the first examples. ``cache_dir`` is the ``datasets`` cache.
    Raises :class:`~maeir.errors.CorpusFormatError` (file, line, field) for a malformed or empty file.
    """
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise ConfigError(
            None, None, f"must be a positive integer or None, got {max_samples!r}", field="max_samples"
        )
    if not isinstance(text_field, str) or not text_field:
        raise ConfigError(None, None, f"must be a non-empty string, got {text_field!r}", field="text_field")
    if path is None:
        path, text_field = embedded_wikipedia_corpus(), "text"
    path = Path(path)
    if not path.exists():
        raise CorpusFormatError(path, None, "corpus file not found")
    if not path.is_file():
        raise CorpusFormatError(path, None, "not a file (expected a .txt, .jsonl or .json corpus file)")
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        is_json = True
        check = check_json_lines(path, text_field)
    elif suffix in TEXT_SUFFIXES:
        is_json = False
        check = check_text_lines(path)
    else:
        raise CorpusFormatError(
            path,
            None,
            f"unsupported corpus file type {suffix or '(none)'!r}: use .txt (one text per line) or .jsonl/.json (one JSON object per line)",
        )
    cache = os.fspath(cache_dir) if cache_dir is not None else None

    dataset = None
    if not check.needs_copy:
        try:
            dataset = datasets.load_dataset(
                "json" if is_json else "text", data_files=str(path.resolve()), split="train", cache_dir=cache
            )
        except Exception as err:  # the file is valid (checked above): a datasets/pyarrow reader quirk
            logger.info("datasets could not read %s directly (%s); loading a normalised copy", path, err)
    if dataset is None:
        copy = _normalised_copy(path, is_json, text_field)
        dataset = datasets.load_dataset("json", data_files=str(copy), split="train", cache_dir=cache)
        field = "text"
    else:
        field = text_field if is_json else "text"

    dataset = dataset.select_columns([field])
    if field != "text":
        dataset = dataset.rename_column(field, "text")
    if not is_json and check.blank_lines:
        dataset = dataset.filter(lambda batch: [bool(t.strip()) for t in batch["text"]], batched=True)
    if len(dataset) != check.records:  # never expected: the check and the reader disagree
        raise CorpusFormatError(
            path, None, f"read {len(dataset)} examples but the file holds {check.records} records"
        )
    if max_samples is not None and max_samples < len(dataset):
        dataset = dataset.select(range(max_samples))
    return dataset
