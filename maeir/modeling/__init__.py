"""Model code shared by the methods: backbone, base class, decoder, sparse pooling, bi- and cross-encoders.

Each method's own config and model live in its folder under :mod:`maeir.methods`. Importing this
package registers the bi-encoder with the Auto classes (the pre-training models are registered by
:mod:`maeir.methods`, which ``import maeir`` loads).
"""

from transformers import AutoConfig, AutoModel

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

AutoConfig.register(BiEncoderConfig.model_type, BiEncoderConfig, exist_ok=True)
AutoModel.register(BiEncoderConfig, BiEncoderModel, exist_ok=True)

__all__ = [
    "RankerRecipe",
    "load_cross_encoder",
    "save_cross_encoder",
    "score_pairs",
    "BiEncoderConfig",
    "BiEncoderModel",
    "BiEncoderOutput",
    "load_bi_encoder",
    "MaskedAutoEncoderPreTrainedModel",
    "PretrainingConfig",
]
