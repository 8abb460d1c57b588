"""The pre-training methods that ``scripts/pretrain.py`` runs, one folder each, and their registry.

Each method's folder holds its config, model, collator and data preparation:
:mod:`.mlm`, :mod:`.mae_lm`, :mod:`.dial_mae`, :mod:`.cotmae_v2` (pre-training, registered in
:data:`METHODS` below) and :mod:`.md2pr` (distillation of a ranker into a dual encoder, run by
``scripts/distill_md2pr.py``: not a pre-training method, so not in :data:`METHODS`). What several methods
share lives below them (:mod:`maeir.modeling`, :mod:`maeir.data`).

Importing this package registers the pre-training configs and models with the ``transformers`` Auto
classes (``AutoConfig``, ``AutoModelForMaskedLM``, ``AutoModelForPreTraining``), under the same
``model_type`` strings as ever, so saved run folders load with no ``trust_remote_code``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from datasets import Dataset
from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForPreTraining, PreTrainedTokenizerBase

from ..arguments import PretrainDataArguments
from ..data.collators import MaskingCollator
from ..data.text_dataset import build_text_dataset, pack_documents, pack_text_dataset
from ..errors import ConfigError
from ..modeling.base import MaskedAutoEncoderPreTrainedModel, PretrainingConfig
from .cotmae_v2 import CoTMAEv2Collator, CoTMAEv2Config, CoTMAEv2ForPretraining, build_cotmae_v2_dataset
from .dial_mae import (
    DialMAECollator,
    DialMAEConfig,
    DialMAEForPretraining,
    build_dialogue_pretraining_dataset,
)
from .mae_lm import MAELMCollator, MAELMConfig, MAELMForMaskedLM
from .mlm import MaskedLMConfig, MaskedLMForPretraining, MLMCollator

__all__ = [
    "METHODS",
    "Method",
    "build_text_dataset",
    "check_data_arguments",
    "get_method",
    "pack_documents",
    "pack_text_dataset",
]


@dataclass(frozen=True)
class Method:
    """One pre-training method: what the script builds for it."""

    name: str
    config_class: type[PretrainingConfig]
    model_class: type[MaskedAutoEncoderPreTrainedModel]
    collator_class: type[MaskingCollator]
    build_dataset: Callable[[PreTrainedTokenizerBase, PretrainDataArguments], Dataset]
    default_data: str
    supports_packing: bool = False


EMBEDDED_WIKIPEDIA = (
    "English Wikipedia shard shipped in gensim's test data (206 articles), as clean prose passages"
)
EMBEDDED_CHITCHAT = (
    "Chit Chat Challenge conversations shipped in the chitchat-dataset package (train split, 80% of the "
    "conversations by id), as sliding-window context/response pairs"
)
EMBEDDED_WIKIPEDIA_DOCUMENTS = (
    "English Wikipedia shard shipped in gensim's test data, as clean prose articles cut into sentence-packed "
    "spans of up to max_seq_length tokens, each with context spans from its own article"
)

#: Every pre-training method, by the name ``--method`` takes.
METHODS: dict[str, Method] = {
    "mae_lm": Method(
        name="mae_lm",
        config_class=MAELMConfig,
        model_class=MAELMForMaskedLM,
        collator_class=MAELMCollator,
        build_dataset=build_text_dataset,
        default_data=EMBEDDED_WIKIPEDIA,
        supports_packing=True,
    ),
    "mlm": Method(
        name="mlm",
        config_class=MaskedLMConfig,
        model_class=MaskedLMForPretraining,
        collator_class=MLMCollator,
        build_dataset=build_text_dataset,
        default_data=EMBEDDED_WIKIPEDIA,
        supports_packing=True,
    ),
    "dial_mae": Method(
        name="dial_mae",
        config_class=DialMAEConfig,
        model_class=DialMAEForPretraining,
        collator_class=DialMAECollator,
        build_dataset=build_dialogue_pretraining_dataset,
        default_data=EMBEDDED_CHITCHAT,
    ),
    "cotmae_v2": Method(
        name="cotmae_v2",
        config_class=CoTMAEv2Config,
        model_class=CoTMAEv2ForPretraining,
        collator_class=CoTMAEv2Collator,
        build_dataset=build_cotmae_v2_dataset,
        default_data=EMBEDDED_WIKIPEDIA_DOCUMENTS,
    ),
}


def _register(method: Method) -> None:
    AutoConfig.register(method.config_class.model_type, method.config_class, exist_ok=True)
    for auto_class in (AutoModelForMaskedLM, AutoModelForPreTraining):
        auto_class.register(method.config_class, method.model_class, exist_ok=True)


for _method in METHODS.values():
    _register(_method)


def get_method(name: str) -> Method:
    """The registered method called ``name`` (a clear error lists the others)."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}") from None


def check_data_arguments(method: Method, data_args: PretrainDataArguments) -> None:
    """Raise ``ConfigError`` for data options the method does not support (``pack_sequences``)."""
    if data_args.pack_sequences and not method.supports_packing:
        packing = [name for name, m in METHODS.items() if m.supports_packing]
        raise ConfigError(
            None,
            None,
            f"method {method.name!r} does not support packed text (its data builder makes its own "
            f"examples from max_seq_length and the method's length fields); packing applies to {packing}",
            "pack_sequences",
        )
