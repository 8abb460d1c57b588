"""Readers, masking and the collator bases shared by the methods (the embedded data: :mod:`maeir.datasets`).

Each method's own collator lives in its folder under :mod:`maeir.methods`; the names below that
point there (``maeir.data.MAELMCollator``, ...) stay available as aliases of the public API.
"""

from .collators import EncoderDecoderMaskingCollator, MaskingCollator, pad_sequences
from .masking import WordBoundaries, remove_masked_tokens, replace_masked, whole_word_mask
from .retrieval_collator import ContrastiveCollator


def __getattr__(name: str):
    # Aliases of the methods' collators, resolved on first use: the shared data package never loads
    # maeir.methods itself (the methods build on it), so these imports run only when a name is asked for.
    if name == "MLMCollator":
        from ..methods.mlm import MLMCollator

        return MLMCollator
    if name == "MAELMCollator":
        from ..methods.mae_lm import MAELMCollator

        return MAELMCollator
    if name == "DialMAECollator":
        from ..methods.dial_mae import DialMAECollator

        return DialMAECollator
    if name == "CoTMAEv2Collator":
        from ..methods.cotmae_v2 import CoTMAEv2Collator

        return CoTMAEv2Collator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ContrastiveCollator",
    "DialMAECollator",
    "EncoderDecoderMaskingCollator",
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
