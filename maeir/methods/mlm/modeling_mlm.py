"""Plain masked-LM continued pre-training (BERT, Section 3.1), the baseline of every MAE method.

The same backbone, collator machinery and trainer as the MAE methods; the loss is computed with the
masked-only head (gather, then head), which gives exactly the loss of a full-vocabulary
``BertForMaskedLM`` at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from ...modeling.backbone import masked_lm_loss
from ...modeling.base import MaskedAutoEncoderPreTrainedModel
from .configuration_mlm import MaskedLMConfig


@dataclass
class MaskedLMPretrainingOutput(ModelOutput):
    """Output of :class:`MaskedLMForPretraining`.

    Args:
        loss: the training loss (= ``encoder_mlm_loss``).
        encoder_mlm_loss: cross-entropy at the masked positions.
        logits: vocabulary logits at the masked positions only, ``[num_masked, vocab]``.
        last_hidden_state: the encoder's output ``[B, L, H]``.
    """

    loss: torch.FloatTensor | None = None
    encoder_mlm_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None


class MaskedLMForPretraining(MaskedAutoEncoderPreTrainedModel):
    """BERT-style MLM on the backbone; inputs come from :class:`maeir.data.MLMCollator`."""

    config_class = MaskedLMConfig

    def __init__(self, config: MaskedLMConfig) -> None:
        super().__init__(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor,
        labels: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
    ) -> MaskedLMPretrainingOutput:
        hidden = self.encode_tokens(input_ids, attention_mask, token_type_ids=token_type_ids)
        loss = logits = None
        if labels is not None:
            loss, logits = masked_lm_loss(self.lm_head, hidden, labels)
        return MaskedLMPretrainingOutput(
            loss=loss,
            encoder_mlm_loss=None if loss is None else loss.detach(),
            logits=logits,
            last_hidden_state=hidden,
        )
