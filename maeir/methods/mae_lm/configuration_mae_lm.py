"""Configuration of MAE-LM (Meng et al., 2023, "Representation Deficiency in Masked Language Modeling")."""

from __future__ import annotations

from typing import ClassVar

from ...modeling.base import PretrainingConfig


class MAELMConfig(PretrainingConfig):
    """MAE-LM: [MASK] tokens are removed from the encoder; a shallow decoder restores them.

    Design, defaults and deviations from the paper: docs/methods.md#mae-lm.

    Args:
        encoder_config: the backbone's config.
        mask_rate: share of each sequence's words that are masked (paper: 15%, no 80/10/10: masked
            tokens are removed, not replaced).
        whole_word_mask: mask whole words (True) or single sub-tokens (False).
        decoder_layers: depth of the decoder; 1/6 to 1/3 of the encoder (2 for 6 layers, 4 for 12).
        decoder_dropout: dropout inside the decoder (the paper uses 0).
        decoder_max_positions: size of the decoder's own learned position table (default: the
            encoder's ``max_position_embeddings``).
    """

    model_type = "mae_lm"
    mask_rate: float = 0.15
    whole_word_mask: bool = True
    decoder_layers: int = 2
    decoder_dropout: float = 0.0
    decoder_max_positions: int | None = None

    paper: ClassVar[dict] = {
        "method_title": "MAE-LM",
        "title": "Representation Deficiency in Masked Language Modeling",
        "arxiv": "2302.02060",
        "section": "Section 4 (MAE-LM)",
        "bibtex": (
            "@inproceedings{meng2024maelm,\n  title={Representation Deficiency in Masked Language Modeling},\n"
            "  author={Meng, Yu and Krishnan, Jitin and Wang, Sinong and Wang, Qifan and Mao, Yuning and Fang, Han"
            " and Ghazvininejad, Marjan and Han, Jiawei and Zettlemoyer, Luke},\n"
            "  booktitle={ICLR},\n  year={2024}\n}"
        ),
        "published": {"GLUE avg (base, MAE-LM)": 86.1, "GLUE avg (base, MLM)": 85.2},
    }

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.check_mask_rates("mask_rate")
        if self.decoder_layers < 1:
            raise ValueError(f"decoder_layers must be >= 1, got {self.decoder_layers}")
        if self.decoder_max_positions is None:
            self.decoder_max_positions = self.encoder_config.max_position_embeddings
