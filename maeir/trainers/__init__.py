"""Trainer subclasses."""

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
]
