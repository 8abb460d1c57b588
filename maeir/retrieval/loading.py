"""One loader for every kind of folder: a maeir bi-encoder, a sentence-transformers folder, a pre-training
run or a backbone (:func:`load_bi_encoder`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..errors import ConfigError
from ..modeling.backbone import check_load_report, resolve_backbone_path
from .configuration_bi_encoder import BiEncoderConfig
from .modeling_bi_encoder import BiEncoderModel
from .sentence_transformers_folder import read_json, sentence_transformers_recipe

logger = logging.getLogger(__name__)

#: Recipe fields that may differ at inference from training (longer passages, another top-k or
#: hybrid weighting); the others define what the model computes and stay as trained.
INFERENCE_FIELDS = frozenset(
    {"query_max_length", "passage_max_length", "sparse_top_k", "dense_weight", "sparse_weight"}
)


def is_bi_encoder_folder(path: str | os.PathLike) -> bool:
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    return (read_json(config) or {}).get("model_type") == BiEncoderConfig.model_type


def load_bi_encoder(
    name_or_path: str | os.PathLike, **overrides: Any
) -> tuple[BiEncoderModel, PreTrainedTokenizerBase]:
    """``(model, tokenizer)`` from a maeir bi-encoder, a sentence-transformers folder or a backbone.

    - a folder saved by :meth:`BiEncoderModel.save_bi_encoder` / the fine-tuning script: loaded with
      its saved recipe; only the inference-time fields :data:`INFERENCE_FIELDS` (max lengths, sparse
      top-k, hybrid weights) may be changed, any other differing override is an error (the recipe is
      what the model was trained with);
    - a sentence-transformers folder (``modules.json``): its own pooling / normalisation / prompts;
    - a pre-training run folder (has ``encoder/``) or a backbone folder / ``"minilm"``: a fresh
      bi-encoder with the recipe ``overrides`` (note ``"minilm"`` is a sentence-transformers folder).
    """
    path = Path(resolve_backbone_path(name_or_path))
    if is_bi_encoder_folder(path):
        model, report = BiEncoderModel.from_pretrained(
            path, local_files_only=True, use_safetensors=True, output_loading_info=True
        )
        check_load_report(path, report, optional=("position_ids",))
        changed = {k: v for k, v in overrides.items() if getattr(model.config, k, None) != v}
        inference = {k: v for k, v in changed.items() if k in INFERENCE_FIELDS}
        for key, value in inference.items():
            logger.warning(
                "%s: encoding with %s=%r (trained with %r)", path, key, value, getattr(model.config, key)
            )
            setattr(model.config, key, value)
        changed = {k: v for k, v in changed.items() if k not in INFERENCE_FIELDS}
        if changed:
            saved = {k: getattr(model.config, k, None) for k in changed}
            raise ConfigError(
                path / "config.json",
                None,
                f"a trained bi-encoder keeps the recipe it was trained with: {saved}, not {changed}",
                field=sorted(changed)[0],
            )
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return model, tokenizer
    if (path / "modules.json").is_file():
        recipe, towers = sentence_transformers_recipe(path)
        model = BiEncoderModel.from_sentence_transformers(path, **overrides)
        tokenizer = AutoTokenizer.from_pretrained(towers["query"], local_files_only=True)
        return model, tokenizer
    if (path / "encoder" / "config.json").is_file():
        # A pre-training run folder: its whole model is a maeir pre-training model; use the backbone.
        path = path / "encoder"
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return BiEncoderModel.from_backbone(path, tokenizer=tokenizer, **overrides), tokenizer
