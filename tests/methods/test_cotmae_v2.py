"""CoT-MAE v2: span builder, context sampling, collator, sparse view, AE/AR decoders, losses, save/reload, script."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining

import maeir
from maeir import CoTMAEv2Config, CoTMAEv2ForPretraining
from maeir.errors import CorpusFormatError
from maeir.methods.cotmae_v2 import CoTMAEv2Collator
from maeir.methods.cotmae_v2.collator import causal_lm_labels
from maeir.methods.cotmae_v2.data import (
    context_span_dataset,
    load_documents,
    overlapping_windows,
    pack_spans,
    segment_document,
)
from maeir.modeling.sparse_pooling import head_transform, sparse_to_dense, splade_top_k, split_mlm_head
from maeir.retrieval.pooling import sparse_top_k, splade_pool

REPO = Path(__file__).resolve().parents[2]


def make_config(encoder_config, tokenizer, **fields) -> CoTMAEv2Config:
    return CoTMAEv2Config(
        encoder_config=encoder_config.to_dict(),
        mask_token_id=tokenizer.mask_token_id,
        sparse_excluded_token_ids=tokenizer.all_special_ids,
        **fields,
    )


@pytest.fixture(scope="module")
def spans(tokenizer, sample_texts):
    """Real news documents (gensim's Lee corpus), cut into 32-token spans."""
    documents = datasets.Dataset.from_dict(
        {"id": [f"d{i}" for i in range(24)], "text": list(sample_texts[:24])}
    )
    dataset, stats = context_span_dataset(documents, tokenizer, max_seq_length=32)
    return dataset, stats


@pytest.fixture()
def model(tiny_encoder_config, tokenizer):
    torch.manual_seed(0)
    return CoTMAEv2ForPretraining(make_config(tiny_encoder_config, tokenizer)).eval()


@pytest.fixture()
def batch(spans, tokenizer):
    collator = CoTMAEv2Collator(tokenizer, seed=0)
    dataset, _ = spans
    return collator([dataset[i] for i in range(0, 40, 5)])


# -- spans and contexts ---------------------------------------------------------------------------
def test_pack_spans_is_greedy_over_whole_sentences():
    assert pack_spans([3, 4, 2, 5, 1], budget=7) == [0, 2, 4, 5]
    assert pack_spans([7, 7], budget=7) == [0, 1, 2]
    with pytest.raises(ValueError):
        pack_spans([8], budget=7)
    tokens, unit_bounds, span_bounds = segment_document([[1] * 3, [2] * 10, [3] * 2], budget=4)
    # the 10-token sentence is cut into 4 + 4 + 2 pieces; spans never exceed the budget
    assert unit_bounds == [0, 3, 7, 11, 13, 15]
    assert all(0 < b - a <= 4 for a, b in zip(span_bounds, span_bounds[1:]))
    assert span_bounds[0] == 0 and span_bounds[-1] == len(tokens) == 15


def test_overlapping_windows_share_tokens_and_reach_outside():
    # sentences of 3, 2, 4, 1, 3, 5, 2 tokens, spans of at most 6
    lengths = [3, 2, 4, 1, 3, 5, 2]
    tokens, unit_bounds, span_bounds = segment_document([[i] * n for i, n in enumerate(lengths)], budget=6)
    for k in range(len(span_bounds) - 1):
        a, b = span_bounds[k], span_bounds[k + 1]
        windows = overlapping_windows(unit_bounds, span_bounds, k, budget=6)
        assert len(windows) == (k > 0) + (k < len(span_bounds) - 2)
        for start, end in windows:
            assert end - start <= 6
            assert max(a, start) < min(b, end), "shares tokens with the anchor"
            assert start < a or end > b, "holds tokens outside the anchor"


def test_contexts_come_from_the_same_document_and_types_behave_as_named(spans, tokenizer, sample_texts):
    dataset, stats = spans
    assert stats.examples == len(dataset) > 24
    for kind in ("nearby", "overlapping", "random"):
        collator = CoTMAEv2Collator(tokenizer, context_sampling=kind, seed=1)
        for i in range(0, len(dataset), 7):
            feature = dataset[i]
            bounds, k = [int(b) for b in feature["span_bounds"]], feature["anchor"]
            anchor = (bounds[k], bounds[k + 1])
            drawn, (start, end) = collator.sample_context(feature)
            assert drawn == kind and collator.fallbacks == 0
            assert 0 <= start < end <= bounds[-1]  # inside the anchor's own document
            others = [(bounds[j], bounds[j + 1]) for j in range(len(bounds) - 1)]
            if kind == "nearby":
                assert (start, end) in (
                    others[k - 1] if k else None,
                    others[k + 1] if k + 1 < len(others) else None,
                )
            elif kind == "random":
                assert (start, end) in others and (start, end) != anchor
            else:
                assert max(anchor[0], start) < min(anchor[1], end) and (start < anchor[0] or end > anchor[1])
    # the ids of anchor and context are text of the document they come from
    collator = CoTMAEv2Collator(tokenizer, symmetric=False, seed=2)
    features = [dataset[i] for i in range(0, len(dataset), 11)]
    pairs = [collator.pair(f) for f in features]
    for feature, (anchor_ids, context_ids) in zip(features, pairs):
        doc = int(feature["doc_id"][1:])
        text = tokenizer.decode(context_ids)
        assert text.replace(" ", "")[:40] in tokenizer.decode(
            tokenizer(sample_texts[doc])["input_ids"]
        ).replace(" ", "")
        assert (
            anchor_ids
            == feature["tokens"][feature["span_bounds"][feature["anchor"]] :][: len(anchor_ids)].tolist()
        )


def test_mixed_sampling_draws_every_type_and_weights_work(spans, tokenizer):
    dataset, _ = spans
    collator = CoTMAEv2Collator(tokenizer, seed=3)
    for i in range(300):
        collator.sample_context(dataset[i % len(dataset)])
    counts = collator.type_counts
    assert set(counts) == {"nearby", "overlapping", "random"} and min(counts.values()) > 60
    only_random = CoTMAEv2Collator(tokenizer, context_sampling_weights=[0, 0, 1], seed=3)
    for i in range(20):
        only_random.sample_context(dataset[i])
    assert only_random.type_counts == Counter({"random": 20})
    # an anchor without the requested type falls back to mixed, and is counted
    feature = dict(dataset[0])
    feature["overlaps"] = [-1] * len(feature["overlaps"])
    fixed = CoTMAEv2Collator(tokenizer, context_sampling="overlapping", seed=0)
    kind, _ = fixed.sample_context(feature)
    assert kind in ("nearby", "random") and fixed.fallbacks == 1


def test_short_documents_are_skipped_and_counted(tokenizer, sample_texts):
    documents = datasets.Dataset.from_dict(
        {"id": ["empty", "short", "long"], "text": ["   ", "Just one short sentence.", sample_texts[0]]}
    )
    dataset, stats = context_span_dataset(documents, tokenizer, max_seq_length=32)
    assert (stats.documents, stats.empty_documents, stats.single_span_documents, stats.used_documents) == (
        3,
        1,
        1,
        1,
    )
    assert stats.skipped_documents == 2
    assert "1 skipped as too short" in stats.describe() and "1 skipped as empty" in stats.describe()
    assert {dataset[i]["doc_id"] for i in range(len(dataset))} == {"long"}
    with pytest.raises(CorpusFormatError, match="no document is long enough"):
        context_span_dataset(documents.select([0, 1]), tokenizer, max_seq_length=32)


def test_documents_from_files(tmp_path, sample_texts):
    beir = tmp_path / "beir"
    beir.mkdir()
    (beir / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"x{i}", "title": "t", "text": t}) + "\n"
            for i, t in enumerate(sample_texts[:3])
        )
    )
    documents = load_documents(beir)
    assert documents["id"] == ["x0", "x1", "x2"] and documents["text"][1] == sample_texts[1]
    plain = tmp_path / "docs.txt"
    plain.write_text("\n".join(sample_texts[:4]) + "\n")
    assert load_documents(plain)["text"] == sample_texts[:4]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    with pytest.raises(CorpusFormatError) as err:
        load_documents(bad)
    assert err.value.line == 2 and err.value.field == "text"


# -- the collator ---------------------------------------------------------------------------------
def test_batch_layout_is_symmetric_and_masks_rates(batch, tokenizer):
    rows = batch["input_ids"].shape[0]
    assert rows == 16  # 8 pairs, both directions
    original = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])
    context = batch["context_input_ids"]
    # row i's context is row i+8's anchor and vice versa (compared on real tokens)
    for i in range(8):
        for a, c in ((i, i + 8), (i + 8, i)):
            n = int(batch["attention_mask"][a].sum())
            assert n == int(batch["context_attention_mask"][c].sum())
            assert torch.equal(original[a, :n], context[c, :n])
    assert (context[:, 0] == tokenizer.cls_token_id).all()
    # AE-Dec input is masked more heavily than the encoder input
    enc_rate = (batch["labels"] != -100).sum() / batch["attention_mask"].sum()
    ae_rate = (batch["ae_labels"] != -100).sum() / batch["context_attention_mask"].sum()
    assert 0.2 < enc_rate < 0.35 < ae_rate < 0.5


def test_ar_labels_are_shifted_and_view_slot_predicts_first_token(batch, tokenizer):
    ids, mask, labels = batch["context_input_ids"], batch["context_attention_mask"], batch["ar_labels"]
    assert torch.equal(labels[:, 0], ids[:, 1])  # the view slot predicts the first real token
    for row in range(ids.shape[0]):
        n = int(mask[row].sum())
        assert labels[row, : n - 1].tolist() == ids[row, 1:n].tolist()  # every real token after slot 0
        assert (labels[row, n - 1 :] == -100).all()  # last real token and padding predict nothing
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    no_end = causal_lm_labels(ids, mask, special, predict_special=False)
    assert not torch.isin(no_end, torch.tensor(tokenizer.all_special_ids)).any()
    assert ((no_end != -100).sum(1) == mask.sum(1) - 2).all()  # [CLS] and [SEP] are not targets


# -- the sparse view ------------------------------------------------------------------------------
def test_top_k_pooling_equals_the_full_splade_reference(tiny_encoder_config):
    torch.manual_seed(0)
    backbone = AutoModelForMaskedLM.from_config(tiny_encoder_config)
    head, output = split_mlm_head(backbone)
    hidden = torch.randn(3, 19, tiny_encoder_config.hidden_size, requires_grad=True)
    valid = torch.rand(3, 19) > 0.3
    valid[2] = False  # a row with nothing to pool
    excluded = torch.tensor([0, 100, 101, 102, 103])
    reference = sparse_top_k(splade_pool(head, hidden, valid, chunk_size=5, excluded_ids=excluded), 40)
    values, indices = splade_top_k(head_transform(head, output, hidden), output.weight, output.bias, valid, 40,
                                   excluded, chunk_size=4)  # fmt: skip
    ours = sparse_to_dense(values, indices, tiny_encoder_config.vocab_size)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    assert (ours[2] == 0).all() and (ours[:2] > 0).sum(1).tolist() == [40, 40]
    weights = torch.randn(tiny_encoder_config.vocab_size)
    expected = torch.autograd.grad((reference * weights).sum(), (hidden, output.weight))
    got = torch.autograd.grad((ours * weights).sum(), (hidden, output.weight))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_sparse_view_keeps_at_most_k_entries_even_with_ties():
    torch.manual_seed(0)
    vocab, hidden = 50, 8
    weight = torch.randn(vocab, hidden)
    weight[10:40] = weight[10]  # 30 entries with identical logits everywhere: a 30-way tie
    states = torch.randn(2, 6, hidden)
    states[:, :, :] = weight[10] * 3  # make the tied entries the largest ones
    values, indices = splade_top_k(states, weight, None, torch.ones(2, 6, dtype=torch.bool), k=7)
    dense = sparse_to_dense(values, indices, vocab)
    assert indices.shape == (2, 7) and all(len(set(row.tolist())) == 7 for row in indices)
    assert ((dense > 0).sum(1) <= 7).all() and ((dense > 0).sum(1) == 7).all()


def test_sparse_view_ignores_special_tokens_and_padding(model, batch, tokenizer):
    ids, mask = batch["input_ids"][:2], batch["attention_mask"][:2]
    views = model.encode_views(ids, mask)
    special = torch.tensor(tokenizer.all_special_ids)
    nonzero = views["sparse_values"] > 0
    assert not torch.isin(views["sparse_indices"][nonzero], special).any()
    assert (nonzero.sum(1) <= model.config.sparse_top_k).all()
    valid = model.pooling_mask(ids, mask)
    assert not valid[ids == tokenizer.cls_token_id].any() and not valid[mask == 0].any()
    # hidden states at excluded positions (CLS, SEP, padding) do not change the sparse view
    hidden = views["hidden"].detach()
    changed = hidden.clone()
    changed[~valid] = torch.randn_like(changed[~valid]) * 50
    a = model.sparse_representation(hidden, valid)
    b = model.sparse_representation(changed, valid)
    assert torch.equal(a[1], b[1]) and torch.allclose(a[0], b[0])
    # [MASK] positions are real words: pooled when sparse_pool_masked_positions (default)
    masked = batch["labels"][:2] != -100
    assert model.pooling_mask(ids, mask, batch["labels"][:2])[masked].all()


# -- decoders and gradients -----------------------------------------------------------------------
def _logits(model, name, vector, ids, mask):
    decoded = model.decode(name, {"dense": vector}, ids, mask)["dense"]
    return model.lm_head(decoded)


def test_ar_decoder_is_causal_and_ae_decoder_is_not(model, batch):
    ids, mask = batch["context_input_ids"][:2].clone(), batch["context_attention_mask"][:2]
    vector = torch.randn(2, model.config.encoder_config.hidden_size)
    j = 9
    changed = ids.clone()
    changed[:, j] = (changed[:, j] + 123) % 30000 + 1000
    with torch.no_grad():
        before, after = _logits(model, "ar", vector, ids, mask), _logits(model, "ar", vector, changed, mask)
        assert torch.equal(before[:, :j], after[:, :j])  # earlier positions never see a later token
        assert not torch.allclose(before[:, j], after[:, j])
        ae_before, ae_after = (
            _logits(model, "ae", vector, ids, mask),
            _logits(model, "ae", vector, changed, mask),
        )
        assert not torch.allclose(ae_before[:, :j], ae_after[:, :j])  # bidirectional


def test_decoder_outputs_depend_on_the_view_vector(model, batch):
    ids, mask = batch["context_input_ids"][:2], batch["context_attention_mask"][:2]
    hidden = model.config.encoder_config.hidden_size
    with torch.no_grad():
        for name in ("ae", "ar"):
            a = _logits(model, name, torch.randn(2, hidden), ids, mask)
            b = _logits(model, name, torch.randn(2, hidden), ids, mask)
            real = mask.bool()
            assert ((a - b).abs().amax(-1)[real] > 1e-4).all()  # every real position, slot 0 included
        # both views reach the decoders: the sparse view vector differs from the dense one
        views = model.encode_views(batch["input_ids"][:2], batch["attention_mask"][:2])
        decoded = model.decode("ar", {"dense": views["dense"], "sparse": views["sparse"]}, ids, mask)
        assert not torch.allclose(decoded["dense"], decoded["sparse"])


@pytest.mark.parametrize("view", ["dense", "sparse"])
def test_each_view_carries_gradient_into_the_encoder(tiny_encoder_config, tokenizer, batch, view):
    torch.manual_seed(0)
    model = CoTMAEv2ForPretraining(make_config(tiny_encoder_config, tokenizer, views=[view])).train()
    inputs = {k: v for k, v in batch.items() if k != "labels"}  # no encoder MLM: decoders only
    output = model(**inputs)
    assert output.encoder_mlm_loss is None and getattr(output, f"ae_{view}_loss") is not None
    output.loss.backward()
    for index, layer in enumerate(model.encoder.encoder.layer):
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, index


def test_loss_is_encoder_plus_view_averaged_decoders(model, batch):
    out = model(**batch)
    assert torch.allclose(out.ae_loss, (out.ae_dense_loss + out.ae_sparse_loss) / 2)
    assert torch.allclose(out.ar_loss, (out.ar_dense_loss + out.ar_sparse_loss) / 2)
    assert torch.allclose(out.loss, out.encoder_mlm_loss + out.ae_loss + out.ar_loss)
    assert out.sparse_values.shape == (16, 768) and out.dense_view.shape == (16, 64)


def test_config_validation(tiny_encoder_config, tokenizer):
    for bad in ({"views": ["lexical"]}, {"context_sampling": "far"}, {"decoder_mask_rate": 1.0},
                {"use_ae_decoder": False, "use_ar_decoder": False}, {"sparse_projection": "mlp"},
                {"context_sampling_weights": [1, 1]}):  # fmt: skip
        with pytest.raises(ValueError):
            make_config(tiny_encoder_config, tokenizer, **bad)


# -- checkpoints ----------------------------------------------------------------------------------
def test_save_reload_identities(model, batch, tokenizer, tmp_path):
    model.save_pretrained(tmp_path / "full")
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path / "full").eval()
    assert isinstance(reloaded, CoTMAEv2ForPretraining)
    assert reloaded.config.views == ["dense", "sparse"]
    assert reloaded.excluded_token_ids().tolist() == sorted(set(tokenizer.all_special_ids))
    with torch.no_grad():
        a, b = model(**batch), reloaded(**batch)
    for key in ("loss", "encoder_mlm_loss", "ae_sparse_loss", "ar_dense_loss", "sparse_values", "dense_view"):
        torch.testing.assert_close(getattr(a, key), getattr(b, key))
    model.save_encoder(tmp_path / "encoder", tokenizer)
    saved = load_file(tmp_path / "encoder" / "model.safetensors")
    assert not any("decoder" in k and "predictions" not in k for k in saved)  # no AE/AR-Dec weights
    plain = AutoModelForMaskedLM.from_pretrained(tmp_path / "encoder").eval()
    base = AutoModel.from_pretrained(tmp_path / "encoder").eval()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        torch.testing.assert_close(
            plain(input_ids=ids, attention_mask=mask).logits, model.backbone(ids, mask).logits
        )
        torch.testing.assert_close(base(ids, mask).last_hidden_state, model.encode(ids, mask))


def test_from_backbone_fills_special_ids_and_keeps_weights(tiny_backbone_dir, tokenizer):
    model = CoTMAEv2ForPretraining.from_backbone(tiny_backbone_dir, ar_decoder_layers=2)
    assert model.config.sparse_excluded_token_ids == sorted(set(tokenizer.all_special_ids))
    assert model.config.mask_token_id == tokenizer.mask_token_id and len(model.ar_decoder.layers) == 2
    plain = AutoModelForMaskedLM.from_pretrained(tiny_backbone_dir)
    for name, value in plain.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], value), name
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_backbone_without_mlm_head_starts_lexical(tmp_path, tiny_encoder_config, tokenizer):
    torch.manual_seed(0)
    AutoModel.from_config(tiny_encoder_config).save_pretrained(tmp_path / "headless")  # like all-MiniLM-L6-v2
    tokenizer.save_pretrained(tmp_path / "headless")
    model = CoTMAEv2ForPretraining.from_backbone(tmp_path / "headless")
    output = model.get_output_embeddings()
    assert torch.equal(output.bias, torch.full_like(output.bias, -6.0))
    squares = [m for m in model.lm_head.modules() if isinstance(m, torch.nn.Linear) and m is not output]
    assert squares and all(torch.equal(m.weight, torch.eye(m.in_features)) for m in squares)
    random_head = CoTMAEv2ForPretraining.from_backbone(tmp_path / "headless", missing_head_bias=None)
    assert not torch.equal(random_head.get_output_embeddings().bias, output.bias)


# -- learning and the run contract ----------------------------------------------------------------
def test_every_loss_falls_on_real_text(tiny_encoder_config, tokenizer, spans):
    """A few steps on real news spans lower every loss part on held-out spans of other documents."""
    torch.manual_seed(0)
    model = CoTMAEv2ForPretraining(make_config(tiny_encoder_config, tokenizer, sparse_top_k=256))
    dataset, _ = spans
    docs = [dataset[i]["doc_id"] for i in range(len(dataset))]
    train_rows = [i for i, d in enumerate(docs) if int(d[1:]) < 12][::9][:4]
    held_out = [i for i, d in enumerate(docs) if int(d[1:]) >= 12][::9][:4]
    train = CoTMAEv2Collator(tokenizer, seed=0)([dataset[i] for i in train_rows])
    test = CoTMAEv2Collator(tokenizer, seed=1)([dataset[i] for i in held_out])
    names = ("encoder_mlm_loss", "ae_dense_loss", "ae_sparse_loss", "ar_dense_loss", "ar_sparse_loss")

    def held_out_losses():
        model.eval()
        with torch.no_grad():
            out = model(**test)
        model.train()
        return {name: getattr(out, name).item() for name in names}

    before = held_out_losses()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(8):
        loss = model(**train).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = held_out_losses()
    for name in names:
        assert after[name] < before[name] - 1.0, (name, before[name], after[name])


def test_pretrain_script_run_contract(tmp_path, tiny_backbone_dir, sample_texts):
    from maeir.cli.pretrain import main

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in sample_texts[:20]))
    out = tmp_path / "run"
    trainer = main([str(REPO / "configs/cotmae_v2_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir,
                    "--train_file", str(corpus), "--output_dir", str(out), "--max_seq_length", "32",
                    "--per_device_train_batch_size", "2", "--max_steps", "2", "--save_steps", "2",
                    "--logging_steps", "1", "--disable_tqdm", "true",
                    "--method_config", "sparse_top_k=64,ar_decoder_layers=1"])  # fmt: skip
    assert isinstance(AutoModelForPreTraining.from_pretrained(out), maeir.CoTMAEv2ForPretraining)
    assert isinstance(AutoModelForMaskedLM.from_pretrained(out / "encoder"), torch.nn.Module)
    assert (out / "README.md").exists() and (out / "encoder" / "tokenizer.json").exists()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {
        "encoder_mlm_loss",
        "ae_dense_loss",
        "ae_sparse_loss",
        "ar_dense_loss",
        "ar_sparse_loss",
    } <= logged
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["method"] == "cotmae_v2" and info["hyperparameters"]["sparse_top_k"] == 64


def test_multistage_pipeline_from_a_post_trained_run(tmp_path, tiny_backbone_dir, sample_texts):
    """BM25 negatives -> stage 1 -> hard negatives from stage 1 -> stage 2 from the post-trained run -> eval."""
    from maeir.cli.pretrain import main as pretrain_main
    from maeir.cli.retrieval_pipeline import main as pipeline_main
    from maeir.data.retrieval import read_training_jsonl, write_beir
    from maeir.data.sentences import split_sentences

    corpus_file = tmp_path / "docs.jsonl"
    corpus_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in sample_texts[:12]))
    run = tmp_path / "post"
    pretrain_main([str(REPO / "configs/cotmae_v2_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir,
                   "--train_file", str(corpus_file), "--output_dir", str(run), "--max_seq_length", "32",
                   "--per_device_train_batch_size", "2", "--max_steps", "1", "--disable_tqdm", "true",
                   "--method_config", "sparse_top_k=64"])  # fmt: skip
    # a small BEIR folder: each document's first sentence is a query for the rest of the document
    corpus, queries, qrels = {}, {}, {"train": {}, "test": {}}
    for i, text in enumerate(sample_texts[:36]):
        sentences = split_sentences(text)
        corpus[f"d{i}"] = {"title": "", "text": " ".join(sentences[1:])}
        queries[f"q{i}"] = sentences[0]
        qrels["train" if i < 24 else "test"][f"q{i}"] = {f"d{i}": 1}
    beir = write_beir(tmp_path / "beir", corpus, queries, qrels)
    out = tmp_path / "pipeline"
    argv = [str(REPO / "configs/cotmae_v2_pipeline_cpu.yaml"), "--model_name_or_path", str(run),
            "--beir", str(beir), "--output_dir", str(out), "--max_steps", "1", "--per_device_train_batch_size", "4",
            "--query_max_length", "24", "--passage_max_length", "48", "--eval_batch_size", "16",
            "--disable_tqdm", "true", "--stage2_overrides", "max_steps=2", "--mining_num_negatives", "5"]  # fmt: skip
    summary = pipeline_main(argv)
    systems = {row["system"] for row in summary["rows"]}
    assert systems == {"BM25 [bm25]"} | {f"stage {n} ({neg} negatives) [{v}]" for n, neg in ((1, "BM25"), (2, "hard"))
                                         for v in ("dense", "sparse", "hybrid")}  # fmt: skip
    stages = summary["stages"]
    assert stages["stage1"]["init"] == stages["stage2"]["init"] == str(run)  # stage 2 restarts from the run
    assert stages["hard_negatives"]["mined_with"] == str(out / "stage1")
    for record in read_training_jsonl(out / "stage2_hard.jsonl"):
        positives = {p["docid"] for p in record["positives"]}
        assert 0 < len(record["negatives"]) <= 5 and not positives & {p["docid"] for p in record["negatives"]}
    assert json.loads((out / "stage2" / "maeir_run.json").read_text())["hyperparameters"]["max_steps"] == 2
    assert json.loads((out / "stage1" / "maeir_run.json").read_text())["hyperparameters"]["max_steps"] == 1
    metrics = json.loads((out / "eval_stage2" / "metrics.json").read_text())
    assert set(metrics["views"]) == {"dense", "sparse", "hybrid"} and metrics["num_queries"] == 12
    # a second run resumes: finished stages are not run again
    stamp = (out / "stage1" / "model.safetensors").stat().st_mtime_ns
    pipeline_main([*argv, "--evaluate_bm25", "false", "--evaluate_stage1", "false"])
    assert (out / "stage1" / "model.safetensors").stat().st_mtime_ns == stamp
