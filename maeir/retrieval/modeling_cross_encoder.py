"""Cross-encoder ranker (the MD2PR teacher): ``[CLS] q [SEP] p [SEP]`` -> one relevance logit.

Implements the ranker of docs/methods.md#md2pr: an ``AutoModelForSequenceClassification`` with
``num_labels = 1`` on any backbone (BERT, RoBERTa, DeBERTa, ELECTRA, a maeir ``encoder/`` export,
``"minilm"``), trained with listwise CE over groups (:class:`maeir.trainers.RankerTrainer`). Nothing
maeir-specific is needed to load it: a trained ranker folder is a plain ``transformers`` checkpoint
(safetensors + tokenizer) that ``AutoModelForSequenceClassification`` and sentence-transformers'
``CrossEncoder`` load; its input recipe (max length, titles) is stored in ``config.json`` under
``maeir_ranker``, so reloading scores exactly as in training (docs/methods.md#pitfalls: the recipe travels
with the model).

Public API:

- :class:`RankerRecipe` (``max_length``, ``include_title``) and :data:`RECIPE_KEY`;
- :func:`load_cross_encoder(name_or_path, **recipe) -> (model, tokenizer, recipe)`;
- :func:`tokenize_pairs`, :func:`passage_string`;
- :func:`score_pairs(model, tokenizer, recipe, queries, passages)` -> ``[N]`` float32 numpy scores
  (length-sorted batches, autocast on GPU, results in input order);
- :func:`save_cross_encoder(model, tokenizer, folder)` (atomic).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BatchEncoding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..errors import ConfigError
from ..io_utils import atomic_directory
from ..modeling.backbone import resolve_backbone_path
from .encode import autocast_dtype
from .modeling_bi_encoder import quiet_transformers

logger = logging.getLogger(__name__)

#: Key of the ranker recipe in ``config.json``.
RECIPE_KEY = "maeir_ranker"


@dataclass
class RankerRecipe:
    """How a (query, passage) pair becomes the ranker's input; saved in ``config.json``.

    Args:
        max_length: tokens of ``[CLS] q [SEP] p [SEP]``, specials included; longer pairs are cut
            with ``longest_first`` (the passage, usually the longer side, loses tokens first).
        include_title: a passage with a title is read as ``title + " " + text``.
    """

    max_length: int = 256
    include_title: bool = True

    def __post_init__(self) -> None:
        if self.max_length < 4:
            raise ConfigError(None, None, f"must be >= 4, got {self.max_length}", field="max_length")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RankerRecipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                None,
                None,
                f"unknown ranker recipe fields {unknown}; known: {sorted(known)}",
                field=RECIPE_KEY,
            )
        return cls(**values)


def passage_string(recipe: RankerRecipe, passage: str | Mapping[str, Any]) -> str:
    """The text of a passage (a string or ``{"title", "text"}``) under the recipe."""
    if isinstance(passage, str):
        return passage
    text, title = str(passage.get("text") or ""), passage.get("title") or ""
    return f"{title} {text}" if title and recipe.include_title else text


def tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase,
    recipe: RankerRecipe,
    queries: Sequence[str],
    passages: Sequence[str | Mapping[str, Any]],
    padding: bool | str = True,
    return_tensors: str | None = "pt",
) -> BatchEncoding:
    """Tokenise ``(query, passage)`` pairs as ``[CLS] q [SEP] p [SEP]`` (the tokenizer's pair template)."""
    if len(queries) != len(passages):
        raise ValueError(f"{len(queries)} queries but {len(passages)} passages")
    return tokenizer(
        list(queries),
        [passage_string(recipe, p) for p in passages],
        max_length=recipe.max_length,
        truncation="longest_first",
        padding=padding,
        return_tensors=return_tensors,
    )


def _model_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def _model_type(folder: Path) -> str:
    try:
        return str(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type", ""))
    except (OSError, ValueError):
        return ""


def load_cross_encoder(
    name_or_path: str | os.PathLike, encoder_overrides: Mapping[str, Any] | None = None, **recipe: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, RankerRecipe]:
    """``(model, tokenizer, recipe)`` of a trained ranker folder or a fresh ranker on a backbone.

    - a trained ranker (``config.json`` holds ``maeir_ranker``): loaded with its saved recipe;
      ``recipe`` overrides are refused (scoring must match training);
    - a pre-training run folder (has ``encoder/``), a backbone folder or ``"minilm"``: the backbone's
      weights with a fresh one-logit head, and the given ``recipe`` (else :class:`RankerRecipe` defaults).

    ``encoder_overrides`` changes the backbone config before loading (e.g. ``{"num_hidden_layers": 3}``
    keeps the first three layers: a smaller, faster ranker; or dropout rates).
    """
    path = Path(resolve_backbone_path(name_or_path))
    if (path / "encoder" / "config.json").is_file() and (
        not (path / "config.json").is_file() or _model_type(path).startswith("maeir")
    ):
        path = path / "encoder"  # a maeir pre-training run: its plain backbone export
    if not (path / "config.json").is_file():
        raise ConfigError(path, None, "not a model folder (no config.json)", field="model")
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    saved = getattr(config, RECIPE_KEY, None)
    if saved is not None:
        if recipe:
            raise ConfigError(
                path / "config.json",
                None,
                f"a trained ranker keeps its recipe; got overrides {sorted(recipe)}",
            )
        ranker_recipe = RankerRecipe.from_dict(saved)
    else:
        ranker_recipe = RankerRecipe.from_dict(recipe)

    # No explicit attention implementation: SDPA where the architecture has it (BERT, RoBERTa, ...),
    # eager otherwise (DeBERTa-v2), instead of an error.
    with quiet_transformers():  # a backbone has no classifier yet: the load report would list it
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, local_files_only=True, use_safetensors=True, **dict(encoder_overrides or {})
        )
    if model.config.num_labels != 1:
        raise ConfigError(
            path / "config.json", None, f"a ranker has one output, this model has {model.config.num_labels}"
        )
    setattr(model.config, RECIPE_KEY, ranker_recipe.to_dict())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if saved is None:
        logger.info("ranker on %s: fresh relevance head, recipe %s", path, ranker_recipe.to_dict())
    return model, tokenizer, ranker_recipe


def save_cross_encoder(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, folder: str | os.PathLike
) -> Path:
    """``save_pretrained`` (safetensors, recipe in ``config.json``) + tokenizer, written atomically."""
    if getattr(model.config, RECIPE_KEY, None) is None:
        setattr(model.config, RECIPE_KEY, RankerRecipe().to_dict())
    with atomic_directory(folder) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
    return Path(folder)


@torch.inference_mode()
def score_pairs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    recipe: RankerRecipe,
    queries: Sequence[str],
    passages: Sequence[str | Mapping[str, Any]],
    batch_size: int = 64,
    dtype: str = "auto",
    show_progress: bool = False,
) -> np.ndarray:
    """Relevance logits ``[N]`` (float32) of ``(queries[i], passages[i])``, in input order.

    Pairs are tokenised once, sorted by length (longest first) and batched, which removes most padding.
    """

    if len(queries) != len(passages):
        raise ValueError(f"{len(queries)} queries but {len(passages)} passages")
    if not len(queries):
        return np.zeros(0, dtype=np.float32)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    encoded = tokenize_pairs(tokenizer, recipe, queries, passages, padding=False, return_tensors=None)
    order = sorted(range(len(queries)), key=lambda i: -len(encoded["input_ids"][i]))
    cast = autocast_dtype(device, dtype)
    out = np.zeros(len(queries), dtype=np.float32)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="scoring pairs", disable=not show_progress):
        rows = order[start : start + batch_size]
        batch = tokenizer.pad({k: [encoded[k][i] for i in rows] for k in encoded.keys()}, return_tensors="pt")
        batch = {k: v.to(device) for k, v in _model_inputs(batch).items()}
        with torch.autocast(device.type, dtype=cast, enabled=cast is not None):
            logits = model(**batch).logits
        out[rows] = logits.float().reshape(-1).cpu().numpy()
    model.train(was_training)
    return out
