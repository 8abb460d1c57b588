"""Trainer subclasses."""

from .pretraining import PretrainingTrainer

__all__ = ["PretrainingTrainer"]
