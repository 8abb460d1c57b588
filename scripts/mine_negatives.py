#!/usr/bin/env python
"""Write a training JSONL with BM25 negatives or hard negatives mined from a trained retriever.

    python scripts/mine_negatives.py --retriever bm25 --beir DIR --output bm25.jsonl
    python scripts/mine_negatives.py --retriever outputs/retriever --beir DIR --depth 200 --output hard.jsonl

See maeir/drivers/mine_negatives.py.
"""

import sys

from maeir.drivers import run_cli
from maeir.drivers.mine_negatives import main

if __name__ == "__main__":
    if status := run_cli(main):
        sys.exit(status)
