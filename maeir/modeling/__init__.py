"""Model classes; importing this package registers them with the Auto classes."""

from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForPreTraining

from .base import MaskedAutoEncoderPreTrainedModel, PretrainingConfig
from .configuration_mae_lm import MAELMConfig
from .configuration_masked_lm import MaskedLMConfig
from .modeling_mae_lm import MAELMForMaskedLM, MAELMOutput
from .modeling_masked_lm import MaskedLMForPretraining, MaskedLMPretrainingOutput


def _register(config_class, model_class, *auto_classes) -> None:
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    for auto_class in auto_classes:
        auto_class.register(config_class, model_class, exist_ok=True)


_register(MAELMConfig, MAELMForMaskedLM, AutoModelForMaskedLM, AutoModelForPreTraining)
_register(MaskedLMConfig, MaskedLMForPretraining, AutoModelForMaskedLM, AutoModelForPreTraining)

__all__ = [
    "MAELMConfig",
    "MAELMForMaskedLM",
    "MAELMOutput",
    "MaskedAutoEncoderPreTrainedModel",
    "MaskedLMConfig",
    "MaskedLMForPretraining",
    "MaskedLMPretrainingOutput",
    "PretrainingConfig",
]
