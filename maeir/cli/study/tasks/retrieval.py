"""The retrieval study task (CoT-MAE v2, MD2PR): first-stage retrieval on a BEIR folder, units = test queries."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import torch

from ....config_file import deep_merge, parse_key_values
from ....data.retrieval import load_beir
from ....datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark
from ....errors import ConfigError
from ....retrieval.configuration_bi_encoder import BiEncoderConfig
from ....retrieval.evaluation import evaluate_run, judged_queries, limit_queries
from ....retrieval.loading import load_bi_encoder
from ....retrieval.pooling import pool_dense
from ....retrieval.search import retrieve
from ..common import encoder_of, load_encoder
from ..drivers import run_driver


class ClsRetrievalView(torch.nn.Module):
    """An encoder seen as a dense bi-encoder (one tower, pooled vectors, dot product) for the
    retrieval stack (:func:`maeir.retrieval.search.retrieve`): what the zero-shot probe scores.

    Holds the very module it is given (a post-training model's encoder while it trains), so the probe
    needs no copy; ``config`` is a :class:`~maeir.retrieval.configuration_bi_encoder.BiEncoderConfig`
    (representation ``dense``) for tokenisation and search.
    """

    def __init__(self, encoder, **recipe: Any) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = BiEncoderConfig(
            encoder_config=encoder.config.to_dict(), representation="dense", tie_towers=True, **recipe
        )

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, side: str = "query", **kwargs):
        hidden = self.encoder.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        dense = pool_dense(hidden, attention_mask, self.config.pooling)
        return {"dense": torch.nn.functional.normalize(dense, dim=-1) if self.config.normalize else dense}


class RetrievalTask:
    """CoT-MAE v2 and MD2PR studies: first-stage retrieval on a BEIR folder, units = test queries.

    ``evaluation`` fields: ``beir`` (a BEIR folder; default: the embedded inverse-cloze benchmark
    built with the ``benchmark`` settings, e.g. ``{test_queries, train_queries, corpus_size}``, see
    :func:`maeir.datasets.embedded.retrieval_benchmark.embedded_retrieval_benchmark`), ``split`` (``test``),
    ``max_queries``, ``metrics`` (default MRR@10, nDCG@10; any :mod:`maeir.retrieval.evaluation` name),
    ``k`` (retrieval depth, 100), ``batch_size``, and the probe's recipe: ``query_max_length`` (64),
    ``passage_max_length`` (96), ``pooling`` (``cls``), ``normalize`` (false), ``include_title`` (true),
    ``encoder_overrides`` (backbone config changes when the probe loads the start model, e.g.
    ``num_hidden_layers=2`` for a student cut to its first layers; default: ``finetune.args``' own).

    Probe (no fine-tuning): the post-trained encoder's pooled ([CLS]) vectors, dot product, exact
    search over the whole corpus (:func:`~maeir.retrieval.search.retrieve`), scored per query by
    :func:`~maeir.retrieval.evaluation.evaluate_run` (``ir-measures``; a judged query the run misses
    counts 0).

    Fine-tuning, stage ``finetune``: ``finetune.driver`` (``finetune_retriever``, default, or
    ``distill_md2pr``) run with ``finetune.args`` (plus the arm's ``finetune`` overrides) from the arm's
    model on the folder's train split (``beir`` defaults to the evaluation folder); the trained
    bi-encoder is then searched with every view it has and scored per query: ``dense_MRR@10``,
    ``sparse_MRR@10``, ``hybrid_MRR@10``, ... (MD2PR also reports ``false_negatives_masked``, the
    negatives the dynamic filter masked over the whole run).
    """

    default_metrics = ("MRR@10", "nDCG@10")
    drivers = ("finetune_retriever", "distill_md2pr")

    def __init__(self, evaluation: dict[str, Any], finetune: dict[str, Any]) -> None:
        self.evaluation = evaluation
        self.finetune_fields = finetune
        self.metrics = tuple(evaluation.get("metrics", self.default_metrics))
        if evaluation.get("beir"):
            self.beir = str(evaluation["beir"])
        else:
            self.beir = str(embedded_retrieval_benchmark(**(evaluation.get("benchmark") or {})))
        self.split = evaluation.get("split", "test")
        max_queries = evaluation.get("max_queries")
        self.data = limit_queries(load_beir(self.beir, self.split), int(max_queries) if max_queries else None)
        self.k = int(evaluation.get("k", 100))
        self.batch_size = int(evaluation.get("batch_size", 64))
        self.recipe = {
            "query_max_length": int(evaluation.get("query_max_length", 64)),
            "passage_max_length": int(evaluation.get("passage_max_length", 96)),
            "pooling": evaluation.get("pooling", "cls"),
            "normalize": bool(evaluation.get("normalize", False)),
            "include_title": bool(evaluation.get("include_title", True)),
        }
        self.encoder_overrides = parse_key_values(
            evaluation.get("encoder_overrides", (finetune.get("args") or {}).get("encoder_overrides")),
            source="evaluation.encoder_overrides",
        )
        self.driver = finetune.get("driver", "finetune_retriever")
        if self.driver not in self.drivers:
            raise ConfigError(None, None, f"unknown fine-tuning driver; choose from {self.drivers}", "driver")

    def describe(self) -> dict[str, Any]:
        return {
            "beir": self.beir,
            "split": self.split,
            "documents": len(self.data.corpus),
            "units": len(judged_queries(self.data.qrels)),
        }

    def score_runs(self, runs: dict[str, dict], prefix: bool = True):
        """Metrics and per-query scores of each view's run (names ``{view}_{metric}`` with ``prefix``)."""

        metrics: dict[str, float] = {}
        per_unit: dict[str, dict[str, float]] = {}
        for view, run in runs.items():
            report = evaluate_run(run, self.data.qrels, self.metrics, per_query=True)
            for metric in self.metrics:
                name = f"{view}_{metric}" if prefix else metric
                metrics[name] = float(report[metric])
                per_unit[name] = {q: float(v) for q, v in report["per_query"][metric].items()}
        return metrics, per_unit

    def load(self, model_path: str):
        """The encoder whose pooled vectors the probe searches with, and its tokenizer."""
        return load_encoder(model_path, self.encoder_overrides)

    def probe_run(self, model, tokenizer) -> dict[str, dict[str, float]]:
        """The zero-shot dense run of ``model`` (an encoder or a pre-training model) on the test queries."""

        encoder = encoder_of(model)
        was_training = encoder.training
        try:
            view = ClsRetrievalView(encoder, **self.recipe)
            result = retrieve(
                view, tokenizer, self.data, k=self.k, batch_size=self.batch_size, show_progress=False
            )
        finally:
            encoder.train(was_training)
        return result["run"]

    def probe(self, model, tokenizer):
        """Zero-shot MRR@10 / nDCG@10 (and per-query scores) of the pooled vectors, dot product."""
        return (*self.score_runs({"dense": self.probe_run(model, tokenizer)}, prefix=False), {})

    def finetune_stages(self) -> list[str]:
        return ["finetune"] if self.finetune_fields.get("args") is not None else []

    def finetune_and_evaluate(
        self,
        model_path: str,
        output_dir: Path,
        seed: int,
        stage: str = "finetune",
        finetune: dict | None = None,
    ):
        """Fine-tune (or distil into) a bi-encoder from ``model_path``; score each of its views per query."""

        fields = deep_merge(self.finetune_fields.get("args") or {}, finetune or {})
        fields.setdefault("beir", self.beir)
        fields.pop("eval_split", None)  # scored here, per query, on the study's own test queries
        fields.update(output_dir=str(output_dir), seed=seed, save_strategy="no")
        if self.driver == "distill_md2pr":
            fields.pop("model_name_or_path", None)
            fields["student"] = model_path
        else:
            fields["model_name_or_path"] = model_path
        result = run_driver(self.driver, fields)
        gc.collect()
        model, tokenizer = load_bi_encoder(str(output_dir))
        runs = retrieve(
            model, tokenizer, self.data, k=self.k, batch_size=self.batch_size, show_progress=False
        )
        metrics, per_unit = self.score_runs(runs["runs"])
        if "false_negatives_masked" in result:
            metrics["false_negatives_masked"] = float(result["false_negatives_masked"])
        return metrics, per_unit
