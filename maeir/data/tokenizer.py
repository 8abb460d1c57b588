"""A WordPiece tokenizer trained on a corpus, for pre-training from scratch (``--train_tokenizer_vocab_size``).

:func:`train_wordpiece_tokenizer` trains BERT's WordPiece vocabulary with the ``tokenizers`` library
and saves a ``BertTokenizerFast`` folder that ``AutoTokenizer.from_pretrained`` loads offline, with
the special tokens first: ``[PAD]`` = 0, ``[UNK]`` = 1, ``[CLS]`` = 2, ``[SEP]`` = 3, ``[MASK]`` = 4.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import BertWordPieceTokenizer
from tokenizers.models import WordPiece
from transformers import BertTokenizerFast

from ..errors import ConfigError
from ..io_utils import atomic_directory

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    output_dir: str | os.PathLike,
    lowercase: bool = True,
    min_frequency: int = 2,
) -> str:
    """Train a WordPiece vocabulary of at most ``vocab_size`` tokens on ``texts``; return ``output_dir``.

    BERT's normalisation and pre-tokenisation (``lowercase`` as bert-base-uncased), ``##`` word
    pieces, and the five BERT special tokens at ids 0-4. The vocabulary is smaller than
    ``vocab_size`` when the corpus has fewer pieces; ``len(tokenizer)`` is the real size. The folder
    is written atomically (``tokenizer.json``, ``tokenizer_config.json``).
    """

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= len(SPECIAL_TOKENS):
        raise ConfigError(
            None,
            None,
            f"must be an integer above {len(SPECIAL_TOKENS)} (the special tokens), got {vocab_size!r}",
            "train_tokenizer_vocab_size",
        )
    wordpiece = BertWordPieceTokenizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    wordpiece.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        wordpieces_prefix="##",
    )
    if wordpiece.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise ConfigError(
            None, None, "the texts gave no vocabulary (empty corpus?)", "train_tokenizer_vocab_size"
        )
    # The trainer numbers the ##-pieces in hash-map order (huggingface/tokenizers#1794): renumber the
    # vocabulary canonically (special tokens, then the pieces sorted), so equal vocabularies get equal ids.
    # WordPiece encoding is a longest-match over the set of pieces, so the ids' order changes no encoding.
    vocab = wordpiece.get_vocab()
    pieces = sorted(token for token in vocab if token not in SPECIAL_TOKENS)
    wordpiece._tokenizer.model = WordPiece(
        {token: i for i, token in enumerate([*SPECIAL_TOKENS, *pieces])},
        unk_token="[UNK]",
        continuing_subword_prefix="##",
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=wordpiece._tokenizer,
        do_lower_case=lowercase,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    with atomic_directory(output_dir) as staging:
        tokenizer.save_pretrained(staging)
    return os.fspath(output_dir)


def vocabulary_digest(folder: str | os.PathLike) -> str:
    """SHA-256 of a tokenizer folder's vocabulary (``tokenizer.json``'s model vocab, ids included)."""
    vocab = json.loads((Path(folder) / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    return hashlib.sha256(json.dumps(vocab, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
