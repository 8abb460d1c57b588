"""The retrieval models and the stack around them: encode, index, search and evaluate.

- :mod:`.modeling_bi_encoder` (:class:`BiEncoderModel`), :mod:`.configuration_bi_encoder` (its recipe),
  :mod:`.tokenization_bi_encoder`, :mod:`.pooling` (dense and SPLADE), :mod:`.sentence_transformers_folder`
  (the sentence-transformers files of a saved folder, and reading such folders), :mod:`.loading`
  (:func:`load_bi_encoder`: any kind of folder); :mod:`.modeling_cross_encoder` (the ranker);
- :mod:`.encode`: corpus / query encoding (length-sorted batches, shards, fp16/bf16 on GPU, ids kept);
- :mod:`.dense_index`: FAISS search with any ``index_factory`` string (GPU when available);
- :mod:`.sparse_index`: inverted index as a PyTorch sparse matrix product;
- :mod:`.fusion`: hybrid fusion of dense and sparse runs;
- :mod:`.bm25`: the ``bm25s`` baseline;
- :mod:`.evaluation`: ``ir-measures`` metrics, TREC run files, JSON report and printed table;
- :mod:`.negatives`: BM25 negatives and hard-negative mining for training JSONL.
"""

import warnings as _warnings

# torch flags every CSR tensor as "beta" and every unchecked sparse constructor once per process; our
# sparse indexes are built from tensors we made ourselves, so these notices say nothing to a user.
_warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
_warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
