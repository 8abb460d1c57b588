"""The bi-encoder training loss as a module: InfoNCE (+ FLOPs), with cross-device negatives and
gradient caching as options, the way sentence-transformers' ``CachedMultipleNegativesRankingLoss`` is a
loss and not a trainer.

:class:`BiEncoderLoss` is called with the model and a batch (``query_*`` / ``passage_*`` tensors and
``passage_mask``) and returns :class:`BiEncoderLossOutput`: the loss to back-propagate, its parts
(detached, for logging) and the scores. The loss's *value* is the loss of the (global) batch; its
*gradient* carries the world-size factor that DDP's gradient averaging needs with cross-device
negatives (docs/methods.md#pitfalls), so a trainer only calls ``loss.backward()``.

Gradient caching (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup"), ``gradient_cache_chunk_size=N``: the representations of the whole batch are computed without
a graph, N texts at a time; the loss and its gradient with respect to those representations are
computed once; then, when the trainer back-propagates the returned loss, a hook re-encodes chunk by
chunk with a graph and back-propagates ``<representation, cached gradient>`` (dropout masks replayed
from each chunk's RNG state, under the first pass's autocast; gradient all-reduce only on the last
chunk under DDP). The encoder's peak activation memory is that of N texts, whatever the batch size.

Models: anything with ``encode``-backed ``forward(query_input_ids=..., passage_input_ids=...,
return_loss=False)``, ``representation(output, side)``, ``score(q, p)`` and ``config.temperature``,
i.e. :class:`maeir.retrieval.modeling_bi_encoder.BiEncoderModel`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .flops import FLOPsRegularizer
from .infonce import InfoNCELoss

SIDES = ("query", "passage")


def contrastive_objective(
    model: nn.Module,
    query: dict[str, torch.Tensor],
    passage: dict[str, torch.Tensor],
    passage_mask: torch.Tensor | None = None,
    flops: FLOPsRegularizer | None = None,
    step: int = 0,
    in_batch_negatives: bool = True,
    cross_device: bool = True,
    view_losses: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, int]:
    """The training objective of one process on representations: ``(loss x scale, parts, scores, scale)``.

    With ``cross_device`` and several processes, representations are gathered (:class:`InfoNCELoss`),
    every process computes the loss of the global batch, and the returned loss is multiplied by
    ``scale`` = the world size, because DDP averages gradients (docs/methods.md#pitfalls). ``parts``
    (detached, unscaled): ``contrastive_loss`` and, with a FLOPs regulariser on a sparse view,
    ``flops_loss``, ``query_flops`` and ``passage_flops``. With ``view_losses`` a hybrid model also gets
    each view's own InfoNCE (``dense_loss``, ``sparse_loss``, same temperature, scores weighted as in
    the hybrid sum), so that each view is trained to retrieve on its own; the default is the single
    InfoNCE on the summed score (docs/methods.md#cot-mae-v2).
    """
    infonce = InfoNCELoss(
        model.score, model.config.temperature, in_batch_negatives=in_batch_negatives,
        gather_across_devices=cross_device, view_losses=view_losses,
    )  # fmt: skip
    contrastive = infonce(query, passage, passage_mask)
    query, passage, passage_mask = contrastive.query, contrastive.passage, contrastive.passage_mask
    loss, parts, scale = contrastive.loss, dict(contrastive.parts), contrastive.scale
    if flops is not None and flops.enabled and "sparse" in query:
        regulariser, query_flops, passage_flops = flops(
            query["sparse"], passage["sparse"], step, passage_mask
        )
        loss = loss + regulariser
        parts.update(
            flops_loss=regulariser.detach(),
            query_flops=query_flops.detach(),
            passage_flops=passage_flops.detach(),
        )
    return loss * scale, parts, contrastive.scores, scale


def with_gradient_scale(scaled: torch.Tensor, scale: int) -> torch.Tensor:
    """A loss whose value is ``scaled / scale`` and whose gradient is that of ``scaled``."""
    if scale == 1:
        return scaled
    return scaled.detach() / scale + (scaled - scaled.detach())


@dataclass
class BiEncoderLossOutput:
    """``loss`` (back-propagate it), ``parts`` (detached, for logging), ``scores`` ``[Q, P]``."""

    loss: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    scores: torch.Tensor | None = None


class _RNGState:
    """The CPU and CUDA RNG states and the autocast setting at creation; ``replay()`` restores them."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self.cpu = torch.get_rng_state()
        self.devices = sorted({t.device.index or 0 for t in tensors if t.is_cuda})
        self.cuda = [torch.cuda.get_rng_state(d) for d in self.devices]
        self.device_type = tensors[0].device.type if tensors else "cpu"
        self.autocast = torch.is_autocast_enabled(self.device_type)
        self.autocast_dtype = torch.get_autocast_dtype(self.device_type)

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        with torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.cpu)
            for device, state in zip(self.devices, self.cuda):
                torch.cuda.set_rng_state(state, device)
            with torch.autocast(self.device_type, dtype=self.autocast_dtype, enabled=self.autocast):
                yield


class BiEncoderLoss(nn.Module):
    """InfoNCE (+ FLOPs on a sparse view) of a bi-encoder batch (see the module docstring).

    Args:
        flops: FLOPs regulariser for the sparse view (None: none).
        in_batch_negatives: False restricts each query's softmax to its own group.
        gather_across_devices: use every process's passages as negatives (all-gather) on several
            processes; False keeps each process's batch separate.
        view_losses: a hybrid model also gets each view's own InfoNCE (:func:`contrastive_objective`).
        gradient_cache_chunk_size: encode at most this many texts at a time with a graph (GradCache);
            None encodes the whole batch at once.
    """

    def __init__(
        self,
        flops: FLOPsRegularizer | None = None,
        in_batch_negatives: bool = True,
        gather_across_devices: bool = True,
        view_losses: bool = False,
        gradient_cache_chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        if gradient_cache_chunk_size is not None and gradient_cache_chunk_size < 1:
            raise ValueError(f"gradient_cache_chunk_size must be >= 1, got {gradient_cache_chunk_size}")
        self.flops = flops
        self.in_batch_negatives = in_batch_negatives
        self.gather_across_devices = gather_across_devices
        self.view_losses = view_losses
        self.gradient_cache_chunk_size = gradient_cache_chunk_size

    def objective(
        self, model: nn.Module, query: dict, passage: dict, passage_mask: torch.Tensor | None, step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, int]:
        """:func:`contrastive_objective` with this loss's options."""
        return contrastive_objective(
            model, query, passage, passage_mask, flops=self.flops, step=step,
            in_batch_negatives=self.in_batch_negatives, cross_device=self.gather_across_devices,
            view_losses=self.view_losses,
        )  # fmt: skip

    def forward(
        self, model: nn.Module, inputs: dict[str, Any], step: int = 0, unwrapped: nn.Module | None = None
    ) -> BiEncoderLossOutput:
        """The loss of ``inputs``; ``model`` may be a DDP wrapper of ``unwrapped`` (default: ``model``)."""
        unwrapped = model if unwrapped is None else unwrapped
        passage_mask = inputs.get("passage_mask")
        cached = self.gradient_cache_chunk_size is not None and torch.is_grad_enabled() and model.training
        if cached:
            return self._cached_forward(model, unwrapped, inputs, passage_mask, step)
        outputs = model(**{k: v for k, v in inputs.items() if k != "passage_mask"}, return_loss=False)
        query = unwrapped.representation(outputs, "query")
        passage = unwrapped.representation(outputs, "passage")
        scaled, parts, scores, scale = self.objective(unwrapped, query, passage, passage_mask, step)
        return BiEncoderLossOutput(with_gradient_scale(scaled, scale), parts, scores)

    # -- gradient caching -------------------------------------------------------------------------
    def _chunks(self, inputs: dict[str, Any], side: str) -> Iterator[dict[str, torch.Tensor]]:
        """The inputs of one side, ``gradient_cache_chunk_size`` texts at a time."""
        keys = [k for k in inputs if k.startswith(f"{side}_")]
        size = self.gradient_cache_chunk_size
        for start in range(0, inputs[f"{side}_input_ids"].shape[0], size):
            yield {k: inputs[k][start : start + size] for k in keys}

    def _cached_forward(self, model, unwrapped, inputs, passage_mask, step) -> BiEncoderLossOutput:
        # 1. representations of every chunk without a graph; remember each chunk's RNG state.
        chunks: list[tuple[str, dict, _RNGState]] = []
        reps: dict[str, list[dict[str, torch.Tensor]]] = {side: [] for side in SIDES}
        with torch.no_grad():
            for side in SIDES:
                for chunk in self._chunks(inputs, side):
                    state = _RNGState(list(chunk.values()))
                    output = model(**chunk, return_loss=False)
                    reps[side].append(
                        {k: v.detach() for k, v in unwrapped.representation(output, side).items()}
                    )
                    chunks.append((side, chunk, state))
        # 2. the loss of the whole batch and its gradient w.r.t. the (leaf) representations.
        leaves = {
            side: {
                key: torch.cat([r[key] for r in reps[side]]).float().requires_grad_() for key in reps[side][0]
            }
            for side in SIDES
        }
        with torch.enable_grad():
            scaled, parts, scores, scale = self.objective(
                unwrapped, leaves["query"], leaves["passage"], passage_mask, step
            )
            flat = [leaf for side in SIDES for leaf in leaves[side].values()]
            grads = dict(zip([(s, k) for s in SIDES for k in leaves[s]], torch.autograd.grad(scaled, flat)))
        loss = (scaled.detach() / scale).requires_grad_()

        # 3. when the trainer back-propagates ``loss``: re-encode chunk by chunk with a graph and
        #    back-propagate <representation, cached gradient x upstream gradient>.
        def replay_chunks(upstream: torch.Tensor) -> None:
            offsets = dict.fromkeys(SIDES, 0)
            for index, (side, chunk, state) in enumerate(chunks):
                size = next(iter(chunk.values())).shape[0]
                start = offsets[side]
                offsets[side] += size
                last = index == len(chunks) - 1
                no_sync = getattr(model, "no_sync", None)
                sync = no_sync() if (no_sync is not None and not last) else contextlib.nullcontext()
                with sync, state.replay(), torch.enable_grad():
                    representation = unwrapped.representation(model(**chunk, return_loss=False), side)
                    surrogate = sum(
                        (representation[key].float() * grads[(side, key)][start : start + size]).sum()
                        for key in representation
                    )
                    (surrogate * upstream).backward()

        loss.register_hook(replay_chunks)
        return BiEncoderLossOutput(loss, parts, scores.detach())
