"""Trainer subclasses."""

from .contrastive import ContrastiveTrainer
from .distillation import MD2PRTrainer
from .pretraining import PretrainingTrainer
from .ranker import RankerTrainer

__all__ = ["ContrastiveTrainer", "MD2PRTrainer", "PretrainingTrainer", "RankerTrainer"]
