"""Representation analyses (effective rank, MAE-LM paper Section 3)."""

from .effective_rank import effective_rank, layerwise_effective_rank

__all__ = ["effective_rank", "layerwise_effective_rank"]
