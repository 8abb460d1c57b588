#!/usr/bin/env python
"""Encode one shard of a corpus (BEIR or MS MARCO) and save the embeddings with their ids.

    python scripts/encode_corpus.py --model D --beir DIR --shard 0 --num_shards 4 --output emb/corpus.0

See maeir/drivers/encode_corpus.py.
"""

import sys

from maeir.drivers import run_cli
from maeir.drivers.encode_corpus import main

if __name__ == "__main__":
    if status := run_cli(main):
        sys.exit(status)
