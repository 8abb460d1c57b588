"""Driver of ``scripts/mine_negatives.py``: BM25 or model-mined hard negatives, written as training JSONL.

    python scripts/mine_negatives.py --retriever bm25 --beir DIR --split train --output bm25.jsonl
    python scripts/mine_negatives.py --retriever RUN_DIR --beir DIR --split train --output hard.jsonl \\
        --depth 200 --num_negatives 30

Every judged-relevant document of a query is excluded (docs/methods.md#cot-mae-v2: top 200, every qrels
positive excluded, sampled). The output feeds ``scripts/finetune_retriever.py --train_file``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from ..config_file import parse_args
from ..data.retrieval import RetrievalData, load_beir, training_records, write_training_jsonl
from ..datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark
from ..retrieval.arguments import MiningArguments
from ..retrieval.loading import load_bi_encoder
from ..retrieval.negatives import bm25_negatives, retriever_negatives

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> dict:
    """Mine negatives and write the training JSONL; returns ``{"output", "queries", "mean_negatives"}``."""
    (args,) = parse_args((MiningArguments,), argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    folder = args.beir
    if folder is None:
        folder = embedded_retrieval_benchmark()
    data = load_beir(folder, args.split, allow_missing_documents=args.allow_missing_documents)
    if args.max_queries is not None:
        keep = list(data.qrels)[: args.max_queries]
        data = RetrievalData(data.corpus, {q: data.queries[q] for q in keep}, {q: data.qrels[q] for q in keep},
                             data.name, data.info)  # fmt: skip
    if args.retriever.lower() == "bm25":
        negatives = bm25_negatives(data, depth=args.depth, num_negatives=args.num_negatives, seed=args.seed)
    else:
        model, tokenizer = load_bi_encoder(args.retriever)
        if torch.cuda.is_available():
            model.cuda()
        negatives = retriever_negatives(
            model, tokenizer, data, depth=args.depth, num_negatives=args.num_negatives, skip_top=args.skip_top,
            seed=args.seed, batch_size=args.batch_size, index_factory=args.index_factory,
        )  # fmt: skip
    records = training_records(data, negatives)
    count = write_training_jsonl(args.output, records)
    mean = sum(len(r["negatives"]) for r in records) / max(1, len(records))
    logger.info("wrote %d training examples (%.1f negatives each on average) to %s", count, mean, args.output)
    return {"output": args.output, "queries": count, "mean_negatives": mean}


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
