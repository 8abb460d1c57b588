"""Driver of ``scripts/encode_corpus.py``: encode one shard of a corpus and save it with its ids.

    python scripts/encode_corpus.py --model D --beir DIR --shard 0 --num_shards 4 --output emb/corpus.0
    python scripts/evaluate_retrieval.py --model D --beir DIR --corpus_embeddings emb/corpus.0,emb/corpus.1,...

Shards are contiguous slices of the corpus in file order, so they can run on different machines.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..config_file import parse_args, parse_key_values
from ..data.retrieval import read_beir_corpus, read_msmarco_collection
from ..errors import ConfigError
from ..retrieval.arguments import EncodeArguments
from ..retrieval.encode import encode_corpus
from ..retrieval.loading import load_bi_encoder

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> dict:
    """Encode the shard, save ``OUTPUT.safetensors`` + ``OUTPUT.ids.json``; returns a summary."""
    (args,) = parse_args((EncodeArguments,), argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)

    if bool(args.beir) == bool(args.msmarco_collection):
        raise ConfigError(None, None, "give exactly one of --beir and --msmarco_collection", field="beir")
    if args.beir:
        path = Path(args.beir) / "corpus.jsonl"
        corpus = read_beir_corpus(path if path.is_file() else Path(args.beir) / "corpus.jsonl.gz")
    else:
        corpus = read_msmarco_collection(args.msmarco_collection)
    model, tokenizer = load_bi_encoder(args.model, **parse_key_values(args.recipe, source="--recipe"))
    if torch.cuda.is_available():
        model.cuda()
    embeddings = encode_corpus(
        model, tokenizer, corpus, shard=args.shard, num_shards=args.num_shards, output=args.output,
        batch_size=args.batch_size, dtype=args.dtype,
    )  # fmt: skip
    logger.info("encoded %d documents into %s", len(embeddings), args.output)
    return {"output": args.output, "documents": len(embeddings)}


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
