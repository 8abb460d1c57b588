"""Shallow decoder stack shared by every method (docs/methods.md#decoders).

A few randomly initialised transformer layers of the backbone's own layer type and width, driven
through the library's SDPA attention with an explicit additive mask: bidirectional + padding, or
causal + padding. The embedding module and the tied MLM head are the backbone's; the methods build
the decoder's input sequence themselves.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import PretrainedConfig

from ..errors import ConfigError
from .padding_free import VARLEN_ATTENTION, run_layers_padding_free


def decoder_attention_mask(
    attention_mask: torch.Tensor, dtype: torch.dtype, causal: bool = False
) -> torch.Tensor:
    """Additive mask ``[B, 1, L, L]``: 0 where a query may attend, the dtype's minimum elsewhere.

    Keys that are padding are hidden from every query; with ``causal`` a query also never sees a later
    key. A padding query still sees itself, so no row is fully masked (no NaN from the softmax).
    """
    batch, length = attention_mask.shape
    allowed = attention_mask.bool()[:, None, None, :].expand(batch, 1, length, length)
    if causal:
        lower = torch.ones(length, length, dtype=torch.bool, device=attention_mask.device).tril()
        allowed = allowed & lower
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=attention_mask.device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


def decoder_config(
    backbone_config: PretrainedConfig, num_layers: int, dropout: float | None = None
) -> PretrainedConfig:
    """The backbone config adapted for decoder layers: self-attention only, SDPA, optional dropout.

    Raises :class:`~maeir.errors.ConfigError` for a backbone whose word embeddings are narrower than its
    layers (ELECTRA-small's ``embedding_size`` 128 < ``hidden_size`` 256): the decoders read the
    embedding block's output and word-embedding rows as hidden states, which needs the same width.
    """
    width = getattr(backbone_config, "embedding_size", None)
    if width is not None and width != backbone_config.hidden_size:
        raise ConfigError(
            None,
            None,
            f"the backbone's embedding_size {width} differs from its hidden_size "
            f"{backbone_config.hidden_size} (its embeddings are projected); the decoders of MAE-LM, "
            "Dial-MAE and CoT-MAE v2 need embeddings as wide as the layers (method mlm works)",
            "model_name_or_path",
        )
    config = copy.deepcopy(backbone_config)
    config.num_hidden_layers = num_layers
    config.is_decoder = False
    config.add_cross_attention = False
    if dropout is not None:
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
            if hasattr(config, name):
                setattr(config, name, dropout)
    config._attn_implementation = "sdpa"
    return config


class ShallowDecoder(nn.Module):
    """``num_layers`` transformer layers of class ``layer_class`` (the backbone's own layer type).

    Args:
        layer_class: the backbone's layer class, e.g. ``type(transformer_layers(base)[0])``.
        config: a config from :func:`decoder_config`.
    """

    def __init__(self, layer_class: type[nn.Module], config: PretrainedConfig) -> None:
        super().__init__()
        self.config = config
        layers = []
        for index in range(config.num_hidden_layers):
            try:
                layers.append(layer_class(config, layer_idx=index))
            except TypeError:
                layers.append(layer_class(config))
        self.layers = nn.ModuleList(layers)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor,
        causal: bool = False,
        padding_free: bool = False,
    ) -> torch.Tensor:
        """Run the stack on ``hidden_states [B, L, H]`` with padding mask ``attention_mask [B, L]``
        (``padding_free``: on the real rows only, :func:`~maeir.modeling.padding_free.run_layers_padding_free`;
        zeros at padding)."""
        if padding_free:
            self.config._attn_implementation = VARLEN_ATTENTION
            return run_layers_padding_free(self.layers, hidden_states, attention_mask, causal=causal)
        mask = decoder_attention_mask(attention_mask, hidden_states.dtype, causal=causal)
        for layer in self.layers:
            output = layer(hidden_states, mask)
            hidden_states = output[0] if isinstance(output, tuple) else output
        return hidden_states
