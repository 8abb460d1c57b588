"""Encode queries and corpora with a bi-encoder: length-sorted batches, shards, fp16/bf16 on GPU, ids kept.

Public API:

- :class:`Embeddings` (``ids``, ``dense`` ``[N, H]`` float32 numpy array or None, ``sparse``
  ``[N, V]`` ``torch.sparse_csr`` tensor or None), with :meth:`Embeddings.save` /
  :meth:`Embeddings.load` (safetensors + an id file; never pickled), :meth:`Embeddings.concat`.
- :func:`encode_texts` (a list of strings, one side), :func:`encode_queries` (``{qid: text}``),
  :func:`encode_corpus` (``{doc_id: {"title", "text"}}``, optionally one contiguous shard of it,
  optionally saved to ``output``).
- :func:`autocast_dtype`: the mixed-precision type used on a device (``"auto"``: bf16 on GPUs that
  have it, else fp16; fp32 on CPU).

Batches are formed after sorting the texts by token length (longest first, so a memory problem
shows at once), which removes most padding; results are put back in input order.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from ..io_utils import atomic_write_text
from .modeling_bi_encoder import BiEncoderModel
from .tokenization_bi_encoder import format_passage, tokenize


def _with(path: Path, suffix: str) -> Path:
    """``path`` with ``suffix`` appended (``corpus.0`` -> ``corpus.0.safetensors``)."""
    return path.with_name(path.name + suffix)


@dataclass
class Embeddings:
    """Encoded texts: ``ids[i]`` is row ``i`` of ``dense`` and/or ``sparse``."""

    ids: list[str]
    dense: np.ndarray | None = None
    sparse: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path.safetensors`` (tensors) and ``path.ids.json`` (ids), each atomically."""

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {}
        if self.dense is not None:
            tensors["dense"] = torch.from_numpy(np.ascontiguousarray(self.dense))
        if self.sparse is not None:
            csr = self.sparse
            tensors["sparse_crow"] = csr.crow_indices().contiguous()
            tensors["sparse_col"] = csr.col_indices().contiguous()
            tensors["sparse_values"] = csr.values().contiguous()
            tensors["sparse_shape"] = torch.tensor(list(csr.shape), dtype=torch.long)
        tmp = path.with_name(f".{path.name}.safetensors.tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, _with(path, ".safetensors"))
        atomic_write_text(_with(path, ".ids.json"), json.dumps(self.ids))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Embeddings:
        path = Path(path)
        tensors = load_file(str(_with(path, ".safetensors")))
        ids = json.loads(_with(path, ".ids.json").read_text(encoding="utf-8"))
        dense = tensors["dense"].numpy() if "dense" in tensors else None
        sparse = None
        if "sparse_crow" in tensors:
            sparse = torch.sparse_csr_tensor(
                tensors["sparse_crow"], tensors["sparse_col"], tensors["sparse_values"],
                size=tuple(tensors["sparse_shape"].tolist()),
            )  # fmt: skip
        return cls(ids, dense, sparse)

    @classmethod
    def concat(cls, parts: Sequence[Embeddings]) -> Embeddings:
        """Shards back into one (in the given order)."""
        ids = [i for part in parts for i in part.ids]
        dense = None if parts[0].dense is None else np.concatenate([p.dense for p in parts])
        sparse = None
        if parts[0].sparse is not None:
            sparse = torch.cat([p.sparse.to_sparse_coo() for p in parts]).coalesce().to_sparse_csr()
        return cls(ids, dense, sparse)


def autocast_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype | None:
    """The autocast type for ``dtype`` in ``{"auto", "fp32", "fp16", "bf16"}`` on ``device`` (None: fp32)."""
    if dtype == "fp32" or (dtype == "auto" and device.type != "cuda"):
        return None
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype in ("fp16", "bf16"):
        return torch.float16 if dtype == "fp16" else torch.bfloat16
    raise ValueError(f"dtype must be one of auto, fp32, fp16, bf16; got {dtype!r}")


@torch.no_grad()
def encode_texts(
    model: BiEncoderModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    side: str,
    batch_size: int = 64,
    dtype: str = "auto",
    show_progress: bool = True,
    sort_by_length: bool = True,
    description: str | None = None,
) -> dict[str, np.ndarray | torch.Tensor]:
    """``{"dense": [N, H] float32 array, "sparse": [N, V] sparse CSR}`` (the views the model has).

    The model stays on its device; with ``dtype="auto"`` a GPU runs under bf16 (fp16 without bf16).
    """
    model.eval()
    device = next(model.parameters()).device
    amp = autocast_dtype(device, dtype)
    encoded = tokenize(tokenizer, model.config, list(texts), side, padding=False, return_tensors=None)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    order = (
        sorted(range(len(texts)), key=lambda i: -lengths[i]) if sort_by_length else list(range(len(texts)))
    )
    dense_rows: list[torch.Tensor | None] = [None] * len(texts)
    sparse_rows: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(texts)
    context = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    progress = tqdm(total=len(texts), desc=description or f"encoding {side}s", disable=not show_progress)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [encoded["input_ids"][i] for i in index]}, return_tensors="pt")
        with context:
            reps = model.encode(batch["input_ids"].to(device), batch["attention_mask"].to(device), side)
        if "dense" in reps:
            for row, i in zip(reps["dense"].float().cpu(), index):
                dense_rows[i] = row
        if "sparse" in reps:  # keep only the non-zeros (at most one dense [B, V] block at a time)
            sparse = reps["sparse"].float().cpu()
            for row, i in zip(sparse, index):
                nonzero = row.nonzero(as_tuple=True)[0]
                sparse_rows[i] = (nonzero, row[nonzero])
        progress.update(len(index))
    progress.close()
    out: dict[str, np.ndarray | torch.Tensor] = {}
    if texts and dense_rows[0] is not None:
        out["dense"] = torch.stack(dense_rows).numpy()
    if texts and sparse_rows[0] is not None:
        out["sparse"] = rows_to_csr(sparse_rows, model.config.encoder_config.vocab_size)
    return out


def rows_to_csr(rows: Sequence[tuple[torch.Tensor, torch.Tensor]], width: int) -> torch.Tensor:
    """``[(column indices, values), ...]`` per row -> a ``[len(rows), width]`` sparse CSR tensor."""
    lengths = torch.tensor([0] + [cols.numel() for cols, _ in rows], dtype=torch.long)
    cols = torch.cat([c for c, _ in rows]) if rows else torch.zeros(0, dtype=torch.long)
    values = torch.cat([v for _, v in rows]).float() if rows else torch.zeros(0)
    return torch.sparse_csr_tensor(lengths.cumsum(0), cols, values, size=(len(rows), width))


def encode_queries(
    model: BiEncoderModel, tokenizer: PreTrainedTokenizerBase, queries: Mapping[str, str], **kwargs
) -> Embeddings:
    """Encode ``{query_id: text}`` as queries."""
    ids = list(queries)
    kwargs.setdefault("description", "encoding queries")
    reps = encode_texts(model, tokenizer, [queries[i] for i in ids], "query", **kwargs)
    return Embeddings(ids, reps.get("dense"), reps.get("sparse"))


def corpus_shard(ids: Sequence[str], shard: int = 0, num_shards: int = 1) -> list[str]:
    """The ``shard``-th of ``num_shards`` contiguous, near-equal slices of ``ids``."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    size, extra = divmod(len(ids), num_shards)
    start = shard * size + min(shard, extra)
    return list(ids[start : start + size + (1 if shard < extra else 0)])


def encode_corpus(
    model: BiEncoderModel,
    tokenizer: PreTrainedTokenizerBase,
    corpus: Mapping[str, Mapping[str, str]],
    shard: int = 0,
    num_shards: int = 1,
    output: str | os.PathLike | None = None,
    **kwargs,
) -> Embeddings:
    """Encode one shard of ``{doc_id: {"title", "text"}}`` as passages (title joined per the recipe).

    With ``output``, the shard is also saved (:meth:`Embeddings.save`) as ``output``.
    """
    ids = corpus_shard(list(corpus), shard, num_shards)
    texts = [format_passage(model.config, corpus[i]["text"], corpus[i].get("title")) for i in ids]
    kwargs.setdefault("description", f"encoding corpus shard {shard + 1}/{num_shards}")
    reps = encode_texts(model, tokenizer, texts, "passage", **kwargs)
    embeddings = Embeddings(ids, reps.get("dense"), reps.get("sparse"))
    if output is not None:
        embeddings.save(output)
    return embeddings
