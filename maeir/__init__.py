"""maeir: masked auto-encoder pre-training and distillation for retrieval encoders.

Importing ``maeir`` registers its configs and models with the ``transformers`` Auto classes, so
``AutoModelForMaskedLM.from_pretrained(run_dir)`` works with no ``trust_remote_code``.
"""

__version__ = "0.1.0"

from .modeling import (  # noqa: E402
    MAELMConfig,
    MAELMForMaskedLM,
    MaskedAutoEncoderPreTrainedModel,
    MaskedLMConfig,
    MaskedLMForPretraining,
)

__all__ = [
    "MAELMConfig",
    "MAELMForMaskedLM",
    "MaskedAutoEncoderPreTrainedModel",
    "MaskedLMConfig",
    "MaskedLMForPretraining",
    "__version__",
]
