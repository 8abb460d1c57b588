"""The pre-training methods that ``scripts/pretrain.py`` runs: model, collator and data for each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from .arguments import PretrainDataArguments
from .data.collators import MAELMCollator, MaskingCollator, MLMCollator
from .modeling import MAELMForMaskedLM, MaskedAutoEncoderPreTrainedModel, MaskedLMForPretraining


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

METHODS: dict[str, Method] = {
    "mae_lm": Method("mae_lm", MAELMForMaskedLM, MAELMCollator, build_text_dataset, EMBEDDED_WIKIPEDIA),
    "mlm": Method("mlm", MaskedLMForPretraining, MLMCollator, build_text_dataset, EMBEDDED_WIKIPEDIA),
}


def get_method(name: str) -> Method:
    """The registered method called ``name`` (a clear error lists the others)."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}") from None
