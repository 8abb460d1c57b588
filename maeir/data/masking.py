"""Whole-word masking, shared by every method (docs/methods.md#shared-ground).

A word is a first sub-token plus its continuation pieces: ``##x`` for WordPiece; for byte-level BPE
and SentencePiece a piece that starts with ``Ġ`` / ``▁`` opens a word. Tokenizer word ids, when the
caller has them, take precedence. Per sequence ``n = max(1, round(p * words))`` words are chosen
uniformly without replacement; special tokens and padding are never masked. The mask is always
computed on the exact, already-truncated ids it is applied to.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase


@dataclass
class WordBoundaries:
    """Per-vocabulary lookup tables that tell where words start.

    Attributes:
        continuation: ``bool[vocab]``, True for a piece that continues the previous word.
        special: ``bool[vocab]``, True for special tokens (never masked, never a word).
        random_candidates: ids that random replacement may draw (no special tokens).
    """

    continuation: torch.Tensor
    special: torch.Tensor
    random_candidates: torch.Tensor

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> WordBoundaries:
        vocab = tokenizer.get_vocab()
        size = max(len(tokenizer), max(vocab.values()) + 1)
        tokens = [""] * size
        for token, index in vocab.items():
            tokens[index] = token
        wordpiece = sum(t.startswith("##") for t in tokens) > 0.05 * size
        start_markers = ("Ġ", "▁")
        continuation = torch.zeros(size, dtype=torch.bool)
        for index, token in enumerate(tokens):
            if wordpiece:
                continuation[index] = token.startswith("##")
            else:
                continuation[index] = bool(token) and not token.startswith(start_markers)
        special = torch.zeros(size, dtype=torch.bool)
        special[torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)] = True
        # Unused/added placeholders ([unused12], <extra_id_0>) are poor random replacements too.
        usable = ~special & torch.tensor([not (t.startswith("[unused") or t == "") for t in tokens])
        return cls(continuation, special, usable.nonzero().squeeze(1))


def word_starts(
    input_ids: torch.Tensor,
    candidate: torch.Tensor,
    boundaries: WordBoundaries,
    word_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bool ``[B, L]``: True where a word starts among ``candidate`` positions.

    ``word_ids`` (``[B, L]``, -1 for specials/padding), when given, decides instead of the vocabulary:
    a word starts where the id differs from the previous candidate position's id.
    """
    previous_candidate = torch.zeros_like(candidate)
    previous_candidate[:, 1:] = candidate[:, :-1]
    if word_ids is not None:
        previous_word = torch.full_like(word_ids, -1)
        previous_word[:, 1:] = word_ids[:, :-1]
        starts = (word_ids != previous_word) | ~previous_candidate
    else:
        starts = ~boundaries.continuation.to(input_ids.device)[input_ids] | ~previous_candidate
    return starts & candidate


def whole_word_mask(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    boundaries: WordBoundaries,
    rate: float,
    word_ids: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    whole_words: bool = True,
) -> torch.Tensor:
    """Choose whole words to mask: bool ``[B, L]`` with ``max(1, round(rate * words))`` words per row.

    Rows with no word at all get no mask. Selection is uniform over words, without replacement. With
    ``whole_words=False`` every sub-token counts as a word of its own (token-level masking).
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(f"mask rate must be in (0, 1), got {rate}")
    special = boundaries.special.to(input_ids.device)[input_ids]
    candidate = attention_mask.bool() & ~special
    starts = word_starts(input_ids, candidate, boundaries, word_ids) if whole_words else candidate
    n_words = starts.sum(dim=1)
    n_mask = torch.clamp(torch.floor(rate * n_words.float() + 0.5).long(), min=1)
    n_mask = torch.where(n_words > 0, n_mask, torch.zeros_like(n_mask))
    # Rank the word starts of each row by a random key; keep the n_mask lowest.
    keys = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    keys = keys.masked_fill(~starts, 2.0)
    ranks = keys.argsort(dim=1).argsort(dim=1)
    chosen_start = starts & (ranks < n_mask.unsqueeze(1))
    # Spread each start's decision over its word: word index = running count of starts. Non-start
    # positions write into a spare last column so they never overwrite a word's decision.
    word_index = (starts.long().cumsum(dim=1) - 1).clamp(min=0)
    length = input_ids.shape[1]
    chosen_word = torch.zeros(input_ids.shape[0], length + 1, dtype=torch.bool, device=input_ids.device)
    chosen_word.scatter_(1, word_index.masked_fill(~starts, length), chosen_start)
    return candidate & chosen_word.gather(1, word_index)


def replace_masked(
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    mask_token_id: int,
    boundaries: WordBoundaries,
    mask_prob: float = 0.8,
    random_prob: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """BERT's 80/10/10 corruption of the chosen positions: [MASK] / random token / unchanged."""
    corrupted = input_ids.clone()
    draw = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    to_mask = mask & (draw < mask_prob)
    to_random = mask & (draw >= mask_prob) & (draw < mask_prob + random_prob)
    corrupted[to_mask] = mask_token_id
    candidates = boundaries.random_candidates.to(input_ids.device)
    picks = torch.randint(
        len(candidates), (int(to_random.sum()),), generator=generator, device=input_ids.device
    )
    corrupted[to_random] = candidates[picks]
    return corrupted


def mlm_labels(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Labels for MLM: the original id at masked positions, -100 elsewhere."""
    return input_ids.masked_fill(~mask, -100)


def remove_masked_tokens(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop masked positions and left-pack what remains (MAE-LM, docs/methods.md#mae-lm).

    Returns ``(kept_ids [B, K], kept_positions [B, K], kept_attention [B, K])`` where ``K`` is the
    longest row's number of kept real tokens, ``kept_positions`` are the ORIGINAL position ids
    (padding slots hold 0) and ``kept_attention`` marks real kept tokens.
    """
    keep = attention_mask.bool() & ~mask
    counts = keep.sum(dim=1)
    width = int(counts.max()) if keep.numel() else 0
    # Stable sort puts kept positions first, in their original order.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices[:, :width]
    kept_attention = torch.arange(width, device=input_ids.device).unsqueeze(0) < counts.unsqueeze(1)
    kept_ids = input_ids.gather(1, order).masked_fill(~kept_attention, 0)
    kept_positions = order.masked_fill(~kept_attention, 0)
    return kept_ids, kept_positions, kept_attention.long()
