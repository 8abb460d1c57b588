"""``RankerTrainer``: listwise CE training of a cross-encoder ranker over candidate groups (docs/methods.md#md2pr).

A thin subclass of :class:`maeir.trainers.base.RunFolderTrainer` (atomic checkpoints, per-part logging). It
overrides

* ``compute_loss``: one logit per (query, passage) pair, reshaped to ``[B, G]`` groups (positive
  first), :func:`maeir.losses.listwise_cross_entropy` with padding slots masked; logs ``ranker_loss``
  and ``group_accuracy`` (share of groups whose positive scores highest);
* ``write_run_files``: the recipe in ``maeir_run.json`` beside the checkpoint and the ranker card (the weights,
  config with the recipe, and tokenizer are ``Trainer``'s own ``save_pretrained`` output).

Groups are local to a process, so DDP's gradient average is exactly the global mean.

Public API: :class:`RankerTrainer`.
"""

from __future__ import annotations

from ..losses.listwise_ce import listwise_cross_entropy
from ..retrieval.modeling_cross_encoder import RECIPE_KEY
from .base import RunFolderTrainer

MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class RankerTrainer(RunFolderTrainer):
    """``Trainer`` for ``AutoModelForSequenceClassification(num_labels=1)`` rankers on group batches.

    Args:
        temperature: logits are divided by this in the listwise softmax (1.0: plain CE).
        run_info: what the model card says about the run.
        (all other arguments: ``transformers.Trainer``)
    """

    def __init__(self, *args, temperature: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.args.remove_unused_columns = False  # the collator reads the raw text columns

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        valid = inputs["group_valid"]
        outputs = model(**{k: v for k, v in inputs.items() if k in MODEL_KEYS})
        scores = outputs.logits.float().view(valid.shape)
        loss = listwise_cross_entropy(scores, valid, temperature=self.temperature)
        if model.training:
            masked = scores.detach().masked_fill(~valid.bool(), float("-inf"))
            self.track_loss_parts(
                {"ranker_loss": loss, "group_accuracy": (masked.argmax(dim=1) == 0).float().mean()}
            )
        return (loss, {"scores": scores}) if return_outputs else loss

    card_kind = "reranker"

    def write_run_files(self, folder: str) -> dict:
        """The recipe for ``maeir_run.json`` (weights, config and tokenizer are ``Trainer``'s own save)."""
        return {"recipe": getattr(self.accelerator.unwrap_model(self.model).config, RECIPE_KEY, None)}
