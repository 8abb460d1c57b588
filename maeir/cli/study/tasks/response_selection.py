"""The response-selection study task (Dial-MAE): R_n@k / MRR on candidate groups, units = conversations."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ....data.dialogue import context_text, read_response_selection
from ....datasets.embedded.chitchat import chitchat_split_groups, embedded_chitchat
from ....metrics.response_selection import group_metrics
from ....retrieval.loading import load_bi_encoder
from ....retrieval.response_selection import score_groups
from ..common import encoder_of, load_encoder
from ..drivers import run_driver


class ResponseSelectionTask:
    """Dial-MAE studies: R_n@k / MRR on candidate groups, units = conversations.

    ``evaluation`` fields: ``test_file`` (Ubuntu format; default: the embedded chitchat ``split``
    (``test``, or ``valid`` for pilots) conversations with ``cuts_per_conversation`` cut points each), ``max_groups``,
    ``context_max_length``, ``response_max_length``, ``batch_size``, ``metrics`` (default
    R@1, R@2, R@5, MRR). The probe scores contexts against candidates with the post-trained encoder's
    final [CLS] vectors (one tower, dot product): no fine-tuning.
    """

    default_metrics = ("R@1", "R@2", "R@5", "MRR")

    def __init__(self, evaluation: dict[str, Any], finetune: dict[str, Any]) -> None:
        self.evaluation = evaluation
        self.finetune_fields = finetune
        self.metrics = tuple(evaluation.get("metrics", self.default_metrics))
        if evaluation.get("test_file"):
            groups = read_response_selection(evaluation["test_file"], group_size=evaluation.get("group_size"))
            self.unit_of = {g.context_id: g.context_id for g in groups}
        else:
            split = evaluation.get("split", "test")
            groups = chitchat_split_groups(split, int(evaluation.get("cuts_per_conversation", 3)))
            self.unit_of = {g.context_id: g.context_id.split("-")[0] for g in groups}
        if evaluation.get("max_groups"):
            groups = groups[: int(evaluation["max_groups"])]
        self.groups = groups
        self.context_max_length = int(evaluation.get("context_max_length", 64))
        self.response_max_length = int(evaluation.get("response_max_length", 32))
        self.batch_size = int(evaluation.get("batch_size", 128))
        self._tokenizer = None

    def describe(self) -> dict[str, Any]:
        return {
            "test_groups": len(self.groups),
            "units": len({self.unit_of[g.context_id] for g in self.groups}),
        }

    def _per_unit(self, scores: list[np.ndarray]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        per_group = [group_metrics(s, g.labels) for s, g in zip(scores, self.groups)]
        metrics = {m: float(np.mean([p[m] for p in per_group if p is not None])) for m in self.metrics}
        units: dict[str, dict[str, list[float]]] = {m: {} for m in self.metrics}
        for group, values in zip(self.groups, per_group):
            if values is None:
                continue
            for m in self.metrics:
                units[m].setdefault(self.unit_of[group.context_id], []).append(values[m])
        per_unit = {m: {u: float(np.mean(v)) for u, v in by.items()} for m, by in units.items()}
        return metrics, per_unit

    @torch.inference_mode()
    def _cls(self, encoder, tokenizer, texts: list[str], side: str) -> torch.Tensor:
        max_length = self.context_max_length if side == "context" else self.response_max_length
        side_before = tokenizer.truncation_side
        tokenizer.truncation_side = "left" if side == "context" else "right"
        device = next(encoder.parameters()).device
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = torch.empty(len(texts), encoder.config.hidden_size)
        try:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = tokenizer([texts[i] for i in rows], truncation=True, max_length=max_length,
                                  padding=True, return_tensors="pt").to(device)  # fmt: skip
                out[rows] = encoder(**batch).last_hidden_state[:, 0].float().cpu()
        finally:
            tokenizer.truncation_side = side_before
        return out

    def probe_scores(self, encoder, tokenizer) -> list[np.ndarray]:
        """Zero-shot scores of every group: [CLS](context) · [CLS](candidate), one encoder."""

        was_training = encoder.training
        encoder.eval()
        try:
            contexts = self._cls(
                encoder, tokenizer, [context_text(g.turns, tokenizer) for g in self.groups], "context"
            )
            index: dict[str, int] = {}
            for group in self.groups:
                for candidate in group.candidates:
                    index.setdefault(candidate, len(index))
            candidates = self._cls(encoder, tokenizer, list(index), "response")
            return [
                (candidates[[index[c] for c in g.candidates]] @ contexts[i]).numpy().astype(np.float64)
                for i, g in enumerate(self.groups)
            ]
        finally:
            encoder.train(was_training)

    def load(self, model_path: str):
        """The encoder whose [CLS] vectors the probe scores, and its tokenizer."""
        return load_encoder(model_path)

    def probe(self, model, tokenizer):
        """Zero-shot metrics and per-conversation scores of ``model`` (an encoder or a pre-training model)."""
        return (*self._per_unit(self.probe_scores(encoder_of(model), tokenizer)), {})

    def finetune_stages(self) -> list[str]:
        return ["finetune"] if self.finetune_fields else []

    def finetune_and_evaluate(self, model_path: str, output_dir: Path, seed: int, stage: str = "finetune"):
        """Fine-tune the response-selection bi-encoder from ``model_path``; score the test groups."""

        fields = dict(self.finetune_fields)
        if not fields.get("train_file"):
            fields["train_file"] = str(embedded_chitchat().train)
        fields.update(model_name_or_path=model_path, output_dir=str(output_dir), seed=seed)
        run_driver("finetune_response_selection", fields)
        gc.collect()
        model, tokenizer = load_bi_encoder(str(output_dir))
        scores = score_groups(model, tokenizer, self.groups, self.batch_size)
        return self._per_unit(scores)
