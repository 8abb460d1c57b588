#!/usr/bin/env python
"""Encode, index (FAISS / inverted index), search and score a split; BM25 through the same evaluator.

    python scripts/evaluate_retrieval.py --model outputs/retriever --beir DIR --split test --output_dir D
    python scripts/evaluate_retrieval.py --model bm25 --beir DIR --split test --output_dir D
    python scripts/evaluate_retrieval.py --model minilm --beir scifact --split test --output_dir D

Writes D/run.trec and D/metrics.json (MRR@10, nDCG@10, R@100, R@1000). See maeir/drivers/evaluate_retrieval.py.
"""

import sys

from maeir.drivers import run_cli
from maeir.drivers.evaluate_retrieval import main

if __name__ == "__main__":
    if status := run_cli(main):
        sys.exit(status)
