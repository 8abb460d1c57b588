"""A real 2-process DDP run (gloo, CPU) of the pre-training script under `accelerate launch`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_two_process_pretraining(tmp_path, tiny_backbone_dir, sample_texts):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(sample_texts) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file",
        str(REPO / "configs/accelerate/cpu_ddp_2proc.yaml"), "--main_process_port", "29541",
        str(REPO / "scripts/pretrain.py"), str(REPO / "configs/mae_lm_cpu.yaml"),
        "--model_name_or_path", tiny_backbone_dir, "--train_file", str(corpus), "--output_dir", str(out),
        "--max_steps", "3", "--save_steps", "2", "--per_device_train_batch_size", "4", "--max_seq_length", "32",
        "--logging_steps", "1", "--disable_tqdm", "true",
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-4000:]
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["hyperparameters"]["world_size"] == 2
    assert info["hyperparameters"]["global_batch_size"] == 8
    assert "decoder_mlm_loss" in info["losses"]
    assert (out / "encoder" / "model.safetensors").exists() and (out / "checkpoint-2").is_dir()
