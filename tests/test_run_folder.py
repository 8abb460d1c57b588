"""Run folders: crash-safe rotation, complete checkpoints, the lock, exact resumes of every fine-tuning driver,
umask permissions, and the one-line Ctrl-C message."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from maeir import io_utils
from maeir.cli import interrupted_message, run_cli
from maeir.errors import ConfigError
from maeir.run_folder import (
    LOCK_NAME,
    RunLock,
    checkpoint_problem,
    last_complete_checkpoint,
    lock_run_folder,
    release_run_folders,
    rotate_checkpoints,
)

REPO = Path(__file__).resolve().parents[1]


def fake_checkpoint(folder: Path, skip: str | None = None) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, folder / "model.safetensors")
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.save({}, folder / name)
    (folder / "trainer_state.json").write_text("{}")
    if skip:
        (folder / skip).unlink()
    return folder


def test_rotation_killed_mid_delete_leaves_no_damaged_checkpoint(tmp_path, monkeypatch):
    for step in (1, 2, 3):
        fake_checkpoint(tmp_path / f"checkpoint-{step}")

    def killed(path, *args, **kwargs):  # the process dies while deleting
        os.unlink(next(Path(path).iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(io_utils.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        rotate_checkpoints(tmp_path, 2, {str(tmp_path / "checkpoint-3")})
    monkeypatch.undo()
    kept = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    trash = [p.name for p in tmp_path.glob(".trash-*")]
    assert kept == ["checkpoint-2", "checkpoint-3"] and len(trash) == 1 and "checkpoint-1" in trash[0]
    assert all(checkpoint_problem(tmp_path / n) is None for n in kept)
    assert [p.name for p in io_utils.remove_stale_staging(tmp_path)] == trash


def test_resume_takes_the_newest_complete_checkpoint(tmp_path):
    fake_checkpoint(tmp_path / "checkpoint-2")
    fake_checkpoint(tmp_path / "checkpoint-4", skip="optimizer.pt")
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert "optimizer.pt is missing" in checkpoint_problem(tmp_path / "checkpoint-4")


def test_lock_refuses_a_live_owner_and_takes_over_a_stale_one(tmp_path, caplog):
    holder = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        with pytest.raises(ConfigError, match=f"PID {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path) as lock:  # the owner is gone: stale
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert "stale lock" in caplog.text and not (tmp_path / LOCK_NAME).exists()


def test_lock_created_folder_is_removed_when_nothing_was_written(tmp_path):
    lock = lock_run_folder(tmp_path / "new")
    assert lock.path.is_file()
    release_run_folders()
    assert not (tmp_path / "new").exists()


def test_files_and_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        io_utils.atomic_write_text(tmp_path / "a.txt", "x")
        with io_utils.atomic_directory(tmp_path / "d") as staging:
            (staging / "f").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_ctrl_c_names_the_last_complete_checkpoint(tmp_path, capsys):
    fake_checkpoint(tmp_path / "run" / "checkpoint-3")

    def main(argv):
        lock_run_folder(tmp_path / "run")
        release_run_folders()
        raise KeyboardInterrupt

    assert run_cli(main, []) == 130
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path / "run" / "checkpoint-3") in err and "Traceback" not in err
    assert interrupted_message().startswith("interrupted")


# ---------------------------------------------------------------------------------------------
# exact resumes of the fine-tuning drivers (the collator's generator is checkpointed)


@pytest.fixture(scope="module")
def training_files(tmp_path_factory, sample_texts) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume_data")
    pairs = root / "pairs.jsonl"
    with open(pairs, "w", encoding="utf-8") as handle:
        for i, text in enumerate(sample_texts[:16]):
            words = text.split()
            handle.write(json.dumps({
                "query": " ".join(words[:6]),
                "positives": [" ".join(words[k * 5 : k * 5 + 20]) for k in range(3)],
                "negatives": [sample_texts[(i + k + 1) % 16][:120] for k in range(4)],
            }) + "\n")  # fmt: skip
    dialogues = root / "dialogues.txt"
    dialogues.write_text("".join(
        f"1\t{t[:40]}\t{t[40:80]}\n0\t{t[:40]}\t{sample_texts[(i + 1) % 16][:30]}\n"
        f"0\t{t[:40]}\t{sample_texts[(i + 2) % 16][:30]}\n0\t{t[:40]}\t{sample_texts[(i + 3) % 16][:30]}\n"
        for i, t in enumerate(sample_texts[:16])
    ), encoding="utf-8")  # fmt: skip
    return {"pairs": pairs, "dialogues": dialogues}


def _drivers(backbone: str, files: dict[str, Path]):
    from maeir.cli.finetune_retriever import main as retriever_main
    from maeir.cli.response_selection import finetune_main

    common = ["--max_steps", "4", "--save_steps", "2", "--per_device_train_batch_size", "4", "--seed", "5",
              "--disable_tqdm", "true", "--report_to", "none", "--warmup_steps", "0", "--save_strategy", "steps"]  # fmt: skip
    return {
        "contrastive": (
            retriever_main,
            [
                str(REPO / "configs/retriever_cpu.yaml"),
                "--model_name_or_path",
                backbone,
                "--train_file",
                str(files["pairs"]),
                "--group_size",
                "3",
                "--query_max_length",
                "16",
                "--passage_max_length",
                "24",
                *common,
            ],
        ),  # fmt: skip
        "response_selection": (
            finetune_main,
            [
                str(REPO / "configs/finetune_response_selection_cpu.yaml"),
                "--model_name_or_path",
                backbone,
                "--train_file",
                str(files["dialogues"]),
                "--group_size",
                "3",
                "--context_max_length",
                "24",
                "--response_max_length",
                "12",
                *common,
            ],
        ),  # fmt: skip
    }


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["contrastive", "response_selection"])
def test_resumed_fine_tuning_matches_uninterrupted(kind, tmp_path, tiny_backbone_dir, training_files):
    main, argv = _drivers(tiny_backbone_dir, training_files)[kind]
    main([*argv, "--output_dir", str(tmp_path / "straight")])
    assert (tmp_path / "straight" / "checkpoint-2" / "collator_rng_0.safetensors").is_file()
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(tmp_path / "straight" / "checkpoint-2", resumed / "checkpoint-2")
    state_file = resumed / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["log_history"].insert(0, {"step": 0, "marker": "from checkpoint-2"})
    state_file.write_text(json.dumps(state))
    main([*argv, "--output_dir", str(resumed), "--resume_from_checkpoint", "last"])
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["log_history"][0].get("marker")  # really resumed
    straight, again = (
        load_file(tmp_path / "straight" / "model.safetensors"),
        load_file(resumed / "model.safetensors"),
    )
    assert straight.keys() == again.keys() and all(torch.equal(straight[k], again[k]) for k in straight)
    # a second run into the finished folder is refused; --overwrite_output_dir replaces it
    with pytest.raises(ConfigError, match="finished run"):
        main([*argv, "--output_dir", str(resumed)])
    main([*argv, "--output_dir", str(resumed), "--overwrite_output_dir", "true", "--save_steps", "3"])
    # the old run's checkpoint-2 is gone; the new run saved at step 3 and (transformers 5) at its last step
    assert sorted(p.name for p in resumed.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    new_state = json.loads((resumed / "checkpoint-4" / "trainer_state.json").read_text())
    assert new_state["save_steps"] == 3 and not any(e.get("marker") for e in new_state["log_history"])
    assert not (resumed / LOCK_NAME).exists()
