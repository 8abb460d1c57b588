"""Multi-process runs without a GPU, done right.

``accelerate launch --multi_gpu --num_processes N`` (or ``torchrun``) starts N processes, but on a
machine without an accelerator each of them silently trains alone unless the Trainer is told to use
the CPU backend: then accelerate sets up real DDP over gloo. The drivers call
:func:`with_cpu_backend` on their command line and :func:`check_world_size` once arguments are
parsed, so N launched processes always form one N-process job, or the run stops with a clear error.
Inside a job, :func:`gather_with_grad` all-gathers a tensor with this process's slice keeping its
graph (cross-device negatives, :class:`maeir.losses.InfoNCELoss`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist


def launched_world_size() -> int:
    """The number of processes the launcher started (``WORLD_SIZE``; 1 when not launched)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def with_cpu_backend(argv: Sequence[str]) -> list[str]:
    """Add ``--use_cpu true`` when several processes were launched on a machine without CUDA."""
    argv = list(argv)
    if launched_world_size() > 1 and not torch.cuda.is_available() and "--use_cpu" not in argv:
        argv += ["--use_cpu", "true"]
    return argv


def check_world_size(training_args) -> None:
    """Raise if the launcher started N processes but the Trainer sees another world size."""
    launched = launched_world_size()
    if launched != training_args.world_size:
        raise RuntimeError(
            f"{launched} processes were launched but the Trainer sees a world size of {training_args.world_size}: "
            "each process would train alone. Without a GPU, launch with `accelerate launch --multi_gpu "
            "--num_processes N` (or torchrun) and pass --use_cpu true."
        )


def world_size() -> int:
    """The number of processes of the initialised process group (1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0; this process's slice keeps its graph.

    Every process must pass a tensor of the same shape. Without an initialised process group the
    tensor is returned unchanged.
    """
    if world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    parts[dist.get_rank()] = tensor
    return torch.cat(parts, dim=0)


def gather_representation(representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """:func:`gather_with_grad` applied to each view of a ``{"dense", "sparse"}`` representation."""
    return {key: gather_with_grad(value) for key, value in representation.items()}
