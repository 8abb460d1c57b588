"""BERT-style masked language modelling, the baseline (docs/methods.md#shared-ground)."""

from .collator import MLMCollator
from .configuration_mlm import MaskedLMConfig
from .modeling_mlm import MaskedLMForPretraining, MaskedLMPretrainingOutput

__all__ = [
    "MLMCollator",
    "MaskedLMConfig",
    "MaskedLMForPretraining",
    "MaskedLMPretrainingOutput",
]
