"""Sparse (SPLADE) search with an inverted index held as a PyTorch sparse matrix.

The index is the transposed document matrix ``D^T`` as a CSR tensor ``[V, N]``: row ``t`` is the
posting list of vocabulary entry ``t`` (document numbers and weights). Scoring a batch of queries is
one sparse-sparse product ``Q [q, V] @ D^T [V, N]``, which only touches the posting lists of the
queries' terms (what an inverted index does) and yields a sparse ``[q, N]`` score matrix whose
non-zeros are exactly the documents sharing a term with the query; the top ``k`` of each row are
kept. Runs on the device the index is on (docs/methods.md#cot-mae-v2: sparse retrieval).

Public API: :class:`SparseIndex` (``search``, ``save``, ``load``) and :func:`sparse_search`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

Run = dict[str, dict[str, float]]


class SparseIndex:
    """Inverted index over ``[N, V]`` sparse document vectors (any torch sparse layout or dense)."""

    def __init__(
        self, doc_vectors: torch.Tensor, ids: Sequence[str], device: str | torch.device = "cpu"
    ) -> None:
        if doc_vectors.shape[0] != len(ids):
            raise ValueError(f"{doc_vectors.shape[0]} vectors for {len(ids)} ids")
        coo = (
            doc_vectors if doc_vectors.layout == torch.sparse_coo else doc_vectors.to_sparse_coo()
        ).coalesce()
        rows, cols = coo.indices()
        keep = coo.values() != 0
        transposed = torch.sparse_coo_tensor(
            torch.stack([cols[keep], rows[keep]]), coo.values()[keep].float(), (coo.shape[1], coo.shape[0])
        ).coalesce()
        self.postings = transposed.to_sparse_csr().to(device)
        self.ids = list(ids)
        self.vocab_size = coo.shape[1]

    @property
    def num_postings(self) -> int:
        return int(self.postings.values().numel())

    def search(
        self, queries: torch.Tensor, k: int, batch_size: int = 64
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per query: ``(scores, document rows)`` of its top ``k`` (fewer when fewer documents match)."""
        device = self.postings.device
        queries = queries.to_sparse_csr() if queries.layout != torch.sparse_csr else queries
        all_scores, all_rows = [], []
        for start in range(0, queries.shape[0], batch_size):
            batch = _csr_rows(queries, start, min(start + batch_size, queries.shape[0])).to(device)
            product = torch.sparse.mm(batch, self.postings)  # [q, N] sparse CSR: the inverted-index scores
            crow, col, val = product.crow_indices(), product.col_indices(), product.values()
            for row in range(product.shape[0]):
                lo, hi = int(crow[row]), int(crow[row + 1])
                values, docs = val[lo:hi], col[lo:hi]
                if values.numel() > k:
                    values, top = values.topk(k)
                    docs = docs[top]
                else:
                    values, order = values.sort(descending=True)
                    docs = docs[order]
                all_scores.append(values.cpu())
                all_rows.append(docs.cpu())
        return all_scores, all_rows

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        postings = self.postings.cpu()
        tmp = path / ".postings.safetensors.tmp"
        save_file({"crow": postings.crow_indices(), "col": postings.col_indices(), "values": postings.values(),
                   "shape": torch.tensor(list(postings.shape))}, str(tmp))  # fmt: skip
        os.replace(tmp, path / "postings.safetensors")
        (path / "ids.json").write_text(json.dumps(self.ids), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> SparseIndex:
        path = Path(path)
        t = load_file(str(path / "postings.safetensors"))
        index = cls.__new__(cls)
        index.postings = torch.sparse_csr_tensor(
            t["crow"], t["col"], t["values"], size=tuple(t["shape"].tolist())
        )
        index.postings = index.postings.to(device)
        index.ids = json.loads((path / "ids.json").read_text(encoding="utf-8"))
        index.vocab_size = index.postings.shape[0]
        return index


def _csr_rows(matrix: torch.Tensor, start: int, end: int) -> torch.Tensor:
    crow = matrix.crow_indices()
    lo, hi = int(crow[start]), int(crow[end])
    return torch.sparse_csr_tensor(
        crow[start : end + 1] - lo, matrix.col_indices()[lo:hi], matrix.values()[lo:hi].float(),
        size=(end - start, matrix.shape[1]),
    )  # fmt: skip


def sparse_search(
    doc_ids: Sequence[str],
    doc_vectors: torch.Tensor,
    query_ids: Sequence[str],
    query_vectors: torch.Tensor,
    k: int = 1000,
    device: str | torch.device = "cpu",
    show_progress: bool = False,
) -> Run:
    """Top-``k`` documents per query by sparse dot product, as a run ``{query_id: {doc_id: score}}``."""
    index = SparseIndex(doc_vectors, doc_ids, device)
    run: Run = {}
    query_vectors = (
        query_vectors.to_sparse_csr() if query_vectors.layout != torch.sparse_csr else query_vectors
    )
    batch = 256
    for start in tqdm(range(0, len(query_ids), batch), desc="sparse search", disable=not show_progress):
        end = min(start + batch, len(query_ids))
        scores, rows = index.search(_csr_rows(query_vectors, start, end), k)
        for qid, s, r in zip(query_ids[start:end], scores, rows):
            run[qid] = {index.ids[d]: float(v) for v, d in zip(s.tolist(), r.tolist())}
    return run
