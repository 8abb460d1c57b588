"""Bi-encoder, losses, collator, contrastive trainer (docs/methods.md#cot-mae-v2, docs/methods.md#dial-mae)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, TrainingArguments

from maeir.data.retrieval_collator import ContrastiveCollator
from maeir.errors import ConfigError
from maeir.losses import FLOPsRegularizer, flops, info_nce
from maeir.modeling import BiEncoderModel, load_bi_encoder
from maeir.retrieval.pooling import pool_dense, sparse_top_k, splade_pool
from maeir.retrieval.tokenization_bi_encoder import tokenize
from maeir.trainers import ContrastiveTrainer


# -- losses --------------------------------------------------------------------------------------
def test_flops_regulariser_on_fixed_inputs():
    q = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    p = torch.tensor([[0.0, 4.0, 0.0]])
    # mean |w| per column: q -> [2, 0, 1] -> 4 + 0 + 1 = 5; p -> [0, 4, 0] -> 16
    assert flops(q).item() == pytest.approx(5.0)
    assert flops(p).item() == pytest.approx(16.0)
    reg = FLOPsRegularizer(query_weight=0.1, passage_weight=0.01, warmup_steps=10)
    assert reg.weights(0) == (0.0, 0.0)
    assert reg.weights(5) == pytest.approx((0.1 * 0.25, 0.01 * 0.25))  # quadratic warm-up
    assert reg.weights(20) == pytest.approx((0.1, 0.01))
    total, qf, pf = reg(q, p, step=5)
    assert total.item() == pytest.approx(0.025 * 5 + 0.0025 * 16)
    # A masked passage row does not count.
    two = torch.stack([p[0], torch.tensor([2.0, 2.0, 2.0])])
    assert reg(q, two, 20, passage_mask=torch.tensor([True, False]))[2].item() == pytest.approx(16.0)


def test_top_k_on_fixed_input():
    x = torch.tensor([[0.1, 5.0, 0.0, 3.0, 2.0], [1.0, 1.5, 0.2, 0.0, 0.3]])
    out = sparse_top_k(x, 2)
    assert out.tolist() == [[0.0, 5.0, 0.0, 3.0, 0.0], [1.0, 1.5, 0.0, 0.0, 0.0]]
    assert torch.equal(sparse_top_k(x, None), x) and torch.equal(sparse_top_k(x, 10), x)


def test_splade_pool_max_over_valid_positions_in_chunks():
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 6)
    hidden = torch.randn(2, 5, 4)
    valid = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    expected = torch.log1p(torch.relu(head(hidden))) * valid.unsqueeze(-1)
    expected = expected.amax(dim=1)
    for chunk in (1, 2, 5):
        assert torch.allclose(splade_pool(head, hidden, valid, chunk_size=chunk), expected, atol=1e-6)
    out = splade_pool(head, hidden, valid, chunk_size=2, excluded_ids=torch.tensor([0, 3]))
    assert out[:, [0, 3]].abs().sum() == 0 and torch.allclose(out[:, [1, 2, 4, 5]], expected[:, [1, 2, 4, 5]])


def test_pooling_modes():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool_dense(hidden, mask, "cls").tolist() == [[1.0, 2.0]]
    assert pool_dense(hidden, mask, "mean").tolist() == [[2.0, 3.0]]
    assert pool_dense(hidden, mask, "max").tolist() == [[3.0, 4.0]]


# -- model ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def texts(sample_texts):
    return [t[:200] for t in sample_texts[:6]]


def test_sparse_vectors_never_hold_special_tokens(tiny_backbone_dir, tokenizer, texts):
    model = BiEncoderModel.from_backbone(tiny_backbone_dir, representation="sparse", sparse_top_k=None).eval()
    batch = tokenize(tokenizer, model.config, texts, "passage")
    with torch.no_grad():
        sparse = model.encode(batch["input_ids"], batch["attention_mask"], "passage")["sparse"]
    specials = sorted(set(tokenizer.all_special_ids))
    assert sparse[:, specials].abs().sum() == 0
    assert (sparse > 0).sum(dim=1).min() > 0
    # Special and padding positions are not pooled: the vector depends only on the real tokens.
    head = model.query_encoder.get_output_embeddings()
    assert head is not None
    with torch.no_grad():
        hidden = model.query_encoder.base_model(**batch).last_hidden_state
        from maeir.modeling.backbone import mlm_head

        logits = torch.log1p(torch.relu(mlm_head(model.query_encoder)(hidden)))
    row = 0
    real = batch["attention_mask"][row].bool() & ~torch.isin(batch["input_ids"][row], torch.tensor(specials))
    expected = logits[row][real].amax(dim=0)
    expected[specials] = 0
    assert torch.allclose(sparse[row], expected, atol=1e-5)
    # top-k at inference only.
    model.config.sparse_top_k = 5
    with torch.no_grad():
        top = model.encode(batch["input_ids"], batch["attention_mask"], "passage")["sparse"]
    assert ((top > 0).sum(dim=1) <= 5).all()
    model.train()
    with torch.no_grad():
        train = model.encode(batch["input_ids"], batch["attention_mask"], "passage")["sparse"]
    assert (train > 0).sum(dim=1).min() > 5


def test_untied_towers_and_save_reload_identity(tiny_backbone_dir, tokenizer, texts, tmp_path):
    model = BiEncoderModel.from_backbone(
        tiny_backbone_dir, representation="hybrid", tie_towers=False, pooling="cls", query_max_length=16,
        query_truncation_side="left", query_prefix="query: ", temperature=0.5,
    ).eval()  # fmt: skip
    assert model.passage_encoder is not None and model.passage_encoder is not model.query_encoder
    with torch.no_grad():  # make the towers differ
        model.passage_encoder.get_input_embeddings().weight.mul_(1.5)
    batch = tokenize(tokenizer, model.config, texts, "query")
    assert batch["input_ids"].shape[1] <= 16
    ids = tokenizer("query: " + texts[0])["input_ids"]
    assert batch["input_ids"][0].tolist()[1:-1] == ids[-15:][:-1] or ids[-1] == tokenizer.sep_token_id
    with torch.no_grad():
        q = model.encode(batch["input_ids"], batch["attention_mask"], "query")
        p = model.encode(batch["input_ids"], batch["attention_mask"], "passage")
    assert not torch.allclose(q["dense"], p["dense"])
    model.save_bi_encoder(tmp_path / "bi", tokenizer)
    loaded, loaded_tokenizer = load_bi_encoder(tmp_path / "bi")
    loaded.eval()
    assert loaded.config.recipe() == model.config.recipe()
    load_bi_encoder(tmp_path / "bi", pooling="cls", temperature=0.5)  # the saved values: fine
    with pytest.raises(ConfigError, match="trained with") as info:
        load_bi_encoder(tmp_path / "bi", pooling="mean")  # a trained model keeps its recipe
    assert info.value.field == "pooling"
    longer, _ = load_bi_encoder(tmp_path / "bi", passage_max_length=256)  # inference-time fields may change
    assert longer.config.passage_max_length == 256 and longer.config.pooling == "cls"
    batch2 = tokenize(loaded_tokenizer, loaded.config, texts, "query")
    assert torch.equal(batch2["input_ids"], batch["input_ids"])
    with torch.no_grad():
        q2 = loaded.encode(batch2["input_ids"], batch2["attention_mask"], "query")
        p2 = loaded.encode(batch2["input_ids"], batch2["attention_mask"], "passage")
    for key in ("dense", "sparse"):
        assert torch.equal(q[key], q2[key]) and torch.equal(p[key], p2[key])
    # The plain towers load with plain transformers.
    tower = AutoModel.from_pretrained(tmp_path / "bi" / "passage_encoder")
    with torch.no_grad():
        hidden = tower(**{k: v for k, v in batch.items()}).last_hidden_state[:, 0]
    assert torch.allclose(hidden, p["dense"], atol=1e-5)


def test_exported_encoder_matches_sentence_transformers(tiny_backbone_dir, tokenizer, texts, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    model = BiEncoderModel.from_backbone(
        tiny_backbone_dir, pooling="mean", normalize=True, passage_max_length=64, query_max_length=64,
        query_prefix="query: ", passage_prefix="passage: ",
    ).eval()  # fmt: skip
    model.save_bi_encoder(tmp_path / "bi", tokenizer)
    st_model = st.SentenceTransformer(str(tmp_path / "bi"), device="cpu")
    loaded, tok = load_bi_encoder(tmp_path / "bi")
    loaded.eval()
    for side, encode in (("query", st_model.encode_query), ("passage", st_model.encode_document)):
        batch = tokenize(tok, loaded.config, texts, side)
        with torch.no_grad():
            ours = loaded.encode(batch["input_ids"], batch["attention_mask"], side)["dense"]
        theirs = encode(texts, convert_to_tensor=True)
        assert torch.allclose(ours, theirs, atol=1e-5), side
    # ... and the other way round: the folder read as a sentence-transformers model keeps its recipe.
    st_model.save(str(tmp_path / "st"))
    again, tok2 = load_bi_encoder(tmp_path / "st")
    assert (again.config.pooling, again.config.normalize, again.config.query_prefix) == (
        "mean",
        True,
        "query: ",
    )
    again.eval()
    batch = tokenize(tok2, again.config, texts, "passage")
    with torch.no_grad():
        dense = again.encode(batch["input_ids"], batch["attention_mask"], "passage")["dense"]
    assert torch.allclose(dense, st_model.encode_document(texts, convert_to_tensor=True), atol=1e-5)


# -- collator and trainer ------------------------------------------------------------------------
def _records(n: int = 8) -> list[dict]:
    return [
        {
            "query": f"what about topic number {i}?",
            "positives": [{"title": f"Topic {i}", "text": f"topic {i} is described here"}],
            "negatives": [f"unrelated passage {i}-{j}" for j in range(i % 4)],
        }
        for i in range(n)
    ]


def test_collator_groups_and_masks(tokenizer, tiny_backbone_dir):
    model = BiEncoderModel.from_backbone(tiny_backbone_dir)
    collator = ContrastiveCollator(tokenizer, model.config, group_size=3, seed=0)
    batch = collator(_records(4))
    assert batch["query_input_ids"].shape[0] == 4 and batch["passage_input_ids"].shape[0] == 12
    # Example 0 has no negatives: two masked slots; examples 1-3 have some: all valid (repeats allowed).
    assert batch["passage_mask"].tolist() == [True, False, False] + [True] * 9
    first = tokenizer.decode(batch["passage_input_ids"][3], skip_special_tokens=True)
    assert first == "topic 1 topic 1 is described here"  # the positive, with its title, leads its group
    negatives = {tokenizer.decode(batch["passage_input_ids"][k], skip_special_tokens=True) for k in (10, 11)}
    assert (
        negatives
        == {"unrelated passage 3 - 0", "unrelated passage 3 - 1", "unrelated passage 3 - 2"} & negatives
    )
    assert len(negatives) == 2  # drawn without replacement when there are enough


def _trainer(model, tokenizer, tmp_path, chunk=None, flops_weights=(0.0, 0.0)):
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=1, learning_rate=0.0,
        report_to=[], remove_unused_columns=False, save_strategy="no", use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    trainer = ContrastiveTrainer(
        model=model, args=args, processing_class=tokenizer, gradient_cache_chunk_size=chunk,
        flops=FLOPsRegularizer(*flops_weights),
    )  # fmt: skip
    trainer.create_optimizer_and_scheduler(1)
    trainer.current_gradient_accumulation_steps = 1
    return trainer


@pytest.mark.parametrize(
    ("representation", "dropout", "chunk_size"), [("dense", 0.0, 3), ("hybrid", 0.0, 3), ("dense", 0.1, 8)]
)
def test_gradient_cache_equals_full_batch(
    tiny_backbone_dir, tokenizer, tmp_path, representation, dropout, chunk_size
):
    """GradCache (an option of :class:`maeir.losses.BiEncoderLoss`) gives the full batch's loss and
    gradients. With dropout on and one chunk per side (queries, then passages: the order of the
    full forward, so the same dropout masks), equality also needs the re-encoding to replay each
    chunk's RNG state."""
    results = []
    for chunk in (None, chunk_size):
        torch.manual_seed(0)
        model = BiEncoderModel.from_backbone(
            tiny_backbone_dir, representation=representation, temperature=0.2, normalize=True,
            encoder_overrides={"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout},
        )  # fmt: skip
        collator = ContrastiveCollator(tokenizer, model.config, group_size=2, seed=0)
        batch = collator(_records(4))
        trainer = _trainer(model, tokenizer, tmp_path, chunk, flops_weights=(1e-3, 1e-3))
        model.zero_grad()
        torch.manual_seed(1)  # the dropout masks' RNG state, the same for both runs
        loss = trainer.training_step(model, batch)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.item(), grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    scale = max(g.abs().max() for g in grads_a.values())  # key biases have ~0 gradients: global scale
    for name in grads_a:
        assert (grads_a[name] - grads_b[name]).abs().max() <= 1e-4 * scale, name


def test_trainer_saves_a_reloadable_bi_encoder(tiny_backbone_dir, tokenizer, tmp_path):
    from datasets import Dataset

    model = BiEncoderModel.from_backbone(tiny_backbone_dir, temperature=0.1, normalize=True)
    collator = ContrastiveCollator(tokenizer, model.config, group_size=2)
    trainer = _trainer(model, tokenizer, tmp_path)
    trainer.train_dataset = Dataset.from_list(_records(8))
    trainer.data_collator = collator
    trainer.args.learning_rate = 1e-3
    trainer.args.max_steps = 2
    trainer.create_optimizer_and_scheduler(2)
    trainer.train()
    trainer.save_model(str(tmp_path / "out"))
    loaded, _ = load_bi_encoder(tmp_path / "out")
    assert loaded.config.temperature == 0.1 and (tmp_path / "out" / "modules.json").is_file()
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_view_losses_add_each_views_own_infonce(tiny_backbone_dir, tokenizer):
    from maeir.losses import contrastive_objective

    model = BiEncoderModel.from_backbone(
        tiny_backbone_dir, representation="hybrid", temperature=0.5, dense_weight=3.0, sparse_top_k=None
    ).eval()
    batch = ContrastiveCollator(tokenizer, model.config, group_size=2, seed=0)(_records(4))
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if k != "passage_mask"}, return_loss=False)
        q, p = model.representation(out, "query"), model.representation(out, "passage")
        single, parts, _, _ = contrastive_objective(model, q, p, batch["passage_mask"])
        total, parts_v, _, _ = contrastive_objective(model, q, p, batch["passage_mask"], view_losses=True)
    mask = batch["passage_mask"]
    dense = info_nce(3.0 * q["dense"] @ p["dense"].T, 0.5, mask)
    sparse = info_nce(q["sparse"] @ p["sparse"].T, 0.5, mask)
    hybrid = info_nce(3.0 * q["dense"] @ p["dense"].T + q["sparse"] @ p["sparse"].T, 0.5, mask)
    assert single.item() == pytest.approx(hybrid.item(), rel=1e-5) and "dense_loss" not in parts
    assert total.item() == pytest.approx((hybrid + dense + sparse).item(), rel=1e-5)
    assert parts_v["sparse_loss"].item() == pytest.approx(sparse.item(), rel=1e-5)


def test_sentence_transformers_folder_encodes_with_its_own_recipe(minilm_path, sample_texts, tmp_path):
    """all-MiniLM-L6-v2 (mean pooling + Normalize, 256 tokens) through our loader equals sentence-transformers,
    both as shipped (sentence-transformers 2 layout) and re-saved by sentence-transformers 6 (no
    ``max_seq_length`` in ``sentence_bert_config.json``: the tokenizer's length counts)."""
    st = pytest.importorskip("sentence_transformers")
    from maeir.retrieval.encode import encode_texts

    st_model = st.SentenceTransformer(minilm_path, device="cpu")
    long_text = " ".join(sample_texts[:4])  # > 256 tokens: truncation must match too
    texts = ["what did the prime minister say about the bushfires?", sample_texts[0][:150], long_text,
             sample_texts[5], "Storms"]  # fmt: skip
    assert len(st_model.tokenizer(long_text)["input_ids"]) > 300
    expected = {
        "query": st_model.encode_query(texts, convert_to_tensor=True),
        "passage": st_model.encode_document(texts, convert_to_tensor=True),
    }
    st_model.save(str(tmp_path / "resaved"))
    for folder in (minilm_path, tmp_path / "resaved"):
        model, tokenizer = load_bi_encoder(folder)
        model.eval()
        config = model.config
        assert (config.pooling, config.normalize, config.representation) == ("mean", True, "dense")
        assert (config.query_max_length, config.passage_max_length) == (256, 256), folder
        for side in ("query", "passage"):
            ours = encode_texts(model, tokenizer, texts, side, batch_size=2, show_progress=False)["dense"]
            assert torch.allclose(torch.as_tensor(ours), expected[side], atol=1e-5), (folder, side)


def test_sentence_transformers_recipe_edge_cases(tiny_backbone_dir, tokenizer, tmp_path):
    import json

    from maeir.retrieval.sentence_transformers_folder import sentence_transformers_recipe

    model = BiEncoderModel.from_backbone(tiny_backbone_dir, pooling="cls", passage_max_length=64)
    folder = tmp_path / "st"
    model.save_bi_encoder(folder, tokenizer)

    def edit(path, **changes):
        data = json.loads(path.read_text())
        data.update(changes)
        path.write_text(json.dumps(data))

    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(
        json.dumps({"embedding_dimension": 64, "pooling_mode": ["mean"], "include_prompt": True})
    )
    st_config = folder / "config_sentence_transformers.json"
    edit(st_config, prompts={"corpus": "doc: ", "search": "find: "}, default_prompt_name="search")
    recipe, towers = sentence_transformers_recipe(folder)
    assert recipe["pooling"] == "mean" and towers["query"] == towers["passage"] == folder / "query_encoder"
    # encode_document takes "document", "passage" or "corpus"; encode_query falls back to the default prompt.
    assert (recipe["query_prefix"], recipe["passage_prefix"]) == ("find: ", "doc: ")
    assert recipe["passage_max_length"] == 64
    # sentence-transformers >= 6: no max_seq_length, the tokenizer's length (capped by the positions).
    (folder / "query_encoder" / "sentence_bert_config.json").write_text(json.dumps({"document_length": 40}))
    recipe, _ = sentence_transformers_recipe(folder)
    assert (recipe["query_max_length"], recipe["passage_max_length"]) == (64, 40)
    for changes, field in (
        ({"pooling_mode": ["mean", "max"]}, "pooling_mode"),
        ({"pooling_mode": "weightedmean"}, "pooling_mode"),
        ({"pooling_mode": "mean", "include_prompt": False}, "include_prompt"),
    ):
        edit(pooling, **changes)
        with pytest.raises(ConfigError) as info:
            sentence_transformers_recipe(folder)
        assert info.value.field == field and str(folder) in str(info.value)
    edit(pooling, include_prompt=True)
    (folder / "query_encoder" / "sentence_bert_config.json").write_text(json.dumps({"do_lower_case": True}))
    edit(folder / "query_encoder" / "tokenizer_config.json", do_lower_case=False)
    with pytest.raises(ConfigError, match="lower-cas") as info:
        sentence_transformers_recipe(folder)
    assert info.value.field == "do_lower_case"


@pytest.mark.parametrize("tie_towers", [True, False])
def test_sparse_folder_loads_as_a_sparse_encoder_with_the_same_vectors(
    tiny_backbone_dir, tokenizer, texts, tmp_path, tie_towers
):
    """A sparse bi-encoder folder is a sentence-transformers ``SparseEncoder`` (maeir's pooling module,
    copied into the folder) giving maeir's own top-k sparse vectors."""
    st = pytest.importorskip("sentence_transformers")
    model = BiEncoderModel.from_backbone(
        tiny_backbone_dir, representation="sparse", sparse_top_k=32, tie_towers=tie_towers,
        query_prefix="query: ", passage_max_length=64, query_max_length=64,
    ).eval()  # fmt: skip
    model.save_bi_encoder(tmp_path / "bi", tokenizer)
    encoder = st.SparseEncoder(str(tmp_path / "bi"), device="cpu", trust_remote_code=True)
    loaded, tok = load_bi_encoder(tmp_path / "bi")
    loaded.eval()
    sample = [*texts[:6], ""]
    for side, encode in (("query", encoder.encode_query), ("passage", encoder.encode_document)):
        batch = tokenize(tok, loaded.config, sample, side)
        with torch.no_grad():
            ours = loaded.encode(batch["input_ids"], batch["attention_mask"], side)["sparse"]
        theirs = encode(sample, convert_to_tensor=True).to_dense()
        assert (ours > 0).sum(-1).max() <= 32
        assert torch.equal(ours > 0, theirs > 0), side
        assert torch.allclose(ours, theirs, atol=1e-5), side
