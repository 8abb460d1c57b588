#!/usr/bin/env python
"""MD2PR distillation step cost: each term on and off, against plain contrastive training.

    python benchmarks/bench_md2pr.py --output benchmarks/results/md2pr_cpu.json

At the MiniLM size (student: all-MiniLM-L6-v2 dual encoder, mean pooling, normalised; teacher: a
MiniLM cross-encoder, or ``--teacher`` a trained ranker folder) on one real batch of the embedded
benchmark (``--queries`` queries x ``--group_size`` passages: positive + BM25 negatives), measures the
median wall time of one full training step (forward, backward, AdamW) of

* ``plain_contrastive``: the retrieval stack's path (``BiEncoderModel`` + ``contrastive_objective``);
* ``md2pr_ce_only``: the MD2PR path with only the CE on (the wrapper's own overhead);
* ``kl_precomputed``: CE + KL from precomputed teacher scores (no teacher forward);
* ``kl``: CE + KL + false-negative filtering, teacher on the fly (scores only);
* ``attention``, ``hidden``: CE + one word-level term (teacher on the fly, that term recorded);
* ``full``: CE + KL + filtering + attention + hidden (every term);
* ``full_eager_teacher``: ``full`` with a teacher that runs eager attention in every layer
  (what ``output_attentions=True`` needs) instead of only in the recorded one;

plus the teacher's own inference time per step (scores only / + attention / + attention and
states). Configurations are timed round-robin (one step of each per round), so drifting load on a
shared machine hits all of them alike; ratios are against ``plain_contrastive``, both for wall time and
for this process's CPU time (steadier than wall time when other jobs compete for the cores).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from functools import partial
from pathlib import Path

import torch

from maeir.losses import contrastive_objective
from maeir.methods.md2pr import CrossEncoderTeacher, MD2PRConfig
from maeir.methods.md2pr.collator import MD2PRCollator
from maeir.methods.md2pr.modeling_md2pr import MD2PRStudentModel
from maeir.methods.md2pr.objective import md2pr_objective
from maeir.retrieval.loading import load_bi_encoder
from maeir.retrieval.modeling_cross_encoder import load_cross_encoder

if not __package__:  # run as a file (python benchmarks/bench_md2pr.py): make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import device_name, time_repeats, timed, write_report  # noqa: E402

CONFIGS = {
    "plain_contrastive": None,
    "md2pr_ce_only": dict(kl_weight=0, word_level_weight=0, false_negative_filtering=False),
    "kl_precomputed": dict(word_level_weight=0, teacher_scores="precomputed"),
    "kl": dict(word_level_weight=0),
    "attention": dict(kl_weight=0, false_negative_filtering=False, hidden_weight=0),
    "hidden": dict(kl_weight=0, false_negative_filtering=False, attention_weight=0),
    "full": dict(),
    "full_eager_teacher": dict(),
}


def real_batch(tokenizer, config, queries: int, group_size: int) -> list[dict]:
    """``queries`` training records of the embedded benchmark with BM25 negatives."""
    from maeir.data.retrieval import load_beir, training_records
    from maeir.datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark
    from maeir.retrieval.negatives import bm25_negatives

    data = load_beir(embedded_retrieval_benchmark(), "train")
    keep = list(data.qrels)[:queries]
    data.qrels = {q: data.qrels[q] for q in keep}
    data.queries = {q: data.queries[q] for q in keep}
    negatives = bm25_negatives(data, depth=50, num_negatives=group_size - 1, seed=0)
    return training_records(data, negatives)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default="benchmarks/results/md2pr_cpu.json")
    parser.add_argument(
        "--teacher", default="minilm", help="A ranker folder (default: a MiniLM cross-encoder)."
    )
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--group_size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = [n.strip() for n in args.configs.split(",") if n.strip()]

    base, tokenizer = load_bi_encoder("minilm", temperature=0.05, query_max_length=64, passage_max_length=96)
    base.to(device)
    ranker, ranker_tokenizer, recipe = load_cross_encoder(
        args.teacher, **({} if args.teacher != "minilm" else {"max_length": 160})
    )
    ranker.to(device)
    records = real_batch(tokenizer, base.config, args.queries, args.group_size)
    collator = MD2PRCollator(tokenizer, base.config, group_size=args.group_size, negative_sampling="first", seed=0,
                             teacher_tokenizer=ranker_tokenizer, teacher_recipe=recipe, word_level=True)  # fmt: skip
    batch = {k: v.to(device) for k, v in collator(records).items()}
    teacher_inputs = (
        batch["teacher_input_ids"],
        batch["teacher_attention_mask"],
        batch.get("teacher_token_type_ids"),
    )
    teacher_plain = CrossEncoderTeacher(ranker, ranker_tokenizer, recipe)
    with torch.no_grad():
        batch["teacher_scores"] = teacher_plain(*teacher_inputs).scores.view(args.queries, -1)

    eager = copy.deepcopy(ranker)
    eager.config._attn_implementation = "eager"
    for module in eager.modules():
        if getattr(module, "config", None) is not None:
            module.config._attn_implementation = "eager"

    runs = {}
    for name in names:
        student = MD2PRStudentModel.from_bi_encoder(base).to(device).train()
        optimizer = torch.optim.AdamW(student.parameters(), lr=1e-6)
        config = None if CONFIGS[name] is None else MD2PRConfig(**CONFIGS[name])
        teacher = None
        if config is not None and config.needs_teacher and config.teacher_scores != "precomputed":
            model = eager if name == "full_eager_teacher" else copy.deepcopy(ranker)
            teacher = CrossEncoderTeacher(model, ranker_tokenizer, recipe, record_attention=config.uses_attention,
                                          record_hidden=config.uses_hidden)  # fmt: skip
        runs[name] = {"student": student, "optimizer": optimizer, "config": config, "teacher": teacher, "times": [], "cpu_times": [],
                      "teacher_times": []}  # fmt: skip

    def step(run: dict) -> None:
        student, config, teacher = run["student"], run["config"], run["teacher"]
        inputs = {
            k: batch[k]
            for k in (
                "query_input_ids",
                "query_attention_mask",
                "passage_input_ids",
                "passage_attention_mask",
            )
        }
        if config is None:
            out = student(**inputs, return_loss=False)
            q, p = student.representation(out, "query"), student.representation(out, "passage")
            loss = contrastive_objective(student, q, p, batch["passage_mask"])[0]
        else:
            out = student(**inputs, return_loss=False, output_token_states=config.uses_word_level)
            scores, teacher_out = None, None
            if config.needs_teacher_scores and config.teacher_scores == "precomputed":
                scores = batch["teacher_scores"]
            elif teacher is not None:
                teacher_out, seconds, _ = timed(partial(teacher, *teacher_inputs), device)
                run["teacher_times"].append(seconds)
                scores = teacher_out.scores.view(args.queries, -1)
            loss = md2pr_objective(student, out, batch, config, teacher_scores=scores, teacher=teacher_out,
                                   threshold=0.5)[0]  # fmt: skip
        loss.backward()
        run["optimizer"].step()
        run["optimizer"].zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        for run in runs.values():
            step(run)
            run["teacher_times"].clear()
    for _ in range(args.steps):  # round-robin: load changes hit every configuration alike
        for run in runs.values():
            _, seconds, cpu = timed(partial(step, run), device)
            run["times"].append(seconds)
            run["cpu_times"].append(cpu)

    baseline = statistics.median(runs["plain_contrastive"]["times"]) if "plain_contrastive" in runs else None
    cpu_baseline = statistics.median(runs["plain_contrastive"]["cpu_times"]) if baseline else None
    results = {}
    for name, run in runs.items():
        median = statistics.median(run["times"])
        cpu = statistics.median(run["cpu_times"])
        entry = {
            "median_step_s": round(median, 4),
            "median_step_cpu_s": round(cpu, 4),
            "steps_s": [round(t, 4) for t in run["times"]],
        }
        if baseline:
            entry["ratio_vs_plain"] = round(median / baseline, 3)
            entry["cpu_ratio_vs_plain"] = round(cpu / cpu_baseline, 3)
        if run["teacher_times"]:
            teacher_median = statistics.median(run["teacher_times"])
            entry["teacher_forward_s"] = round(teacher_median, 4)
            entry["teacher_share_of_step"] = round(teacher_median / median, 3)
        results[name] = entry

    # Teacher inference alone, per step (no student): scores / + attention / + attention + states.
    teacher_alone = {}
    for label, kwargs, model in (("scores", {}, ranker), ("scores+attention", {"record_attention": True}, copy.deepcopy(ranker)),
                                 ("scores+attention+hidden", {"record_attention": True, "record_hidden": True}, copy.deepcopy(ranker)),
                                 ("scores+attention+hidden, all layers eager", {"record_attention": True, "record_hidden": True}, eager)):  # fmt: skip
        teacher = CrossEncoderTeacher(model, ranker_tokenizer, recipe, **kwargs)
        times, _ = time_repeats(partial(teacher, *teacher_inputs), device, args.warmup + args.steps)
        teacher.remove_hooks()
        teacher_alone[label] = round(statistics.median(times[args.warmup :]), 4)

    report = {
        "device": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "batch": {
            "queries": args.queries,
            "group_size": args.group_size,
            "pairs": args.queries * args.group_size,
            "query_tokens": int(batch["query_attention_mask"].sum()),
            "passage_tokens": int(batch["passage_attention_mask"].sum()),
            "teacher_tokens": int(batch["teacher_attention_mask"].sum()),
            "teacher_length": int(batch["teacher_input_ids"].shape[1]),
        },  # fmt: skip
        "steps": args.steps,
        "configs": {
            name: (CONFIGS[name] if CONFIGS[name] is not None else "ContrastiveTrainer objective")
            for name in names
        },
        "results": results,
        "teacher_forward_alone_s": teacher_alone,
    }
    write_report(args.output, report)
    print(
        f"{'config':<22} {'step s':>8} {'x plain':>8} {'cpu s':>8} {'x plain':>8} {'teacher s':>10} {'teacher share':>14}"
    )
    for name, entry in results.items():
        print(f"{name:<22} {entry['median_step_s']:>8.3f} {entry.get('ratio_vs_plain', float('nan')):>8.2f} "
              f"{entry['median_step_cpu_s']:>8.3f} {entry.get('cpu_ratio_vs_plain', float('nan')):>8.2f} "
              f"{entry.get('teacher_forward_s', float('nan')):>10.3f} {entry.get('teacher_share_of_step', float('nan')):>14.2f}")  # fmt: skip
    print("teacher forward alone per step:", teacher_alone)
    return report


if __name__ == "__main__":
    main()
