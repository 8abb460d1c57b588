"""Dataclass arguments of the MD2PR scripts (parsed with ``HfArgumentParser`` via ``maeir.config_file``).

- :class:`RankerModelArguments` (+ ``RetrieverDataArguments`` + ``TrainingArguments``):
  ``scripts/train_reranker.py``;
- :class:`RerankArguments`: ``scripts/rerank.py``;
- :class:`DistillationModelArguments`, :class:`DistillationDataArguments` (+ :class:`MD2PRConfig` +
  ``RetrieverTrainingArguments``): ``scripts/distill_md2pr.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...retrieval.arguments import RetrieverDataArguments, RetrieverModelArguments, SplitArguments


@dataclass
class RankerModelArguments:
    """Which backbone the ranker starts from, its input recipe and its listwise loss."""

    model_name_or_path: str = field(
        default="minilm",
        metadata={"help": "A backbone folder (BERT, RoBERTa, DeBERTa, ...), a maeir pre-training run / encoder, "
                  "a trained ranker (to continue training), or 'minilm'."},
    )  # fmt: skip
    max_length: int | None = field(
        default=None,
        metadata={"help": "Tokens of [CLS] q [SEP] p [SEP] (default 256; a trained ranker keeps its own)."},
    )
    include_title: bool | None = field(
        default=None, metadata={"help": "Read passages as 'title text' (default true)."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Listwise softmax temperature."})
    encoder_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Backbone config overrides, e.g. 'num_hidden_layers=3' (a smaller ranker) or dropout rates."
        },
    )
    eval_depth: int = field(
        default=100, metadata={"help": "With --eval_split: re-rank this many BM25 documents per query."}
    )

    def recipe(self) -> dict:
        """The recipe fields that were set (to pass to ``load_cross_encoder``)."""
        return {
            k: v
            for k, v in (("max_length", self.max_length), ("include_title", self.include_title))
            if v is not None
        }


@dataclass
class RerankArguments(SplitArguments):
    """Re-rank a TREC run with a cross-encoder and score the result."""

    model: str = field(metadata={"help": "A trained ranker folder (scripts/train_reranker.py)."})
    run: str = field(metadata={"help": "The first-stage TREC run file to re-rank."})
    output_dir: str = field(metadata={"help": "Writes run.trec and metrics.json."})
    depth: int = field(default=100, metadata={"help": "Re-rank the top DEPTH documents of each query."})
    keep_tail: bool = field(
        default=True,
        metadata={
            "help": "Keep the documents below DEPTH, in their first-stage order, after the re-ranked ones."
        },
    )
    all_queries: bool = field(
        default=False,
        metadata={"help": "Re-rank every query of the run that has a text, judged or not (training runs)."},
    )
    score_judged: bool = field(
        default=False,
        metadata={"help": "Also score every judged-relevant document (teacher-score runs of a training split; "
                  "not for evaluation)."},
    )  # fmt: skip


@dataclass
class DistillationModelArguments(RetrieverModelArguments):
    """The student (and its encoding recipe), the teacher, and what the card reports."""

    student: str | None = field(
        default=None,
        metadata={"help": "The student (same as --model_name_or_path): 'minilm', a backbone, a bi-encoder."},
    )
    teacher: str | None = field(
        default=None, metadata={"help": "A trained ranker folder (scripts/train_reranker.py)."}
    )
    published_results: str | None = field(
        default=None,
        metadata={"help": "Published numbers for the model card, e.g. 'msmarco_dev_MRR@10=0.362'."},
    )

    @property
    def student_path(self) -> str:
        return self.student or self.model_name_or_path

    def recipe(self) -> dict:
        out = super().recipe()
        for name in ("student", "teacher", "published_results"):
            out.pop(name, None)
        return out


@dataclass
class DistillationDataArguments(RetrieverDataArguments):
    """Training data (as ``scripts/finetune_retriever.py``) plus optional precomputed teacher scores."""

    teacher_scores_run: str | None = field(
        default=None,
        metadata={"help": "A TREC run of the teacher's scores of the training candidates (scripts/rerank.py "
                  "--all_queries --score_judged on the training split); used for the sentence level when "
                  "teacher_scores allows."},
    )  # fmt: skip
