"""MAE-LM (Meng et al., 2023): the encoder never sees [MASK]; a shallow decoder restores the masked tokens.

Section 4 of the paper, as described in docs/methods.md#mae-lm: masked tokens are removed from the encoder input,
which runs on a compacted, shorter tensor whose tokens keep their original position ids. The decoder
puts the encoder outputs back at their positions, fills the masked slots with the [MASK] word
embedding, adds its own learned position embeddings and LayerNorm, runs a few bidirectional layers
and predicts the masked tokens through the head tied to the encoder's word embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from ...modeling.backbone import masked_lm_loss, position_offset
from ...modeling.base import MaskedAutoEncoderPreTrainedModel
from .configuration_mae_lm import MAELMConfig


@dataclass
class MAELMOutput(ModelOutput):
    """Output of :class:`MAELMForMaskedLM`.

    Args:
        loss: the training loss (= ``decoder_mlm_loss``; MAE-LM has no encoder-side loss).
        decoder_mlm_loss: cross-entropy at the masked positions, averaged over masked tokens.
        logits: vocabulary logits at the masked positions only, ``[num_masked, vocab]``.
        encoder_last_hidden_state: encoder output on the compacted input ``[B, K, H]``.
        decoder_last_hidden_state: decoder output at full length ``[B, L, H]``.
    """

    loss: torch.FloatTensor | None = None
    decoder_mlm_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    decoder_last_hidden_state: torch.FloatTensor | None = None


def scatter_to_full_length(
    values: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, fill: torch.Tensor, length: int
) -> torch.Tensor:
    """Place ``values [B, K, H]`` at ``positions [B, K]`` of a ``[B, length, H]`` tensor filled with ``fill [H]``.

    Slots with ``valid == 0`` (the compacted tensor's padding) are dropped.
    """
    batch, _, hidden = values.shape
    out = fill.to(values.dtype).expand(batch, length + 1, hidden).clone()
    index = positions.masked_fill(~valid.bool(), length).unsqueeze(-1).expand(-1, -1, hidden)
    return out.scatter(1, index, values)[:, :length]


class MAELMForMaskedLM(MaskedAutoEncoderPreTrainedModel):
    """MAE-LM pre-training model: backbone encoder + shallow decoder with its own position embeddings.

    Inputs come from :class:`maeir.data.MAELMCollator`.
    """

    config_class = MAELMConfig

    def __init__(self, config: MAELMConfig) -> None:
        super().__init__(config)
        encoder_config = config.encoder_config
        self.decoder_position_embeddings = nn.Embedding(
            config.decoder_max_positions, encoder_config.hidden_size
        )
        self.decoder_embedding_norm = nn.LayerNorm(
            encoder_config.hidden_size, eps=encoder_config.layer_norm_eps
        )
        self.decoder = self.build_decoder(config.decoder_layers, config.decoder_dropout)
        self.post_init()

    def forward(
        self,
        encoder_input_ids: torch.LongTensor,
        encoder_position_ids: torch.LongTensor,
        encoder_attention_mask: torch.LongTensor,
        attention_mask: torch.LongTensor,
        labels: torch.LongTensor | None = None,
    ) -> MAELMOutput:
        """Encode the kept tokens, decode at full length, score the masked slots.

        Args:
            encoder_input_ids: kept (unmasked) token ids, left-packed, ``[B, K]``.
            encoder_position_ids: their original 0-based positions, ``[B, K]`` (shifted by
                :func:`~maeir.modeling.backbone.position_offset` for the encoder: RoBERTa's start after padding).
            encoder_attention_mask: 1 for kept tokens, 0 for the compacted tensor's padding, ``[B, K]``.
            attention_mask: 1 for real tokens of the full sequence, ``[B, L]``.
            labels: original ids at masked positions, -100 elsewhere, ``[B, L]``.
        """
        kept_positions = encoder_position_ids  # 0-based slots of the full-length sequence
        encoder_position_ids = kept_positions + position_offset(self.config.encoder_config)  # RoBERTa: +pad+1
        encoded = self.encode_tokens(
            encoder_input_ids, encoder_attention_mask, position_ids=encoder_position_ids
        )
        length = attention_mask.shape[1]
        mask_embedding = self.get_input_embeddings().weight[self.config.mask_token_id]
        hidden = scatter_to_full_length(
            encoded, kept_positions, encoder_attention_mask, mask_embedding, length
        )
        positions = torch.arange(length, device=hidden.device).unsqueeze(0)
        hidden = self.decoder_embedding_norm(hidden + self.decoder_position_embeddings(positions))
        decoded = self.run_decoder(self.decoder, hidden, attention_mask)
        loss = logits = None
        if labels is not None:
            loss, logits = masked_lm_loss(self.lm_head, decoded, labels)
        return MAELMOutput(
            loss=loss,
            decoder_mlm_loss=None if loss is None else loss.detach(),
            logits=logits,
            encoder_last_hidden_state=encoded,
            decoder_last_hidden_state=decoded,
        )
