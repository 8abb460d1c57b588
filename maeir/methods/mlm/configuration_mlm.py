"""Configuration of the plain masked-LM baseline (BERT-style MLM through the maeir machinery)."""

from __future__ import annotations

from typing import ClassVar

from ...modeling.base import PretrainingConfig


class MaskedLMConfig(PretrainingConfig):
    """Plain MLM continued pre-training: the baseline every MAE method is compared with.

    Design and defaults: docs/methods.md#plain-mlm.

    Args:
        encoder_config: the backbone's config.
        mask_rate: share of each sequence's words that are masked.
        whole_word_mask: mask whole words (True) or single sub-tokens (False).
        mask_replace_prob: of the chosen tokens, share replaced by [MASK] (BERT: 0.8).
        random_replace_prob: share replaced by a random token (BERT: 0.1); the rest stay unchanged.
    """

    model_type = "maeir_mlm"
    mask_rate: float = 0.15
    whole_word_mask: bool = True
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1

    paper: ClassVar[dict] = {
        "method_title": "MLM",
        "title": "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
        "arxiv": "1810.04805",
        "section": "Section 3.1 (Masked LM)",
        "bibtex": (
            "@inproceedings{devlin2019bert,\n  title={BERT: Pre-training of Deep Bidirectional Transformers for"
            " Language Understanding},\n  author={Devlin, Jacob and Chang, Ming-Wei and Lee, Kenton and"
            " Toutanova, Kristina},\n  booktitle={NAACL},\n  year={2019}\n}"
        ),
        "published": {},
    }
