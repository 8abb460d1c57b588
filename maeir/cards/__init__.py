"""Model cards of every maeir run kind: one card data class per kind, one Jinja2 template per kind
(``maeir/cards/templates/``), one render/write path (:func:`write_card`) and offline validation.

Kinds: ``pretraining`` (the full pre-training model), ``encoder`` (its plain encoder), ``retriever``
(a fine-tuned bi-encoder), ``reranker`` (a cross-encoder ranker) and ``md2pr`` (an MD2PR student).
"""

from .common import KINDS, TEMPLATE_KINDS, ModelCardError, base_model_name, markdown_table, template_path
from .pretraining import card_args_from_card, card_for_run, render_model_card
from .run_cards import (
    CARD_CLASSES,
    EncoderCardData,
    MD2PRCardData,
    PretrainingCardData,
    RerankerCardData,
    RetrieverCardData,
    RunCardData,
    card_data,
    card_kind,
    render_card,
    training_hyperparameters,
    write_card,
)
from .validate import save_model_card, validate_card_metadata

__all__ = [
    "CARD_CLASSES", "KINDS", "TEMPLATE_KINDS", "EncoderCardData", "MD2PRCardData", "ModelCardError",
    "PretrainingCardData", "RerankerCardData", "RetrieverCardData", "RunCardData", "base_model_name",
    "card_args_from_card", "card_data", "card_for_run", "card_kind", "markdown_table", "render_card",
    "render_model_card", "save_model_card", "template_path", "training_hyperparameters",
    "validate_card_metadata", "write_card",
]  # fmt: skip
