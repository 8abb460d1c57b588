"""Driver of ``scripts/finetune_retriever.py``: contrastive fine-tuning of a dense / sparse / hybrid bi-encoder.

    python scripts/finetune_retriever.py [CONFIG] --model_name_or_path M --output_dir D \\
        [--train_file F.jsonl | --beir DIR [--train_split train]] [--eval_split test]

Data: a training JSONL (Tevatron layout; :func:`maeir.data.retrieval.read_training_jsonl`), or a BEIR
folder's train split (positives from its qrels, BM25 negatives mined with ``bm25s`` when the group
size asks for negatives), or by default the embedded benchmark's train split. Writes ``D/`` (a
bi-encoder that ``load_bi_encoder`` / ``BiEncoderModel.from_pretrained`` / ``SentenceTransformer``
load, with its encoding recipe), ``D/maeir_run.json`` and ``D/README.md``; with ``--eval_split``, also
``D/eval_{split}/run.trec`` and ``metrics.json``. Runs the same under ``accelerate launch``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments, set_seed

from ..cards import render_card
from ..data.retrieval import load_beir, read_training_jsonl, training_records
from ..data.retrieval_collator import ContrastiveCollator
from ..datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark
from ..io_utils import atomic_write_json, atomic_write_text
from ..losses.flops import FLOPsRegularizer
from ..modeling.backbone import MINILM_ALIASES, MINILM_HUB_ID, check_max_length
from ..retrieval.arguments import (
    EvaluationArguments,
    RetrieverDataArguments,
    RetrieverModelArguments,
    RetrieverTrainingArguments,
)
from ..retrieval.loading import load_bi_encoder
from ..retrieval.negatives import bm25_negatives
from ..run_folder import resolve_resume
from ..trainers.contrastive import ContrastiveTrainer
from . import parse_training_command, training_driver
from .evaluate_retrieval import evaluate

logger = logging.getLogger(__name__)


def training_data(data_args: RetrieverDataArguments, seed: int = 42) -> tuple[list[dict[str, Any]], str]:
    """``(training records, description)`` from the JSONL, the BEIR folder or the embedded benchmark."""
    if data_args.train_file:
        records = read_training_jsonl(data_args.train_file, data_args.max_train_samples)
        return records, f"training JSONL {data_args.train_file}"
    folder = data_args.beir
    if folder is None:
        folder = embedded_retrieval_benchmark()
        name = "the embedded inverse-cloze benchmark over Wikipedia (gensim test data)"
    else:
        name = f"BEIR folder {folder}"
    data = load_beir(folder, data_args.train_split, allow_missing_documents=data_args.allow_missing_documents)
    if data_args.max_train_samples is not None:
        keep = list(data.qrels)[: data_args.max_train_samples]
        data.qrels = {q: data.qrels[q] for q in keep}
        data.queries = {q: data.queries[q] for q in keep}
    mode = data_args.negatives
    if mode == "auto":
        mode = "bm25" if data_args.group_size > 1 else "none"
    negatives = None
    if mode == "bm25":
        negatives = bm25_negatives(
            data, depth=data_args.bm25_depth, num_negatives=data_args.num_negatives, seed=seed
        )
    records = training_records(data, negatives)
    return records, f"{name}, split '{data_args.train_split}', negatives: {mode}"


def evaluate_trained(
    trainer: Trainer,
    tokenizer: PreTrainedTokenizerBase,
    data_args: RetrieverDataArguments,
    training_args: TrainingArguments,
    card: Callable[[dict], str],
    metrics_by_view: bool = False,
) -> dict:
    """Evaluate the trained bi-encoder on ``data_args.eval_split`` and record the result in its run folder.

    Writes ``OUTPUT/eval_{split}/`` (``run.trec``, ``metrics.json``), adds the main view's metrics
    (and, with ``metrics_by_view``, every view's) to ``OUTPUT/maeir_run.json`` and re-renders
    ``OUTPUT/README.md`` with ``card``. Returns the evaluation report.
    """

    out = Path(training_args.output_dir)
    eval_args = EvaluationArguments(
        model=str(out), output_dir=str(out / f"eval_{data_args.eval_split}"),
        beir=data_args.eval_beir or data_args.beir, split=data_args.eval_split,
        batch_size=data_args.eval_batch_size, show_progress=not training_args.disable_tqdm,
        allow_missing_documents=data_args.allow_missing_documents,
    )  # fmt: skip
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    report = evaluate(eval_args, model=unwrapped, tokenizer=tokenizer)
    info_path = out / "maeir_run.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    main_view = report["views"][report["main_view"]]
    info["metrics"] = {k: round(v, 4) for k, v in main_view.items() if isinstance(v, float)}
    info["eval_data"] = f"{report['data']} / {data_args.eval_split}"
    if metrics_by_view:
        info["metrics_by_view"] = {
            view: {k: round(v, 4) for k, v in values.items() if isinstance(v, float)}
            for view, values in report["views"].items()
        }
    atomic_write_json(info_path, info)
    atomic_write_text(out / "README.md", card(info))
    return report


@training_driver
def main(argv: Sequence[str] | None = None) -> dict:
    """Parse arguments, fine-tune, save the bi-encoder; returns ``{"output_dir", "train", "eval"}``."""
    model_args, data_args, training_args = parse_training_command(
        (RetrieverModelArguments, RetrieverDataArguments, RetrieverTrainingArguments), argv
    )
    training_args.remove_unused_columns = False  # the collator reads the raw text columns
    set_seed(training_args.seed)

    model, tokenizer = load_bi_encoder(model_args.model_name_or_path, **model_args.recipe())
    for name in ("query_max_length", "passage_max_length"):
        check_max_length(model.config.encoder_config, getattr(model.config, name), name)
    with training_args.main_process_first(desc="building the training set"):
        records, description = training_data(data_args, training_args.seed)
    train_dataset = Dataset.from_list(records)
    collator = ContrastiveCollator(
        tokenizer, model.config, group_size=data_args.group_size, positive_sampling=data_args.positive_sampling,
        negative_sampling=data_args.negative_sampling, pad_to_multiple_of=data_args.pad_to_multiple_of,
    )  # fmt: skip
    is_minilm = model_args.model_name_or_path.lower() in (a.lower() for a in MINILM_ALIASES)
    with_negatives = sum(bool(r["negatives"]) for r in records)
    run_info = {
        "method": "contrastive fine-tuning (bi-encoder)",
        "base_model": MINILM_HUB_ID if is_minilm else model_args.model_name_or_path,
        "data": description,
        "num_train_examples": len(records),
        "examples_with_negatives": with_negatives,
        # the contrastive-training fields come from RetrieverTrainingArguments itself (training_hyperparameters)
        "hyperparameters": {"group_size": data_args.group_size},
    }
    trainer = ContrastiveTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=collator,
        processing_class=tokenizer,
        flops=FLOPsRegularizer(
            training_args.flops_query_weight,
            training_args.flops_passage_weight,
            training_args.flops_warmup_steps,
        ),
        cross_device_negatives=training_args.cross_device_negatives,
        in_batch_negatives=training_args.in_batch_negatives,
        gradient_cache_chunk_size=training_args.gradient_cache_chunk_size,
        view_losses=training_args.view_losses,
        run_info=run_info,
    )
    train_output = trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    trainer.save_model()
    result: dict[str, Any] = {"output_dir": training_args.output_dir, "train": train_output.metrics}
    if trainer.is_world_process_zero():
        trainer.save_state()
    if data_args.eval_split and trainer.is_world_process_zero():
        result["eval"] = evaluate_trained(
            trainer, tokenizer, data_args, training_args, render_card, metrics_by_view=True
        )
    return result


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
