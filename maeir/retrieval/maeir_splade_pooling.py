"""maeir's SPLADE pooling as a sentence-transformers module, copied into a sparse bi-encoder folder so that
``SparseEncoder(folder, trust_remote_code=True)`` encodes exactly like maeir (docs/methods.md#cot-mae-v2).

This file is copied as it is next to ``modules.json`` (sentence-transformers loads it from the folder, so
maeir need not be installed): it imports only torch and sentence-transformers. It differs from the stock
``SpladePooling`` as maeir's sparse view does: positions holding an excluded (special) token do not take
part in the max, the excluded vocabulary entries are zero, and only the ``top_k`` largest entries of each
vector are kept (maeir's inference-time ``sparse_top_k``).
"""

from __future__ import annotations

import torch
from sentence_transformers.sparse_encoder.modules import SpladePooling


class MaeirSpladePooling(SpladePooling):
    """``w_j = log(1 + relu(max_i logits_ij))`` over the real, non-excluded positions; top-k pruned."""

    config_keys = [
        "pooling_strategy",
        "activation_function",
        "embedding_dimension",
        "excluded_token_ids",
        "top_k",
    ]

    def __init__(
        self,
        pooling_strategy: str = "max",
        activation_function: str = "relu",
        embedding_dimension: int | None = None,
        chunk_size: int | None = None,
        excluded_token_ids: list[int] | None = None,
        top_k: int | None = None,
    ) -> None:
        super().__init__(pooling_strategy, activation_function, embedding_dimension, chunk_size)
        self.excluded_token_ids = sorted(set(excluded_token_ids or []))
        self.top_k = top_k

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = features["token_embeddings"].float()
        valid = features["attention_mask"].bool()
        excluded = torch.tensor(self.excluded_token_ids, dtype=torch.long, device=logits.device)
        if excluded.numel():
            valid = valid & ~torch.isin(features["input_ids"], excluded)
        pooled = logits.masked_fill(~valid.unsqueeze(-1), float("-inf")).max(dim=1).values
        pooled = torch.log1p(torch.relu(pooled))  # a row without a valid position: all zero
        if excluded.numel():
            pooled = pooled.index_fill(1, excluded, 0.0)
        if self.top_k and self.top_k < pooled.shape[-1]:
            values, indices = pooled.topk(self.top_k, dim=-1)
            pooled = torch.zeros_like(pooled).scatter(-1, indices, values)
        self.embedding_dimension = pooled.shape[1]
        features["sentence_embedding"] = pooled
        return features
