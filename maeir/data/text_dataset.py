"""Plain-text pre-training data (MLM, MAE-LM): tokenised records, or packed blocks (docs/methods.md#shared-ground)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from ..arguments import PretrainDataArguments
from ..errors import ConfigError
from .collators import special_template
from .corpus import load_text_corpus


def build_text_dataset(tokenizer: PreTrainedTokenizerBase, data_args: PretrainDataArguments) -> Dataset:
    """Tokenised text corpus: one example per record, right-truncated to ``max_seq_length``.

    With ``pack_sequences``: packed blocks instead (:func:`pack_documents`), nothing truncated away.
    """
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
