"""Model classes; importing this package registers them with the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining

from ..retrieval.configuration_bi_encoder import BiEncoderConfig
from ..retrieval.loading import load_bi_encoder
from ..retrieval.modeling_bi_encoder import BiEncoderModel, BiEncoderOutput
from ..retrieval.modeling_cross_encoder import (
    RankerRecipe,
    load_cross_encoder,
    save_cross_encoder,
    score_pairs,
)
from .base import MaskedAutoEncoderPreTrainedModel, PretrainingConfig
from .configuration_cotmae_v2 import CoTMAEv2Config
from .configuration_dial_mae import DialMAEConfig
from .configuration_mae_lm import MAELMConfig
from .configuration_masked_lm import MaskedLMConfig
from .modeling_cotmae_v2 import CoTMAEv2ForPretraining, CoTMAEv2Output
from .modeling_dial_mae import DialMAEForPretraining, DialMAEOutput
from .modeling_mae_lm import MAELMForMaskedLM, MAELMOutput
from .modeling_masked_lm import MaskedLMForPretraining, MaskedLMPretrainingOutput
from .modeling_md2pr import MD2PRStudentModel, MD2PRStudentOutput


def _register(config_class, model_class, *auto_classes) -> None:
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    for auto_class in auto_classes:
        auto_class.register(config_class, model_class, exist_ok=True)


_register(MAELMConfig, MAELMForMaskedLM, AutoModelForMaskedLM, AutoModelForPreTraining)
_register(MaskedLMConfig, MaskedLMForPretraining, AutoModelForMaskedLM, AutoModelForPreTraining)
_register(DialMAEConfig, DialMAEForPretraining, AutoModelForMaskedLM, AutoModelForPreTraining)
_register(BiEncoderConfig, BiEncoderModel, AutoModel)
_register(CoTMAEv2Config, CoTMAEv2ForPretraining, AutoModelForMaskedLM, AutoModelForPreTraining)

__all__ = [
    "MD2PRStudentModel",
    "MD2PRStudentOutput",
    "RankerRecipe",
    "load_cross_encoder",
    "save_cross_encoder",
    "score_pairs",
    "DialMAEConfig",
    "DialMAEForPretraining",
    "DialMAEOutput",
    "BiEncoderConfig",
    "BiEncoderModel",
    "BiEncoderOutput",
    "load_bi_encoder",
    "MAELMConfig",
    "MAELMForMaskedLM",
    "MAELMOutput",
    "MaskedAutoEncoderPreTrainedModel",
    "MaskedLMConfig",
    "MaskedLMForPretraining",
    "MaskedLMPretrainingOutput",
    "PretrainingConfig",
    "CoTMAEv2Config",
    "CoTMAEv2ForPretraining",
    "CoTMAEv2Output",
]
