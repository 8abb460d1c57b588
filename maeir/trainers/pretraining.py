"""``PretrainingTrainer``: the pre-training runs' trainer (:class:`maeir.trainers.base.RunFolderTrainer`,
whose ``compute_loss`` is the model's own loss with its parts logged) that also exports the encoder:
every save gets ``encoder/`` (the plain backbone checkpoint + tokenizer, with its own model card)
beside the full model, its card and ``maeir_run.json``.
"""

from __future__ import annotations

import os
from typing import Any

from ..cards import write_card
from .base import RunFolderTrainer


class PretrainingTrainer(RunFolderTrainer):
    """``Trainer`` for maeir pre-training models.

    Args:
        run_info: what the model card says about the run (method, backbone, data, paper, ...);
            see :func:`maeir.cards.card_for_run`. Optional.
        (all other arguments: ``transformers.Trainer``)
    """

    card_kind = "pretraining"

    def _write_extras(self, folder: str) -> dict[str, Any]:
        """``encoder/`` (with its card), ``README.md`` and ``maeir_run.json`` beside a saved full model."""
        info = super()._write_extras(folder)
        encoder = os.path.join(folder, "encoder")
        if os.path.isdir(encoder):
            write_card(encoder, info, kind="encoder")
        return info

    def write_run_files(self, folder: str) -> dict[str, Any] | None:
        model = self.accelerator.unwrap_model(self.model)
        if hasattr(model, "save_encoder"):
            model.save_encoder(os.path.join(folder, "encoder"), self.processing_class)
        return None
