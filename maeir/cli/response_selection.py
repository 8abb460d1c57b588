"""Response selection with a bi-encoder (docs/methods.md#dial-mae, fine-tuning and evaluation).

Fine-tuning (``scripts/finetune_response_selection.py [CONFIG] --model_name_or_path M --train_file F
--output_dir D``): a :class:`~maeir.retrieval.modeling_bi_encoder.BiEncoderModel` whose query tower encodes the dialogue
context and whose passage tower encodes the response (untied by default, ``--tie_towers``), [CLS]
pooling, dot product / ``temperature``, trained by :class:`~maeir.trainers.ContrastiveTrainer` with
InfoNCE over in-batch negatives plus the file's given negatives. Training data is a
response-selection file (Ubuntu v1 / E-commerce / Douban format): each positive line of a group is a
(context, response) pair and the group's negative lines are its given negatives
(``group_size - 1`` drawn per step). Contexts are the turns joined with the tokenizer's SEP,
truncated from the LEFT (the last ``context_max_length`` tokens are kept); responses keep their
first ``response_max_length`` tokens. The recipe is saved with the model (reloading encodes as in
training). Without ``--train_file``: the embedded chitchat train split (valid split at the end).

Evaluation (``scripts/evaluate_response_selection.py --model D --data F [--output metrics.json]``):
every group of the file (consecutive lines sharing a context, or blocks of ``--group_size`` lines)
is scored — contexts and candidates encoded in length-sorted batches, nothing dropped, shared
candidate texts encoded once — and :func:`maeir.metrics.response_selection.response_selection_metrics`
gives R_n@1/2/5, MRR (MAP, P@1) over groups keyed by context id; groups without a positive are
skipped and counted. Under ``accelerate launch`` the groups are split over the processes (uneven
shards, no padding) and gathered on the main process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from datasets import Dataset
from transformers import PreTrainedTokenizerBase, TrainingArguments, set_seed

from ..config_file import parse_args
from ..data.dialogue import ResponseSelectionGroup, context_text, read_response_selection
from ..data.retrieval_collator import ContrastiveCollator
from ..datasets.embedded.chitchat import embedded_chitchat
from ..distributed import launched_world_size
from ..errors import ConfigError
from ..io_utils import atomic_write_json
from ..metrics.response_selection import format_table, response_selection_metrics
from ..modeling.backbone import MINILM_ALIASES, MINILM_HUB_ID, check_max_length, resolve_backbone_path
from ..retrieval.loading import is_bi_encoder_folder, load_bi_encoder
from ..retrieval.modeling_bi_encoder import BiEncoderModel
from ..retrieval.response_selection import score_groups
from ..run_folder import resolve_resume
from ..trainers import ContrastiveTrainer
from . import dispatch, parse_training_command, setup_logging, training_driver

if TYPE_CHECKING:
    from accelerate import PartialState

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Arguments


@dataclass
class ResponseSelectionModelArguments:
    """The bi-encoder to fine-tune and its encoding recipe (ignored when the model is already a bi-encoder)."""

    model_name_or_path: str = field(
        default="minilm",
        metadata={
            "help": "Start from: a pre-training run folder (its encoder/), a backbone folder, 'minilm', or a "
            "fine-tuned maeir bi-encoder (then its saved recipe is kept)."
        },
    )
    tie_towers: bool = field(
        default=False, metadata={"help": "One shared tower for contexts and responses (Dial-MAE: untied)."}
    )
    pooling: str = field(default="cls", metadata={"help": "Dense pooling: cls (Dial-MAE), mean or max."})
    normalize: bool = field(default=False, metadata={"help": "L2-normalise the vectors (Dial-MAE: no)."})
    temperature: float = field(
        default=1.0, metadata={"help": "InfoNCE logits = score / temperature (Dial-MAE: 1)."}
    )
    context_max_length: int = field(
        default=256, metadata={"help": "Context tokens kept (the LAST ones), specials included."}
    )
    response_max_length: int = field(
        default=64, metadata={"help": "Response tokens kept (the FIRST ones), specials included."}
    )
    padding_free: bool = field(
        default=False,
        metadata={"help": "Encode each batch's real tokens only, as one flat sequence (maeir.modeling.padding_free; "
                  "same vectors up to float rounding; also for a bi-encoder folder)."},
    )  # fmt: skip


@dataclass
class ResponseSelectionDataArguments:
    """Training / validation files in the Ubuntu v1 line format (``label \\t turn ... \\t response``)."""

    train_file: str | None = field(
        default=None, metadata={"help": "Training file; default: the embedded chitchat train split."}
    )
    validation_file: str | None = field(
        default=None,
        metadata={
            "help": "Evaluated after training (R@k, MRR); default: chitchat valid when training on it."
        },
    )
    group_size: int = field(
        default=2,
        metadata={
            "help": "Responses per context in a training step: 1 positive + group_size-1 given negatives."
        },
    )
    negative_sampling: str = field(
        default="random", metadata={"help": "Given negatives: random (fresh draw each step) or first."}
    )
    eval_group_size: int | None = field(
        default=None,
        metadata={"help": "Validation groups are blocks of this many lines (default: by context)."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many training pairs."}
    )
    max_eval_groups: int | None = field(default=None, metadata={"help": "Evaluate at most this many groups."})


@dataclass
class EvaluateArguments:
    """``scripts/evaluate_response_selection.py`` options."""

    model: str = field(
        metadata={
            "help": "A fine-tuned bi-encoder folder (or any encoder: then the recipe options below apply)."
        }
    )
    data: str = field(metadata={"help": "Response-selection file (label \\t turn ... \\t response)."})
    output: str | None = field(default=None, metadata={"help": "Write the metrics here as JSON."})
    group_size: int | None = field(
        default=None,
        metadata={"help": "Groups are blocks of this many lines (default: consecutive same context)."},
    )
    batch_size: int = field(default=64, metadata={"help": "Texts per encoding batch."})
    max_groups: int | None = field(default=None, metadata={"help": "Evaluate the first N groups only."})
    pooling: str = field(default="cls", metadata={"help": "For a model that is not a bi-encoder: pooling."})
    context_max_length: int = field(
        default=256, metadata={"help": "For a non-bi-encoder model: context length."}
    )
    response_max_length: int = field(
        default=64, metadata={"help": "For a non-bi-encoder model: response length."}
    )


def dialogue_recipe(args: Any) -> dict[str, Any]:
    """Bi-encoder recipe fields for response selection (contexts keep their end, responses their start)."""
    recipe = {
        "representation": "dense",
        "pooling": args.pooling,
        "query_max_length": args.context_max_length,
        "passage_max_length": args.response_max_length,
        "query_truncation_side": "left",
        "passage_truncation_side": "right",
        "query_prefix": "",
        "passage_prefix": "",
    }
    for name in ("tie_towers", "normalize", "temperature"):
        if hasattr(args, name):
            recipe[name] = getattr(args, name)
    return recipe


def load_model(name_or_path: str, recipe: dict[str, Any]) -> tuple[BiEncoderModel, PreTrainedTokenizerBase]:
    """A trained bi-encoder as saved (its own recipe), anything else as a fresh bi-encoder with ``recipe``."""

    if is_bi_encoder_folder(resolve_backbone_path(name_or_path)):
        return load_bi_encoder(name_or_path)
    return load_bi_encoder(name_or_path, **recipe)


# ---------------------------------------------------------------------------------------------
# Data


def training_examples(
    groups: Sequence[ResponseSelectionGroup], tokenizer: PreTrainedTokenizerBase
) -> tuple[list[dict[str, Any]], int]:
    """``([{"query", "positives", "negatives", "query_id"}, ...], groups without a positive)``.

    One example per positive line: context = turns joined with the tokenizer's SEP, the positive as
    the only positive, the group's negative lines as given negatives.
    """
    examples, no_positive = [], 0
    for group in groups:
        if not group.has_positive:
            no_positive += 1
            continue
        query = context_text(group.turns, tokenizer)
        negatives = group.negatives
        for k, positive in enumerate(group.positives):
            examples.append(
                {
                    "query": query,
                    "positives": [positive],
                    "negatives": negatives,
                    "query_id": f"{group.context_id}-{k}",
                }
            )
    return examples, no_positive


# ---------------------------------------------------------------------------------------------
# Scoring and evaluation


def evaluation_state() -> PartialState:
    """The process state of a stand-alone evaluation: ONE job over all the launched processes.

    Like :func:`maeir.distributed.with_cpu_backend` for the Trainer: without CUDA, processes started by
    ``accelerate launch --multi_gpu --num_processes N`` only join one gloo job when the state is
    created with ``cpu=True``; otherwise each would evaluate every group alone. Raises if the state
    does not see the launched world size.
    """

    launched = launched_world_size()
    state = PartialState(cpu=launched > 1 and not torch.cuda.is_available())
    if state.num_processes != launched:
        raise RuntimeError(
            f"{launched} processes were launched but the evaluation sees {state.num_processes}: each would "
            "evaluate alone. Without a GPU, launch with `accelerate launch --multi_gpu --num_processes N`."
        )
    return state


def evaluate_groups(
    model: BiEncoderModel,
    tokenizer: PreTrainedTokenizerBase,
    groups: Sequence[ResponseSelectionGroup],
    batch_size: int = 64,
) -> dict[str, Any]:
    """Metrics of ``groups``; under several processes each scores a share and the main one gathers.

    The shards are contiguous and uneven (no padding, so no group is scored twice); every process
    returns the same metrics. Raises if the gathered groups are not exactly ``groups``, each once.
    """

    state = evaluation_state()
    shard_context = (
        state.split_between_processes(list(groups), apply_padding=False)
        if state.num_processes > 1
        else contextlib.nullcontext(groups)
    )
    with shard_context as shard:
        local = [
            (g.context_id, s, g.labels)
            for g, s in zip(shard, score_groups(model, tokenizer, shard, batch_size))
        ]
    logger.info(
        "process %d of %d scored %d of %d groups",
        state.process_index,
        state.num_processes,
        len(local),
        len(groups),
    )
    gathered = gather_object(local) if state.num_processes > 1 else local
    if Counter(c for c, _, _ in gathered) != Counter(g.context_id for g in groups):
        raise RuntimeError(f"scored {len(gathered)} groups, expected each of the {len(groups)} groups once")
    by_id = {context_id: (scores, labels) for context_id, scores, labels in gathered}
    return response_selection_metrics(by_id[g.context_id] for g in groups)


# ---------------------------------------------------------------------------------------------
# Entry points


@training_driver
def finetune_main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Fine-tune a response-selection bi-encoder; returns the validation metrics (or ``{}``)."""

    model_args, data_args, training_args = parse_training_command(
        (ResponseSelectionModelArguments, ResponseSelectionDataArguments, TrainingArguments), argv
    )
    training_args.remove_unused_columns = False
    if data_args.group_size < 1:
        raise ConfigError(None, None, f"must be >= 1, got {data_args.group_size}", field="group_size")
    set_seed(training_args.seed)

    train_file, validation_file = data_args.train_file, data_args.validation_file
    if train_file is None:
        with training_args.main_process_first(desc="building the embedded chitchat files"):
            files = embedded_chitchat()
        train_file = str(files.train)
        validation_file = validation_file or str(files.valid)

    model, tokenizer = load_model(model_args.model_name_or_path, dialogue_recipe(model_args))
    model.config.padding_free = model_args.padding_free
    check_max_length(model.config.encoder_config, model.config.query_max_length, "context_max_length")
    check_max_length(model.config.encoder_config, model.config.passage_max_length, "response_max_length")
    groups = read_response_selection(train_file)
    examples, no_positive = training_examples(groups, tokenizer)
    if not examples:
        raise ConfigError(train_file, None, "no group with a positive line to train on", field="train_file")
    if data_args.max_train_samples is not None and data_args.max_train_samples < len(examples):
        keep = np.sort(
            np.random.default_rng(training_args.seed).choice(
                len(examples), data_args.max_train_samples, replace=False
            )
        )
        examples = [examples[i] for i in keep]
    logger.info(
        "%d training pairs from %d groups of %s (%d groups without a positive skipped)",
        len(examples),
        len(groups),
        train_file,
        no_positive,
    )
    collator = ContrastiveCollator(
        tokenizer,
        model.config,
        group_size=data_args.group_size,
        negative_sampling=data_args.negative_sampling,
    )
    is_minilm = model_args.model_name_or_path.lower() in (a.lower() for a in MINILM_ALIASES)
    run_info = {
        "task": "response selection",
        "base_model": MINILM_HUB_ID if is_minilm else model_args.model_name_or_path,
        "data": train_file,
        "num_train_examples": len(examples),
        "hyperparameters": {
            "group_size": data_args.group_size,
            "negative_sampling": data_args.negative_sampling,
        },
    }
    trainer = ContrastiveTrainer(
        model=model,
        args=training_args,
        train_dataset=Dataset.from_list(examples),
        data_collator=collator,
        processing_class=tokenizer,
        run_info=run_info,
    )
    trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    metrics: dict[str, Any] = {}
    if validation_file:
        eval_groups = read_response_selection(
            validation_file, group_size=data_args.eval_group_size, max_groups=data_args.max_eval_groups
        )
        model = trainer.accelerator.unwrap_model(trainer.model)
        metrics = evaluate_groups(model, tokenizer, eval_groups, training_args.per_device_eval_batch_size)
        trainer.run_info["metrics"] = metrics
        if trainer.is_world_process_zero():
            print(format_table(metrics, f"\nvalidation: {validation_file}"))
    trainer.save_model()
    if trainer.is_world_process_zero():
        trainer.save_state()
        if metrics:
            atomic_write_json(Path(training_args.output_dir) / "metrics.json", metrics)
    return metrics


def evaluate_main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluate a model on a response-selection file; print a table and write the metrics JSON."""
    (args,) = parse_args((EvaluateArguments,), argv)
    setup_logging()
    state = evaluation_state()
    if not os.path.exists(args.data):
        raise ConfigError(args.data, None, "data file not found", field="data")
    model, tokenizer = load_model(args.model, dialogue_recipe(args))
    model = model.to(state.device)
    groups = read_response_selection(args.data, group_size=args.group_size, max_groups=args.max_groups)
    metrics = evaluate_groups(model, tokenizer, groups, args.batch_size)
    if state.is_main_process:
        print(format_table(metrics, f"{args.model} on {args.data}"))
        print(json.dumps(metrics))
        if args.output:
            atomic_write_json(args.output, metrics)
    return metrics


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``finetune ARGS...`` or ``evaluate ARGS...``: :func:`finetune_main` or :func:`evaluate_main`."""

    return dispatch(argv, finetune=finetune_main, evaluate=evaluate_main)


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
