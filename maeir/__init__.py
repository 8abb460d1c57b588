"""maeir: masked auto-encoder pre-training and distillation for retrieval encoders.

Importing ``maeir`` registers its configs and models with the ``transformers`` Auto classes, so
``AutoModelForMaskedLM.from_pretrained(run_dir)`` works with no ``trust_remote_code``.
"""

__version__ = "0.1.0"

from .modeling import (  # noqa: E402
    BiEncoderConfig,
    BiEncoderModel,
    CoTMAEv2Config,
    CoTMAEv2ForPretraining,
    DialMAEConfig,
    DialMAEForPretraining,
    MAELMConfig,
    MAELMForMaskedLM,
    MaskedAutoEncoderPreTrainedModel,
    MaskedLMConfig,
    MaskedLMForPretraining,
)

__all__ = [
    "DialMAEConfig",
    "DialMAEForPretraining",
    "MAELMConfig",
    "MAELMForMaskedLM",
    "MaskedAutoEncoderPreTrainedModel",
    "MaskedLMConfig",
    "MaskedLMForPretraining",
    "__version__",
    "CoTMAEv2Config",
    "CoTMAEv2ForPretraining",
    "BiEncoderConfig",
    "BiEncoderModel",
]
