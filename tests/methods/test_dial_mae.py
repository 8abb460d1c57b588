"""Dial-MAE: data (reader, windows, chitchat splits), collator, model, R_n@k, scripts, save/reload."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining

import maeir
from maeir import DialMAEConfig, DialMAEForPretraining
from maeir.data import WordBoundaries
from maeir.data.dialogue import (
    ResponseSelectionGroup,
    context_text,
    format_response_selection,
    read_dialogue_sessions,
    read_response_selection,
    write_response_selection,
)
from maeir.datasets.embedded.chitchat import selection_groups, split_ids, training_groups
from maeir.errors import CorpusFormatError
from maeir.methods.dial_mae import DialMAECollator
from maeir.methods.dial_mae.data import dialogue_pairs, sliding_windows
from maeir.metrics.response_selection import group_metrics, positive_ranks, response_selection_metrics

REPO = Path(__file__).resolve().parents[2]

# Real chit-chat turns (from the chitchat-dataset conversations), used as small dialogue sessions.
TURNS = [
    "Hello, how are you doing today?",
    "whats up, im doing good. how are you doing?",
    "Im alright, I just took a nap. But it was one of those naps that doesnt help anything.",
    "oh wow haha so you still feel tired huh?",
    "Yeah, I have more of a head ache than anything else",
    "dude thats terrible, did you go to bed late?",
    "No, its just adjusting to a time change. But enough about me, what are you up to?",
    "im refining my skills on Sketch App, have you heard of Sketch?",
    "I havent. What is it?",
    "its a vector graphic editor like illustrator but a lot more light weight, for UX designers",
]


def sessions(n: int = 6) -> list[list[str]]:
    rng = random.Random(0)
    return [rng.sample(TURNS, rng.randint(3, len(TURNS))) for _ in range(n)]


@pytest.fixture()
def model(tiny_encoder_config, tokenizer):
    torch.manual_seed(0)
    config = DialMAEConfig(
        encoder_config=tiny_encoder_config.to_dict(), mask_token_id=tokenizer.mask_token_id
    )
    return DialMAEForPretraining(config).eval()


@pytest.fixture()
def batch(tokenizer):
    pairs = dialogue_pairs(sessions(), tokenizer)
    collator = DialMAECollator(tokenizer, context_max_length=48, response_max_length=16, seed=0)
    return collator([pairs.pair(i) for i in range(8)])


# -- data -----------------------------------------------------------------------------------------
def test_sliding_windows_cover_the_session_like_the_authors():
    windows = sliding_windows(12, 1, 4, 3, random.Random(0))
    assert windows[0] == (0, 11)  # the whole session first
    assert len(set(windows)) == len(windows)
    for start, end in windows[1:]:
        assert 1 <= end - start <= 4 and end <= 11
    starts = {s for s, _ in windows[1:]}
    assert starts == set(range(11))  # every start turn gives windows
    per_start = {s: sum(1 for w in windows[1:] if w[0] == s) for s in starts}
    assert per_start[0] == 3 and per_start[10] == 1  # capped by the sizes left
    assert sliding_windows(1) == [] and sliding_windows(2) == [(0, 1)]


def test_pairs_join_turns_with_the_tokenizers_sep(tokenizer):
    data = sessions(4)
    pairs = dialogue_pairs(data, tokenizer, min_window_turns=1, max_window_turns=3, windows_per_start=2)
    encode = lambda t: tokenizer(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert len(pairs) > len(data)
    for row in range(len(pairs)):
        session, start, end = (int(v) for v in pairs.rows[row])
        expected = []
        for turn in data[session][start:end]:
            expected += ([tokenizer.sep_token_id] if expected else []) + encode(turn)
        assert pairs.pair(row) == {"context_ids": expected, "response_ids": encode(data[session][end])}
    # text contexts (bi-encoder side) tokenise to the same ids: SEP between turns
    ids = tokenizer(context_text(["hi there", "how are you"], tokenizer))["input_ids"]
    assert ids == [tokenizer.cls_token_id, *encode("hi there"), tokenizer.sep_token_id, *encode("how are you"),
                   tokenizer.sep_token_id]  # fmt: skip
    # a subset keeps the same windows and tokenises only what it needs
    subset = dialogue_pairs(data, tokenizer, 1, 3, 2, max_samples=5)
    assert len(subset) == 5 and {tuple(r) for r in subset.rows} <= {tuple(r) for r in pairs.rows}


def test_truncation_sides(tokenizer):
    collator = DialMAECollator(tokenizer, context_max_length=10, response_max_length=6, encoder_mask_rate=0.01,
                               decoder_mask_rate=0.01)  # fmt: skip
    context = list(range(2000, 2020))
    response = list(range(3000, 3020))
    assert collator.context_input_ids(context) == [101, *range(2012, 2020), 102]  # keeps its END
    assert collator.response_input_ids(response) == [101, *range(3000, 3004), 102]  # keeps its START
    out = collator([{"context_ids": context, "response_ids": response}])
    labels = out["labels"][0]
    original = torch.where(labels == -100, out["input_ids"][0], labels)
    assert original.tolist() == [101, *range(2012, 2020), 102]
    dec = torch.where(out["decoder_labels"][0] == -100, out["decoder_input_ids"][0], out["decoder_labels"][0])
    assert dec.tolist() == [101, *range(3000, 3004), 102]
    # text features go through the same path
    text = collator([{"context": ["a b c d e f g h i j k", "l m n"], "response": "x y z w v u t"}])
    ids = torch.where(text["labels"][0] == -100, text["input_ids"][0], text["labels"][0]).tolist()
    assert tokenizer.decode(ids) == "[CLS] h i j k [SEP] l m n [SEP]"


def test_reader_groups_by_context_and_writer_round_trip(tmp_path):
    groups = [
        ResponseSelectionGroup("0", ["hi", "hello there"], ["how are you", "the cat", "blue"], [1, 0, 0]),
        ResponseSelectionGroup("1", ["what now"], ["nothing", "something"], [0, 1]),
        ResponseSelectionGroup("2", ["hi", "hello there"], ["again", "x"], [0, 0]),
    ]
    path = tmp_path / "rs.txt"
    write_response_selection(path, groups)
    back = read_response_selection(path)
    assert [(g.turns, g.candidates, g.labels) for g in back] == [
        (g.turns, g.candidates, g.labels) for g in groups
    ]
    assert [g.line for g in back] == [1, 4, 6] and not back[2].has_positive
    assert read_response_selection(path, max_groups=2)[-1].context_id == "1"
    assert read_dialogue_sessions(path) == [["hi", "hello there", "how are you"], ["what now", "something"]]
    with pytest.raises(ValueError, match="merge"):
        format_response_selection([groups[0], groups[0]])


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("1\thi\thello\n0 hi hello\n", 2, "line", "at least 3"),
        ("1\thi\thello\n2\thi\tbye\n", 2, "label", "0 or 1"),
        ("yes\thi\thello\n", 1, "label", "0 or 1"),
        ("1\t\t\thello\n", 1, "context", "no non-empty turn"),
        ("1\thi\thello\n0\thi\tbye\n1\tother\tthing\n0\thi\tz\n", 4, "context", "differs"),
        ("1\thi\thello\n0\thi\tbye\n1\tother\tthing\n", 3, "context", "expected 2"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path, text, line, field, message):
    path = tmp_path / "bad.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=message) as info:
        read_response_selection(path, group_size=2)
    assert info.value.line == line and info.value.field == field and str(path) in str(info.value)


def test_reader_rejects_invalid_utf8(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"1\thi\thello\n0\thi\t\xff\xfe\n")
    with pytest.raises(CorpusFormatError, match="UTF-8") as info:
        read_response_selection(path)
    assert info.value.line == 2


def test_chitchat_split_and_groups_have_no_leak():
    rng = random.Random(1)
    conversations = {f"c{i:03d}": [f"turn {i} {k} {rng.random():.6f}" for k in range(rng.randint(2, 9))]
                     for i in range(60)}  # fmt: skip
    splits = split_ids(list(conversations), seed=3)
    assert splits == split_ids(list(reversed(list(conversations))), seed=3)  # order-independent
    sets = [set(v) for v in splits.values()]
    assert sum(map(len, sets)) == 60 and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert len(splits["test"]) == len(splits["valid"]) == 6
    convs = [conversations[c] for c in splits["test"]]
    owner = {t: i for i, c in enumerate(convs) for t in c}
    for group in selection_groups(convs, random.Random(0)):
        i = int(group.context_id)
        assert group.labels == [1] + [0] * 9 and len(set(group.candidates)) == 10
        cut = convs[i].index(group.candidates[0])
        assert group.turns == convs[i][:cut] and cut >= 1  # the true next turn
        assert all(owner[c] != i for c in group.candidates[1:])  # negatives from other conversations
    train = training_groups([conversations[c] for c in splits["train"]], random.Random(0))
    assert all(g.labels == [1, 0] for g in train)
    text = format_response_selection(train)  # neighbours never share a context
    assert len(text.splitlines()) == 2 * len(train)


def test_embedded_chitchat_files(tmp_path, monkeypatch):
    """The real chitchat-dataset conversations: disjoint splits by id, Ubuntu-format 1 + 9 test groups."""
    from maeir.datasets.embedded.chitchat import chitchat_conversations, embedded_chitchat

    monkeypatch.setenv("MAEIR_CACHE", str(tmp_path))
    files = embedded_chitchat(seed=7)
    split = files.stats["split_ids"]
    ids = [set(split[name]) for name in ("train", "valid", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    conversations = chitchat_conversations()
    assert set().union(*ids) == set(conversations)
    test = read_response_selection(files.test, group_size=10)
    assert len(test) == len(split["test"]) > 300
    test_turns = {cid: conversations[cid] for cid in split["test"]}
    where: dict[str, set] = {}
    for cid, turns in test_turns.items():
        for turn in turns:
            where.setdefault(turn, set()).add(cid)
    for group in test:
        assert group.labels == [1] + [0] * 9 and len(set(group.candidates)) == 10
        owners = {
            c
            for c in where.get(group.candidates[0], ())
            if _follows(test_turns[c], group.turns, group.candidates[0])
        }
        assert owners, "the positive is the turn that follows the context in a test conversation"
        for negative in group.candidates[1:]:
            assert where.get(negative, set()) - owners, "negatives come from other test conversations"
    sessions_ids = [json.loads(line)["id"] for line in files.train_sessions.read_text().splitlines()]
    assert set(sessions_ids) == ids[0]
    train = read_response_selection(files.train)
    assert all(g.labels == [1, 0] for g in train) and len(train) == files.stats["train_lines"] // 2
    assert embedded_chitchat(seed=7).stats == files.stats  # cached


def _follows(turns: list[str], context: list[str], response: str) -> bool:
    n = len(context)
    return any(turns[k - n : k] == context and turns[k] == response for k in range(n, len(turns)))


# -- collator and model --------------------------------------------------------------------------
def test_mask_rates_per_side(tokenizer):
    boundaries = WordBoundaries.from_tokenizer(tokenizer)
    pairs = dialogue_pairs(sessions(40), tokenizer)
    collator = DialMAECollator(tokenizer, context_max_length=64, response_max_length=24, seed=0)
    out = collator([pairs.pair(i) for i in range(len(pairs))])
    for prefix, rate in (("", 0.30), ("decoder_", 0.75)):
        labels, attention = out[f"{prefix}labels"], out[f"{prefix}attention_mask"]
        original = torch.where(labels == -100, out[f"{prefix}input_ids"], labels)
        special = boundaries.special[original]
        starts = ~boundaries.continuation[original] & ~special & attention.bool()
        for row in range(original.shape[0]):
            words = int(starts[row].sum())
            masked_words = int((starts[row] & (labels[row] != -100)).sum())
            assert masked_words == max(1, int(rate * words + 0.5))  # exact per sequence
        assert not (labels[special] != -100).any()
        chosen = labels != -100
        share = chosen.sum() / (attention.bool() & ~special).sum()
        assert abs(float(share) - rate) < 0.1
        # 80/10/10 on each side, within 4 binomial standard deviations
        n = int(chosen.sum())
        as_mask = int((out[f"{prefix}input_ids"][chosen] == tokenizer.mask_token_id).sum())
        kept = int((out[f"{prefix}input_ids"][chosen] == labels[chosen]).sum())
        for count, p in ((as_mask, 0.8), (kept, 0.1)):
            assert abs(count - p * n) < 4 * (n * p * (1 - p)) ** 0.5 + 1, (prefix, count, n)


def test_decoder_position_zero_is_the_encoders_final_cls(model, batch):
    seen = {}
    model.decoder.register_forward_pre_hook(lambda m, args: seen.__setitem__("input", args[0].clone()))
    out = model(**batch)
    torch.testing.assert_close(seen["input"][:, 0], out.encoder_last_hidden_state[:, 0], rtol=0, atol=0)
    embedded = model.embeddings(input_ids=batch["decoder_input_ids"])
    torch.testing.assert_close(seen["input"][:, 1:], embedded[:, 1:], rtol=0, atol=0)
    # before any pooler: the pooler output differs from what the decoder got
    pooled = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
    assert pooled is None or (pooled - seen["input"][:, 0]).abs().max() > 1e-3


def test_decoder_reads_the_encoder(tiny_encoder_config, tokenizer, batch):
    # Larger initial weights than the default 0.02, so that a random decoder's output visibly depends
    # on its inputs (at 0.02 every logit is nearly uniform whatever the context).
    config = tiny_encoder_config.__class__.from_dict(
        {**tiny_encoder_config.to_dict(), "initializer_range": 0.2}
    )
    torch.manual_seed(0)
    model = DialMAEForPretraining(DialMAEConfig(encoder_config=config.to_dict(), mask_token_id=103)).eval()
    base = model(**batch)
    same = model(**batch)
    assert torch.equal(base.decoder_mlm_loss, same.decoder_mlm_loss)
    changed = dict(batch)
    ids = batch["input_ids"].clone()
    visible = (batch["attention_mask"] == 1) & (batch["labels"] == -100) & (ids != 101) & (ids != 102)
    ids[visible] = 2023
    changed["input_ids"] = ids
    other = model(**changed)
    assert abs(float(other.decoder_mlm_loss - base.decoder_mlm_loss)) > 1e-2
    # the decoder's input side is untouched, so the difference comes through position 0 only
    assert torch.equal(changed["decoder_input_ids"], batch["decoder_input_ids"])


def test_decoder_loss_gradient_reaches_every_encoder_layer(model, batch):
    model.train()
    out = model(**{k: v for k, v in batch.items() if k != "labels"})  # decoder loss only
    assert out.encoder_mlm_loss is None and torch.equal(out.loss.detach(), out.decoder_mlm_loss)
    out.loss.backward()
    for layer in model.encoder.encoder.layer:
        assert layer.attention.self.query.weight.grad.abs().sum() > 0
        assert layer.output.dense.weight.grad.abs().sum() > 0
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters() if p.dim() > 1
    )


def test_loss_is_encoder_plus_weighted_decoder(model, batch):
    out = model(**batch)
    torch.testing.assert_close(out.loss.detach(), out.encoder_mlm_loss + out.decoder_mlm_loss)
    model.config.decoder_loss_weight = 0.5
    out = model(**batch)
    torch.testing.assert_close(out.loss.detach(), out.encoder_mlm_loss + 0.5 * out.decoder_mlm_loss)
    assert out.logits.shape[0] == int((batch["labels"] != -100).sum())
    assert out.decoder_logits.shape[0] == int((batch["decoder_labels"] != -100).sum())


def test_config_validation(tiny_encoder_config):
    with pytest.raises(ValueError, match="decoder_mask_rate"):
        DialMAEConfig(encoder_config=tiny_encoder_config.to_dict(), decoder_mask_rate=1.0)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        DialMAEConfig(encoder_config=tiny_encoder_config.to_dict(), context_max_length=4096)


def test_save_reload_identity_and_plain_encoder(model, batch, tokenizer, tmp_path):
    model.save_pretrained(tmp_path / "full")
    model.save_encoder(tmp_path / "encoder", tokenizer)
    assert (tmp_path / "full" / "model.safetensors").exists() and not list((tmp_path / "full").glob("*.bin"))
    torch.manual_seed(0)
    reference = model(**batch)
    for auto in (AutoModelForPreTraining, AutoModelForMaskedLM):
        reloaded = auto.from_pretrained(tmp_path / "full").eval()
        assert isinstance(reloaded, DialMAEForPretraining) and reloaded.config.decoder_mask_rate == 0.75
        out = reloaded(**batch)
        assert torch.equal(out.loss, reference.loss) and torch.equal(
            out.decoder_logits, reference.decoder_logits
        )
    plain = AutoModel.from_pretrained(tmp_path / "encoder").eval()
    ours = model.encoder(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    theirs = plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert torch.equal(ours, theirs)
    names = json.loads((tmp_path / "encoder" / "config.json").read_text())
    assert names["model_type"] == "bert"


def test_from_backbone_keeps_weights_and_ties_head(tiny_backbone_dir):
    model = DialMAEForPretraining.from_backbone(tiny_backbone_dir, decoder_layers=2, decoder_mask_rate=0.45)
    plain = AutoModelForMaskedLM.from_pretrained(tiny_backbone_dir)
    for name, value in plain.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], value), name
    assert len(model.decoder.layers) == 2 and model.config.decoder_mask_rate == 0.45
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert isinstance(maeir.DialMAEConfig(encoder_config=plain.config.to_dict()), DialMAEConfig)


# -- R_n@k ---------------------------------------------------------------------------------------
def test_recall_at_k_equals_hand_computation():
    groups = [
        ([0.9, 0.1, 0.5, 0.3, 0.2, 0.0, -1.0, 0.4, 0.6, 0.7], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # rank 1
        ([0.1, 0.9, 0.5, 0.3, 0.2, 0.0, -1.0, 0.4, 0.6, 0.7], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # rank 8
        ([0.5, 0.9, 0.4, 0.3, 0.2, 0.0, -1.0, 0.1, 0.2, 0.1], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # rank 2
        ([0.5, 0.9, 0.4, 0.3, 0.2, 0.0, -1.0, 0.1, 0.2, 0.1], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # no positive
        ([0.3, 0.3, 0.1, 0.0, 0.2, 0.0, -1.0, 0.1, 0.2, 0.1], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # tie: rank 2
    ]
    metrics = response_selection_metrics(groups)
    # ranks 1, 8, 2, 2 → R@1 = 1/4, R@2 = 3/4, R@5 = 3/4, MRR = (1 + 1/8 + 1/2 + 1/2) / 4
    assert metrics["groups"] == 4 and metrics["skipped"] == 1 and metrics["group_sizes"] == {"10": 5}
    assert metrics["R@1"] == pytest.approx(0.25) and metrics["R@2"] == pytest.approx(0.75)
    assert metrics["R@5"] == pytest.approx(0.75)
    assert metrics["MRR"] == pytest.approx((1 + 1 / 8 + 0.5 + 0.5) / 4)
    # any candidate order gives the same numbers
    rng = random.Random(0)
    shuffled = []
    for scores, labels in groups:
        order = list(range(len(scores)))
        rng.shuffle(order)
        shuffled.append(([scores[i] for i in order], [labels[i] for i in order]))
    assert response_selection_metrics(shuffled) == metrics


def test_multiple_positives_and_small_groups():
    assert positive_ranks([0.9, 0.8, 0.7, 0.1], [0, 1, 0, 1]).tolist() == [2, 4]
    m = group_metrics([0.9, 0.8, 0.7, 0.1], [0, 1, 0, 1])
    assert m["R@1"] == 0 and m["R@2"] == 0.5 and m["R@5"] == 1.0 and m["MRR"] == 0.5 and m["P@1"] == 0
    assert m["MAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert group_metrics([0.1, 0.2], [1, 0])["R@1"] == 0 and group_metrics([0.1, 0.2], [1, 0])["R@2"] == 1
    empty = response_selection_metrics([([0.1, 0.2], [0, 0])])
    assert empty["groups"] == 0 and empty["skipped"] == 1 and empty["R@1"] is None


# -- bi-encoder fine-tuning / evaluation ----------------------------------------------------------
def write_dialogue_file(path: Path, n_groups: int = 12, size: int = 4, seed: int = 0, drop_positive=()):
    rng = random.Random(seed)
    groups = []
    for g in range(n_groups):
        turns = rng.sample(TURNS, 3)
        candidates = [t for t in TURNS if t not in turns][:size]
        rng.shuffle(candidates)
        labels = [0] * size
        if g not in drop_positive:
            labels[rng.randrange(size)] = 1
        groups.append(ResponseSelectionGroup(str(g), turns, candidates, labels))
    write_response_selection(path, groups)
    return groups


def test_bi_encoder_recipe_left_truncates_contexts(tiny_backbone_dir, tokenizer):
    from maeir.cli.response_selection import dialogue_recipe, load_model
    from maeir.retrieval.tokenization_bi_encoder import tokenize

    args = type("A", (), {"pooling": "cls", "context_max_length": 8, "response_max_length": 6,
                          "tie_towers": False, "normalize": False, "temperature": 1.0})()  # fmt: skip
    model, tok = load_model(tiny_backbone_dir, dialogue_recipe(args))
    assert model.passage_encoder is not None  # untied by default
    text = context_text(["one two three four", "five six seven eight"], tok)
    query = tokenize(tok, model.config, [text], "query")["input_ids"][0].tolist()
    assert tok.decode(query) == "[CLS] four [SEP] five six seven eight [SEP]"
    passage = tokenize(tok, model.config, ["one two three four five six"], "passage")["input_ids"][0].tolist()
    assert tok.decode(passage) == "[CLS] one two three four [SEP]"


def test_finetune_and_evaluate_scripts(tmp_path, tiny_backbone_dir, tokenizer):
    from maeir.cli.response_selection import evaluate_main, finetune_main
    from maeir.retrieval.loading import load_bi_encoder
    from maeir.retrieval.response_selection import score_groups

    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    write_dialogue_file(train, 16, 2, seed=1)
    groups = write_dialogue_file(test, 9, 5, seed=2, drop_positive=(3,))
    out = tmp_path / "rs"
    metrics = finetune_main([
        str(REPO / "configs/finetune_response_selection_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir,
        "--train_file", str(train), "--validation_file", str(test), "--output_dir", str(out), "--max_steps", "2",
        "--per_device_train_batch_size", "4", "--context_max_length", "24", "--response_max_length", "12",
        "--disable_tqdm", "true", "--logging_steps", "1",
    ])  # fmt: skip
    assert metrics["groups"] == 8 and metrics["skipped"] == 1
    assert json.loads((out / "metrics.json").read_text()) == metrics
    recipe = json.loads((out / "encoding_recipe.json").read_text())
    assert recipe["query_truncation_side"] == "left" and recipe["passage_truncation_side"] == "right"
    assert recipe["tie_towers"] is False and recipe["pooling"] == "cls" and recipe["query_max_length"] == 24

    # save/reload identity of the bi-encoder: same scores through the saved recipe
    model, tok = load_bi_encoder(out)
    assert model.config.query_truncation_side == "left" and tok.sep_token_id == tokenizer.sep_token_id
    scores = score_groups(model, tok, groups, batch_size=3)
    again = score_groups(*load_bi_encoder(out), groups, batch_size=64)
    for a, b in zip(scores, again):
        assert torch.allclose(torch.as_tensor(a), torch.as_tensor(b), atol=1e-5)

    # the evaluation script: same numbers, JSON written, any group size, no dropped group
    result = evaluate_main(["--model", str(out), "--data", str(test), "--output", str(tmp_path / "m.json"),
                            "--batch_size", "4"])  # fmt: skip
    assert result == json.loads((tmp_path / "m.json").read_text())
    assert {"R@1", "R@2", "R@5", "MRR", "groups", "skipped"} <= set(result)
    for key in ("R@1", "R@2", "R@5", "MRR"):
        assert result[key] == pytest.approx(metrics[key], abs=1e-6)
    expected = response_selection_metrics((s, g.labels) for s, g in zip(scores, groups))
    assert result["R@1"] == pytest.approx(expected["R@1"]) and result["MRR"] == pytest.approx(expected["MRR"])
    # shuffled candidate order inside each group: same metrics
    rng = random.Random(5)
    shuffled = []
    for g in groups:
        order = list(range(len(g.candidates)))
        rng.shuffle(order)
        shuffled.append(ResponseSelectionGroup(g.context_id, g.turns, [g.candidates[i] for i in order],
                                               [g.labels[i] for i in order]))  # fmt: skip
    write_response_selection(tmp_path / "shuffled.txt", shuffled)
    assert (
        evaluate_main(["--model", str(out), "--data", str(tmp_path / "shuffled.txt"), "--group_size", "5"])
        == result
    )


def test_trained_bi_encoder_save_reload_identity(tmp_path, tiny_backbone_dir, monkeypatch):
    """What the fine-tuning driver saves reloads to the trained weights and encodes exactly as trained."""
    from transformers import AutoTokenizer

    from maeir.cli.response_selection import finetune_main
    from maeir.retrieval.loading import load_bi_encoder
    from maeir.retrieval.sentence_transformers_folder import TOWER_FOLDERS
    from maeir.retrieval.tokenization_bi_encoder import tokenize
    from maeir.trainers import ContrastiveTrainer

    trained = {}
    save_model = ContrastiveTrainer.save_model

    def capture(self, *args, **kwargs):  # the in-memory model at the final save
        trained["model"] = self.accelerator.unwrap_model(self.model)
        trained["state"] = {k: v.detach().clone() for k, v in trained["model"].state_dict().items()}
        return save_model(self, *args, **kwargs)

    monkeypatch.setattr(ContrastiveTrainer, "save_model", capture)
    train = tmp_path / "train.txt"
    groups = write_dialogue_file(train, 16, 2, seed=1)
    out = tmp_path / "rs"
    finetune_main([
        str(REPO / "configs/finetune_response_selection_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir,
        "--train_file", str(train), "--output_dir", str(out), "--max_steps", "2", "--learning_rate", "1e-3",
        "--per_device_train_batch_size", "4", "--context_max_length", "24", "--response_max_length", "12",
        "--disable_tqdm", "true",
    ])  # fmt: skip
    model, tok = load_bi_encoder(out)
    state = model.state_dict()
    assert state.keys() == trained["state"].keys()
    assert all(torch.equal(state[name], value) for name, value in trained["state"].items())
    # the towers were trained, apart (untied): the identity is not that of two fresh copies
    start = AutoModel.from_pretrained(tiny_backbone_dir).encoder.layer[0].attention.self.query.weight
    query_w = model.query_encoder.encoder.layer[0].attention.self.query.weight
    passage_w = model.passage_encoder.encoder.layer[0].attention.self.query.weight
    assert not torch.equal(query_w, start) and not torch.equal(query_w, passage_w)

    contexts = [context_text(g.turns, tok) for g in groups]  # longer than 24 tokens: left-truncated
    responses = [c for g in groups for c in g.candidates]
    model.eval(), trained["model"].eval()
    for side, texts in (("query", contexts), ("passage", responses)):
        batch = tokenize(tok, model.config, texts, side)
        with torch.no_grad():
            ours = trained["model"].encode(batch["input_ids"], batch["attention_mask"], side=side)["dense"]
            again = model.encode(batch["input_ids"], batch["attention_mask"], side=side)["dense"]
            # the plain tower folder with plain transformers: its tokenizer keeps the side's truncation
            folder = out / TOWER_FOLDERS[side]
            plain_tok = AutoTokenizer.from_pretrained(folder)
            plain = AutoModel.from_pretrained(folder).eval()
            encoded = plain_tok(texts, padding=True, truncation=True, return_tensors="pt")
            cls = plain(**encoded).last_hidden_state[:, 0]
        assert torch.equal(ours, again)
        assert torch.equal(encoded["input_ids"], batch["input_ids"])
        torch.testing.assert_close(cls, ours, rtol=0, atol=1e-5)
    assert tokenize(tok, model.config, contexts, "query")["input_ids"].shape[1] == 24  # really truncated


@pytest.mark.slow
def test_two_process_finetune_and_evaluate_under_accelerate(tmp_path, tiny_backbone_dir):
    """One 2-process DDP job (gloo) fine-tunes; evaluation on 2 processes scores each group once (uneven
    shards of an odd number of groups) and gives exactly the 1-process metrics."""
    import os
    import subprocess

    from maeir.cli.response_selection import evaluate_main

    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    write_dialogue_file(train, 16, 2, seed=1)
    write_dialogue_file(test, 9, 5, seed=2, drop_positive=(3,))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}

    def launch(port: str, script: str, *args: str) -> subprocess.CompletedProcess:
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(REPO / "configs/accelerate/cpu_ddp_2proc.yaml"), "--main_process_port", port,
            str(REPO / "scripts" / script), *args,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
        assert result.returncode == 0, result.stderr[-4000:]
        return result

    out = tmp_path / "rs"
    launch(
        "29571", "finetune_response_selection.py", str(REPO / "configs/finetune_response_selection_cpu.yaml"),
        "--model_name_or_path", tiny_backbone_dir, "--train_file", str(train), "--validation_file", str(test),
        "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
        "--context_max_length", "24", "--response_max_length", "12", "--disable_tqdm", "true",
    )  # fmt: skip
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["hyperparameters"]["world_size"] == 2  # one job, not two lone processes
    assert info["hyperparameters"]["global_batch_size"] == 8
    result = launch(
        "29573", "evaluate_response_selection.py", "--model", str(out), "--data", str(test),
        "--output", str(tmp_path / "two.json"), "--batch_size", "4",
    )  # fmt: skip
    assert "process 0 of 2 scored 5 of 9 groups" in result.stderr
    assert "process 1 of 2 scored 4 of 9 groups" in result.stderr
    assert result.stdout.count("| R@1 |") == 1  # printed by the main process only
    two = json.loads((tmp_path / "two.json").read_text())
    one = evaluate_main(["--model", str(out), "--data", str(test), "--batch_size", "4"])
    assert two == one and one["groups"] == 8 and one["skipped"] == 1
    assert json.loads((out / "metrics.json").read_text()) == one  # validation inside the 2-process job


def test_pretrain_run_contract(tmp_path, tiny_backbone_dir):
    from maeir.cli.pretrain import main

    sessions_file = tmp_path / "sessions.jsonl"
    sessions_file.write_text("".join(json.dumps({"turns": s}) + "\n" for s in sessions(8)), encoding="utf-8")
    out = tmp_path / "run"
    trainer = main([
        str(REPO / "configs/dial_mae_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir,
        "--train_file", str(sessions_file), "--output_dir", str(out), "--max_steps", "2", "--save_steps", "2",
        "--per_device_train_batch_size", "4", "--logging_steps", "1", "--disable_tqdm", "true",
        "--method_config", "context_max_length=32,response_max_length=16",
    ])  # fmt: skip
    model = AutoModelForPreTraining.from_pretrained(out)
    assert isinstance(model, DialMAEForPretraining) and model.config.context_max_length == 32
    assert (out / "encoder" / "model.safetensors").exists() and (out / "README.md").exists()
    assert AutoModel.from_pretrained(out / "encoder").config.model_type == "bert"
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {"loss", "encoder_mlm_loss", "decoder_mlm_loss"} <= logged
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["method"] == "dial_mae" and info["hyperparameters"]["decoder_mask_rate"] == 0.75


def test_collator_masks_replay_from_a_recorded_state(tokenizer):
    """The base collator's call history works for Dial-MAE, so a checkpoint can save the mask RNG."""
    pairs = dialogue_pairs(sessions(), tokenizer)
    collator = DialMAECollator(tokenizer, context_max_length=48, response_max_length=16, seed=0)
    features = [pairs.pair(i) for i in range(4)]
    first, second = collator(features), collator(features)
    state = collator.rng_state_before_call(1)
    assert state is not None and collator.rng_state_before_call(2) is not None
    collator.restore_rng_state(state, 1)
    again = collator(features)
    assert all(torch.equal(again[key], second[key]) for key in second)
    assert not torch.equal(first["decoder_labels"], second["decoder_labels"])  # fresh masks per call


def test_resumed_post_training_matches_uninterrupted(tmp_path, tiny_backbone_dir):
    import shutil

    from safetensors.torch import load_file

    from maeir.cli.pretrain import main

    sessions_file = tmp_path / "sessions.jsonl"
    sessions_file.write_text("".join(json.dumps({"turns": s}) + "\n" for s in sessions(8)), encoding="utf-8")

    def run(out, *extra):
        main([
            str(REPO / "configs/dial_mae_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir,
            "--train_file", str(sessions_file), "--output_dir", str(out), "--max_steps", "4", "--save_steps", "2",
            "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--seed", "7",
            "--method_config", "context_max_length=32,response_max_length=16", *extra,
        ])  # fmt: skip

    run(tmp_path / "straight")
    assert (tmp_path / "straight" / "checkpoint-2" / "collator_rng_0.safetensors").is_file()
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(tmp_path / "straight" / "checkpoint-2", resumed / "checkpoint-2")
    run(resumed, "--resume_from_checkpoint", "last")
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    again = load_file(resumed / "model.safetensors")
    assert straight.keys() == again.keys()
    assert all(torch.equal(straight[name], again[name]) for name in straight)


def test_scripts_are_thin_and_run(tmp_path, tiny_backbone_dir, monkeypatch, capsys):
    import runpy

    test = tmp_path / "test.txt"
    write_dialogue_file(test, 3, 3)
    argv = ["evaluate_response_selection.py", "--model", tiny_backbone_dir, "--data", str(test),
            "--output", str(tmp_path / "m.json")]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(REPO / "scripts/evaluate_response_selection.py"), run_name="__main__")
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["groups"] == 3 and "R@1" in capsys.readouterr().out
    for script in ("finetune_response_selection.py", "evaluate_response_selection.py"):
        assert len((REPO / "scripts" / script).read_text().splitlines()) < 25  # logic lives in maeir.cli


@pytest.mark.parametrize("name", ["dial_mae_cpu.yaml", "dial_mae_ubuntu.yaml", "dial_mae_ecommerce.yaml"])
def test_pretraining_recipes_parse(name):
    from transformers import TrainingArguments

    from maeir.arguments import PretrainDataArguments, PretrainModelArguments
    from maeir.config_file import parse_args, parse_key_values

    model_args, data_args, training_args = parse_args(
        (PretrainModelArguments, PretrainDataArguments, TrainingArguments),
        [str(REPO / "configs" / name), "--output_dir", "unused"],
    )
    assert model_args.method == "dial_mae"
    fields = parse_key_values(model_args.method_config)
    assert set(fields) <= set(DialMAEConfig.method_field_names())
    assert fields["encoder_mask_rate"] == 0.30
    if name != "dial_mae_cpu.yaml":
        assert (fields["context_max_length"], fields["response_max_length"]) == (256, 64)
        assert training_args.learning_rate == 3e-4 and training_args.max_steps == 150000
        expected = (0.75, 1) if "ubuntu" in name else (0.45, 2)
        assert (fields["decoder_mask_rate"], fields["decoder_layers"]) == expected
        assert parse_key_values(model_args.published_results)


@pytest.mark.parametrize(
    "name",
    ["finetune_response_selection_cpu.yaml", "finetune_response_selection_ubuntu.yaml",
     "finetune_response_selection_ecommerce.yaml"],
)  # fmt: skip
def test_finetuning_recipes_parse(name):
    from transformers import TrainingArguments

    from maeir.cli.response_selection import (
        ResponseSelectionDataArguments,
        ResponseSelectionModelArguments,
    )
    from maeir.config_file import parse_args

    model_args, data_args, training_args = parse_args(
        (ResponseSelectionModelArguments, ResponseSelectionDataArguments, TrainingArguments),
        [str(REPO / "configs" / name), "--output_dir", "unused"],
    )
    assert model_args.tie_towers is False and model_args.pooling == "cls" and model_args.temperature == 1.0
    assert data_args.group_size == 2
