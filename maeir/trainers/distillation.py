"""``MD2PRTrainer``: distils a frozen cross-encoder into a dual encoder (docs/methods.md#md2pr).

A thin subclass of :class:`maeir.trainers.ContrastiveTrainer` (the model is the student, an
:class:`~maeir.methods.md2pr.modeling_md2pr.MD2PRStudentModel`; saved folders are plain bi-encoders). The
teacher (:class:`~maeir.methods.md2pr.teacher.CrossEncoderTeacher`) is held by the trainer, never by the
model: no optimiser, DDP wrapper or checkpoint sees it, and it runs under ``no_grad`` in eval mode.
It overrides

* ``compute_loss``: the student's forward (token states only when a word-level term is on), the
  teacher on the batch's pairs when needed (or the batch's precomputed ``teacher_scores``), the
  current false-negative threshold (:meth:`MD2PRConfig.threshold_schedule`, sized to the run's total
  steps, also when training by epochs), then
  :func:`maeir.methods.md2pr.objective.md2pr_objective`; every term, the false-negative count and rate,
  the threshold and the teacher's time per step (``teacher_seconds``) are logged;
  the loss's value is the true loss, its gradient that of the back-propagated one (whose CE part is
  multiplied by the world size for DDP; docs/methods.md#pitfalls);
* ``run_summary`` / ``_write_method_files``: the MD2PR settings and false-negative totals in
  ``maeir_run.json`` and the card, and ``md2pr_config.json``;
* ``_load_from_checkpoint``: also restores the hidden projection (``md2pr_projection.safetensors``).

Public API: :class:`MD2PRTrainer`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from ..io_utils import atomic_write_json
from ..methods.md2pr.configuration_md2pr import MD2PRConfig
from ..methods.md2pr.false_negatives import ThresholdSchedule
from ..methods.md2pr.objective import md2pr_objective
from ..methods.md2pr.teacher import CrossEncoderTeacher
from .contrastive import ContrastiveTrainer

STUDENT_KEYS = ("query_input_ids", "query_attention_mask", "passage_input_ids", "passage_attention_mask")


class MD2PRTrainer(ContrastiveTrainer):
    """``Trainer`` for MD2PR (see the module docstring).

    Args:
        md2pr: the MD2PR hyperparameters.
        teacher: the frozen ranker (None only when no term needs a teacher forward pass, e.g.
            precomputed scores and no word level).
        cross_device_negatives / in_batch_negatives / run_info: as in :class:`ContrastiveTrainer`.
        (all other arguments: ``transformers.Trainer``)
    """

    def __init__(
        self, *args, md2pr: MD2PRConfig, teacher: CrossEncoderTeacher | None = None, **kwargs
    ) -> None:
        if kwargs.get("gradient_cache_chunk_size") is not None:
            raise ValueError("MD2PR does not support gradient caching (the word level needs token states)")
        if kwargs.get("flops") is not None and getattr(kwargs["flops"], "enabled", False):
            raise ValueError("MD2PR trains a dense student: no FLOPs regulariser")
        kwargs["flops"] = None
        super().__init__(*args, **kwargs)
        self.md2pr = md2pr
        self.args.remove_unused_columns = False  # the collator reads the raw text columns
        self.teacher = teacher
        if teacher is not None:
            teacher.to(self.args.device)
        self._schedule: ThresholdSchedule | None = None
        self._schedule_steps: int | None = None
        self.false_negative_total = 0
        self.teacher_seconds = 0.0
        self._last_teacher_seconds: float | None = None

    # -- false-negative threshold ---------------------------------------------------------------
    @property
    def schedule(self) -> ThresholdSchedule:
        """The threshold schedule, sized to this run's total steps (known once training has started)."""
        total = self.state.max_steps or (self.args.max_steps if self.args.max_steps > 0 else None)
        if self._schedule is None or self._schedule_steps != total:
            self._schedule, self._schedule_steps = self.md2pr.threshold_schedule(total), total
        return self._schedule

    def current_threshold(self) -> float:
        """The false-negative threshold at the current step (``inf``: no filtering)."""
        if not self.md2pr.false_negative_filtering:
            return math.inf
        return self.schedule.value(self.state.global_step)

    # -- teacher --------------------------------------------------------------------------------
    def teacher_outputs(self, inputs: dict[str, torch.Tensor], num_queries: int):
        """``(teacher scores [Q, G] or None, TeacherOutput or None)`` for this batch."""
        config = self.md2pr
        if not config.needs_teacher:
            return None, None
        precomputed = inputs.get("teacher_scores")
        usable = precomputed is not None and bool(torch.isfinite(precomputed).all())
        if config.teacher_scores == "precomputed" and not usable:
            raise ValueError(
                "teacher_scores precomputed: some sampled passages have no score in the teacher run "
                "(give every training passage a docid scored in --teacher_scores_run)"
            )
        if usable and config.teacher_scores != "on_the_fly" and not config.uses_word_level:
            return precomputed.float(), None
        if self.teacher is None:
            raise ValueError("this batch needs the teacher on the fly, but no teacher was given (--teacher)")
        start = time.perf_counter()
        output = self.teacher(
            inputs["teacher_input_ids"],
            inputs["teacher_attention_mask"],
            inputs.get("teacher_token_type_ids"),
        )
        if output.scores.is_cuda:
            torch.cuda.synchronize(output.scores.device)  # the time of the teacher, not of its launch
        self._last_teacher_seconds = time.perf_counter() - start
        self.teacher_seconds += self._last_teacher_seconds
        return output.scores.view(num_queries, -1), output

    # -- loss -----------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        config = self.md2pr
        outputs = model(
            **{k: inputs[k] for k in STUDENT_KEYS},
            return_loss=False,
            output_token_states=config.uses_word_level,
        )
        unwrapped = self.accelerator.unwrap_model(model)
        num_queries = inputs["query_input_ids"].shape[0]
        self._last_teacher_seconds = None
        teacher_scores, teacher = self.teacher_outputs(inputs, num_queries)
        threshold = self.current_threshold()
        loss, report, parts = md2pr_objective(
            unwrapped, outputs, inputs, config, teacher_scores=teacher_scores, teacher=teacher,
            threshold=threshold, cross_device=self.bi_encoder_loss.gather_across_devices,
            in_batch_negatives=self.bi_encoder_loss.in_batch_negatives,
        )  # fmt: skip
        if self._last_teacher_seconds is not None:
            parts["teacher_seconds"] = torch.tensor(self._last_teacher_seconds)
        if model.training:
            if "false_negatives" in parts:
                self.false_negative_total += int(parts["false_negatives"].item())
            self.track_loss_parts(parts, device=loss.device)
            self._batches_consumed += 1
        # the value reported is the true loss; the gradient is the back-propagated loss's (its CE part
        # multiplied by the world size for DDP; docs/methods.md#pitfalls)
        loss = loss + (report.to(loss.dtype) - loss).detach()
        if return_outputs:
            return loss, {"scores": outputs.scores, "teacher_scores": teacher_scores}
        return loss

    # -- saving / resuming ----------------------------------------------------------------------
    def run_summary(self) -> dict[str, Any]:
        info = super().run_summary()
        info["md2pr"] = self.md2pr.to_dict()
        info["false_negatives_masked"] = self.false_negative_total
        info["teacher_seconds"] = round(self.teacher_seconds, 2)
        return info

    card_kind = "md2pr"

    def _write_method_files(self, folder: str) -> None:
        atomic_write_json(Path(folder) / "md2pr_config.json", self.md2pr.to_dict())

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        target = self.accelerator.unwrap_model(model if model is not None else self.model)
        if hasattr(target, "load_hidden_projection"):
            target.load_hidden_projection(resume_from_checkpoint)
