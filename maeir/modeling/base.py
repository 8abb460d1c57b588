"""Base config and model shared by the pre-training models: a backbone plus method-specific parts.

Every pre-training model holds the backbone as a complete ``*ForMaskedLM`` model in ``self.backbone``
(encoder + tied MLM head), so that the plain backbone checkpoint can be written out at any time with
:meth:`MaskedAutoEncoderPreTrainedModel.save_encoder` (docs/methods.md#two-checkpoints).
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.configuration_utils import SubConfigSpec

from ..errors import ConfigError
from ..io_utils import atomic_directory
from .backbone import (
    checkpoint_weight_names,
    init_bert_like_weights,
    load_backbone_config,
    load_masked_lm,
    mlm_head,
    resolve_backbone_path,
    takes_token_types,
    transformer_layers,
)
from .decoder import ShallowDecoder, decoder_config
from .padding_free import encode_padding_free, use_varlen_attention


class PretrainingConfig(PreTrainedConfig):
    """Base of the method configs.

    Args:
        encoder_config: the backbone's config (any BERT-like masked-LM config, as a dict or config).
        mask_token_id: the tokenizer's [MASK] id (filled in from the backbone's tokenizer by
            ``from_backbone``).
        padding_free: run the encoder and the decoders on the real tokens of each batch only, as one
            flat sequence (:mod:`maeir.modeling.padding_free`); same losses and gradients as padded
            batches up to float rounding, less work on batches of uneven lengths.
    """

    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}
    encoder_config: dict | PreTrainedConfig | None = None
    mask_token_id: int | None = None
    padding_free: bool = False

    #: Paper the method implements: title, arXiv id, BibTeX, published numbers (for model cards).
    paper: ClassVar[dict] = {}

    @classmethod
    def method_field_names(cls) -> list[str]:
        """The method's own fields (not the generic ``PreTrainedConfig`` ones, not the backbone's)."""
        generic = {f.name for f in dataclasses.fields(PreTrainedConfig)} | {
            "encoder_config",
            "mask_token_id",
            "padding_free",
        }
        return [f.name for f in dataclasses.fields(cls) if f.name not in generic]

    def method_fields(self) -> dict:
        """``{field: value}`` for :meth:`method_field_names`."""
        return {name: getattr(self, name) for name in self.method_field_names()}

    def check_mask_rates(self, *names: str) -> None:
        """Raise ``ValueError`` unless each named field is a masking rate in (0, 1)."""
        for name in names:
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")

    def check_replace_probs(self, *prefixes: str) -> None:
        """Raise ``ValueError`` unless each ``{prefix}mask/random_replace_prob`` pair is an 80/10/10-style split.

        Both shares non-negative, their sum at most 1 (the rest of the chosen tokens stay unchanged).
        """
        for prefix in prefixes:
            mask, rand = (
                getattr(self, f"{prefix}mask_replace_prob"),
                getattr(self, f"{prefix}random_replace_prob"),
            )
            if mask < 0 or rand < 0 or mask + rand > 1.0 + 1e-9:
                raise ValueError(f"{prefix}mask_replace_prob + {prefix}random_replace_prob must be in [0, 1]")


class MaskedAutoEncoderPreTrainedModel(PreTrainedModel):
    """Backbone handling shared by every maeir pre-training model."""

    config_class = PretrainingConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: PretrainingConfig) -> None:
        super().__init__(config)
        self.backbone = AutoModelForMaskedLM.from_config(config.encoder_config, attn_implementation="sdpa")

    # -- parts of the backbone ------------------------------------------------------------------
    @property
    def encoder(self) -> PreTrainedModel:
        """The backbone's base model (e.g. ``BertModel``)."""
        return self.backbone.base_model

    @property
    def lm_head(self) -> nn.Module:
        """The backbone's MLM head, tied to the word embeddings."""
        return mlm_head(self.backbone)

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def encode_tokens(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final hidden states ``[B, L, H]`` of the backbone encoder: every method's one way in.

        Token types are zeros unless given (for backbones that have them); with ``config.padding_free``
        the encoder runs on the real tokens only (zeros at padding in the result).
        """
        encoder = self.encoder
        takes_types = takes_token_types(encoder)
        if takes_types and token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if self.config.padding_free:
            use_varlen_attention(encoder)
            return encode_padding_free(encoder, input_ids, attention_mask, position_ids, token_type_ids)
        extra = {"token_type_ids": token_type_ids} if takes_types else {}
        if position_ids is not None:
            extra["position_ids"] = position_ids
        return encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    def run_decoder(
        self,
        decoder: ShallowDecoder,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor,
        causal: bool = False,
    ) -> torch.Tensor:
        """Run a shallow decoder of this model (padding-free when ``config.padding_free``)."""
        return decoder(hidden_states, attention_mask, causal=causal, padding_free=self.config.padding_free)

    def get_output_embeddings(self) -> nn.Module:
        return self.backbone.get_output_embeddings()

    def build_decoder(self, num_layers: int, dropout: float | None = None) -> ShallowDecoder:
        """A shallow decoder of the backbone's own layer type and width."""
        layer_class = type(transformer_layers(self.encoder)[0])
        return ShallowDecoder(layer_class, decoder_config(self.config.encoder_config, num_layers, dropout))

    def _init_weights(self, module: nn.Module) -> None:
        init_bert_like_weights(module, getattr(self.config.encoder_config, "initializer_range", 0.02))

    # -- building and exporting -----------------------------------------------------------------
    @classmethod
    def from_backbone(
        cls,
        name_or_path: str | os.PathLike,
        *,
        from_scratch: bool = False,
        tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None = None,
        **method_fields,
    ) -> MaskedAutoEncoderPreTrainedModel:
        """The model with pretrained backbone weights from a local folder and fresh method parts.

        ``method_fields`` are this method's config fields (e.g. ``decoder_layers=1``). Backbone config
        overrides go in ``encoder_overrides={...}`` (e.g. a smaller ``num_hidden_layers`` for tests).
        ``tokenizer`` (an instance or a folder; default: the backbone's own) gives ``mask_token_id``;
        a tokenizer whose vocabulary does not fit the pretrained backbone raises ``ConfigError``.
        ``from_scratch=True``: only the backbone's *config* is used (the folder needs no weights);
        every weight is BERT-initialised, and a tokenizer of another vocabulary size sets the
        backbone's ``vocab_size`` (``len(tokenizer)``) and ``pad_token_id``.
        """
        encoder_overrides = dict(method_fields.pop("encoder_overrides", None) or {})
        path = resolve_backbone_path(name_or_path)
        own_tokenizer = tokenizer is None
        if tokenizer is None or not isinstance(tokenizer, PreTrainedTokenizerBase):
            tokenizer = AutoTokenizer.from_pretrained(
                resolve_backbone_path(tokenizer or name_or_path), local_files_only=True
            )
        if method_fields.get("mask_token_id") is None:
            method_fields["mask_token_id"] = tokenizer.mask_token_id
        if from_scratch:
            encoder_config = scratch_encoder_config(path, tokenizer, **encoder_overrides)
            model = cls(cls.config_class(encoder_config=encoder_config.to_dict(), **method_fields))
            std = getattr(model.config.encoder_config, "initializer_range", 0.02)
            model.backbone.apply(lambda module: init_bert_like_weights(module, std))
            model.tie_weights()
            return model
        backbone = load_masked_lm(path, **encoder_overrides)
        if not own_tokenizer:
            check_tokenizer_fits(tokenizer, backbone.config, path)
        config = cls.config_class(encoder_config=backbone.config.to_dict(), **method_fields)
        model = cls(config)
        missing, unexpected = model.backbone.load_state_dict(backbone.state_dict(), strict=False)
        if missing or unexpected:
            raise RuntimeError(f"backbone weights do not fit: missing {missing}, unexpected {unexpected}")
        model.tie_weights()
        return model

    def save_encoder(self, folder: str | os.PathLike, tokenizer=None) -> None:
        """Write the plain backbone checkpoint (safetensors + config [+ tokenizer]) to ``folder``.

        Plain ``transformers`` loads it with ``AutoModel`` / ``AutoModelForMaskedLM``, no maeir needed.
        Decoder weights are not part of it; the written tensor names are checked against the backbone.
        The folder is replaced atomically.
        """
        with atomic_directory(folder) as staging:
            self.backbone.save_pretrained(staging, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(staging)
            check_encoder_checkpoint(self.backbone, staging)

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:  # noqa: D102 - documented upstream
        kwargs.setdefault("safe_serialization", True)
        super().save_pretrained(save_directory, *args, **kwargs)


def check_encoder_checkpoint(backbone: PreTrainedModel, folder: str | os.PathLike) -> None:
    """Raise if the saved tensor names are not exactly the backbone's own (less tied copies)."""
    written = checkpoint_weight_names(folder)
    expected = set(backbone.state_dict().keys())
    tied = set(getattr(backbone, "all_tied_weights_keys", {}) or {})
    extra = written - expected
    missing = expected - tied - written
    if extra or missing:
        raise RuntimeError(
            f"encoder checkpoint in {folder} has unexpected {sorted(extra)} / missing {sorted(missing)}"
        )


def scratch_encoder_config(
    name_or_path: str | os.PathLike, tokenizer: PreTrainedTokenizerBase, **overrides
) -> PreTrainedConfig:
    """The backbone config for a from-scratch model: the folder's config, ``overrides``, and the
    tokenizer's vocabulary size and padding id when they differ from the config's."""
    config = load_backbone_config(name_or_path, **overrides)
    if len(tokenizer) != config.vocab_size:
        config.vocab_size = len(tokenizer)
        config.pad_token_id = tokenizer.pad_token_id
    return config


def check_tokenizer_fits(
    tokenizer: PreTrainedTokenizerBase, config: PreTrainedConfig, backbone: str | os.PathLike
) -> None:
    """Raise ``ConfigError`` when ``tokenizer``'s vocabulary is not the pretrained backbone's.

    The backbone's own tokenizer may be smaller than its embedding matrix (a padded vocabulary);
    any other tokenizer must match ``vocab_size`` exactly.
    """
    size = len(tokenizer)
    if size == config.vocab_size:
        return
    own = os.path.realpath(str(getattr(tokenizer, "name_or_path", "") or "")) == os.path.realpath(backbone)
    if own and size < config.vocab_size:
        return
    raise ConfigError(
        None,
        None,
        f"the tokenizer has {size} tokens but the pretrained backbone {os.fspath(backbone)} has "
        f"vocab_size {config.vocab_size}: use the backbone's own tokenizer, or --from_scratch true to "
        "train a randomly initialised backbone with this tokenizer's vocabulary",
        "tokenizer_name",
    )
