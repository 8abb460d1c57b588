"""Driver of ``scripts/rerank.py``: re-rank a TREC run with a cross-encoder and score it (docs/methods.md#md2pr).

    python scripts/rerank.py --model D --beir DIR --split test --run RUN.trec --output_dir OUT

Reads the first-stage run, scores the top ``--depth`` documents of each judged query with the ranker
(length-sorted batches), writes ``OUT/run.trec`` (re-ranked documents first, then, with
``--keep_tail``, the rest in first-stage order below them) and ``OUT/metrics.json`` in the layout of
``scripts/evaluate_retrieval.py``: the main metrics at the top level, every view (``rerank``,
``first_stage``) under ``"views"``. Metrics are computed by ``ir-measures`` on the run exactly as
written (scores rounded as in the file), so re-evaluating ``OUT/run.trec`` gives the same numbers.

Precomputed teacher scores for ``scripts/distill_md2pr.py --teacher_scores_run``: re-rank the training
split's candidates with ``--all_queries --score_judged --depth 100`` (every query of the run, and every
judged positive scored too; the metrics of such a run are not an evaluation).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..config_file import parse_args
from ..data.retrieval import RetrievalData
from ..errors import CorpusFormatError
from ..io_utils import atomic_write_json
from ..methods.md2pr.arguments import RerankArguments
from ..retrieval.evaluation import evaluate_run, format_table, limit_queries, read_trec_run, write_trec_run
from ..retrieval.modeling_cross_encoder import load_cross_encoder, score_pairs
from .evaluate_retrieval import load_data

logger = logging.getLogger(__name__)
TAIL_GAP = 1.0  # tail documents score below the lowest re-ranked score by at least this
TAIL_STEP = 1e-3  # and keep their first-stage order with this spacing (written with 6 decimals)


def top_documents(run: Mapping[str, Mapping[str, float]], qid: str) -> list[str]:
    """Documents of ``qid`` by descending first-stage score (ties: by id, as ``write_trec_run``)."""
    return [d for d, _ in sorted(run.get(qid, {}).items(), key=lambda item: (-item[1], item[0]))]


def rerank_run(
    model,
    tokenizer,
    recipe,
    data: RetrievalData,
    run: Mapping[str, Mapping[str, float]],
    depth: int = 100,
    keep_tail: bool = True,
    batch_size: int = 64,
    dtype: str = "auto",
    queries: Sequence[str] | None = None,
    show_progress: bool = False,
    run_path: str | None = None,
    extra: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, float]]:
    """The re-ranked run of ``queries`` (default: every query of ``data`` that ``run`` holds).

    ``extra`` ``{query: [doc, ...]}`` adds documents to score beside the top ``depth`` (teacher-score
    runs of a training split need every positive scored, even one the first stage missed).
    """

    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    queries = [
        q for q in (queries if queries is not None else data.queries) if q in run and q in data.queries
    ]
    pairs_q, pairs_p, owners = [], [], []
    for qid in queries:
        candidates = top_documents(run, qid)[:depth]
        candidates += [d for d in (extra or {}).get(qid, []) if d not in candidates]
        for doc in candidates:
            if doc not in data.corpus:
                raise CorpusFormatError(
                    run_path, None, f"document {doc!r} of query {qid!r} is not in the corpus"
                )
            pairs_q.append(data.queries[qid])
            pairs_p.append(data.corpus[doc])
            owners.append((qid, doc))
    scores = score_pairs(model, tokenizer, recipe, pairs_q, pairs_p, batch_size=batch_size, dtype=dtype,
                         show_progress=show_progress)  # fmt: skip
    out: dict[str, dict[str, float]] = {q: {} for q in queries}
    for (qid, doc), score in zip(owners, scores.tolist()):
        out[qid][doc] = float(score)
    if keep_tail:
        for qid in queries:
            tail = [d for d in top_documents(run, qid)[depth:] if d not in out[qid]]
            if not tail:
                continue
            floor = min(out[qid].values()) - TAIL_GAP if out[qid] else 0.0
            for rank, doc in enumerate(tail):
                out[qid][doc] = floor - rank * TAIL_STEP
    return out


def _judged(data: RetrievalData) -> dict[str, list[str]]:
    return {q: [d for d, r in docs.items() if r > 0 and d in data.corpus] for q, docs in data.qrels.items()}


def rerank(
    args: RerankArguments, model=None, tokenizer=None, recipe=None, data: RetrievalData | None = None
) -> dict:
    """Run the re-ranking described by ``args`` (model / data may be given already loaded); returns the report."""

    measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    data = data if data is not None else load_data(args, args.split)
    if not args.all_queries:
        data = limit_queries(data, args.max_queries)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        model, tokenizer, recipe = load_cross_encoder(args.model)
        if torch.cuda.is_available():
            model.cuda()
    first_stage = read_trec_run(args.run)
    if args.all_queries:
        queries = [q for q in first_stage if q in data.queries]
        if args.max_queries is not None:
            queries = queries[: args.max_queries]
    else:
        queries = [q for q in data.qrels if q in data.queries]
    start = time.perf_counter()
    reranked = rerank_run(
        model, tokenizer, recipe, data, first_stage, depth=args.depth, keep_tail=args.keep_tail,
        batch_size=args.batch_size, dtype=args.dtype, queries=queries, show_progress=args.show_progress,
        run_path=args.run, extra=_judged(data) if args.score_judged else None,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    path = write_trec_run(out / "run.trec", reranked, tag="maeir-rerank")
    written = read_trec_run(path)  # evaluate exactly what the file says
    judged = {q: data.qrels[q] for q in queries if q in data.qrels}
    views = {
        "rerank": evaluate_run(written, judged, measures),
        "first_stage": evaluate_run({q: first_stage.get(q, {}) for q in queries}, judged, measures),
    }
    pairs = sum(min(args.depth, len(first_stage.get(q, {}))) for q in queries)
    report: dict[str, Any] = {
        "model": args.model,
        "first_stage_run": args.run,
        "data": data.name,
        "split": args.split,
        "num_documents": len(data.corpus),
        "depth": args.depth,
        "keep_tail": args.keep_tail,
        "score_judged": args.score_judged,
        **{m: views["rerank"][m] for m in measures},
        "num_queries": views["rerank"]["num_queries"],
        "queries_without_results": views["rerank"]["queries_without_results"],
        "views": views,
        "main_view": "rerank",
        "recipe": recipe.to_dict() if recipe is not None else None,
        "timings": {
            "rerank_s": seconds,
            "pairs": pairs,
            "pairs_per_s": pairs / seconds if seconds > 0 else None,
        },
    }
    atomic_write_json(out / "metrics.json", report)
    rows = [{"system": f"{Path(args.run).name} [first stage]", **views["first_stage"]},
            {"system": f"{Path(args.model).name or args.model} [rerank top {args.depth}]", **views["rerank"]}]  # fmt: skip
    print(f"\n{data.name} / {args.split}: {report['num_queries']} queries, {len(data.corpus)} documents")
    print(format_table(rows, measures))
    return report


def main(argv: Sequence[str] | None = None) -> dict:
    """Parse arguments, re-rank, write ``run.trec`` and ``metrics.json``; return the report."""
    (args,) = parse_args((RerankArguments,), sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return rerank(args)


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
