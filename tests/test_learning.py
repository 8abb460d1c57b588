"""A tiny MAE-LM and a tiny MLM actually learn on real text (loss falls clearly)."""

from __future__ import annotations

import pytest
import torch

from maeir import MAELMConfig, MAELMForMaskedLM, MaskedLMConfig, MaskedLMForPretraining
from maeir.data import MAELMCollator, MLMCollator
from maeir.data.corpus import load_text_corpus


@pytest.mark.parametrize(("config_class", "model_class", "collator_class"), [
    (MAELMConfig, MAELMForMaskedLM, MAELMCollator),
    (MaskedLMConfig, MaskedLMForPretraining, MLMCollator),
])  # fmt: skip
def test_tiny_model_learns_on_wikipedia(
    tiny_encoder_config, tokenizer, config_class, model_class, collator_class
):
    torch.manual_seed(0)
    texts = load_text_corpus(None, max_samples=256)["text"]
    features = [{"input_ids": tokenizer(t, truncation=True, max_length=64)["input_ids"]} for t in texts]
    config = config_class(encoder_config=tiny_encoder_config.to_dict(), mask_token_id=tokenizer.mask_token_id)
    model = model_class(config).train()
    collator = collator_class(tokenizer, mask_rate=0.15, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for step in range(150):
        start = (step * 16) % len(features)
        loss = model(**collator(features[start : start + 16])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert first > 9.5  # ~ln(30522) at random init
    assert last < first - 3.0, (first, last)
