"""Readers, embedded default data, masking and collators."""

from .collators import MAELMCollator, MaskingCollator, MLMCollator, pad_sequences
from .masking import WordBoundaries, remove_masked_tokens, replace_masked, whole_word_mask

__all__ = [
    "MAELMCollator",
    "MLMCollator",
    "MaskingCollator",
    "WordBoundaries",
    "pad_sequences",
    "remove_masked_tokens",
    "replace_masked",
    "whole_word_mask",
]
