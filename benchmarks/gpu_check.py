#!/usr/bin/env python
"""The GPU path, measured in one run of at most 8 minutes on one GPU, written to ONE JSON file.

    python benchmarks/gpu_check.py --output benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --smoke --output /tmp/gpu_check.json   # CPU, tiny shapes, < 1 minute

Sections (each unit is wrapped: a failure is recorded as ``{"error": ...}`` and the rest still runs; a
global budget, ``--budget_s``, skips what no longer fits and says so; the JSON is rewritten atomically
after every unit, so a run cut short still leaves what it measured):

1. ``training_steps``: for each pre-training method (``mlm``, ``mae_lm``, ``dial_mae``, ``cotmae_v2``) at
   BERT-base shape (random weights from a ``BertConfig``; nothing is downloaded), the method fields and
   per-device batch of its paper recipe (``configs/*.yaml``) on real embedded text whose lengths vary
   (unpacked Wikipedia passages, chitchat dialogue windows, Wikipedia spans): one full step (forward
   under bf16 autocast, backward, AdamW), tokens/s (real tokens), model FLOPs per step
   (``torch.utils.flop_counter``) and MFU (achieved FLOP/s over this GPU's measured bf16 matmul rate).
   Variants: padded vs padding-free (``model.config.padding_free``; the JSON says whether the installed
   config class has that field: where it does not, both variants run the padded path), and SDPA vs
   FlashAttention 2 (only where ``flash_attn`` imports; otherwise skipped with the reason).
2. ``peak_memory``: ``torch.cuda.max_memory_allocated`` of one training step at each recipe's per-device
   batch and lengths (full-length rows: the worst case), with the config file each number comes from.
3. ``encoding``: passages/s of maeir's corpus encoding (``maeir.retrieval.encode.encode_corpus``, what
   ``scripts/encode_corpus.py`` runs) vs ``SentenceTransformer.encode`` (fp32 as loaded, and bf16) on the
   same texts with the same BERT-base-shaped random bi-encoder saved as a sentence-transformers folder.
4. ``faiss``: exact inner-product (``Flat``) search, queries/s, faiss-gpu vs faiss-cpu through
   ``maeir.retrieval.dense_index.DenseIndex`` on the same random unit vectors and queries.

``--smoke`` runs every section on the CPU with tiny shapes (2 layers, hidden 64, the real 30,522 vocabulary,
batch 2, lengths capped at 32, one timed step after the one the FLOP counter watches); faiss-gpu and
FlashAttention 2 are then recorded as skipped. ``--device cpu|cuda`` (default: cuda when available).
On a GPU the defaults fit the 8 minutes: ``--budget_s 480``, 2 warm-up + 5 timed steps per variant.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file (python benchmarks/gpu_check.py): make ``benchmarks`` importable
    sys.path.insert(0, str(REPO))
from benchmarks.common import (  # noqa: E402
    add_flop_rates,
    autocast_dtype,
    machine_info,
    matmul_rate,
    time_steps,
    timed,
    train_step,
    write_report,
)

#: Each method's paper recipe (per-device batch, lengths, method fields).
RECIPES = {
    "mlm": "configs/mlm_base.yaml",
    "mae_lm": "configs/mae_lm_base.yaml",
    "dial_mae": "configs/dial_mae_ubuntu.yaml",
    "cotmae_v2": "configs/cotmae_v2_base.yaml",
}
BERT_BASE = dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072)
SMOKE_SHAPE = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128)
#: Rough seconds a unit takes before any has run (GPU run / smoke); later units use measured durations.
FIRST_ESTIMATE_S = {"matmul": (10.0, 1.0), "training_steps": (20.0, 2.0), "peak_memory": (10.0, 1.0), "encoding": (30.0, 2.0),
                    "faiss": (20.0, 1.0)}  # fmt: skip


# -- bookkeeping ---------------------------------------------------------------------------------
class Budget:
    """Wall-clock budget of the whole run: which units still fit, and what was skipped."""

    def __init__(self, seconds: float, smoke: bool) -> None:
        self.seconds = seconds
        self.smoke = smoke
        self.start = time.perf_counter()
        self.durations: dict[str, list[float]] = {}
        self.skipped: list[str] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def estimate(self, kind: str) -> float:
        """Expected seconds of a unit of ``kind``: the longest one so far, else a first guess."""
        seen = self.durations.get(kind)
        return max(seen) if seen else FIRST_ESTIMATE_S[kind][1 if self.smoke else 0]

    def refusal(self, kind: str) -> str | None:
        """Why a unit of ``kind`` no longer fits (None: it fits)."""
        need, left = self.estimate(kind), self.seconds - self.elapsed()
        if need > left:
            return f"budget: {left:.1f} s of --budget_s {self.seconds:g} left, a {kind} unit needs about {need:.1f} s"
        return None


def error_record(err: BaseException) -> dict[str, str]:
    """``{"error": "Type: message", "traceback": last lines}``."""
    lines = traceback.format_exception(type(err), err, err.__traceback__)
    return {"error": f"{type(err).__name__}: {err}", "traceback": "".join(lines)[-2000:]}


def run_unit(budget: Budget, kind: str, name: str, fn: Callable[[], dict]) -> dict:
    """``fn()``, or ``{"skipped": reason}`` when the budget has no room, or ``{"error": ...}`` when it fails."""
    reason = budget.refusal(kind)
    if reason is not None:
        budget.skipped.append(f"{kind}/{name}: {reason}")
        return {"skipped": reason}
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as err:  # one failure is recorded, the others still run
        result = error_record(err)
    finally:
        free_memory()
    seconds = time.perf_counter() - start
    budget.durations.setdefault(kind, []).append(seconds)
    result["unit_seconds"] = round(seconds, 3)
    print(f"[{budget.elapsed():6.1f} s] {kind}/{name}: {describe(result)}", flush=True)
    return result


def describe(result: dict) -> str:
    for key in ("skipped", "error"):
        if key in result:
            return f"{key}: {result[key]}"
    return f"done in {result['unit_seconds']:.1f} s"


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def flash_attention_status(device: torch.device) -> str | None:
    """None when FlashAttention 2 can run here, else why not."""
    if device.type != "cuda":
        return f"FlashAttention 2 needs a CUDA device (running on {device.type})"
    try:
        import flash_attn  # noqa: F401
    except Exception as err:  # ImportError, or a broken build
        return f"flash_attn not importable ({type(err).__name__}: {err}); not installed by this script"
    return None


def padding_free_supported(config_class: type) -> bool:
    """Whether the config class declares a ``padding_free`` field (a dataclass field, or a class attribute)."""
    if dataclasses.is_dataclass(config_class):
        if any(f.name == "padding_free" for f in dataclasses.fields(config_class)):
            return True
    return hasattr(config_class, "padding_free")


# -- models and data ------------------------------------------------------------------------------
def read_recipe(method: str, max_length: int | None = None) -> dict[str, Any]:
    """The paper recipe of ``method``: config file, per-device batch, lengths, method fields.

    ``max_length`` (``--smoke``) caps every length (the response at half of it).
    """
    import yaml

    path = RECIPES[method]
    raw = yaml.safe_load((REPO / path).read_text(encoding="utf-8"))
    fields = dict(raw.get("method_config") or {})
    recipe = {
        "config": path,
        "per_device_train_batch_size": raw["per_device_train_batch_size"],
        "method_config": fields,
        "precision_in_recipe": "bf16" if raw.get("bf16") else "fp16" if raw.get("fp16") else "fp32",
    }
    if method == "dial_mae":
        recipe["context_max_length"] = fields.get("context_max_length", 256)
        recipe["response_max_length"] = fields.get("response_max_length", 64)
    else:
        recipe["max_seq_length"] = raw["max_seq_length"]
        recipe["pack_sequences"] = bool(raw.get("pack_sequences", False))
    if max_length is not None:
        recipe["lengths_capped_at"] = max_length
        for key, cap in (("max_seq_length", max_length), ("context_max_length", max_length),
                         ("response_max_length", max(3, max_length // 2))):  # fmt: skip
            if key in recipe:
                recipe[key] = min(recipe[key], cap)
                if key in fields:
                    fields[key] = recipe[key]
    return recipe


class Setup:
    """What every section shares: device, shape, tokenizer, a backbone folder holding the BertConfig."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        from transformers import AutoTokenizer, BertConfig

        from maeir.modeling.backbone import resolve_backbone_path

        self.args = args
        self.smoke = args.smoke
        self.device = torch.device(args.device)
        self.autocast = autocast_dtype(self.device)
        # The real BERT WordPiece vocabulary (30,522 entries), shipped with the MiniLM package.
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_backbone_path("minilm"))
        shape = SMOKE_SHAPE if args.smoke else BERT_BASE
        self.bert_config = BertConfig(vocab_size=len(self.tokenizer), max_position_embeddings=512, **shape)
        self.backbone_dir = folder / "backbone"
        self.bert_config.save_pretrained(self.backbone_dir)
        self.tokenizer.save_pretrained(self.backbone_dir)
        self.folder = folder
        self.matmul_flops_per_s: float | None = None
        self.features: dict[tuple, tuple[list[dict], str]] = {}

    @property
    def max_length(self) -> int | None:
        """The length cap of ``--smoke`` (None: the recipes' lengths)."""
        return self.args.smoke_max_length if self.smoke else None

    def batch_size(self, recipe: dict) -> int:
        return self.args.smoke_batch if self.smoke else recipe["per_device_train_batch_size"]

    def build_model(self, method: str, recipe: dict):
        """The method's model at this run's shape, every weight random (BERT initialisation)."""
        from maeir.methods import get_method

        torch.manual_seed(0)
        model = get_method(method).model_class.from_backbone(
            self.backbone_dir, from_scratch=True, tokenizer=self.tokenizer, **recipe["method_config"]
        )
        return model


def _mask_keys(batch: dict[str, torch.Tensor]) -> list[str]:
    """The [B, L] masks of the full input sequences (MAE-LM's kept-token mask is a subset: left out)."""
    return [
        k
        for k, v in batch.items()
        if (k == "attention_mask" or k.endswith("_attention_mask"))
        and k != "encoder_attention_mask"
        and torch.is_tensor(v)
        and v.dim() == 2
    ]


def real_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens the step processes: the real (not padding) positions of every input sequence."""
    return int(sum(batch[k].sum() for k in _mask_keys(batch)))


def padded_positions(batch: dict[str, torch.Tensor]) -> int:
    """Positions of every input sequence, padding included."""
    return int(sum(batch[k].numel() for k in _mask_keys(batch)))


def method_features(setup: Setup, method: str, recipe: dict, rows: int, full: bool) -> tuple[list[dict], str]:
    """``(features, description)``: ``rows`` uncollated examples of real text for ``method`` (cached).

    ``full=False``: lengths as they come (what padding-free is for); ``full=True``: full-length rows at
    the recipe's lengths (packed 512-token blocks for the packed recipes, the longest dialogue windows).
    """
    key = (method, rows, full)
    if key not in setup.features:
        setup.features[key] = _method_features(setup, method, recipe, rows, full)
    return setup.features[key]


def _method_features(
    setup: Setup, method: str, recipe: dict, rows: int, full: bool
) -> tuple[list[dict], str]:
    tokenizer = setup.tokenizer
    if method in ("mlm", "mae_lm"):
        length = recipe["max_seq_length"]
        if full:
            from maeir.data.text_dataset import pack_documents
            from maeir.datasets.embedded import wikipedia_documents

            ids, total = [], 0
            for doc in wikipedia_documents():
                ids.append(tokenizer(doc["text"], add_special_tokens=False, verbose=False)["input_ids"])
                total += len(ids[-1])
                if total > (rows + 1) * length:
                    break
            blocks = pack_documents(
                ids, length, [tokenizer.cls_token_id], [tokenizer.sep_token_id], tokenizer.sep_token_id
            )
            return [{"input_ids": b} for b in blocks[:rows]], (
                f"embedded Wikipedia articles packed into {length}-token blocks (the recipe packs)"
            )
        from maeir.data.corpus import load_text_corpus

        texts = load_text_corpus(None, max_samples=rows)["text"]
        features = [
            {"input_ids": tokenizer(t, truncation=True, max_length=length)["input_ids"]} for t in texts
        ]
        return features, f"embedded Wikipedia passages (method default data), unpacked, truncated at {length}"
    if method == "dial_mae":
        from maeir.data.dialogue import read_dialogue_sessions
        from maeir.datasets.embedded.chitchat import embedded_chitchat
        from maeir.methods.dial_mae.data import dialogue_pairs

        sessions = read_dialogue_sessions(embedded_chitchat().train_sessions)
        samples = 256 if setup.smoke else max(4096, 4 * rows)
        pairs = dialogue_pairs(sessions, tokenizer, max_samples=samples, seed=0)
        features = [pairs.pair(i) for i in range(len(pairs))]
        if full:
            ctx, resp = recipe["context_max_length"], recipe["response_max_length"]
            features.sort(
                key=lambda f: -(min(len(f["context_ids"]), ctx) + min(len(f["response_ids"]), resp))
            )
            return features[
                :rows
            ], "chitchat dialogue windows, the longest ones (contexts fill the context length)"
        step = max(1, len(features) // rows)
        return features[::step][:rows], "chitchat dialogue windows (sliding windows, lengths as they come)"
    if method == "cotmae_v2":
        from maeir.methods.cotmae_v2.data import context_span_dataset, embedded_cache_file, load_documents

        length = recipe["max_seq_length"]
        dataset, _ = context_span_dataset(
            load_documents(None), tokenizer, max_seq_length=length,
            cache_file_name=embedded_cache_file(tokenizer, length),
        )  # fmt: skip
        step = max(1, len(dataset) // rows)
        features = [dataset[i * step] for i in range(min(rows, len(dataset)))]
        return (
            features,
            f"embedded Wikipedia sentence-packed spans of up to {length} tokens, same-document contexts",
        )
    raise ValueError(f"unknown method {method!r}")


def make_batch(setup: Setup, method: str, model, features: list[dict]) -> dict[str, torch.Tensor]:
    """The method's collator as ``scripts/pretrain.py`` builds it: its fields (``padding_free`` too, once the
    collator takes it) read from the model config."""
    from maeir.methods import get_method

    collator = get_method(method).collator_class.from_model_config(setup.tokenizer, model.config, seed=0)
    return collator(features)


def set_attention(model, implementation: str) -> list[str]:
    """Switch the backbone (and the decoders' configs) to ``implementation``; the modules switched."""
    model.backbone.set_attn_implementation(implementation)
    switched = ["backbone"]
    for name, module in model.named_modules():
        config = getattr(module, "config", None)
        if name and not name.startswith("backbone") and hasattr(config, "_attn_implementation"):
            config._attn_implementation = implementation
            switched.append(name)
    return switched


# -- sections -------------------------------------------------------------------------------------
def section_matmul(setup: Setup) -> dict:
    dtype = setup.autocast or torch.float32
    size = 256 if setup.smoke else 8192
    rate, rate_cpu = matmul_rate(setup.device, dtype, size=size, repeats=3 if setup.smoke else 10)
    setup.matmul_flops_per_s = rate
    return {"flops_per_s": rate, "flops_per_cpu_s": rate_cpu, "dtype": str(dtype), "size": size}


def measure_variant(setup: Setup, model, batch: dict, tokens: int) -> dict:
    step = train_step(model, batch, setup.device, setup.autocast)
    result = time_steps(step, setup.device, setup.args.steps, setup.args.warmup)
    del step
    result["tokens_per_s"] = tokens / result["median_step_s"]
    return result


def training_method(setup: Setup, budget: Budget, method: str) -> dict:
    """Padded / padding-free x SDPA / FlashAttention 2 steps of one method."""
    recipe = read_recipe(method, setup.max_length)
    rows = setup.batch_size(recipe)
    features, data = method_features(setup, method, recipe, rows, full=False)
    model = setup.build_model(method, recipe)
    config_class = type(model.config)
    supported = padding_free_supported(config_class)
    out: dict[str, Any] = {
        "recipe": recipe["config"],
        "model_class": type(model).__name__,
        "config_class": config_class.__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "padding_free_supported": supported,
        "data": data,
        "batch_rows": len(features),
        "attention": {},
        "variants": {},
    }
    flash_skip = flash_attention_status(setup.device)
    implementations = ["sdpa"] + ([] if flash_skip else ["flash_attention_2"])
    out["attention"]["sdpa"] = "run"
    out["attention"]["flash_attention_2"] = "run" if not flash_skip else {"skipped": flash_skip}
    model.config.padding_free = False
    padded = make_batch(setup, method, model, features)
    tokens = real_tokens(padded)
    out["padded_batch"] = {"real_tokens": tokens, "padded_positions": padded_positions(padded),
                           "shapes": {k: list(v.shape) for k, v in padded.items() if torch.is_tensor(v)}}  # fmt: skip
    out["padded_batch"]["padding_fraction"] = 1 - tokens / max(1, out["padded_batch"]["padded_positions"])
    del padded
    counted: dict[str, int] = {}
    for implementation in implementations:
        if implementation != "sdpa":
            del model
            free_memory()
            model = setup.build_model(method, recipe)
            out["attention"][implementation] = {"switched": set_attention(model, implementation)}
        for padding_free in (False, True):
            name = f"{implementation}_{'padding_free' if padding_free else 'padded'}"

            def variant(model=model, padding_free=padding_free, implementation=implementation) -> dict:
                model.config.padding_free = padding_free  # read by the model's forward at every step
                try:
                    batch = make_batch(setup, method, model, features)
                    result = measure_variant(setup, model, batch, tokens)
                finally:
                    model.config.padding_free = False
                result["padding_free_requested"] = padding_free
                result["padding_free_effective"] = padding_free and supported
                result["batch_shapes"] = {k: list(v.shape) for k, v in batch.items() if torch.is_tensor(v)}
                mode = "padding_free" if padding_free else "padded"
                if implementation == "sdpa":
                    counted[mode] = result["flops_per_step"]
                elif (
                    mode in counted
                ):  # flash_attn's kernels are not seen by the FLOP counter: same model maths
                    result["flops_per_step_counted"] = result["flops_per_step"]
                    result["flops_per_step"] = counted[mode]
                    result["flops_source"] = f"sdpa_{mode} (flash_attn kernels are not counted)"
                if setup.matmul_flops_per_s:
                    add_flop_rates([result], setup.matmul_flops_per_s)
                    result["mfu"] = result["fraction_of_matmul_rate"]
                return result

            out["variants"][name] = run_unit(budget, "training_steps", f"{method}/{name}", variant)
    del model
    return out


def peak_memory_method(setup: Setup, method: str) -> dict:
    """Peak memory of one (steady-state) training step at the recipe's batch and full lengths."""
    recipe = read_recipe(method, setup.max_length)
    rows = setup.batch_size(recipe)
    features, data = method_features(setup, method, recipe, rows, full=True)
    model = setup.build_model(method, recipe)
    batch = make_batch(setup, method, model, features)
    out: dict[str, Any] = {
        "recipe": recipe["config"],
        "per_device_train_batch_size": recipe["per_device_train_batch_size"],
        "batch_rows_used": len(features),
        "lengths": {k: recipe[k] for k in ("max_seq_length", "context_max_length", "response_max_length") if k in recipe},
        "precision_measured": str(setup.autocast or torch.float32) + (" autocast" if setup.autocast else ""),
        "precision_in_recipe": recipe["precision_in_recipe"],
        "data": data,
        "real_tokens": real_tokens(batch),
        "padded_positions": padded_positions(batch),
        "batch_shapes": {k: list(v.shape) for k, v in batch.items() if torch.is_tensor(v)},
    }  # fmt: skip
    step = train_step(model, batch, setup.device, setup.autocast)
    cuda = setup.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    _, first_s, _ = timed(step, setup.device)  # allocates the AdamW state and the gradients
    if cuda:
        out["first_step_peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    _, second_s, _ = timed(step, setup.device)
    out["first_step_s"], out["second_step_s"] = first_s, second_s
    if cuda:
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        out["allocated_after_step_gib"] = torch.cuda.memory_allocated() / 2**30
        out["memory_method"] = (
            "torch.cuda.max_memory_allocated over the second step (after reset_peak_memory_stats)"
        )
    else:
        out["peak_memory_gib"] = None
        out["memory_skipped"] = (
            f"torch.cuda.max_memory_allocated needs CUDA (ran on {setup.device.type}): step run, memory not measured"
        )
    del step, model
    return out


def encoding_section(setup: Setup) -> dict:
    """maeir ``encode_corpus`` vs ``SentenceTransformer.encode``: same model folder, same texts."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from maeir.datasets.embedded import wikipedia_passages
    from maeir.retrieval.configuration_bi_encoder import BiEncoderConfig
    from maeir.retrieval.encode import encode_corpus
    from maeir.retrieval.loading import load_bi_encoder
    from maeir.retrieval.modeling_bi_encoder import BiEncoderModel

    count, batch_size = (32, 16) if setup.smoke else (setup.args.encode_passages, 128)
    passages = wikipedia_passages(100)
    texts = [passages[i % len(passages)]["text"] for i in range(count)]
    passage_length = 144  # configs/retriever_msmarco.yaml
    torch.manual_seed(0)
    config = BiEncoderConfig(encoder_config=setup.bert_config.to_dict(), representation="dense", pooling="cls",
                             normalize=False, tie_towers=True, passage_max_length=passage_length)  # fmt: skip
    folder = setup.folder / "bi_encoder"
    BiEncoderModel(config).save_bi_encoder(folder, setup.tokenizer)
    model, tokenizer = load_bi_encoder(folder)
    model.to(setup.device)
    corpus = {str(i): {"text": t} for i, t in enumerate(texts)}
    out: dict[str, Any] = {
        "model": "BERT-base-shaped random bi-encoder (CLS pooling, tied towers), saved as a maeir + "
        "sentence-transformers folder"
        if not setup.smoke
        else "tiny random bi-encoder (smoke shape)",
        "texts": f"{count} embedded Wikipedia passages (100-word, repeated when fewer), no titles",
        "passages": count,
        "batch_size": batch_size,
        "passage_max_length": passage_length,
        "maeir_function": "maeir.retrieval.encode.encode_corpus (scripts/encode_corpus.py)",
        "maeir_dtype": str(setup.autocast or torch.float32) + (" autocast" if setup.autocast else ""),
    }
    warm = dict(list(corpus.items())[:batch_size])
    encode = partial(encode_corpus, model, tokenizer, batch_size=batch_size, show_progress=False)
    encode(warm)  # warm-up
    ours, wall, cpu = timed(partial(encode, corpus), setup.device)
    out["maeir_passages_per_s"] = count / wall
    out["maeir_passages_per_cpu_s"] = count / cpu
    model.cpu()
    del encode
    free_memory()
    st = SentenceTransformer(str(folder), device=str(setup.device))
    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        try:
            if dtype is not None:
                st = st.to(dtype)
            st.encode(texts[:batch_size], batch_size=batch_size, convert_to_numpy=True)  # warm-up
            run = partial(st.encode, texts, batch_size=batch_size, convert_to_numpy=True)
            theirs, wall, cpu = timed(run, setup.device)
            out[f"sentence_transformers_{label}_passages_per_s"] = count / wall
            out[f"sentence_transformers_{label}_passages_per_cpu_s"] = count / cpu
            diff = np.abs(ours.dense - np.asarray(theirs, dtype=np.float32))
            out[f"max_abs_difference_vs_sentence_transformers_{label}"] = float(diff.max())
        except Exception as err:
            out[f"sentence_transformers_{label}"] = error_record(err)
    if "sentence_transformers_fp32_passages_per_s" in out:
        out["ratio_maeir_over_sentence_transformers_fp32"] = (
            out["maeir_passages_per_s"] / out["sentence_transformers_fp32_passages_per_s"]
        )
    if "sentence_transformers_bf16_passages_per_s" in out:
        out["ratio_maeir_over_sentence_transformers_bf16"] = (
            out["maeir_passages_per_s"] / out["sentence_transformers_bf16_passages_per_s"]
        )
    del st
    return out


def faiss_section(setup: Setup, budget: Budget) -> dict:
    """Exact inner-product search: faiss-cpu vs faiss-gpu (when it exists), same vectors and queries."""
    import faiss
    import numpy as np

    from maeir.retrieval.dense_index import DenseIndex, faiss_gpu_count

    docs, queries, k = (
        (2000, 32, 10) if setup.smoke else (setup.args.faiss_docs, setup.args.faiss_queries, 100)
    )
    dim = setup.bert_config.hidden_size
    rng = np.random.default_rng(0)

    def unit(n: int) -> np.ndarray:
        x = rng.standard_normal((n, dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    vectors, query_vectors = unit(docs), unit(queries)
    ids = [str(i) for i in range(docs)]
    out: dict[str, Any] = {
        "index": "Flat (exact), METRIC_INNER_PRODUCT, via maeir.retrieval.dense_index.DenseIndex",
        "vectors": "random unit vectors (float32)",
        "documents": docs,
        "queries": queries,
        "dim": dim,
        "k": k,
        "faiss_version": getattr(faiss, "__version__", None),
        "faiss_threads": faiss.omp_get_max_threads(),
    }
    results: dict[str, np.ndarray] = {}

    def search(use_gpu: bool) -> dict:
        index = DenseIndex(dim, "Flat", use_gpu=use_gpu)
        _, build_s, _ = timed(lambda: index.build(vectors, ids), setup.device)
        if use_gpu and not index.on_gpu:
            raise RuntimeError("DenseIndex stayed on the CPU (see the log)")
        index.search(query_vectors[:8], k)  # warm-up
        times = []
        for _ in range(3):
            (_, rows), wall, _ = timed(lambda: index.search(query_vectors, k), setup.device)
            times.append(wall)
        results["gpu" if use_gpu else "cpu"] = rows
        record = {"build_s": build_s, "median_search_s": statistics.median(times),
                  "queries_per_s": queries / statistics.median(times), "on_gpu": index.on_gpu}  # fmt: skip
        if use_gpu:
            record["storage"] = "float16 (DenseIndex's GpuClonerOptions.useFloat16; scores fp32)"
        return record

    out["faiss_cpu"] = run_unit(budget, "faiss", "cpu", lambda: search(False))
    if not hasattr(faiss, "StandardGpuResources"):
        out["faiss_gpu"] = {
            "skipped": "faiss-gpu absent: this faiss build has no StandardGpuResources (faiss-cpu)"
        }
    elif faiss_gpu_count() == 0:
        out["faiss_gpu"] = {"skipped": "faiss-gpu present but faiss.get_num_gpus() is 0"}
    else:
        out["faiss_gpu"] = run_unit(budget, "faiss", "gpu", lambda: search(True))
    if "cpu" in results and "gpu" in results:
        overlap = [len(set(a) & set(b)) / k for a, b in zip(results["cpu"], results["gpu"])]
        out["top_k_overlap_gpu_vs_cpu"] = float(np.mean(overlap))
        out["speedup_gpu_over_cpu"] = out["faiss_gpu"]["queries_per_s"] / out["faiss_cpu"]["queries_per_s"]
    return out


# -- driver ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    """Run every section (within ``--budget_s``) and write the JSON report; returns it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "gpu_check.json"))
    parser.add_argument("--budget_s", type=float, default=480.0, help="wall-clock budget of the whole run")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny shapes, 2 steps: checks the script")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: cuda when available (cpu with --smoke)")  # fmt: skip
    parser.add_argument("--methods", default=",".join(RECIPES))
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per variant (default 5; smoke 1)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; smoke 0)")
    parser.add_argument("--smoke_batch", type=int, default=2, help="rows per batch with --smoke")
    parser.add_argument("--smoke_max_length", type=int, default=32, help="length cap with --smoke")
    parser.add_argument("--encode_passages", type=int, default=8192)
    parser.add_argument("--faiss_docs", type=int, default=200_000)
    parser.add_argument("--faiss_queries", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.device is None:
        args.device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    args.steps = args.steps or (1 if args.smoke else 5)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.smoke else 2)
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(RECIPES))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {sorted(RECIPES)}")

    budget = Budget(args.budget_s, args.smoke)
    torch.manual_seed(0)
    device = torch.device(args.device)
    report: dict[str, Any] = {
        "script": "benchmarks/gpu_check.py",
        "argv": list(argv) if argv is not None else sys.argv[1:],
        "smoke": args.smoke,
        "machine": machine_info(device, dtype=str(autocast_dtype(device) or torch.float32)),
        "budget": {"budget_s": args.budget_s},
    }

    def save() -> None:
        report["budget"].update(elapsed_s=round(budget.elapsed(), 3), skipped=list(budget.skipped))
        write_report(args.output, report)

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        setup = Setup(args, Path(tmp))
        from maeir.methods import METHODS

        report["shape"] = {
            k: getattr(setup.bert_config, k) for k in (*BERT_BASE, "vocab_size", "max_position_embeddings")
        }
        report["shape"]["name"] = "smoke (tiny)" if args.smoke else "BERT-base"
        report["setting"] = {"steps": args.steps, "warmup": args.warmup, "autocast": str(setup.autocast),
                             "weights": "random (from_scratch: BERT initialisation); nothing downloaded",
                             "tokenizer": "bert-base-uncased WordPiece (30,522), the MiniLM package's copy"}  # fmt: skip
        report["padding_free_supported"] = {
            m: padding_free_supported(METHODS[m].config_class) for m in methods
        }
        report["flash_attention_2"] = flash_attention_status(device) or "available"
        report["matmul"] = run_unit(budget, "matmul", "rate", lambda: section_matmul(setup))
        save()

        report["training_steps"] = {"methods": {}}
        for method in methods:
            if budget.refusal("training_steps"):
                reason = budget.refusal("training_steps")
                budget.skipped.append(f"training_steps/{method}: {reason}")
                report["training_steps"]["methods"][method] = {"skipped": reason}
                continue
            try:
                entry = training_method(setup, budget, method)
            except Exception as err:
                entry = error_record(err)
            free_memory()
            report["training_steps"]["methods"][method] = entry
            save()

        report["peak_memory"] = {"methods": {}}
        for method in methods:
            report["peak_memory"]["methods"][method] = run_unit(
                budget, "peak_memory", method, lambda method=method: peak_memory_method(setup, method)
            )
            save()

        report["encoding"] = run_unit(budget, "encoding", "maeir_vs_sentence_transformers",
                                      lambda: encoding_section(setup))  # fmt: skip
        save()
        try:
            report["faiss"] = faiss_section(setup, budget)
        except Exception as err:
            report["faiss"] = error_record(err)
        save()
    print(f"wrote {args.output} ({budget.elapsed():.1f} s of {args.budget_s:g} s)")
    return report


if __name__ == "__main__":
    main()
