"""Trainer subclasses: :class:`RunFolderTrainer` (the base: loss parts, atomic run folder) and one per
kind of run (pre-training, bi-encoder, ranker, MD2PR)."""

from .base import RunFolderTrainer
from .checkpointing import CheckpointingTrainer
from .contrastive import ContrastiveTrainer
from .distillation import MD2PRTrainer
from .pretraining import PretrainingTrainer
from .ranker import RankerTrainer

__all__ = [
    "CheckpointingTrainer",
    "ContrastiveTrainer",
    "MD2PRTrainer",
    "PretrainingTrainer",
    "RankerTrainer",
    "RunFolderTrainer",
]
