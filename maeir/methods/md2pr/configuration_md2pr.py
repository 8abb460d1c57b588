"""The MD2PR hyperparameters (docs/methods.md#md2pr): one documented dataclass, parsed like every maeir argument.

The paper (arXiv 2312.16821) publishes no code: every choice it leaves open is a field here,
with its default documented. Saved with the student (``md2pr_config.json`` and ``maeir_run.json``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from ...errors import ConfigError
from .false_negatives import SCHEDULES, ThresholdSchedule

TEACHER_SCORE_SOURCES = ("auto", "on_the_fly", "precomputed")
WORD_LEVEL_PAIRS = ("all", "positive")
HIDDEN_PROJECTIONS = ("auto", "always", "never")
DTYPES = ("auto", "fp32", "fp16", "bf16")


@dataclass
class MD2PRConfig:
    """Multi-level distillation of a cross-encoder ranker into a dual encoder (docs/methods.md#md2pr).

    Loss = ``contrastive_weight`` · CE(student over in-batch + hard negatives)
    + ``kl_weight`` (α) · KL(teacher ‖ student) over each query's candidate group
    + ``word_level_weight`` (β) · (``attention_weight`` · attention MSE + ``hidden_weight`` · hidden-state MSE).
    A term whose weight is 0 is switched off and not computed (nor is the teacher, when no term needs it).

    Args:
        contrastive_weight: weight of the student's InfoNCE over in-batch and hard negatives (its
            temperature is the student recipe's ``temperature``).
        kl_weight: α, weight of the sentence-level KL(teacher ‖ student) (``batchmean``).
        kl_teacher_temperature: the teacher's scores are divided by this before the softmax.
        kl_student_temperature: the student's scores are divided by this before the softmax; None
            uses the student recipe's ``temperature`` (the CE and the KL then see the same logits).
        kl_mask_student: filtered false negatives (and padding slots) are removed from the student's
            softmax too, not only from the renormalised target (False: the student keeps them, with
            target probability 0, so the KL also pushes their scores down).
        word_level_weight: β, weight of the word-level loss.
        attention_weight: weight of the attention alignment inside the word-level loss (0: off).
        hidden_weight: weight of the hidden-state alignment inside the word-level loss (0: off).
        word_level_pairs: the (query, passage) pairs the word-level terms use: ``"all"`` valid pairs
            of each query's group, or only the ``"positive"`` pair.
        teacher_layer: the teacher layer whose attention and output states are distilled (-1: last).
        student_attention_scale: scale of the student's interaction logits ``Q·Pᵀ``; None: ``1/sqrt(d)``.
        hidden_projection: map the student's token states to the teacher's width with a learned
            linear layer: ``"auto"`` (only when the widths differ), ``"always"`` or ``"never"``
            (then differing widths are an error). The projection is a training-only part: it is
            saved in ``md2pr_projection.safetensors``, never in the student checkpoint.
        hidden_state_reduction: ``"mean_of_spans"`` averages the query-span MSE and the
            passage-span MSE (each span weighs the same), ``"tokens"`` averages over all span tokens.
        false_negative_filtering: mask negatives the teacher scores above the positive by more
            than the threshold, out of the CE (logit ``-inf``) and the KL target (renormalised).
        fn_schedule: how the threshold moves: ``constant``, ``linear``, ``cosine`` or ``step``
            (see :class:`maeir.methods.md2pr.false_negatives.ThresholdSchedule`).
        fn_threshold_start / fn_threshold_end: the threshold (teacher logit units, before any
            temperature) at the start and at the end of the schedule. Default: from 1.0 (only clear
            false negatives) down to 0.0 (any negative the teacher prefers to the positive).
        fn_begin_step: no filtering before this optimisation step.
        fn_schedule_steps: steps from ``fn_begin_step`` to ``fn_threshold_end``; None: the rest of
            training (``max_steps - fn_begin_step``).
        fn_stages: number of stages of the ``step`` schedule.
        teacher_scores: ``"on_the_fly"`` (run the frozen teacher on every batch, no gradient),
            ``"precomputed"`` (scores read from a TREC run of the teacher, ``--teacher_scores_run``;
            sentence level and filtering only) or ``"auto"`` (precomputed scores when a run is given,
            every sampled passage has one and no word-level term is on; else on the fly).
        teacher_batch_size: run the teacher on at most this many pairs at once (bounds its memory;
            None: the whole batch).
        teacher_dtype: autocast type of the teacher on a GPU (``auto``: bf16 if supported, else
            fp16; always fp32 on CPU).
        teacher_max_length: tokens of a teacher input ``[CLS] q [SEP] p [SEP]``; None: the ranker's
            own ``max_length``. Passage tokens are cut first when a pair is longer.
    """

    contrastive_weight: float = field(
        default=1.0, metadata={"help": "Weight of the student's InfoNCE (0: off)."}
    )
    kl_weight: float = field(
        default=1.0, metadata={"help": "alpha: weight of KL(teacher || student) (0: off)."}
    )
    kl_teacher_temperature: float = field(default=1.0, metadata={"help": "Teacher temperature of the KL."})
    kl_student_temperature: float | None = field(
        default=None, metadata={"help": "Student temperature of the KL (default: the recipe's temperature)."}
    )
    kl_mask_student: bool = field(
        default=True, metadata={"help": "Remove filtered negatives from the student's softmax too."}
    )
    word_level_weight: float = field(
        default=1.0, metadata={"help": "beta: weight of the word-level loss (0: off)."}
    )
    attention_weight: float = field(default=1.0, metadata={"help": "Attention alignment weight (0: off)."})
    hidden_weight: float = field(default=1.0, metadata={"help": "Hidden-state alignment weight (0: off)."})
    word_level_pairs: str = field(
        default="all", metadata={"help": "Pairs of the word-level terms.", "choices": list(WORD_LEVEL_PAIRS)}
    )
    teacher_layer: int = field(default=-1, metadata={"help": "Teacher layer distilled at the word level."})
    student_attention_scale: float | None = field(
        default=None, metadata={"help": "Scale of the student's Q.P^T (default 1/sqrt(d))."}
    )
    hidden_projection: str = field(
        default="auto",
        metadata={"help": "Student->teacher width projection.", "choices": list(HIDDEN_PROJECTIONS)},
    )
    hidden_state_reduction: str = field(
        default="mean_of_spans",
        metadata={"help": "How query/passage MSEs combine.", "choices": ["mean_of_spans", "tokens"]},
    )
    false_negative_filtering: bool = field(
        default=True, metadata={"help": "Dynamic false-negative filtering."}
    )
    fn_schedule: str = field(
        default="linear", metadata={"help": "Threshold schedule.", "choices": list(SCHEDULES)}
    )
    fn_threshold_start: float = field(
        default=1.0, metadata={"help": "Threshold at the start (teacher logits)."}
    )
    fn_threshold_end: float = field(default=0.0, metadata={"help": "Threshold at the end (teacher logits)."})
    fn_begin_step: int = field(default=0, metadata={"help": "No filtering before this step."})
    fn_schedule_steps: int | None = field(
        default=None, metadata={"help": "Schedule length (default: rest of training)."}
    )
    fn_stages: int = field(default=4, metadata={"help": "Stages of the 'step' schedule."})
    teacher_scores: str = field(
        default="auto", metadata={"help": "Teacher score source.", "choices": list(TEACHER_SCORE_SOURCES)}
    )
    teacher_batch_size: int | None = field(default=None, metadata={"help": "Teacher pairs per forward pass."})
    teacher_dtype: str = field(
        default="auto", metadata={"help": "Teacher autocast type on GPU.", "choices": list(DTYPES)}
    )
    teacher_max_length: int | None = field(
        default=None, metadata={"help": "Tokens per teacher input (default: the ranker's max_length)."}
    )

    paper: ClassVar[dict] = {
        "title": "A Multi-level Distillation based Dense Passage Retrieval Model",
        "arxiv": "2312.16821",
        "section": "Sections 3.2-3.4 (multi-level distillation, dynamic false-negative filtering)",
        "published": {"msmarco_dev_MRR@10": 0.362, "nq_test_R@100": 0.912},
        "bibtex": (
            "@misc{md2pr2023,\n  title={A Multi-level Distillation based Dense Passage Retrieval Model},\n"
            "  year={2023},\n  eprint={2312.16821},\n  archivePrefix={arXiv}\n}"
        ),
    }

    def __post_init__(self) -> None:
        for name in (
            "contrastive_weight",
            "kl_weight",
            "word_level_weight",
            "attention_weight",
            "hidden_weight",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(None, None, f"must be a finite number >= 0, got {value}", field=name)
        for name in ("kl_teacher_temperature", "kl_student_temperature", "student_attention_scale"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(None, None, f"must be > 0, got {value}", field=name)
        for name, allowed in (
            ("word_level_pairs", WORD_LEVEL_PAIRS),
            ("hidden_projection", HIDDEN_PROJECTIONS),
            ("hidden_state_reduction", ("mean_of_spans", "tokens")),
            ("fn_schedule", SCHEDULES),
            ("teacher_scores", TEACHER_SCORE_SOURCES),
            ("teacher_dtype", DTYPES),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    None, None, f"must be one of {list(allowed)}, got {getattr(self, name)!r}", field=name
                )
        for name in ("teacher_batch_size", "teacher_max_length", "fn_schedule_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(None, None, f"must be >= 1 or unset, got {value}", field=name)
        if self.fn_begin_step < 0:
            raise ConfigError(None, None, f"must be >= 0, got {self.fn_begin_step}", field="fn_begin_step")
        if self.fn_stages < 2:
            raise ConfigError(None, None, f"must be >= 2, got {self.fn_stages}", field="fn_stages")
        if self.teacher_scores == "precomputed" and self.uses_word_level:
            raise ConfigError(
                None, None, "precomputed teacher scores only serve the sentence level: set word_level_weight 0 "
                "(or attention_weight and hidden_weight 0), or use teacher_scores on_the_fly", field="teacher_scores",
            )  # fmt: skip
        if not (self.contrastive_weight or self.kl_weight or self.uses_word_level):
            raise ConfigError(None, None, "every loss term is switched off", field="contrastive_weight")

    # -- which parts are on ---------------------------------------------------------------------
    @property
    def uses_contrastive(self) -> bool:
        return self.contrastive_weight > 0

    @property
    def uses_kl(self) -> bool:
        return self.kl_weight > 0

    @property
    def uses_attention(self) -> bool:
        return self.word_level_weight > 0 and self.attention_weight > 0

    @property
    def uses_hidden(self) -> bool:
        return self.word_level_weight > 0 and self.hidden_weight > 0

    @property
    def uses_word_level(self) -> bool:
        return self.uses_attention or self.uses_hidden

    @property
    def needs_teacher_scores(self) -> bool:
        """Teacher relevance scores are needed (KL or false-negative filtering)."""
        return self.uses_kl or (self.false_negative_filtering and self.uses_contrastive)

    @property
    def needs_teacher(self) -> bool:
        """Any teacher output is needed at all."""
        return self.needs_teacher_scores or self.uses_word_level

    def threshold_schedule(self, max_steps: int | None = None) -> ThresholdSchedule:
        """The false-negative threshold schedule (its length defaults to the rest of ``max_steps``)."""
        steps = self.fn_schedule_steps
        if steps is None and max_steps:
            steps = max(1, max_steps - self.fn_begin_step)
        return ThresholdSchedule(
            kind=self.fn_schedule, start=self.fn_threshold_start, end=self.fn_threshold_end,
            begin_step=self.fn_begin_step, num_steps=steps, num_stages=self.fn_stages,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
