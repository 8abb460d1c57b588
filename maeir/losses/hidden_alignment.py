"""Word-level distillation (b): hidden-state alignment (docs/methods.md#md2pr, word level (b); paper Section 3.2).

The student's query-tower states of the query tokens (its passage-tower states of the passage
tokens) are pulled towards the teacher's final-layer states on the query (passage) span of the
teacher input ``[CLS] q [SEP] p [SEP]``: the mean squared error over every valid token and every
hidden dimension (``F.mse_loss`` with ``"mean"`` restricted to real tokens). When the two models'
widths differ, the student states are first mapped by a learned linear projection (see
:class:`maeir.methods.md2pr.modeling_md2pr.MD2PRStudentModel`).

Public API: :func:`hidden_state_alignment_loss`.
"""

from __future__ import annotations

import torch


def hidden_state_alignment_loss(
    student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """MSE between ``[N, L, H]`` student and teacher states over the tokens with ``valid`` ``[N, L]`` True.

    The mean runs over valid tokens x hidden dimensions; returns 0 (with a graph) when nothing is valid.
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"student states {tuple(student.shape)} and teacher states {tuple(teacher.shape)} differ "
            "(a width mismatch needs the student's hidden projection)"
        )
    mask = valid.bool().unsqueeze(-1).to(torch.float32)
    squared = (student.float() - teacher.float().detach()).pow(2) * mask
    count = mask.sum() * student.shape[-1]
    return squared.sum() / count.clamp(min=1)
