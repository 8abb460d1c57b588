"""Model cards (``README.md``) of a trained ranker and of an MD2PR student.

Public API: :func:`ranker_card(info)`, :func:`md2pr_card(info)` (``info``: the content of ``maeir_run.json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from ..model_card import base_model_name, markdown_table


def _base(info: Mapping[str, Any]) -> str:
    return base_model_name(info.get("base_model"))


def _header(info: Mapping[str, Any], **fields: Any) -> list[str]:
    header = {"license": "apache-2.0", "language": ["en"], **fields}
    base = _base(info)
    if "/" in base and not base.startswith(("/", ".")):
        header["base_model"] = base
    return ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", ""]


def _sections(info: Mapping[str, Any]) -> list[str]:
    parts: list[str] = []
    if info.get("data"):
        parts += ["## Training data", "", str(info["data"]), ""]
    if info.get("hyperparameters"):
        parts += ["## Training hyperparameters", "", markdown_table(info["hyperparameters"]), ""]
    if info.get("losses"):
        parts += [
            "## Final training losses",
            "",
            markdown_table({k: round(v, 4) for k, v in info["losses"].items()}),
            "",
        ]
    if info.get("metrics"):
        parts += ["## Evaluation", "", markdown_table(info["metrics"]), ""]
    return parts


def ranker_card(info: Mapping[str, Any]) -> str:
    """Card of a cross-encoder ranker trained by ``scripts/train_reranker.py``."""
    parts = _header(info, library_name="transformers", pipeline_tag="text-ranking",
                    tags=["maeir", "cross-encoder", "reranker", "md2pr"])  # fmt: skip
    parts += [
        f"# {info.get('model_id') or 'maeir cross-encoder ranker'}",
        "",
        "A cross-encoder ranker (`[CLS] query [SEP] passage [SEP]` -> one relevance logit) trained with listwise "
        f"cross-entropy over groups of one positive and several negatives by [maeir](https://pypi.org/project/maeir/), "
        f"starting from `{_base(info)}`. It is the teacher of MD2PR (arXiv 2312.16821).",
        "",
        "## How to use",
        "",
        "```python",
        "from maeir.retrieval.modeling_cross_encoder import load_cross_encoder, score_pairs",
        'model, tokenizer, recipe = load_cross_encoder("PATH")  # recipe restored from config.json',
        'scores = score_pairs(model, tokenizer, recipe, ["what is albedo?"], ["Albedo is ..."])',
        "```",
        "",
        "Re-rank a TREC run: `python scripts/rerank.py --model PATH --beir DIR --split test --run RUN.trec "
        "--output_dir OUT`. The folder is a plain `AutoModelForSequenceClassification` checkpoint "
        "(sentence-transformers' `CrossEncoder` loads it too).",
        "",
        "## Input recipe",
        "",
        markdown_table(info.get("recipe") or {}),
        "",
    ]
    return "\n".join(parts + _sections(info))


def _terms(settings: Mapping[str, Any]) -> str:
    """Which MD2PR terms were on, in words."""
    if not settings:
        return "contrastive learning plus multi-level distillation from a cross-encoder ranker"
    terms = []
    if settings.get("contrastive_weight", 1):
        terms.append("contrastive learning over in-batch and hard negatives")
    if settings.get("kl_weight", 1):
        terms.append(f"sentence-level KL distillation (alpha = {settings.get('kl_weight')})")
    word = settings.get("word_level_weight", 1)
    parts = [name for name, key in (("attention", "attention_weight"), ("hidden-state", "hidden_weight"))
             if word and settings.get(key, 1)]  # fmt: skip
    if parts:
        terms.append(f"word-level {' and '.join(parts)} alignment (beta = {word})")
    text = ", ".join(terms[:-1]) + (" and " if len(terms) > 1 else "") + terms[-1]
    if settings.get("false_negative_filtering") and (
        settings.get("kl_weight") or settings.get("contrastive_weight")
    ):
        text += (f", with dynamic false-negative filtering (threshold {settings.get('fn_threshold_start')} -> "
                 f"{settings.get('fn_threshold_end')}, {settings.get('fn_schedule')})")  # fmt: skip
    return text


def md2pr_card(info: Mapping[str, Any]) -> str:
    """Card of a dual encoder distilled by ``scripts/distill_md2pr.py``."""
    recipe = dict(info.get("encoding_recipe") or {})
    parts = _header(info, library_name="sentence-transformers", pipeline_tag="sentence-similarity",
                    tags=["maeir", "retrieval", "bi-encoder", "distillation", "md2pr"])  # fmt: skip
    parts += [
        f"# {info.get('model_id') or 'maeir MD2PR dual encoder'}",
        "",
        'A dense dual encoder trained by [maeir](https://pypi.org/project/maeir/) with MD2PR ("A Multi-level '
        'Distillation based Dense Passage Retrieval Model", arXiv 2312.16821): '
        f"{_terms(info.get('md2pr') or {})}; teacher: the cross-encoder ranker `{info.get('teacher') or 'precomputed scores'}`. "
        f"Student initialised from `{_base(info)}`.",
        "",
        "## How to use",
        "",
        "```python",
        "import maeir",
        "from maeir.modeling import load_bi_encoder",
        'model, tokenizer = load_bi_encoder("PATH")  # the recipe below is restored from config.json',
        "```",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        'model = SentenceTransformer("PATH")',
        "```",
        "",
        "## Encoding recipe",
        "",
        markdown_table(recipe),
        "",
    ]
    if info.get("md2pr"):
        parts += ["## MD2PR settings", "", markdown_table(info["md2pr"]), ""]
    if "false_negatives_masked" in info:
        parts += [f"False negatives masked during training: {info['false_negatives_masked']}.", ""]
    if info.get("published_results"):
        parts += [
            "## Published results (paper, full-scale)",
            "",
            markdown_table(info["published_results"]),
            "",
        ]
    return "\n".join(parts + _sections(info))
