"""The pre-training ``Trainer``: per-part loss logging, encoder export, model cards, atomic saves.

It overrides as little as possible:

* ``compute_loss`` keeps a running mean of every ``*_loss`` field of the model output, and ``log``
  adds those means (averaged over processes) to each training log line;
* ``_save_checkpoint`` writes each checkpoint into a staging folder and renames it into place, so a
  run killed mid-save leaves the previous checkpoints intact and ``resume_from_checkpoint`` never
  picks a half-written one;
* ``_save`` also writes ``encoder/`` (the plain backbone checkpoint + tokenizer), ``README.md``
  (the model card) and ``maeir_run.json`` beside the full model; the final save into a run folder
  moves each file into place atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from ..io_utils import (
    STAGING_PREFIX,
    atomic_write_json,
    move_contents_into,
    remove_stale_staging,
    replace_directory,
)


class PretrainingTrainer(Trainer):
    """``Trainer`` for maeir pre-training models.

    Args:
        run_info: what the model card says about the run (method, backbone, data, paper, ...);
            see :func:`maeir.model_card.card_for_run`. Optional.
        (all other arguments: ``transformers.Trainer``)
    """

    def __init__(self, *args, run_info: dict[str, Any] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.run_info = dict(run_info or {})
        self._part_sums: dict[str, torch.Tensor] = {}
        self._part_count = 0
        self._in_checkpoint = False
        self._batches_consumed = 0  # training batches seen by compute_loss (the collator runs ahead)
        if self.args.should_save:
            remove_stale_staging(self.args.output_dir)

    # -- losses ---------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            for key, value in outputs.items():
                if key.endswith("_loss") and value is not None:
                    value = value.detach().float()
                    self._part_sums[key] = self._part_sums.get(key, torch.zeros_like(value)) + value
            self._part_count += 1
            self._batches_consumed += 1
        loss = outputs["loss"]
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._part_count:
            for key in sorted(self._part_sums):
                mean = self._part_sums[key] / self._part_count
                logs[key] = round(self.accelerator.reduce(mean, reduction="mean").item(), 4)
            self._part_sums, self._part_count = {}, 0
        super().log(logs, start_time)

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
        finally:
            self.args.output_dir = output_dir
            self._in_checkpoint = False
        if self.args.should_save:
            replace_directory(os.path.join(staging_root, name), os.path.join(run_dir, name))
            os.rmdir(staging_root)
            if self.state.best_model_checkpoint and self.state.best_model_checkpoint.startswith(staging_root):
                self.state.best_model_checkpoint = os.path.join(run_dir, name)

            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=False,
            )
        self.accelerator.wait_for_everyone()

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)
        state = None
        if hasattr(self.data_collator, "rng_state_before_call"):
            state = self.data_collator.rng_state_before_call(self._batches_consumed)
        if state is not None:
            tensors = {"state": state, "call_index": torch.tensor([self._batches_consumed])}
            save_file(
                tensors, os.path.join(output_dir, f"collator_rng_{self.args.process_index}.safetensors")
            )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, f"collator_rng_{self.args.process_index}.safetensors")
        if hasattr(self.data_collator, "restore_rng_state") and os.path.exists(path):
            tensors = load_file(path)
            self._batches_consumed = int(tensors["call_index"][0])
            self.data_collator.restore_rng_state(tensors["state"], self._batches_consumed)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self._in_checkpoint or not self.args.should_save:
            super()._save(output_dir, state_dict=state_dict)
            if self.args.should_save:
                self._write_extras(output_dir)
            return
        os.makedirs(output_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}final-", dir=output_dir)
        super()._save(staging, state_dict=state_dict)
        self._write_extras(staging)
        move_contents_into(staging, output_dir)

    def _write_extras(self, folder: str) -> None:
        """``encoder/``, ``README.md`` and ``maeir_run.json`` beside a saved full model."""
        model = self.accelerator.unwrap_model(self.model)
        tokenizer = self.processing_class
        if hasattr(model, "save_encoder"):
            model.save_encoder(os.path.join(folder, "encoder"), tokenizer)
        info = self.run_summary()
        atomic_write_json(Path(folder) / "maeir_run.json", info)
        from ..model_card import card_for_run, save_model_card

        save_model_card(card_for_run(info, kind="pretraining"), folder)
        save_model_card(card_for_run(info, kind="encoder"), os.path.join(folder, "encoder"))

    def run_summary(self) -> dict[str, Any]:
        """What the model cards need: the run info plus final losses and training hyperparameters."""
        losses: dict[str, float] = {}
        for entry in self.state.log_history:
            for key, value in entry.items():
                if (key == "loss" or key.endswith("_loss")) and isinstance(value, (int, float)):
                    losses[key] = float(value)
        args = self.args
        hyperparameters = {
            "learning_rate": args.learning_rate,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "world_size": args.world_size,
            "global_batch_size": args.per_device_train_batch_size
            * args.gradient_accumulation_steps
            * args.world_size,
            "max_steps": self.state.max_steps,
            "steps_done": self.state.global_step,
            "warmup_steps": args.warmup_steps,
            "weight_decay": args.weight_decay,
            "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
            "seed": args.seed,
            "bf16": args.bf16,
            "fp16": args.fp16,
        }
        hyperparameters.update(self.run_info.get("hyperparameters", {}))
        return {**self.run_info, "hyperparameters": hyperparameters, "losses": losses}
