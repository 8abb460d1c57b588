"""The text-encoder study task (MAE-LM): effective rank and held-out MLM loss, then sentence-task fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from ....analysis.effective_rank import layerwise_effective_rank
from ....config_file import deep_merge
from ....methods import METHODS
from ..common import corpus_texts, encoder_folder
from ..drivers import run_driver


class TextEncoderTask:
    """MAE-LM studies (pre-training from scratch): what pre-training did to the representations, and
    fine-tuning on sentence tasks.

    Probe (no fine-tuning): the effective rank of real-token representations per encoder layer
    (MAE-LM paper, Section 3; :mod:`maeir.analysis.effective_rank`) and the masked-LM loss on held-out
    text, both with fixed masks. ``evaluation`` fields: ``heldout_corpora`` (corpus names/paths, see
    :func:`corpus_texts`), ``heldout_texts`` (how many), ``max_length``, ``mask_rate``,
    ``rank_vectors``. Fine-tuning: ``finetune.tasks`` maps a name to the classification driver's fields
    (e.g. ``{}`` for the embedded tweets, or a GLUE task by path); each is its own stage
    ``finetune:<name>``, scored per example (accuracy) for the paired bootstrap.
    """

    def __init__(self, evaluation: dict[str, Any], finetune: dict[str, Any]) -> None:
        self.evaluation = evaluation
        self.finetune_fields = finetune
        texts = corpus_texts(evaluation.get("heldout_corpora", ["chitchat_valid"]))
        self.texts = texts[: int(evaluation.get("heldout_texts", 512))]
        self.max_length = int(evaluation.get("max_length", 128))
        self.mask_rate = float(evaluation.get("mask_rate", 0.15))
        self.rank_vectors = int(evaluation.get("rank_vectors", 4000))
        self.batch_size = int(evaluation.get("batch_size", 32))

    def describe(self) -> dict[str, Any]:
        return {"heldout_texts": len(self.texts)}

    def load(self, model_path: str):
        """The full pre-training model (decoder included) and its tokenizer."""

        model = AutoModelForMaskedLM.from_pretrained(model_path, local_files_only=True, use_safetensors=True)
        return model, AutoTokenizer.from_pretrained(encoder_folder(model_path), local_files_only=True)

    @torch.inference_mode()
    def heldout_loss(self, model, tokenizer) -> float:
        """Masked-LM loss on the held-out texts (the model's own loss: MLM head or MAE-LM decoder), fixed masks."""

        collator_class = next(m.collator_class for m in METHODS.values() if isinstance(model, m.model_class))
        collator = collator_class.from_model_config(tokenizer, model.config, seed=1234)
        ids = [tokenizer(t, truncation=True, max_length=self.max_length)["input_ids"] for t in self.texts]
        total = count = 0.0
        for start in range(0, len(ids), self.batch_size):
            batch = collator([{"input_ids": x} for x in ids[start : start + self.batch_size]])
            masked = int((batch["labels"] != -100).sum())
            total += float(model(**batch).loss) * masked
            count += masked
        return total / max(count, 1.0)

    def probe(self, model, tokenizer):
        was_training = model.training
        model.eval()
        try:
            rows = layerwise_effective_rank(model, tokenizer, self.texts, "model", mask_rate=self.mask_rate,
                                            max_length=self.max_length, max_vectors=self.rank_vectors)  # fmt: skip
            ranks = [r["effective_rank"] for r in rows if r["stack"] == "encoder" and r["tokens"] == "real"]
            metrics = {"heldout_mlm_loss": self.heldout_loss(model, tokenizer), "erank_last": ranks[-1]}
            metrics["erank_mean"] = float(np.mean(ranks[1:]))
        finally:
            model.train(was_training)
        return metrics, {}, {"effective_rank_per_layer": ranks}

    def finetune_stages(self) -> list[str]:
        return [f"finetune:{name}" for name in self.finetune_fields.get("tasks", {})]

    def finetune_and_evaluate(self, model_path: str, output_dir: Path, seed: int, stage: str):
        name = stage.split(":", 1)[1]
        fields = deep_merge(self.finetune_fields.get("args", {}), self.finetune_fields["tasks"][name] or {})
        fields.update(model_name_or_path=encoder_folder(model_path), output_dir=str(output_dir), seed=seed,
                      per_example_scores=True, save_strategy="no")  # fmt: skip
        results = run_driver("classification", fields)
        split = "test" if "test_per_example" in results else "eval"
        scores = results[f"{split}_per_example"]
        metrics = {k.removeprefix(f"{split}_"): v for k, v in results[split].items()
                   if isinstance(v, (int, float)) and not k.endswith(("runtime", "per_second", "loss"))}  # fmt: skip
        metrics["split"] = split
        per_unit = {"accuracy": {str(i): s for i, s in enumerate(scores)}} if "accuracy" in metrics else {}
        return metrics, per_unit
