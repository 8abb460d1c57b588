#!/usr/bin/env python
"""CoT-MAE v2 pre-training step cost vs an encoder-only MLM step, with each part's cost shown separately.

    python benchmarks/bench_cotmae_v2.py --output benchmarks/results/cotmae_v2_cpu.json

At the MiniLM size (6 layers, hidden 384, vocab 30,522) on real embedded-Wikipedia spans (one CoT-MAE v2
batch: ``--pairs`` anchor/context pairs, symmetric, so ``2 x pairs`` rows of up to ``--max_length``
tokens), one full training step (forward, backward, AdamW) of each variant:

* ``mlm``: encoder-only MLM on the same anchors (same 30% masking; ``MaskedLMForPretraining``);
* ``sparse_view``: MLM + the sparse view (chunked top-k SPLADE pooling + projection, no decoder);
* ``sparse_view_naive``: the same with the naive sparse view (full ``[rows, L, V]`` logits kept by
  autograd), to show the memory hot spot that the chunked top-k path removes;
* ``dense_ae``: MLM + dense view + AE-Dec; ``dense_ar``: MLM + dense view + AR-Dec;
* ``dense_ae_ar``: MLM + dense view + both decoders (CoT-MAE v1-like);
* ``cotmae_v2``: the full method (both views, each through both decoders).

Reported per variant: median step time, model FLOPs per step (``torch.utils.flop_counter``) and the
achieved FLOP rate as a share of this machine's measured float32 matrix-multiply rate, and peak
memory. **Memory on CPU**: each variant runs in a fresh subprocess and reports the growth of the
process's peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) over its resident
size just before the first training step (model, batch and data already loaded; the first step
allocates the AdamW state, gradients and activations). On CUDA, ``torch.cuda.max_memory_allocated``.
Derived costs: AE-Dec = ``dense_ae - mlm``, AR-Dec = ``dense_ar - mlm``, sparse view alone =
``sparse_view - mlm``, the sparse view's share of the full method = ``cotmae_v2 - dense_ae_ar``
(its pooling plus both decoders run a second time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

if not __package__:  # run as a file (python benchmarks/bench_cotmae_v2.py): make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    add_flop_rates,
    autocast_dtype,
    count_flops,
    machine_info,
    matmul_rate,
    step_stats,
    time_repeats,
    train_step,
    write_report,
)

VARIANTS = ("mlm", "sparse_view", "sparse_view_naive", "dense_ae", "dense_ar", "dense_ae_ar", "cotmae_v2")


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def build_batch(args):
    from transformers import AutoTokenizer

    from maeir.methods.cotmae_v2 import CoTMAEv2Collator
    from maeir.methods.cotmae_v2.data import context_span_dataset, embedded_cache_file, load_documents
    from maeir.modeling.backbone import resolve_backbone_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone_path(args.backbone))
    dataset, _ = context_span_dataset(load_documents(None), tokenizer, max_seq_length=args.max_length,
                                      cache_file_name=embedded_cache_file(tokenizer, args.max_length))  # fmt: skip
    step = max(1, len(dataset) // args.pairs)
    features = [dataset[i * step] for i in range(args.pairs)]
    return CoTMAEv2Collator(tokenizer, seed=0)(features)


class SparseViewOnly(torch.nn.Module):
    """MLM + the sparse view and its projection, no decoder (the loss adds the view with weight 1e-3)."""

    def __init__(self, model, naive: bool) -> None:
        super().__init__()
        self.model = model
        self.naive = naive

    def forward(self, input_ids, attention_mask, labels, **_):
        from maeir.modeling.backbone import masked_lm_loss, mlm_head

        model = self.model
        hidden = model.encode(input_ids, attention_mask)
        loss = masked_lm_loss(model.lm_head, hidden, labels)[0]
        valid = model.pooling_mask(input_ids, attention_mask, labels)
        if self.naive:  # the whole [rows, L, V] logits tensor, kept by autograd
            logits = mlm_head(model.backbone)(hidden).float()
            logits = logits.masked_fill(~valid.unsqueeze(-1), float("-inf"))
            weights = torch.log1p(torch.relu(logits.amax(dim=1)))
            weights = weights.index_fill(1, model.excluded_token_ids(weights.device), 0.0)
            values, indices = weights.topk(model.config.sparse_top_k, dim=1)
        else:
            values, indices = model.sparse_representation(hidden, valid)
        projected = model.project_sparse(values, indices)
        return {"loss": loss + 1e-3 * projected.pow(2).mean()}


def build_model(variant: str, path: str):
    from maeir import CoTMAEv2ForPretraining, MaskedLMForPretraining

    if variant == "mlm":
        return MaskedLMForPretraining.from_backbone(path)
    fields = {
        "sparse_view": dict(views=["dense", "sparse"]),
        "sparse_view_naive": dict(views=["dense", "sparse"]),
        "dense_ae": dict(views=["dense"], use_ar_decoder=False),
        "dense_ar": dict(views=["dense"], use_ae_decoder=False),
        "dense_ae_ar": dict(views=["dense"]),
        "cotmae_v2": dict(views=["dense", "sparse"]),
    }[variant]
    model = CoTMAEv2ForPretraining.from_backbone(path, **fields)
    if variant.startswith("sparse_view"):
        return SparseViewOnly(model, naive=variant.endswith("naive"))
    return model


def run_variant(args) -> dict:
    """One variant in this (fresh) process: time, FLOPs and peak memory of a training step."""
    from maeir.modeling.backbone import resolve_backbone_path

    device = torch.device(args.device)
    torch.manual_seed(0)
    batch = build_batch(args)
    if args.variant == "mlm":
        batch = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    model = build_model(args.variant, resolve_backbone_path(args.backbone))
    step = train_step(model, batch, device, autocast_dtype(device))

    rss_before = current_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        allocated_before = torch.cuda.memory_allocated()
    for _ in range(args.warmup):
        step()
    times, cpu_times = time_repeats(step, device, args.steps)
    result = {
        **step_stats(times, cpu_times),
        "step_times_s": [round(t, 3) for t in times],
        "peak_memory_above_model_mib": (peak_rss_bytes() - rss_before) / 2**20,
        "memory_method": "peak RSS (getrusage ru_maxrss) minus RSS before the first step, fresh process",
    }
    if device.type == "cuda":
        result["peak_memory_above_model_mib"] = (torch.cuda.max_memory_allocated() - allocated_before) / 2**20
        result["memory_method"] = (
            "torch.cuda.max_memory_allocated minus memory_allocated before the first step"
        )
    result["flops_per_step"] = count_flops(step)
    result["rows"] = int(batch["input_ids"].shape[0])
    result["real_tokens"] = int(batch["attention_mask"].sum())
    if "context_attention_mask" in batch:
        result["context_tokens"] = int(batch["context_attention_mask"].sum())
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--pairs", type=int, default=8, help="anchor/context pairs per batch (rows: 2x)")
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.variant:
        print("RESULT " + json.dumps(run_variant(args)))
        return {}

    device = torch.device(args.device)
    results = {}
    common = ["--backbone", args.backbone, "--pairs", str(args.pairs), "--max_length", str(args.max_length),
              "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]  # fmt: skip
    for variant in args.variants.split(","):
        started = time.time()
        done = subprocess.run([sys.executable, __file__, "--variant", variant, *common], capture_output=True,
                              text=True, check=False)  # fmt: skip
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if done.returncode != 0 or line is None:
            raise RuntimeError(f"variant {variant} failed:\n{done.stderr[-4000:]}")
        results[variant] = json.loads(line[len("RESULT ") :])
        print(
            f"{variant}: {results[variant]['median_step_s']:.2f} s/step ({time.time() - started:.0f} s)",
            flush=True,
        )
    peak, peak_per_cpu_s = matmul_rate(device, autocast_dtype(device) or torch.float32)
    add_flop_rates(results.values(), peak, peak_per_cpu_s)

    def get(name, key="median_step_s"):
        return results[name][key] if name in results else None

    def diff(a, b, key="median_step_s"):
        return None if get(a, key) is None or get(b, key) is None else get(a, key) - get(b, key)

    def ratio(a, b, key="median_step_s"):  # None when either variant was not run
        return None if get(a, key) is None or get(b, key) is None else get(a, key) / get(b, key)

    derived = {
        "cotmae_v2_vs_mlm_step_ratio": ratio("cotmae_v2", "mlm"),
        "cotmae_v2_vs_mlm_memory_ratio": ratio("cotmae_v2", "mlm", "peak_memory_above_model_mib"),
        "ae_decoder_step_s": diff("dense_ae", "mlm"),
        "ar_decoder_step_s": diff("dense_ar", "mlm"),
        "sparse_view_alone_step_s": diff("sparse_view", "mlm"),
        "sparse_view_in_method_step_s": diff("cotmae_v2", "dense_ae_ar"),
        "ae_decoder_flops": diff("dense_ae", "mlm", "flops_per_step"),
        "ar_decoder_flops": diff("dense_ar", "mlm", "flops_per_step"),
        "sparse_view_alone_flops": diff("sparse_view", "mlm", "flops_per_step"),
        "sparse_view_in_method_flops": diff("cotmae_v2", "dense_ae_ar", "flops_per_step"),
        "sparse_view_memory_mib": diff("sparse_view", "mlm", "peak_memory_above_model_mib"),
        "sparse_view_naive_memory_mib": diff("sparse_view_naive", "mlm", "peak_memory_above_model_mib"),
    }
    report = {
        "machine": machine_info(
            device,
            cpus_visible=os.cpu_count(),
            dtype="bfloat16 autocast" if device.type == "cuda" else "float32",
        ),
        "setting": {
            "backbone": args.backbone,
            "pairs": args.pairs,
            "rows": 2 * args.pairs,
            "max_length": args.max_length,
            "steps": args.steps,
            "warmup": args.warmup,
        },  # fmt: skip
        "matmul_flops_per_s": peak,
        "matmul_flops_per_cpu_s": peak_per_cpu_s,
        "variants": results,
        "derived": derived,
    }
    print(f"\ndevice: {report['machine']['device']} ({report['machine']['dtype']}, {torch.get_num_threads()} threads, "
          f"load average {report['machine']['load_average'][0]:.1f})")  # fmt: skip
    print(f"measured matmul rate: {peak / 1e9:.1f} GFLOP/s")
    print(
        f"{'variant':<20} {'step (s)':>9} {'GFLOP/step':>11} {'GFLOP/s':>8} {'of matmul':>9} {'peak mem (MiB)':>15}"
    )
    for name, r in results.items():
        print(f"{name:<20} {r['median_step_s']:>9.2f} {r['flops_per_step'] / 1e9:>11.1f} "
              f"{r['achieved_flops_per_s'] / 1e9:>8.1f} {r['fraction_of_matmul_rate']:>9.1%} "
              f"{r['peak_memory_above_model_mib']:>15.0f}")  # fmt: skip
    for key, value in derived.items():
        if value is not None:
            print(
                f"{key}: {value / 1e9 if key.endswith('flops') else value:.3f}{' GFLOP' if key.endswith('flops') else ''}"
            )
    if args.output:
        write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
