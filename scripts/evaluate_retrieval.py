#!/usr/bin/env python
"""Encode, index (FAISS / inverted index), search and score a split; BM25 through the same evaluator.

    python scripts/evaluate_retrieval.py --model outputs/retriever --beir DIR --split test --output_dir D
    python scripts/evaluate_retrieval.py --model bm25 --beir DIR --split test --output_dir D
    python scripts/evaluate_retrieval.py --model minilm --beir scifact --split test --output_dir D

Writes D/run.trec and D/metrics.json (MRR@10, nDCG@10, R@100, R@1000). See maeir/cli/evaluate_retrieval.py.
"""

from maeir.cli.commands import evaluate_retrieval as main

if __name__ == "__main__":
    main()
