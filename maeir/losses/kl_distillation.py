"""Sentence-level distillation: KL(teacher ‖ student) over each query's candidate group (docs/methods.md#md2pr).

``scores`` are ``[Q, G]`` (query ``i`` with the ``G`` candidates of its own group). The target is
``p_t = softmax(teacher / teacher_temperature)`` and the student distribution
``p_s = softmax(student / student_temperature)``; the loss is

    KL(p_t ‖ p_s) = sum_ij p_t[i, j] * (log p_t[i, j] - log p_s[i, j]) / Q

i.e. ``reduction="batchmean"`` (the sum over a row divided by the number of rows; docs/methods.md#pitfalls:
``"mean"`` would also divide by ``G``). Candidates with ``keep == False`` (padding slots, filtered
false negatives) are removed from the target, which is renormalised over the kept candidates so
it still sums to one; with ``mask_student`` (default) they are also removed from the student's
softmax, so both distributions live on the same support.

Public API: :func:`teacher_distribution`, :func:`distillation_kl`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_log_softmax(logits: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    if keep is not None:
        logits = logits.masked_fill(~keep, float("-inf"))
    return F.log_softmax(logits, dim=-1)


def teacher_distribution(
    teacher_scores: torch.Tensor, temperature: float = 1.0, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """``[Q, G]`` target probabilities: softmax over the kept candidates (0 elsewhere; rows sum to 1)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    keep = None if keep is None else keep.to(device=teacher_scores.device, dtype=torch.bool)
    if keep is not None and not keep.any(dim=-1).all():
        raise ValueError("a query has no candidate left in its group")
    return _masked_log_softmax(teacher_scores.float() / temperature, keep).exp()


def distillation_kl(
    student_scores: torch.Tensor,
    teacher_scores: torch.Tensor,
    student_temperature: float = 1.0,
    teacher_temperature: float = 1.0,
    keep: torch.Tensor | None = None,
    mask_student: bool = True,
) -> torch.Tensor:
    """``KL(teacher ‖ student)`` with ``batchmean`` reduction (see the module docstring). Computed in fp32.

    Args:
        student_scores: ``[Q, G]``, with gradient.
        teacher_scores: ``[Q, G]`` (no gradient is taken through them).
        student_temperature / teacher_temperature: divide each side's scores before its softmax.
        keep: ``[Q, G]`` bool, False for candidates removed from the target (and, with
            ``mask_student``, from the student's softmax).
        mask_student: also remove those candidates from the student's softmax.
    """
    if student_scores.shape != teacher_scores.shape or student_scores.dim() != 2:
        raise ValueError(
            f"student and teacher scores must both be [Q, G]; got {tuple(student_scores.shape)} and "
            f"{tuple(teacher_scores.shape)}"
        )
    if student_temperature <= 0:
        raise ValueError(f"student_temperature must be > 0, got {student_temperature}")
    keep = None if keep is None else keep.to(device=student_scores.device, dtype=torch.bool)
    target = teacher_distribution(teacher_scores.detach(), teacher_temperature, keep)
    student_log = _masked_log_softmax(
        student_scores.float() / student_temperature, keep if mask_student else None
    )
    # 0 * log 0 = 0: removed candidates contribute nothing (and their -inf log-probabilities no NaN).
    present = target > 0
    log_target = torch.where(present, target, torch.ones_like(target)).log()
    terms = target * (log_target - student_log.masked_fill(~present, 0.0))
    return terms.sum() / student_scores.shape[0]
