"""``CheckpointingTrainer``: checkpoints that a kill at any moment cannot damage, and exact resumes.

The base of every maeir trainer (and the trainer of the classification driver). It overrides

* ``__init__``: takes the run folder's lock (:func:`maeir.run_folder.lock_run_folder`: a second run
  into the same folder stops at once), then removes the staging / trash folders a killed run left;
* ``_save_checkpoint``: writes each checkpoint into a staging folder and renames it into place, then
  rotates (``save_total_limit``) by renaming old checkpoints out of the ``checkpoint-*`` namespace
  before deleting them, so every ``checkpoint-*`` folder is complete at every moment;
* ``get_batch_samples``: counts the batches training has consumed;
* ``_save_rng_state`` / ``_load_from_checkpoint``: also save and restore the data collator's generator
  (:mod:`maeir.data.generator_state`) as it was before the first batch not consumed yet, so a
  resumed run draws exactly what an uninterrupted one draws;
* ``_load_from_checkpoint`` / ``_load_optimizer_and_scheduler`` / ``_load_rng_state``: a damaged
  checkpoint file is reported with its path (:class:`maeir.errors.InputError`).
"""

from __future__ import annotations

import os

import torch
from safetensors.torch import load_file, save_file
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..errors import InputError
from ..io_utils import STAGING_PREFIX, apply_umask, remove_stale_staging, replace_directory
from ..run_folder import checkpoint_load_error, lock_run_folder, rotate_checkpoints


def collator_rng_file(process_index: int) -> str:
    return f"collator_rng_{process_index}.safetensors"


class CheckpointingTrainer(Trainer):
    """``transformers.Trainer`` with crash-safe checkpoints and exact resumes (see the module doc)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._in_checkpoint = False
        self._batches_consumed = 0  # training batches handed to training (the collator runs ahead)
        if self.args.should_save:
            lock_run_folder(self.args.output_dir)
            remove_stale_staging(self.args.output_dir)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._batches_consumed += len(batch_samples)
        return batch_samples, num_items

    # -- saving ---------------------------------------------------------------------------------
    def _save_checkpoint(self, model, trial) -> None:
        run_dir = self._get_output_dir(trial=trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_root = os.path.join(run_dir, f"{STAGING_PREFIX}{name}")
        output_dir = self.args.output_dir
        self._in_checkpoint = True
        try:
            # The parent implementation writes everything under args.output_dir/checkpoint-N (and
            # rotates old checkpoints there): point it at a staging root, then rename the result.
            self.args.output_dir = staging_root
            super()._save_checkpoint(model, trial)
        except OSError as err:
            if self.args.should_save:
                remove_stale_staging(run_dir)
            raise OSError(
                err.errno, f"cannot write the checkpoint: {err.strerror or err}", os.path.join(run_dir, name)
            ) from err
        finally:
            self.args.output_dir = output_dir
            self._in_checkpoint = False
        if self.args.should_save:
            final = os.path.join(run_dir, name)
            apply_umask(os.path.join(staging_root, name))
            replace_directory(os.path.join(staging_root, name), final)
            os.rmdir(staging_root)
            if self.state.best_model_checkpoint and self.state.best_model_checkpoint.startswith(staging_root):
                self.state.best_model_checkpoint = final
            rotate_checkpoints(run_dir, self.args.save_total_limit, {final, self.state.best_model_checkpoint})
        self.accelerator.wait_for_everyone()

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)
        state = None
        if hasattr(self.data_collator, "rng_state_before_call"):
            state = self.data_collator.rng_state_before_call(self._batches_consumed)
        if state is not None:
            tensors = {"state": state, "call_index": torch.tensor([self._batches_consumed])}
            save_file(tensors, os.path.join(output_dir, collator_rng_file(self.args.process_index)))

    # -- loading --------------------------------------------------------------------------------
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        try:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        except Exception as err:  # noqa: BLE001 - any failure to read it means a damaged file
            raise checkpoint_load_error(resume_from_checkpoint, "model.safetensors", err) from err

    def _load_collator_rng_state(self, checkpoint: str) -> None:
        """The data collator's generator (masks, sampled negatives) as it was at the checkpoint.

        Called from :meth:`_load_optimizer_and_scheduler`: the one loading hook the ``Trainer`` runs on
        every resume path (plain, DDP, FSDP and DeepSpeed, whose checkpoints are not loaded through
        ``_load_from_checkpoint``) before the first batch is drawn (``_load_rng_state`` comes too late:
        after the first resumed batch has been collated).
        """
        if not hasattr(self.data_collator, "restore_rng_state"):
            return
        name = collator_rng_file(self.args.process_index)
        path = os.path.join(checkpoint, name)
        if not os.path.exists(path):
            if self.args.dataloader_num_workers == 0:
                raise InputError(
                    path, None, "missing: the data collator's generator state (needed for an exact resume)"
                )
            return
        try:
            tensors = load_file(path)
        except Exception as err:  # noqa: BLE001 - any failure to read the file is a damaged file
            raise checkpoint_load_error(checkpoint, name, err) from err
        self._batches_consumed = int(tensors["call_index"][0])
        self.data_collator.restore_rng_state(tensors["state"], self._batches_consumed)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        try:
            super()._load_optimizer_and_scheduler(checkpoint)
        except Exception as err:  # noqa: BLE001 - any failure to read them means a damaged file
            raise checkpoint_load_error(checkpoint, "optimizer.pt / scheduler.pt", err) from err
        if checkpoint is not None:
            self._load_collator_rng_state(checkpoint)

    def _load_rng_state(self, checkpoint: str | None) -> None:
        try:
            super()._load_rng_state(checkpoint)
        except Exception as err:  # noqa: BLE001 - any failure to read them means a damaged file
            raise checkpoint_load_error(checkpoint, "rng_state.pth", err) from err
