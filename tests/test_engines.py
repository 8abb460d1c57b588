"""Distributed engines, verified on two CPU processes (gloo) through `accelerate launch` and the shipped
configs: DDP, DeepSpeed ZeRO-2 and FSDP2 run MAE-LM pre-training and bi-encoder fine-tuning with world
size 2 and the same loss trajectory as DDP; a DeepSpeed or FSDP checkpoint resumes to the very weights of
the uninterrupted run. Slow (a few minutes): `make test-all`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
ENGINES = {
    "ddp": "configs/accelerate/cpu_ddp_2proc.yaml",
    "deepspeed_zero2": "configs/accelerate/deepspeed_zero2_cpu_2proc.yaml",
    "fsdp": "configs/accelerate/fsdp_cpu_2proc.yaml",
}
PORTS = iter(range(29640, 29700))
pytestmark = pytest.mark.slow


def launch(engine: str, script: str, args: list[str]) -> subprocess.CompletedProcess:
    if engine == "deepspeed_zero2":
        pytest.importorskip("deepspeed")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / ENGINES[engine]),
        "--main_process_port", str(next(PORTS)), str(REPO / script), *args,
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "DS_BUILD_OPS": "0"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    if result.returncode != 0:  # every rank's error, not only the last lines of rank 0's
        errors = [line for line in result.stderr.splitlines() if "Error" in line or "[rank1]" in line]
        raise AssertionError("\n".join(errors[-30:]) + "\n" + result.stderr[-3000:])
    return result


def logged_losses(run: Path) -> list[float]:
    state = json.loads((run / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in load_file(path).items()}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    shared = set(a) & set(b)  # DeepSpeed also writes the tied MLM decoder weight, which the others dedupe
    assert len(shared) > 10
    return max((a[k] - b[k]).abs().max().item() for k in shared)


@pytest.fixture(scope="module")
def pretraining(tmp_path_factory, tiny_backbone_dir, sample_texts) -> dict[str, Path]:
    """Four MAE-LM steps (checkpoint at step 2) under each engine, lr high enough to move the weights.

    fp32: the recipe's CPU bf16 is autocast under DDP and FSDP but DeepSpeed's own bf16 mode (bf16
    weights, fp32 master copy) under DeepSpeed, which rounds differently; the engines are compared
    on the same arithmetic."""
    root = tmp_path_factory.mktemp("engines")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(sample_texts) + "\n", encoding="utf-8")
    runs = {}
    for engine in ENGINES:
        out = root / engine
        launch(engine, "scripts/pretrain.py", [
            str(REPO / "configs/mae_lm_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir,
            "--train_file", str(corpus), "--output_dir", str(out), "--max_steps", "4", "--save_steps", "2",
            "--per_device_train_batch_size", "4", "--max_seq_length", "32", "--logging_steps", "1",
            "--learning_rate", "1e-3", "--warmup_steps", "0", "--disable_tqdm", "true", "--bf16", "false",
        ])  # fmt: skip
        runs[engine] = out
    runs["corpus"] = corpus
    return runs


@pytest.mark.parametrize("engine", ["deepspeed_zero2", "fsdp"])
def test_pretraining_matches_ddp_with_two_processes(pretraining, engine):
    run, ddp = pretraining[engine], pretraining["ddp"]
    info = json.loads((run / "maeir_run.json").read_text())
    assert info["hyperparameters"]["world_size"] == 2
    assert info["hyperparameters"]["global_batch_size"] == 8
    expected = logged_losses(ddp)
    assert len(expected) == 4 and len(set(expected)) > 1  # the loss moves: a trajectory to compare
    assert logged_losses(run) == pytest.approx(expected, rel=1e-4)
    assert max_difference(weights(run / "model.safetensors"), weights(ddp / "model.safetensors")) < 1e-3
    assert (run / "encoder" / "model.safetensors").is_file()


@pytest.mark.parametrize("engine", ["ddp", "deepspeed_zero2", "fsdp"])
def test_resume_from_the_engines_checkpoint_is_exact(pretraining, tiny_backbone_dir, tmp_path, engine):
    """Resume from checkpoint-2 (DeepSpeed: its global_step2 shards) and reach the uninterrupted weights."""
    full = pretraining[engine]
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoint-2", resumed / "checkpoint-2")
    if engine == "deepspeed_zero2":
        assert (resumed / "checkpoint-2" / "global_step2").is_dir()
    launch(engine, "scripts/pretrain.py", [
        str(REPO / "configs/mae_lm_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir,
        "--train_file", str(pretraining["corpus"]), "--output_dir", str(resumed), "--max_steps", "4",
        "--save_steps", "2", "--per_device_train_batch_size", "4", "--max_seq_length", "32",
        "--logging_steps", "1", "--learning_rate", "1e-3", "--warmup_steps", "0", "--disable_tqdm", "true",
        "--resume_from_checkpoint", "last", "--bf16", "false",
    ])  # fmt: skip
    assert logged_losses(resumed) == logged_losses(full)  # steps 1-2 come from the checkpoint's state
    assert max_difference(weights(resumed / "model.safetensors"), weights(full / "model.safetensors")) == 0.0


@pytest.fixture(scope="module")
def finetuning(tmp_path_factory, tiny_backbone_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("engines_finetune")
    runs = {}
    for engine in ENGINES:
        out = root / engine
        launch(engine, "scripts/finetune_retriever.py", [
            str(REPO / "configs/retriever_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir,
            "--output_dir", str(out), "--max_steps", "3", "--per_device_train_batch_size", "4",
            "--group_size", "2", "--max_train_samples", "64", "--query_max_length", "24",
            "--passage_max_length", "48", "--logging_steps", "1", "--learning_rate", "1e-3",
            "--warmup_steps", "0", "--save_strategy", "no", "--eval_split", "", "--disable_tqdm", "true",
        ])  # fmt: skip
        runs[engine] = out
    return runs


@pytest.mark.parametrize("engine", ["deepspeed_zero2", "fsdp"])
def test_bi_encoder_finetuning_matches_ddp_with_two_processes(finetuning, engine):
    run, ddp = finetuning[engine], finetuning["ddp"]
    info = json.loads((run / "maeir_run.json").read_text())
    assert info["hyperparameters"]["world_size"] == 2
    expected = logged_losses(ddp)
    assert len(expected) == 3
    assert logged_losses(run) == pytest.approx(expected, rel=1e-4)
