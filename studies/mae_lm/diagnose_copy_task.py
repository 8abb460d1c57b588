"""Diagnostic of the MAE-LM study: can MAE-LM's decoder read *which* visible token sits where?

    python studies/mae_lm/diagnose_copy_task.py [STEPS]

Synthetic task, no data needed: sequences of 8 token pairs ``a a b b ...`` (35-word vocabulary); one
member of a pair is masked with probability 0.25; the answer is the other member, next to it. Same
tiny encoder (2 layers, hidden 64, 2 heads), batch 32, lr 1e-3, seed 0; chance is ln 35 = 3.56.
Plain MLM (``MaskedLMForPretraining``) against MAE-LM (``MAELMForMaskedLM``) with 1 or 2 decoder
layers, under two optimisers: ``plain`` (AdamW defaults, no clipping, no warm-up) and ``paper`` (the
MAE-LM pre-training script's Adam betas (0.9, 0.98), eps 1e-6, gradient clipping 2.0, plus 100 warm-up
steps). Also MAE-LM with the encoder's transformer layers frozen at their random initialisation, and
a bag-of-words task (every token the same word) with a normal and a blind decoder (encoder outputs
replaced by zeros). Prints the mean training loss of 20 steps at every 500th step.

Measured on the 2-core build machine (2026-12-06, one thread), 3,000 steps:

| run | 500 | 1,000 | 2,000 | 3,000 |
|---|---|---|---|---|
| MLM, plain | 0.65 | 0.04 | 0.01 | 0.02 |
| MAE-LM 1 decoder layer, plain | 3.53 | 3.48 | 3.44 | 3.38 |
| MAE-LM 2 decoder layers, plain | 3.37 | 3.22 | 3.01 | 0.03 |
| MAE-LM 1 decoder layer, paper | 3.42 | 3.25 | 1.11 | 0.01 |
| MAE-LM 2 decoder layers, paper | 3.17 | 0.02 | 0.01 | 0.00 |
| MAE-LM 1 decoder layer, plain, encoder layers frozen | 0.23 | 0.05 | 0.02 | 0.00 |

Reading: MAE-LM *can* learn position-selective decoding; the model is not mis-wired (its decoder
input is built as in the authors' code: encoder outputs at their original positions, the [MASK] word
embedding in the removed slots, the decoder's own learned position table, an embedding LayerNorm).
What it has is a long plateau while encoder and decoder co-adapt: with the encoder's layers frozen a
1-layer decoder learns the task in 500 steps; trained jointly it needs 2,000-3,000 steps, and a
second decoder layer and the paper's optimiser settings shorten the plateau. The earlier reading of
this diagnostic ("the decoder cannot learn position-selective attention", from 1,000 plain-AdamW
steps of the 1-layer decoder only) was wrong. Bag of words after 200 steps: MAE-LM 0.30, blind 3.56.
"""

import sys

import torch
from transformers import BertConfig

from maeir import MAELMConfig, MAELMForMaskedLM, MaskedLMConfig, MaskedLMForPretraining

VOCAB, MASK = 40, 4
CONFIG = BertConfig(
    vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
    max_position_embeddings=64, pad_token_id=0,
)  # fmt: skip


def build(kind: str, decoder_layers: int = 1):
    if kind == "mlm":
        return MaskedLMForPretraining(MaskedLMConfig(encoder_config=CONFIG.to_dict(), mask_token_id=MASK))
    return MAELMForMaskedLM(
        MAELMConfig(
            encoder_config=CONFIG.to_dict(),
            mask_token_id=MASK,
            decoder_layers=decoder_layers,
            decoder_max_positions=64,
        )
    )


def mae_lm_inputs(ids: torch.Tensor, masked: torch.Tensor) -> dict[str, torch.Tensor]:
    """The kept tokens left-packed with their original positions (what ``MAELMCollator`` builds)."""
    batch, length = ids.shape
    keep = ~masked
    width = int(keep.sum(1).max())
    positions = torch.zeros(batch, width, dtype=torch.long)
    attention = torch.zeros(batch, width, dtype=torch.long)
    for b in range(batch):
        kept = keep[b].nonzero().squeeze(-1)
        positions[b, : len(kept)] = kept
        attention[b, : len(kept)] = 1
    return {
        "encoder_input_ids": torch.gather(ids, 1, positions) * attention,
        "encoder_position_ids": positions,
        "encoder_attention_mask": attention,
        "attention_mask": torch.ones(batch, length, dtype=torch.long),
        "labels": ids.masked_fill(keep, -100),
    }


def train(
    kind: str,
    task: str,
    steps: int,
    blind: bool = False,
    decoder_layers: int = 1,
    optimiser: str = "plain",
    freeze_encoder_layers: bool = False,
) -> list[float]:
    torch.manual_seed(0)
    model = build(kind, decoder_layers)
    if freeze_encoder_layers:
        for parameter in model.encoder.encoder.parameters():
            parameter.requires_grad_(False)
    if blind:
        model.encoder.register_forward_hook(
            lambda m, i, o: type(o)(last_hidden_state=torch.zeros_like(o.last_hidden_state))
        )
    parameters = [p for p in model.parameters() if p.requires_grad]
    if optimiser == "paper":
        optimizer = torch.optim.AdamW(parameters, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    else:
        optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    warmup = 100 if optimiser == "paper" else 1
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        if task == "pairs":
            ids = torch.randint(5, VOCAB, (32, 8), generator=generator).repeat_interleave(2, dim=1)
            masked = torch.zeros(ids.shape, dtype=torch.bool)
            member = torch.randint(0, 2, (32, 8), generator=generator) + 2 * torch.arange(8)
            masked.scatter_(1, member, torch.rand(32, 8, generator=generator) < 0.25)
        else:  # bag of words: one word repeated; the last 4 of 16 slots masked
            ids = torch.randint(5, VOCAB, (32, 1), generator=generator).expand(32, 16).clone()
            masked = torch.zeros(ids.shape, dtype=torch.bool)
            masked[:, 12:] = True
        if kind == "mlm":
            batch = {
                "input_ids": ids.masked_fill(masked, MASK),
                "attention_mask": torch.ones_like(ids),
                "labels": ids.masked_fill(~masked, -100),
            }
        else:
            batch = mae_lm_inputs(ids, masked)
        loss = model(**batch).loss
        loss.backward()
        if optimiser == "paper":
            torch.nn.utils.clip_grad_norm_(parameters, 2.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return losses


def tail(losses: list[float], at: int) -> float:
    return round(sum(losses[at - 20 : at]) / 20, 3)


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    checkpoints = list(range(500, steps + 1, 500))
    runs = [
        ("MLM, plain", "mlm", {}),
        ("MAE-LM 1 decoder layer, plain", "mae_lm", {}),
        ("MAE-LM 2 decoder layers, plain", "mae_lm", {"decoder_layers": 2}),
        ("MAE-LM 1 decoder layer, paper", "mae_lm", {"optimiser": "paper"}),
        ("MAE-LM 2 decoder layers, paper", "mae_lm", {"decoder_layers": 2, "optimiser": "paper"}),
        ("MAE-LM 1 decoder layer, plain, encoder layers frozen", "mae_lm", {"freeze_encoder_layers": True}),
    ]
    for label, kind, options in runs:
        losses = train(kind, "pairs", steps, **options)
        print(label, [(s, tail(losses, s)) for s in checkpoints], flush=True)
    print("bag of words, MAE-LM", tail(train("mae_lm", "bag", 200), 200))
    print("bag of words, MAE-LM, blind decoder", tail(train("mae_lm", "bag", 200, blind=True), 200))
