#!/usr/bin/env python
"""Kill -9 trials: runs killed at random moments (during saves and rotations too) must leave only
complete checkpoints, and resume to exactly the weights of an uninterrupted run.

    python benchmarks/kill_resume.py [--trials 20] [--kinds pretrain contrastive response_selection]
        [--work_dir DIR] [--output benchmarks/results/kill_resume.json]

For each trainer kind: one uninterrupted reference run (tiny MiniLM-vocabulary model, a checkpoint at
every step, ``save_total_limit 2`` so that every save also rotates), then ``--trials`` runs of the same
command, each SIGKILLed at a random moment (most after the first checkpoint appeared, while training,
saving and rotating; some during start-up). After each kill every ``checkpoint-*`` folder must be
complete (:func:`maeir.run_folder.checkpoint_problem`, every tensor and state file readable); the run
is then resumed with ``--resume_from_checkpoint last`` and its final weights must equal the
reference's bit for bit. Prints a table (kills, kills inside a save, damaged checkpoints, non-identical
resumes) and writes it as JSON. ``tests/test_kill_resume.py`` runs a few trials of each kind.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KINDS = ("pretrain", "contrastive", "response_selection")
STEPS = 8


def prepare_inputs(work: Path) -> dict[str, Path]:
    """A tiny backbone (MiniLM vocabulary) and a training file per kind, in ``work``."""
    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    from maeir.data.dialogue import ResponseSelectionGroup, write_response_selection
    from maeir.datasets.embedded import lee_corpus_path
    from maeir.modeling.backbone import resolve_backbone_path, tiny_config

    work.mkdir(parents=True, exist_ok=True)
    backbone = work / "backbone"
    if not (backbone / "config.json").is_file():
        path = resolve_backbone_path("minilm")
        torch.manual_seed(0)
        model = AutoModelForMaskedLM.from_config(tiny_config(AutoConfig.from_pretrained(path)))
        model.save_pretrained(backbone)
        AutoTokenizer.from_pretrained(path).save_pretrained(backbone)
    texts = [
        line.strip() for line in open(lee_corpus_path(), encoding="utf-8", errors="replace") if line.strip()
    ]
    texts = texts[:48]
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    pairs = work / "pairs.jsonl"
    with open(pairs, "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts[:32]):
            words = text.split()
            record = {
                "query_id": f"q{i}",
                "query": " ".join(words[:8]),
                "positive_passages": [{"docid": f"d{i}-{k}", "text": " ".join(words[k * 6 : k * 6 + 30])} for k in range(3)],
                "negative_passages": [
                    {"docid": f"n{i}-{k}", "text": texts[(i + k + 1) % len(texts)][:200]} for k in range(5)
                ],
            }  # fmt: skip
            handle.write(json.dumps(record) + "\n")
    dialogues = work / "dialogues.txt"
    rng = random.Random(0)
    groups = []
    for i, text in enumerate(texts[:24]):
        words = text.split()
        turns = [" ".join(words[j : j + 6]) for j in range(0, 18, 6)]
        negatives = [" ".join(rng.choice(texts).split()[:8]) for _ in range(4)]
        groups.append(
            ResponseSelectionGroup(f"c{i}", turns, [" ".join(words[18:26]), *negatives], [1, 0, 0, 0, 0])
        )
    write_response_selection(dialogues, groups)
    return {"backbone": backbone, "corpus": corpus, "pairs": pairs, "dialogues": dialogues}


def command(kind: str, inputs: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    """The command line of one run of ``kind`` into ``output_dir``."""
    common = [
        "--output_dir", str(output_dir), "--max_steps", str(STEPS), "--save_steps", "1", "--save_total_limit", "2",
        "--per_device_train_batch_size", "4", "--seed", "11", "--disable_tqdm", "true", "--report_to", "none",
        "--use_cpu", "true", "--logging_steps", "1", "--dataloader_num_workers", "0", "--save_strategy", "steps",
    ]  # fmt: skip
    if kind == "pretrain":
        args = [str(REPO / "configs/mae_lm_cpu.yaml"), "--model_name_or_path", str(inputs["backbone"]),
                "--train_file", str(inputs["corpus"]), "--max_seq_length", "32", "--warmup_steps", "0"]  # fmt: skip
        script = "maeir.cli.pretrain:main"
    elif kind == "contrastive":
        args = [str(REPO / "configs/retriever_cpu.yaml"), "--model_name_or_path", str(inputs["backbone"]),
                "--train_file", str(inputs["pairs"]), "--group_size", "3", "--query_max_length", "16",
                "--passage_max_length", "32", "--warmup_steps", "0", "--eval_split", ""]  # fmt: skip
        script = "maeir.cli.finetune_retriever:main"
    elif kind == "response_selection":
        args = [str(REPO / "configs/finetune_response_selection_cpu.yaml"), "--model_name_or_path",
                str(inputs["backbone"]), "--train_file", str(inputs["dialogues"]), "--group_size", "3",
                "--context_max_length", "24", "--response_max_length", "12", "--warmup_steps", "0"]  # fmt: skip
        script = "maeir.cli.response_selection:finetune_main"
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    module, function = script.split(":")
    code = f"import sys; from maeir.cli import run_cli; from {module} import {function}; sys.exit(run_cli({function}, sys.argv[1:]))"
    return [sys.executable, "-c", code, *args, *common, *extra]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))  # fmt: skip
    return env


def run(cmd: list[str], log: Path) -> None:
    with open(log, "ab") as handle:
        result = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=environment())
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[3:6]} ... exited {result.returncode}; see {log}")


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def checkpoint_damage(folder: Path) -> list[str]:
    """Every ``checkpoint-*`` of ``folder`` that is not complete and fully readable, with the reason."""
    import torch
    from safetensors.torch import load_file
    from transformers.trainer_pt_utils import safe_globals

    from maeir.run_folder import checkpoint_problem, checkpoints

    damaged = []
    for path in checkpoints(folder):
        problem = checkpoint_problem(path)
        if problem is None:
            try:
                load_file(path / "model.safetensors")
                with safe_globals():  # the RNG state holds numpy's
                    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
                        torch.load(path / name, weights_only=True)
                json.loads((path / "trainer_state.json").read_text())
            except Exception as err:  # noqa: BLE001 - any unreadable file is damage
                problem = f"{type(err).__name__}: {err}"
        if problem is not None:
            damaged.append(f"{path.name}: {problem}")
    return damaged


def kill_trial(kind: str, inputs: dict[str, Path], folder: Path, window: float, rng: random.Random) -> dict:
    """One run killed at a random moment, checked, resumed; returns what was seen."""
    log = folder.parent / f"{folder.name}.log"
    process = subprocess.Popen(command(kind, inputs, folder), stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                               env=environment(), start_new_session=True)  # fmt: skip
    early = rng.random() < 0.15
    if not early:  # wait for the first checkpoint save to begin
        while process.poll() is None and not (folder.is_dir() and any(
            p.name.startswith((".staging-checkpoint", "checkpoint-")) for p in folder.iterdir())):  # fmt: skip
            time.sleep(0.005)
    delay = rng.uniform(0, window)
    deadline = time.time() + delay
    while process.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    finished = process.poll() is not None
    if not finished:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    leftovers = (
        [p.name for p in folder.iterdir() if p.name.startswith((".staging-", ".trash-"))]
        if folder.is_dir()
        else []
    )
    damaged = checkpoint_damage(folder) if folder.is_dir() else []
    run(command(kind, inputs, folder, "--resume_from_checkpoint", "last"), log)
    return {"early": early, "delay_s": round(delay, 3), "finished_before_kill": finished,
            "inside_save": bool(leftovers), "damaged": damaged, "folder": str(folder)}  # fmt: skip


def trials(kind: str, count: int, work: Path, seed: int = 0, keep: bool = False) -> dict[str, Any]:
    """``count`` kill trials of ``kind``; returns the counts and each trial's record."""
    import shutil

    inputs = prepare_inputs(work)
    rng = random.Random(f"{seed}-{kind}")
    reference = work / f"{kind}-reference"
    if not (reference / "model.safetensors").is_file():
        shutil.rmtree(reference, ignore_errors=True)
        start = time.time()
        run(command(kind, inputs, reference), work / f"{kind}-reference.log")
        (work / f"{kind}-reference.seconds").write_text(str(time.time() - start))
    expected = weights(reference)
    # the training part of the reference run: from its first checkpoint to its end
    states = sorted(reference.glob("checkpoint-*/trainer_state.json"), key=lambda p: p.stat().st_mtime)
    window = (
        max(0.5, (reference / "model.safetensors").stat().st_mtime - states[0].stat().st_mtime) * 0.95
        if states
        else 5.0
    )
    records = []
    for index in range(count):
        folder = work / f"{kind}-trial{index}"
        shutil.rmtree(folder, ignore_errors=True)
        record = kill_trial(kind, inputs, folder, window, rng)
        got = weights(folder)
        record["identical"] = got.keys() == expected.keys() and all(
            (got[k] == expected[k]).all().item() for k in expected
        )
        records.append(record)
        print(
            f"{kind} trial {index}: {json.dumps({k: v for k, v in record.items() if k != 'folder'})}",
            flush=True,
        )
        if not keep and record["identical"] and not record["damaged"]:
            shutil.rmtree(folder, ignore_errors=True)
    return {
        "kind": kind,
        "trials": count,
        "killed": sum(not r["finished_before_kill"] for r in records),
        "killed_inside_save": sum(r["inside_save"] for r in records),
        "killed_during_startup": sum(r["early"] for r in records),
        "damaged_checkpoints": sum(len(r["damaged"]) for r in records),
        "non_identical_resumes": sum(not r["identical"] for r in records),
        "records": records,
    }


def table(results: list[dict[str, Any]]) -> str:
    head = ("kind", "trials", "killed", "inside save", "at start-up", "damaged ckpts", "non-identical")
    rows = [head] + [
        (r["kind"], r["trials"], r["killed"], r["killed_inside_save"], r["killed_during_startup"],
         r["damaged_checkpoints"], r["non_identical_resumes"])
        for r in results
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="kill trials per trainer kind")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--work_dir", default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="maeir-kill-"))
    results = [trials(kind, args.trials, work, args.seed) for kind in args.kinds]
    print(table(results))
    if args.output:
        from maeir.io_utils import atomic_write_json

        atomic_write_json(args.output, {"steps": STEPS, "results": results})
    bad = sum(r["damaged_checkpoints"] + r["non_identical_resumes"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
