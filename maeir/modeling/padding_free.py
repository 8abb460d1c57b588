"""Padding-free encoding: the real tokens of a batch as one flat sequence (docs/methods.md#padding-free).

Every row's real tokens are concatenated into one sequence ``[1, T, H]`` with per-row position ids and
sequence boundaries ``cu_seqlens`` (the varlen convention of FlashAttention); the embeddings, the
query/key/value and output projections, the feed-forward blocks and the LayerNorms (most of a BERT
layer's FLOPs) then run on the ``T`` real tokens only, never on padding. Attention goes through the
library's attention interface (``attn_implementation``): :data:`VARLEN_ATTENTION`, registered here,
re-pads the flat queries / keys / values of each attention call into ``[B, heads, L_max, d]`` and runs
PyTorch SDPA with a key-padding mask: exact, and the only step that sees padding. Without
``cu_seq_lens_q`` it is plain SDPA, so a backbone switched to it behaves as before on padded batches.

Works for the BERT layout of transformers (``embeddings`` → optional ``embeddings_project`` →
``encoder.layer``): BERT, RoBERTa (position ids from ``padding_idx + 1``), XLM-R, ELECTRA and their
kin. Outputs are returned padded again (``[B, L, H]``, zeros at padding) so every method's loss code
is unchanged; padded and padding-free outputs agree to float rounding (tests/test_padding_free.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

VARLEN_ATTENTION = "maeir_varlen_sdpa"


def _padded_layout(
    cu_seqlens: torch.Tensor, max_length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(gather, keep, key_mask)`` for ``B`` segments of a flat sequence of ``T`` tokens.

    ``gather [B * L_max]`` maps each padded slot to its flat token (``T``, a zero row, for padding);
    ``keep [T]`` maps each flat token to its padded slot; ``key_mask [B, L_max]`` marks real slots.
    """
    lengths = cu_seqlens[1:] - cu_seqlens[:-1]
    batch = lengths.shape[0]
    total = int(cu_seqlens[-1])
    slots = torch.arange(max_length, device=cu_seqlens.device)
    key_mask = slots[None, :] < lengths[:, None]
    flat = cu_seqlens[:-1, None].long() + slots[None, :]
    gather = torch.where(key_mask, flat, torch.full_like(flat, total)).reshape(-1)
    keep = key_mask.reshape(-1).nonzero().squeeze(1)
    return gather, keep, key_mask.reshape(batch, max_length)


def varlen_sdpa_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    max_length_q: int | None = None,
    varlen_causal: bool = False,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """The attention function behind :data:`VARLEN_ATTENTION` (transformers' attention-interface signature).

    ``query/key/value [1, heads, T, d]`` of a flat sequence with boundaries ``cu_seq_lens_q``: each
    segment attends only to itself (``varlen_causal``: and only to earlier tokens). Returns
    ``[1, T, heads, d]`` like the library's SDPA function. Without ``cu_seq_lens_q``: plain SDPA.
    """
    if cu_seq_lens_q is None:
        kwargs.pop("cu_seq_lens_k", None), kwargs.pop("max_length_k", None)
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    heads, dim = query.shape[1], query.shape[3]
    batch = cu_seq_lens_q.shape[0] - 1
    if max_length_q is None:
        max_length_q = int((cu_seq_lens_q[1:] - cu_seq_lens_q[:-1]).max())
    gather, keep, key_mask = _padded_layout(cu_seq_lens_q, max_length_q)

    def repad(x: torch.Tensor) -> torch.Tensor:  # [1, heads, T, d] -> [B, heads, L_max, d]
        flat = torch.cat([x[0].transpose(0, 1), x.new_zeros(1, heads, dim)])  # [T + 1, heads, d]
        return flat[gather].view(batch, max_length_q, heads, dim).transpose(1, 2)

    allowed = key_mask[:, None, None, :]
    if varlen_causal:
        allowed = (
            allowed & torch.ones(max_length_q, max_length_q, dtype=torch.bool, device=query.device).tril()
        )
    # a padding query sees itself only: no fully masked row (no NaN); its output is dropped below
    allowed = allowed | torch.eye(max_length_q, dtype=torch.bool, device=query.device)
    out = F.scaled_dot_product_attention(
        repad(query), repad(key), repad(value), attn_mask=allowed, dropout_p=dropout, scale=scaling
    )
    out = out.transpose(1, 2).reshape(batch * max_length_q, heads, dim)[keep]
    return out.unsqueeze(0), None


AttentionInterface.register(VARLEN_ATTENTION, varlen_sdpa_attention)
AttentionMaskInterface.register(VARLEN_ATTENTION, sdpa_mask)


def use_varlen_attention(model: nn.Module) -> None:
    """Switch ``model`` (and every submodule sharing its config) to :data:`VARLEN_ATTENTION`.

    A model loaded with ``attn_implementation="flash_attention_2"`` keeps it: transformers' FlashAttention
    path reads the same ``cu_seq_lens_q`` / ``max_length_q`` arguments (the varlen kernel, GPU only).
    """
    config = model.config
    if getattr(config, "_attn_implementation", None) not in (VARLEN_ATTENTION, "flash_attention_2"):
        config._attn_implementation = VARLEN_ATTENTION


def supports_padding_free(base_model: nn.Module) -> bool:
    """Whether ``base_model`` has the BERT layout :func:`encode_padding_free` drives."""
    config = getattr(base_model, "config", None)
    return (
        hasattr(base_model, "embeddings")
        and hasattr(getattr(base_model, "encoder", None), "layer")
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not getattr(config, "is_decoder", False)
    )


def default_position_ids(
    base_model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The position ids the backbone would use on the padded batch: ``0, 1, ...`` (BERT), or
    ``padding_idx + 1, ...`` counting non-padding tokens (RoBERTa-style embeddings with ``padding_idx``)."""
    padding_idx = getattr(base_model.embeddings, "padding_idx", None)
    if padding_idx is None:
        return torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    real = input_ids.ne(padding_idx).long()
    return torch.cumsum(real, dim=1) * real + padding_idx


def flatten_batch(attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(keep, cu_seqlens, max_length)``: flat indices of the real tokens of ``attention_mask [B, L]``
    (row-major) and the segment boundaries. Rows must hold their real tokens first (right padding)."""
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    if not torch.equal(mask, torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]):
        raise ValueError("padding-free batches need right padding: every row's real tokens first")
    if bool((lengths == 0).any()):
        raise ValueError("padding-free batches cannot hold an empty row")
    keep = mask.reshape(-1).nonzero().squeeze(1)
    cu_seqlens = F.pad(torch.cumsum(lengths, dim=0, dtype=torch.int32), (1, 0))
    return keep, cu_seqlens, int(lengths.max())


def unflatten(flat: torch.Tensor, keep: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """``[T, H]`` back to ``[B, L, H]`` with zeros at padding."""
    out = flat.new_zeros(batch * length, flat.shape[-1])
    return out.index_copy(0, keep, flat).view(batch, length, -1)


def encode_padding_free(
    base_model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Final hidden states ``[B, L, H]`` of ``base_model`` computed on the real tokens only.

    Same values as ``base_model(input_ids, attention_mask, ...).last_hidden_state`` at real tokens
    (zeros at padding). ``base_model`` must be switched to :data:`VARLEN_ATTENTION`
    (:func:`use_varlen_attention`).
    """
    if not supports_padding_free(base_model):
        raise ValueError(
            f"padding-free encoding needs a BERT-layout encoder with absolute positions; "
            f"{type(base_model).__name__} is not one (set padding_free false)"
        )
    batch, length = input_ids.shape
    keep, cu_seqlens, max_length = flatten_batch(attention_mask)
    if position_ids is None:
        position_ids = default_position_ids(base_model, input_ids, attention_mask)
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1)[keep][None]

    hidden = base_model.embeddings(
        input_ids=flat(input_ids), position_ids=flat(position_ids), token_type_ids=flat(token_type_ids)
    )
    if getattr(base_model, "embeddings_project", None) is not None:  # ELECTRA: embedding size != hidden
        hidden = base_model.embeddings_project(hidden)
    output = base_model.encoder(
        hidden, attention_mask=None, cu_seq_lens_q=cu_seqlens, cu_seq_lens_k=cu_seqlens,
        max_length_q=max_length, max_length_k=max_length,
    )  # fmt: skip
    last = output[0] if isinstance(output, tuple) else output.last_hidden_state
    return unflatten(last[0], keep, batch, length)


def run_layers_padding_free(
    layers: nn.ModuleList, hidden_states: torch.Tensor, attention_mask: torch.Tensor, causal: bool = False
) -> torch.Tensor:
    """A stack of transformer layers (a shallow decoder) on the real rows of ``hidden_states [B, L, H]``
    only; returns ``[B, L, H]`` with zeros at padding. The layers' config must use
    :data:`VARLEN_ATTENTION`."""
    batch, length, width = hidden_states.shape
    keep, cu_seqlens, max_length = flatten_batch(attention_mask)
    hidden = hidden_states.reshape(-1, width)[keep][None]
    for layer in layers:
        output = layer(
            hidden, None, cu_seq_lens_q=cu_seqlens, cu_seq_lens_k=cu_seqlens, max_length_q=max_length,
            max_length_k=max_length, varlen_causal=causal,
        )  # fmt: skip
        hidden = output[0] if isinstance(output, tuple) else output
    return unflatten(hidden[0], keep, batch, length)
