"""Training losses, one per file, on plain tensors so that any model can use them.

- :class:`InfoNCELoss` (``nn.Module``; returns :class:`InfoNCEOutput` with the loss and its parts):
  the contrastive loss of every bi-encoder (retrieval, response selection, MD2PR students), with
  in-batch / given negatives and cross-device negatives (``gather_across_devices``);
  :func:`info_nce` is its formula on a score matrix.
- :class:`BiEncoderLoss` (``nn.Module`` called with the model and a batch): InfoNCE + FLOPs of a
  bi-encoder batch, with cross-device negatives and gradient caching (GradCache) as options.
- :class:`FLOPsRegularizer`: SPLADE's sparsity regulariser with its quadratic warm-up.
- MD2PR (docs/methods.md#md2pr): the ranker's listwise CE and the distillation terms (KL, attention and
  hidden-state alignment), as functions.
"""

from .attention_alignment import attention_alignment_loss, student_interaction, teacher_attention_target
from .bi_encoder import BiEncoderLoss, BiEncoderLossOutput, contrastive_objective
from .flops import FLOPsRegularizer, flops
from .hidden_alignment import hidden_state_alignment_loss
from .infonce import InfoNCELoss, InfoNCEOutput, group_targets, info_nce
from .kl_distillation import distillation_kl, teacher_distribution
from .listwise_ce import listwise_cross_entropy

__all__ = [
    "BiEncoderLoss",
    "BiEncoderLossOutput",
    "FLOPsRegularizer",
    "InfoNCELoss",
    "InfoNCEOutput",
    "attention_alignment_loss",
    "contrastive_objective",
    "distillation_kl",
    "flops",
    "group_targets",
    "hidden_state_alignment_loss",
    "info_nce",
    "listwise_cross_entropy",
    "student_interaction",
    "teacher_attention_target",
    "teacher_distribution",
]
