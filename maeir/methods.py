"""The pre-training methods that ``scripts/pretrain.py`` runs: model, collator and data for each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from .arguments import PretrainDataArguments
from .data.collators import MAELMCollator, MaskingCollator, MLMCollator
from .data.cotmae_v2_collator import CoTMAEv2Collator
from .data.dialogue_collator import DialMAECollator
from .modeling import (
    DialMAEForPretraining,
    MAELMForMaskedLM,
    MaskedAutoEncoderPreTrainedModel,
    MaskedLMForPretraining,
)
from .modeling.modeling_cotmae_v2 import CoTMAEv2ForPretraining


def build_text_dataset(tokenizer: PreTrainedTokenizerBase, data_args: PretrainDataArguments) -> Dataset:
    """Tokenised text corpus: one example per record, right-truncated to ``max_seq_length``."""
    from .data.corpus import load_text_corpus

    corpus = load_text_corpus(data_args.train_file, data_args.text_field, data_args.max_train_samples)
    tokenizer.truncation_side = "right"

    def tokenize(batch):
        return {
            "input_ids": tokenizer(batch["text"], truncation=True, max_length=data_args.max_seq_length)[
                "input_ids"
            ]
        }

    return corpus.map(
        tokenize,
        batched=True,
        remove_columns=corpus.column_names,
        num_proc=data_args.preprocessing_num_workers,
        desc="Tokenising",
    )


@dataclass(frozen=True)
class Method:
    """One pre-training method: what the script builds for it."""

    name: str
    model_class: type[MaskedAutoEncoderPreTrainedModel]
    collator_class: type[MaskingCollator]
    build_dataset: Callable[[PreTrainedTokenizerBase, PretrainDataArguments], Dataset]
    default_data: str


EMBEDDED_WIKIPEDIA = (
    "English Wikipedia shard shipped in gensim's test data (206 articles), as clean prose passages"
)


def build_dialogue_dataset(tokenizer: PreTrainedTokenizerBase, data_args: PretrainDataArguments) -> Dataset:
    """Dial-MAE: sliding-window context/response pairs (see :mod:`maeir.data.dialogue`)."""
    from .data.dialogue import build_dialogue_pretraining_dataset

    return build_dialogue_pretraining_dataset(tokenizer, data_args)


EMBEDDED_CHITCHAT = (
    "Chit Chat Challenge conversations shipped in the chitchat-dataset package (train split, 80% of the "
    "conversations by id), as sliding-window context/response pairs"
)


METHODS: dict[str, Method] = {
    "mae_lm": Method("mae_lm", MAELMForMaskedLM, MAELMCollator, build_text_dataset, EMBEDDED_WIKIPEDIA),
    "mlm": Method("mlm", MaskedLMForPretraining, MLMCollator, build_text_dataset, EMBEDDED_WIKIPEDIA),
    "dial_mae": Method(
        "dial_mae", DialMAEForPretraining, DialMAECollator, build_dialogue_dataset, EMBEDDED_CHITCHAT
    ),
}


def build_context_span_dataset(
    tokenizer: PreTrainedTokenizerBase, data_args: PretrainDataArguments
) -> Dataset:
    """CoT-MAE v2: anchor spans with same-document context spans (see :mod:`maeir.data.context_spans`)."""
    from .data.context_spans import build_cotmae_v2_dataset

    return build_cotmae_v2_dataset(tokenizer, data_args)


EMBEDDED_WIKIPEDIA_DOCUMENTS = (
    "English Wikipedia shard shipped in gensim's test data, as clean prose articles cut into sentence-packed "
    "spans of up to max_seq_length tokens, each with context spans from its own article"
)

METHODS["cotmae_v2"] = Method(
    "cotmae_v2",
    CoTMAEv2ForPretraining,
    CoTMAEv2Collator,
    build_context_span_dataset,
    EMBEDDED_WIKIPEDIA_DOCUMENTS,
)


def get_method(name: str) -> Method:
    """The registered method called ``name`` (a clear error lists the others)."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}") from None
