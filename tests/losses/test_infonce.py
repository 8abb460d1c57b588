"""``maeir.losses.infonce``: InfoNCE against hand and reference formulas, gradients, cross-device gather."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from maeir.losses import InfoNCELoss, info_nce

Q, G, D = 4, 3, 8
WORLD = 2


def _reference(
    q: torch.Tensor, p: torch.Tensor, tau: float, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over queries of -log_softmax(q . p / tau)[i, i * G]; ``exclude`` [Q, P] is set to -inf."""
    logits = (q @ p.T) / tau
    if exclude is not None:
        logits = logits.masked_fill(exclude, float("-inf"))
    log_probs = torch.log_softmax(logits, dim=1)
    targets = torch.arange(q.shape[0]) * (p.shape[0] // q.shape[0])
    return -log_probs[torch.arange(q.shape[0]), targets].mean()


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(Q, D, generator=generator), torch.randn(Q * G, D, generator=generator)


def test_info_nce_equals_hand_computation():
    scores = torch.tensor([[3.0, 1.0, 0.5, -1.0], [0.2, 0.1, 2.0, 0.4]])  # 2 queries, groups of 2
    tau = 0.5
    expected = 0.0
    for i, target in ((0, 0), (1, 2)):
        logits = [s / tau for s in scores[i].tolist()]
        expected += -(logits[target] - math.log(sum(math.exp(v) for v in logits)))
    assert info_nce(scores, tau).item() == pytest.approx(expected / 2, rel=1e-6)
    # Own group only: query 1's softmax covers passages 2 and 3.
    own = -(2.0 / tau - math.log(math.exp(2.0 / tau) + math.exp(0.4 / tau)))
    own += -(3.0 / tau - math.log(math.exp(3.0 / tau) + math.exp(1.0 / tau)))
    assert info_nce(scores, tau, in_batch_negatives=False).item() == pytest.approx(own / 2, rel=1e-6)
    # A masked passage takes part in no softmax.
    mask = torch.tensor([True, True, True, False])
    masked = -(3.0 / tau - math.log(sum(math.exp(v / tau) for v in (3.0, 1.0, 0.5))))
    masked += -(2.0 / tau - math.log(sum(math.exp(v / tau) for v in (0.2, 0.1, 2.0))))
    assert info_nce(scores, tau, passage_mask=mask).item() == pytest.approx(masked / 2, rel=1e-6)
    with pytest.raises(ValueError):
        info_nce(scores, tau, passage_mask=torch.tensor([False, True, True, True]))


def test_loss_module_equals_reference_formula_and_gradients_reach_both_sides():
    q0, p0 = _inputs()
    tau = 0.07
    q, p = q0.clone().requires_grad_(), p0.clone().requires_grad_()
    output = InfoNCELoss(temperature=tau)(q, p)
    q_ref, p_ref = q0.clone().requires_grad_(), p0.clone().requires_grad_()
    reference = _reference(q_ref, p_ref, tau)
    assert output.loss.item() == pytest.approx(reference.item(), rel=1e-6)
    assert output.parts == {"contrastive_loss": output.loss.detach()} and output.scale == 1
    torch.testing.assert_close(output.scores, q0 @ p0.T)
    output.loss.backward()
    reference.backward()
    for grad, expected in ((q.grad, q_ref.grad), (p.grad, p_ref.grad)):
        assert grad is not None and grad.abs().sum() > 0
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)


def test_loss_module_masks_padding_other_groups_and_excluded_negatives():
    q, p = _inputs(1)
    tau = 0.5
    padding = torch.ones(Q * G, dtype=torch.bool)
    padding[2 * G - 1] = False  # query 1's last negative slot is padding
    flagged = torch.zeros(Q, G, dtype=torch.bool)
    flagged[2, 1] = True  # query 2's first negative is a false negative
    own_group = torch.arange(Q * G).unsqueeze(0) // G != torch.arange(Q).unsqueeze(1)
    excluded = torch.zeros(Q, Q * G, dtype=torch.bool)
    excluded[2, 2 * G + 1] = True

    loss = InfoNCELoss(temperature=tau, in_batch_negatives=False)(q, p, padding, exclude=flagged).loss
    reference = _reference(q, p, tau, own_group | ~padding.unsqueeze(0) | excluded)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    with pytest.raises(ValueError):
        InfoNCELoss(temperature=0.0)


def test_view_losses_are_parts_of_the_loss():
    q, p = _inputs(2)
    query = {"dense": q, "sparse": q.relu()}
    passage = {"dense": p, "sparse": p.relu()}

    def similarity(a, b):
        return sum(a[view] @ b[view].T for view in a)

    output = InfoNCELoss(similarity, temperature=0.5, view_losses=True)(query, passage)
    summed = _reference(torch.cat([q, q.relu()], 1), torch.cat([p, p.relu()], 1), 0.5)
    dense, sparse = _reference(q, p, 0.5), _reference(q.relu(), p.relu(), 0.5)
    assert set(output.parts) == {"contrastive_loss", "dense_loss", "sparse_loss"}
    assert output.parts["contrastive_loss"].item() == pytest.approx(summed.item(), rel=1e-6)
    assert output.parts["sparse_loss"].item() == pytest.approx(sparse.item(), rel=1e-6)
    assert output.loss.item() == pytest.approx((summed + dense + sparse).item(), rel=1e-6)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _shard(rank: int, world: int) -> tuple[slice, slice]:
    """This process's queries and their passage groups."""
    size = Q // world
    return slice(rank * size, (rank + 1) * size), slice(rank * size * G, (rank + 1) * size * G)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        q, p = _inputs()
        rows, cols = _shard(rank, world)
        mask = torch.ones(Q * G, dtype=torch.bool)
        mask[-1] = False
        q_local, p_local = q[rows].clone().requires_grad_(), p[cols].clone().requires_grad_()
        loss = InfoNCELoss(temperature=0.5, gather_across_devices=True)
        output = loss(q_local, p_local, mask[cols])
        (output.loss * output.scale).backward()
        result = {"scale": output.scale, "loss": output.loss.item(), "q": q_local.grad, "p": p_local.grad}
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_gather_across_devices_equals_one_process(tmp_path):
    """Two processes with half the queries (and their groups) each: every process computes the global
    loss; the gradient of ``loss * scale`` on each local shard is ``WORLD`` times that shard's slice of
    the global gradient, so DDP's average over processes gives exactly one process's gradient."""
    q0, p0 = _inputs()
    q, p = q0.clone().requires_grad_(), p0.clone().requires_grad_()
    mask = torch.ones(Q * G, dtype=torch.bool)
    mask[-1] = False
    single = InfoNCELoss(temperature=0.5, gather_across_devices=True)(q, p, mask)
    assert single.scale == 1  # no process group: nothing to gather
    single.loss.backward()
    mp.start_processes(
        _worker, args=(WORLD, _free_port(), str(tmp_path)), nprocs=WORLD, join=True, start_method="spawn"
    )
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        rows, cols = _shard(rank, WORLD)
        assert result["scale"] == WORLD
        assert result["loss"] == pytest.approx(single.loss.item(), rel=1e-6)
        torch.testing.assert_close(result["q"], WORLD * q.grad[rows], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(result["p"], WORLD * p.grad[cols], rtol=1e-5, atol=1e-6)
