#!/usr/bin/env python
"""Every pre-training method's training step: maeir's path vs the reference approach, in one run.

    python benchmarks/bench_steps.py --output benchmarks/results/steps_cpu.json

At the MiniLM size (all-MiniLM-L6-v2: 6 layers, hidden 384, vocab 30,522), on one batch of real text
per method at its CPU recipe's lengths and batch size (configs/<method>_cpu.yaml; ``--batch_scale``
scales the batches): Wikipedia passages (MLM, MAE-LM; unpacked, so rows keep their own lengths),
chitchat context/response windows (Dial-MAE), Wikipedia span pairs (CoT-MAE v2). Variants, each timed
in its own block (warm-up, FLOP count, timed steps) in the same process; ``--interleave`` times them
round-robin instead (one step of each per round), which evens out drifting load from other jobs but,
on CPU, perturbs the allocator: the reference's vocabulary-sized logits are then page-faulted afresh
every step (measured: the MLM reference step 2.7 s alone, 9.8 s interleaved), so blocks are the
default and the machine should be quiet:

* ``reference``: the approach of the authors' code: every row padded to the batch maximum,
  vocabulary logits at every position (the masked-LM losses computed from full ``[B, L, V]`` logits
  with ignored labels), fp32;
* ``padded_fp32``: maeir's step on the padded batch (masked-only MLM head), fp32;
* ``padding_free_fp32``: maeir's step on the same batch run padding-free (:mod:`maeir.modeling.padding_free`);
* ``padding_free_bf16``: the same under CPU bf16 autocast (AMX where the processor has it);
* ``padded_bf16``: maeir's padded step under bf16 autocast (the bf16 effect alone).

Reported per variant: median step time (wall and process CPU), real tokens/s, model FLOPs per step
(``torch.utils.flop_counter``, each variant's own: padding-free steps do fewer), and the achieved FLOP
rate as a share of this machine's matmul rate measured here for the variant's precision (fp32 and
bf16 separately); per method, the speed-up of each variant over ``reference`` and the batch's padding
share. One full step = forward, backward, AdamW (fused, as the ``Trainer``'s default ``adamw_torch_fused``;
the same optimizer for every variant, so the ratios measure the model path only).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

if not __package__:  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    add_flop_rates,
    machine_info,
    matmul_rate,
    time_interleaved,
    time_steps,
    write_report,
)
from maeir.modeling.backbone import resolve_backbone_path  # noqa: E402

METHODS = ("mlm", "mae_lm", "dial_mae", "cotmae_v2")


def full_vocabulary_loss(head, hidden_states: torch.Tensor, labels: torch.Tensor):
    """The reference approach's masked-LM loss: logits at every position, ignored labels -100."""
    logits = head(hidden_states)
    loss = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
    )
    return loss, logits[labels != -100]


@contextlib.contextmanager
def reference_losses():
    """Swap every method module's ``masked_lm_loss`` for :func:`full_vocabulary_loss` while active."""
    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith("maeir.methods.") and hasattr(module, "masked_lm_loss"):
            patched.append((module, module.masked_lm_loss))
            module.masked_lm_loss = full_vocabulary_loss
    try:
        yield
    finally:
        for module, original in patched:
            module.masked_lm_loss = original


def build(method: str, tokenizer, path: str, scale: float):
    """``(model, batch, real tokens, padded slots)`` of one method at its CPU recipe."""
    from maeir.data.corpus import load_text_corpus
    from maeir.methods import get_method

    model = get_method(method).model_class.from_backbone(path)
    if method in ("mlm", "mae_lm"):
        from maeir.methods.mae_lm import MAELMCollator
        from maeir.methods.mlm import MLMCollator

        size = max(2, round(32 * scale))
        texts = load_text_corpus(None, max_samples=size)["text"]
        features = [{"input_ids": tokenizer(t, truncation=True, max_length=128)["input_ids"]} for t in texts]
        collator = MLMCollator(tokenizer, seed=0) if method == "mlm" else MAELMCollator(tokenizer, seed=0)
        batch = collator(features)
        masks = [batch["attention_mask"]]
    elif method == "dial_mae":
        from maeir.data.dialogue import read_dialogue_sessions
        from maeir.datasets.embedded.chitchat import embedded_chitchat
        from maeir.methods.dial_mae import DialMAECollator
        from maeir.methods.dial_mae.data import dialogue_pairs

        size = max(2, round(16 * scale))
        pairs = dialogue_pairs(read_dialogue_sessions(embedded_chitchat().train_sessions), tokenizer,
                               max_samples=size, seed=0)  # fmt: skip
        collator = DialMAECollator(tokenizer, context_max_length=128, response_max_length=32, seed=0)
        batch = collator([pairs.pair(i) for i in range(size)])
        masks = [batch["attention_mask"], batch["decoder_attention_mask"]]
    else:
        from maeir.methods.cotmae_v2 import CoTMAEv2Collator
        from maeir.methods.cotmae_v2.data import context_span_dataset, embedded_cache_file, load_documents

        size = max(1, round(8 * scale))
        dataset, _ = context_span_dataset(load_documents(None), tokenizer, max_seq_length=128,
                                          cache_file_name=embedded_cache_file(tokenizer, 128))  # fmt: skip
        step = max(1, len(dataset) // size)
        batch = CoTMAEv2Collator(tokenizer, seed=0)([dataset[i * step] for i in range(size)])
        masks = [batch["attention_mask"]]
    real = sum(int(m.sum()) for m in masks)
    slots = sum(m.numel() for m in masks)
    return model, batch, real, slots


def step_fn(model, batch, padding_free: bool, autocast: bool, reference: bool):
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-5, fused=True
    )  # what the Trainer uses (adamw_torch_fused)

    def step() -> None:
        model.config.padding_free = padding_free
        context = reference_losses() if reference else contextlib.nullcontext()
        with context, torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(**batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


VARIANTS = {  # name: (padding_free, bf16 autocast, reference losses)
    "reference": (False, False, True),
    "padded_fp32": (False, False, False),
    "padding_free_fp32": (True, False, False),
    "padded_bf16": (False, True, False),
    "padding_free_bf16": (True, True, False),
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--batch_scale", type=float, default=1.0, help="scale the recipes' batch sizes")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--interleave", action="store_true", help="time the variants round-robin")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    device = torch.device("cpu")
    torch.manual_seed(0)
    path = resolve_backbone_path(args.backbone)
    tokenizer = AutoTokenizer.from_pretrained(path)
    rates = {
        "fp32": matmul_rate(device, torch.float32),
        "bf16": matmul_rate(device, torch.bfloat16),
    }
    report: dict = {
        "machine": machine_info(
            device,
            amx_bf16="amx_bf16" in Path("/proc/cpuinfo").read_text()
            if Path("/proc/cpuinfo").is_file()
            else None,
        ),  # fmt: skip
        "setting": {
            "backbone": args.backbone,
            "batch_scale": args.batch_scale,
            "steps": args.steps,
            "warmup": args.warmup,
        },  # fmt: skip
        "matmul_flops_per_s": {k: v[0] for k, v in rates.items()},
        "matmul_flops_per_cpu_s": {k: v[1] for k, v in rates.items()},
        "methods": {},
    }
    for method in args.methods.split(","):
        model, batch, real, slots = build(method, tokenizer, path, args.batch_scale)
        steps = {name: step_fn(model, batch, *flags) for name, flags in VARIANTS.items()}
        if args.interleave:
            results = time_interleaved(steps, device, args.steps, args.warmup)
        else:
            results = {
                name: time_steps(step, device, args.steps, args.warmup) for name, step in steps.items()
            }
        for name, result in results.items():
            precision = "bf16" if VARIANTS[name][1] else "fp32"
            add_flop_rates([result], rates[precision][0], rates[precision][1])
            result["precision"] = precision
            result["tokens_per_s"] = real / result["median_step_s"]
        reference = results["reference"]
        speedups = {
            name: {
                "wall": reference["median_step_s"] / r["median_step_s"],
                **(
                    {"paired_wall": statistics.median(a / b for a, b in zip(reference["times"], r["times"]))}
                    if "times" in r
                    else {}
                ),  # fmt: skip
                "cpu": reference["median_step_cpu_s"] / r["median_step_cpu_s"],
            }
            for name, r in results.items()
            if name != "reference"
        }
        report["methods"][method] = {
            "batch": {k: list(v.shape) for k, v in batch.items()},
            "real_tokens": real,
            "token_slots": slots,
            "padding_share": 1 - real / slots,
            "variants": results,
            "speedup_vs_reference": speedups,
        }
        print(
            f"{method}: padding {1 - real / slots:.0%}; "
            + ", ".join(
                f"{n} {r['median_step_s']:.2f}s ({r['fraction_of_matmul_rate']:.0%} of matmul)"
                for n, r in results.items()
            )  # fmt: skip
        )
        del model, steps
    if args.output:
        write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
