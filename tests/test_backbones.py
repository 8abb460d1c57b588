"""Any BERT-like backbone, verified: BERT, RoBERTa and ELECTRA through pre-training, export and fine-tuning.

Each family is a tiny randomly initialised ``*ForMaskedLM`` (2 layers, hidden 64, 2 heads) saved with a
tokenizer into a folder, as a real backbone would be:

- **BERT**: the real MiniLM WordPiece tokenizer (``[PAD]`` = 0, ``[CLS]`` = 101);
- **RoBERTa**: a byte-level BPE tokenizer trained here on the Lee corpus (``<s>`` = 0, ``<pad>`` = 1,
  ``</s>`` = 2, ``<mask>`` = 4), so the pad id and the position ids (from ``padding_idx + 1`` = 2) differ
  from BERT's, and ``type_vocab_size`` is 1;
- **ELECTRA**: the MiniLM tokenizer; its masked LM splits the head into two sibling modules
  (``generator_predictions`` + ``generator_lm_head``) and projects embeddings narrower than its layers
  (``embedding_size``), which the decoders cannot read (refused with a clear error).

The runs go through ``scripts/pretrain.py`` and ``scripts/finetune_retriever.py`` (their ``main``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoTokenizer,
    BertConfig,
    ElectraConfig,
    PreTrainedTokenizerBase,
    RobertaConfig,
    RobertaTokenizerFast,
)

from maeir.cli.pretrain import main as pretrain_main
from maeir.data.masking import remove_masked_tokens
from maeir.errors import ConfigError
from maeir.methods import METHODS, get_method
from maeir.modeling.backbone import mlm_head, position_offset, resolve_backbone_path, transformer_layers

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("bert", "roberta", "electra")
CONFIGS = {name: f"configs/{name}_cpu.yaml" for name in METHODS}
MODEL_TYPES = {"bert": "BertModel", "roberta": "RobertaModel", "electra": "ElectraModel"}
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)


def bpe_tokenizer(texts: list[str]) -> PreTrainedTokenizerBase:
    """A RoBERTa tokenizer (byte-level BPE, RoBERTa's special tokens and ids) trained on ``texts``."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=800, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    return RobertaTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )


def make_backbone(family: str, folder: Path, texts: list[str], embedding_size: int | None = None) -> str:
    """Save a tiny random ``*ForMaskedLM`` of ``family`` and its tokenizer to ``folder``."""
    if family == "roberta":
        tokenizer = bpe_tokenizer(texts)
    else:
        tokenizer = AutoTokenizer.from_pretrained(resolve_backbone_path("minilm"))
    sizes = dict(
        TINY, vocab_size=len(tokenizer), max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id
    )
    if family == "bert":
        config = BertConfig(**sizes)
    elif family == "roberta":  # RoBERTa's padding_idx is config.pad_token_id
        ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        config = RobertaConfig(type_vocab_size=1, **ids, **sizes)
    else:
        config = ElectraConfig(embedding_size=embedding_size or TINY["hidden_size"], **sizes)
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory, sample_texts) -> dict[str, str]:
    root = tmp_path_factory.mktemp("backbones")
    return {family: make_backbone(family, root / family, sample_texts) for family in FAMILIES}


@pytest.fixture(scope="module")
def data_files(tmp_path_factory, sample_texts) -> dict[str, str]:
    """Real text: the Lee corpus as plain lines and as 4-turn dialogue sessions."""
    root = tmp_path_factory.mktemp("data")
    (root / "lee.txt").write_text("\n".join(sample_texts) + "\n", encoding="utf-8")
    sessions = [sample_texts[i : i + 4] for i in range(0, 32, 4)]
    (root / "sessions.jsonl").write_text(
        "".join(json.dumps({"turns": s}) + "\n" for s in sessions), encoding="utf-8"
    )
    return {"text": str(root / "lee.txt"), "dialogue": str(root / "sessions.jsonl")}


# -- the backbone's parts, per family --------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_mlm_head_gives_the_models_own_logits(family, backbones, sample_texts):
    model = AutoModelForMaskedLM.from_pretrained(backbones[family]).eval()
    tokenizer = AutoTokenizer.from_pretrained(backbones[family])
    batch = tokenizer(sample_texts[:3], padding=True, truncation=True, max_length=24, return_tensors="pt")
    with torch.no_grad():
        hidden = model.base_model(**batch).last_hidden_state
        logits = mlm_head(model)(hidden)
        assert torch.equal(logits, model(**batch).logits)
    assert len(transformer_layers(model.base_model)) == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_mae_lm_encoder_sees_the_backbones_own_positions(family, backbones, sample_texts):
    """With nothing masked, MAE-LM's compacted encoder pass equals the plain encoder on the sequence
    (RoBERTa: position ids from padding_idx + 1, not from 0)."""
    model = get_method("mae_lm").model_class.from_backbone(backbones[family], decoder_layers=1).eval()
    tokenizer = AutoTokenizer.from_pretrained(backbones[family])
    batch = tokenizer(sample_texts[:3], padding=True, truncation=True, max_length=24, return_tensors="pt")
    ids, attention = batch["input_ids"], batch["attention_mask"]
    assert position_offset(model.config.encoder_config) == (2 if family == "roberta" else 0)
    nothing = torch.zeros_like(ids, dtype=torch.bool)
    kept_ids, kept_pos, kept_att = remove_masked_tokens(ids, attention, nothing)
    with torch.no_grad():
        ours = model(
            encoder_input_ids=kept_ids,
            encoder_position_ids=kept_pos,
            encoder_attention_mask=kept_att,
            attention_mask=attention,
        ).encoder_last_hidden_state
        plain = model.encoder(input_ids=ids, attention_mask=attention).last_hidden_state
    real = attention.bool()
    torch.testing.assert_close(ours[real], plain[real], rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_effective_rank_analysis_runs_on_the_family(family, backbones, sample_texts):
    """The analysis feeds MAE-LM's encoder explicit positions too (shifted as in the model)."""
    from maeir.analysis.effective_rank import layerwise_effective_rank

    model = get_method("mae_lm").model_class.from_backbone(backbones[family], decoder_layers=1)
    tokenizer = AutoTokenizer.from_pretrained(backbones[family])
    rows = layerwise_effective_rank(model, tokenizer, sample_texts[:8], family, max_length=32)
    stacks = {(row["stack"], row["tokens"]) for row in rows}
    assert {("encoder", "real"), ("decoder", "mask")} <= stacks
    assert all(math.isfinite(row["effective_rank"]) and row["effective_rank"] >= 1 for row in rows)


def test_narrow_embeddings_are_refused_by_the_decoders_only(tmp_path, sample_texts):
    """ELECTRA-small style (embedding_size < hidden_size): decoder methods refuse it; MLM trains it."""
    folder = make_backbone("electra", tmp_path / "electra_small", sample_texts, embedding_size=32)
    fields = {"dial_mae": {"context_max_length": 32, "response_max_length": 16}}
    for name in ("mae_lm", "dial_mae", "cotmae_v2"):
        with pytest.raises(ConfigError, match="embedding_size 32 differs from its hidden_size 64"):
            get_method(name).model_class.from_backbone(folder, **fields.get(name, {}))
    model = get_method("mlm").model_class.from_backbone(folder)
    ids = torch.tensor([[101, 7592, 103, 102]])
    labels = torch.tensor([[-100, -100, 2088, -100]])
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss) and model.get_input_embeddings().weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_dial_mae_lengths_fit_the_usable_positions(family, backbones):
    """130 position embeddings: 130 usable tokens for BERT/ELECTRA, 128 for RoBERTa (padding_idx 1)."""
    dial_mae = get_method("dial_mae").model_class
    limit = 128 if family == "roberta" else 130
    config = dial_mae.from_backbone(
        backbones[family], context_max_length=limit, response_max_length=16
    ).config
    assert config.context_max_length == limit
    with pytest.raises(ValueError, match=f"context_max_length={limit + 1} exceeds .*{limit} usable"):
        dial_mae.from_backbone(backbones[family], context_max_length=limit + 1, response_max_length=16)


# -- pre-training and export through scripts/pretrain.py --------------------------------------------


def pretrain(method: str, backbone: str, data_files: dict[str, str], output_dir: Path):
    """Two steps of ``scripts/pretrain.py`` (batch 2, length 32) with the method's CPU recipe."""
    extra, train_file = [], data_files["text"]
    if method == "dial_mae":
        train_file = data_files["dialogue"]
        extra = ["--method_config", "context_max_length=32,response_max_length=16"]
    elif method == "cotmae_v2":
        extra = ["--method_config", "sparse_top_k=64"]
    argv = [str(REPO / CONFIGS[method]), "--model_name_or_path", backbone, "--train_file", train_file,
            "--output_dir", str(output_dir), "--max_seq_length", "32", "--per_device_train_batch_size", "2",
            "--max_steps", "2", "--logging_steps", "1", "--warmup_steps", "0", "--save_steps", "100",
            "--disable_tqdm", "true", *extra]  # fmt: skip
    return pretrain_main(argv)


def first_layer(encoder: torch.nn.Module) -> torch.nn.Module:
    return transformer_layers(encoder)[0]


@pytest.mark.parametrize(
    "method", [m if m == "mae_lm" else pytest.param(m, marks=pytest.mark.slow) for m in METHODS]
)  # the default suite runs MAE-LM (compacted input, explicit positions, a decoder); the rest are slow
@pytest.mark.parametrize("family", FAMILIES)
def test_pretrain_and_export(family, method, backbones, data_files, sample_texts, tmp_path):
    out = tmp_path / "run"
    trainer = pretrain(method, backbones[family], data_files, out)
    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert type(AutoModelForPreTraining.from_pretrained(out)) is get_method(method).model_class

    # A real-text batch from the run's own data loader and collator: finite loss, gradients reach layer 0.
    model = trainer.model.train()
    model.zero_grad()
    batch = next(iter(trainer.get_train_dataloader()))
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in first_layer(model.encoder).parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0

    # The exported encoder: plain transformers, same hidden states as the trained model's encoder.
    exported = AutoModel.from_pretrained(out / "encoder").eval()
    assert type(exported).__name__ == MODEL_TYPES[family]
    tokenizer = AutoTokenizer.from_pretrained(out / "encoder")
    assert tokenizer.pad_token_id == (1 if family == "roberta" else 0)
    inputs = tokenizer(sample_texts[:3], padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        theirs = exported(**inputs).last_hidden_state
        ours = model.eval().encoder(**inputs).last_hidden_state
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-6)


# -- fine-tuning a bi-encoder from the exported encoder, as a sentence-transformers folder -----------


@pytest.fixture(scope="module")
def beir_folder(tmp_path_factory, sample_texts) -> Path:
    """Inverse-cloze queries over the Lee news corpus: first sentence -> the rest of the document."""
    from maeir.data.retrieval import write_beir
    from maeir.data.sentences import split_sentences

    corpus, queries, qrels = {}, {}, {"train": {}, "test": {}}
    for i, text in enumerate(sample_texts[:48]):
        sentences = split_sentences(text)
        if len(sentences) < 2:
            continue
        corpus[f"doc{i}"] = {"title": "", "text": " ".join(sentences[1:])[:400]}
        queries[f"q{i}"] = sentences[0][:200]
        qrels["train" if i % 3 else "test"][f"q{i}"] = {f"doc{i}": 1}
    return write_beir(tmp_path_factory.mktemp("beir") / "lee", corpus, queries, qrels)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_finetune_from_the_exported_encoder_loads_in_sentence_transformers(
    family, backbones, data_files, beir_folder, sample_texts, tmp_path
):
    st = pytest.importorskip("sentence_transformers")
    from maeir.cli.finetune_retriever import main as finetune_main
    from maeir.modeling import load_bi_encoder
    from maeir.retrieval.tokenization_bi_encoder import tokenize

    pretrain("cotmae_v2", backbones[family], data_files, tmp_path / "pretrained")  # exports its MLM head
    out = tmp_path / "retriever"
    result = finetune_main([
        str(REPO / "configs/retriever_cpu.yaml"), "--model_name_or_path", str(tmp_path / "pretrained" / "encoder"),
        "--beir", str(beir_folder), "--output_dir", str(out), "--eval_split", "test", "--sparse_top_k", "32",
        "--eval_batch_size", "8", "--max_steps", "2", "--per_device_train_batch_size", "4",
        "--learning_rate", "1e-4", "--report_to", "none", "--use_cpu", "true", "--disable_tqdm", "true",
        "--save_strategy", "no", "--query_max_length", "24", "--passage_max_length", "48", "--logging_steps", "1",
    ])  # fmt: skip
    assert math.isfinite(result["train"]["train_loss"]) and result["train"]["train_loss"] > 0
    assert (out / "modules.json").is_file()

    st_model = st.SentenceTransformer(str(out), device="cpu", local_files_only=True)
    assert type(st_model[0].auto_model).__name__ == MODEL_TYPES[family]
    loaded, tokenizer = load_bi_encoder(out)
    loaded.eval()
    texts = [" ".join(text.split()[:5]) for text in sample_texts[:4]]  # within query_max_length (24)
    for side, encode in (("query", st_model.encode_query), ("passage", st_model.encode_document)):
        batch = tokenize(tokenizer, loaded.config, texts, side)
        with torch.no_grad():
            ours = loaded.encode(batch["input_ids"], batch["attention_mask"], side)["dense"]
        theirs = encode(texts, convert_to_tensor=True)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
