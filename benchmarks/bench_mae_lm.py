#!/usr/bin/env python
"""MAE-LM vs plain MLM training-step cost, in one run on one machine.

    python benchmarks/bench_mae_lm.py --output benchmarks/results/mae_lm_cpu.json

Measures, at the MiniLM size (6 layers, hidden 384, vocab 30,522) on real Wikipedia passages:
* median time of one full training step (forward, backward, AdamW) and tokens/s of
  (a) a plain ``transformers`` ``BertForMaskedLM`` (logits over the whole vocabulary at every position),
  (b) maeir's MLM baseline (``MaskedLMForPretraining``: gather the masked positions, then the head),
  (c) MAE-LM (masked tokens removed from the encoder, 2-layer decoder);
* the ratios (b)/(a) (masked-only head vs full-vocabulary logits) and (c)/(a), (c)/(b);
* the model FLOPs of each step (counted with ``torch.utils.flop_counter``) and the achieved FLOP rate
  as a fraction of this machine's measured float32 (or bf16 on GPU) matrix-multiply rate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from maeir import MAELMForMaskedLM, MaskedLMForPretraining
from maeir.data.corpus import load_text_corpus
from maeir.methods.mae_lm import MAELMCollator
from maeir.methods.mlm import MLMCollator
from maeir.modeling.backbone import resolve_backbone_path

if not __package__:  # run as a file (python benchmarks/bench_mae_lm.py): make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    add_flop_rates,
    autocast_dtype,
    machine_info,
    matmul_rate,
    time_steps,
    train_step,
    write_report,
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    autocast = autocast_dtype(device)
    torch.manual_seed(0)

    path = resolve_backbone_path(args.backbone)
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = load_text_corpus(None, max_samples=args.batch_size)["text"]
    features = [
        {"input_ids": tokenizer(t, truncation=True, max_length=args.max_length)["input_ids"]} for t in texts
    ]
    real_tokens = sum(len(f["input_ids"]) for f in features)
    mlm_batch = MLMCollator(tokenizer, mask_rate=0.15, seed=0)(features)
    mae_batch = MAELMCollator(tokenizer, mask_rate=0.15, seed=0)(features)

    variants = {
        "plain_bert_for_masked_lm": (AutoModelForMaskedLM.from_pretrained(path), mlm_batch),
        "maeir_mlm_masked_only_head": (MaskedLMForPretraining.from_backbone(path), mlm_batch),
        "maeir_mae_lm": (MAELMForMaskedLM.from_backbone(path, decoder_layers=2), mae_batch),
    }
    results = {}
    for name, (model, batch) in variants.items():
        results[name] = time_steps(
            train_step(model, batch, device, autocast), device, args.steps, args.warmup
        )
        results[name]["tokens_per_s"] = real_tokens / results[name]["median_step_s"]
        del model
    peak, peak_per_cpu_s = matmul_rate(device, autocast or torch.float32)
    add_flop_rates(results.values(), peak, peak_per_cpu_s)
    base = results["plain_bert_for_masked_lm"]["median_step_s"]
    ours_mlm = results["maeir_mlm_masked_only_head"]["median_step_s"]
    mae = results["maeir_mae_lm"]["median_step_s"]
    report = {
        "machine": machine_info(device, dtype=str(autocast or torch.float32)),
        "setting": {
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "real_tokens": real_tokens,
            "masked_tokens": int((mlm_batch["labels"] != -100).sum()),
            "steps": args.steps,
        },  # fmt: skip
        "matmul_flops_per_s": peak,
        "matmul_flops_per_cpu_s": peak_per_cpu_s,
        "variants": results,
        "ratios": {
            "masked_only_head_vs_full_vocab_step": ours_mlm / base,
            "mae_lm_vs_plain_bert_mlm_step": mae / base,
            "mae_lm_vs_maeir_mlm_step": mae / ours_mlm,
        },
    }
    print(
        f"device: {report['machine']['device']} ({report['machine']['dtype']}, {torch.get_num_threads()} threads)"
    )
    print(f"measured matmul rate: {peak / 1e9:.1f} GFLOP/s")
    print(
        f"{'variant':<30} {'step (s)':>9} {'tokens/s':>9} {'GFLOP/step':>11} {'GFLOP/s':>8} {'of matmul':>9}"
    )
    for name, r in results.items():
        print(f"{name:<30} {r['median_step_s']:>9.3f} {r['tokens_per_s']:>9.0f} {r['flops_per_step'] / 1e9:>11.1f} "
              f"{r['achieved_flops_per_s'] / 1e9:>8.1f} {r['fraction_of_matmul_rate']:>9.1%}")  # fmt: skip
    for key, value in report["ratios"].items():
        print(f"{key}: {value:.3f}")
    if args.output:
        write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
