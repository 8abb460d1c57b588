"""The CoT-MAE v2 collator (docs/methods.md#cot-mae-v2): draw each anchor's context span, add specials, pad, mask.

Features come in one of two forms:

- **document form** (what :func:`maeir.methods.cotmae_v2.data.context_span_dataset` yields):
  ``{"tokens", "span_bounds", "overlaps", "anchor"}``; the anchor is span ``anchor`` of the document
  and its context span is drawn here, with the collator's generator (so a resumed run draws the same
  contexts), by ``context_sampling`` (``mixed``: a type per example among those the anchor has,
  weighted by ``context_sampling_weights``; or one fixed type, falling back to ``mixed`` for an anchor
  that lacks it, counted in :attr:`CoTMAEv2Collator.fallbacks`);
- **pair form**: ``{"input_ids": anchor ids, "context_ids": context ids}`` (no special tokens).

With ``symmetric`` the batch also holds each pair reversed (the context as the anchor), so each
span is also the other's context; ``B`` features give ``2B`` rows. Every row gives:

- ``input_ids`` / ``attention_mask`` / ``labels``: ``[CLS] anchor [SEP]`` whole-word masked at
  ``encoder_mask_rate`` (80/10/10), MLM labels;
- ``context_input_ids`` / ``context_attention_mask``: ``[CLS] context [SEP]`` unmasked (AR-Dec);
- ``ae_input_ids`` / ``ae_labels``: the same context masked at ``decoder_mask_rate`` (AE-Dec);
- ``ar_labels``: :func:`causal_lm_labels` of the context (``ar_labels[:, i]`` = token ``i + 1``).

Masks are drawn on the exact padded ids the model reads (docs/methods.md#shared-ground).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ...data.collators import EncoderDecoderMaskingCollator, add_special_tokens
from ...data.masking import mlm_labels
from .configuration_cotmae_v2 import CONTEXT_SAMPLING, CONTEXT_TYPES
from .data import context_candidates


def causal_lm_labels(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special: torch.Tensor | None = None,
    predict_special: bool = True,
) -> torch.Tensor:
    """Next-token labels: ``labels[:, i] = input_ids[:, i + 1]`` where position ``i + 1`` is a target, else -100.

    Targets are the real (non-padding) positions after the first one; with ``predict_special=False``
    positions whose ``special`` flag is set are not targets either. Position 0 (the view slot) thus
    predicts the first token after [CLS]; the last position predicts nothing.
    """
    target = attention_mask.bool().clone()
    target[:, 0] = False
    if not predict_special and special is not None:
        target &= ~special
    labels = torch.full_like(input_ids, -100)
    labels[:, :-1] = input_ids[:, 1:].masked_fill(~target[:, 1:], -100)
    return labels


class CoTMAEv2Collator(EncoderDecoderMaskingCollator):
    """Batches for :class:`maeir.CoTMAEv2ForPretraining` (see the module docstring).

    Args:
        tokenizer: the backbone's tokenizer.
        decoder_mask_rate: share of the context's words masked for AE-Dec.
        context_sampling: ``"mixed"``, ``"nearby"``, ``"overlapping"`` or ``"random"``.
        context_sampling_weights: ``mixed`` weights of ``(nearby, overlapping, random)`` (default equal).
        symmetric: add every pair reversed.
        ar_predict_end_token: AR labels include the closing special token.
        max_span_length: tokens kept per span, specials included (default: no cut beyond the
            tokenizer's ``model_max_length``).
        masking: ``encoder_mask_rate`` (the anchor's, 0.30), ``whole_word_mask``,
            ``mask_replace_prob`` / ``random_replace_prob`` (the encoder's 80/10/10),
            ``decoder_mask_replace_prob`` / ``decoder_random_replace_prob`` (AE-Dec's input),
            ``pad_to_multiple_of``, ``seed``: see :class:`maeir.data.collators.EncoderDecoderMaskingCollator`.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        decoder_mask_rate: float = 0.45,
        context_sampling: str = "mixed",
        context_sampling_weights: Sequence[float] | None = None,
        symmetric: bool = True,
        ar_predict_end_token: bool = True,
        max_span_length: int | None = None,
        **masking: Any,
    ) -> None:
        super().__init__(tokenizer, decoder_mask_rate=decoder_mask_rate, **masking)
        if context_sampling not in CONTEXT_SAMPLING:
            raise ValueError(f"context_sampling must be one of {CONTEXT_SAMPLING}, got {context_sampling!r}")
        weights = (
            [1.0] * len(CONTEXT_TYPES) if context_sampling_weights is None else list(context_sampling_weights)
        )
        if len(weights) != len(CONTEXT_TYPES) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"context_sampling_weights must be {len(CONTEXT_TYPES)} non-negative weights")
        limit = max_span_length or tokenizer.model_max_length
        self.max_body = None if limit is None or limit > 1_000_000 else int(limit) - self._specials
        if self.max_body is not None and self.max_body < 1:
            raise ValueError(f"max_span_length={max_span_length} leaves no room beside the special tokens")
        self.context_sampling = context_sampling
        self.context_sampling_weights = [float(w) for w in weights]
        self.symmetric = symmetric
        self.ar_predict_end_token = ar_predict_end_token
        #: Context types drawn so far, and anchors that lacked the fixed type (drew ``mixed`` instead).
        self.type_counts: Counter[str] = Counter()
        self.fallbacks = 0

    # -- drawing a context ------------------------------------------------------------------------
    def _draw(self, options: Sequence[Any], weights: Sequence[float] | None = None) -> Any:
        if weights is None:
            return options[int(torch.randint(len(options), (1,), generator=self.generator))]
        probabilities = torch.tensor(weights, dtype=torch.float)
        return options[int(torch.multinomial(probabilities, 1, generator=self.generator))]

    def sample_context(self, feature: dict[str, Any], kind: str | None = None) -> tuple[str, tuple[int, int]]:
        """``(type, (start, end))``: the context span drawn for a document-form feature (a token range)."""
        candidates = context_candidates(feature["span_bounds"], feature["overlaps"], int(feature["anchor"]))
        kind = kind or self.context_sampling
        if kind != "mixed" and not candidates[kind]:
            self.fallbacks += 1
            kind = "mixed"
        if kind == "mixed":
            available = [
                (t, w)
                for t, w in zip(CONTEXT_TYPES, self.context_sampling_weights)
                if candidates[t] and w > 0
            ]
            if not available:
                available = [(t, 1.0) for t in CONTEXT_TYPES if candidates[t]]
            if not available:
                raise ValueError(
                    f"document {feature.get('doc_id', '?')!r} has a single span: no context span"
                )
            kind = self._draw([t for t, _ in available], [w for _, w in available])
        self.type_counts[kind] += 1
        return kind, self._draw(candidates[kind])

    def pair(self, feature: dict[str, Any]) -> tuple[list[int], list[int]]:
        """``(anchor ids, context ids)`` of one feature, without special tokens."""
        if "context_ids" in feature:
            return list(feature["input_ids"]), list(feature["context_ids"])
        tokens, bounds, k = feature["tokens"], feature["span_bounds"], int(feature["anchor"])
        _, (start, end) = self.sample_context(feature)
        anchor = tokens[int(bounds[k]) : int(bounds[k + 1])]
        context = tokens[start:end]
        as_list = lambda ids: ids.tolist() if hasattr(ids, "tolist") else list(ids)  # noqa: E731
        return as_list(anchor), as_list(context)

    def _with_specials(self, ids: Sequence[int]) -> list[int]:
        body = list(ids) if self.max_body is None else list(ids)[: self.max_body]
        return add_special_tokens(body, self.template)

    # -- the batch ------------------------------------------------------------------------------
    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pairs = [self.pair(f) for f in features]
        anchors = [a for a, _ in pairs]
        contexts = [c for _, c in pairs]
        if self.symmetric:
            anchors, contexts = anchors + contexts, contexts + anchors
        anchors = [self._with_specials(a) for a in anchors]
        contexts = [self._with_specials(c) for c in contexts]

        # Both sides' masks are drawn before either side is corrupted: that order fixes the masks of a seed.
        input_ids, attention_mask = self.pad_ids(anchors)
        mask = self.choose(input_ids, attention_mask, rate=self.encoder_mask_rate)
        context_ids, context_attention = self.pad_ids(contexts)
        ae_mask = self.choose(context_ids, context_attention, rate=self.decoder_mask_rate)
        special = self.boundaries.special[context_ids]
        return {
            "input_ids": self.corrupt(input_ids, mask, self.mask_replace_prob, self.random_replace_prob),
            "attention_mask": attention_mask,
            "labels": mlm_labels(input_ids, mask),
            "context_input_ids": context_ids,
            "context_attention_mask": context_attention,
            "ae_input_ids": self.corrupt(
                context_ids, ae_mask, self.decoder_mask_replace_prob, self.decoder_random_replace_prob
            ),
            "ae_labels": mlm_labels(context_ids, ae_mask),
            "ar_labels": causal_lm_labels(context_ids, context_attention, special, self.ar_predict_end_token),
        }
