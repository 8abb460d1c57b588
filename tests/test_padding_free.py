"""Padding-free batches (maeir/modeling/padding_free.py): the same hidden states, losses and gradients as
padded batches, for every pre-training method, on BERT and RoBERTa (whose position ids start at
padding_idx + 1), with rows of very different lengths, one of them a single token."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import datasets
import pytest
import torch
from transformers import AutoModel, BertConfig, ElectraConfig, RobertaConfig

from maeir.methods.cotmae_v2 import CoTMAEv2Collator, CoTMAEv2Config, CoTMAEv2ForPretraining
from maeir.methods.cotmae_v2.data import context_span_dataset
from maeir.methods.dial_mae import DialMAECollator, DialMAEConfig, DialMAEForPretraining
from maeir.methods.dial_mae.data import dialogue_pairs
from maeir.methods.mae_lm import MAELMCollator, MAELMConfig, MAELMForMaskedLM
from maeir.methods.mlm import MaskedLMConfig, MaskedLMForPretraining, MLMCollator
from maeir.modeling.padding_free import encode_padding_free, flatten_batch, use_varlen_attention

REPO = Path(__file__).resolve().parents[1]

SIZES = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}


def family_config(family: str, vocab_size: int, pad_token_id: int = 0):
    """A tiny config of a backbone family, no dropout (so padded and padding-free runs are comparable)."""
    common = {
        **SIZES,
        "vocab_size": vocab_size,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
    if family == "bert":
        return BertConfig(**common, pad_token_id=pad_token_id)
    if family == "roberta":  # padding_idx = pad_token_id; positions start at pad_token_id + 1
        return RobertaConfig(**common, pad_token_id=pad_token_id)
    return ElectraConfig(**common, embedding_size=32, pad_token_id=pad_token_id)


def ragged_batch(vocab_size: int, pad_token_id: int, lengths=(17, 1, 9, 3, 12)):
    generator = torch.Generator().manual_seed(0)
    length = max(lengths)
    mask = (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids = torch.randint(5, vocab_size, (len(lengths), length), generator=generator)
    return ids.masked_fill(mask == 0, pad_token_id), mask


@pytest.mark.parametrize("family", ["bert", "roberta", "electra"])
def test_encoder_hidden_states_and_gradients_match_padded(family):
    torch.manual_seed(0)
    model = AutoModel.from_config(family_config(family, 1000, pad_token_id=1), attn_implementation="sdpa")
    ids, mask = ragged_batch(1000, pad_token_id=1)
    real = mask.bool()

    padded = model(input_ids=ids, attention_mask=mask).last_hidden_state
    (padded[real] ** 2).mean().backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    use_varlen_attention(model)
    flat = encode_padding_free(model, ids, mask)
    (flat[real] ** 2).mean().backward()
    torch.testing.assert_close(flat[real], padded[real], rtol=1e-5, atol=1e-5)
    assert flat[~real].abs().max() == 0  # padding slots are zeros, never computed
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == reference.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference[name], rtol=0, atol=1e-5, msg=name)
    # the switched backbone still gives the padded results on padded batches
    model.zero_grad()
    again = model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(again, padded, rtol=0, atol=0)


def test_flatten_refuses_left_padding_and_empty_rows():
    with pytest.raises(ValueError, match="right padding"):
        flatten_batch(torch.tensor([[0, 1, 1], [1, 1, 1]]))
    with pytest.raises(ValueError, match="empty row"):
        flatten_batch(torch.tensor([[0, 0, 0], [1, 1, 1]]))
    keep, cu_seqlens, longest = flatten_batch(torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]]))
    assert keep.tolist() == [0, 1, 3, 6, 7, 8] and cu_seqlens.tolist() == [0, 2, 3, 6] and longest == 3


# -- every method, padded vs padding-free -------------------------------------------------------------
TURNS = [
    "Hello, how are you doing today?",
    "ok",
    "Im alright, I just took a nap. But it was one of those naps that doesnt help anything at all, sadly.",
    "oh wow haha so you still feel tired huh?",
    "Yeah",
    "No, its just adjusting to a time change. But enough about me, what are you up to this weekend?",
]


def method_batch(method: str, tokenizer, sample_texts):
    if method in ("mlm", "mae_lm"):
        texts = ["Hi", *sample_texts[:5]]  # a 3-token row beside rows of up to 48 tokens
        features = [{"input_ids": tokenizer(t, truncation=True, max_length=48)["input_ids"]} for t in texts]
        collator = MLMCollator(tokenizer, seed=0) if method == "mlm" else MAELMCollator(tokenizer, seed=0)
        return collator(features)
    if method == "dial_mae":
        rng = random.Random(0)
        sessions = [rng.sample(TURNS, rng.randint(2, len(TURNS))) for _ in range(6)]
        pairs = dialogue_pairs(sessions, tokenizer)
        collator = DialMAECollator(tokenizer, context_max_length=48, response_max_length=24, seed=0)
        return collator([pairs.pair(i) for i in range(min(8, len(pairs)))])
    texts = [*sample_texts[:10], "Short.", "A second short line here."]
    documents = datasets.Dataset.from_dict({"id": [f"d{i}" for i in range(len(texts))], "text": texts})
    dataset, _ = context_span_dataset(documents, tokenizer, max_seq_length=32)
    return CoTMAEv2Collator(tokenizer, seed=0)([dataset[i] for i in range(0, min(len(dataset), 24), 3)])


def method_model(method: str, encoder_config, tokenizer):
    fields = {"encoder_config": encoder_config.to_dict(), "mask_token_id": tokenizer.mask_token_id}
    if method == "mlm":
        return MaskedLMForPretraining(MaskedLMConfig(**fields))
    if method == "mae_lm":
        return MAELMForMaskedLM(MAELMConfig(**fields))
    if method == "dial_mae":
        return DialMAEForPretraining(DialMAEConfig(**fields, decoder_dropout=0.0))
    return CoTMAEv2ForPretraining(CoTMAEv2Config(**fields, decoder_dropout=0.0))


@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize("method", ["mlm", "mae_lm", "dial_mae", "cotmae_v2"])
def test_method_losses_and_gradients_match_padded(method, family, tokenizer, sample_texts, monkeypatch):
    import maeir.modeling.padding_free as padding_free

    flattened = []
    original = padding_free.flatten_batch
    monkeypatch.setattr(
        padding_free, "flatten_batch", lambda mask: flattened.append(mask.shape) or original(mask)
    )
    torch.manual_seed(0)
    config = family_config(family, tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id)
    padded_model = method_model(method, config, tokenizer).train()
    flat_model = copy.deepcopy(padded_model)
    flat_model.config.padding_free = True
    batch = method_batch(method, tokenizer, sample_texts)
    lengths = batch["attention_mask"].sum(1)
    assert lengths.max() >= 3 * lengths.min()  # rows of very different lengths

    outputs = {}
    for name, model in (("padded", padded_model), ("flat", flat_model)):
        output = model(**batch)
        output.loss.backward()
        outputs[name] = output
        assert bool(flattened) == (name == "flat")  # the flat model really ran padding-free
    torch.testing.assert_close(outputs["flat"].loss, outputs["padded"].loss, rtol=1e-5, atol=0)
    for key, value in outputs["padded"].items():  # every loss part the method reports
        if key.endswith("loss") and value is not None:
            torch.testing.assert_close(outputs["flat"][key], value, rtol=1e-5, atol=1e-7, msg=key)
    flat_grads = dict(flat_model.named_parameters())
    checked = 0
    for name, parameter in padded_model.named_parameters():
        if parameter.grad is None:
            assert flat_grads[name].grad is None, name
            continue
        torch.testing.assert_close(flat_grads[name].grad, parameter.grad, rtol=0, atol=1e-5, msg=name)
        checked += 1
    assert checked > 10
    decoders = {"mlm": 0, "mae_lm": 1, "dial_mae": 1, "cotmae_v2": 2}[method]  # CoT-MAE v2: AE + AR
    assert len(flattened) == 1 + decoders  # the encoder and every decoder ran flat


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_bi_encoder_vectors_and_gradients_match_padded(family, tokenizer, tmp_path):
    """Dense and sparse vectors of the bi-encoder, and the contrastive loss's gradients."""
    from transformers import AutoModelForMaskedLM

    from maeir.retrieval.modeling_bi_encoder import BiEncoderModel

    torch.manual_seed(0)
    config = family_config(family, tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id)
    AutoModelForMaskedLM.from_config(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    padded = BiEncoderModel.from_backbone(str(tmp_path), tokenizer=tokenizer, representation="hybrid")
    flat = copy.deepcopy(padded)
    flat.config.padding_free = True
    texts = ["ok", "Who wrote the novel about a white whale and the captain who hunted it across the seas?",
             "Moby-Dick", "Herman Melville published Moby-Dick in 1851; the book follows Ishmael."]  # fmt: skip
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    vectors = {}
    for name, model in (("padded", padded), ("flat", flat)):
        out = model.encode(batch["input_ids"], batch["attention_mask"], side="passage")
        scores = out["dense"] @ out["dense"].T + out["sparse"] @ out["sparse"].T
        torch.nn.functional.cross_entropy(scores, torch.arange(len(texts))).backward()
        vectors[name] = out
    for view in ("dense", "sparse"):
        torch.testing.assert_close(vectors["flat"][view], vectors["padded"][view], rtol=1e-5, atol=1e-5)
    flat_grads = dict(flat.named_parameters())
    for name, parameter in padded.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(flat_grads[name].grad, parameter.grad, rtol=0, atol=1e-5, msg=name)


def test_response_selection_padding_free(tmp_path, tiny_backbone_dir, monkeypatch):
    """``--padding_free true`` on the response-selection driver: the towers run flat (spy), the recipe
    saved with the model says so, and its scores equal the padded model's (dialogue recipe: contexts
    cut on the left, rows of very different lengths)."""
    import maeir.modeling.padding_free as padding_free
    from maeir.cli.response_selection import finetune_main
    from maeir.retrieval.loading import load_bi_encoder
    from maeir.retrieval.response_selection import score_groups
    from tests.methods.test_dial_mae import write_dialogue_file

    flattened = []
    original = padding_free.flatten_batch
    monkeypatch.setattr(
        padding_free, "flatten_batch", lambda mask: flattened.append(mask.shape) or original(mask)
    )
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    write_dialogue_file(train, 8, 2, seed=1)
    groups = write_dialogue_file(test, 6, 4, seed=2)
    out = tmp_path / "rs"
    finetune_main([
        str(REPO / "configs/finetune_response_selection_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir,
        "--train_file", str(train), "--validation_file", str(test), "--output_dir", str(out), "--max_steps", "2",
        "--per_device_train_batch_size", "4", "--context_max_length", "24", "--response_max_length", "12",
        "--disable_tqdm", "true", "--padding_free", "true",
    ])  # fmt: skip
    assert flattened  # training and evaluation really ran padding-free
    flat, tokenizer = load_bi_encoder(out)
    assert flat.config.padding_free is True
    padded = copy.deepcopy(flat)
    padded.config.padding_free = False
    for a, b in zip(
        score_groups(flat, tokenizer, groups, batch_size=5),
        score_groups(padded, tokenizer, groups, batch_size=5),
    ):
        torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), rtol=1e-5, atol=1e-5)
