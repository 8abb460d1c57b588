"""Evaluation metrics that ship inside the package and load offline by path.

``load_metric("rte")`` returns an :class:`evaluate.EvaluationModule` built from
``maeir/metrics/glue/glue.py`` through ``evaluate.load(<folder>, config_name)``: a local path, so
nothing is looked up on the Hub and it works with ``HF_HUB_OFFLINE=1`` (checked with evaluate 0.4.6
and datasets 5.2). ``evaluate`` copies the script into its modules cache (``HF_MODULES_CACHE``,
default ``~/.cache/huggingface/modules``) and imports it from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import evaluate

GLUE_METRIC_PATH = str(Path(__file__).resolve().parent / "glue")
"""Folder of the ``evaluate`` GLUE metric script (``glue/glue.py``)."""

GLUE_METRIC_CONFIGS = (
    "cola",
    "sst2",
    "rte",
    "qnli",
    "wnli",
    "mnli",
    "mnli_matched",
    "mnli_mismatched",
    "hans",
    "ax",
    "mrpc",
    "qqp",
    "stsb",
    "classification",
    "regression",
)


def load_metric(config_name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load the packaged GLUE metric for ``config_name`` (a GLUE task, ``classification`` or ``regression``).

    Extra keyword arguments go to :func:`evaluate.load` (``keep_in_memory``, ``experiment_id``, ...).
    """
    if config_name not in GLUE_METRIC_CONFIGS:
        raise ValueError(f"unknown metric config {config_name!r}: choose from {list(GLUE_METRIC_CONFIGS)}")
    return evaluate.load(GLUE_METRIC_PATH, config_name, **kwargs)
