"""CoT-MAE v2 (Wu et al., 2023): contextual masked auto-encoding with multi-view representation and decoding.

Paper §3, as described in docs/methods.md#cot-mae-v2. The backbone encoder reads a masked anchor span (MLM loss
at its masked positions through the tied head). Two views of the anchor come out of that single
encoder pass:

- **dense**: the final-layer [CLS] state (before any pooler);
- **sparse**: ``w_j = max_i log(1 + relu(mlm_logits_ij))`` over the anchor's real positions (special
  tokens and padding excluded), top ``sparse_top_k`` entries kept
  (:func:`maeir.modeling.sparse_pooling.splade_top_k`, which never keeps ``[B, L, V]`` logits), then
  projected to the hidden size: ``LayerNorm(sum_j w_j E_j)`` with the word embeddings ``E``.

Each view then drives two shallow decoders (the backbone's own layer type, randomly initialised,
reading the backbone's embedding module and predicting through its tied head) on a context span
from the same document, the view vector replacing the context's [CLS] embedding at position 0 (as
in the authors' CoT-MAE code; no extra position embedding):

- **AE-Dec**: the context masked at ``decoder_mask_rate``, bidirectional attention + padding mask,
  MLM loss at its masked positions;
- **AR-Dec**: the context unmasked, causal + padding mask, position ``i`` predicts token ``i + 1``
  (the view slot predicts the first real token), cross-entropy over the real tokens.

The two views go through each decoder as one batch of ``2N`` rows. ``L = L_enc + mean_views(L_ae)
+ mean_views(L_ar)``; every part is returned (detached) per view for logging.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoTokenizer
from transformers.utils import ModelOutput

from ...modeling.backbone import (
    checkpoint_weight_names,
    embedding_module,
    masked_lm_loss,
    resolve_backbone_path,
    takes_token_types,
)
from ...modeling.base import MaskedAutoEncoderPreTrainedModel
from ...modeling.decoder import ShallowDecoder
from ...modeling.sparse_pooling import head_transform, sparse_embedding_bag, splade_top_k, split_mlm_head
from ...retrieval.pooling import init_lexical_mlm_head, splade_pool
from .configuration_cotmae_v2 import CoTMAEv2Config

logger = logging.getLogger(__name__)


@dataclass
class CoTMAEv2Output(ModelOutput):
    """Output of :class:`CoTMAEv2ForPretraining`.

    Args:
        loss: ``w_enc * L_enc + w_ae * mean_views(L_ae) + w_ar * mean_views(L_ar)``.
        encoder_mlm_loss: anchor MLM cross-entropy (detached).
        ae_loss / ar_loss: each decoder's loss averaged over the views (detached).
        ae_dense_loss / ae_sparse_loss / ar_dense_loss / ar_sparse_loss: per decoder and view (detached).
        logits: encoder vocabulary logits at the anchor's masked positions, ``[num_masked, V]``.
        dense_view: ``[N, H]`` final-layer [CLS] states.
        sparse_values / sparse_indices: ``[N, k]`` top-k sparse weights and their vocabulary ids
            (all ``V`` entries, indices ``0..V-1``, when ``sparse_top_k`` is 0/None).
        sparse_view: ``[N, H]`` projected sparse vector (the sparse view's decoder input).
        encoder_last_hidden_state: ``[N, La, H]``.
    """

    loss: torch.FloatTensor | None = None
    encoder_mlm_loss: torch.FloatTensor | None = None
    ae_loss: torch.FloatTensor | None = None
    ar_loss: torch.FloatTensor | None = None
    ae_dense_loss: torch.FloatTensor | None = None
    ae_sparse_loss: torch.FloatTensor | None = None
    ar_dense_loss: torch.FloatTensor | None = None
    ar_sparse_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    dense_view: torch.FloatTensor | None = None
    sparse_values: torch.FloatTensor | None = None
    sparse_indices: torch.LongTensor | None = None
    sparse_view: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None


class CoTMAEv2ForPretraining(MaskedAutoEncoderPreTrainedModel):
    """CoT-MAE v2 pre-training model: backbone encoder, sparse projection, AE-Dec and AR-Dec.

    Inputs come from :class:`maeir.data.CoTMAEv2Collator`. ``save_encoder`` exports the backbone with
    its MLM head (the sparse view of the fine-tuned retriever needs it); the decoders are dropped.
    """

    config_class = CoTMAEv2Config

    def __init__(self, config: CoTMAEv2Config) -> None:
        super().__init__(config)
        hidden = config.encoder_config.hidden_size
        eps = getattr(config.encoder_config, "layer_norm_eps", 1e-12)
        self.ae_decoder = (
            self.build_decoder(config.ae_decoder_layers, config.decoder_dropout)
            if config.use_ae_decoder
            else None
        )
        self.ar_decoder = (
            self.build_decoder(config.ar_decoder_layers, config.decoder_dropout)
            if config.use_ar_decoder
            else None
        )
        self.sparse_projection = None
        self.sparse_projection_norm = None
        if "sparse" in config.views:
            if config.sparse_projection == "linear":
                self.sparse_projection = nn.Embedding(config.encoder_config.vocab_size, hidden)
            self.sparse_projection_norm = nn.LayerNorm(hidden, eps=eps)
        self._excluded_cache: dict[torch.device, torch.Tensor] = {}
        self.post_init()

    # -- parts ----------------------------------------------------------------------------------
    @property
    def embeddings(self) -> nn.Module:
        """The backbone's embedding block, shared by the encoder and both decoders."""
        return embedding_module(self.encoder)

    def decoder(self, name: str) -> ShallowDecoder:
        """``"ae"`` or ``"ar"``."""
        module = {"ae": self.ae_decoder, "ar": self.ar_decoder}[name]
        if module is None:
            raise ValueError(f"this model has no {name.upper()}-Dec (use_{name}_decoder=False)")
        return module

    def excluded_token_ids(self, device: torch.device | None = None) -> torch.Tensor:
        """``config.sparse_excluded_token_ids`` as a tensor on ``device`` (cached; never a saved buffer)."""
        device = torch.device(device) if device is not None else self.get_input_embeddings().weight.device
        if device not in self._excluded_cache:
            ids = self.config.sparse_excluded_token_ids or []
            self._excluded_cache[device] = torch.tensor(ids, dtype=torch.long, device=device)
        return self._excluded_cache[device]

    @classmethod
    def from_backbone(
        cls,
        name_or_path,
        *,
        from_scratch: bool = False,
        tokenizer=None,
        **method_fields,
    ) -> CoTMAEv2ForPretraining:
        """As :meth:`MaskedAutoEncoderPreTrainedModel.from_backbone`; also fills ``sparse_excluded_token_ids``
        and starts a head that the checkpoint lacks lexical (``missing_head_bias``; not from scratch,
        where every weight is random)."""
        path = resolve_backbone_path(name_or_path)
        if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(
                resolve_backbone_path(tokenizer or path), local_files_only=True
            )
        if method_fields.get("sparse_excluded_token_ids") is None:
            method_fields["sparse_excluded_token_ids"] = sorted(set(tokenizer.all_special_ids))
        method_fields.setdefault("mask_token_id", tokenizer.mask_token_id)
        model = super().from_backbone(
            name_or_path,
            from_scratch=from_scratch,
            tokenizer=tokenizer,
            **method_fields,
        )
        if from_scratch:
            return model
        names = checkpoint_weight_names(path)
        head_missing = bool(names) and not any("predictions" in n or "lm_head" in n for n in names)
        if head_missing and model.config.missing_head_bias is not None:
            init_lexical_mlm_head(model.backbone, model.config.missing_head_bias)
            logger.warning(
                "%s has no MLM head: it starts lexical (identity transform, output bias %s), not random",
                path,
                model.config.missing_head_bias,
            )
        return model

    # -- the encoder side -----------------------------------------------------------------------
    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final-layer hidden states ``[N, L, H]`` of the backbone encoder."""
        return self.encode_tokens(input_ids, attention_mask, token_type_ids=token_type_ids)

    def pooling_mask(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Positions the sparse view pools: real tokens that are not special (see the config)."""
        valid = attention_mask.bool()
        excluded = self.excluded_token_ids(input_ids.device)
        if excluded.numel():
            special = torch.isin(input_ids, excluded)
            if self.config.sparse_pool_masked_positions and labels is not None:
                special = special & (labels == -100)  # a masked position is a real word
            valid = valid & ~special
        return valid

    def sparse_representation(
        self, hidden: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values [N, k], indices [N, k])`` of the sparse view (all V entries when top-k is off)."""
        head, output = split_mlm_head(self.backbone)
        k = self.config.sparse_top_k
        vocab = output.weight.shape[0]
        if k and k < vocab:
            states = head_transform(head, output, hidden)
            return splade_top_k(
                states,
                output.weight,
                output.bias,
                valid,
                k,
                self.excluded_token_ids(hidden.device),
                chunk_size=self.config.sparse_chunk_size,
            )
        values = splade_pool(
            head,
            hidden,
            valid,
            self.config.sparse_chunk_size,
            self.excluded_token_ids(hidden.device),
            recompute=True,
        )
        indices = torch.arange(vocab, device=values.device).expand(values.shape[0], -1)
        return values, indices

    def project_sparse(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The sparse vector as a decoder input ``[N, H]``: ``LayerNorm(sum_j w_j T_j)``."""
        table = (
            self.get_input_embeddings().weight
            if self.sparse_projection is None
            else self.sparse_projection.weight
        )
        return self.sparse_projection_norm(sparse_embedding_bag(values, indices, table))

    def encode_views(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Encode the anchors: ``{"hidden", "dense", ["sparse_values", "sparse_indices", "sparse"]}``.

        ``dense`` / ``sparse`` are the ``[N, H]`` vectors the decoders read; ``labels`` (the MLM
        labels) tell which [MASK] positions are real words for the pooling mask.
        """
        hidden = self.encode(input_ids, attention_mask, token_type_ids)
        out = {"hidden": hidden}
        if "dense" in self.config.views:
            out["dense"] = hidden[:, 0]
        if "sparse" in self.config.views:
            values, indices = self.sparse_representation(
                hidden, self.pooling_mask(input_ids, attention_mask, labels)
            )
            out["sparse_values"], out["sparse_indices"] = values, indices
            out["sparse"] = self.project_sparse(values, indices).to(hidden.dtype)
        return out

    # -- the decoder side -----------------------------------------------------------------------
    def decode(
        self,
        name: str,
        view_vectors: dict[str, torch.Tensor],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Run decoder ``name`` once per view: ``{view: final hidden states [N, Lc, H]}``.

        The context ``input_ids`` are embedded with the backbone's embedding module; position 0
        ([CLS]) is replaced by the view vector. AE-Dec is bidirectional, AR-Dec causal.
        """
        views = [v for v in self.config.views if v in view_vectors]
        embeddings = self.embeddings
        extra = {"token_type_ids": torch.zeros_like(input_ids)} if takes_token_types(embeddings) else {}
        context = embeddings(input_ids=input_ids, **extra)[:, 1:]
        rows = torch.cat(
            [torch.cat([view_vectors[v].unsqueeze(1).to(context.dtype), context], dim=1) for v in views]
        )
        decoded = self.run_decoder(
            self.decoder(name), rows, attention_mask.repeat(len(views), 1), causal=name == "ar"
        )
        return dict(zip(views, decoded.chunk(len(views)), strict=True))

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor,
        labels: torch.LongTensor | None = None,
        context_input_ids: torch.LongTensor | None = None,
        context_attention_mask: torch.LongTensor | None = None,
        ae_input_ids: torch.LongTensor | None = None,
        ae_labels: torch.LongTensor | None = None,
        ar_labels: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
    ) -> CoTMAEv2Output:
        """Encode the anchors, decode each context span from each view, sum the losses.

        Args:
            input_ids: corrupted anchors ``[CLS] span [SEP]``, ``[N, La]``.
            attention_mask: 1 for real anchor tokens.
            labels: original anchor ids at its masked positions, -100 elsewhere.
            context_input_ids: the context spans, unmasked (AR-Dec's input), ``[N, Lc]``.
            context_attention_mask: 1 for real context tokens (both decoders).
            ae_input_ids: the context spans corrupted for AE-Dec, ``[N, Lc]``.
            ae_labels: original context ids at AE-Dec's masked positions, -100 elsewhere.
            ar_labels: ``context_input_ids`` shifted left (``ar_labels[:, i]`` = token ``i + 1``),
                -100 where nothing is predicted.
        """
        config = self.config
        views = self.encode_views(input_ids, attention_mask, labels, token_type_ids)
        hidden = views["hidden"]
        vectors = {v: views[v] for v in config.views}
        parts: dict[str, torch.Tensor] = {}
        loss = encoder_loss = logits = None
        if labels is not None:
            encoder_loss, logits = masked_lm_loss(self.lm_head, hidden, labels)
            loss = config.encoder_loss_weight * encoder_loss
        decoder_inputs = {"ae": (ae_input_ids, ae_labels), "ar": (context_input_ids, ar_labels)}
        for name in ("ae", "ar"):
            ids, targets = decoder_inputs[name]
            if getattr(self, f"{name}_decoder") is None or ids is None:
                continue
            decoded = self.decode(name, vectors, ids, context_attention_mask)
            if targets is None:
                continue
            per_view = [masked_lm_loss(self.lm_head, decoded[v], targets)[0] for v in config.views]
            for view, value in zip(config.views, per_view, strict=True):
                parts[f"{name}_{view}_loss"] = value
            mean = torch.stack(per_view).mean()
            parts[f"{name}_loss"] = mean
            weighted = getattr(config, f"{name}_loss_weight") * mean
            loss = weighted if loss is None else loss + weighted
        return CoTMAEv2Output(
            loss=loss,
            encoder_mlm_loss=None if encoder_loss is None else encoder_loss.detach(),
            **{key: value.detach() for key, value in parts.items()},
            logits=logits,
            dense_view=views.get("dense"),
            sparse_values=views.get("sparse_values"),
            sparse_indices=views.get("sparse_indices"),
            sparse_view=views.get("sparse"),
            encoder_last_hidden_state=hidden,
        )
