"""maeir: masked auto-encoder pre-training and distillation for retrieval encoders.

Importing ``maeir`` registers its configs and models with the ``transformers`` Auto classes, so
``AutoModelForMaskedLM.from_pretrained(run_dir)`` works with no ``trust_remote_code``.
"""

__version__ = "0.1.0"

from .methods.cotmae_v2 import CoTMAEv2Config, CoTMAEv2ForPretraining  # noqa: E402  (registers them all)
from .methods.dial_mae import DialMAEConfig, DialMAEForPretraining  # noqa: E402
from .methods.mae_lm import MAELMConfig, MAELMForMaskedLM  # noqa: E402
from .methods.mlm import MaskedLMConfig, MaskedLMForPretraining  # noqa: E402
from .modeling import BiEncoderConfig, BiEncoderModel, MaskedAutoEncoderPreTrainedModel  # noqa: E402

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
