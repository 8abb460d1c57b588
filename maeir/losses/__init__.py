"""Training losses, one per file: :class:`InfoNCELoss` (contrastive) and :class:`FLOPsRegularizer` (SPLADE).

Both work on plain tensors, so any bi-encoder (retrieval, response selection, distillation students)
can use them; :class:`maeir.trainers.ContrastiveTrainer` combines them with cross-device negatives.
"""

from .flops import FLOPsRegularizer, flops
from .infonce import InfoNCELoss, group_targets, info_nce

__all__ = ["FLOPsRegularizer", "InfoNCELoss", "flops", "group_targets", "info_nce"]

# MD2PR (SPEC "MD2PR"): ranker loss and the distillation terms.
from .attention_alignment import (  # noqa: E402
    AttentionAlignmentLoss,
    attention_alignment_loss,
    student_interaction,
    teacher_attention_target,
)
from .hidden_alignment import HiddenStateAlignmentLoss, hidden_state_alignment_loss  # noqa: E402
from .kl_distillation import DistillationKLLoss, distillation_kl, teacher_distribution  # noqa: E402
from .listwise_ce import ListwiseCrossEntropyLoss, listwise_cross_entropy  # noqa: E402

__all__ += [
    "AttentionAlignmentLoss",
    "DistillationKLLoss",
    "HiddenStateAlignmentLoss",
    "ListwiseCrossEntropyLoss",
    "attention_alignment_loss",
    "distillation_kl",
    "hidden_state_alignment_loss",
    "listwise_cross_entropy",
    "student_interaction",
    "teacher_attention_target",
    "teacher_distribution",
]
