#!/usr/bin/env python
"""Retrieval stack benchmark: encoding throughput, search latency / QPS, zero-shot quality vs BM25.

    python benchmarks/bench_retrieval.py --model outputs/retriever_cpu \\
        --beir cranfield=../shared/data/cranfield/beir --beir cisi=../shared/data/cisi/beir \\
        --output benchmarks/results/retrieval_cpu.json

1. **Encoding throughput**: maeir's ``encode_texts`` (length-sorted batches) vs sentence-transformers'
   ``SentenceTransformer.encode`` on the same model (all-MiniLM-L6-v2) and the same real passages,
   same batch size, one timed run each after a warm-up batch; plus maeir's hybrid (dense + SPLADE)
   encoding of the fine-tuned model.
2. **Search latency and QPS** at 10k and 100k documents: dense FAISS (``Flat`` and ``HNSW32``) over
   384-d unit vectors, and the sparse inverted index. The 10k/100k collections are synthetic (the
   corpus cannot be encoded at that size on 2 CPU cores): dense vectors are random unit vectors;
   sparse vectors copy the number of non-zeros and the term distribution of real SPLADE vectors of
   the fine-tuned model on real passages. Latency = one query at a time (median, p95); QPS = all
   queries in batches.
3. **Zero-shot quality** on each ``--beir NAME=DIR`` (e.g. Cranfield and CISI, by path): BM25 (k1 0.9,
   b 0.4, the reference setting of ``../shared/data/README.md``), all-MiniLM-L6-v2 as shipped, and
   the model fine-tuned on the embedded benchmark (each of its views; passages up to 256 tokens, the
   shipped model's own limit, instead of the 96 it was trained with), nDCG@10 / R@100, all through
   the same evaluator.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file (python benchmarks/bench_retrieval.py): make ``benchmarks`` importable
    sys.path.insert(0, str(REPO))
from benchmarks.common import machine_info, write_report  # noqa: E402


def real_passages(count: int) -> list[str]:
    from maeir.datasets.embedded import wikipedia_passages

    return [p["text"] for p in wikipedia_passages(64)][:count]


def bench_encoding(model_path: str | None, texts: list[str], batch_size: int) -> dict:
    from sentence_transformers import SentenceTransformer

    from maeir.modeling.backbone import resolve_backbone_path
    from maeir.retrieval.encode import encode_texts
    from maeir.retrieval.loading import load_bi_encoder

    minilm = resolve_backbone_path("minilm")
    model, tokenizer = load_bi_encoder(minilm)
    st = SentenceTransformer(minilm, device="cpu")
    out: dict = {"texts": len(texts), "batch_size": batch_size, "model": "all-MiniLM-L6-v2"}
    encode_texts(model, tokenizer, texts[:batch_size], "passage", batch_size=batch_size, show_progress=False)
    st.encode(texts[:batch_size], batch_size=batch_size)
    start = time.perf_counter()
    ours = encode_texts(model, tokenizer, texts, "passage", batch_size=batch_size, show_progress=False)[
        "dense"
    ]
    out["maeir_texts_per_s"] = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    theirs = st.encode(texts, batch_size=batch_size, convert_to_numpy=True)
    out["sentence_transformers_texts_per_s"] = len(texts) / (time.perf_counter() - start)
    out["ratio_maeir_over_st"] = out["maeir_texts_per_s"] / out["sentence_transformers_texts_per_s"]
    out["max_abs_difference"] = float(np.abs(ours - theirs).max())
    if model_path:
        hybrid, hybrid_tokenizer = load_bi_encoder(model_path)
        if hybrid.config.uses_sparse:
            start = time.perf_counter()
            reps = encode_texts(
                hybrid, hybrid_tokenizer, texts, "passage", batch_size=batch_size, show_progress=False
            )
            out["maeir_hybrid_texts_per_s"] = len(texts) / (time.perf_counter() - start)
            out["hybrid_mean_nonzeros"] = float(np.diff(reps["sparse"].crow_indices().numpy()).mean())
    return out


def _sparse_profile(model_path: str | None, texts: list[str], queries: list[str]) -> dict:
    """Non-zero counts and term frequencies of real SPLADE vectors (passages and queries)."""
    from maeir.retrieval.encode import encode_texts
    from maeir.retrieval.loading import load_bi_encoder

    model, tokenizer = load_bi_encoder(model_path)
    docs = encode_texts(model, tokenizer, texts, "passage", batch_size=32, show_progress=False)["sparse"]
    qs = encode_texts(model, tokenizer, queries, "query", batch_size=32, show_progress=False)["sparse"]
    vocab = docs.shape[1]
    freq = np.bincount(docs.col_indices().numpy(), minlength=vocab).astype(np.float64) + 1e-3
    return {
        "vocab": vocab,
        "doc_nnz": np.diff(docs.crow_indices().numpy()),
        "query_nnz": np.diff(qs.crow_indices().numpy()),
        "term_p": freq / freq.sum(),
        "doc_values": docs.values().numpy(),
        "query_values": qs.values().numpy(),
    }


def _synthetic_sparse(rows: int, nnz: np.ndarray, values: np.ndarray, profile: dict, rng) -> torch.Tensor:
    from maeir.retrieval.encode import rows_to_csr

    out = []
    for count in rng.choice(nnz, rows):
        cols = np.unique(rng.choice(profile["vocab"], int(count), p=profile["term_p"]))
        out.append(
            (torch.from_numpy(cols), torch.from_numpy(rng.choice(values, len(cols)).astype(np.float32)))
        )
    return rows_to_csr(out, profile["vocab"])


def bench_search(
    sizes: list[int], profile: dict | None, num_queries: int, k: int, seed: int = 0
) -> list[dict]:
    from maeir.retrieval.dense_index import DenseIndex
    from maeir.retrieval.sparse_index import SparseIndex, _csr_rows

    rng = np.random.default_rng(seed)
    results = []
    for size in sizes:
        docs = rng.normal(size=(size, 384)).astype(np.float32)
        docs /= np.linalg.norm(docs, axis=1, keepdims=True)
        queries = rng.normal(size=(num_queries, 384)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        ids = [str(i) for i in range(size)]
        for factory in ("Flat", "HNSW32"):
            start = time.perf_counter()
            index = DenseIndex(384, factory, "efSearch=128" if factory.startswith("HNSW") else None).build(
                docs, ids
            )
            build = time.perf_counter() - start
            latencies = []
            for q in range(num_queries):
                start = time.perf_counter()
                index.search(queries[q : q + 1], k)
                latencies.append(time.perf_counter() - start)
            start = time.perf_counter()
            index.search(queries, k, batch_size=256)
            qps = num_queries / (time.perf_counter() - start)
            results.append(_row("dense", factory, size, build, latencies, qps))
        if profile is not None:
            doc_vectors = _synthetic_sparse(size, profile["doc_nnz"], profile["doc_values"], profile, rng)
            query_vectors = _synthetic_sparse(
                num_queries, profile["query_nnz"], profile["query_values"], profile, rng
            )
            start = time.perf_counter()
            index = SparseIndex(doc_vectors, ids)
            build = time.perf_counter() - start
            latencies = []
            for q in range(num_queries):
                one = _csr_rows(query_vectors, q, q + 1)
                start = time.perf_counter()
                index.search(one, k)
                latencies.append(time.perf_counter() - start)
            start = time.perf_counter()
            index.search(query_vectors, k, batch_size=64)
            qps = num_queries / (time.perf_counter() - start)
            row = _row("sparse", "inverted index (torch CSR)", size, build, latencies, qps)
            row["postings"] = index.num_postings
            results.append(row)
    return results


def _row(kind: str, index: str, size: int, build: float, latencies: list[float], qps: float) -> dict:
    latencies_ms = sorted(x * 1000 for x in latencies)
    return {
        "kind": kind, "index": index, "documents": size, "build_s": round(build, 3),
        "latency_ms_median": round(statistics.median(latencies_ms), 3),
        "latency_ms_p95": round(latencies_ms[int(0.95 * (len(latencies_ms) - 1))], 3), "qps": round(qps, 1),
    }  # fmt: skip


def bench_quality(
    name: str, folder: str, model_path: str | None, batch_size: int, finetuned_recipe: str | None
) -> list[dict]:
    from maeir.cli.evaluate_retrieval import evaluate
    from maeir.retrieval.arguments import EvaluationArguments

    rows = []
    systems = [("BM25 (k1 0.9, b 0.4)", "bm25", None), ("all-MiniLM-L6-v2 (as shipped)", "minilm", None)]
    if model_path:
        label = "MiniLM fine-tuned on the embedded benchmark" + (
            f" ({finetuned_recipe})" if finetuned_recipe else ""
        )
        systems.append((label, model_path, finetuned_recipe or None))
    for label, model, recipe in systems:
        out = REPO / "outputs" / "bench_retrieval" / name / Path(model).name
        report = evaluate(EvaluationArguments(model=model, output_dir=str(out), beir=folder, split="test",
                                              batch_size=batch_size, show_progress=False, recipe=recipe))  # fmt: skip
        for view, metrics in report["views"].items():
            rows.append({"data": name, "system": label, "view": view, "nDCG@10": metrics["nDCG@10"],
                         "R@100": metrics["R@100"], "MRR@10": metrics["MRR@10"],
                         "queries": metrics["num_queries"], "seconds": round(report["timings"]["total_s"], 1)})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(REPO / "outputs/retriever_cpu"),
                        help="the MiniLM fine-tuned on the embedded benchmark (scripts/finetune_retriever.py)")  # fmt: skip
    parser.add_argument("--beir", action="append", default=[], help="NAME=DIR of a BEIR folder (repeatable)")
    parser.add_argument("--encode_texts", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: encoding,search,quality")
    parser.add_argument("--output", default=str(REPO / "benchmarks/results/retrieval_cpu.json"))
    parser.add_argument("--update", action="store_true", help="keep the parts of an existing --output file")
    parser.add_argument(
        "--finetuned_recipe",
        default="passage_max_length=256",
        help="inference-time recipe of the fine-tuned model on the --beir collections (their documents are longer "
        "than the 64-word training passages; 256 = all-MiniLM-L6-v2's own max length); '' keeps the trained one",
    )
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    model = args.model if args.model and Path(args.model).is_dir() else None
    previous = {}
    if args.update and Path(args.output).is_file():  # keep the parts this run skips
        previous = json.loads(Path(args.output).read_text(encoding="utf-8"))
    report: dict = {
        **previous,
        "machine": machine_info(
            torch.device("cpu"),
            cpus=os.cpu_count(),
            platform=platform.platform(),
            cuda=torch.cuda.is_available(),
        ),
        "model": model,
    }
    texts = real_passages(max(args.encode_texts, 600))
    if "encoding" not in skip:
        report["encoding"] = bench_encoding(model, texts[: args.encode_texts], args.batch_size)
        print(json.dumps(report["encoding"], indent=2))
        write_report(args.output, report)
    if "search" not in skip:
        profile = None
        if model is not None:
            from maeir.data.sentences import split_sentences

            queries = [split_sentences(t)[0] for t in texts[:200]]
            profile = _sparse_profile(model, texts[:400], queries)
            report["sparse_profile"] = {"doc_mean_nnz": float(profile["doc_nnz"].mean()),
                                        "query_mean_nnz": float(profile["query_nnz"].mean())}  # fmt: skip
        sizes = [int(s) for s in args.sizes.split(",") if s]
        report["search"] = bench_search(sizes, profile, args.queries, args.k)
        for row in report["search"]:
            print(row)
        write_report(args.output, report)
    if "quality" not in skip:
        report["quality"] = []
        for item in args.beir:
            name, _, folder = item.partition("=")
            report["quality"] += bench_quality(name, folder, model, args.batch_size, args.finetuned_recipe)
        lines = ["| data | system | view | nDCG@10 | R@100 | MRR@10 |", "|---|---|---|---:|---:|---:|"]
        for r in report["quality"]:
            lines.append(f"| {r['data']} | {r['system']} | {r['view']} | {r['nDCG@10']:.3f} | {r['R@100']:.3f} "
                         f"| {r['MRR@10']:.3f} |")  # fmt: skip
        print("\n".join(lines))
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
