"""The MD2PR training objective of one process (docs/methods.md#md2pr; paper Sections 3.2-3.4).

``loss = w_ce · CE + α · KL + β · (w_att · attention MSE + w_hid · hidden MSE)``, with dynamic
false-negative filtering applied to the CE (logit ``-inf``) and to the KL target (renormalised).

- CE: :class:`maeir.losses.InfoNCELoss` over every passage of the batch (in-batch + hard negatives); with
  ``cross_device`` and several processes the representations (and the filter masks) are all-gathered
  with the local slice keeping its graph, and the CE is multiplied by the world size because DDP
  averages gradients (docs/methods.md#pitfalls). Each query's filtered negatives are masked in its own row.
- KL, attention and hidden-state terms are local to each query's group (the teacher only scores a
  query's own candidates) and are plain per-process means: DDP's gradient average is then the
  global mean, no scaling.

Public API: :func:`md2pr_objective`, :func:`group_scores`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...losses.attention_alignment import (
    attention_alignment_loss,
    student_interaction,
    teacher_attention_target,
)
from ...losses.hidden_alignment import hidden_state_alignment_loss
from ...losses.infonce import InfoNCELoss
from ...losses.kl_distillation import distillation_kl
from .configuration_md2pr import MD2PRConfig
from .false_negatives import false_negative_mask
from .spans import gather_span, span_positions
from .teacher import TeacherOutput


def group_scores(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[Q, Q * G]`` all-pairs scores -> ``[Q, G]`` scores of each query with its own group."""
    num_queries = scores.shape[0]
    index = torch.arange(num_queries, device=scores.device).unsqueeze(1) * group_size + torch.arange(
        group_size, device=scores.device
    )
    return scores.gather(1, index)


def md2pr_objective(
    model: nn.Module,
    output: Any,
    batch: dict[str, torch.Tensor],
    config: MD2PRConfig,
    teacher_scores: torch.Tensor | None = None,
    teacher: TeacherOutput | None = None,
    threshold: float = float("inf"),
    cross_device: bool = True,
    in_batch_negatives: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """``(loss to back-propagate, loss to report, parts)`` of one batch.

    Args:
        model: the (unwrapped) student: ``score``, ``config.temperature``, ``representation``.
        output: the student's :class:`~maeir.methods.md2pr.modeling_md2pr.MD2PRStudentOutput`.
        batch: the collator's batch (:class:`maeir.methods.md2pr.collator.MD2PRCollator`).
        config: the MD2PR hyperparameters.
        teacher_scores: ``[Q, G]`` teacher relevance logits (needed by the KL and the filter).
        teacher: the teacher's output (attention / states for the word level).
        threshold: the current false-negative threshold (``inf``: no filtering).
        cross_device / in_batch_negatives: CE negatives from every process / from other queries.

    ``parts`` (detached, unscaled): ``loss`` terms ``contrastive_loss``, ``kl_loss``,
    ``attention_loss``, ``hidden_loss``, ``word_level_loss`` for the terms that are on, and, with
    filtering, ``false_negatives`` (negatives masked in this batch), ``false_negative_rate`` (share
    of valid negatives) and ``fn_threshold``.
    """
    query = model.representation(output, "query")
    passage = model.representation(output, "passage")
    first = next(iter(query.values()))
    num_queries, num_passages = first.shape[0], next(iter(passage.values())).shape[0]
    if num_passages % num_queries:
        raise ValueError(f"{num_passages} passages do not split into groups for {num_queries} queries")
    group = num_passages // num_queries
    passage_mask = batch.get("passage_mask")
    group_valid = (
        torch.ones(num_queries, group, dtype=torch.bool, device=first.device)
        if passage_mask is None
        else passage_mask.to(first.device).bool().view(num_queries, group)
    )
    parts: dict[str, torch.Tensor] = {}
    zero = first.new_zeros(())

    # -- dynamic false-negative filtering -----------------------------------------------------
    masked = torch.zeros_like(group_valid)
    if teacher_scores is not None:
        teacher_scores = teacher_scores.to(first.device).float().view(num_queries, group)
    if config.false_negative_filtering and teacher_scores is not None and threshold != float("inf"):
        masked = false_negative_mask(teacher_scores, threshold, group_valid)
        negatives = group_valid[:, 1:].sum().clamp(min=1)
        parts["false_negatives"] = masked.sum().float().detach()
        parts["false_negative_rate"] = (masked.sum() / negatives).float().detach()
        parts["fn_threshold"] = torch.tensor(float(threshold))

    report = zero
    backprop = zero

    # -- CE over in-batch + hard negatives -----------------------------------------------------
    if config.uses_contrastive:
        infonce = InfoNCELoss(
            model.score, model.config.temperature, in_batch_negatives=in_batch_negatives,
            gather_across_devices=cross_device,
        )  # fmt: skip
        ce = infonce(query, passage, passage_mask, exclude=masked)
        contrastive = ce.loss
        parts["contrastive_loss"] = contrastive.detach()
        report = report + config.contrastive_weight * contrastive
        backprop = backprop + config.contrastive_weight * contrastive * ce.scale

    # -- sentence level: KL(teacher || student) over each query's group -----------------------
    if config.uses_kl:
        if teacher_scores is None:
            raise ValueError("the KL term needs teacher scores")
        student_groups = group_scores(model.score(query, passage), group)
        student_temperature = config.kl_student_temperature or model.config.temperature
        kl = distillation_kl(
            student_groups, teacher_scores, student_temperature, config.kl_teacher_temperature,
            keep=group_valid & ~masked, mask_student=config.kl_mask_student,
        )  # fmt: skip
        parts["kl_loss"] = kl.detach()
        report = report + config.kl_weight * kl
        backprop = backprop + config.kl_weight * kl

    # -- word level: attention and hidden-state alignment on the shared spans -----------------
    if config.uses_word_level:
        if teacher is None:
            raise ValueError("the word-level terms need the teacher's outputs")
        word = _word_level(model, output, batch, config, teacher, group_valid.view(-1), group)
        for key, value in word.items():
            parts[key] = value.detach()
        word_loss = config.attention_weight * word.get(
            "attention_loss", zero
        ) + config.hidden_weight * word.get("hidden_loss", zero)
        parts["word_level_loss"] = word_loss.detach()
        report = report + config.word_level_weight * word_loss
        backprop = backprop + config.word_level_weight * word_loss
    return backprop, report.detach(), parts


def _word_level(
    model: nn.Module,
    output: Any,
    batch: dict[str, torch.Tensor],
    config: MD2PRConfig,
    teacher: TeacherOutput,
    pair_valid: torch.Tensor,
    group: int,
) -> dict[str, torch.Tensor]:
    device = output.passage_token_states.device
    if config.word_level_pairs == "positive":
        pair_valid = pair_valid & (torch.arange(pair_valid.shape[0], device=pair_valid.device) % group == 0)
    spans = {key: batch[key].to(device) for key in batch if key.startswith("span_")}
    if len(spans) != 6:
        raise ValueError("the batch has no token spans (the collator builds them when word_level is on)")
    query_of_pair = torch.arange(pair_valid.shape[0], device=device) // group
    q_student, q_valid = span_positions(spans["span_query_student_start"], spans["span_query_length"])
    q_teacher, _ = span_positions(
        spans["span_query_teacher_start"], spans["span_query_length"], q_student.shape[1]
    )
    p_student, p_valid = span_positions(spans["span_passage_student_start"], spans["span_passage_length"])
    p_teacher, _ = span_positions(
        spans["span_passage_teacher_start"], spans["span_passage_length"], p_student.shape[1]
    )
    q_valid = q_valid & pair_valid.to(device).unsqueeze(1)
    p_valid = p_valid & pair_valid.to(device).unsqueeze(1)
    out: dict[str, torch.Tensor] = {}
    if config.uses_attention:
        if teacher.attention is None:
            raise ValueError("the attention term needs the teacher's attention")
        q_states = gather_span(output.query_token_states[query_of_pair], q_student)
        p_states = gather_span(output.passage_token_states, p_student)
        student = student_interaction(q_states, p_states, p_valid, config.student_attention_scale)
        target = teacher_attention_target(teacher.attention.to(device), q_teacher, p_teacher, p_valid)
        out["attention_loss"] = attention_alignment_loss(student, target, q_valid, p_valid)
    if config.uses_hidden:
        if teacher.hidden is None:
            raise ValueError("the hidden-state term needs the teacher's states")
        hidden = teacher.hidden.to(device)
        q_states = gather_span(output.query_token_states_projected[query_of_pair], q_student)
        p_states = gather_span(output.passage_token_states_projected, p_student)
        q_target, p_target = gather_span(hidden, q_teacher), gather_span(hidden, p_teacher)
        if config.hidden_state_reduction == "tokens":
            out["hidden_loss"] = hidden_state_alignment_loss(
                torch.cat([q_states, p_states], 1),
                torch.cat([q_target, p_target], 1),
                torch.cat([q_valid, p_valid], 1),
            )
        else:
            out["hidden_loss"] = (
                hidden_state_alignment_loss(q_states, q_target, q_valid)
                + hidden_state_alignment_loss(p_states, p_target, p_valid)
            ) / 2
    return out
