"""Diagnostic of the MAE-LM study: does MAE-LM from scratch collapse (encoder rank -> 1), and is it bf16?

    python studies/mae_lm/diagnose_collapse.py LR fp32|bf16 STEPS [TOKENIZER_DIR] [DECODER_LAYERS]

Same model shape as configs/study/mae_lm_cpu.yaml (4 layers, hidden 128, 1 decoder layer), batch 32 of
128-token packed Wikipedia blocks, AdamW, linear warm-up over 72 steps; prints the training loss and the
effective rank of real-token representations per encoder layer (embeddings first) every 100 steps on
100 held-out chitchat conversations. Run on the 2-core build machine, one thread each, 2026-12-06.
"""

import sys

import torch
from transformers import AutoTokenizer, BertConfig

from maeir.analysis.effective_rank import layerwise_effective_rank
from maeir.cli.study.common import corpus_texts
from maeir.methods.mae_lm import MAELMCollator, MAELMForMaskedLM
from maeir.methods.mae_lm.configuration_mae_lm import MAELMConfig

tok = AutoTokenizer.from_pretrained(sys.argv[4] if len(sys.argv) > 4 else "studies/mae_lm/tokenizer")
texts = corpus_texts(["wikipedia"])[:3000]
ids = tok(texts, add_special_tokens=False)["input_ids"]
flat = [t for doc in ids for t in doc + [tok.sep_token_id]]
L = 126
blocks = [[tok.cls_token_id] + flat[i : i + L] + [tok.sep_token_id] for i in range(0, len(flat), L)]
lr, bf, steps = float(sys.argv[1]), sys.argv[2] == "bf16", int(sys.argv[3])
torch.manual_seed(1)
enc = BertConfig(
    vocab_size=len(tok),
    hidden_size=128,
    num_hidden_layers=4,
    num_attention_heads=2,
    intermediate_size=512,
    pad_token_id=0,
)
model = MAELMForMaskedLM(
    MAELMConfig(
        encoder_config=enc.to_dict(),
        mask_token_id=tok.mask_token_id,
        decoder_layers=int(sys.argv[5]) if len(sys.argv) > 5 else 1,
    )
)
coll = MAELMCollator.from_model_config(tok, model.config, seed=0)
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98), eps=1e-6)
warm = int(0.06 * 1200)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
heldout = corpus_texts(["chitchat_valid"])[:100]
for s in range(1, steps + 1):
    batch = coll([{"input_ids": blocks[(s * 32 + i) % len(blocks)]} for i in range(32)])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
    opt.step()
    sched.step()
    opt.zero_grad()
    if s % 100 == 0:
        model.eval()
        rows = layerwise_effective_rank(model, tok, heldout, "m", max_length=128, max_vectors=2000)
        model.train()
        print(
            sys.argv[1:],
            s,
            round(float(loss), 3),
            [r["effective_rank"] for r in rows if r["stack"] == "encoder"],
            flush=True,
        )
