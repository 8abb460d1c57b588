"""``ContrastiveTrainer``: InfoNCE bi-encoder training with cross-device negatives and gradient caching.

Implements the fine-tuning recipes of CoT-MAE v2 (InfoNCE over in-batch and hard negatives, FLOPs
regulariser on the sparse view; docs/methods.md#cot-mae-v2) and Dial-MAE (in-batch + given negatives;
docs/methods.md#dial-mae), with the fix for cross-device negatives (docs/methods.md#pitfalls). A thin subclass of
:class:`maeir.trainers.PretrainingTrainer` (atomic checkpoints, per-part loss logging); it overrides

* ``compute_loss``: encode queries and passages, then :class:`maeir.losses.InfoNCELoss`
  (``model.config.temperature``, cross-device negatives: representations all-gathered across
  processes, the local slice keeping its graph) + FLOPs regulariser (quadratic warm-up). Each process
  computes the loss of the *global* batch; DDP averages gradients over the ``W`` processes, so the
  loss is multiplied by ``W``: the gradients then equal those of one process holding the whole batch.
* ``training_step``: divides the reported loss by that factor (logs show the true loss) and, with
  ``gradient_cache_chunk_size``, runs GradCache (Gao et al., 2021, "Scaling Deep Contrastive Learning
  Batch Size under Memory Limited Setup"): representations of the whole batch without a graph, the
  loss and its gradient w.r.t. the representations, then chunk by chunk a re-encoding with a graph
  and a backward of ``<rep, grad>``; dropout masks are replayed by restoring the RNG state.
* ``_write_extras``: the saved folder also gets the plain towers, the recipe, the
  sentence-transformers files and a model card (:meth:`BiEncoderModel.write_extras`).

Public API: :class:`ContrastiveTrainer`, :func:`contrastive_objective` (the per-process objective).
Models: anything with ``encode(input_ids, attention_mask, side) -> {"dense"|"sparse": tensor}``,
``score(q, p)`` and ``config.temperature``, i.e. :class:`maeir.modeling.BiEncoderModel`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..cards import write_card
from ..io_utils import atomic_write_json
from ..losses.flops import FLOPsRegularizer
from ..losses.infonce import InfoNCELoss
from .pretraining import PretrainingTrainer

QUERY_KEYS = ("query_input_ids", "query_attention_mask")
PASSAGE_KEYS = ("passage_input_ids", "passage_attention_mask")


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
    """The training objective of one process: ``(loss to back-propagate, parts, scores, scale)``.

    With ``cross_device`` and several processes, representations are gathered (:class:`InfoNCELoss`),
    every process computes the loss of the global batch, and the returned loss is multiplied by
    ``scale`` = the world size, because DDP averages gradients (docs/methods.md#pitfalls). ``parts`` (detached,
    unscaled): ``contrastive_loss`` and, with a FLOPs regulariser on a sparse view, ``flops_loss``,
    ``query_flops`` and ``passage_flops``. With ``view_losses`` a hybrid model also gets each view's
    own InfoNCE (``dense_loss``, ``sparse_loss``, same temperature, scores weighted as in the hybrid
    sum), so that each view is trained to retrieve on its own; the default is the single InfoNCE on the summed
    score (docs/methods.md#cot-mae-v2).
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


class _RNGState:
    """The CPU and CUDA RNG states at creation; ``replay()`` runs a block from that state."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self.cpu = torch.get_rng_state()
        self.devices = sorted({t.device.index or 0 for t in tensors if t.is_cuda})
        self.cuda = [torch.cuda.get_rng_state(d) for d in self.devices]

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        with torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.cpu)
            for device, state in zip(self.devices, self.cuda):
                torch.cuda.set_rng_state(state, device)
            yield


class ContrastiveTrainer(PretrainingTrainer):
    """``Trainer`` for :class:`maeir.modeling.BiEncoderModel` (see the module docstring).

    Args:
        flops: FLOPs regulariser for the sparse view (None: none).
        cross_device_negatives: use every process's passages as negatives (all-gather) when training
            on several processes; False keeps each process's batch separate.
        in_batch_negatives: False restricts each query's softmax to its own group.
        gradient_cache_chunk_size: encode at most this many texts at a time with a graph (GradCache);
            None encodes the whole batch at once.
        view_losses: a hybrid model also gets each view's own InfoNCE (see :func:`contrastive_objective`).
        run_info: what the model card says about the run.
        (all other arguments: ``transformers.Trainer``)
    """

    def __init__(
        self,
        *args,
        flops: FLOPsRegularizer | None = None,
        cross_device_negatives: bool = True,
        in_batch_negatives: bool = True,
        gradient_cache_chunk_size: int | None = None,
        view_losses: bool = False,
        run_info: dict[str, Any] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, run_info=run_info, **kwargs)
        self.view_losses = view_losses
        self.flops = flops
        self.cross_device_negatives = cross_device_negatives
        self.in_batch_negatives = in_batch_negatives
        if gradient_cache_chunk_size is not None and gradient_cache_chunk_size < 1:
            raise ValueError(f"gradient_cache_chunk_size must be >= 1, got {gradient_cache_chunk_size}")
        self.gradient_cache_chunk_size = gradient_cache_chunk_size
        self._loss_scale = 1

    # -- the loss -------------------------------------------------------------------------------
    def loss_from_representations(
        self,
        query: dict[str, torch.Tensor],
        passage: dict[str, torch.Tensor],
        passage_mask: torch.Tensor | None,
        track: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss to back-propagate, scores)`` of local representations: :func:`contrastive_objective`."""
        loss, parts, scores, scale = contrastive_objective(
            self.accelerator.unwrap_model(self.model),
            query,
            passage,
            passage_mask,
            flops=self.flops,
            step=self.state.global_step,
            in_batch_negatives=self.in_batch_negatives,
            cross_device=self.cross_device_negatives,
            view_losses=self.view_losses,
        )
        if track and self.model.training:
            self.track_loss_parts(parts)
        self._loss_scale = scale
        return loss, scores

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        passage_mask = inputs.get("passage_mask")
        outputs = model(**{k: v for k, v in inputs.items() if k != "passage_mask"}, return_loss=False)
        unwrapped = self.accelerator.unwrap_model(model)
        query = unwrapped.representation(outputs, "query")
        passage = unwrapped.representation(outputs, "passage")
        loss, scores = self.loss_from_representations(query, passage, passage_mask)
        if return_outputs:
            return loss, {"scores": scores}
        return loss

    # -- one optimisation step ------------------------------------------------------------------
    def _accumulation_steps(self) -> int:
        return (
            getattr(self, "current_gradient_accumulation_steps", None)
            or self.args.gradient_accumulation_steps
        )

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch=None
    ) -> torch.Tensor:
        if self.gradient_cache_chunk_size is None:
            loss = super().training_step(model, inputs, num_items_in_batch)
        else:
            loss = self._gradient_cache_step(model, inputs)
        return loss / self._loss_scale

    def _encode_chunks(self, model: nn.Module, inputs: dict[str, Any], side: str) -> Iterator[dict]:
        """Yield the inputs of one side, ``gradient_cache_chunk_size`` texts at a time."""
        ids, mask = inputs[f"{side}_input_ids"], inputs[f"{side}_attention_mask"]
        size = self.gradient_cache_chunk_size
        for start in range(0, ids.shape[0], size):
            chunk = {
                f"{side}_input_ids": ids[start : start + size],
                f"{side}_attention_mask": mask[start : start + size],
            }
            yield chunk

    def _gradient_cache_step(self, model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        model.train()
        inputs = self._prepare_inputs(inputs)
        unwrapped = self.accelerator.unwrap_model(model)
        passage_mask = inputs.get("passage_mask")

        # 1. representations of every chunk without a graph; remember each chunk's RNG state.
        chunks: list[tuple[str, dict, _RNGState]] = []
        reps: dict[str, list[dict[str, torch.Tensor]]] = {"query": [], "passage": []}
        with torch.no_grad():
            for side in ("query", "passage"):
                for chunk in self._encode_chunks(model, inputs, side):
                    state = _RNGState(list(chunk.values()))
                    with self.compute_loss_context_manager():
                        output = model(**chunk, return_loss=False)
                    reps[side].append(
                        {k: v.detach() for k, v in unwrapped.representation(output, side).items()}
                    )
                    chunks.append((side, chunk, state))

        # 2. loss on the whole batch and its gradient w.r.t. the (leaf) representations.
        leaves = {
            side: {
                key: torch.cat([r[key] for r in reps[side]]).float().requires_grad_() for key in reps[side][0]
            }
            for side in reps
        }
        with self.compute_loss_context_manager():
            loss, _ = self.loss_from_representations(leaves["query"], leaves["passage"], passage_mask)
        loss = loss / self._accumulation_steps()
        loss.backward()
        grads = {side: {key: value.grad for key, value in leaves[side].items()} for side in leaves}

        # 3. re-encode chunk by chunk with a graph and back-propagate <representation, gradient>.
        offsets = {"query": 0, "passage": 0}
        for index, (side, chunk, state) in enumerate(chunks):
            size = next(iter(chunk.values())).shape[0]
            start = offsets[side]
            offsets[side] += size
            last = index == len(chunks) - 1
            sync = contextlib.nullcontext() if last else self.accelerator.no_sync(model)
            with sync, state.replay():
                with self.compute_loss_context_manager():
                    output = model(**chunk, return_loss=False)
                representation = unwrapped.representation(output, side)
                surrogate = sum(
                    (representation[key].float() * grads[side][key][start : start + size]).sum()
                    for key in representation
                )
                # The gradients already hold the 1 / accumulation-steps factor (the Trainer keeps
                # accelerate's own accumulation at 1, so backward() does not divide again).
                self.accelerator.backward(surrogate)
        return loss.detach()

    # -- saving ---------------------------------------------------------------------------------
    card_kind = "retriever"  # the model-card kind (maeir.cards) of the saved folders

    def _write_extras(self, folder: str) -> None:
        """Tokenizer, towers, recipe, sentence-transformers files, ``maeir_run.json`` and a card."""
        model = self.accelerator.unwrap_model(self.model)
        model.write_extras(folder, self.processing_class)
        info = self.run_summary()
        info["encoding_recipe"] = model.config.recipe()
        atomic_write_json(Path(folder) / "maeir_run.json", info)
        self._write_method_files(folder)
        write_card(folder, info, kind=self.card_kind)

    def _write_method_files(self, folder: str) -> None:
        """Hook for the files a subclass adds to every save (MD2PR: its config)."""
