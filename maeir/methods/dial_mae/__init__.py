"""Dial-MAE (docs/methods.md#dial-mae): context encoder / shallow response decoder post-training."""

from .collator import DialMAECollator
from .configuration_dial_mae import DialMAEConfig
from .data import build_dialogue_pretraining_dataset, dialogue_pair_dataset, dialogue_pairs
from .modeling_dial_mae import DialMAEForPretraining, DialMAEOutput

__all__ = [
    "DialMAECollator",
    "DialMAEConfig",
    "DialMAEForPretraining",
    "DialMAEOutput",
    "build_dialogue_pretraining_dataset",
    "dialogue_pair_dataset",
    "dialogue_pairs",
]
