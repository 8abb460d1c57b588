"""The MD2PR student: the retrieval stack's dense dual encoder, plus the token states word-level distillation needs.

:class:`MD2PRStudentModel` *is* a :class:`~maeir.retrieval.modeling_bi_encoder.BiEncoderModel` (same config,
same weights, same encoding, same ``save_pretrained`` output): it only adds

- ``forward(..., output_token_states=True)``: the final-layer token states of each tower (read with a
  forward hook on the tower's base model while :meth:`BiEncoderModel.encode` runs, so pooling,
  normalisation and the sparse view stay exactly the bi-encoder's), going through the (DDP-wrapped)
  model's own ``forward``;
- an optional ``hidden_projection`` (``nn.Linear(student width, teacher width)``) for hidden-state
  alignment with a teacher of another width (docs/methods.md#md2pr, word level (b)). It is a training-only
  part: ``save_pretrained`` writes a plain ``BiEncoderModel`` checkpoint (``architectures`` included)
  and puts the projection in ``md2pr_projection.safetensors`` beside it (read back on resume).

Public API: :class:`MD2PRStudentModel`, :class:`MD2PRStudentOutput`, :data:`PROJECTION_FILE`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ...io_utils import atomic_write_json
from ...retrieval.modeling_bi_encoder import BiEncoderModel, BiEncoderOutput, Representation

PROJECTION_FILE = "md2pr_projection.safetensors"
_PROJECTION_PREFIX = "hidden_projection."


@dataclass
class MD2PRStudentOutput(BiEncoderOutput):
    """:class:`BiEncoderOutput` plus token states.

    Args:
        query_token_states / passage_token_states: final-layer token states ``[B, L, H]`` of each tower.
        query_token_states_projected / passage_token_states_projected: the same through
            ``hidden_projection`` (the states themselves when there is none).
    """

    query_token_states: torch.FloatTensor | None = None
    passage_token_states: torch.FloatTensor | None = None
    query_token_states_projected: torch.FloatTensor | None = None
    passage_token_states_projected: torch.FloatTensor | None = None


class MD2PRStudentModel(BiEncoderModel):
    """A :class:`BiEncoderModel` that can return token states (see the module docstring)."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.hidden_projection: nn.Linear | None = None

    @classmethod
    def from_bi_encoder(cls, model: BiEncoderModel) -> MD2PRStudentModel:
        """The same weights and recipe as ``model`` (a copy)."""
        student = cls(model.config)
        missing, unexpected = student.load_state_dict(model.state_dict(), strict=False)
        if unexpected or [k for k in missing if not k.startswith(_PROJECTION_PREFIX)]:
            raise RuntimeError(f"bi-encoder weights do not fit: missing {missing}, unexpected {unexpected}")
        student.train(model.training)
        return student.to(next(model.parameters()).device)

    @property
    def hidden_size(self) -> int:
        return self.config.encoder_config.hidden_size

    def add_hidden_projection(self, width: int) -> nn.Linear:
        """Create ``hidden_projection`` (student width -> ``width``), initialised like the backbone's layers."""
        projection = nn.Linear(self.hidden_size, width)
        std = getattr(self.config.encoder_config, "initializer_range", 0.02)
        nn.init.normal_(projection.weight, mean=0.0, std=std)
        nn.init.zeros_(projection.bias)
        self.hidden_projection = projection.to(next(self.parameters()).device)
        return self.hidden_projection

    def project(self, states: torch.Tensor) -> torch.Tensor:
        return states if self.hidden_projection is None else self.hidden_projection(states)

    # -- encoding with token states ---------------------------------------------------------------
    def encode_with_token_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, side: str = "query", **kwargs
    ) -> tuple[Representation, torch.Tensor]:
        """``(representation, final-layer token states [B, L, H])`` of one side."""
        captured: list[torch.Tensor] = []

        def hook(module, args, output) -> None:
            captured.append(output[0] if isinstance(output, (tuple, list)) else output.last_hidden_state)

        handle = self.tower(side).base_model.register_forward_hook(hook)
        try:
            representation = self.encode(input_ids, attention_mask, side, **kwargs)
        finally:
            handle.remove()
        if len(captured) != 1:
            raise RuntimeError(f"expected one pass through the {side} tower, saw {len(captured)}")
        return representation, captured[0]

    def forward(
        self,
        query_input_ids: torch.Tensor | None = None,
        query_attention_mask: torch.Tensor | None = None,
        passage_input_ids: torch.Tensor | None = None,
        passage_attention_mask: torch.Tensor | None = None,
        passage_mask: torch.Tensor | None = None,
        query_token_type_ids: torch.Tensor | None = None,
        passage_token_type_ids: torch.Tensor | None = None,
        return_loss: bool = True,
        output_token_states: bool = False,
    ) -> MD2PRStudentOutput:
        """:meth:`BiEncoderModel.forward`, plus token states with ``output_token_states``."""
        if not output_token_states:
            base = super().forward(
                query_input_ids, query_attention_mask, passage_input_ids, passage_attention_mask, passage_mask,
                query_token_type_ids, passage_token_type_ids, return_loss,
            )  # fmt: skip
            return MD2PRStudentOutput(**dict(base.items()))
        reps: dict[str, Representation] = {}
        states: dict[str, torch.Tensor] = {}
        for side, ids, mask, types in (
            ("query", query_input_ids, query_attention_mask, query_token_type_ids),
            ("passage", passage_input_ids, passage_attention_mask, passage_token_type_ids),
        ):
            if ids is not None:
                kwargs = {"token_type_ids": types} if types is not None else {}
                reps[side], states[side] = self.encode_with_token_states(ids, mask, side, **kwargs)
        output = MD2PRStudentOutput(
            query_dense=reps.get("query", {}).get("dense"),
            query_sparse=reps.get("query", {}).get("sparse"),
            passage_dense=reps.get("passage", {}).get("dense"),
            passage_sparse=reps.get("passage", {}).get("sparse"),
            query_token_states=states.get("query"),
            passage_token_states=states.get("passage"),
            query_token_states_projected=None if "query" not in states else self.project(states["query"]),
            passage_token_states_projected=None
            if "passage" not in states
            else self.project(states["passage"]),
        )
        return self.add_scores(output, reps.get("query"), reps.get("passage"), passage_mask, return_loss)

    # -- saving: a plain bi-encoder, the projection beside it -----------------------------------
    def save_pretrained(self, save_directory, *args, state_dict: dict | None = None, **kwargs) -> None:  # noqa: D102
        if state_dict is None:
            state_dict = self.state_dict()
        projection = {
            k[len(_PROJECTION_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(_PROJECTION_PREFIX)
        }
        student = {k: v for k, v in state_dict.items() if not k.startswith(_PROJECTION_PREFIX)}
        super().save_pretrained(save_directory, *args, state_dict=student, **kwargs)
        if not kwargs.get("is_main_process", True):
            return
        folder = Path(save_directory)
        config_path = folder / "config.json"
        if config_path.is_file():  # a plain BiEncoderModel checkpoint, whatever class trained it
            config = json.loads(config_path.read_text(encoding="utf-8"))
            config["architectures"] = [BiEncoderModel.__name__]
            atomic_write_json(config_path, config)
        if projection:
            tmp = folder / f".{PROJECTION_FILE}.tmp"
            save_file({k: v.detach().contiguous().cpu() for k, v in projection.items()}, str(tmp))
            os.replace(tmp, folder / PROJECTION_FILE)

    def load_hidden_projection(self, folder: str | os.PathLike) -> bool:
        """Load ``md2pr_projection.safetensors`` from ``folder`` into the projection; False when absent."""
        path = Path(folder) / PROJECTION_FILE
        if self.hidden_projection is None or not path.is_file():
            return False

        self.hidden_projection.load_state_dict(load_file(str(path)))
        return True
