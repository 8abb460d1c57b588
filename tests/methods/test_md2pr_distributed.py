"""MD2PR under a real 2-process DDP run (gloo, CPU): the same loss and gradients as one process.

Each process holds half the batch in a DDP-wrapped student and runs
:func:`maeir.methods.md2pr.objective.md2pr_objective` with CE (in-batch negatives all-gathered, loss
scaled by the world size), KL (local groups) and false-negative filtering (the masks are gathered
with the representations: a false negative of one process's query must be masked in the global CE).
DDP then averages the gradients: the result must equal one process computing the whole batch.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
TEACHER = torch.tensor([[2.0, 0.5], [1.0, 3.5], [0.0, -1.0], [1.5, 0.0]])  # query 1's negative is flagged


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _build(backbone: str):
    from maeir.methods.md2pr.modeling_md2pr import MD2PRStudentModel
    from maeir.modeling import BiEncoderModel

    torch.manual_seed(0)
    model = BiEncoderModel.from_backbone(
        backbone,
        temperature=0.5,
        encoder_overrides={"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
    )
    return MD2PRStudentModel.from_bi_encoder(model)


def _objective(model, wrapped, batch, teacher_scores):
    from maeir.methods.md2pr import MD2PRConfig
    from maeir.methods.md2pr.objective import md2pr_objective

    keys = ("query_input_ids", "query_attention_mask", "passage_input_ids", "passage_attention_mask")
    out = wrapped(**{k: batch[k] for k in keys}, return_loss=False)
    config = MD2PRConfig(word_level_weight=0, kl_teacher_temperature=0.5)
    return md2pr_objective(model, out, batch, config, teacher_scores=teacher_scores, threshold=1.0)


def _worker(rank: int, port: int, backbone: str, batch: dict, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = _build(backbone)
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        half = batch["query_input_ids"].shape[0] // WORLD
        q, p = slice(rank * half, (rank + 1) * half), slice(rank * half * 2, (rank + 1) * half * 2)
        local = {k: v[q] if k.startswith("query") else v[p] for k, v in batch.items()}
        loss, report, parts = _objective(model, ddp, local, TEACHER[q])
        loss.backward()
        grads = {n: t.grad.clone() for n, t in model.named_parameters() if t.grad is not None}
        result = {"world": dist.get_world_size(), "report": report.item(), "parts": parts, "grads": grads}
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters: ~40 CPU-seconds
def test_two_process_md2pr_equals_one_process(tmp_path, tiny_backbone_dir, tokenizer):
    from maeir.methods.md2pr.collator import MD2PRCollator

    records = [
        {"query": f"query {i} about thing {i * 7}", "positives": [f"thing {i * 7} explained at length"],
         "negatives": [f"other text {i} about {j}" for j in range(2)]}
        for i in range(4)
    ]  # fmt: skip
    model = _build(tiny_backbone_dir)
    batch = dict(MD2PRCollator(tokenizer, model.config, group_size=2, seed=0, teacher_inputs=False)(records))
    loss, report, parts = _objective(model, model, batch, TEACHER)
    assert parts["false_negatives"].item() == 1
    loss.backward()
    single = {n: t.grad for n, t in model.named_parameters() if t.grad is not None}

    mp.start_processes(
        _worker, args=(_free_port(), tiny_backbone_dir, batch, str(tmp_path)), nprocs=WORLD, join=True,
        start_method="spawn",
    )  # fmt: skip
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    assert [r["world"] for r in results] == [WORLD, WORLD]  # really two processes
    # The CE of the global batch (every process computes it) equals the single process's CE.
    for r in results:
        torch.testing.assert_close(
            r["parts"]["contrastive_loss"], parts["contrastive_loss"], rtol=1e-5, atol=1e-6
        )
    # KL is local: the mean of the two processes' means is the single process's mean.
    kl = sum(r["parts"]["kl_loss"] for r in results) / WORLD
    torch.testing.assert_close(kl, parts["kl_loss"], rtol=1e-5, atol=1e-6)
    assert sum(r["parts"]["false_negatives"].item() for r in results) == 1
    # DDP averages the gradients: they equal the single process's.
    scale = max(g.abs().max() for g in single.values())
    for name, grad in single.items():
        averaged = sum(r["grads"][name] for r in results) / WORLD
        assert (averaged - grad).abs().max() <= 1e-4 * scale, name  # fp32 summation order differs


@pytest.mark.slow  # accelerate launch of two interpreters
def test_distill_script_under_accelerate_launch(tmp_path, tiny_backbone_dir, sample_texts):
    import json
    import re
    import subprocess
    import sys
    from pathlib import Path

    from maeir.data.retrieval import write_beir
    from maeir.retrieval.modeling_cross_encoder import load_cross_encoder, save_cross_encoder

    repo = Path(__file__).resolve().parents[2]
    corpus, queries, qrels = {}, {}, {"train": {}}
    for i, line in enumerate(sample_texts[:40]):
        sentences = re.split(r"(?<=[.!?])\s+", line)
        if len(sentences) >= 3:
            corpus[f"d{i}"], queries[f"q{i}"] = {"title": "", "text": " ".join(sentences[1:])}, sentences[0]
            qrels["train"][f"q{i}"] = {f"d{i}": 1}
    write_beir(tmp_path / "beir", corpus, queries, qrels)
    model, tokenizer, _ = load_cross_encoder(tiny_backbone_dir, max_length=96)
    save_cross_encoder(model, tokenizer, tmp_path / "ranker")
    out = tmp_path / "student"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file",
        str(repo / "configs/accelerate/cpu_ddp_2proc.yaml"), "--main_process_port", "29547",
        str(repo / "scripts/distill_md2pr.py"), str(repo / "configs/md2pr_cpu.yaml"), "--student", tiny_backbone_dir,
        "--teacher", str(tmp_path / "ranker"), "--beir", str(tmp_path / "beir"), "--output_dir", str(out),
        "--max_steps", "2", "--per_device_train_batch_size", "3", "--logging_steps", "1", "--eval_split", "",
        "--disable_tqdm", "true",
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=repo)
    assert result.returncode == 0, result.stderr[-4000:]
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["hyperparameters"]["world_size"] == 2
    assert info["hyperparameters"]["global_batch_size"] == 6
    assert {"contrastive_loss", "kl_loss", "attention_loss", "hidden_loss"} <= set(info["losses"])
