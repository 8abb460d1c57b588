"""CoT-MAE v2 (docs/methods.md#cot-mae-v2): contextual masked auto-encoding with multi-view decoders."""

from .collator import CoTMAEv2Collator
from .configuration_cotmae_v2 import CoTMAEv2Config
from .data import build_cotmae_v2_dataset, context_span_dataset
from .modeling_cotmae_v2 import CoTMAEv2ForPretraining, CoTMAEv2Output

__all__ = [
    "CoTMAEv2Collator",
    "CoTMAEv2Config",
    "CoTMAEv2ForPretraining",
    "CoTMAEv2Output",
    "build_cotmae_v2_dataset",
    "context_span_dataset",
]
