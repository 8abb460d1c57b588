"""Bi-encoder for retrieval and response selection: dense, sparse (SPLADE) and hybrid views.

Implements the fine-tuning model of CoT-MAE v2 (docs/methods.md#cot-mae-v2: dense [CLS] view + SPLADE
sparse view, score ``dense_q . dense_p + sparse_q . sparse_p``) and of Dial-MAE (docs/methods.md#dial-mae:
context tower / response tower, untied by default there, [CLS], dot product / temperature). The encoding recipe lives in
:class:`~maeir.retrieval.configuration_bi_encoder.BiEncoderConfig`.

Public API (names are stable):

- :class:`BiEncoderModel` (``PreTrainedModel``; ``AutoModel`` after ``import maeir``):
    - ``BiEncoderModel.from_backbone(path, tokenizer=None, **recipe)``: both towers from a backbone
      folder (``"minilm"``, any BERT-like checkpoint, a maeir ``encoder/`` export);
    - ``BiEncoderModel.from_sentence_transformers(path, **overrides)``: a sentence-transformers folder,
      with its own pooling / normalisation / max length / prompts (read from ``modules.json``);
    - ``encode(input_ids, attention_mask, side="query"|"passage") -> {"dense": [B, H], "sparse": [B, V]}``
      (only the keys the representation uses), ``encode_query`` / ``encode_passage``;
    - ``score(q, p) -> [Q, P]`` (all pairs) and ``score_pairs(q, p) -> [N]`` (row by row);
    - ``contrastive_loss(q, p, passage_mask=None)``: InfoNCE with ``config.temperature``;
      ``add_scores(output, q, p, passage_mask, return_loss)``: scores (and that loss) on an output;
    - ``forward(query_input_ids, query_attention_mask, passage_input_ids, passage_attention_mask,
      passage_mask=None)`` -> :class:`BiEncoderOutput` (loss = InfoNCE over in-batch + given negatives);
    - ``save_bi_encoder(folder, tokenizer)``: ``save_pretrained`` + tokenizer + ``encoding_recipe.json``
      + plain tower checkpoints (``query_encoder/``, ``passage_encoder/``) + sentence-transformers files
      (``modules.json`` ...), atomically; ``from_pretrained(folder)`` then reproduces the encoding.
- :func:`~maeir.retrieval.loading.load_bi_encoder(name_or_path, **overrides) -> (model, tokenizer)`: any
  of a maeir bi-encoder folder, a sentence-transformers folder, a pre-training run (its ``encoder/``) or a
  backbone folder. Only the inference-time fields
  :data:`~maeir.retrieval.loading.INFERENCE_FIELDS` of a trained model's recipe may be overridden.
- :mod:`maeir.retrieval.tokenization_bi_encoder`: :func:`tokenize` (recipe-aware tokenisation of one
  side), :func:`format_passage`;
- :mod:`maeir.retrieval.pooling`: :func:`pool_dense`, :func:`splade_pool`, :func:`sparse_top_k`,
  :func:`init_lexical_mlm_head` (the sparse view's start when the backbone has no MLM head, e.g.
  all-MiniLM-L6-v2);
- :mod:`maeir.retrieval.sentence_transformers_folder`: the sentence-transformers files of a saved folder,
  and the recipe of a sentence-transformers folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import ModelOutput
from transformers.utils import logging as hf_logging

from ..errors import ConfigError
from ..io_utils import atomic_directory, atomic_write_json
from ..losses.infonce import InfoNCELoss
from ..modeling.backbone import (
    check_load_report,
    checkpoint_weight_names,
    init_bert_like_weights,
    mlm_head,
    resolve_backbone_path,
)
from ..modeling.padding_free import encode_padding_free, use_varlen_attention
from .configuration_bi_encoder import RECIPE_FIELDS, BiEncoderConfig
from .pooling import init_lexical_mlm_head, pool_dense, sparse_top_k, splade_pool
from .sentence_transformers_folder import (
    TOWER_FOLDERS,
    sentence_transformers_recipe,
    write_sentence_transformers_config,
)
from .tokenization_bi_encoder import SIDES, side_max_length, side_tokenizer

logger = logging.getLogger(__name__)

Representation = dict[str, torch.Tensor]
RECIPE_FILE = "encoding_recipe.json"


@dataclass
class BiEncoderOutput(ModelOutput):
    """Output of :class:`BiEncoderModel`.

    Args:
        loss: InfoNCE over in-batch + given negatives (when passages were given and ``return_loss``).
        contrastive_loss: the same value, detached (for logging).
        scores: ``[Q, P]`` scores of every query with every passage of the batch.
        query_dense / passage_dense: pooled (and maybe normalised) dense vectors.
        query_sparse / passage_sparse: SPLADE vocabulary vectors ``[B, V]``.
    """

    loss: torch.FloatTensor | None = None
    contrastive_loss: torch.FloatTensor | None = None
    scores: torch.FloatTensor | None = None
    query_dense: torch.FloatTensor | None = None
    query_sparse: torch.FloatTensor | None = None
    passage_dense: torch.FloatTensor | None = None
    passage_sparse: torch.FloatTensor | None = None


def _build_tower(config: BiEncoderConfig) -> PreTrainedModel:
    auto = AutoModelForMaskedLM if config.uses_sparse else AutoModel
    return auto.from_config(config.encoder_config, attn_implementation="sdpa")


class BiEncoderModel(PreTrainedModel):
    """Query and passage towers (one shared module when ``tie_towers``) with dense / sparse heads.

    A dense-only model's towers are plain base models (``BertModel``...); a sparse or hybrid model's
    towers are ``*ForMaskedLM`` models (their MLM head gives the SPLADE logits).
    """

    config_class = BiEncoderConfig
    main_input_name = "query_input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: BiEncoderConfig) -> None:
        super().__init__(config)
        self.query_encoder = _build_tower(config)
        self.passage_encoder = None if config.tie_towers else _build_tower(config)
        self._excluded_cache: dict[torch.device, torch.Tensor] = {}
        self.post_init()

    # -- parts ----------------------------------------------------------------------------------
    def tower(self, side: str) -> PreTrainedModel:
        """The encoder of ``side`` (``"query"`` or ``"passage"``; the same module when tied)."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        if side == "passage" and self.passage_encoder is not None:
            return self.passage_encoder
        return self.query_encoder

    def excluded_token_ids(self, device: torch.device) -> torch.Tensor:
        """``config.sparse_excluded_token_ids`` as a tensor on ``device`` (cached)."""
        if device not in self._excluded_cache:
            ids = sorted(set(self.config.sparse_excluded_token_ids or []))
            self._excluded_cache[device] = torch.tensor(ids, dtype=torch.long, device=device)
        return self._excluded_cache[device]

    def get_input_embeddings(self) -> nn.Module:
        return self.query_encoder.get_input_embeddings()

    def _init_weights(self, module: nn.Module) -> None:
        init_bert_like_weights(module, getattr(self.config.encoder_config, "initializer_range", 0.02))

    # -- encoding -------------------------------------------------------------------------------
    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        side: str = "query",
        token_type_ids: torch.Tensor | None = None,
        apply_top_k: bool | None = None,
    ) -> Representation:
        """``{"dense": [B, H], "sparse": [B, V]}`` (the keys the representation uses) for one side.

        ``apply_top_k`` defaults to "at inference, or in training when ``sparse_top_k_train``".
        """
        config = self.config
        tower = self.tower(side)
        base = tower.base_model
        if config.padding_free:
            use_varlen_attention(base)
            hidden = encode_padding_free(base, input_ids, attention_mask, token_type_ids=token_type_ids)
        else:
            kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            hidden = base(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        out: Representation = {}
        if config.uses_dense:
            dense = pool_dense(hidden, attention_mask, config.pooling)
            out["dense"] = F.normalize(dense, p=2, dim=-1) if config.normalize else dense
        if config.uses_sparse:
            excluded = self.excluded_token_ids(input_ids.device)
            valid = attention_mask.bool()
            if excluded.numel():
                valid = valid & ~torch.isin(input_ids, excluded)
            sparse = splade_pool(
                mlm_head(tower),
                hidden,
                valid,
                chunk_size=config.sparse_chunk_size,
                excluded_ids=excluded,
            )
            if apply_top_k is None:
                apply_top_k = (not self.training) or config.sparse_top_k_train
            out["sparse"] = sparse_top_k(sparse, config.sparse_top_k) if apply_top_k else sparse
        return out

    def encode_query(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs) -> Representation:
        return self.encode(input_ids, attention_mask, side="query", **kwargs)

    def encode_passage(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs
    ) -> Representation:
        return self.encode(input_ids, attention_mask, side="passage", **kwargs)

    # -- scoring --------------------------------------------------------------------------------
    def score(self, query: Representation, passage: Representation) -> torch.Tensor:
        """``[Q, P]`` scores: ``dense_weight * q.p`` (+ ``sparse_weight * q.p`` of the sparse view)."""
        scores = None
        if "dense" in query:
            scores = self.config.dense_weight * (query["dense"].float() @ passage["dense"].float().T)
        if "sparse" in query:
            sparse = self.config.sparse_weight * (query["sparse"].float() @ passage["sparse"].float().T)
            scores = sparse if scores is None else scores + sparse
        if scores is None:
            raise ValueError("empty representation")
        return scores

    def score_pairs(self, query: Representation, passage: Representation) -> torch.Tensor:
        """``[N]`` scores of query ``i`` with passage ``i`` (re-ranking given pairs)."""
        scores = 0.0
        if "dense" in query:
            scores = scores + self.config.dense_weight * (
                query["dense"].float() * passage["dense"].float()
            ).sum(-1)
        if "sparse" in query:
            scores = scores + self.config.sparse_weight * (
                query["sparse"].float() * passage["sparse"].float()
            ).sum(-1)
        return scores

    def contrastive_loss(
        self,
        query: Representation,
        passage: Representation,
        passage_mask: torch.Tensor | None = None,
        in_batch_negatives: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(InfoNCE, scores)`` with ``config.temperature`` (see :class:`maeir.losses.InfoNCELoss`)."""
        loss = InfoNCELoss(self.score, self.config.temperature, in_batch_negatives=in_batch_negatives)
        output = loss(query, passage, passage_mask)
        return output.loss, output.scores

    def add_scores(
        self,
        output: BiEncoderOutput,
        query: Representation | None,
        passage: Representation | None,
        passage_mask: torch.Tensor | None = None,
        return_loss: bool = True,
    ) -> BiEncoderOutput:
        """With both sides, set ``output.scores`` and, with ``return_loss``, the InfoNCE ``loss``."""
        if query is not None and passage is not None:
            if return_loss:
                loss, scores = self.contrastive_loss(query, passage, passage_mask)
                output.loss, output.contrastive_loss, output.scores = loss, loss.detach(), scores
            else:
                output.scores = self.score(query, passage)
        return output

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
    ) -> BiEncoderOutput:
        """Encode the queries and/or passages; with both and ``return_loss``, also the InfoNCE loss.

        Passages come in groups of ``P / Q`` (positive first, then the given negatives); every other
        passage of the batch is an in-batch negative. ``passage_mask`` marks padding slots (False).
        """
        query = passage = None
        if query_input_ids is not None:
            query = self.encode(query_input_ids, query_attention_mask, "query", query_token_type_ids)
        if passage_input_ids is not None:
            passage = self.encode(
                passage_input_ids, passage_attention_mask, "passage", passage_token_type_ids
            )
        output = BiEncoderOutput(
            query_dense=None if query is None else query.get("dense"),
            query_sparse=None if query is None else query.get("sparse"),
            passage_dense=None if passage is None else passage.get("dense"),
            passage_sparse=None if passage is None else passage.get("sparse"),
        )
        return self.add_scores(output, query, passage, passage_mask, return_loss)

    @staticmethod
    def representation(output: BiEncoderOutput, side: str) -> Representation:
        """The ``{"dense", "sparse"}`` dict of one side of a :class:`BiEncoderOutput`."""
        out = {}
        for key in ("dense", "sparse"):
            value = getattr(output, f"{side}_{key}")
            if value is not None:
                out[key] = value
        return out

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def from_backbone(
        cls,
        name_or_path: str | os.PathLike,
        tokenizer: PreTrainedTokenizerBase | None = None,
        missing_head_bias: float | None = -6.0,
        **recipe: Any,
    ) -> BiEncoderModel:
        """Both towers initialised from a backbone folder; ``recipe`` holds :class:`BiEncoderConfig` fields.

        ``sparse_excluded_token_ids`` defaults to the tokenizer's special tokens.
        ``encoder_overrides={...}`` changes the backbone config (e.g. dropout). A sparse view on a
        backbone saved without an MLM head (e.g. a sentence-transformers model) gets a lexical head
        (:func:`init_lexical_mlm_head` with ``missing_head_bias``; None keeps a random head).
        """
        path = resolve_backbone_path(name_or_path)
        overrides = recipe.pop("encoder_overrides", None) or {}
        unknown = sorted(set(recipe) - set(RECIPE_FIELDS) - {"sparse_chunk_size"})
        if unknown:
            raise ConfigError(None, None, f"unknown bi-encoder fields {unknown}", field="recipe")
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if recipe.get("sparse_excluded_token_ids") is None:
            recipe["sparse_excluded_token_ids"] = sorted(set(tokenizer.all_special_ids))
        backbone_config = AutoConfig.from_pretrained(path, local_files_only=True)
        for key, value in overrides.items():
            setattr(backbone_config, key, value)
        config = cls.config_class(encoder_config=backbone_config.to_dict(), **recipe)
        auto = AutoModelForMaskedLM if config.uses_sparse else AutoModel
        # The load report only lists the parts this view does not use (a pooler, an MLM head): the
        # head of a backbone saved without one is fresh, which is said once below.
        with quiet_transformers():
            pretrained, report = auto.from_pretrained(
                path,
                config=backbone_config,
                local_files_only=True,
                attn_implementation="sdpa",
                use_safetensors=True,
                output_loading_info=True,
            )
        check_load_report(path, report)
        head_missing = False
        if config.uses_sparse:
            names = checkpoint_weight_names(path)
            head_missing = bool(names) and not any("predictions" in n or "lm_head" in n for n in names)
        model = cls(config)
        state = pretrained.state_dict()
        for side in SIDES if not config.tie_towers else ("query",):
            missing, unexpected = model.tower(side).load_state_dict(state, strict=False)
            if missing or unexpected:
                raise RuntimeError(f"backbone weights do not fit: missing {missing}, unexpected {unexpected}")
        model.tie_weights()
        if head_missing and missing_head_bias is not None:
            for side in SIDES if not config.tie_towers else ("query",):
                init_lexical_mlm_head(model.tower(side), missing_head_bias)
            logger.warning(
                "%s has no MLM head: the sparse view starts from a lexical head (identity transform, "
                "output bias %s; see init_lexical_mlm_head)", path, missing_head_bias,
            )  # fmt: skip
        return model

    @classmethod
    def from_sentence_transformers(cls, path: str | os.PathLike, **overrides: Any) -> BiEncoderModel:
        """A dense bi-encoder from a sentence-transformers folder, with its own encoding recipe.

        Reads ``modules.json`` (Transformer + Pooling [+ Normalize]; or a query/document ``Router``),
        the pooling config, ``sentence_bert_config.json`` (max length) and the prompts of
        ``config_sentence_transformers.json``; ``overrides`` replaces recipe fields.
        """
        recipe, towers = sentence_transformers_recipe(path)
        recipe.update(overrides)
        model = cls.from_backbone(towers["query"], **recipe)
        if not model.config.tie_towers:
            with quiet_transformers():
                passage, report = AutoModel.from_pretrained(
                    towers["passage"], local_files_only=True, attn_implementation="sdpa", use_safetensors=True,
                    output_loading_info=True,
                )  # fmt: skip
            check_load_report(towers["passage"], report)
            model.passage_encoder.load_state_dict(passage.state_dict())
        return model

    # -- saving ---------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, *args, **kwargs) -> None:  # noqa: D102 - documented upstream
        kwargs.setdefault("safe_serialization", True)
        super().save_pretrained(save_directory, *args, **kwargs)

    def save_towers(
        self, folder: str | os.PathLike, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> None:
        """Plain tower checkpoints ``folder/query_encoder`` [+ ``folder/passage_encoder``] (+ tokenizer).

        Each loads with plain ``transformers`` (``AutoModel``) and sentence-transformers; the tokenizer
        copy carries the side's truncation side and max length.
        """
        folder = Path(folder)
        sides = ("query",) if self.config.tie_towers else SIDES
        for side in sides:
            target = folder / TOWER_FOLDERS[side]
            self.tower(side).save_pretrained(target, safe_serialization=True)
            # Tied towers are also used for passages: save the passage-side settings.
            setting_side = "passage" if self.config.tie_towers else side
            if tokenizer is not None:
                side_tokenizer(tokenizer, self.config, setting_side).save_pretrained(target)
            st_config = {"max_seq_length": side_max_length(self.config, setting_side), "do_lower_case": False}
            if not self.config.uses_dense:  # a sparse model's towers give MLM logits to SpladePooling
                st_config["transformer_task"] = "fill-mask"
            atomic_write_json(target / "sentence_bert_config.json", st_config)

    def save_bi_encoder(
        self, folder: str | os.PathLike, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> None:
        """Everything a user needs, written atomically into ``folder`` (replaced as a whole).

        ``config.json`` + ``model.safetensors`` (``BiEncoderModel.from_pretrained``), the tokenizer,
        ``encoding_recipe.json``, the plain towers and the sentence-transformers files.
        """
        with atomic_directory(folder) as staging:
            self.write_extras(staging, tokenizer, save_model=True)

    def write_extras(
        self, folder: str | os.PathLike, tokenizer: PreTrainedTokenizerBase | None, save_model: bool = False
    ) -> None:
        """The files beside ``save_pretrained``'s: tokenizer, recipe, towers, sentence-transformers config."""
        folder = Path(folder)
        if save_model:
            self.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        atomic_write_json(folder / RECIPE_FILE, self.config.recipe())
        self.save_towers(folder, tokenizer)
        write_sentence_transformers_config(folder, self.config)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
