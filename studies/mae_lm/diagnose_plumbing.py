"""Diagnostic of the MAE-LM study: is the collapse a plumbing defect (the decoder cannot use the encoder)
or a from-scratch training dynamic?

    python studies/mae_lm/diagnose_plumbing.py BASE_DIR [STEPS] [ARMS]

BASE_DIR: a pre-training run folder whose ``encoder/`` is a small BERT already trained with plain MLM
(e.g. the Dial-MAE study's shared base, ``studies/dial_mae/base`` after a study run). Arms, same
batches (32 packed 128-token Wikipedia blocks, 15% masking, MAE-LM collator), AdamW lr 1e-3:
  frozen_encoder   the trained encoder, frozen; only MAE-LM's decoder trains
  blind_decoder    the same, but the decoder gets zeros instead of the encoder outputs (it can only
                   use the [MASK] embedding and positions: the unigram level)
  trained_encoder  the trained encoder and the decoder both train (lr 5e-4): does its rank collapse?
If the plumbing is right, frozen_encoder's loss falls far below blind_decoder's. Prints the loss
(mean of the last 20 steps) and the encoder's last-layer effective rank on 100 held-out conversations.
"""

import sys

import torch
from transformers import AutoModel, AutoTokenizer

from maeir.analysis.effective_rank import layerwise_effective_rank
from maeir.cli.study.common import corpus_texts
from maeir.methods.mae_lm import MAELMCollator, MAELMForMaskedLM
from maeir.methods.mae_lm.configuration_mae_lm import MAELMConfig

base, steps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200
tok = AutoTokenizer.from_pretrained(f"{base}/encoder")
texts = corpus_texts(["wikipedia"])[:3000]
ids = tok(texts, add_special_tokens=False)["input_ids"]
flat = [t for doc in ids for t in doc + [tok.sep_token_id]]
L = 126
blocks = [[tok.cls_token_id] + flat[i : i + L] + [tok.sep_token_id] for i in range(0, len(flat), L)]
heldout = corpus_texts(["chitchat_valid"])[:100]


def build():
    torch.manual_seed(1)
    encoder = AutoModel.from_pretrained(f"{base}/encoder", attn_implementation="sdpa")
    model = MAELMForMaskedLM(
        MAELMConfig(
            encoder_config=encoder.config.to_dict(), mask_token_id=tok.mask_token_id, decoder_layers=1
        )
    )
    missing, _ = model.encoder.load_state_dict(
        encoder.state_dict(), strict=False
    )  # word embeddings: tied head too
    assert not missing, missing
    return model


def last_rank(model):
    model.eval()
    rows = layerwise_effective_rank(model, tok, heldout, "m", max_length=128, max_vectors=2000)
    model.train()
    return [r["effective_rank"] for r in rows if r["stack"] == "encoder"][-1]


for arm in (
    sys.argv[3].split(",") if len(sys.argv) > 3 else ("frozen_encoder", "blind_decoder", "trained_encoder")
):
    model = build()
    if arm != "trained_encoder":
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    if arm == "blind_decoder":
        model.encoder.register_forward_hook(  # training batches only; the rank is measured on the encoder
            lambda m, i, o: (
                type(o)(last_hidden_state=torch.zeros_like(o.last_hidden_state)) if m.training else o
            )
        )
    coll = MAELMCollator.from_model_config(tok, model.config, seed=0)
    lr = 5e-4 if arm == "trained_encoder" else 1e-3
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    rank0 = last_rank(model)
    losses = []
    for s in range(1, steps + 1):
        batch = coll([{"input_ids": blocks[(s * 32 + i) % len(blocks)]} for i in range(32)])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    print(
        arm,
        f"loss(last 20) {sum(losses[-20:]) / 20:.3f}",
        f"first {losses[0]:.3f}",
        f"last-layer erank {rank0:.1f} -> {last_rank(model):.1f}",
        flush=True,
    )
