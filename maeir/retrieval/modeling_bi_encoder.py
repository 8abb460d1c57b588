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
- :func:`load_bi_encoder(name_or_path, **overrides) -> (model, tokenizer)`: any of a maeir bi-encoder
  folder, a sentence-transformers folder, a pre-training run (its ``encoder/``) or a backbone folder.
  Only the inference-time fields :data:`INFERENCE_FIELDS` of a trained model's recipe may be overridden.
- :func:`tokenize` (recipe-aware tokenisation of one side), :func:`format_passage`,
  :func:`pool_dense`, :func:`splade_pool`, :func:`sparse_top_k`, :func:`init_lexical_mlm_head`
  (the sparse view's start when the backbone has no MLM head, e.g. all-MiniLM-L6-v2).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
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
    BatchEncoding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import ModelOutput

from ..errors import ConfigError
from ..io_utils import atomic_directory, atomic_write_json
from ..losses.infonce import InfoNCELoss
from ..modeling.backbone import check_load_report, init_bert_like_weights, mlm_head, resolve_backbone_path
from .configuration_bi_encoder import RECIPE_FIELDS, BiEncoderConfig

logger = logging.getLogger(__name__)

Representation = dict[str, torch.Tensor]
SIDES = ("query", "passage")
RECIPE_FILE = "encoding_recipe.json"
#: Recipe fields that may differ at inference from training (longer passages, another top-k or
#: hybrid weighting); the others define what the model computes and stay as trained.
INFERENCE_FIELDS = frozenset(
    {"query_max_length", "passage_max_length", "sparse_top_k", "dense_weight", "sparse_weight"}
)
TOWER_FOLDERS = {"query": "query_encoder", "passage": "passage_encoder"}


# ---------------------------------------------------------------------------------------------
# Text → ids, following the recipe


def format_passage(config: BiEncoderConfig, text: str, title: str | None = None) -> str:
    """``title + " " + text`` when the recipe includes titles and there is one, else ``text``."""
    if title and config.include_title:
        return f"{title} {text}"
    return text


@contextlib.contextmanager
def _truncation_side(tokenizer: PreTrainedTokenizerBase, side: str) -> Iterator[None]:
    previous = tokenizer.truncation_side
    tokenizer.truncation_side = side
    try:
        yield
    finally:
        tokenizer.truncation_side = previous


def tokenize(
    tokenizer: PreTrainedTokenizerBase,
    config: BiEncoderConfig,
    texts: Sequence[str],
    side: str,
    padding: bool | str = True,
    pad_to_multiple_of: int | None = None,
    return_tensors: str | None = "pt",
) -> BatchEncoding:
    """Tokenise ``texts`` as queries or passages: prefix, max length and truncation side of the recipe."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    prefix = config.query_prefix if side == "query" else config.passage_prefix
    max_length = config.query_max_length if side == "query" else config.passage_max_length
    truncation_side = config.query_truncation_side if side == "query" else config.passage_truncation_side
    texts = [prefix + text for text in texts] if prefix else list(texts)
    with _truncation_side(tokenizer, truncation_side):
        return tokenizer(
            texts,
            max_length=max_length,
            truncation=True,
            padding=padding,
            pad_to_multiple_of=pad_to_multiple_of,
            return_tensors=return_tensors,
            return_token_type_ids=False,
        )


# ---------------------------------------------------------------------------------------------
# Pooling


def pool_dense(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """``[B, L, H] -> [B, H]``: first position (``cls``), masked ``mean`` or masked ``max``."""
    if mode == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
    raise ValueError(f"unknown pooling {mode!r}")


def splade_pool(
    head: nn.Module,
    hidden: torch.Tensor,
    valid: torch.Tensor,
    chunk_size: int = 32,
    excluded_ids: torch.Tensor | None = None,
    recompute: bool = False,
) -> torch.Tensor:
    """SPLADE max pooling: ``w_j = max_i log(1 + relu(logits_ij))`` over positions with ``valid`` True.

    Computed as ``log(1 + relu(max_i logits_ij))``: the same value and the same gradient, since
    ``log1p(relu(.))`` is non-decreasing, with the element-wise work on ``[B, V]`` only. Logits are
    computed ``chunk_size`` positions at a time (in fp32 for the max; chunks of padding only are
    skipped), so the largest intermediate is ``[B, chunk_size, V]``, and it is not kept for the
    backward pass (a max over a dimension keeps only its indices). Vocabulary entries in
    ``excluded_ids`` are zero; rows without any valid position are all zero. ``recompute`` is
    accepted for compatibility and has no effect (there is no large intermediate left to recompute).
    """
    length = hidden.shape[1]
    valid = valid.bool()
    out = None
    for start in range(0, length, chunk_size):
        mask = valid[:, start : start + chunk_size]
        if not mask.any():
            continue
        logits = head(hidden[:, start : start + chunk_size]).float()
        block = logits.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
        out = block if out is None else torch.maximum(out, block)
    if out is None:  # nothing valid anywhere
        vocab = head(hidden[:, :1]).shape[-1]
        return hidden.new_zeros((hidden.shape[0], vocab), dtype=torch.float32) + hidden.sum() * 0.0
    out = torch.log1p(torch.relu(out))
    if excluded_ids is not None and excluded_ids.numel():
        out = out.index_fill(1, excluded_ids.to(out.device), 0.0)
    return out


@torch.no_grad()
def init_lexical_mlm_head(masked_lm: PreTrainedModel, output_bias: float = -6.0) -> None:
    """Initialise a masked-LM head that the checkpoint did not have so that SPLADE starts lexical.

    A fresh random head maps every position to noise over the whole vocabulary (all ~30k entries
    active). Instead, every square ``hidden -> hidden`` projection of the head is set to the identity
    (so logits are ``LayerNorm(act(h)) . word_embeddings``: the final hidden states of a BERT-like
    encoder still point at their own and related tokens) and the output bias to ``output_bias``, so
    only strong matches are positive. With all-MiniLM-L6-v2 and -6.0 a 64-word passage starts with
    about 100 active entries, mostly its own and related words.
    """
    head = mlm_head(masked_lm)
    output = masked_lm.get_output_embeddings()
    for module in head.modules():
        if (
            isinstance(module, nn.Linear)
            and module is not output
            and module.in_features == module.out_features
        ):
            module.weight.copy_(torch.eye(module.in_features, dtype=module.weight.dtype))
            if module.bias is not None:
                module.bias.zero_()
    if output.bias is not None:
        output.bias.fill_(output_bias)


def sparse_top_k(vectors: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the ``k`` largest entries of each row, zero the rest (``k`` None/0 or >= V: unchanged)."""
    if not k or k >= vectors.shape[-1]:
        return vectors
    values, indices = vectors.topk(k, dim=-1)
    return torch.zeros_like(vectors).scatter(-1, indices, values)


# ---------------------------------------------------------------------------------------------
# Model


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
        with _quiet_transformers():
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
            from ..modeling.backbone import checkpoint_weight_names

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
            with _quiet_transformers():
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
                side_tokenizer = _side_tokenizer(tokenizer, self.config, setting_side)
                side_tokenizer.save_pretrained(target)
            atomic_write_json(
                target / "sentence_bert_config.json",
                {"max_seq_length": _max_length(self.config, setting_side), "do_lower_case": False},
            )

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
        if self.config.uses_dense:
            write_sentence_transformers_config(folder, self.config)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def _max_length(config: BiEncoderConfig, side: str) -> int:
    return config.query_max_length if side == "query" else config.passage_max_length


def _side_tokenizer(
    tokenizer: PreTrainedTokenizerBase, config: BiEncoderConfig, side: str
) -> PreTrainedTokenizerBase:
    import copy

    side_tokenizer = copy.deepcopy(tokenizer)
    side_tokenizer.truncation_side = (
        config.query_truncation_side if side == "query" else config.passage_truncation_side
    )
    side_tokenizer.model_max_length = _max_length(config, side)
    return side_tokenizer


# ---------------------------------------------------------------------------------------------
# sentence-transformers interoperability

ST_TRANSFORMER = "sentence_transformers.models.Transformer"
ST_POOLING = "sentence_transformers.models.Pooling"
ST_NORMALIZE = "sentence_transformers.models.Normalize"
ST_ROUTER = "sentence_transformers.models.Router"


def _pooling_config(config: BiEncoderConfig) -> dict:
    return {
        "word_embedding_dimension": config.encoder_config.hidden_size,
        "pooling_mode_cls_token": config.pooling == "cls",
        "pooling_mode_mean_tokens": config.pooling == "mean",
        "pooling_mode_max_tokens": config.pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
    }


def write_sentence_transformers_config(folder: str | os.PathLike, config: BiEncoderConfig) -> None:
    """Write ``modules.json`` & co. so that ``SentenceTransformer(folder)`` encodes like the dense view.

    Tied towers: ``Transformer(query_encoder/) -> Pooling [-> Normalize]``. Untied towers: a ``Router``
    with a ``query`` route and a ``document`` route (``encode_query`` / ``encode_document``; plain
    ``encode`` uses the document route). Prompts are the recipe's prefixes. sentence-transformers has
    one ``max_seq_length`` per Transformer: tied towers get the passage length (a query longer than
    ``query_max_length`` is then cut later than by maeir).
    """
    folder = Path(folder)
    pooling = _pooling_config(config)
    if config.tie_towers:
        modules = [
            {"idx": 0, "name": "0", "path": TOWER_FOLDERS["query"], "type": ST_TRANSFORMER},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": ST_POOLING},
        ]
        atomic_write_json(folder / "1_Pooling" / "config.json", pooling)
        if config.normalize:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": ST_NORMALIZE})
            (folder / "2_Normalize").mkdir(parents=True, exist_ok=True)
    else:
        modules = [{"idx": 0, "name": "0", "path": "", "type": ST_ROUTER}]
        types, structure = {}, {}
        for side, route in (("query", "query"), ("passage", "document")):
            names = [TOWER_FOLDERS[side], f"{route}_1_Pooling"]
            types[names[0]] = ST_TRANSFORMER
            types[names[1]] = ST_POOLING
            atomic_write_json(folder / names[1] / "config.json", pooling)
            if config.normalize:
                names.append(f"{route}_2_Normalize")
                types[names[2]] = ST_NORMALIZE
                (folder / names[2]).mkdir(parents=True, exist_ok=True)
            structure[route] = names
        atomic_write_json(
            folder / "router_config.json",
            {
                "types": types,
                "structure": structure,
                "parameters": {"default_route": "document", "allow_empty_key": True},
            },
        )
    atomic_write_json(folder / "modules.json", modules)
    atomic_write_json(
        folder / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": {"query": config.query_prefix, "document": config.passage_prefix},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine" if config.normalize else "dot",
        },
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        raise ConfigError(path, err.lineno, f"invalid JSON: {err.msg}") from None


def _st_pooling_mode(path: Path) -> tuple[str, bool]:
    """``(pooling, include_prompt)`` of a sentence-transformers ``Pooling`` folder (any version)."""
    pooling = _read_json(path / "config.json") or {}
    mode = pooling.get("pooling_mode")  # sentence-transformers >= 6 writes one string (or a list)
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if mode is None:
        flags = [name for name in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens",
                                   "weightedmean_tokens", "lasttoken") if pooling.get(f"pooling_mode_{name}")]  # fmt: skip
        if len(flags) != 1:
            raise ConfigError(
                path / "config.json", None, f"unsupported pooling combination {flags}", "pooling_mode"
            )
        mode = flags[0]
    mapping = {"cls": "cls", "cls_token": "cls", "mean": "mean", "mean_tokens": "mean", "max": "max",
               "max_tokens": "max"}  # fmt: skip
    if not isinstance(mode, str) or mode not in mapping:
        raise ConfigError(path / "config.json", None, f"pooling {mode!r} is not supported (cls, mean, max)",
                          "pooling_mode")  # fmt: skip
    return mapping[mode], bool(pooling.get("include_prompt", True))


def _st_max_length(transformer: Path, st_config: dict) -> int | None:
    """The max length sentence-transformers uses for a ``Transformer`` folder.

    ``max_seq_length`` of ``sentence_bert_config.json`` when given (sentence-transformers < 6 writes
    it); otherwise the tokenizer's ``model_max_length`` capped at the model's
    ``max_position_embeddings`` (what sentence-transformers >= 6 does, and what it saves).
    """
    if st_config.get("max_seq_length"):
        return int(st_config["max_seq_length"])
    lengths = [
        (_read_json(transformer / "tokenizer_config.json") or {}).get("model_max_length"),
        (_read_json(transformer / "config.json") or {}).get("max_position_embeddings"),
    ]
    lengths = [int(n) for n in lengths if isinstance(n, (int, float)) and 0 < n < 1e9]
    return min(lengths) if lengths else None


def _st_route(folder: Path, entries: list[tuple[str, str]]) -> tuple[dict, Path]:
    """Recipe parts and Transformer folder of one chain of sentence-transformers modules.

    The recipe parts: ``pooling``, ``normalize``, ``include_prompt``, ``max_length``, the tokenizer's
    ``truncation_side`` and the per-task ``query_length`` / ``document_length`` of sentence-transformers
    >= 6 (when set).
    """
    recipe: dict[str, Any] = {"normalize": False}
    transformer = None
    for path, kind in entries:
        short = kind.rsplit(".", 1)[-1]
        if short == "Transformer":
            transformer = folder / path
        elif short == "Pooling":
            recipe["pooling"], recipe["include_prompt"] = _st_pooling_mode(folder / path)
        elif short == "Normalize":
            recipe["normalize"] = True
        else:
            raise ConfigError(folder / "modules.json", None, f"module type {kind!r} is not supported", "type")
    if transformer is None or "pooling" not in recipe:
        raise ConfigError(
            folder / "modules.json", None, "expected a Transformer and a Pooling module", "type"
        )
    st_config = _read_json(transformer / "sentence_bert_config.json") or {}
    tokenizer_config = _read_json(transformer / "tokenizer_config.json") or {}
    if tokenizer_config.get("truncation_side") in ("left", "right"):
        recipe["truncation_side"] = tokenizer_config["truncation_side"]
    if st_config.get("do_lower_case"):
        if not tokenizer_config.get("do_lower_case"):
            raise ConfigError(
                transformer / "sentence_bert_config.json", None,
                "lower-casing the input for a tokenizer that does not lower-case is not supported",
                "do_lower_case",
            )  # fmt: skip
    max_length = _st_max_length(transformer, st_config)
    if max_length:
        recipe["max_length"] = max_length
    for key in ("query_length", "document_length"):
        if st_config.get(key):
            recipe[key] = int(st_config[key])
    return recipe, transformer


def _st_prompt(st_config: dict, names: tuple[str, ...]) -> str:
    """The prompt ``encode_query`` / ``encode_document`` use: the first of ``names`` that the model has,
    else the default prompt (``default_prompt_name``), else none."""
    prompts = st_config.get("prompts") or {}
    for name in names:
        if name in prompts:
            return prompts[name] or ""
    default = st_config.get("default_prompt_name")
    return (prompts.get(default) or "") if default else ""


def sentence_transformers_recipe(path: str | os.PathLike) -> tuple[dict, dict[str, Path]]:
    """``(recipe, {"query": folder, "passage": folder})`` of a sentence-transformers model folder."""
    folder = Path(path)
    modules = _read_json(folder / "modules.json")
    if not isinstance(modules, list):
        raise ConfigError(
            folder / "modules.json", None, "not a sentence-transformers folder (no modules.json list)"
        )
    entries = [(m.get("path", ""), m.get("type", "")) for m in sorted(modules, key=lambda m: m.get("idx", 0))]
    if len(entries) == 1 and entries[0][1].rsplit(".", 1)[-1] in ("Router", "Asym"):
        router = _read_json(folder / entries[0][0] / "router_config.json") or {}
        base = folder / entries[0][0]
        structure, types = router.get("structure", {}), router.get("types", {})
        if "query" not in structure or "document" not in structure:
            raise ConfigError(
                base / "router_config.json", None, "expected 'query' and 'document' routes", "structure"
            )
        query, query_tower = _st_route(base, [(name, types[name]) for name in structure["query"]])
        passage, passage_tower = _st_route(base, [(name, types[name]) for name in structure["document"]])
        if (query["pooling"], query["normalize"]) != (passage["pooling"], passage["normalize"]):
            raise ConfigError(
                base / "router_config.json", None, "routes with different pooling are not supported"
            )
        recipe = {"pooling": query["pooling"], "normalize": query["normalize"], "tie_towers": False}
        towers = {"query": query_tower, "passage": passage_tower}
        routes = (query, passage)
    else:
        route, tower = _st_route(folder, entries)
        recipe = {"pooling": route["pooling"], "normalize": route["normalize"], "tie_towers": True}
        towers = {"query": tower, "passage": tower}
        routes = (route, route)
    # Per-task lengths of sentence-transformers >= 6 win over the module's max length.
    lengths = (routes[0].get("query_length"), routes[1].get("document_length"))
    lengths = tuple(task or route.get("max_length") for task, route in zip(lengths, routes))
    if lengths[0]:
        recipe["query_max_length"] = lengths[0]
    if lengths[1]:
        recipe["passage_max_length"] = lengths[1]
    for side, route in zip(SIDES, routes):
        if "truncation_side" in route:
            recipe[f"{side}_truncation_side"] = route["truncation_side"]
    st_config = _read_json(folder / "config_sentence_transformers.json") or {}
    recipe["query_prefix"] = _st_prompt(st_config, ("query",))
    recipe["passage_prefix"] = _st_prompt(st_config, ("document", "passage", "corpus"))
    for route, prefix in zip(routes, (recipe["query_prefix"], recipe["passage_prefix"])):
        if prefix and not route["include_prompt"]:
            raise ConfigError(
                folder / "modules.json", None,
                "pooling that leaves the prompt out (include_prompt: false) is not supported", "include_prompt",
            )  # fmt: skip
    recipe["representation"] = "dense"
    return recipe, towers


# ---------------------------------------------------------------------------------------------
# One loader for every kind of folder


def is_bi_encoder_folder(path: str | os.PathLike) -> bool:
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    return (_read_json(config) or {}).get("model_type") == BiEncoderConfig.model_type


def load_bi_encoder(
    name_or_path: str | os.PathLike, **overrides: Any
) -> tuple[BiEncoderModel, PreTrainedTokenizerBase]:
    """``(model, tokenizer)`` from a maeir bi-encoder, a sentence-transformers folder or a backbone.

    - a folder saved by :meth:`BiEncoderModel.save_bi_encoder` / the fine-tuning script: loaded with
      its saved recipe; only the inference-time fields :data:`INFERENCE_FIELDS` (max lengths, sparse
      top-k, hybrid weights) may be changed, any other differing override is an error (the recipe is
      what the model was trained with);
    - a sentence-transformers folder (``modules.json``): its own pooling / normalisation / prompts;
    - a pre-training run folder (has ``encoder/``) or a backbone folder / ``"minilm"``: a fresh
      bi-encoder with the recipe ``overrides`` (note ``"minilm"`` is a sentence-transformers folder).
    """
    path = Path(resolve_backbone_path(name_or_path))
    if is_bi_encoder_folder(path):
        model, report = BiEncoderModel.from_pretrained(
            path, local_files_only=True, use_safetensors=True, output_loading_info=True
        )
        check_load_report(path, report, optional=("position_ids",))
        changed = {k: v for k, v in overrides.items() if getattr(model.config, k, None) != v}
        inference = {k: v for k, v in changed.items() if k in INFERENCE_FIELDS}
        for key, value in inference.items():
            logger.warning(
                "%s: encoding with %s=%r (trained with %r)", path, key, value, getattr(model.config, key)
            )
            setattr(model.config, key, value)
        changed = {k: v for k, v in changed.items() if k not in INFERENCE_FIELDS}
        if changed:
            saved = {k: getattr(model.config, k, None) for k in changed}
            raise ConfigError(
                path / "config.json",
                None,
                f"a trained bi-encoder keeps the recipe it was trained with: {saved}, not {changed}",
                field=sorted(changed)[0],
            )
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return model, tokenizer
    if (path / "modules.json").is_file():
        recipe, towers = sentence_transformers_recipe(path)
        model = BiEncoderModel.from_sentence_transformers(path, **overrides)
        tokenizer = AutoTokenizer.from_pretrained(towers["query"], local_files_only=True)
        return model, tokenizer
    if (path / "encoder" / "config.json").is_file():
        # A pre-training run folder: its whole model is a maeir pre-training model; use the backbone.
        path = path / "encoder"
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return BiEncoderModel.from_backbone(path, tokenizer=tokenizer, **overrides), tokenizer
