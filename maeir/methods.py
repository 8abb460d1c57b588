"""The pre-training methods that ``scripts/pretrain.py`` runs: model, collator and data for each."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from .arguments import PretrainDataArguments
from .data.collators import MAELMCollator, MaskingCollator, MLMCollator
from .data.cotmae_v2_collator import CoTMAEv2Collator
from .data.dialogue_collator import DialMAECollator
from .errors import ConfigError
from .modeling import (
    DialMAEForPretraining,
    MAELMForMaskedLM,
    MaskedAutoEncoderPreTrainedModel,
    MaskedLMForPretraining,
)
from .modeling.modeling_cotmae_v2 import CoTMAEv2ForPretraining


def build_text_dataset(tokenizer: PreTrainedTokenizerBase, data_args: PretrainDataArguments) -> Dataset:
    """Tokenised text corpus: one example per record, right-truncated to ``max_seq_length``.

    With ``pack_sequences``: packed blocks instead (:func:`pack_documents`), nothing truncated away.
    """
    from .data.corpus import load_text_corpus

    corpus = load_text_corpus(data_args.train_file, data_args.text_field, data_args.max_train_samples)
    if data_args.pack_sequences:
        return pack_text_dataset(
            corpus, tokenizer, data_args.max_seq_length, data_args.preprocessing_num_workers
        )
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


def pack_documents(
    documents: Iterable[Sequence[int]],
    block_size: int,
    prefix: Sequence[int],
    suffix: Sequence[int],
    separator: int,
) -> list[list[int]]:
    """``prefix + chunk + suffix`` blocks of at most ``block_size`` ids over the stream of documents.

    The stream is every non-empty document followed by ``separator``; it is cut into chunks of
    ``block_size - len(prefix) - len(suffix)`` ids and the last, shorter chunk is kept (transformers'
    ``group_texts`` without dropping the remainder).
    """
    inner = block_size - len(prefix) - len(suffix)
    if inner < 1:
        raise ConfigError(
            None,
            None,
            f"{block_size} leaves no room beside {len(prefix) + len(suffix)} special tokens",
            "max_seq_length",
        )
    stream = [token for ids in documents if len(ids) for token in (*ids, separator)]
    return [[*prefix, *stream[i : i + inner], *suffix] for i in range(0, len(stream), inner)]


def pack_text_dataset(
    corpus: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    num_proc: int | None = None,
) -> Dataset:
    """A ``text`` corpus as packed ``input_ids`` blocks of ``max_seq_length`` (``datasets.map``, batched).

    Documents are tokenised without truncation or special tokens, each followed by the tokenizer's
    separator ([SEP]); each block is [CLS] + up to ``max_seq_length - 2`` tokens + [SEP] (the
    tokenizer's own template). Every token is kept: each map batch ends with one shorter block.
    """
    from .data.collators import special_template

    prefix, suffix = special_template(tokenizer)
    separator = tokenizer.sep_token_id
    if separator is None:
        raise ConfigError(None, None, f"{type(tokenizer).__name__} has no separator token", "pack_sequences")
    pack_documents([], max_seq_length, prefix, suffix, separator)  # checks the block size up front

    def pack(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        return {"input_ids": pack_documents(ids, max_seq_length, prefix, suffix, separator)}

    return corpus.map(
        pack,
        batched=True,
        remove_columns=corpus.column_names,
        num_proc=num_proc,
        desc=f"Packing into blocks of {max_seq_length}",
    )


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


@dataclass(frozen=True)
class Method:
    """One pre-training method: what the script builds for it."""

    name: str
    model_class: type[MaskedAutoEncoderPreTrainedModel]
    collator_class: type[MaskingCollator]
    build_dataset: Callable[[PreTrainedTokenizerBase, PretrainDataArguments], Dataset]
    default_data: str
    supports_packing: bool = False


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
    "mae_lm": Method(
        "mae_lm",
        MAELMForMaskedLM,
        MAELMCollator,
        build_text_dataset,
        EMBEDDED_WIKIPEDIA,
        supports_packing=True,
    ),
    "mlm": Method(
        "mlm",
        MaskedLMForPretraining,
        MLMCollator,
        build_text_dataset,
        EMBEDDED_WIKIPEDIA,
        supports_packing=True,
    ),
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
