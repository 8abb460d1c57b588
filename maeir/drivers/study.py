"""Controlled studies: arms x seeds, post-train → probe → fine-tune → evaluate, one command.

``python scripts/study.py configs/study/dial_mae_cpu.yaml --output_dir D [--smoke]`` runs every arm
of the study config with every seed, through the same drivers a user runs (``maeir.drivers.pretrain``,
``maeir.drivers.response_selection``, ``maeir.drivers.classification``), in-process. Every arm gets
the same data, post-training steps, batch, learning rate, fine-tuning and evaluation: only the arm's
own fields differ. Results go to

- ``D/study.json``: the protocol (the config as run, its hash), every run's metrics, per-unit scores
  (for the paired bootstrap), curves, seed and wall time, the machine;
- ``D/report.md``: per arm mean and 95% interval over seeds, paired differences to the control
  (:mod:`maeir.study`);
- ``D/*.png``: metric vs post-training steps for every arm, per-arm bars (and, for MAE-LM, the
  effective rank per layer).

A study is resumable: a run whose result is in ``study.json`` is skipped, so a killed study goes on
where it stopped. Changing the protocol of an existing study is refused unless
``--protocol_change "why"`` is given; the reason is recorded in the report with the earlier runs kept.

Config (YAML), top-level fields (see ``configs/study/*.yaml``)::

    name, description, task (response_selection | text_encoder | retrieval), seeds, control,
    reference_arms, headline_metric, headline_stage,
    tokenizer:      {vocab_size, corpora: [chitchat_train | wikipedia | PATH.jsonl ...]}   (optional)
    base:           {args: {pretrain driver fields}, corpora: [...]}   a backbone built once, shared (optional)
    teacher:        {args: {train_reranker driver fields}}   a cross-encoder trained once, shared (optional;
                    the MD2PR teacher: ``{teacher}`` in the fine-tuning fields)
    post_training:  {args: {pretrain driver fields common to every arm}, probe_every: N,
                     corpora: [...] (optional: the training text, written to one JSON-lines file)}
    arms:           {name: null (no post-training) | {pretrain driver fields of this arm}}; an arm's
                    ``finetune: {...}`` key is merged into its fine-tuning fields (retrieval task), and an
                    arm holding nothing else is not post-trained (e.g. the MD2PR distillation arms)
    finetune:       {args: {fine-tuning driver fields}}
    evaluation:     {task-specific: test files, number of groups, probe settings}
    smoke:          {the same keys: values merged in by --smoke, for a tiny run in the tests}

Strings may refer to ``{output_dir}``, ``{base}`` (the shared backbone's run folder),
``{tokenizer}`` (the trained tokenizer's folder) and ``{teacher}`` (the shared ranker's folder).
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from transformers import TrainerCallback

from ..errors import ConfigError
from ..io_utils import atomic_write_json
from . import setup_logging

logger = logging.getLogger(__name__)

STUDY_FILE = "study.json"
TOP_LEVEL_FIELDS = {
    "name", "description", "task", "seeds", "control", "reference_arms", "headline_metric",
    "headline_stage", "metrics", "tokenizer", "base", "teacher", "post_training", "arms", "finetune",
    "evaluation", "smoke",
}  # fmt: skip


@dataclass
class StudyArguments:
    """``scripts/study.py`` options."""

    config: str = field(metadata={"help": "Study config (YAML/JSON): arms, seeds, stages (configs/study/)."})
    output_dir: str = field(metadata={"help": "Study folder: study.json, report.md, plots, run folders."})
    smoke: bool = field(
        default=False, metadata={"help": "Merge the config's `smoke:` values in: a tiny run (tests)."}
    )
    seeds: str | None = field(
        default=None, metadata={"help": "Run only these of the protocol's seeds now, e.g. '1,2' (resumable)."}
    )
    arms: str | None = field(default=None, metadata={"help": "Run only these arms (comma-separated)."})
    protocol_change: str | None = field(
        default=None,
        metadata={"help": "Accept a changed protocol for an existing study; the reason goes in the report."},
    )
    redo_stages: str | None = field(
        default=None,
        metadata={
            "help": "With --protocol_change: stages (comma-separated, e.g. 'finetune') whose recorded runs are "
            "moved to `superseded_runs` (kept in study.json and the report) and run again under the new protocol."
        },
    )
    keep_models: bool = field(
        default=False, metadata={"help": "Keep every run's model folders (default: delete after scoring)."}
    )
    report_only: bool = field(default=False, metadata={"help": "Only rewrite report.md and the plots."})


# ---------------------------------------------------------------------------------------------
# Config


def deep_merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in (mappings recursively; other values replaced)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_study_config(path: str | os.PathLike, smoke: bool = False) -> dict[str, Any]:
    """The study config as a dict (``smoke:`` merged in when asked); unknown keys are refused with their line."""
    path = os.fspath(path)
    try:
        text = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        raise ConfigError(path, None, "study config not found") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(path, mark.line + 1 if mark else None, f"invalid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(path, 1, "a study config must be a mapping")
    lines = {node.value: node.start_mark.line + 1 for node, _ in root.value}
    for key in config:
        if key not in TOP_LEVEL_FIELDS:
            raise ConfigError(
                path, lines.get(key), f"unknown study field; known: {sorted(TOP_LEVEL_FIELDS)}", key
            )
    for key in ("name", "task", "seeds", "control", "arms", "headline_metric"):
        if key not in config:
            raise ConfigError(path, None, "required study field is missing", key)
    if config["task"] not in TASKS:
        raise ConfigError(path, lines.get("task"), f"unknown task; choose from {sorted(TASKS)}", "task")
    arms = config["arms"]
    if not isinstance(arms, dict) or not arms:
        raise ConfigError(
            path, lines.get("arms"), "a mapping of arm name: fields (null: no post-training)", "arms"
        )
    if config["control"] not in arms:
        raise ConfigError(
            path, lines.get("control"), f"the control must be one of the arms {list(arms)}", "control"
        )
    seeds = config["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(path, lines.get("seeds"), "a non-empty list of integer seeds", "seeds")
    if smoke:
        config = deep_merge({k: v for k, v in config.items() if k != "smoke"}, config.get("smoke") or {})
    config.pop("smoke", None)
    return config


def protocol_hash(config: dict) -> str:
    """A short hash of the protocol (the config as run, keys sorted)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def substitute(value: Any, names: dict[str, str]) -> Any:
    """``value`` with ``{output_dir}``/``{base}``/``{tokenizer}`` filled in (recursively)."""
    if isinstance(value, str):
        for key, replacement in names.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    return value


def to_argv(fields: dict[str, Any]) -> list[str]:
    """Driver command-line arguments from a mapping (mappings as JSON, booleans as true/false).

    ``bf16`` without CUDA adds ``use_cpu``: transformers then trains under CPU autocast (AMX where the
    processor has it) instead of refusing bf16.
    """
    if fields.get("bf16") and not torch.cuda.is_available():
        fields = {**fields, "use_cpu": True}
    argv: list[str] = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            argv += [f"--{key}", "true" if value else "false"]
        elif isinstance(value, dict):
            argv += [f"--{key}", json.dumps(value)]
        elif isinstance(value, list):
            argv += [f"--{key}", *map(str, value)]
        else:
            argv += [f"--{key}", str(value)]
    return argv


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": sys.version.split()[0],
    }
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0]
        info["amx_bf16"] = "amx_bf16" in flags
    except (OSError, IndexError):
        pass
    return info


# ---------------------------------------------------------------------------------------------
# Shared pieces: tokenizer, base backbone, post-training with a probe curve


def corpus_texts(names: Sequence[str]) -> list[str]:
    """Texts of the named corpora: ``chitchat_train`` / ``chitchat_valid`` / ``chitchat_test`` (one text per
    conversation of that split of :func:`~maeir.data.chitchat.embedded_chitchat`, turns joined with [SEP]), ``wikipedia`` (the embedded passages) or a ``.jsonl``/``.txt`` path (its ``text`` fields/lines)."""
    texts: list[str] = []
    for name in names:
        if name == "chitchat_train":
            from ..data.chitchat import embedded_chitchat

            for line in open(embedded_chitchat().train_sessions, encoding="utf-8"):
                texts.append(" [SEP] ".join(json.loads(line)["turns"]))
        elif name in ("chitchat_valid", "chitchat_test"):
            from ..data.chitchat import chitchat_conversations, split_ids

            conversations = chitchat_conversations()
            for cid in split_ids(list(conversations), 42)[name.split("_")[1]]:
                texts.append(" [SEP] ".join(conversations[cid]))
        elif name == "wikipedia":
            from ..data.corpus import load_text_corpus

            texts.extend(load_text_corpus(None)["text"])
        else:
            from ..data.corpus import load_text_corpus

            texts.extend(load_text_corpus(name)["text"])
    return texts


def write_corpus(names: Sequence[str], path: Path) -> Path:
    """The named corpora as one JSON-lines file of ``{"text"}`` (the base pre-training corpus)."""
    if not path.is_file():
        from ..io_utils import atomic_write_text

        atomic_write_text(
            path, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in corpus_texts(names))
        )
    return path


class ProbeCallback(TrainerCallback):
    """Scores the task's zero-shot probe every ``every`` post-training steps (the curve of the report)."""

    def __init__(self, probe, every: int, curve: list[dict]) -> None:
        self.probe, self.every, self.curve = probe, every, curve

    def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: D102 - TrainerCallback
        if self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            metrics = self.probe(model)[0]
            self.curve.append({"step": state.global_step, **metrics})
            logger.info("probe at step %d: %s", state.global_step, metrics)


def run_pretraining(fields: dict[str, Any], callbacks: list | None = None) -> dict[str, Any]:
    """Run the pre-training driver with ``fields``; returns its run info (``maeir_run.json``)."""
    from .pretrain import main as pretrain_main

    trainer = pretrain_main(to_argv(fields), callbacks=callbacks)
    info = json.loads((Path(fields["output_dir"]) / "maeir_run.json").read_text())
    del trainer
    gc.collect()
    return info


# ---------------------------------------------------------------------------------------------
# Tasks: what "probe" and "fine-tune and evaluate" mean for a study


class ResponseSelectionTask:
    """Dial-MAE studies: R_n@k / MRR on candidate groups, units = conversations.

    ``evaluation`` fields: ``test_file`` (Ubuntu format; default: the embedded chitchat ``split``
    (``test``, or ``valid`` for pilots) conversations with ``cuts_per_conversation`` cut points each), ``max_groups``,
    ``context_max_length``, ``response_max_length``, ``batch_size``, ``metrics`` (default
    R@1, R@2, R@5, MRR). The probe scores contexts against candidates with the post-trained encoder's
    final [CLS] vectors (one tower, dot product): no fine-tuning.
    """

    default_metrics = ("R@1", "R@2", "R@5", "MRR")

    def __init__(self, evaluation: dict[str, Any], finetune: dict[str, Any]) -> None:
        from ..data.dialogue import read_response_selection

        self.evaluation = evaluation
        self.finetune_fields = finetune
        self.metrics = tuple(evaluation.get("metrics", self.default_metrics))
        if evaluation.get("test_file"):
            groups = read_response_selection(evaluation["test_file"], group_size=evaluation.get("group_size"))
            self.unit_of = {g.context_id: g.context_id for g in groups}
        else:
            from ..data.chitchat import chitchat_split_groups

            split = evaluation.get("split", "test")
            groups = chitchat_split_groups(split, int(evaluation.get("cuts_per_conversation", 3)))
            self.unit_of = {g.context_id: g.context_id.split("-")[0] for g in groups}
        if evaluation.get("max_groups"):
            groups = groups[: int(evaluation["max_groups"])]
        self.groups = groups
        self.context_max_length = int(evaluation.get("context_max_length", 64))
        self.response_max_length = int(evaluation.get("response_max_length", 32))
        self.batch_size = int(evaluation.get("batch_size", 128))
        self._tokenizer = None

    def describe(self) -> dict[str, Any]:
        return {
            "test_groups": len(self.groups),
            "units": len({self.unit_of[g.context_id] for g in self.groups}),
        }

    def _per_unit(self, scores: list[np.ndarray]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        from ..metrics.response_selection import group_metrics

        per_group = [group_metrics(s, g.labels) for s, g in zip(scores, self.groups)]
        metrics = {m: float(np.mean([p[m] for p in per_group if p is not None])) for m in self.metrics}
        units: dict[str, dict[str, list[float]]] = {m: {} for m in self.metrics}
        for group, values in zip(self.groups, per_group):
            if values is None:
                continue
            for m in self.metrics:
                units[m].setdefault(self.unit_of[group.context_id], []).append(values[m])
        per_unit = {m: {u: float(np.mean(v)) for u, v in by.items()} for m, by in units.items()}
        return metrics, per_unit

    @torch.inference_mode()
    def _cls(self, encoder, tokenizer, texts: list[str], side: str) -> torch.Tensor:
        max_length = self.context_max_length if side == "context" else self.response_max_length
        side_before = tokenizer.truncation_side
        tokenizer.truncation_side = "left" if side == "context" else "right"
        device = next(encoder.parameters()).device
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = torch.empty(len(texts), encoder.config.hidden_size)
        try:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = tokenizer([texts[i] for i in rows], truncation=True, max_length=max_length,
                                  padding=True, return_tensors="pt").to(device)  # fmt: skip
                out[rows] = encoder(**batch).last_hidden_state[:, 0].float().cpu()
        finally:
            tokenizer.truncation_side = side_before
        return out

    def probe_scores(self, encoder, tokenizer) -> list[np.ndarray]:
        """Zero-shot scores of every group: [CLS](context) · [CLS](candidate), one encoder."""
        from ..data.dialogue import context_text

        was_training = encoder.training
        encoder.eval()
        try:
            contexts = self._cls(
                encoder, tokenizer, [context_text(g.turns, tokenizer) for g in self.groups], "context"
            )
            index: dict[str, int] = {}
            for group in self.groups:
                for candidate in group.candidates:
                    index.setdefault(candidate, len(index))
            candidates = self._cls(encoder, tokenizer, list(index), "response")
            return [
                (candidates[[index[c] for c in g.candidates]] @ contexts[i]).numpy().astype(np.float64)
                for i, g in enumerate(self.groups)
            ]
        finally:
            encoder.train(was_training)

    def load(self, model_path: str):
        """The encoder whose [CLS] vectors the probe scores, and its tokenizer."""
        return load_encoder(model_path)

    def probe(self, model, tokenizer):
        """Zero-shot metrics and per-conversation scores of ``model`` (an encoder or a pre-training model)."""
        return (*self._per_unit(self.probe_scores(encoder_of(model), tokenizer)), {})

    def finetune_stages(self) -> list[str]:
        return ["finetune"] if self.finetune_fields else []

    def finetune_and_evaluate(self, model_path: str, output_dir: Path, seed: int, stage: str = "finetune"):
        """Fine-tune the response-selection bi-encoder from ``model_path``; score the test groups."""
        from ..modeling.bi_encoder import load_bi_encoder
        from .response_selection import finetune_main, score_groups

        fields = dict(self.finetune_fields)
        if not fields.get("train_file"):
            from ..data.chitchat import embedded_chitchat

            fields["train_file"] = str(embedded_chitchat().train)
        fields.update(model_name_or_path=model_path, output_dir=str(output_dir), seed=seed)
        finetune_main(to_argv(fields))
        gc.collect()
        model, tokenizer = load_bi_encoder(str(output_dir))
        scores = score_groups(model, tokenizer, self.groups, self.batch_size)
        return self._per_unit(scores)


class TextEncoderTask:
    """MAE-LM studies (pre-training from scratch): what pre-training did to the representations, and
    fine-tuning on sentence tasks.

    Probe (no fine-tuning): the effective rank of real-token representations per encoder layer
    (MAE-LM paper, Section 3; :mod:`maeir.analysis.effective_rank`) and the masked-LM loss on held-out
    text, both with fixed masks. ``evaluation`` fields: ``heldout_corpora`` (corpus names/paths, see
    :func:`corpus_texts`), ``heldout_texts`` (how many), ``max_length``, ``mask_rate``,
    ``rank_vectors``. Fine-tuning: ``finetune.tasks`` maps a name to the classification driver's fields
    (e.g. ``{}`` for the embedded tweets, or a GLUE task by path); each is its own stage
    ``finetune:<name>``, scored per example (accuracy) for the paired bootstrap.
    """

    def __init__(self, evaluation: dict[str, Any], finetune: dict[str, Any]) -> None:
        self.evaluation = evaluation
        self.finetune_fields = finetune
        texts = corpus_texts(evaluation.get("heldout_corpora", ["chitchat_valid"]))
        self.texts = texts[: int(evaluation.get("heldout_texts", 512))]
        self.max_length = int(evaluation.get("max_length", 128))
        self.mask_rate = float(evaluation.get("mask_rate", 0.15))
        self.rank_vectors = int(evaluation.get("rank_vectors", 4000))
        self.batch_size = int(evaluation.get("batch_size", 32))

    def describe(self) -> dict[str, Any]:
        return {"heldout_texts": len(self.texts)}

    def load(self, model_path: str):
        """The full pre-training model (decoder included) and its tokenizer."""
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        model = AutoModelForMaskedLM.from_pretrained(model_path, local_files_only=True, use_safetensors=True)
        return model, AutoTokenizer.from_pretrained(encoder_folder(model_path), local_files_only=True)

    @torch.inference_mode()
    def heldout_loss(self, model, tokenizer) -> float:
        """Masked-LM loss on the held-out texts (the model's own loss: MLM head or MAE-LM decoder), fixed masks."""
        from ..methods import METHODS

        collator_class = next(m.collator_class for m in METHODS.values() if isinstance(model, m.model_class))
        collator = collator_class.from_model_config(tokenizer, model.config, seed=1234)
        ids = [tokenizer(t, truncation=True, max_length=self.max_length)["input_ids"] for t in self.texts]
        total = count = 0.0
        for start in range(0, len(ids), self.batch_size):
            batch = collator([{"input_ids": x} for x in ids[start : start + self.batch_size]])
            masked = int((batch["labels"] != -100).sum())
            total += float(model(**batch).loss) * masked
            count += masked
        return total / max(count, 1.0)

    def probe(self, model, tokenizer):
        from ..analysis.effective_rank import layerwise_effective_rank

        was_training = model.training
        model.eval()
        try:
            rows = layerwise_effective_rank(model, tokenizer, self.texts, "model", mask_rate=self.mask_rate,
                                            max_length=self.max_length, max_vectors=self.rank_vectors)  # fmt: skip
            ranks = [r["effective_rank"] for r in rows if r["stack"] == "encoder" and r["tokens"] == "real"]
            metrics = {"heldout_mlm_loss": self.heldout_loss(model, tokenizer), "erank_last": ranks[-1]}
            metrics["erank_mean"] = float(np.mean(ranks[1:]))
        finally:
            model.train(was_training)
        return metrics, {}, {"effective_rank_per_layer": ranks}

    def finetune_stages(self) -> list[str]:
        return [f"finetune:{name}" for name in self.finetune_fields.get("tasks", {})]

    def finetune_and_evaluate(self, model_path: str, output_dir: Path, seed: int, stage: str):
        from .classification import main as classification_main

        name = stage.split(":", 1)[1]
        fields = deep_merge(self.finetune_fields.get("args", {}), self.finetune_fields["tasks"][name] or {})
        fields.update(model_name_or_path=encoder_folder(model_path), output_dir=str(output_dir), seed=seed,
                      per_example_scores=True, save_strategy="no")  # fmt: skip
        results = classification_main(to_argv(fields))
        split = "test" if "test_per_example" in results else "eval"
        scores = results[f"{split}_per_example"]
        metrics = {k.removeprefix(f"{split}_"): v for k, v in results[split].items()
                   if isinstance(v, (int, float)) and not k.endswith(("runtime", "per_second", "loss"))}  # fmt: skip
        metrics["split"] = split
        per_unit = {"accuracy": {str(i): s for i, s in enumerate(scores)}} if "accuracy" in metrics else {}
        return metrics, per_unit


class ClsRetrievalView(torch.nn.Module):
    """An encoder seen as a dense bi-encoder (one tower, pooled vectors, dot product) for the
    retrieval stack (:func:`maeir.retrieval.search.retrieve`): what the zero-shot probe scores.

    Holds the very module it is given (a post-training model's encoder while it trains), so the probe
    needs no copy; ``config`` is a :class:`~maeir.modeling.configuration_bi_encoder.BiEncoderConfig`
    (representation ``dense``) for tokenisation and search.
    """

    def __init__(self, encoder, **recipe: Any) -> None:
        from ..modeling.configuration_bi_encoder import BiEncoderConfig

        super().__init__()
        self.encoder = encoder
        self.config = BiEncoderConfig(
            encoder_config=encoder.config.to_dict(), representation="dense", tie_towers=True, **recipe
        )

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, side: str = "query", **kwargs):
        from ..modeling.bi_encoder import pool_dense

        hidden = self.encoder.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        dense = pool_dense(hidden, attention_mask, self.config.pooling)
        return {"dense": torch.nn.functional.normalize(dense, dim=-1) if self.config.normalize else dense}


class RetrievalTask:
    """CoT-MAE v2 and MD2PR studies: first-stage retrieval on a BEIR folder, units = test queries.

    ``evaluation`` fields: ``beir`` (a BEIR folder; default: the embedded inverse-cloze benchmark
    built with the ``benchmark`` settings, e.g. ``{test_queries, train_queries, corpus_size}``, see
    :func:`maeir.data.retrieval_benchmark.embedded_retrieval_benchmark`), ``split`` (``test``),
    ``max_queries``, ``metrics`` (default MRR@10, nDCG@10; any :mod:`maeir.retrieval.evaluation` name),
    ``k`` (retrieval depth, 100), ``batch_size``, and the probe's recipe: ``query_max_length`` (64),
    ``passage_max_length`` (96), ``pooling`` (``cls``), ``normalize`` (false), ``include_title`` (true).

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
        from ..data.retrieval import load_beir
        from .evaluate_retrieval import _limit_queries

        self.evaluation = evaluation
        self.finetune_fields = finetune
        self.metrics = tuple(evaluation.get("metrics", self.default_metrics))
        if evaluation.get("beir"):
            self.beir = str(evaluation["beir"])
        else:
            from ..data.retrieval_benchmark import embedded_retrieval_benchmark

            self.beir = str(embedded_retrieval_benchmark(**(evaluation.get("benchmark") or {})))
        self.split = evaluation.get("split", "test")
        max_queries = evaluation.get("max_queries")
        self.data = _limit_queries(
            load_beir(self.beir, self.split), int(max_queries) if max_queries else None
        )
        self.k = int(evaluation.get("k", 100))
        self.batch_size = int(evaluation.get("batch_size", 64))
        self.recipe = {
            "query_max_length": int(evaluation.get("query_max_length", 64)),
            "passage_max_length": int(evaluation.get("passage_max_length", 96)),
            "pooling": evaluation.get("pooling", "cls"),
            "normalize": bool(evaluation.get("normalize", False)),
            "include_title": bool(evaluation.get("include_title", True)),
        }
        self.driver = finetune.get("driver", "finetune_retriever")
        if self.driver not in self.drivers:
            raise ConfigError(None, None, f"unknown fine-tuning driver; choose from {self.drivers}", "driver")

    def describe(self) -> dict[str, Any]:
        from ..retrieval.evaluation import judged_queries

        return {
            "beir": self.beir,
            "split": self.split,
            "documents": len(self.data.corpus),
            "units": len(judged_queries(self.data.qrels)),
        }

    def score_runs(self, runs: dict[str, dict], prefix: bool = True):
        """Metrics and per-query scores of each view's run (names ``{view}_{metric}`` with ``prefix``)."""
        from ..retrieval.evaluation import evaluate_run

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
        return load_encoder(model_path)

    def probe_run(self, model, tokenizer) -> dict[str, dict[str, float]]:
        """The zero-shot dense run of ``model`` (an encoder or a pre-training model) on the test queries."""
        from ..retrieval.search import retrieve

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
        from ..modeling.bi_encoder import load_bi_encoder
        from ..retrieval.search import retrieve

        fields = deep_merge(self.finetune_fields.get("args") or {}, finetune or {})
        fields.setdefault("beir", self.beir)
        fields.pop("eval_split", None)  # scored here, per query, on the study's own test queries
        fields.update(output_dir=str(output_dir), seed=seed, save_strategy="no")
        if self.driver == "distill_md2pr":
            from .distill_md2pr import main as driver_main

            fields.pop("model_name_or_path", None)
            fields["student"] = model_path
        else:
            from .finetune_retriever import main as driver_main

            fields["model_name_or_path"] = model_path
        result = driver_main(to_argv(fields))
        gc.collect()
        model, tokenizer = load_bi_encoder(str(output_dir))
        runs = retrieve(
            model, tokenizer, self.data, k=self.k, batch_size=self.batch_size, show_progress=False
        )
        metrics, per_unit = self.score_runs(runs["runs"])
        if "false_negatives_masked" in result:
            metrics["false_negatives_masked"] = float(result["false_negatives_masked"])
        return metrics, per_unit


TASKS = {
    "response_selection": ResponseSelectionTask,
    "text_encoder": TextEncoderTask,
    "retrieval": RetrievalTask,
}


def file_safe(name: str) -> str:
    """A metric or stage name as a file-name part (``R@1`` → ``R_at_1``)."""
    return name.replace("@", "_at_").replace(":", "_").replace("/", "_")


def encoder_of(model):
    """The encoder of a maeir pre-training model, or ``model`` itself."""
    from ..modeling.base import MaskedAutoEncoderPreTrainedModel

    return model.encoder if isinstance(model, MaskedAutoEncoderPreTrainedModel) else model


def encoder_folder(model_path: str) -> str:
    """``model_path/encoder`` for a pre-training run folder, else ``model_path`` (a backbone folder or name)."""
    from ..modeling.backbone import resolve_backbone_path

    encoder = Path(model_path) / "encoder"
    return str(encoder) if encoder.is_dir() else resolve_backbone_path(model_path)


def load_encoder(model_path: str):
    """The plain encoder (``AutoModel``) of a run folder or backbone, and its tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    path = encoder_folder(model_path)
    encoder = AutoModel.from_pretrained(
        path, local_files_only=True, use_safetensors=True, attn_implementation="sdpa"
    )
    return encoder, AutoTokenizer.from_pretrained(path, local_files_only=True)


# ---------------------------------------------------------------------------------------------
# The runner


class StudyRunner:
    """Runs a study config into ``output_dir`` (see the module docstring)."""

    def __init__(self, args: StudyArguments) -> None:
        self.args = args
        self.config = load_study_config(args.config, smoke=args.smoke)
        # --seeds / --arms choose what this invocation runs; the protocol (and its hash) stays the config's
        self.run_seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else self.config["seeds"]
        unknown = sorted(set(self.run_seeds) - set(self.config["seeds"]))
        if unknown:
            raise ConfigError(
                None, None, f"seeds {unknown} are not in the protocol's {self.config['seeds']}", "seeds"
            )
        self.out = Path(args.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.study = self._load_or_start()

    # -- study.json ------------------------------------------------------------------------------
    def _load_or_start(self) -> dict[str, Any]:
        path = self.out / STUDY_FILE
        digest = protocol_hash(self.config)
        if path.is_file():
            study = json.loads(path.read_text())
            if study.get("protocol_hash") != digest and not self.args.report_only:
                if not self.args.protocol_change:
                    raise ConfigError(
                        self.args.config, None,
                        f"the protocol differs from the one {path} was run with; use a new --output_dir, or "
                        "--protocol_change 'why' to go on (the reason and the earlier runs stay in the report)",
                    )  # fmt: skip
                study.setdefault("protocol_changes", []).append(
                    f"{time.strftime('%Y-%m-%d')}: {self.args.protocol_change} (protocol {study.get('protocol_hash')} "
                    f"-> {digest})"
                )
                study["protocol"], study["protocol_hash"] = self.config, digest
                redo = set(self.args.redo_stages.split(",")) if self.args.redo_stages else set()
                if redo:
                    moved = [r for r in study["runs"] if r["stage"] in redo]
                    for run in moved:
                        run["superseded_by"] = digest
                    study.setdefault("superseded_runs", []).extend(moved)
                    study["runs"] = [r for r in study["runs"] if r["stage"] not in redo]
            elif self.args.redo_stages:
                raise ConfigError(
                    None, None, "--redo_stages needs a changed protocol and --protocol_change", "redo_stages"
                )
            return study
        c = self.config
        return {
            "name": c["name"],
            "description": c.get("description", ""),
            "command": self._command(),
            "protocol": c,
            "protocol_hash": digest,
            "control": c["control"],
            "reference_arms": c.get("reference_arms", ["none"] if "none" in c["arms"] else []),
            "metrics": c.get("metrics"),
            "headline_metric": c["headline_metric"],
            "headline_stage": c.get("headline_stage"),
            "arms": list(c["arms"]),
            "seeds": c["seeds"],
            "runs": [],
            "machine": machine_info(),
            "wall_time_s": 0.0,
        }

    def _command(self) -> str:
        parts = ["python scripts/study.py", self.args.config, "--output_dir", self.args.output_dir]
        if self.args.smoke:
            parts.append("--smoke")
        return " ".join(parts)

    def _save(self) -> None:
        if int(os.environ.get("RANK", "0")) == 0:
            atomic_write_json(self.out / STUDY_FILE, self.study)

    def _done(self, arm: str, seed: int, stage: str) -> bool:
        return any(r["arm"] == arm and r["seed"] == seed and r["stage"] == stage for r in self.study["runs"])

    def _record(self, run: dict[str, Any]) -> None:
        self.study["runs"].append(run)
        self.study["wall_time_s"] = round(self.study.get("wall_time_s", 0.0) + run.get("wall_time_s", 0.0), 1)
        self._save()

    # -- stages ----------------------------------------------------------------------------------
    def names(self) -> dict[str, str]:
        return {
            "output_dir": str(self.out),
            "base": str(self.out / "base"),
            "tokenizer": str(self.out / "tokenizer"),
            "teacher": str(self.out / "teacher"),
        }

    def build_tokenizer(self) -> None:
        spec = self.config.get("tokenizer")
        folder = self.out / "tokenizer"
        if not spec or (folder / "tokenizer_config.json").is_file():
            return
        from ..data.tokenizer import train_wordpiece_tokenizer

        start = time.time()
        train_wordpiece_tokenizer(
            corpus_texts(spec.get("corpora", ["wikipedia"])), int(spec["vocab_size"]), folder
        )
        self.study.setdefault("stages", {})["tokenizer"] = {
            "wall_time_s": round(time.time() - start, 1),
            **spec,
        }
        self._save()

    def build_base(self) -> None:
        spec = self.config.get("base")
        folder = self.out / "base"
        if not spec or (folder / "maeir_run.json").is_file():
            return
        fields = substitute(dict(spec["args"]), self.names())
        if spec.get("corpora"):
            fields["train_file"] = str(write_corpus(spec["corpora"], self.out / "base_corpus.jsonl"))
        fields["output_dir"] = str(folder)
        start = time.time()
        info = run_pretraining(fields)
        self.study.setdefault("stages", {})["base"] = {
            "wall_time_s": round(time.time() - start, 1), "losses": info.get("losses"), "fields": fields,
        }  # fmt: skip
        self._save()

    def build_teacher(self, task=None) -> None:
        """The shared cross-encoder ranker (``teacher:``, :mod:`maeir.drivers.train_reranker`), trained once
        into ``{teacher}`` on the task's BEIR folder (unless ``beir`` is given); its own evaluation (BM25
        re-ranked, and BM25 itself) is recorded under ``stages.teacher``."""
        spec = self.config.get("teacher")
        folder = self.out / "teacher"
        if not spec or (folder / "maeir_run.json").is_file():
            return
        from .train_reranker import main as train_reranker_main

        fields = substitute(dict(spec["args"]), self.names())
        if getattr(task, "beir", None):
            fields.setdefault("beir", task.beir)
        fields.update(output_dir=str(folder), save_strategy="no")
        start = time.time()
        result = train_reranker_main(to_argv(fields))
        stage: dict[str, Any] = {"wall_time_s": round(time.time() - start, 1), "fields": fields}
        if result.get("eval"):
            stage["eval"] = {
                view: {k: v for k, v in values.items() if isinstance(v, (int, float))}
                for view, values in result["eval"].get("views", {}).items()
            }
        del result
        gc.collect()
        self.study.setdefault("stages", {})["teacher"] = stage
        self._save()

    def start_model(self) -> str:
        """What every arm starts from: the shared base run, or ``post_training.args.model_name_or_path``
        (without post-training at all: ``finetune.args.student`` / ``model_name_or_path``)."""
        if self.config.get("base"):
            return str(self.out / "base")
        if "post_training" not in self.config:
            args = (self.config.get("finetune") or {}).get("args") or {}
            return args.get("student") or args.get("model_name_or_path") or "minilm"
        return self.config["post_training"]["args"]["model_name_or_path"]

    def run_arm(self, task, arm: str, arm_fields: dict | None, seed: int) -> None:
        """Post-train (unless the arm is ``null``), probe, then each fine-tuning stage, recording each.

        An arm's ``finetune`` key goes to the task's fine-tuning (merged into its fields); an arm with
        nothing else is not post-trained."""
        finetune_overrides = None
        if isinstance(arm_fields, dict) and "finetune" in arm_fields:
            arm_fields = dict(arm_fields)
            finetune_overrides = arm_fields.pop("finetune") or {}
            arm_fields = arm_fields or None
        run_dir = self.out / "runs" / arm / f"seed{seed}"
        start_model = self.start_model()
        post_dir = run_dir / "post"
        model_path = start_model if arm_fields is None else str(post_dir)
        pending = [stage for stage in task.finetune_stages() if not self._done(arm, seed, stage)]
        if arm_fields is not None and pending and not (post_dir / "maeir_run.json").is_file():
            # the post-trained model of a finished probe is gone (a kill after clean-up, or a copied
            # study.json): post-train it again (same seed, same result) and record the probe anew
            self.study["runs"] = [
                r
                for r in self.study["runs"]
                if not (r["arm"] == arm and r["seed"] == seed and r["stage"] == "probe")
            ]
        if not self._done(arm, seed, "probe") and arm_fields is None:
            shared = self._start_probe()
            if shared is not None:  # deterministic: the same start model, already probed by another arm/seed
                self._record({
                    **shared, "arm": arm, "seed": seed, "wall_time_s": 0.0,
                    "shared_from": f"{shared['arm']}/seed{shared['seed']}",
                })  # fmt: skip
        if not self._done(arm, seed, "probe"):
            start = time.time()
            steps, curve = 0, []
            if arm_fields is not None:
                post = self.config["post_training"]
                fields = substitute(deep_merge(post.get("args", {}), arm_fields), self.names())
                if post.get("corpora"):
                    fields["train_file"] = str(write_corpus(post["corpora"], self.out / "post_corpus.jsonl"))
                fields.update(output_dir=str(post_dir), seed=seed)
                if self.config.get("base"):
                    fields.update(
                        model_name_or_path=encoder_folder(start_model),
                        tokenizer_name=encoder_folder(start_model),
                    )
                fields.setdefault("save_strategy", "no")
                steps = int(fields["max_steps"])
                callbacks = []
                probe_every = int(self.config["post_training"].get("probe_every", 0))
                if probe_every:
                    if not fields.get("from_scratch"):
                        model, tokenizer = task.load(start_model)
                        curve.append({"step": 0, **task.probe(model, tokenizer)[0]})
                        del model
                    from transformers import AutoTokenizer

                    tokenizer = AutoTokenizer.from_pretrained(
                        fields.get("tokenizer_name") or encoder_folder(fields["model_name_or_path"]),
                        local_files_only=True,
                    )
                    callbacks.append(ProbeCallback(lambda m: task.probe(m, tokenizer), probe_every, curve))
                run_pretraining(fields, callbacks=callbacks)
            model, tokenizer = task.load(model_path)
            metrics, per_unit, extra = task.probe(model, tokenizer)
            del model
            gc.collect()
            if steps:
                curve.append({"step": steps, **metrics})
            self._record({
                "arm": arm, "seed": seed, "stage": "probe", "metrics": metrics, "per_unit": per_unit,
                "post_train_steps": steps, "curve": curve, "wall_time_s": round(time.time() - start, 1), **extra,
            })  # fmt: skip
        for stage in task.finetune_stages():
            if self._done(arm, seed, stage):
                continue
            start = time.time()
            ft_dir = run_dir / stage.replace(":", "_")
            extra = {"finetune": finetune_overrides} if finetune_overrides is not None else {}
            metrics, per_unit = task.finetune_and_evaluate(model_path, ft_dir, seed, stage, **extra)
            gc.collect()
            self._record({
                "arm": arm, "seed": seed, "stage": stage, "metrics": metrics, "per_unit": per_unit,
                "wall_time_s": round(time.time() - start, 1),
            })  # fmt: skip
            if not self.args.keep_models:
                shutil.rmtree(ft_dir, ignore_errors=True)
        finished = all(self._done(arm, seed, stage) for stage in ["probe", *task.finetune_stages()])
        if finished and not self.args.keep_models and post_dir.is_dir():
            shutil.rmtree(post_dir, ignore_errors=True)

    def _start_probe(self) -> dict[str, Any] | None:
        """A recorded probe of the start model itself (an arm without post-training), if any."""
        for run in self.study["runs"]:
            if run["stage"] == "probe" and not run.get("post_train_steps") and "shared_from" not in run:
                return run
        return None

    def report(self) -> None:
        """Rewrite report.md and the plots from ``study.json`` (main process only)."""
        from ..study import plot_bars, plot_curves, plot_effective_rank, write_report

        if int(os.environ.get("RANK", "0")) != 0 or not self.study["runs"]:
            return
        runs = self.study["runs"]
        stages = list(dict.fromkeys(r["stage"] for r in runs))
        try:
            if any(len(r.get("curve", [])) > 1 for r in runs):
                curve_metrics = list(dict.fromkeys(k for r in runs for p in r.get("curve", []) for k in p))
                for metric in curve_metrics:
                    if metric != "step":
                        plot_curves(self.study, self.out / f"curve_{file_safe(metric)}.png", metric, "probe")
            for stage in stages:
                for metric in self.study.get("metrics") or [self.study["headline_metric"]]:
                    if any(metric in r["metrics"] for r in runs if r["stage"] == stage):
                        plot_bars(
                            self.study,
                            self.out / f"{file_safe(stage)}_{file_safe(metric)}.png",
                            metric,
                            stage,
                        )
            ranks: dict[str, list] = {}
            for run in runs:
                if run.get("effective_rank_per_layer"):
                    ranks.setdefault(run["arm"], []).append(run["effective_rank_per_layer"])
            if ranks:
                plot_effective_rank(ranks, self.out / "effective_rank_per_layer.png")
        except ImportError:
            logger.warning("matplotlib is not installed: no plots (pip install 'maeir[plot]')")
        write_report(self.study, self.out)

    def make_task(self):
        finetune = self.config.get("finetune") or {}
        evaluation = self.config.get("evaluation") or {}
        if self.config["task"] == "response_selection":
            finetune = finetune.get("args", {})
        if self.config["task"] == "retrieval":  # fine-tuning fields may name {teacher}, {base}, ...
            finetune, evaluation = substitute(finetune, self.names()), substitute(evaluation, self.names())
        return TASKS[self.config["task"]](evaluation, finetune)

    def run(self) -> dict[str, Any]:
        if not self.args.report_only:
            task = self.make_task()
            self.study["evaluation_data"] = task.describe()
            self.build_tokenizer()
            self.build_base()
            self.build_teacher(task)
            only = set(self.args.arms.split(",")) if self.args.arms else None
            for seed in self.run_seeds:
                for arm, fields in self.config["arms"].items():
                    if only is None or arm in only:
                        self.run_arm(task, arm, fields, seed)
                        self.report()
        self.report()
        return self.study


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) a study; returns the study dict (also in ``OUTPUT_DIR/study.json``)."""
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):  # the study config as the first, positional argument
        argv = ["--config", *argv]
    (args,) = HfArgumentParser(StudyArguments).parse_args_into_dataclasses(argv)
    setup_logging()
    return StudyRunner(args).run()
