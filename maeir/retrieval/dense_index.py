"""Dense search with FAISS: any ``index_factory`` string, inner product, on GPU when faiss has one.

Public API: :class:`DenseIndex` (``build``, ``search``, ``save``, ``load``) and :func:`dense_search`
(embeddings in, a run ``{query_id: {doc_id: score}}`` out). Scores are inner products (cosine for
normalised vectors), as CoT-MAE v2 retrieval asks (docs/methods.md#cot-mae-v2).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

from ..io_utils import atomic_write_text

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]


def faiss_gpu_count() -> int:
    """GPUs faiss can use (0 for a CPU-only faiss build)."""
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


class DenseIndex:
    """A FAISS index over document vectors, keyed by document id.

    Args:
        dim: vector size.
        index_factory: a ``faiss.index_factory`` string: ``"Flat"`` (exact), ``"HNSW32"``,
            ``"IVF4096,PQ64"``, ``"OPQ64,IVF65536_HNSW32,PQ64"``, ...
        search_parameters: ``faiss.ParameterSpace`` settings, e.g. ``"nprobe=64"`` or ``"efSearch=128"``.
        use_gpu: ``"auto"`` (when faiss has GPUs), True or False. Indexes that have no GPU version
            (HNSW) stay on the CPU.
    """

    def __init__(
        self,
        dim: int,
        index_factory: str = "Flat",
        search_parameters: str | None = None,
        use_gpu: str | bool = "auto",
    ) -> None:
        self.dim = dim
        self.index_factory = index_factory
        self.search_parameters = search_parameters
        self.index = faiss.index_factory(dim, index_factory, faiss.METRIC_INNER_PRODUCT)
        self.ids: list[str] = []
        self.on_gpu = False
        self._want_gpu = faiss_gpu_count() > 0 if use_gpu == "auto" else bool(use_gpu)

    def _to_gpu(self) -> None:
        if not self._want_gpu or self.on_gpu:
            return
        try:
            resources = faiss.StandardGpuResources()
            options = faiss.GpuClonerOptions()
            options.useFloat16 = True  # halves GPU memory for Flat / IVF; scores stay fp32
            self.index = faiss.index_cpu_to_gpu(resources, 0, self.index, options)
            self._resources = resources
            self.on_gpu = True
        except (RuntimeError, AttributeError) as err:  # e.g. HNSW has no GPU version
            logger.warning("faiss index %r stays on the CPU: %s", self.index_factory, err)

    def build(
        self, vectors: np.ndarray, ids: Sequence[str], train_sample: int | None = 1_000_000
    ) -> DenseIndex:
        """Train (for IVF / PQ, on at most ``train_sample`` random vectors) and add ``vectors``."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected {len(ids)} vectors of size {self.dim}, got {vectors.shape}")
        self._to_gpu()
        if not self.index.is_trained:
            sample = vectors
            if train_sample and len(vectors) > train_sample:
                rng = np.random.default_rng(0)
                sample = vectors[rng.choice(len(vectors), train_sample, replace=False)]
            self.index.train(sample)
        self.index.add(vectors)
        self.ids.extend(ids)
        self._apply_search_parameters()
        return self

    def _apply_search_parameters(self) -> None:
        if not self.search_parameters:
            return
        space = faiss.GpuParameterSpace() if self.on_gpu else faiss.ParameterSpace()
        space.set_index_parameters(self.index, self.search_parameters)

    def search(self, queries: np.ndarray, k: int, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """``(scores [Q, k], row indices [Q, k])``; -1 marks a missing hit (fewer than ``k`` found)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self.ids))
        scores, rows = [], []
        for start in range(0, len(queries), batch_size):
            s, r = self.index.search(queries[start : start + batch_size], k)
            scores.append(s)
            rows.append(r)
        if not scores:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.concatenate(scores), np.concatenate(rows)

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        index = faiss.index_gpu_to_cpu(self.index) if self.on_gpu else self.index
        tmp = folder / ".index.faiss.tmp"
        faiss.write_index(index, str(tmp))
        os.replace(tmp, folder / "index.faiss")
        meta = {
            "dim": self.dim,
            "index_factory": self.index_factory,
            "search_parameters": self.search_parameters,
        }
        atomic_write_text(folder / "index.json", json.dumps({**meta, "ids": self.ids}))

    @classmethod
    def load(cls, folder: str | os.PathLike, use_gpu: str | bool = "auto") -> DenseIndex:
        folder = Path(folder)
        meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        index = cls(meta["dim"], meta["index_factory"], meta["search_parameters"], use_gpu)
        index.index = faiss.read_index(str(folder / "index.faiss"))
        index.ids = list(meta["ids"])
        index._to_gpu()
        index._apply_search_parameters()  # not stored in the faiss file
        return index


def dense_search(
    doc_ids: Sequence[str],
    doc_vectors: np.ndarray,
    query_ids: Sequence[str],
    query_vectors: np.ndarray,
    k: int = 1000,
    index_factory: str = "Flat",
    search_parameters: str | None = None,
    use_gpu: str | bool = "auto",
    show_progress: bool = False,
) -> Run:
    """Top-``k`` documents per query by inner product, as a run ``{query_id: {doc_id: score}}``."""
    index = DenseIndex(doc_vectors.shape[1], index_factory, search_parameters, use_gpu).build(
        doc_vectors, doc_ids
    )
    run: Run = {}
    batch = 1024
    for start in tqdm(range(0, len(query_ids), batch), desc="dense search", disable=not show_progress):
        scores, rows = index.search(query_vectors[start : start + batch], k)
        for qid, srow, rrow in zip(query_ids[start : start + batch], scores, rows):
            run[qid] = {index.ids[r]: float(s) for s, r in zip(srow, rrow) if r >= 0}
    return run
