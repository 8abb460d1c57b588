"""``ContrastiveTrainer``: bi-encoder fine-tuning (InfoNCE with in-batch, hard and cross-device
negatives, FLOPs on a sparse view, gradient caching as an option of the loss).

Implements the fine-tuning recipes of CoT-MAE v2 (InfoNCE over in-batch and hard negatives, FLOPs
regulariser on the sparse view; docs/methods.md#cot-mae-v2) and Dial-MAE (in-batch + given negatives;
docs/methods.md#dial-mae). A thin subclass of :class:`maeir.trainers.base.RunFolderTrainer` (atomic
checkpoints, per-part loss logging) that holds a :class:`maeir.losses.BiEncoderLoss` (cross-device
negatives with the DDP gradient factor, GradCache: see that module) and overrides only

* ``compute_loss``: the loss module's loss; its parts are logged;
* ``write_run_files``: the saved folder also gets the plain towers, the recipe, the
  sentence-transformers files and a model card (:meth:`BiEncoderModel.write_extras`).

Public API: :class:`ContrastiveTrainer`; :func:`contrastive_objective` (the per-process objective on
representations) is :mod:`maeir.losses.bi_encoder`'s, re-exported here.
"""

from __future__ import annotations

from typing import Any

from ..losses.bi_encoder import BiEncoderLoss, contrastive_objective
from ..losses.flops import FLOPsRegularizer
from .base import RunFolderTrainer

__all__ = ["ContrastiveTrainer", "contrastive_objective"]


class ContrastiveTrainer(RunFolderTrainer):
    """``Trainer`` for :class:`maeir.modeling.BiEncoderModel` (see the module docstring).

    Args:
        flops: FLOPs regulariser for the sparse view (None: none).
        cross_device_negatives: use every process's passages as negatives (all-gather) when training
            on several processes; False keeps each process's batch separate.
        in_batch_negatives: False restricts each query's softmax to its own group.
        gradient_cache_chunk_size: encode at most this many texts at a time with a graph (GradCache);
            None encodes the whole batch at once.
        view_losses: a hybrid model also gets each view's own InfoNCE (see
            :func:`maeir.losses.bi_encoder.contrastive_objective`).
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
        # the options live in the loss module only (MD2PR's trainer reads the negatives' options there)
        self.bi_encoder_loss = BiEncoderLoss(
            flops=flops, in_batch_negatives=in_batch_negatives, gather_across_devices=cross_device_negatives,
            view_losses=view_losses, gradient_cache_chunk_size=gradient_cache_chunk_size,
        )  # fmt: skip

    # -- the loss -------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The :class:`~maeir.losses.BiEncoderLoss` of the batch; its parts are logged."""
        output = self.bi_encoder_loss(
            model, inputs, step=self.state.global_step, unwrapped=self.accelerator.unwrap_model(model)
        )
        if model.training:
            self.track_loss_parts(output.parts)
        if return_outputs:
            return output.loss, {"scores": output.scores}
        return output.loss

    # -- saving ---------------------------------------------------------------------------------
    card_kind = "retriever"  # the model-card kind (maeir.cards) of the saved folders

    def write_run_files(self, folder: str) -> dict[str, Any]:
        """Tokenizer, towers, recipe and sentence-transformers files (plus :meth:`_write_method_files`)."""
        model = self.accelerator.unwrap_model(self.model)
        model.write_extras(folder, self.processing_class)
        self._write_method_files(folder)
        return {"encoding_recipe": model.config.recipe()}

    def _write_method_files(self, folder: str) -> None:
        """Hook for the files a subclass adds to every save (MD2PR: its config)."""
