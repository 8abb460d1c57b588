"""MAE-LM (docs/methods.md#mae-lm): masked tokens removed from the encoder, predicted by a decoder."""

from .collator import MAELMCollator
from .configuration_mae_lm import MAELMConfig
from .modeling_mae_lm import MAELMForMaskedLM, MAELMOutput

__all__ = [
    "MAELMCollator",
    "MAELMConfig",
    "MAELMForMaskedLM",
    "MAELMOutput",
]
