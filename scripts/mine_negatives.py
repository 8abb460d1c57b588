#!/usr/bin/env python
"""Write a training JSONL with BM25 negatives or hard negatives mined from a trained retriever.

    python scripts/mine_negatives.py --retriever bm25 --beir DIR --output bm25.jsonl
    python scripts/mine_negatives.py --retriever outputs/retriever --beir DIR --depth 200 --output hard.jsonl

See maeir/cli/mine_negatives.py.
"""

from maeir.cli.commands import mine_negatives as main

if __name__ == "__main__":
    main()
