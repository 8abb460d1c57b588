"""From-scratch pre-training, packed text corpora and the trained WordPiece tokenizer."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from tokenizers.models import WordPiece
from transformers import AutoModelForPreTraining, AutoTokenizer

import maeir
from maeir.arguments import PretrainDataArguments
from maeir.cli.pretrain import main
from maeir.data.tokenizer import SPECIAL_TOKENS, train_wordpiece_tokenizer, vocabulary_digest
from maeir.errors import ConfigError
from maeir.methods import build_text_dataset, check_data_arguments, get_method, pack_documents

REPO = Path(__file__).resolve().parents[1]
TINY = "num_hidden_layers=2,hidden_size=128,num_attention_heads=2,intermediate_size=512"
CONFIGS = {
    "mae_lm": "configs/mae_lm_cpu.yaml",
    "mlm": "configs/mlm_cpu.yaml",
    "dial_mae": "configs/dial_mae_cpu.yaml",
    "cotmae_v2": "configs/cotmae_v2_cpu.yaml",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_texts) -> str:
    path = tmp_path_factory.mktemp("corpus") / "lee.txt"
    path.write_text("\n".join(sample_texts) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def wordpiece_dir(tmp_path_factory, sample_texts) -> str:
    return train_wordpiece_tokenizer(sample_texts, 600, tmp_path_factory.mktemp("wp") / "tokenizer")


def run(method, output_dir, train_file, *extra):
    argv = [str(REPO / CONFIGS[method]), "--model_name_or_path", "minilm", "--from_scratch", "true",
            "--encoder_overrides", TINY, "--train_file", str(train_file), "--output_dir", str(output_dir),
            "--max_seq_length", "32", "--per_device_train_batch_size", "2", "--logging_steps", "1",
            "--warmup_steps", "0", "--save_steps", "100", "--disable_tqdm", "true", *extra]  # fmt: skip
    return main(argv)


# -- packing ---------------------------------------------------------------------------------------


def test_packing_loses_no_token(tokenizer, corpus, sample_texts):
    args = PretrainDataArguments(train_file=corpus, max_seq_length=32, pack_sequences=True)
    blocks = build_text_dataset(tokenizer, args)["input_ids"]
    sep, cls = tokenizer.sep_token_id, tokenizer.cls_token_id
    assert all(len(b) <= 32 and b[0] == cls and b[-1] == sep for b in blocks)
    assert all(len(b) == 32 for b in blocks[:-1]) and len(blocks[-1]) > 2  # one map batch: one short block
    expected = []
    for text in sample_texts:
        expected += tokenizer(text, add_special_tokens=False)["input_ids"] + [sep]
    assert [t for b in blocks for t in b[1:-1]] == expected
    # the default (no packing) still truncates one record per example
    plain = build_text_dataset(tokenizer, PretrainDataArguments(train_file=corpus, max_seq_length=32))
    assert len(plain) == len(sample_texts) and max(len(ids) for ids in plain["input_ids"]) == 32


def test_pack_documents_keeps_the_remainder_and_checks_the_size():
    blocks = pack_documents([[5, 6, 7], [], [8]], 5, [1], [2], 9)
    assert blocks == [[1, 5, 6, 7, 2], [1, 9, 8, 9, 2]]
    assert pack_documents([[5, 6]], 6, [1], [2], 9) == [[1, 5, 6, 9, 2]]
    with pytest.raises(ConfigError, match="max_seq_length"):
        pack_documents([[5]], 2, [1], [2], 9)


@pytest.mark.parametrize("method", ["dial_mae", "cotmae_v2"])
def test_packing_is_refused_where_the_data_builder_makes_its_own_examples(method):
    with pytest.raises(ConfigError, match="pack_sequences.*does not support packed text"):
        check_data_arguments(get_method(method), PretrainDataArguments(pack_sequences=True))
    check_data_arguments(get_method("mlm"), PretrainDataArguments(pack_sequences=True))


# -- the from-scratch model ------------------------------------------------------------------------


def test_from_scratch_model_holds_no_pretrained_weight(minilm_path):
    checkpoint = {}
    for file in Path(minilm_path).glob("*.safetensors"):
        checkpoint.update(load_file(file))
    std = 0.02
    model = maeir.MAELMForMaskedLM.from_backbone("minilm", from_scratch=True, decoder_layers=1)
    assert model.config.encoder_config.initializer_range == std
    ours = model.encoder.state_dict()
    compared = 0
    for name, pretrained in checkpoint.items():
        if not pretrained.is_floating_point() or name.startswith("pooler."):  # no pooler in a masked LM
            continue
        value = ours[name]
        assert value.shape == pretrained.shape, name
        assert not torch.equal(value, pretrained), f"{name} is the pretrained tensor"
        compared += 1
        if name.endswith("LayerNorm.weight"):
            assert torch.all(value == 1), name
        elif name.endswith("bias"):
            assert torch.all(value == 0), name
        else:  # linear and embedding weights: normal(0, initializer_range)
            assert abs(value.std().item() - std) < 0.1 * std and abs(value.mean().item()) < 0.1 * std, name
    assert compared >= 6 * 16 + 5  # every layer's tensors and the embeddings, not just a few
    word = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight.data_ptr() == word.data_ptr()  # the head stays tied


def test_vocabulary_of_another_tokenizer(wordpiece_dir, tiny_backbone_dir):
    tokenizer = AutoTokenizer.from_pretrained(wordpiece_dir)
    model = maeir.MaskedLMForPretraining.from_backbone(
        "minilm", from_scratch=True, tokenizer=tokenizer, encoder_overrides={"num_hidden_layers": 1}
    )
    encoder_config = model.config.encoder_config
    assert encoder_config.vocab_size == len(tokenizer) < 30522 and encoder_config.num_hidden_layers == 1
    assert encoder_config.pad_token_id == tokenizer.pad_token_id == 0
    assert model.config.mask_token_id == tokenizer.mask_token_id == 4
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    with pytest.raises(ConfigError, match=r"tokenizer has \d+ tokens but the pretrained backbone"):
        maeir.MaskedLMForPretraining.from_backbone(tiny_backbone_dir, tokenizer=tokenizer)


def test_trained_wordpiece_tokenizer_round_trips(wordpiece_dir, sample_texts):
    tokenizer = AutoTokenizer.from_pretrained(wordpiece_dir, local_files_only=True)
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(5)] == list(SPECIAL_TOKENS)
    assert (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id) == (0, 2, 3)
    assert 100 < len(tokenizer) <= 600
    for text in sample_texts[:5]:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert tokenizer.unk_token_id not in ids
        decoded = tokenizer.decode(ids, skip_special_tokens=True)
        assert "".join(decoded.split()) == "".join(text.lower().split())
    with pytest.raises(ConfigError, match="train_tokenizer_vocab_size"):
        train_wordpiece_tokenizer(sample_texts, 3, wordpiece_dir + "-bad")


# -- runs through scripts/pretrain.py --------------------------------------------------------------


def _dialogue_file(folder: Path, texts: list[str]) -> Path:
    path = folder / "sessions.jsonl"
    sessions = [texts[i : i + 4] for i in range(0, 32, 4)]
    path.write_text("".join(json.dumps({"turns": s}) + "\n" for s in sessions), encoding="utf-8")
    return path


def _assert_says_from_scratch(out: Path) -> None:
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["from_scratch"] is True and info["base_model"] is None
    assert info["architecture"].startswith(maeir.modeling.backbone.MINILM_HUB_ID)
    for card in (out / "README.md", out / "encoder" / "README.md"):
        text = card.read_text()
        assert "from scratch (random initialisation) with the architecture of" in text
        assert "base_model:" not in text.split("---")[1]  # no pretrained base declared


@pytest.mark.parametrize("method", list(CONFIGS))
def test_every_method_trains_from_scratch(method, tmp_path, corpus, sample_texts):
    extra = ["--max_steps", "2"]
    train_file = corpus
    if method in ("mae_lm", "mlm"):
        extra += ["--pack_sequences", "true"]
    elif method == "dial_mae":
        train_file = _dialogue_file(tmp_path, sample_texts)
        extra += ["--method_config", "context_max_length=32,response_max_length=16"]
    else:
        extra += ["--method_config", "sparse_top_k=64"]
    out = tmp_path / "run"
    trainer = run(method, out, train_file, *extra)
    assert trainer.state.global_step == 2
    model = AutoModelForPreTraining.from_pretrained(out)
    assert type(model) is get_method(method).model_class
    assert (
        model.config.encoder_config.hidden_size == 128 and model.config.encoder_config.num_hidden_layers == 2
    )
    _assert_says_from_scratch(out)
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["hyperparameters"]["pack_sequences"] is (method in ("mae_lm", "mlm"))


def test_trained_tokenizer_through_the_script(tmp_path, corpus):
    out = tmp_path / "run"
    trainer = run("mlm", out, corpus, "--max_steps", "1", "--pack_sequences", "true",
                  "--train_tokenizer_vocab_size", "500")  # fmt: skip
    saved = AutoTokenizer.from_pretrained(out)
    assert len(saved) == len(trainer.processing_class) <= 500
    assert trainer.model.config.encoder_config.vocab_size == len(saved)
    assert (out / "wordpiece_tokenizer" / "tokenizer.json").exists()
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["hyperparameters"]["train_tokenizer_vocab_size"] == 500
    assert f"vocab_size={len(saved)}" in info["architecture"]
    with pytest.raises(ConfigError, match="--from_scratch true"):
        main([str(REPO / CONFIGS["mlm"]), "--output_dir", str(tmp_path / "x"), "--train_file", corpus,
              "--train_tokenizer_vocab_size", "500"])  # fmt: skip
    with pytest.raises(ConfigError, match="pack_sequences"):
        run("dial_mae", tmp_path / "y", corpus, "--pack_sequences", "true")


def test_resume_with_packing_matches_uninterrupted_run(tmp_path, corpus):
    common = ("--pack_sequences", "true", "--max_steps", "4", "--save_steps", "2", "--seed", "7")
    run("mae_lm", tmp_path / "straight", corpus, *common)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "straight" / "checkpoint-2", resumed_dir / "checkpoint-2")
    trainer = run("mae_lm", resumed_dir, corpus, *common, "--resume_from_checkpoint", "last")
    assert trainer.state.global_step == 4
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(resumed_dir / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


@pytest.mark.parametrize("name", ["mae_lm_base.yaml", "mlm_base.yaml"])
def test_paper_recipes_train_from_scratch_on_packed_text(name):
    from transformers import TrainingArguments

    from maeir.arguments import PretrainModelArguments
    from maeir.config_file import parse_args, parse_key_values

    model_args, data_args, _ = parse_args(
        (PretrainModelArguments, PretrainDataArguments, TrainingArguments),
        [str(REPO / "configs" / name), "--output_dir", "unused", "--bf16", "false"],
    )
    assert model_args.from_scratch and data_args.pack_sequences and data_args.max_seq_length == 512
    assert model_args.model_name_or_path == "bert-base-uncased"
    assert parse_key_values(model_args.published_results) == {
        "GLUE avg (base, MAE-LM)": 86.1,
        "GLUE avg (base, MLM)": 85.2,
    }
    check_data_arguments(get_method(model_args.method), data_args)


def test_trained_vocabulary_is_numbered_canonically(wordpiece_dir, sample_texts, tmp_path):
    """The trainer numbers pieces in hash-map order (huggingface/tokenizers#1794); maeir renumbers them:
    the special tokens, then the pieces sorted, so two trainings with the same pieces give the same ids
    and the same digest; the order of the ids changes no encoding."""
    raw = Tokenizer.from_file(str(Path(wordpiece_dir) / "tokenizer.json"))
    vocab = raw.get_vocab()
    by_id = sorted(vocab, key=vocab.get)
    assert by_id[:5] == list(SPECIAL_TOKENS) and by_id[5:] == sorted(by_id[5:])
    pieces = by_id[5:]
    random.Random(0).shuffle(pieces)
    raw.model = WordPiece({t: i for i, t in enumerate([*SPECIAL_TOKENS, *pieces])}, unk_token="[UNK]")
    reference = Tokenizer.from_file(str(Path(wordpiece_dir) / "tokenizer.json"))
    for text in sample_texts[:20]:
        assert raw.encode(text).tokens == reference.encode(text).tokens
    again = train_wordpiece_tokenizer(sample_texts, 600, tmp_path / "again")
    same_pieces = set(Tokenizer.from_file(str(Path(again) / "tokenizer.json")).get_vocab()) == set(vocab)
    assert (vocabulary_digest(again) == vocabulary_digest(wordpiece_dir)) == same_pieces
