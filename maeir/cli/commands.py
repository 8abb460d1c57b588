"""Console-script entry points (declared in ``pyproject.toml``; ``scripts/*.py`` call them too).

Each function runs one command's ``main`` through :func:`maeir.cli.run_command`: bad input, a full
disk and Ctrl-C end with one line on stderr and a non-zero exit status instead of a traceback. The
command module is imported only when its command runs.
"""

from __future__ import annotations

import importlib
import sys

from . import run_command


def _run(module: str, function: str = "main") -> None:
    run_command(getattr(importlib.import_module(module), function))


def pretrain() -> None:
    _run("maeir.cli.pretrain")


def finetune_retriever() -> None:
    _run("maeir.cli.finetune_retriever")


def evaluate_retrieval() -> None:
    _run("maeir.cli.evaluate_retrieval")


def encode_corpus() -> None:
    _run("maeir.cli.encode_corpus")


def mine_negatives() -> None:
    _run("maeir.cli.mine_negatives")


def retrieval_pipeline() -> None:
    _run("maeir.cli.retrieval_pipeline")


def train_reranker() -> None:
    _run("maeir.cli.train_reranker")


def rerank() -> None:
    _run("maeir.cli.rerank")


def distill_md2pr() -> None:
    _run("maeir.cli.distill_md2pr")


def classification() -> None:
    _run("maeir.cli.classification")


def response_selection() -> None:
    _run("maeir.cli.response_selection")


def finetune_response_selection() -> None:
    _run("maeir.cli.response_selection", "finetune_main")


def evaluate_response_selection() -> None:
    _run("maeir.cli.response_selection", "evaluate_main")


def effective_rank() -> None:
    _run("maeir.cli.effective_rank")


def push_to_hub() -> None:
    main = importlib.import_module("maeir.cli.push_to_hub").main  # returns its exit status itself
    if status := main():
        sys.exit(status)


def study() -> None:
    _run("maeir.cli.study")
