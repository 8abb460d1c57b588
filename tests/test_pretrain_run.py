"""The pre-training run contract: outputs, Auto loading, resume, atomic checkpoints, config errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoModelForPreTraining
from transformers.trainer_utils import get_last_checkpoint

import maeir
from maeir.cli.pretrain import main
from maeir.config_file import parse_args
from maeir.errors import ConfigError, CorpusFormatError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_texts) -> str:
    path = tmp_path_factory.mktemp("corpus") / "lee.txt"
    path.write_text("\n".join(sample_texts) + "\n", encoding="utf-8")
    return str(path)


def run(output_dir, backbone, corpus, *extra, config="configs/mae_lm_cpu.yaml"):
    argv = [str(REPO / config), "--model_name_or_path", backbone, "--train_file", corpus,
            "--output_dir", str(output_dir), "--max_seq_length", "32", "--per_device_train_batch_size", "4",
            "--logging_steps", "1", "--warmup_steps", "0", "--disable_tqdm", "true", *extra]  # fmt: skip
    return main(argv)


@pytest.mark.parametrize(("config", "model_class"), [("configs/mae_lm_cpu.yaml", maeir.MAELMForMaskedLM),
                                                      ("configs/mlm_cpu.yaml", maeir.MaskedLMForPretraining)])  # fmt: skip
def test_run_contract(tmp_path, tiny_backbone_dir, corpus, config, model_class):
    trainer = run(
        tmp_path / "run", tiny_backbone_dir, corpus, "--max_steps", "3", "--save_steps", "2", config=config
    )
    out = tmp_path / "run"
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert isinstance(model, model_class)
    assert isinstance(AutoModelForPreTraining.from_pretrained(out), model_class)
    saved = load_file(out / "model.safetensors")
    for name, value in trainer.model.state_dict().items():
        if name in saved:
            assert torch.equal(saved[name], value), name
    assert (out / "encoder" / "model.safetensors").exists() and (out / "encoder" / "tokenizer.json").exists()
    assert (out / "README.md").exists() and (out / "encoder" / "README.md").exists()
    assert (out / "checkpoint-2" / "encoder" / "model.safetensors").exists()
    assert not any(p.name.startswith(".staging") for p in out.iterdir())
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["hyperparameters"]["world_size"] == 1 and info["hyperparameters"]["steps_done"] == 3
    # every loss component is logged separately
    logged = {k for entry in trainer.state.log_history for k in entry}
    part = "decoder_mlm_loss" if model_class is maeir.MAELMForMaskedLM else "encoder_mlm_loss"
    assert {"loss", part} <= logged and part in info["losses"]


def test_resume_matches_uninterrupted_run(tmp_path, tiny_backbone_dir, corpus):
    common = ("--max_steps", "6", "--save_steps", "3", "--seed", "7")
    run(tmp_path / "straight", tiny_backbone_dir, corpus, *common)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "straight" / "checkpoint-3", resumed_dir / "checkpoint-3")
    run(resumed_dir, tiny_backbone_dir, corpus, *common, "--resume_from_checkpoint", "last")
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(resumed_dir / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


def test_killed_checkpoint_save_leaves_previous_intact(tmp_path, tiny_backbone_dir, corpus, monkeypatch):
    from maeir.trainers import PretrainingTrainer

    original = PretrainingTrainer._write_extras
    calls = {"n": 0}

    def crash_on_second_checkpoint(self, folder):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed during save")
        return original(self, folder)

    monkeypatch.setattr(PretrainingTrainer, "_write_extras", crash_on_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "run", tiny_backbone_dir, corpus, "--max_steps", "4", "--save_steps", "2")
    out = tmp_path / "run"
    assert get_last_checkpoint(out) == str(out / "checkpoint-2")
    assert not (out / "checkpoint-4").exists()
    assert AutoModelForMaskedLM.from_pretrained(out / "checkpoint-2") is not None
    # the next run cleans the leftovers and resumes from the intact checkpoint
    monkeypatch.setattr(PretrainingTrainer, "_write_extras", original)
    trainer = run(
        out,
        tiny_backbone_dir,
        corpus,
        "--max_steps",
        "4",
        "--save_steps",
        "2",
        "--resume_from_checkpoint",
        "last",
    )
    assert trainer.state.global_step == 4 and (out / "checkpoint-4").exists()
    assert not any(p.name.startswith(".staging") for p in out.iterdir())


def test_config_errors_name_file_and_line(tmp_path):
    from transformers import TrainingArguments

    from maeir.arguments import PretrainDataArguments, PretrainModelArguments

    types = (PretrainModelArguments, PretrainDataArguments, TrainingArguments)
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: mae_lm\noutput_dir: x\nmax_seq_lenght: 64\n")
    with pytest.raises(
        ConfigError,
        match=r"bad\.yaml:3: field 'max_seq_lenght': unknown field \(did you mean 'max_seq_length'\?\)",
    ):
        parse_args(types, [str(bad)])
    bad.write_text("output_dir: x\n\nlearning_rate: fast\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:3: field 'learning_rate': invalid value 'fast'"):
        parse_args(types, [str(bad)])
    bad.write_text("output_dir: x\nmax_steps: [1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        parse_args(types, [str(bad)])
    good = tmp_path / "good.yaml"
    good.write_text("output_dir: x\nmax_steps: 5\nmethod_config:\n  mask_rate: 0.2\n")
    model_args, data_args, training_args = parse_args(types, [str(good), "--max_steps", "9"])
    assert training_args.max_steps == 9 and json.loads(model_args.method_config) == {"mask_rate": 0.2}


def test_unknown_method_field_and_bad_corpus(tmp_path, tiny_backbone_dir, corpus):
    with pytest.raises(ConfigError, match="mask_rat"):
        run(tmp_path / "a", tiny_backbone_dir, corpus, "--max_steps", "1", "--method_config", "mask_rat=0.2")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "no text field"}\n', encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=r"bad\.jsonl:2: field 'text'"):
        run(tmp_path / "b", tiny_backbone_dir, str(bad), "--max_steps", "1")
    assert not (tmp_path / "b" / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("args", "adds"),
    [(["--bf16", "true"], True), (["--bf16"], True), (["--bf16=true"], True), (["--bf16", "false"], False),
     (["--bf16", "true", "--use_cpu", "false"], False), ([], False)],
)  # fmt: skip
def test_bf16_without_cuda_trains_under_cpu_autocast(args, adds):
    from maeir.config_file import with_cpu_autocast

    out = with_cpu_autocast(list(args), {"bf16", "use_cpu"})
    assert (out[-2:] == ["--use_cpu", "true"]) is (adds and not torch.cuda.is_available())


def test_bf16_pretraining_run_on_cpu(tmp_path, tiny_backbone_dir, corpus):
    """`--bf16 true` on a CPU machine trains (CPU autocast), no --use_cpu needed; the run card says bf16."""
    trainer = run(tmp_path / "run", tiny_backbone_dir, corpus, "--max_steps", "2", "--bf16", "true")
    assert trainer.args.bf16 and (torch.cuda.is_available() or trainer.args.use_cpu)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
