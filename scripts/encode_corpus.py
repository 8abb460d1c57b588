#!/usr/bin/env python
"""Encode one shard of a corpus (BEIR or MS MARCO) and save the embeddings with their ids.

    python scripts/encode_corpus.py --model D --beir DIR --shard 0 --num_shards 4 --output emb/corpus.0

See maeir/cli/encode_corpus.py.
"""

from maeir.cli.commands import encode_corpus as main

if __name__ == "__main__":
    main()
