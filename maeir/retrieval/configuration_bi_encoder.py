"""Configuration of :class:`maeir.retrieval.modeling_bi_encoder.BiEncoderModel`: towers plus the encoding recipe.

The config *is* the encoding recipe (docs/methods.md#pitfalls: the recipe must travel with the model): pooling,
normalisation, max lengths, truncation sides, query/passage prefixes, score function and temperature
are all fields, saved in ``config.json`` by ``save_pretrained`` (and mirrored in
``encoding_recipe.json``), so ``BiEncoderModel.from_pretrained`` encodes exactly as in training.

Public API:

- :class:`BiEncoderConfig` (``model_type = "maeir_bi_encoder"``, registered with ``AutoConfig``).
- ``BiEncoderConfig.recipe()``: the recipe fields as a plain dict; ``RECIPE_FIELDS``: their names.
- ``BiEncoderConfig.uses_dense`` / ``uses_sparse``: which heads the representation needs.
"""

from __future__ import annotations

from typing import ClassVar

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

REPRESENTATIONS = ("dense", "sparse", "hybrid")
POOLINGS = ("cls", "mean", "max")
SIDES = ("left", "right")

#: The fields that decide how a text becomes a vector (the "encoding recipe").
RECIPE_FIELDS = (
    "representation",
    "tie_towers",
    "pooling",
    "normalize",
    "temperature",
    "query_max_length",
    "passage_max_length",
    "query_truncation_side",
    "passage_truncation_side",
    "query_prefix",
    "passage_prefix",
    "include_title",
    "dense_weight",
    "sparse_weight",
    "sparse_top_k",
    "sparse_top_k_train",
    "sparse_excluded_token_ids",
    "padding_free",
)


class BiEncoderConfig(PreTrainedConfig):
    """A query tower and a passage tower (one shared module when tied) and how they encode text.

    Implements the fine-tuning bi-encoder of CoT-MAE v2 (docs/methods.md#cot-mae-v2: dense + sparse views,
    ``s(q, p) = dense_q . dense_p + sparse_q . sparse_p``) and of Dial-MAE (docs/methods.md#dial-mae: context /
    response towers, [CLS], dot product / temperature): the query tower is the context tower, the passage tower the response one.

    Args:
        encoder_config: the backbone's config (any BERT-like encoder; a masked-LM head is needed for
            the sparse view).
        representation: ``"dense"`` (pooled vector), ``"sparse"`` (SPLADE vocabulary vector) or
            ``"hybrid"`` (both; the score is ``dense_weight * dense + sparse_weight * sparse``).
        tie_towers: one shared encoder for queries and passages (True) or two (False, Dial-MAE default).
        pooling: dense pooling: ``"cls"`` (first position's final hidden state, before any pooler),
            ``"mean"`` (attention-masked mean over all real tokens, specials included, like
            sentence-transformers) or ``"max"``.
        normalize: L2-normalise the dense vectors (dot product = cosine similarity).
        temperature: InfoNCE logits are ``score / temperature`` (1.0 for raw dot products as in
            Dial-MAE; about 0.05 for normalised vectors).
        query_max_length / passage_max_length: tokens kept per text, special tokens included.
        query_truncation_side / passage_truncation_side: ``"right"`` keeps the start, ``"left"`` the
            end (Dial-MAE contexts keep their last turns).
        query_prefix / passage_prefix: text put before every query / passage (e.g. ``"query: "``).
        include_title: a passage with a title is encoded as ``title + " " + text``.
        dense_weight / sparse_weight: weights of the two scores of a hybrid model.
        sparse_top_k: keep the k largest entries of each sparse vector at inference (None or 0: all).
        sparse_top_k_train: apply the top-k also in training (default: only at inference).
        sparse_chunk_size: positions per chunk when computing full-position MLM logits for the sparse
            view (bounds the ``[B, chunk, V]`` logits tensor; does not change the result).
        sparse_excluded_token_ids: vocabulary ids never present in a sparse vector and positions
            never pooled (the tokenizer's special tokens; filled in from the tokenizer).
        padding_free: encode each batch's real tokens only, as one flat sequence
            (:mod:`maeir.modeling.padding_free`; same vectors up to float rounding).
    """

    model_type = "maeir_bi_encoder"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder_config: dict | PreTrainedConfig | None = None
    representation: str = "dense"
    tie_towers: bool = True
    pooling: str = "cls"
    normalize: bool = False
    temperature: float = 1.0
    query_max_length: int = 32
    passage_max_length: int = 128
    query_truncation_side: str = "right"
    passage_truncation_side: str = "right"
    query_prefix: str = ""
    passage_prefix: str = ""
    include_title: bool = True
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    sparse_top_k: int | None = 768
    sparse_top_k_train: bool = False
    sparse_chunk_size: int = 32
    sparse_excluded_token_ids: list[int] | None = None
    padding_free: bool = False

    paper: ClassVar[dict] = {
        "title": "CoT-MAE v2: Contextual Masked Auto-Encoder with Multi-view Modeling for Passage Retrieval",
        "arxiv": "2304.03158",
        "section": "Section 3.4 (fine-tuning); maeir docs/methods.md#cot-mae-v2 and docs/methods.md#dial-mae",
    }

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name, value, allowed in (
            ("representation", self.representation, REPRESENTATIONS),
            ("pooling", self.pooling, POOLINGS),
            ("query_truncation_side", self.query_truncation_side, SIDES),
            ("passage_truncation_side", self.passage_truncation_side, SIDES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        for name in ("query_max_length", "passage_max_length", "sparse_chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sparse_top_k is not None and self.sparse_top_k < 0:
            raise ValueError(f"sparse_top_k must be >= 0 or None, got {self.sparse_top_k}")

    @property
    def uses_dense(self) -> bool:
        return self.representation in ("dense", "hybrid")

    @property
    def uses_sparse(self) -> bool:
        return self.representation in ("sparse", "hybrid")

    def recipe(self) -> dict:
        """The encoding recipe as a JSON-ready dict (what ``encoding_recipe.json`` holds)."""
        return {name: getattr(self, name) for name in RECIPE_FIELDS}
