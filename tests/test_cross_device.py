"""Cross-device negatives in a real 2-process run (gloo on CPU): same loss and gradients as one process.

Each process holds half the batch in a DDP-wrapped bi-encoder and runs the trainer's per-process
objective (:func:`maeir.losses.contrastive_objective`): all-gather with the local tensor put back,
loss of the global batch multiplied by the world size. DDP then averages the gradients; the result
must equal one process computing the loss of the whole batch. The same holds for the loss module
with gradient caching (:class:`maeir.losses.BiEncoderLoss`, re-encoding in the backward hook).
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from maeir.losses import FLOPsRegularizer

WORLD = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _build(backbone: str, representation: str):
    from maeir.modeling import BiEncoderModel

    torch.manual_seed(0)
    return BiEncoderModel.from_backbone(
        backbone, representation=representation, temperature=0.1, normalize=True, sparse_top_k=None,
        encoder_overrides={"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
    )  # fmt: skip


def _objective(model, ddp_model, batch, step: int):
    from maeir.losses import contrastive_objective

    out = ddp_model(**{k: v for k, v in batch.items() if k != "passage_mask"}, return_loss=False)
    query, passage = model.representation(out, "query"), model.representation(out, "passage")
    return contrastive_objective(
        model, query, passage, batch["passage_mask"], flops=FLOPsRegularizer(1e-3, 5e-4, 4), step=step
    )


def _worker(rank: int, port: int, backbone: str, batches: dict, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        for representation, batch in batches.items():
            model = _build(backbone, representation)
            ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
            queries = batch["query_input_ids"].shape[0] // WORLD
            group = batch["passage_input_ids"].shape[0] // batch["query_input_ids"].shape[0]
            q = slice(rank * queries, (rank + 1) * queries)
            p = slice(rank * queries * group, (rank + 1) * queries * group)
            local = {k: v[q] if k.startswith("query") else v[p] for k, v in batch.items()}
            loss, parts, _, scale = _objective(model, ddp, local, step=2)
            loss.backward()
            grads = {n: t.grad.clone() for n, t in model.named_parameters() if t.grad is not None}
            result = {
                "world": dist.get_world_size(),
                "loss": (loss / scale).item(),
                "parts": parts,
                "grads": grads,
            }
            torch.save(result, os.path.join(out_dir, f"{representation}-rank{rank}.pt"))
            if representation == "dense":  # the same through the loss module with gradient caching
                _cached(backbone, local, rank, out_dir)
    finally:
        dist.destroy_process_group()


def _cached(backbone: str, local: dict, rank: int, out_dir: str) -> None:
    """:class:`maeir.losses.BiEncoderLoss` with GradCache (chunks of 2 texts) on a DDP model: the
    re-encoding runs in the backward hook, gradients all-reduced on the last chunk only."""
    from maeir.losses import BiEncoderLoss

    model = _build(backbone, "dense")
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    output = BiEncoderLoss(FLOPsRegularizer(1e-3, 5e-4, 4), gradient_cache_chunk_size=2)(
        ddp, local, step=2, unwrapped=model
    )
    output.loss.backward()
    grads = {n: t.grad.clone() for n, t in model.named_parameters() if t.grad is not None}
    result = {
        "world": dist.get_world_size(),
        "loss": output.loss.item(),
        "parts": output.parts,
        "grads": grads,
    }
    torch.save(result, os.path.join(out_dir, f"dense-cached-rank{rank}.pt"))


def test_two_process_negatives_equal_one_process(tmp_path, tiny_backbone_dir, tokenizer):
    from maeir.data.retrieval_collator import ContrastiveCollator

    records = [
        {"query": f"query {i} about thing {i * 7}", "positives": [f"thing {i * 7} explained at length"],
         "negatives": [f"other text {i} {j}" for j in range(i % 3)]}
        for i in range(6)
    ]  # fmt: skip
    singles, batches = {}, {}
    for representation in ("dense", "hybrid"):
        model = _build(tiny_backbone_dir, representation)
        batch = dict(ContrastiveCollator(tokenizer, model.config, group_size=2, seed=0)(records))
        assert not batch["passage_mask"].all()  # a masked slot crosses the process boundary too
        loss, parts, _, scale = _objective(model, model, batch, step=2)
        assert scale == 1
        loss.backward()
        grads = {n: t.grad for n, t in model.named_parameters() if t.grad is not None}
        singles[representation] = (loss.item(), parts, grads)
        batches[representation] = batch

    mp.start_processes(
        _worker, args=(_free_port(), tiny_backbone_dir, batches, str(tmp_path)), nprocs=WORLD, join=True,
        start_method="spawn",
    )  # fmt: skip
    singles["dense-cached"] = singles["dense"]  # GradCache under DDP: the same loss and gradients
    for representation, (loss, parts, single) in singles.items():
        results = [
            torch.load(tmp_path / f"{representation}-rank{r}.pt", weights_only=False) for r in range(WORLD)
        ]
        assert [r["world"] for r in results] == [WORLD, WORLD]  # really two processes
        scale = max(g.abs().max() for g in single.values())
        for result in results:
            assert result["loss"] == pytest.approx(loss, rel=1e-5)
            if representation == "hybrid":
                assert result["parts"]["flops_loss"].item() == pytest.approx(
                    parts["flops_loss"].item(), rel=1e-5
                )
            assert result["grads"].keys() == single.keys()
            for name, grad in single.items():
                assert (result["grads"][name] - grad).abs().max() <= 1e-4 * scale, (representation, name)
