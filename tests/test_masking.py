"""Whole-word masking: rates, word boundaries, specials, 80/10/10, removal of masked tokens."""

from __future__ import annotations

import pytest
import torch

from maeir.data import MAELMCollator, MLMCollator, WordBoundaries, remove_masked_tokens, whole_word_mask
from maeir.data.collators import pad_sequences
from maeir.data.masking import replace_masked


@pytest.fixture(scope="module")
def boundaries(tokenizer):
    return WordBoundaries.from_tokenizer(tokenizer)


@pytest.fixture(scope="module")
def batch(tokenizer, sample_texts):
    ids = [tokenizer(t, truncation=True, max_length=96)["input_ids"] for t in sample_texts]
    return pad_sequences(ids, tokenizer.pad_token_id)


def words_of(tokenizer, ids: list[int]) -> list[list[int]]:
    """Positions of each word of one sequence, from the token strings (independent of the code under test)."""
    words: list[list[int]] = []
    for position, token in enumerate(tokenizer.convert_ids_to_tokens(ids)):
        if token in tokenizer.all_special_tokens:
            continue
        if token.startswith("##") and words:
            words[-1].append(position)
        else:
            words.append([position])
    return words


def test_exact_word_count_and_boundaries(tokenizer, boundaries, batch):
    input_ids, attention = batch
    generator = torch.Generator().manual_seed(1)
    for rate in (0.15, 0.3, 0.75):
        mask = whole_word_mask(input_ids, attention, boundaries, rate, generator=generator)
        for row in range(input_ids.shape[0]):
            length = int(attention[row].sum())
            words = words_of(tokenizer, input_ids[row, :length].tolist())
            masked_words = 0
            for positions in words:
                states = {bool(mask[row, p]) for p in positions}
                assert len(states) == 1, "a word was split by the mask"
                masked_words += states.pop()
            assert masked_words == max(1, int(rate * len(words) + 0.5))
            # specials and padding never masked
            assert not mask[row, 0] and not mask[row, length - 1] and not mask[row, length:].any()


def test_rate_and_uniformity_statistics(tokenizer, boundaries):
    # 2000 copies of one sentence: every word must be chosen about rate of the time.
    ids = tokenizer(
        "the cat sat on the mat while a dog barked at the unbelievable postman", return_tensors="pt"
    )
    input_ids = ids.input_ids.repeat(2000, 1)
    attention = ids.attention_mask.repeat(2000, 1)
    mask = whole_word_mask(input_ids, attention, boundaries, 0.3, generator=torch.Generator().manual_seed(0))
    words = words_of(tokenizer, ids.input_ids[0].tolist())
    n_mask = max(1, int(0.3 * len(words) + 0.5))
    expected = n_mask / len(words)
    for positions in words:
        frequency = mask[:, positions[0]].float().mean().item()
        # binomial std with n=2000 is ~0.01; 5 sigma
        assert abs(frequency - expected) < 0.05, (positions, frequency, expected)


def test_token_level_variant(boundaries, batch):
    input_ids, attention = batch
    mask = whole_word_mask(input_ids, attention, boundaries, 0.5, whole_words=False)
    real = attention.bool() & ~boundaries.special[input_ids]
    per_row = mask.sum(1)
    assert torch.equal(per_row, torch.clamp(torch.floor(0.5 * real.sum(1) + 0.5).long(), min=1))


def test_word_ids_take_precedence(boundaries, tokenizer):
    ids = torch.tensor([[101, 2000, 2001, 2002, 2003, 102]])
    attention = torch.ones_like(ids)
    word_ids = torch.tensor([[-1, 0, 0, 0, 1, -1]])  # three pieces form word 0
    for seed in range(20):
        mask = whole_word_mask(
            ids, attention, boundaries, 0.5, word_ids=word_ids, generator=torch.Generator().manual_seed(seed)
        )
        assert len(set(mask[0, 1:4].tolist())) == 1
        assert int(mask[0].sum()) in (1, 3)


def test_80_10_10(boundaries, tokenizer):
    input_ids = torch.randint(1000, 20000, (200, 100))
    mask = torch.rand(input_ids.shape) < 0.5
    corrupted = replace_masked(
        input_ids, mask, tokenizer.mask_token_id, boundaries, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(corrupted[~mask], input_ids[~mask])
    chosen = mask.sum().item()
    as_mask = (corrupted[mask] == tokenizer.mask_token_id).sum().item() / chosen
    kept = (corrupted[mask] == input_ids[mask]).sum().item() / chosen
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02
    assert not boundaries.special[corrupted[mask & (corrupted != tokenizer.mask_token_id)]].any()


def test_remove_masked_tokens_keeps_order_and_positions(tokenizer, boundaries, batch):
    input_ids, attention = batch
    mask = whole_word_mask(input_ids, attention, boundaries, 0.15, generator=torch.Generator().manual_seed(3))
    kept_ids, kept_positions, kept_attention = remove_masked_tokens(input_ids, attention, mask)
    assert kept_ids.shape[1] < input_ids.shape[1]
    for row in range(input_ids.shape[0]):
        expected_positions = [p for p in range(input_ids.shape[1]) if attention[row, p] and not mask[row, p]]
        n = len(expected_positions)
        assert kept_positions[row, :n].tolist() == expected_positions
        assert kept_ids[row, :n].tolist() == input_ids[row, expected_positions].tolist()
        assert kept_attention[row].sum() == n and not kept_attention[row, n:].any()


def test_collators_mask_the_truncated_ids(tokenizer, sample_texts):
    features = [
        {"input_ids": tokenizer(t, truncation=True, max_length=16)["input_ids"]} for t in sample_texts
    ]
    batch = MLMCollator(tokenizer, mask_rate=0.3, seed=0)(features)
    assert batch["input_ids"].shape[1] == 16
    labelled = batch["labels"] != -100
    assert labelled.any(dim=1).all()  # every row has at least one masked word inside the kept 16 tokens
    original = torch.tensor([f["input_ids"] for f in features])
    assert torch.equal(batch["labels"][labelled], original[labelled])
    mae = MAELMCollator(tokenizer, mask_rate=0.3, seed=0)(features)
    assert not (mae["encoder_input_ids"] == tokenizer.mask_token_id).any()
    assert mae["encoder_input_ids"].shape[1] < 16
    for row in range(len(features)):
        kept = set(mae["encoder_position_ids"][row][mae["encoder_attention_mask"][row].bool()].tolist())
        masked = set((mae["labels"][row] != -100).nonzero().squeeze(1).tolist())
        assert kept.isdisjoint(masked) and kept | masked == set(range(16))
