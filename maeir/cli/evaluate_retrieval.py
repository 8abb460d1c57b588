"""Driver of ``scripts/evaluate_retrieval.py``: encode, index, search and score one split.

    python scripts/evaluate_retrieval.py --model D|minilm|bm25 --beir DIR --split test --output_dir OUT

Writes ``OUT/run.trec`` (the model's own view), ``OUT/run.{dense,sparse,hybrid}.trec`` for a hybrid
model, and ``OUT/metrics.json`` with ``MRR@10``, ``nDCG@10``, ``R@100``, ``R@1000`` of the main run at
the top level plus every view under ``"views"``; prints a table. BM25 goes through the very same
evaluator. Without ``--beir`` (or MS MARCO files) the embedded benchmark is used.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..config_file import parse_args, parse_key_values
from ..data.retrieval import RetrievalData, load_beir, load_msmarco
from ..datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark
from ..errors import ConfigError
from ..io_utils import atomic_write_json
from ..retrieval.arguments import EvaluationArguments
from ..retrieval.bm25 import BM25Retriever
from ..retrieval.encode import Embeddings
from ..retrieval.evaluation import evaluate_run, format_table, limit_queries, write_trec_run
from ..retrieval.loading import load_bi_encoder
from ..retrieval.search import retrieve

logger = logging.getLogger(__name__)


def load_data(args: Any, split: str) -> RetrievalData:
    """The split of ``--beir`` / the MS MARCO files / the embedded benchmark."""
    msmarco = (args.msmarco_collection, args.msmarco_queries, args.msmarco_qrels)
    if any(msmarco):
        if not all(msmarco):
            raise ConfigError(
                None, None, "MS MARCO needs --msmarco_collection, --msmarco_queries and --msmarco_qrels"
            )
        return load_msmarco(*msmarco)
    if args.beir:
        return load_beir(args.beir, split, allow_missing_documents=args.allow_missing_documents)

    return load_beir(embedded_retrieval_benchmark(), split, name="embedded-enwiki-ict")


def evaluate(
    args: EvaluationArguments, data: RetrievalData | None = None, model=None, tokenizer=None
) -> dict:
    """Run the evaluation described by ``args`` (``model`` / ``data`` may be given already loaded)."""
    measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    data = limit_queries(data if data is not None else load_data(args, args.split), args.max_queries)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "model": args.model,
        "data": data.name,
        "split": args.split,
        "num_documents": len(data.corpus),
    }
    start = time.perf_counter()
    if args.model.lower() == "bm25":
        stopwords = None if (args.bm25_stopwords or "none").lower() == "none" else args.bm25_stopwords
        bm25 = BM25Retriever(k1=args.bm25_k1, b=args.bm25_b, stopwords=stopwords)
        runs = {"bm25": bm25.index(data.corpus).search(data.queries, k=args.k)}
        main, report["settings"] = "bm25", bm25.settings()
        report["timings"] = {"total_s": time.perf_counter() - start}
    else:
        if model is None:
            model, tokenizer = load_bi_encoder(args.model, **parse_key_values(args.recipe, source="--recipe"))
            if torch.cuda.is_available():
                model.cuda()
        corpus_embeddings = None
        if args.corpus_embeddings:
            shards = [Embeddings.load(p.strip()) for p in args.corpus_embeddings.split(",") if p.strip()]
            corpus_embeddings = Embeddings.concat(shards)
        result = retrieve(
            model, tokenizer, data, k=args.k, batch_size=args.batch_size, dtype=args.dtype,
            index_factory=args.index_factory, search_parameters=args.search_parameters,
            corpus_embeddings=corpus_embeddings, show_progress=args.show_progress,
        )  # fmt: skip
        runs, main = result["runs"], model.config.representation
        report["recipe"] = model.config.recipe()
        report["timings"] = {**result["timings"], "total_s": time.perf_counter() - start}
        if args.save_embeddings:
            result["corpus_embeddings"].save(out / "embeddings" / "corpus")
            result["query_embeddings"].save(out / "embeddings" / "queries")
    views = {}
    for view, run in runs.items():
        views[view] = evaluate_run(run, data.qrels, measures)
        if len(runs) > 1:
            write_trec_run(out / f"run.{view}.trec", run, tag=f"maeir-{view}")
    write_trec_run(out / "run.trec", runs[main], tag=f"maeir-{main}")
    report.update({m: views[main][m] for m in measures})
    report.update(
        num_queries=views[main]["num_queries"], queries_without_results=views[main]["queries_without_results"]
    )
    report["views"] = views
    report["main_view"] = main
    atomic_write_json(out / "metrics.json", report)
    rows = [
        {"system": f"{Path(os.fspath(args.model)).name or args.model} [{view}]", **views[view]}
        for view in views
    ]
    print(f"\n{data.name} / {args.split}: {report['num_queries']} queries, {len(data.corpus)} documents")
    print(format_table(rows, measures))
    return report


def main(argv: Sequence[str] | None = None) -> dict:
    """Parse arguments, evaluate, write ``run.trec`` and ``metrics.json``; return the report."""
    (args,) = parse_args((EvaluationArguments,), argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return evaluate(args)


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
