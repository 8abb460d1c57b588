"""The MD2PR stage of ``scripts/demo.py`` (``make demo``): ranker, re-ranking, plain vs MD2PR student.

On the embedded inverse-cloze retrieval benchmark (real Wikipedia prose, shipped on PyPI):

1. BM25 (``bm25s``) on the test split, the first stage;
2. a small cross-encoder (the first 3 layers of all-MiniLM-L6-v2, ``configs/ranker_cpu.yaml``) trained
   on the train split, re-ranking BM25's top 10 (``scripts/rerank.py``);
3. the MiniLM dual encoder fine-tuned with plain contrastive learning (``scripts/finetune_retriever.py``)
   and with MD2PR from that ranker (``scripts/distill_md2pr.py``, ``configs/md2pr_cpu.yaml``): the same
   steps, batches, negatives, learning rate and seed; both evaluated on the test split.

Public API: :func:`md2pr_stage(out, beir, ...) -> rows` (rows of the demo's table).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark
from .distill_md2pr import main as distill_main
from .evaluate_retrieval import main as evaluate_main
from .finetune_retriever import main as finetune_main
from .rerank import main as rerank_main
from .train_reranker import main as ranker_main

REPO = Path(__file__).resolve().parents[2]
MEASURES = ("MRR@10", "nDCG@10", "R@100")


def _metrics(report: dict, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{m}": report[m] for m in MEASURES if m in report}


def md2pr_stage(
    out: Path,
    beir: str | Path | None = None,
    ranker_steps: int = 24,
    student_steps: int = 12,
    batch_size: int = 8,
    rerank_depth: int = 10,
    ranker_layers: int | None = 3,
) -> list[dict]:
    """Run the stage under ``out`` on the BEIR folder ``beir`` (default: the embedded benchmark); return rows.

    ``ranker_layers`` keeps the first layers of MiniLM for the ranker (a smaller, faster teacher;
    None: all six). The two students share every setting but the MD2PR terms.
    """
    out = Path(out)
    beir = str(beir or embedded_retrieval_benchmark())
    quiet = ["--disable_tqdm", "true"]
    rows = []

    t0 = time.time()
    bm25 = evaluate_main(
        ["--model", "bm25", "--beir", beir, "--output_dir", str(out / "bm25"), "--show_progress", "false"]
    )
    task = f"retrieval, embedded inverse-cloze test ({bm25['num_queries']} queries, {bm25['num_documents']} passages)"
    layers = ["--encoder_overrides", f"num_hidden_layers={ranker_layers}"] if ranker_layers else []
    ranker = ranker_main([str(REPO / "configs/ranker_cpu.yaml"), "--beir", beir, "--output_dir", str(out / "ranker"),
                          "--max_steps", str(ranker_steps), "--eval_split", "", *layers, *quiet])  # fmt: skip
    reranked = rerank_main(["--model", str(out / "ranker"), "--beir", beir, "--run", str(out / "bm25" / "run.trec"),
                            "--output_dir", str(out / "ranker_rerank"), "--depth", str(rerank_depth),
                            "--show_progress", "false"])  # fmt: skip
    size = f"{ranker_layers}-layer " if ranker_layers else ""
    rows.append({
        "task": task, "model": f"MiniLM {size}cross-encoder ({ranker_steps} steps) re-ranking BM25 top {rerank_depth}",
        "post_training_steps": 0, "post_training_final_loss": None, "accuracy": None, "macro_f1": None,
        "metrics": {**_metrics(reranked), **_metrics(bm25, "BM25 ")},
        "finetuning_steps": ranker_steps, "finetuning_final_loss": ranker["train"].get("train_loss"),
        "seconds": round(time.time() - t0, 1),
    })  # fmt: skip

    common = ["--beir", beir, "--query_max_length", "64", "--passage_max_length", "96", "--group_size", "2",
              "--negatives", "bm25", "--temperature", "0.05", "--max_steps", str(student_steps),
              "--per_device_train_batch_size", str(batch_size), "--learning_rate", "5e-5", "--warmup_steps", "1",
              "--seed", "42", "--save_strategy", "no", "--eval_split", "test", "--eval_batch_size", "32",
              "--report_to", "none", "--logging_steps", str(max(1, student_steps // 4)), *quiet]  # fmt: skip
    for label, run in (("plain contrastive", "contrastive"), ("MD2PR from that ranker", "md2pr")):
        t0 = time.time()
        if run == "contrastive":
            result = finetune_main(
                ["--model_name_or_path", "minilm", "--output_dir", str(out / run), *common]
            )
        else:
            result = distill_main([str(REPO / "configs/md2pr_cpu.yaml"), "--teacher", str(out / "ranker"),
                                   "--output_dir", str(out / run), *common])  # fmt: skip
        metrics = _metrics(result["eval"])
        if run == "md2pr":
            label += f" ({result['false_negatives_masked']} false negatives masked)"
        rows.append({
            "task": task, "model": f"MiniLM dual encoder, {label}", "post_training_steps": 0,
            "post_training_final_loss": None, "accuracy": None, "macro_f1": None, "metrics": metrics,
            "finetuning_steps": student_steps, "finetuning_final_loss": result["train"].get("train_loss"),
            "seconds": round(time.time() - t0, 1),
        })  # fmt: skip
    return rows
