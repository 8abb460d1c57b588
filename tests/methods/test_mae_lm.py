"""MAE-LM model: the encoder never sees [MASK], positions kept, loss at masked slots, gradients, save/reload."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining

import maeir
from maeir import MAELMConfig, MAELMForMaskedLM, MaskedLMConfig, MaskedLMForPretraining
from maeir.methods.mae_lm import MAELMCollator
from maeir.methods.mlm import MLMCollator


@pytest.fixture()
def model(tiny_encoder_config, tokenizer):
    torch.manual_seed(0)
    config = MAELMConfig(encoder_config=tiny_encoder_config.to_dict(), mask_token_id=tokenizer.mask_token_id)
    return MAELMForMaskedLM(config).eval()


@pytest.fixture()
def batch(tokenizer, sample_texts):
    features = [
        {"input_ids": tokenizer(t, truncation=True, max_length=48)["input_ids"]} for t in sample_texts[:8]
    ]
    return MAELMCollator(tokenizer, mask_rate=0.15, seed=0)(features)


def capture_embedding_inputs(model):
    seen = {}
    embeddings = model.encoder.embeddings
    embeddings.word_embeddings.register_forward_hook(
        lambda m, args, out: seen.__setitem__("ids", args[0].clone())
    )
    embeddings.position_embeddings.register_forward_hook(
        lambda m, args, out: seen.__setitem__("pos", args[0].clone())
    )
    return seen


def test_encoder_never_sees_mask_and_keeps_positions(model, batch, tokenizer):
    seen = capture_embedding_inputs(model)
    model(**batch)
    assert not (seen["ids"] == tokenizer.mask_token_id).any()
    assert seen["ids"].shape[1] < batch["attention_mask"].shape[1]
    assert torch.equal(seen["ids"], batch["encoder_input_ids"])
    kept = batch["encoder_attention_mask"].bool()
    assert torch.equal(seen["pos"].expand_as(kept)[kept], batch["encoder_position_ids"][kept])
    # the original positions are not 0..K-1 where something was removed before them
    assert (batch["encoder_position_ids"][kept] != torch.arange(kept.shape[1]).expand_as(kept)[kept]).any()


def test_loss_only_at_masked_slots(model, batch):
    out = model(**batch)
    labels = batch["labels"]
    full_logits = model.lm_head(out.decoder_last_hidden_state)
    expected = F.cross_entropy(
        full_logits.view(-1, full_logits.shape[-1]), labels.view(-1), ignore_index=-100
    )
    torch.testing.assert_close(out.loss, expected)
    assert out.logits.shape[0] == int((labels != -100).sum())
    # the decoder output at unmasked positions receives no gradient from the loss
    model.train()
    model.decoder.register_forward_hook(
        lambda m, args, output: output.retain_grad() or setattr(m, "_out", output)
    )
    model.config.decoder_dropout = 0.0
    loss = model(**batch).loss
    loss.backward()
    grad = model.decoder._out.grad
    assert grad[labels == -100].abs().max() == 0
    assert grad[labels != -100].abs().max() > 0


def test_gradient_reaches_encoder_through_decoder(model, batch):
    model.train()
    model(**batch).loss.backward()
    for layer in model.encoder.encoder.layer:
        assert layer.attention.self.query.weight.grad.abs().sum() > 0
    assert model.decoder_position_embeddings.weight.grad.abs().sum() > 0


def test_decoder_reads_the_encoder(model, batch):
    base = model(**batch).logits
    changed = dict(batch)
    changed["encoder_input_ids"] = batch["encoder_input_ids"].clone()
    changed["encoder_input_ids"][:, 1:-1] = 2023  # same positions and masks, other visible words
    assert (model(**changed).logits - base).abs().max() > 1e-3


def test_masked_only_head_equals_full_vocabulary_mlm(tiny_encoder_config, tokenizer, sample_texts):
    torch.manual_seed(0)
    ours = MaskedLMForPretraining(MaskedLMConfig(encoder_config=tiny_encoder_config.to_dict())).eval()
    plain = AutoModelForMaskedLM.from_config(tiny_encoder_config).eval()
    plain.load_state_dict(ours.backbone.state_dict())
    features = [
        {"input_ids": tokenizer(t, truncation=True, max_length=48)["input_ids"]} for t in sample_texts[:8]
    ]
    batch = MLMCollator(tokenizer, seed=0)(features)
    torch.testing.assert_close(ours(**batch).loss, plain(**batch).loss)


def test_save_reload_identical_and_plain_encoder(model, batch, tokenizer, tmp_path):
    model.save_pretrained(tmp_path / "full")
    model.save_encoder(tmp_path / "encoder", tokenizer)
    assert not list((tmp_path / "full").glob("*.bin")) and (tmp_path / "full" / "model.safetensors").exists()
    for auto in (AutoModelForMaskedLM, AutoModelForPreTraining):
        reloaded = auto.from_pretrained(tmp_path / "full").eval()
        assert isinstance(reloaded, MAELMForMaskedLM)
        out_a, out_b = model(**batch), reloaded(**batch)
        assert torch.equal(out_a.loss, out_b.loss) and torch.equal(out_a.logits, out_b.logits)
    plain = AutoModel.from_pretrained(tmp_path / "encoder").eval()
    ids = batch["attention_mask"] * 0 + 2023
    ours = model.encoder(input_ids=ids, attention_mask=batch["attention_mask"]).last_hidden_state
    assert torch.equal(plain(input_ids=ids, attention_mask=batch["attention_mask"]).last_hidden_state, ours)


def test_encoder_loads_without_maeir(model, tokenizer, tmp_path):
    model.save_encoder(tmp_path / "encoder", tokenizer)
    ids = tokenizer("a plain transformers user loads this", return_tensors="pt").input_ids
    expected = model.backbone(input_ids=ids).logits
    torch.save(expected, tmp_path / "expected.pt")
    code = f"""
import sys, torch
from transformers import AutoModelForMaskedLM, AutoModel, AutoTokenizer
m = AutoModelForMaskedLM.from_pretrained({str(tmp_path / "encoder")!r}).eval()
AutoModel.from_pretrained({str(tmp_path / "encoder")!r})
t = AutoTokenizer.from_pretrained({str(tmp_path / "encoder")!r})
ids = t("a plain transformers user loads this", return_tensors="pt").input_ids
assert 'maeir' not in sys.modules
with torch.no_grad():
    assert torch.equal(m(input_ids=ids).logits, torch.load({str(tmp_path / "expected.pt")!r}))
print("OK")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-2000:]


def test_from_backbone_loads_pretrained_weights(tiny_backbone_dir):
    model = MAELMForMaskedLM.from_backbone(tiny_backbone_dir, decoder_layers=1)
    plain = AutoModelForMaskedLM.from_pretrained(tiny_backbone_dir)
    for name, value in plain.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], value), name
    assert len(model.decoder.layers) == 1 and model.config.mask_token_id == 103
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert isinstance(maeir.MAELMConfig(encoder_config=plain.config.to_dict()), MAELMConfig)
