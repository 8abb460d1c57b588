"""What "probe" and "fine-tune and evaluate" mean for a study, one module per ``task:``.

A task is built from the config's ``evaluation`` and ``finetune`` fields and has ``describe()``,
``load(model_path)``, ``probe(model, tokenizer)`` (metrics, per-unit scores, extra record fields),
``finetune_stages()`` and ``finetune_and_evaluate(model_path, output_dir, seed, stage, ...)``.
"""

from .response_selection import ResponseSelectionTask
from .retrieval import ClsRetrievalView, RetrievalTask
from .text_encoder import TextEncoderTask

TASKS = {
    "response_selection": ResponseSelectionTask,
    "text_encoder": TextEncoderTask,
    "retrieval": RetrievalTask,
}

__all__ = ["TASKS", "ClsRetrievalView", "ResponseSelectionTask", "RetrievalTask", "TextEncoderTask"]
