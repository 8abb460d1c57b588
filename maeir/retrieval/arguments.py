"""Dataclass arguments of the retrieval scripts (parsed with ``HfArgumentParser`` via ``maeir.config_file``).

- :class:`RetrieverModelArguments`, :class:`RetrieverDataArguments`, :class:`RetrieverTrainingArguments`
  (``transformers.TrainingArguments`` plus the contrastive-training fields): ``scripts/finetune_retriever.py``;
- :class:`EvaluationArguments`: ``scripts/evaluate_retrieval.py``;
- :class:`MiningArguments`: ``scripts/mine_negatives.py``;
- :class:`EncodeArguments`: ``scripts/encode_corpus.py``.

Recipe fields left at None keep the model's own value (a trained bi-encoder's or a
sentence-transformers folder's), else :class:`maeir.modeling.BiEncoderConfig`'s default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from transformers import TrainingArguments

from ..config_file import parse_key_values


def missing_documents_field() -> Any:
    """The ``allow_missing_documents`` field, shared by every argument class that reads qrels."""
    return field(
        default=False,
        metadata={
            "help": "Go on (with a warning giving the counts) when the qrels judge documents that are not in "
            "the corpus; by default that is an error."
        },
    )


@dataclass(kw_only=True)
class SplitArguments:
    """A judged split to score (BEIR folder, default the embedded benchmark, or MS MARCO files) and how.

    The base of :class:`EvaluationArguments` and of MD2PR's ``RerankArguments``.
    """

    beir: str | None = field(
        default=None, metadata={"help": "A BEIR folder (default: the embedded benchmark)."}
    )
    split: str = field(default="test", metadata={"help": "qrels split to evaluate."})
    msmarco_collection: str | None = field(default=None, metadata={"help": "MS MARCO collection.tsv."})
    msmarco_queries: str | None = field(default=None, metadata={"help": "MS MARCO queries TSV."})
    msmarco_qrels: str | None = field(default=None, metadata={"help": "MS MARCO qrels (TREC format)."})
    batch_size: int = field(default=64, metadata={"help": "Encoding (or pair-scoring) batch size."})
    dtype: str = field(default="auto", metadata={"choices": ["auto", "fp32", "fp16", "bf16"]})
    measures: str = field(
        default="MRR@10,nDCG@10,R@100,R@1000", metadata={"help": "Comma-separated measures."}
    )
    max_queries: int | None = field(default=None, metadata={"help": "Use the first N judged queries only."})
    show_progress: bool = field(default=True, metadata={"help": "Progress bars."})
    allow_missing_documents: bool = missing_documents_field()


@dataclass
class RetrieverModelArguments:
    """Which model to start from and the encoding recipe (saved with the model)."""

    model_name_or_path: str = field(
        default="minilm",
        metadata={"help": "A backbone folder, a maeir run/encoder, a sentence-transformers folder, a trained "
                  "bi-encoder, or 'minilm' (all-MiniLM-L6-v2 shipped on PyPI)."},
    )  # fmt: skip
    representation: str | None = field(
        default=None, metadata={"help": "dense | sparse | hybrid.", "choices": ["dense", "sparse", "hybrid"]}
    )
    tie_towers: bool | None = field(default=None, metadata={"help": "One encoder for queries and passages."})
    pooling: str | None = field(
        default=None, metadata={"help": "cls | mean | max.", "choices": ["cls", "mean", "max"]}
    )
    normalize: bool | None = field(default=None, metadata={"help": "L2-normalise dense vectors."})
    temperature: float | None = field(default=None, metadata={"help": "InfoNCE temperature."})
    query_max_length: int | None = field(default=None, metadata={"help": "Tokens per query."})
    passage_max_length: int | None = field(default=None, metadata={"help": "Tokens per passage."})
    query_truncation_side: str | None = field(default=None, metadata={"choices": ["left", "right"]})
    passage_truncation_side: str | None = field(default=None, metadata={"choices": ["left", "right"]})
    query_prefix: str | None = field(default=None, metadata={"help": "Text put before every query."})
    passage_prefix: str | None = field(default=None, metadata={"help": "Text put before every passage."})
    include_title: bool | None = field(default=None, metadata={"help": "Encode passages as 'title text'."})
    dense_weight: float | None = field(default=None, metadata={"help": "Hybrid: weight of the dense score."})
    sparse_weight: float | None = field(
        default=None, metadata={"help": "Hybrid: weight of the sparse score."}
    )
    sparse_top_k: int | None = field(
        default=None, metadata={"help": "Sparse entries kept at inference (0: all)."}
    )
    sparse_top_k_train: bool | None = field(
        default=None, metadata={"help": "Apply the top-k in training too."}
    )
    padding_free: bool | None = field(
        default=None, metadata={"help": "Encode each batch's real tokens only (maeir.modeling.padding_free)."}
    )
    encoder_overrides: str | None = field(
        default=None, metadata={"help": "Backbone config overrides, e.g. 'hidden_dropout_prob=0.0'."}
    )

    def recipe(self) -> dict:
        """The recipe fields that were set (to pass to ``load_bi_encoder``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("model_name_or_path", "encoder_overrides") and getattr(self, f.name) is not None}  # fmt: skip
        overrides = parse_key_values(self.encoder_overrides, source="--encoder_overrides")
        if overrides:
            out["encoder_overrides"] = overrides
        return out


@dataclass
class RetrieverDataArguments:
    """Training data: a training JSONL, a BEIR folder's train split, or the embedded benchmark."""

    train_file: str | None = field(
        default=None, metadata={"help": "Training JSONL (query / positive_passages / negative_passages)."}
    )
    beir: str | None = field(
        default=None, metadata={"help": "A BEIR folder: train on its qrels/TRAIN_SPLIT.tsv."}
    )
    train_split: str = field(default="train", metadata={"help": "qrels split used for training."})
    negatives: str = field(
        default="auto",
        metadata={"help": "BEIR training negatives: bm25 (mined with bm25s), none, or auto (bm25 when "
                  "group_size > 1).", "choices": ["auto", "bm25", "none"]},
    )  # fmt: skip
    bm25_depth: int = field(
        default=100, metadata={"help": "BM25 negatives come from this many top documents."}
    )
    num_negatives: int = field(default=30, metadata={"help": "Negatives kept per query in the pool."})
    group_size: int = field(default=8, metadata={"help": "Passages per query: 1 positive + (G-1) negatives."})
    positive_sampling: str = field(default="random", metadata={"choices": ["random", "first"]})
    negative_sampling: str = field(default="random", metadata={"choices": ["random", "first"]})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many queries."})
    pad_to_multiple_of: int | None = field(
        default=None, metadata={"help": "Pad lengths to a multiple of this."}
    )
    eval_beir: str | None = field(
        default=None,
        metadata={"help": "After training, evaluate on this BEIR folder (default: the training one)."},
    )
    eval_split: str | None = field(default=None, metadata={"help": "After training, evaluate on this split."})
    eval_batch_size: int = field(default=64, metadata={"help": "Encoding batch size of the evaluation."})
    allow_missing_documents: bool = missing_documents_field()


@dataclass
class RetrieverTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus the contrastive-training fields (docs/methods.md#cot-mae-v2 fine-tuning)."""

    flops_query_weight: float = field(default=0.0, metadata={"help": "FLOPs regulariser weight (queries)."})
    flops_passage_weight: float = field(
        default=0.0, metadata={"help": "FLOPs regulariser weight (passages)."}
    )
    flops_warmup_steps: int = field(default=0, metadata={"help": "Quadratic warm-up of the FLOPs weights."})
    cross_device_negatives: bool = field(
        default=True, metadata={"help": "All-gather negatives across processes."}
    )
    in_batch_negatives: bool = field(
        default=True, metadata={"help": "Other queries' passages are negatives."}
    )
    view_losses: bool = field(
        default=False,
        metadata={"help": "Hybrid: add each view's own InfoNCE to the loss on the summed score."},
    )
    gradient_cache_chunk_size: int | None = field(
        default=None, metadata={"help": "GradCache: encode at most this many texts at once with a graph."}
    )


@dataclass
class EvaluationArguments(SplitArguments):
    """Encode, index, search and score one split."""

    model: str = field(metadata={"help": "A model folder (bi-encoder, sentence-transformers, backbone), "
                                         "'minilm', or 'bm25'."})  # fmt: skip
    output_dir: str = field(metadata={"help": "Writes run.trec, metrics.json (and one run per view)."})
    k: int = field(default=1000, metadata={"help": "Documents retrieved per query."})
    index_factory: str = field(default="Flat", metadata={"help": "FAISS index_factory string."})
    search_parameters: str | None = field(
        default=None, metadata={"help": "FAISS parameters, e.g. nprobe=64."}
    )
    corpus_embeddings: str | None = field(
        default=None, metadata={"help": "Comma-separated saved shards (scripts/encode_corpus.py) to reuse."}
    )
    save_embeddings: bool = field(default=False, metadata={"help": "Also save corpus/query embeddings."})
    recipe: str | None = field(
        default=None,
        metadata={"help": "Recipe for a backbone / sentence-transformers model, e.g. 'pooling=cls'."},
    )
    bm25_k1: float = field(default=0.9, metadata={"help": "BM25 k1."})
    bm25_b: float = field(default=0.4, metadata={"help": "BM25 b."})
    bm25_stopwords: str | None = field(default="english", metadata={"help": "'english' or 'none'."})


@dataclass
class MiningArguments:
    """Hard negatives for a training JSONL."""

    retriever: str = field(metadata={"help": "'bm25' or a trained model folder."})
    output: str = field(metadata={"help": "Training JSONL to write."})
    beir: str | None = field(
        default=None, metadata={"help": "A BEIR folder (default: the embedded benchmark)."}
    )
    split: str = field(default="train", metadata={"help": "qrels split whose queries get negatives."})
    depth: int = field(default=200, metadata={"help": "Negatives are drawn from this many top documents."})
    num_negatives: int = field(default=30, metadata={"help": "Negatives kept per query."})
    skip_top: int = field(default=0, metadata={"help": "Leave out the top ranks (possible false negatives)."})
    seed: int = field(default=42, metadata={"help": "Sampling seed."})
    batch_size: int = field(default=64, metadata={"help": "Encoding batch size."})
    index_factory: str = field(default="Flat", metadata={"help": "FAISS index_factory string."})
    max_queries: int | None = field(default=None, metadata={"help": "Mine for the first N queries only."})
    allow_missing_documents: bool = missing_documents_field()


@dataclass
class EncodeArguments:
    """Encode one shard of a corpus and save its embeddings with their ids."""

    model: str = field(metadata={"help": "A model folder or 'minilm'."})
    output: str = field(metadata={"help": "Output prefix: writes PREFIX.safetensors and PREFIX.ids.json."})
    beir: str | None = field(default=None, metadata={"help": "A BEIR folder (its corpus.jsonl)."})
    msmarco_collection: str | None = field(default=None, metadata={"help": "MS MARCO collection.tsv."})
    shard: int = field(default=0, metadata={"help": "Which shard (0-based)."})
    num_shards: int = field(default=1, metadata={"help": "Number of contiguous shards."})
    batch_size: int = field(default=64, metadata={"help": "Encoding batch size."})
    dtype: str = field(default="auto", metadata={"choices": ["auto", "fp32", "fp16", "bf16"]})
    recipe: str | None = field(
        default=None, metadata={"help": "Recipe for a backbone / sentence-transformers model."}
    )
