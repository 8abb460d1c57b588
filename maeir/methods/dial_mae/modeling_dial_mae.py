"""Dial-MAE (Su et al., 2023/2024): asymmetric context encoder / response decoder post-training.

Paper §3, as described in docs/methods.md#dial-mae: the deep encoder (the backbone) reads the masked dialogue
context and yields its final-layer [CLS] state, the dialogue embedding. The shallow decoder (1
layer by default, the backbone's own layer type) reads the heavily masked response, embedded with
the backbone's own embedding module (word + position + LayerNorm), whose position 0 ([CLS]) is
replaced by that dialogue embedding, with bidirectional attention and a padding mask. Both sides
predict their masked tokens through the backbone's tied MLM head, evaluated at masked positions
only; the training loss is their sum (decoder weighted by ``decoder_loss_weight``). The decoder can
only use the context through position 0, so its loss trains the [CLS] vector that the
response-selection bi-encoder later scores with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from ...modeling.backbone import embedding_module, masked_lm_loss, takes_token_types
from ...modeling.base import MaskedAutoEncoderPreTrainedModel
from .configuration_dial_mae import DialMAEConfig


@dataclass
class DialMAEOutput(ModelOutput):
    """Output of :class:`DialMAEForPretraining`.

    Args:
        loss: ``encoder_mlm_loss + decoder_loss_weight * decoder_mlm_loss``.
        encoder_mlm_loss: context MLM cross-entropy (detached, for logging).
        decoder_mlm_loss: response MLM cross-entropy of the decoder (detached, for logging).
        logits: encoder vocabulary logits at the context's masked positions, ``[num_masked, vocab]``.
        decoder_logits: decoder vocabulary logits at the response's masked positions.
        encoder_last_hidden_state: encoder output ``[B, Lc, H]``; ``[:, 0]`` is the dialogue embedding.
        decoder_last_hidden_state: decoder output ``[B, Lr, H]``.
    """

    loss: torch.FloatTensor | None = None
    encoder_mlm_loss: torch.FloatTensor | None = None
    decoder_mlm_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    decoder_logits: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    decoder_last_hidden_state: torch.FloatTensor | None = None


class DialMAEForPretraining(MaskedAutoEncoderPreTrainedModel):
    """Dial-MAE post-training model: backbone encoder on the context + shallow decoder on the response.

    Inputs come from :class:`maeir.data.DialMAECollator`. ``save_encoder`` exports the backbone (the
    context encoder) as a plain checkpoint; the decoder is dropped, as for fine-tuning in the paper.
    """

    config_class = DialMAEConfig

    def __init__(self, config: DialMAEConfig) -> None:
        super().__init__(config)
        self.decoder = self.build_decoder(config.decoder_layers, config.decoder_dropout)
        self.post_init()

    @property
    def embeddings(self) -> nn.Module:
        """The backbone's embedding block, shared by encoder and decoder."""
        return embedding_module(self.encoder)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor,
        decoder_input_ids: torch.LongTensor,
        decoder_attention_mask: torch.LongTensor,
        labels: torch.LongTensor | None = None,
        decoder_labels: torch.LongTensor | None = None,
    ) -> DialMAEOutput:
        """Encode the context, decode the response from the dialogue embedding, score both sides.

        Args:
            input_ids: corrupted context ``[CLS] u1 [SEP] ... un [SEP]``, ``[B, Lc]``.
            attention_mask: 1 for real context tokens, ``[B, Lc]``.
            decoder_input_ids: corrupted response ``[CLS] r [SEP]``, ``[B, Lr]``.
            decoder_attention_mask: 1 for real response tokens, ``[B, Lr]``.
            labels: original context ids at its masked positions, -100 elsewhere.
            decoder_labels: original response ids at its masked positions, -100 elsewhere.
        """
        encoded = self.encode_tokens(input_ids, attention_mask)
        dialogue_embedding = encoded[:, :1]  # final-layer [CLS], before any pooler
        embeddings = self.embeddings
        extra = (
            {"token_type_ids": torch.zeros_like(decoder_input_ids)} if takes_token_types(embeddings) else {}
        )
        response = embeddings(input_ids=decoder_input_ids, **extra)
        hidden = torch.cat([dialogue_embedding.to(response.dtype), response[:, 1:]], dim=1)
        decoded = self.run_decoder(self.decoder, hidden, decoder_attention_mask)

        loss = encoder_loss = decoder_loss = logits = decoder_logits = None
        if labels is not None:
            encoder_loss, logits = masked_lm_loss(self.lm_head, encoded, labels)
            loss = encoder_loss
        if decoder_labels is not None:
            decoder_loss, decoder_logits = masked_lm_loss(self.lm_head, decoded, decoder_labels)
            weighted = self.config.decoder_loss_weight * decoder_loss
            loss = weighted if loss is None else loss + weighted
        return DialMAEOutput(
            loss=loss,
            encoder_mlm_loss=None if encoder_loss is None else encoder_loss.detach(),
            decoder_mlm_loss=None if decoder_loss is None else decoder_loss.detach(),
            logits=logits,
            decoder_logits=decoder_logits,
            encoder_last_hidden_state=encoded,
            decoder_last_hidden_state=decoded,
        )
