"""Readers, embedded default data, masking and collators."""

from .collators import MAELMCollator, MaskingCollator, MLMCollator, pad_sequences
from .cotmae_v2_collator import CoTMAEv2Collator
from .dialogue_collator import DialMAECollator
from .masking import WordBoundaries, remove_masked_tokens, replace_masked, whole_word_mask
from .retrieval_collator import ContrastiveCollator

__all__ = [
    "ContrastiveCollator",
    "DialMAECollator",
    "MAELMCollator",
    "MLMCollator",
    "MaskingCollator",
    "WordBoundaries",
    "pad_sequences",
    "remove_masked_tokens",
    "replace_masked",
    "whole_word_mask",
    "CoTMAEv2Collator",
]
