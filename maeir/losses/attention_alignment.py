"""Word-level distillation (a): attention alignment (docs/methods.md#md2pr, word level (a); paper Section 3.2).

For each (query, passage) pair of the teacher input ``[CLS] q [SEP] p [SEP]``:

- teacher: the last layer's attention from the query tokens (rows) to the passage tokens (columns),
  averaged over heads, then renormalised over the passage tokens so that each query token's row
  sums to one (the mass it gave to ``[CLS]``, ``[SEP]`` and the query itself is dropped);
- student: the dual encoder's token interaction matrix ``softmax_p(Q_tok · P_tokᵀ / sqrt(d))`` from the
  query tower's token states of ``q`` and the passage tower's token states of ``p``;
- loss: the mean squared difference over every valid (query token, passage token) entry.

Token spans (which positions are ``q`` and ``p``) come from :mod:`maeir.methods.md2pr.spans`; every
function here takes ``[N, Lq, Lp]`` matrices already sliced to those spans plus validity masks.

Public API: :func:`renormalize_over_passage`, :func:`teacher_attention_target`,
:func:`student_interaction`, :func:`attention_alignment_loss`.
"""

from __future__ import annotations

import math

import torch


def renormalize_over_passage(
    attention: torch.Tensor, passage_valid: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """``[N, Lq, Lp]`` rows renormalised to sum to one over the valid passage columns (0 elsewhere)."""
    weights = attention.float() * passage_valid.unsqueeze(1).to(torch.float32)
    return weights / weights.sum(dim=-1, keepdim=True).clamp(min=eps)


def teacher_attention_target(
    attention: torch.Tensor,
    query_index: torch.Tensor,
    passage_index: torch.Tensor,
    passage_valid: torch.Tensor,
) -> torch.Tensor:
    """The teacher's query→passage attention ``[N, Lq, Lp]`` from its full attention.

    Args:
        attention: ``[N, H, L, L]`` (per head) or ``[N, L, L]`` (already averaged) attention
            probabilities of the teacher's chosen layer (rows attend to columns).
        query_index / passage_index: ``[N, Lq]`` / ``[N, Lp]`` positions of the query / passage tokens
            in the teacher input (padding entries may hold any in-range position).
        passage_valid: ``[N, Lp]`` bool, False for padding entries of ``passage_index``.
    """
    if attention.dim() == 4:
        attention = attention.float().mean(dim=1)
    elif attention.dim() != 3:
        raise ValueError(f"attention must be [N, H, L, L] or [N, L, L], got {tuple(attention.shape)}")
    n, length, _ = attention.shape
    rows = attention.float().gather(1, query_index.unsqueeze(-1).expand(n, query_index.shape[1], length))
    block = rows.gather(2, passage_index.unsqueeze(1).expand(n, query_index.shape[1], passage_index.shape[1]))
    return renormalize_over_passage(block, passage_valid)


def student_interaction(
    query_states: torch.Tensor,
    passage_states: torch.Tensor,
    passage_valid: torch.Tensor,
    scale: float | None = None,
) -> torch.Tensor:
    """``softmax_p(Q_tok · P_tokᵀ * scale)`` ``[N, Lq, Lp]`` over the valid passage tokens (fp32).

    ``scale`` defaults to ``1 / sqrt(d)`` (``d``: the token states' width). A pair without any valid
    passage token gets all-zero rows.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(query_states.shape[-1])
    logits = torch.einsum("nqd,npd->nqp", query_states.float(), passage_states.float()) * scale
    valid = passage_valid.bool().unsqueeze(1)
    logits = logits.masked_fill(~valid, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.nan_to_num(probs, nan=0.0)  # rows with no valid column


def attention_alignment_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    query_valid: torch.Tensor,
    passage_valid: torch.Tensor,
) -> torch.Tensor:
    """Mean squared error between ``[N, Lq, Lp]`` matrices over the valid (query, passage) token entries.

    ``query_valid`` ``[N, Lq]`` / ``passage_valid`` ``[N, Lp]`` mark real tokens (a pair left out
    entirely has an all-False ``query_valid`` row). Returns 0 (with a graph) when nothing is valid.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"shapes differ: student {tuple(student.shape)}, teacher {tuple(teacher.shape)}")
    entries = query_valid.bool().unsqueeze(-1) & passage_valid.bool().unsqueeze(1)
    count = entries.sum()
    squared = (student.float() - teacher.float().detach()).pow(2) * entries
    return squared.sum() / count.clamp(min=1)
