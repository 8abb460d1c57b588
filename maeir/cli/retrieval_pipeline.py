"""Driver of ``scripts/retrieval_pipeline.py``: the multi-stage retriever fine-tuning of CoT-MAE v2, one config.

The fine-tuning pipeline of docs/methods.md#cot-mae-v2, as the CoT-MAE papers run it:

1. **BM25 negatives** for the training queries (``bm25s``; top ``bm25_depth``, every judged-relevant
   document excluded) -> ``OUT/stage1_bm25.jsonl``;
2. **stage 1**: fine-tune the post-trained checkpoint (``model_name_or_path``, e.g. a CoT-MAE v2 run
   folder) with InfoNCE over in-batch + BM25 negatives (+ FLOPs regulariser, top-k for a sparse or
   hybrid model) -> ``OUT/stage1/``;
3. **mine hard negatives** with the stage-1 retriever (top ``mining_depth`` = 200 by default of its own
   view, every qrels positive excluded, ``mining_num_negatives`` sampled) -> ``OUT/stage2_hard.jsonl``;
4. **stage 2**: fine-tune again **from the post-trained checkpoint** (``stage2_init: pretrained``, as
   CoT-MAE does; ``stage1`` continues from the stage-1 model instead) with the hard negatives
   -> ``OUT/stage2/``;
5. **evaluate** BM25, stage 1 and stage 2 on ``eval_split``: every view of the model (dense-only,
   sparse-only and hybrid from the same checkpoint for a hybrid model) -> ``OUT/eval_*/metrics.json``,
   ``OUT/pipeline_summary.json`` and ``OUT/pipeline_summary.md``.

Distillation from a cross-encoder (the paper's stages 3-4) belongs to MD2PR
(``scripts/distill_md2pr.py``) and can start from ``OUT/stage2``.

**One config** holds everything: the fine-tuning recipe and training arguments of
``scripts/finetune_retriever.py`` (shared by both stages; ``output_dir`` is the pipeline's root) plus
the :class:`PipelineArguments`. ``stage1_overrides`` / ``stage2_overrides`` (mappings) change
fine-tuning fields for one stage only. Each stage's exact fine-tuning config is written to
``OUT/stageN.config.json`` and the stage runs through ``scripts/finetune_retriever.py`` (in this
process, or under ``finetune_launcher``, e.g. ``accelerate launch --config_file ...``, for multi-GPU
training). Mining and evaluation run in this process. Finished stages are recorded in
``OUT/pipeline_state.json`` and skipped when the pipeline is run again (``resume_pipeline``).

    python scripts/retrieval_pipeline.py configs/cotmae_v2_pipeline_cpu.yaml \
        --model_name_or_path outputs/cotmae_v2_cpu --output_dir outputs/cotmae_v2_pipeline
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..config_file import CONFIG_SUFFIXES, parse_args, parse_key_values, read_config_file, to_argv
from ..data.retrieval import (
    RetrievalData,
    load_beir,
    read_training_jsonl,
    training_records,
    write_training_jsonl,
)
from ..datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark
from ..errors import ConfigError
from ..io_utils import atomic_write_json, atomic_write_text
from ..retrieval.arguments import (
    EvaluationArguments,
    RetrieverDataArguments,
    RetrieverModelArguments,
    RetrieverTrainingArguments,
)
from ..retrieval.evaluation import format_table
from ..retrieval.loading import load_bi_encoder
from ..retrieval.negatives import bm25_negatives, sample_negatives
from ..retrieval.search import retrieve
from .evaluate_retrieval import evaluate, load_data
from .finetune_retriever import main as finetune_main

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
VIEWS = ("dense", "sparse", "hybrid")


@dataclass
class PipelineArguments:
    """The multi-stage part of the config (the rest is ``scripts/finetune_retriever.py``'s)."""

    mining_depth: int = field(default=200, metadata={"help": "Hard negatives come from the stage-1 top N."})
    mining_num_negatives: int = field(default=30, metadata={"help": "Hard negatives kept per query."})
    mining_skip_top: int = field(
        default=0, metadata={"help": "Leave out the stage-1 top ranks (false negatives)."}
    )
    mining_view: str = field(
        default="main",
        metadata={"help": "Stage-1 run to mine from: the model's own (main) or one view.",
                  "choices": ["main", "dense", "sparse", "hybrid"]},
    )  # fmt: skip
    stage2_init: str = field(
        default="pretrained",
        metadata={"help": "Stage 2 starts from the post-trained checkpoint (CoT-MAE) or the stage-1 model.",
                  "choices": ["pretrained", "stage1"]},
    )  # fmt: skip
    stage2_negatives: str = field(
        default="hard",
        metadata={
            "help": "Stage-2 negatives: mined ones, or mined + BM25.",
            "choices": ["hard", "hard+bm25"],
        },
    )
    stage1_overrides: str | None = field(
        default=None, metadata={"help": "Fine-tuning fields for stage 1 only (mapping, JSON or 'k=v,k=v')."}
    )
    stage2_overrides: str | None = field(
        default=None, metadata={"help": "Fine-tuning fields for stage 2 only (mapping, JSON or 'k=v,k=v')."}
    )
    evaluate_bm25: bool = field(default=True, metadata={"help": "Also evaluate BM25 on the eval split."})
    evaluate_stage1: bool = field(default=True, metadata={"help": "Also evaluate the stage-1 model."})
    eval_max_queries: int | None = field(
        default=None, metadata={"help": "Evaluate the first N judged queries."}
    )
    finetune_launcher: str | None = field(
        default=None,
        metadata={"help": "Run each fine-tuning stage as a subprocess under this launcher, e.g. "
                  "'accelerate launch --config_file configs/accelerate/multi_gpu.yaml'."},
    )  # fmt: skip
    resume_pipeline: bool = field(default=True, metadata={"help": "Skip the stages recorded as finished."})


PIPELINE_FIELDS = {f.name for f in fields(PipelineArguments)}
#: Set by the pipeline for each stage; a value in the config or the command line is replaced.
STAGE_FIELDS = ("model_name_or_path", "train_file", "output_dir", "eval_split")


def split_command_line(argv: Sequence[str]) -> tuple[str | None, list[str], list[str]]:
    """``(config file, fine-tuning options, pipeline options)`` of the pipeline's command line."""
    argv = list(argv)
    config = (
        argv.pop(0) if argv and argv[0].endswith(CONFIG_SUFFIXES) and not argv[0].startswith("-") else None
    )
    forwarded: list[str] = []
    own: list[str] = []
    target = forwarded
    for token in argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0]
            target = own if name in PIPELINE_FIELDS or name in STAGE_FIELDS else forwarded
        target.append(token)
    return config, forwarded, own


def finetuning_values(config_file: str | None) -> dict[str, Any]:
    """The config file's fine-tuning keys (what every stage shares)."""
    if config_file is None:
        return {}
    return {
        key: value
        for key, (value, _line) in read_config_file(config_file).items()
        if key not in PIPELINE_FIELDS and key not in STAGE_FIELDS
    }


def stage_overrides(args: PipelineArguments, stage: str) -> dict[str, Any]:
    """``stage1_overrides`` / ``stage2_overrides`` as a dict, checked against the fine-tuning fields."""
    values = parse_key_values(getattr(args, f"{stage}_overrides"), source=f"--{stage}_overrides")
    known = {f.name for cls in (RetrieverModelArguments, RetrieverDataArguments, RetrieverTrainingArguments)
             for f in fields(cls)}  # fmt: skip
    bad = sorted(set(values) - known) + sorted(set(values) & set(STAGE_FIELDS))
    if bad:
        raise ConfigError(None, None, f"cannot override {bad} for one stage (unknown, or set by the pipeline)",
                          f"{stage}_overrides")  # fmt: skip
    return values


class PipelineState:
    """``OUT/pipeline_state.json``: what each finished stage produced."""

    def __init__(self, root: Path, resume: bool) -> None:
        self.path = root / "pipeline_state.json"
        self.stages: dict[str, Any] = {}
        if resume and self.path.is_file():
            self.stages = json.loads(self.path.read_text(encoding="utf-8")).get("stages", {})

    def done(self, name: str, check: Path | None = None) -> bool:
        return name in self.stages and (check is None or check.exists())

    def record(self, name: str, result: dict[str, Any]) -> None:
        self.stages[name] = result
        atomic_write_json(self.path, {"stages": self.stages})


def _write_negatives(path: Path, data, negatives: dict[str, list[str]]) -> dict[str, Any]:
    records = training_records(data, negatives)
    count = write_training_jsonl(path, records)
    mean = sum(len(r["negatives"]) for r in records) / max(1, len(records))
    return {"file": str(path), "queries": count, "mean_negatives": round(mean, 2)}


def _merge_negatives(*pools: dict[str, list[str]]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for pool in pools:
        for qid, docs in pool.items():
            seen = merged.setdefault(qid, [])
            seen.extend(d for d in docs if d not in seen)
    return merged


def _finetune(
    stage: str,
    root: Path,
    file_values: dict[str, Any],
    overrides: dict[str, Any],
    forwarded: list[str],
    model: str,
    train_file: Path,
    launcher: str | None,
) -> list[str]:
    """Run ``scripts/finetune_retriever.py`` for one stage into ``root/stage``; returns its command line.

    Precedence: the config file's fine-tuning keys < the command line's < the stage's overrides < the
    stage fields the pipeline sets (model, training file, output folder, no built-in evaluation).
    """
    config_path = root / f"{stage}.config.json"
    atomic_write_json(config_path, {**file_values, **overrides})
    override_argv = to_argv(overrides)
    argv = [str(config_path), *forwarded, *override_argv, "--model_name_or_path", model,
            "--train_file", str(train_file), "--output_dir", str(root / stage), "--eval_split", ""]  # fmt: skip
    logger.info("== %s: fine-tuning %s on %s -> %s", stage, model, train_file, root / stage)
    if launcher:
        command = [*shlex.split(launcher), str(REPO / "scripts" / "finetune_retriever.py"), *argv]
        subprocess.run(command, check=True)
    else:
        finetune_main(argv)
    return argv


def _evaluate(name: str, model: str, root: Path, data_args: RetrieverDataArguments, args: PipelineArguments,
              data=None, corpus_embeddings: str | None = None) -> dict[str, Any]:  # fmt: skip
    eval_args = EvaluationArguments(
        corpus_embeddings=corpus_embeddings,
        model=model, output_dir=str(root / f"eval_{name}"), beir=data_args.eval_beir or data_args.beir,
        split=data_args.eval_split, batch_size=data_args.eval_batch_size, max_queries=args.eval_max_queries,
        show_progress=False,
    )  # fmt: skip
    return evaluate(eval_args, data=data)


def summary_rows(reports: dict[str, dict[str, Any]], measures: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (system, view) from the evaluation reports."""
    rows = []
    for system, report in reports.items():
        for view, metrics in report["views"].items():
            rows.append({"system": f"{system} [{view}]", **{m: metrics[m] for m in measures if m in metrics}})
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the pipeline (see the module docstring); returns the summary."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, model_args, data_args, training_args = parse_args(
        (PipelineArguments, RetrieverModelArguments, RetrieverDataArguments, RetrieverTrainingArguments), argv
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError(
            "run the pipeline as one process; set finetune_launcher (e.g. 'accelerate launch --config_file "
            "configs/accelerate/multi_gpu.yaml') to train each stage on several devices"
        )
    if not data_args.eval_split:
        raise ConfigError(
            None, None, "the pipeline evaluates at the end: set eval_split (e.g. test)", "eval_split"
        )
    if data_args.train_file:
        raise ConfigError(
            None,
            None,
            "the pipeline mines its own negatives: give a BEIR folder (beir) instead",
            "train_file",
        )
    config_file, forwarded, _ = split_command_line(argv)
    overrides = {stage: stage_overrides(args, stage) for stage in ("stage1", "stage2")}
    shared = finetuning_values(config_file)
    root = Path(training_args.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    state = PipelineState(root, args.resume_pipeline)
    started = time.time()
    timings: dict[str, float] = {}

    folder = data_args.beir
    if folder is None:
        folder = str(embedded_retrieval_benchmark())
        data_args.beir = folder
    train = load_beir(
        folder, data_args.train_split, allow_missing_documents=data_args.allow_missing_documents
    )
    if data_args.max_train_samples is not None:
        keep = list(train.qrels)[: data_args.max_train_samples]
        train = RetrievalData(train.corpus, {q: train.queries[q] for q in keep}, {q: train.qrels[q] for q in keep},
                              train.name, train.info)  # fmt: skip

    # 1. BM25 negatives
    bm25_file = root / "stage1_bm25.jsonl"
    t0 = time.time()
    if not state.done("bm25_negatives", bm25_file):
        bm25 = bm25_negatives(train, depth=data_args.bm25_depth, num_negatives=data_args.num_negatives,
                              seed=training_args.seed)  # fmt: skip
        state.record("bm25_negatives", _write_negatives(bm25_file, train, bm25))
    timings["bm25_negatives_s"] = time.time() - t0

    # 2. stage 1 from the post-trained checkpoint
    pretrained = model_args.model_name_or_path
    t0 = time.time()
    stage1 = root / "stage1"
    if not state.done("stage1", stage1 / "config.json"):
        argv1 = _finetune("stage1", root, shared, overrides["stage1"], forwarded, pretrained, bm25_file,
                          args.finetune_launcher)  # fmt: skip
        state.record("stage1", {"model": str(stage1), "init": pretrained, "command_line": argv1})
    timings["stage1_s"] = time.time() - t0

    # 3. hard negatives mined with the stage-1 retriever
    hard_file = root / "stage2_hard.jsonl"
    t0 = time.time()
    same_corpus = data_args.eval_beir in (None, "", data_args.beir)
    if not state.done("hard_negatives", hard_file):
        model, tokenizer = load_bi_encoder(stage1)
        if torch.cuda.is_available():
            model.cuda()
        result = retrieve(model, tokenizer, train, k=args.mining_depth, batch_size=data_args.eval_batch_size,
                          show_progress=False)  # fmt: skip
        view = model.config.representation if args.mining_view == "main" else args.mining_view
        if view not in result["runs"]:
            raise ConfigError(None, None, f"the stage-1 model has no {view} view ({sorted(result['runs'])})",
                              "mining_view")  # fmt: skip
        hard = sample_negatives(result["runs"][view], train.qrels, args.mining_depth, args.mining_num_negatives,
                                args.mining_skip_top, training_args.seed, corpus=train.corpus)  # fmt: skip
        if args.stage2_negatives == "hard+bm25":
            bm25 = {r["query_id"]: [p["docid"] for p in r["negatives"] if p.get("docid")]
                    for r in read_training_jsonl(bm25_file)}  # fmt: skip
            hard = _merge_negatives(hard, bm25)
        info = _write_negatives(hard_file, train, hard)
        reused = None
        if args.evaluate_stage1 and same_corpus:  # the evaluation of stage 1 reuses this corpus encoding
            reused = str(result["corpus_embeddings"].save(root / "stage1_embeddings" / "corpus"))
        state.record("hard_negatives", {**info, "mined_with": str(stage1), "view": view,
                                        "depth": args.mining_depth, "corpus_embeddings": reused})  # fmt: skip
        del model, result
    timings["hard_negatives_s"] = time.time() - t0

    # 4. stage 2, again from the post-trained checkpoint (or from stage 1)
    t0 = time.time()
    stage2 = root / "stage2"
    init = pretrained if args.stage2_init == "pretrained" else str(stage1)
    if not state.done("stage2", stage2 / "config.json"):
        argv2 = _finetune("stage2", root, shared, overrides["stage2"], forwarded, init, hard_file,
                          args.finetune_launcher)  # fmt: skip
        state.record("stage2", {"model": str(stage2), "init": init, "command_line": argv2})
    timings["stage2_s"] = time.time() - t0

    # 5. evaluation: every view of each model
    t0 = time.time()

    eval_data = load_data(EvaluationArguments(model="-", output_dir="-", beir=data_args.eval_beir or data_args.beir,
                                              split=data_args.eval_split), data_args.eval_split)  # fmt: skip
    reports: dict[str, dict[str, Any]] = {}
    if args.evaluate_bm25:
        reports["BM25"] = _evaluate("bm25", "bm25", root, data_args, args, eval_data)
    if args.evaluate_stage1:
        embeddings = state.stages.get("hard_negatives", {}).get(
            "corpus_embeddings"
        )  # PREFIX of PREFIX.safetensors
        if embeddings and not Path(f"{embeddings}.safetensors").is_file():
            embeddings = None
        reports["stage 1 (BM25 negatives)"] = _evaluate(
            "stage1", str(stage1), root, data_args, args, eval_data, corpus_embeddings=embeddings
        )
    reports["stage 2 (hard negatives)"] = _evaluate("stage2", str(stage2), root, data_args, args, eval_data)
    timings["evaluation_s"] = time.time() - t0

    measures = [m for m in reports["stage 2 (hard negatives)"]["views"][reports["stage 2 (hard negatives)"]["main_view"]]
                if m not in ("num_queries", "queries_without_results")]  # fmt: skip
    rows = summary_rows(reports, measures)

    table = format_table(rows, measures)
    summary = {
        "pretrained": pretrained,
        "data": {"train": f"{folder} / {data_args.train_split}", "eval": f"{eval_data.name} / {data_args.eval_split}",
                 "eval_queries": reports["stage 2 (hard negatives)"]["num_queries"]},
        "stages": state.stages,
        "rows": rows,
        "timings": {k: round(v, 1) for k, v in {**timings, "total_s": time.time() - started}.items()},
    }  # fmt: skip
    atomic_write_json(root / "pipeline_summary.json", summary)
    atomic_write_text(root / "pipeline_summary.md", table + "\n")
    print(f"\n== CoT-MAE v2 fine-tuning pipeline ({eval_data.name} / {data_args.eval_split}, "
          f"{summary['data']['eval_queries']} queries)\n{table}")  # fmt: skip
    return summary


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
