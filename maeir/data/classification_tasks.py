"""What a GLUE-style classification or regression file holds: :class:`TaskSpec`, the GLUE presets, :func:`resolve_task`.

Two ways to describe a file:

- a GLUE task preset (``cola``, ``sst2``, ``mrpc``, ``rte``, ``stsb``, also ``qnli``, ``wnli``,
  ``qqp``, ``mnli``) that knows the layout of the files made by the standard
  ``download_glue_data.py`` (header or not, which columns, label values, metric config);
- a generic description: ``text_column``, optional ``text_pair_column``, ``label_column`` (header
  names, or 0-based column indices for a file without a header) and ``task_type``.

The files themselves are read by :mod:`maeir.data.classification`.
"""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError

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
