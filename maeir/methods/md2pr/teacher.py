"""The frozen MD2PR teacher: a cross-encoder run without gradient, with its attention and states recorded.

:class:`CrossEncoderTeacher` wraps a trained ranker (:func:`maeir.retrieval.modeling_cross_encoder.load_cross_encoder`).
Its parameters are frozen (``requires_grad=False``), it stays in eval mode (no dropout) and every call
runs under ``torch.no_grad``; it is never part of the trained model, so no optimiser, DDP wrapper or
checkpoint ever sees it (docs/methods.md#md2pr: the teacher is frozen).

Word-level distillation needs one layer's attention probabilities and output states, not all of them:

- states: a forward hook on that layer (the last: the base model's ``last_hidden_state``);
- attention: a forward hook on that layer's self-attention module. SDPA returns no probabilities,
  so only that one module is switched to eager attention (its own copy of the config; the SDPA
  boolean mask is turned into the additive mask eager attention expects), every other layer keeps
  SDPA. Models that do not declare their attention modules (``_can_record_outputs``, e.g.
  DeBERTa-v2) fall back to ``output_attentions=True`` (all layers; they are eager anyway).

Public API: :class:`CrossEncoderTeacher`, :class:`TeacherOutput`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ...modeling.backbone import transformer_layers
from ...retrieval.encode import autocast_dtype
from ...retrieval.modeling_cross_encoder import RankerRecipe


@dataclass
class TeacherOutput:
    """What the teacher gives for ``N`` pairs.

    Args:
        scores: ``[N]`` relevance logits (fp32).
        attention: ``[N, L, L]`` head-averaged attention probabilities of the chosen layer, or None.
        hidden: ``[N, L, H]`` output states of the chosen layer, or None.
    """

    scores: torch.Tensor
    attention: torch.Tensor | None = None
    hidden: torch.Tensor | None = None


def _attention_module_class(model: PreTrainedModel) -> type | None:
    for owner in (model, model.base_model):
        spec = (getattr(owner, "_can_record_outputs", None) or {}).get("attentions")
        if spec is None:
            continue
        target = getattr(spec, "target_class", spec)
        if isinstance(target, type):
            return target
    return None


def _additive_mask_pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    mask = kwargs.get("attention_mask")
    if mask is not None and mask.dtype == torch.bool:
        hidden = args[0] if args else kwargs.get("hidden_states")
        dtype = hidden.dtype if hidden is not None else torch.float32
        additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        kwargs["attention_mask"] = additive.masked_fill(~mask, torch.finfo(dtype).min)
    return args, kwargs


class CrossEncoderTeacher:
    """A frozen cross-encoder that returns scores (+ one layer's attention and states on request).

    Args:
        model: the ranker (``num_labels = 1``); frozen and put in eval mode here.
        tokenizer: its tokenizer.
        recipe: its :class:`RankerRecipe`.
        layer: the layer whose attention / states are recorded (-1: the last).
        record_attention / record_hidden: what :meth:`__call__` returns besides the scores.
        batch_size: run at most this many pairs at once (None: all).
        dtype: autocast type on a GPU (``auto``, ``fp32``, ``fp16``, ``bf16``).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        recipe: RankerRecipe,
        layer: int = -1,
        record_attention: bool = False,
        record_hidden: bool = False,
        batch_size: int | None = None,
        dtype: str = "auto",
    ) -> None:
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.tokenizer = tokenizer
        self.recipe = recipe
        self.batch_size = batch_size
        self.dtype = dtype
        self.record_attention = record_attention
        self.record_hidden = record_hidden
        base = model.base_model
        depth = base.config.num_hidden_layers
        if not -depth <= layer < depth:
            raise ValueError(f"teacher layer {layer} does not exist ({depth} layers)")
        self.layer = layer % depth
        self._captured: dict[str, torch.Tensor] = {}
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._attention_via_outputs = False
        if record_hidden:
            if self.layer == depth - 1:
                self._hooks.append(base.register_forward_hook(self._capture("hidden")))
            else:
                self._hooks.append(
                    transformer_layers(base)[self.layer].register_forward_hook(self._capture("hidden"))
                )
        if record_attention:
            self._setup_attention(model)

    # -- recording ------------------------------------------------------------------------------
    def _capture(self, key: str, index: int = 0) -> Callable:
        def hook(module: nn.Module, args, output) -> None:
            value = (
                output[index]
                if isinstance(output, (tuple, list))
                else getattr(output, "last_hidden_state", output)
            )
            self._captured[key] = value

        return hook

    def _setup_attention(self, model: PreTrainedModel) -> None:
        cls = _attention_module_class(model)
        modules = [m for m in model.modules() if cls is not None and isinstance(m, cls)]
        if len(modules) != model.base_model.config.num_hidden_layers:
            self._attention_via_outputs = True  # e.g. DeBERTa-v2: eager everywhere, output_attentions
            return
        module = modules[self.layer]
        if getattr(module, "config", None) is not None and module.config._attn_implementation != "eager":
            eager = copy.copy(module.config)
            eager._attn_implementation = "eager"
            module.config = eager
            self._hooks.append(module.register_forward_pre_hook(_additive_mask_pre_hook, with_kwargs=True))
        self._hooks.append(module.register_forward_hook(self._capture("attention", index=1)))

    def remove_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    # -- running --------------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> CrossEncoderTeacher:
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def parameters(self):
        return self.model.parameters()

    @torch.no_grad()
    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> TeacherOutput:
        """Scores (and the recorded layer's attention / states) of ``N`` tokenised pairs."""
        self.model.eval()
        device = self.device
        cast = autocast_dtype(device, self.dtype)
        size = self.batch_size or input_ids.shape[0]
        scores, attentions, hiddens = [], [], []
        for start in range(0, input_ids.shape[0], size):
            chunk = {
                "input_ids": input_ids[start : start + size].to(device),
                "attention_mask": attention_mask[start : start + size].to(device),
            }
            if token_type_ids is not None:
                chunk["token_type_ids"] = token_type_ids[start : start + size].to(device)
            self._captured.clear()
            with torch.autocast(device.type, dtype=cast, enabled=cast is not None):
                output = self.model(
                    **chunk, output_attentions=self.record_attention and self._attention_via_outputs
                )
            scores.append(output.logits.float().reshape(-1))
            if self.record_attention:
                probs = (
                    output.attentions[self.layer]
                    if self._attention_via_outputs
                    else self._captured.get("attention")
                )
                if probs is None:
                    raise RuntimeError(
                        "the teacher returned no attention probabilities for the recorded layer"
                    )
                attentions.append(probs.float().mean(dim=1))
            if self.record_hidden:
                hiddens.append(self._captured["hidden"].float())
        return TeacherOutput(
            scores=torch.cat(scores),
            attention=torch.cat(attentions) if attentions else None,
            hidden=torch.cat(hiddens) if hiddens else None,
        )
