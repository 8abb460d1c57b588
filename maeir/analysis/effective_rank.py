"""Effective rank of token representations per layer (MAE-LM paper, Section 3; docs/methods.md#mae-lm).

``effective_rank(X) = exp(H(p))`` with ``p = σ / Σσ`` the normalised singular values of ``X`` and
``H`` the Shannon entropy (Roy & Vetterli, 2007). MLM spends part of the model's dimensions on
[MASK] tokens; MAE-LM's encoder never sees them, so its real-token representations keep more rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data.collators import pad_sequences
from ..data.masking import WordBoundaries, remove_masked_tokens, whole_word_mask
from ..methods.mae_lm import MAELMForMaskedLM
from ..modeling.backbone import position_offset


def effective_rank(matrix: torch.Tensor) -> float:
    """``exp`` of the entropy of the normalised singular values of ``matrix [n, d]`` (in float64)."""
    singular = torch.linalg.svdvals(matrix.double())
    singular = singular[singular > 0]
    p = singular / singular.sum()
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def layerwise_effective_rank(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    label: str,
    mask_rate: float = 0.15,
    max_length: int = 128,
    max_vectors: int = 4000,
    seed: int = 0,
) -> list[dict]:
    """Rows ``{model, stack, layer, tokens, effective_rank, vectors}`` for a checkpoint.

    For a plain masked-LM model the chosen words are replaced by [MASK] and the encoder's layers give
    both real-token and [MASK]-token rows. For an MAE-LM model the masked words are removed from the
    encoder input (real-token rows per encoder layer) and the [MASK] rows come from the decoder.
    """
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    ids, attention = pad_sequences(
        [tokenizer(t, truncation=True, max_length=max_length)["input_ids"] for t in texts],
        tokenizer.pad_token_id,
    )
    boundaries = WordBoundaries.from_tokenizer(tokenizer)
    mask = whole_word_mask(ids, attention, boundaries, mask_rate, generator=generator)
    real = attention.bool() & ~mask & ~boundaries.special[ids]
    rows: list[dict] = []

    def add(stack: str, layer: int, tokens: str, states: torch.Tensor) -> None:
        if states.shape[0] > max_vectors:
            states = states[torch.randperm(states.shape[0], generator=generator)[:max_vectors]]
        if states.shape[0] >= 2:
            rows.append(
                {"model": label, "stack": stack, "layer": layer, "tokens": tokens,
                 "effective_rank": round(effective_rank(states), 3), "vectors": int(states.shape[0])}
            )  # fmt: skip

    if isinstance(model, MAELMForMaskedLM):
        kept_ids, kept_pos, kept_att = remove_masked_tokens(ids, attention, mask)
        offset = position_offset(model.config.encoder_config)  # as MAELMForMaskedLM.forward
        encoder_states = model.encoder(
            input_ids=kept_ids,
            attention_mask=kept_att,
            position_ids=kept_pos + offset,
            output_hidden_states=True,
        ).hidden_states
        kept_real = kept_att.bool() & ~boundaries.special[kept_ids]
        for layer, states in enumerate(encoder_states):
            add("encoder", layer, "real", states[kept_real])
        labels = ids.masked_fill(~mask, -100)
        captured: list[torch.Tensor] = []
        hooks = [layer.register_forward_hook(lambda m, a, out: captured.append(out[0] if isinstance(out, tuple) else out))
                 for layer in model.decoder.layers]  # fmt: skip
        model(encoder_input_ids=kept_ids, encoder_position_ids=kept_pos, encoder_attention_mask=kept_att,
              attention_mask=attention, labels=labels)  # fmt: skip
        for hook in hooks:
            hook.remove()
        for layer, states in enumerate(captured, start=1):
            add("decoder", layer, "mask", states[mask])
            add("decoder", layer, "real", states[real])
        return rows

    encoder = model.base_model
    masked_ids = ids.masked_fill(mask, tokenizer.mask_token_id)
    states_per_layer = encoder(
        input_ids=masked_ids, attention_mask=attention, output_hidden_states=True
    ).hidden_states
    for layer, states in enumerate(states_per_layer):
        add("encoder", layer, "real", states[real])
        add("encoder", layer, "mask", states[mask])
    return rows
