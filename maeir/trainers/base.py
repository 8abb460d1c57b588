"""``RunFolderTrainer``: the one trainer base of maeir (per-part loss logging, the atomic run folder).

A subclass of :class:`maeir.trainers.checkpointing.CheckpointingTrainer` (the run-folder lock, checkpoints
that a kill cannot damage, crash-safe rotation, exact resumes with the collator's generator) that every
maeir trainer derives from. It overrides as little as possible:

* ``compute_loss`` returns ``model(**inputs).loss`` and keeps a running mean of every ``*_loss`` field
  of the output (:meth:`track_loss_parts`, which a subclass with its own loss reports its parts to);
  ``log`` adds those means (averaged over processes) to each training log line;
* ``_save``: the final save into a run folder is staged and moved into place file by file, so a crash
  never leaves a half-written model over a good one; every save also gets ``maeir_run.json`` and a
  model card of the trainer's ``card_kind`` (:meth:`_write_extras`; a subclass adds its files in
  :meth:`write_run_files`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..cards import training_hyperparameters, write_card
from ..io_utils import (
    STAGING_PREFIX,
    apply_umask,
    atomic_write_json,
    make_staging_directory,
    move_contents_into,
)
from .checkpointing import CheckpointingTrainer


class RunFolderTrainer(CheckpointingTrainer):
    """The base of every maeir ``Trainer`` (see the module docstring).

    Args:
        run_info: what the model card says about the run (method, backbone, data, paper, ...);
            see :func:`maeir.cards.card_for_run`. Optional.
        (all other arguments: ``transformers.Trainer``)
    """

    def __init__(self, *args, run_info: dict[str, Any] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.run_info = dict(run_info or {})
        self._part_sums: dict[str, torch.Tensor] = {}
        self._part_count = 0

    # -- losses ---------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            self.track_loss_parts(
                {key: value for key, value in outputs.items() if key.endswith("_loss") and value is not None}
            )
        loss = outputs["loss"]
        return (loss, outputs) if return_outputs else loss

    def track_loss_parts(self, parts: dict[str, torch.Tensor], device: torch.device | None = None) -> None:
        """Add one training batch's loss parts to the running means that :meth:`log` reports.

        Every trainer reports its parts here (detached, fp32, moved to ``device`` when given, so that
        all processes reduce tensors on one device).
        """
        for key, value in parts.items():
            value = value.detach().float()
            if device is not None:
                value = value.to(device)
            self._part_sums[key] = self._part_sums.get(key, torch.zeros_like(value)) + value
        self._part_count += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._part_count:
            for key in sorted(self._part_sums):
                mean = self._part_sums[key] / self._part_count
                logs[key] = round(self.accelerator.reduce(mean, reduction="mean").item(), 4)
            self._part_sums, self._part_count = {}, 0
        super().log(logs, start_time)

    # -- saving ---------------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self._in_checkpoint or not self.args.should_save:
            super()._save(output_dir, state_dict=state_dict)
            if self.args.should_save:
                self._write_extras(output_dir)
            return
        os.makedirs(output_dir, exist_ok=True)
        staging = make_staging_directory(output_dir, f"{STAGING_PREFIX}final-")
        try:
            super()._save(staging, state_dict=state_dict)
            self._write_extras(staging)
        except OSError as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise OSError(err.errno, f"cannot write the model: {err.strerror or err}", output_dir) from err
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        apply_umask(staging)
        move_contents_into(staging, output_dir)

    card_kind = "pretraining"  # the model-card kind (maeir.cards) of the saved folders

    def _write_extras(self, folder: str) -> dict[str, Any]:
        """``maeir_run.json`` and the model card beside a saved model (plus :meth:`write_run_files`);
        returns the run record written."""
        info = self.run_summary()
        info.update(self.write_run_files(folder) or {})
        atomic_write_json(Path(folder) / "maeir_run.json", info)
        write_card(folder, info, kind=self.card_kind)
        return info

    def write_run_files(self, folder: str) -> dict[str, Any] | None:
        """Hook: the files a trainer adds to every save; returns fields for ``maeir_run.json``."""
        return None

    def run_summary(self) -> dict[str, Any]:
        """What the model cards need: the run info plus final losses and training hyperparameters."""
        losses: dict[str, float] = {}
        for entry in self.state.log_history:
            for key, value in entry.items():
                if (key == "loss" or key.endswith("_loss")) and isinstance(value, (int, float)):
                    losses[key] = float(value)
        hyperparameters = training_hyperparameters(
            self.args, max_steps=self.state.max_steps, steps_done=self.state.global_step
        )
        hyperparameters.update(self.run_info.get("hyperparameters", {}))
        return {**self.run_info, "hyperparameters": hyperparameters, "losses": losses}
