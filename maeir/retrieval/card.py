"""Model card (``README.md``) of a fine-tuned bi-encoder: how to load it with maeir and sentence-transformers.

Public API: :func:`retriever_card(info) -> str` (``info``: the content of ``maeir_run.json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from ..model_card import base_model_name, markdown_table


def retriever_card(info: Mapping[str, Any]) -> str:
    """Markdown card with a YAML header for a bi-encoder saved by the fine-tuning script."""
    recipe = dict(info.get("encoding_recipe") or {})
    base = base_model_name(info.get("base_model"))
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
    parts += ["## Encoding recipe", "", markdown_table(recipe), ""]
    if info.get("data"):
        parts += ["## Training data", "", str(info["data"]), ""]
    hyper = info.get("hyperparameters") or {}
    if hyper:
        parts += ["## Training hyperparameters", "", markdown_table(hyper), ""]
    losses = info.get("losses") or {}
    if losses:
        parts += [
            "## Final training losses",
            "",
            markdown_table({k: round(v, 4) for k, v in losses.items()}),
            "",
        ]
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
            markdown_table(metrics),
            "",
        ]
    return "\n".join(parts)
