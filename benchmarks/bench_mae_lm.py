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
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForMaskedLM, AutoTokenizer

from maeir import MAELMForMaskedLM, MaskedLMForPretraining
from maeir.data import MAELMCollator, MLMCollator
from maeir.data.corpus import load_text_corpus
from maeir.io_utils import atomic_write_json
from maeir.modeling.backbone import resolve_backbone_path


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """Measured dense matrix-multiply FLOP/s (median of ``repeats``)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times = []
    for _ in range(repeats + 2):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times[2:])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(model, batch, device, steps: int, warmup: int, autocast_dtype) -> dict:
    model.to(device).train()
    batch = {k: v.to(device) for k, v in batch.items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    result = {"median_step_s": statistics.median(times), "flops_per_step": counter.get_total_flops()}
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


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
    autocast_dtype = torch.bfloat16 if device.type == "cuda" else None
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
        results[name] = time_steps(model, batch, device, args.steps, args.warmup, autocast_dtype)
        results[name]["tokens_per_s"] = real_tokens / results[name]["median_step_s"]
        del model
    peak = matmul_rate(device, autocast_dtype or torch.float32)
    for result in results.values():
        result["achieved_flops_per_s"] = result["flops_per_step"] / result["median_step_s"]
        result["fraction_of_matmul_rate"] = result["achieved_flops_per_s"] / peak
    base = results["plain_bert_for_masked_lm"]["median_step_s"]
    ours_mlm = results["maeir_mlm_masked_only_head"]["median_step_s"]
    mae = results["maeir_mae_lm"]["median_step_s"]
    report = {
        "machine": {
            "device": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "dtype": str(autocast_dtype or torch.float32),
        },
        "setting": {
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "real_tokens": real_tokens,
            "masked_tokens": int((mlm_batch["labels"] != -100).sum()),
            "steps": args.steps,
        },  # fmt: skip
        "matmul_flops_per_s": peak,
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
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.output, report)
    return report


if __name__ == "__main__":
    main()
