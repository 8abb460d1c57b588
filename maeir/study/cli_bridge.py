"""The study runner's one door into the command-line drivers (:mod:`maeir.cli`).

Library code should not import the CLI, but a study runs every stage through the very drivers a user
runs (same argument parsing, validation and run folders), and for training those drivers' ``main(argv)``
is the only entry point today: the training loops live in the driver modules. Every such call is isolated here, imported lazily, so that the rest of
:mod:`maeir.study` imports no driver and a move of the drivers is one edit in this file.
"""

from __future__ import annotations

from typing import Any

import torch

from ..config_file import to_argv


def driver_argv(fields: dict[str, Any]) -> list[str]:
    """A driver's command line from a study's fields (:func:`maeir.config_file.to_argv`).

    ``bf16`` without CUDA adds ``use_cpu``: transformers then trains under CPU autocast (AMX where the
    processor has it) instead of refusing bf16.
    """
    if fields.get("bf16") and not torch.cuda.is_available():
        fields = {**fields, "use_cpu": True}
    return to_argv(fields)


def run_driver(name: str, fields: dict[str, Any], **kwargs: Any) -> Any:
    """Run the driver ``name`` in-process with ``fields`` as its command line (:func:`driver_argv`).

    ``name``: ``pretrain`` (returns the trainer), ``train_reranker``, ``finetune_response_selection``,
    ``classification``, ``finetune_retriever``, ``distill_md2pr``, ``mine_negatives``, ``evaluate_retrieval`` or
    ``rerank`` (their result dicts).
    """
    # library → CLI: these drivers' main(argv) is their only entry point (see the module docstring)
    if name == "pretrain":
        from ..cli.pretrain import main
    elif name == "train_reranker":
        from ..cli.train_reranker import main
    elif name == "finetune_response_selection":
        from ..cli.response_selection import finetune_main as main
    elif name == "classification":
        from ..cli.classification import main
    elif name == "finetune_retriever":
        from ..cli.finetune_retriever import main
    elif name == "distill_md2pr":
        from ..cli.distill_md2pr import main
    elif name == "mine_negatives":
        from ..cli.mine_negatives import main
    elif name == "evaluate_retrieval":
        from ..cli.evaluate_retrieval import main
    elif name == "rerank":
        from ..cli.rerank import main
    else:
        raise ValueError(f"unknown driver {name!r}")
    return main(driver_argv(fields), **kwargs)
