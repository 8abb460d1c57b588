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
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoTokenizer

from maeir import DialMAEForPretraining, MaskedLMForPretraining
from maeir.data import DialMAECollator
from maeir.data.chitchat import embedded_chitchat
from maeir.data.dialogue import context_text, dialogue_pairs, read_dialogue_sessions, read_response_selection
from maeir.io_utils import atomic_write_json
from maeir.modeling.backbone import resolve_backbone_path


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


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


def time_steps(step, device: torch.device, steps: int, warmup: int) -> dict:
    """Median wall time (and process CPU time) of ``step()`` and the FLOPs of one call.

    On a shared machine the CPU time (summed over this process's threads) is the steadier cost
    measure: uncontended wall time is about CPU time / threads.
    """
    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    times, cpu = [], []
    for _ in range(steps):
        sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return {
        "median_step_s": statistics.median(times),
        "median_step_cpu_s": statistics.median(cpu),
        "min_step_s": min(times),
        "max_step_s": max(times),
        "flops_per_step": counter.get_total_flops(),
    }


def time_interleaved(steps: dict, device: torch.device, repeats: int, warmup: int) -> dict[str, dict]:
    """Like :func:`time_steps` for several steps, timed in alternation; keeps every time."""
    out = {}
    for name, step in steps.items():
        for _ in range(warmup):
            step()
        with FlopCounterMode(display=False) as counter:
            step()
        out[name] = {"flops_per_step": counter.get_total_flops(), "times": [], "cpu_times": []}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            step()
            sync(device)
            out[name]["times"].append(time.perf_counter() - start)
            out[name]["cpu_times"].append(time.process_time() - cpu_start)
    for result in out.values():
        times = result["times"]
        result.update(
            median_step_s=statistics.median(times),
            min_step_s=min(times),
            max_step_s=max(times),
            median_step_cpu_s=statistics.median(result["cpu_times"]),
        )
    return out


def train_step(model, batch, autocast_dtype, device):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.to(device).train()
    batch = {k: v.to(device) for k, v in batch.items()}

    def step():
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


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
    autocast_dtype = torch.bfloat16 if device.type == "cuda" else None
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
            DialMAEForPretraining.from_backbone(path, decoder_layers=1), batch, autocast_dtype, device
        ),
        "encoder_only_mlm_step": train_step(
            MaskedLMForPretraining.from_backbone(path), encoder_batch, autocast_dtype, device
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
    from maeir.data.retrieval_collator import ContrastiveCollator
    from maeir.drivers.response_selection import encode_texts, score_groups, training_examples
    from maeir.modeling.bi_encoder import BiEncoderModel

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
        train_step(bi, bi_batch, autocast_dtype, device), device, args.steps, args.warmup
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
        start, cpu_start = time.perf_counter(), time.process_time()
        encode_texts(bi, tokenizer, texts, side, 64)
        timings[f"{name}_per_s"] = len(texts) / (time.perf_counter() - start)
        timings[f"{name}_per_cpu_s"] = len(texts) / (time.process_time() - cpu_start)
    start, cpu_start = time.perf_counter(), time.process_time()
    score_groups(bi, tokenizer, test_groups, batch_size=64)
    timings["groups_per_s"] = len(test_groups) / (time.perf_counter() - start)
    timings["groups_per_cpu_s"] = len(test_groups) / (time.process_time() - cpu_start)
    results["evaluation"] = timings

    peak = matmul_rate(device, autocast_dtype or torch.float32)
    for name in ("dial_mae_step", "encoder_only_mlm_step", "bi_encoder_train_step"):
        r = results[name]
        r["achieved_flops_per_s"] = r["flops_per_step"] / r["median_step_s"]
        r["fraction_of_matmul_rate"] = r["achieved_flops_per_s"] / peak
    dial_r, mlm_r = results["dial_mae_step"], results["encoder_only_mlm_step"]
    report = {
        "machine": {
            "device": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_1min_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "torch": torch.__version__,
            "dtype": str(autocast_dtype or torch.float32),
        },
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
    print(f"measured matmul rate: {peak / 1e9:.1f} GFLOP/s")
    print(
        f"{'step':<24} {'median s':>9} {'CPU s':>7} {'GFLOP/step':>11} {'GFLOP/s':>8} {'of matmul':>9}  throughput"
    )
    for name in ("dial_mae_step", "encoder_only_mlm_step", "bi_encoder_train_step"):
        r = results[name]
        rate = (
            f"{r['tokens_per_s']:.0f} tokens/s" if "tokens_per_s" in r else f"{r['pairs_per_s']:.1f} pairs/s"
        )
        print(f"{name:<24} {r['median_step_s']:>9.3f} {r['median_step_cpu_s']:>7.2f} {r['flops_per_step'] / 1e9:>11.1f} "
              f"{r['achieved_flops_per_s'] / 1e9:>8.1f} {r['fraction_of_matmul_rate']:>9.1%}  {rate}")  # fmt: skip
    print("evaluation: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    for key, value in report["ratios"].items():
        print(f"{key}: {value:.3f}")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.output, report)
    return report


if __name__ == "__main__":
    main()
