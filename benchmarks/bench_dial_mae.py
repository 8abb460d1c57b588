#!/usr/bin/env python
"""Dial-MAE cost: post-training step vs an encoder-only MLM step, and bi-encoder training / evaluation speed.

    python benchmarks/bench_dial_mae.py --output benchmarks/results/dial_mae_cpu.json

At the MiniLM size (6 layers, hidden 384, vocab 30,522), on real chitchat dialogue windows:

* post-training: median time of one full step (forward, backward, AdamW) of
  (a) ``DialMAEForPretraining`` (encoder MLM on the context + 1-layer decoder on the response), and
  (b) the encoder-only MLM step on the *same* corrupted contexts (``MaskedLMForPretraining``: what
      Dial-MAE costs without its decoder); the ratio (a)/(b) is the decoder's overhead;
  tokens/s (context + response tokens for (a), context tokens for (b)), model FLOPs per step
  (``torch.utils.flop_counter``) and the achieved FLOP rate as a fraction of this machine's measured
  matrix-multiply rate;
* response-selection bi-encoder (untied towers, [CLS], dot product, InfoNCE with 1 given negative):
  training pairs/s (one full step) and evaluation throughput (contexts/s, candidates/s, and
  10-candidate groups/s as ``scripts/evaluate_response_selection.py`` scores them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial
from pathlib import Path

import torch
from transformers import AutoTokenizer

from maeir import DialMAEForPretraining, MaskedLMForPretraining
from maeir.data.dialogue import context_text, read_dialogue_sessions, read_response_selection
from maeir.datasets.embedded.chitchat import embedded_chitchat
from maeir.methods.dial_mae import DialMAECollator
from maeir.methods.dial_mae.data import dialogue_pairs
from maeir.modeling.backbone import resolve_backbone_path

if not __package__:  # run as a file (python benchmarks/bench_dial_mae.py): make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    add_flop_rates,
    autocast_dtype,
    machine_info,
    matmul_rate,
    time_interleaved,
    time_steps,
    timed,
    train_step,
    write_report,
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--context_length", type=int, default=256, help="paper: 256")
    parser.add_argument("--response_length", type=int, default=64, help="paper: 64")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--eval_groups", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    autocast = autocast_dtype(device)
    torch.manual_seed(0)

    path = resolve_backbone_path(args.backbone)
    tokenizer = AutoTokenizer.from_pretrained(path)
    files = embedded_chitchat()
    pairs = dialogue_pairs(read_dialogue_sessions(files.train_sessions), tokenizer, max_samples=4096, seed=0)
    # windows long enough to fill the context length (the realistic, expensive case), in dataset order
    features = [pairs.pair(i) for i in range(len(pairs))]
    features = [f for f in features if len(f["context_ids"]) >= args.context_length][: args.batch_size]
    collator = DialMAECollator(
        tokenizer, context_max_length=args.context_length, response_max_length=args.response_length, seed=0
    )
    batch = collator(features)
    context_tokens = int(batch["attention_mask"].sum())
    response_tokens = int(batch["decoder_attention_mask"].sum())
    encoder_batch = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}

    # The two steps are timed alternately (A, B, A, B, ...), so that load from other processes on a
    # shared machine affects both alike and their ratio stays meaningful.
    steps = {
        "dial_mae_step": train_step(
            DialMAEForPretraining.from_backbone(path, decoder_layers=1), batch, device, autocast
        ),
        "encoder_only_mlm_step": train_step(
            MaskedLMForPretraining.from_backbone(path), encoder_batch, device, autocast
        ),
    }
    results: dict[str, dict] = time_interleaved(steps, device, args.steps, args.warmup)
    results["dial_mae_step"]["tokens_per_s"] = (context_tokens + response_tokens) / results["dial_mae_step"][
        "median_step_s"
    ]
    results["encoder_only_mlm_step"]["tokens_per_s"] = (
        context_tokens / results["encoder_only_mlm_step"]["median_step_s"]
    )
    paired = [
        a / b for a, b in zip(results["dial_mae_step"]["times"], results["encoder_only_mlm_step"]["times"])
    ]
    del steps

    # -- response-selection bi-encoder ------------------------------------------------------------
    from maeir.cli.response_selection import training_examples
    from maeir.data.retrieval_collator import ContrastiveCollator
    from maeir.retrieval.modeling_bi_encoder import BiEncoderModel
    from maeir.retrieval.response_selection import encode_texts, score_groups

    recipe = dict(
        tie_towers=False,
        pooling="cls",
        normalize=False,
        temperature=1.0,
        query_max_length=args.context_length,
        passage_max_length=args.response_length,
        query_truncation_side="left",
        passage_truncation_side="right",
    )
    bi = BiEncoderModel.from_backbone(path, tokenizer=tokenizer, **recipe)
    train_groups = read_response_selection(files.train, max_groups=4 * args.batch_size)
    examples, _ = training_examples(train_groups, tokenizer)
    bi_batch = ContrastiveCollator(tokenizer, bi.config, group_size=2, seed=0)(examples[: args.batch_size])
    results["bi_encoder_train_step"] = time_steps(
        train_step(bi, bi_batch, device, autocast), device, args.steps, args.warmup
    )
    results["bi_encoder_train_step"]["pairs_per_s"] = (
        args.batch_size / results["bi_encoder_train_step"]["median_step_s"]
    )

    bi.to(device).eval()
    test_groups = read_response_selection(files.test, group_size=10, max_groups=args.eval_groups)
    contexts = [context_text(g.turns, tokenizer) for g in test_groups]
    candidates = [c for g in test_groups for c in g.candidates]
    timings = {}
    for name, texts, side in (("contexts", contexts, "query"), ("candidates", candidates, "passage")):
        encode_texts(bi, tokenizer, texts[:8], side, 64)  # warm-up
        _, wall, cpu = timed(partial(encode_texts, bi, tokenizer, texts, side, 64), device)
        timings[f"{name}_per_s"] = len(texts) / wall
        timings[f"{name}_per_cpu_s"] = len(texts) / cpu
    _, wall, cpu = timed(partial(score_groups, bi, tokenizer, test_groups, batch_size=64), device)
    timings["groups_per_s"] = len(test_groups) / wall
    timings["groups_per_cpu_s"] = len(test_groups) / cpu
    results["evaluation"] = timings

    peak, peak_per_cpu_s = matmul_rate(device, autocast or torch.float32)
    timed_steps = ("dial_mae_step", "encoder_only_mlm_step", "bi_encoder_train_step")
    add_flop_rates([results[name] for name in timed_steps], peak, peak_per_cpu_s)
    dial_r, mlm_r = results["dial_mae_step"], results["encoder_only_mlm_step"]
    machine = machine_info(device, dtype=str(autocast or torch.float32))
    machine["load_average_1min_at_end"] = machine["load_average"][0] if machine["load_average"] else None
    report = {
        "machine": machine,
        "setting": {
            "batch_size": args.batch_size,
            "context_length": args.context_length,
            "response_length": args.response_length,
            "context_tokens": context_tokens,
            "response_tokens": response_tokens,
            "encoder_masked_tokens": int((batch["labels"] != -100).sum()),
            "decoder_masked_tokens": int((batch["decoder_labels"] != -100).sum()),
            "steps": args.steps,
            "eval_groups": len(test_groups),
        },
        "matmul_flops_per_s": peak,
        "matmul_flops_per_cpu_s": peak_per_cpu_s,
        "results": results,
        "ratios": {
            "dial_mae_vs_encoder_only_mlm_step_time": dial_r["median_step_s"] / mlm_r["median_step_s"],
            "dial_mae_vs_encoder_only_mlm_step_time_paired_median": statistics.median(paired),
            "dial_mae_vs_encoder_only_mlm_min_step_time": dial_r["min_step_s"] / mlm_r["min_step_s"],
            "dial_mae_vs_encoder_only_mlm_flops": dial_r["flops_per_step"] / mlm_r["flops_per_step"],
            "dial_mae_vs_encoder_only_mlm_cpu_time": dial_r["median_step_cpu_s"] / mlm_r["median_step_cpu_s"],
        },
    }
    print(f"device: {report['machine']['device']} ({report['machine']['dtype']}, {torch.get_num_threads()} threads, "
          f"load {report['machine']['load_average_1min_at_end']})")  # fmt: skip
    print(f"measured matmul rate: {peak / 1e9:.1f} GFLOP/s ({peak_per_cpu_s / 1e9:.1f} GFLOP per CPU-second)")
    print(
        f"{'step':<24} {'median s':>9} {'CPU s':>7} {'GFLOP/step':>11} {'GFLOP/s':>8} {'of matmul':>9} "
        f"{'(per CPU-s)':>11}  throughput"
    )
    for name in timed_steps:
        r = results[name]
        rate = (
            f"{r['tokens_per_s']:.0f} tokens/s" if "tokens_per_s" in r else f"{r['pairs_per_s']:.1f} pairs/s"
        )
        print(f"{name:<24} {r['median_step_s']:>9.3f} {r['median_step_cpu_s']:>7.2f} {r['flops_per_step'] / 1e9:>11.1f} "
              f"{r['achieved_flops_per_s'] / 1e9:>8.1f} {r['fraction_of_matmul_rate']:>9.1%} "
              f"{r['fraction_of_matmul_rate_per_cpu_s']:>11.1%}  {rate}")  # fmt: skip
    print("evaluation: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    for key, value in report["ratios"].items():
        print(f"{key}: {value:.3f}")
    if args.output:
        write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
