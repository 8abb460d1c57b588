"""Hybrid fusion of a dense and a sparse run (docs/methods.md#cot-mae-v2: sum of both scores over the union).

Public API:

- :func:`hybrid_rescore`: exact hybrid scores for the union of the two candidate lists of each
  query, computed from the embeddings (a document found by one view alone gets its real score
  from the other view, not a guess): ``dense_weight * q.d + sparse_weight * q.d``.
- :func:`fuse_runs`: weighted sum of two runs from any two systems, a document missing from one
  run taking that run's lowest score for the query (when the embeddings are not at hand).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse
import torch

from .encode import Embeddings

Run = dict[str, dict[str, float]]


def hybrid_rescore(
    dense_run: Mapping[str, Mapping[str, float]],
    sparse_run: Mapping[str, Mapping[str, float]],
    queries: Embeddings,
    documents: Embeddings,
    dense_weight: float = 1.0,
    sparse_weight: float = 1.0,
    k: int = 1000,
) -> Run:
    """Hybrid run from the two runs and the :class:`~maeir.retrieval.encode.Embeddings` that made them."""
    doc_row = {doc_id: row for row, doc_id in enumerate(documents.ids)}
    doc_sparse = to_scipy_csr(documents.sparse)
    query_sparse = to_scipy_csr(queries.sparse)
    run: Run = {}
    for q, qid in enumerate(queries.ids):
        candidates = list(dict.fromkeys([*dense_run.get(qid, {}), *sparse_run.get(qid, {})]))
        if not candidates:
            run[qid] = {}
            continue
        rows = np.fromiter((doc_row[d] for d in candidates), dtype=np.int64, count=len(candidates))
        dense = documents.dense[rows].astype(np.float64) @ queries.dense[q].astype(np.float64)
        sparse = np.asarray((doc_sparse[rows] @ query_sparse[q].T).todense()).ravel()
        scores = dense_weight * dense + sparse_weight * sparse
        top = np.argsort(-scores, kind="stable")[:k]
        run[qid] = {candidates[i]: float(scores[i]) for i in top}
    return run


def to_scipy_csr(matrix: torch.Tensor):
    """A torch sparse (CSR/COO) matrix as a ``scipy.sparse.csr_matrix`` of float64."""

    csr = matrix.to_sparse_csr() if matrix.layout != torch.sparse_csr else matrix
    return scipy.sparse.csr_matrix(
        (csr.values().double().numpy(), csr.col_indices().numpy(), csr.crow_indices().numpy()),
        shape=tuple(csr.shape),
    )


def fuse_runs(
    run_a: Mapping[str, Mapping[str, float]],
    run_b: Mapping[str, Mapping[str, float]],
    weight_a: float = 1.0,
    weight_b: float = 1.0,
    k: int = 1000,
) -> Run:
    """``weight_a * a + weight_b * b`` over the union of both lists; a missing score is the run's minimum."""
    fused: Run = {}
    for qid in dict.fromkeys([*run_a, *run_b]):
        a, b = run_a.get(qid, {}), run_b.get(qid, {})
        floor_a = min(a.values()) if a else 0.0
        floor_b = min(b.values()) if b else 0.0
        scores = {
            d: weight_a * a.get(d, floor_a) + weight_b * b.get(d, floor_b) for d in dict.fromkeys([*a, *b])
        }
        fused[qid] = dict(sorted(scores.items(), key=lambda item: -item[1])[:k])
    return fused
