"""The drivers a study runs, by name: the very commands a user runs (same argument parsing, validation
and run folders), called in-process with the study's fields as their command line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ...config_file import to_argv
from .. import (
    classification,
    distill_md2pr,
    evaluate_retrieval,
    finetune_retriever,
    mine_negatives,
    pretrain,
    rerank,
    response_selection,
    train_reranker,
)

DRIVERS: dict[str, Callable[..., Any]] = {
    "pretrain": pretrain.main,  # returns the trainer; the others their result dicts
    "train_reranker": train_reranker.main,
    "finetune_response_selection": response_selection.finetune_main,
    "classification": classification.main,
    "finetune_retriever": finetune_retriever.main,
    "distill_md2pr": distill_md2pr.main,
    "mine_negatives": mine_negatives.main,
    "evaluate_retrieval": evaluate_retrieval.main,
    "rerank": rerank.main,
}


def driver_argv(fields: dict[str, Any]) -> list[str]:
    """A driver's command line from a study's fields (:func:`maeir.config_file.to_argv`).

    ``bf16`` without CUDA adds ``use_cpu``: transformers then trains under CPU autocast (AMX where the
    processor has it) instead of refusing bf16.
    """
    if fields.get("bf16") and not torch.cuda.is_available():
        fields = {**fields, "use_cpu": True}
    return to_argv(fields)


def run_driver(name: str, fields: dict[str, Any], **kwargs: Any) -> Any:
    """Run the driver ``name`` (a key of :data:`DRIVERS`) in-process with ``fields`` as its command line."""
    if name not in DRIVERS:
        raise ValueError(f"unknown driver {name!r}: choose from {sorted(DRIVERS)}")
    return DRIVERS[name](driver_argv(fields), **kwargs)
