"""Driver of ``scripts/distill_md2pr.py``: MD2PR, a cross-encoder distilled into a dense dual encoder.

    python scripts/distill_md2pr.py [CONFIG] --student M --teacher D --output_dir S \\
        [--train_file F.jsonl | --beir DIR] [--kl_weight 1 --word_level_weight 1 ...] [--eval_split test]
    accelerate launch [--config_file configs/accelerate/...] scripts/distill_md2pr.py configs/md2pr_msmarco.yaml

Student: the retrieval stack's dense bi-encoder (``load_bi_encoder``: ``minilm``, a backbone, a
maeir run, a trained bi-encoder) with its encoding recipe. Teacher: a ranker from
``scripts/train_reranker.py``, frozen. Data as ``scripts/finetune_retriever.py``; optional
precomputed teacher scores (``--teacher_scores_run``, a TREC run of the teacher on the training
candidates). Every MD2PR field is an argument (:class:`maeir.methods.md2pr.MD2PRConfig`).

Writes ``S/`` (a plain bi-encoder folder that ``load_bi_encoder``, ``scripts/evaluate_retrieval.py`` and
sentence-transformers load), ``S/md2pr_config.json``, ``S/maeir_run.json``, ``S/README.md``; with
``--eval_split``, ``S/eval_{split}/run.trec`` and ``metrics.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from datasets import Dataset
from transformers import set_seed

from ..cards import render_card
from ..config_file import parse_key_values
from ..errors import ConfigError
from ..methods.md2pr.arguments import DistillationDataArguments, DistillationModelArguments
from ..methods.md2pr.collator import MD2PRCollator
from ..methods.md2pr.configuration_md2pr import MD2PRConfig
from ..methods.md2pr.modeling_md2pr import MD2PRStudentModel
from ..methods.md2pr.teacher import CrossEncoderTeacher
from ..modeling.backbone import MINILM_ALIASES, MINILM_HUB_ID
from ..retrieval.arguments import RetrieverTrainingArguments
from ..retrieval.evaluation import read_trec_run
from ..retrieval.loading import load_bi_encoder
from ..retrieval.modeling_cross_encoder import load_cross_encoder
from ..run_folder import resolve_resume
from ..trainers.distillation import MD2PRTrainer
from . import parse_training_command, training_driver
from .finetune_retriever import evaluate_trained, training_data

logger = logging.getLogger(__name__)


def build_teacher(path: str, md2pr: MD2PRConfig) -> CrossEncoderTeacher:
    """The frozen teacher, recording what the word-level terms need."""
    model, tokenizer, recipe = load_cross_encoder(path)
    return CrossEncoderTeacher(
        model, tokenizer, recipe, layer=md2pr.teacher_layer, record_attention=md2pr.uses_attention,
        record_hidden=md2pr.uses_hidden, batch_size=md2pr.teacher_batch_size, dtype=md2pr.teacher_dtype,
    )  # fmt: skip


def attach_projection(
    student: MD2PRStudentModel, teacher: CrossEncoderTeacher | None, md2pr: MD2PRConfig
) -> bool:
    """Add the student->teacher width projection when the hidden-state term needs one."""
    if not md2pr.uses_hidden or teacher is None:
        return False
    differ = teacher.hidden_size != student.hidden_size
    if md2pr.hidden_projection == "never" and differ:
        raise ConfigError(
            None, None, f"student width {student.hidden_size} != teacher width {teacher.hidden_size}: hidden-state "
            "alignment needs a projection (hidden_projection auto)", field="hidden_projection",
        )  # fmt: skip
    if md2pr.hidden_projection == "always" or (md2pr.hidden_projection == "auto" and differ):
        student.add_hidden_projection(teacher.hidden_size)
        return True
    return False


@training_driver
def main(argv: Sequence[str] | None = None) -> dict:
    """Parse arguments, distil, save the student; returns ``{"output_dir", "train", "eval"}``."""
    model_args, data_args, md2pr, training_args = parse_training_command(
        (DistillationModelArguments, DistillationDataArguments, MD2PRConfig, RetrieverTrainingArguments), argv
    )
    training_args.remove_unused_columns = False  # the collator reads the raw text columns
    if training_args.gradient_cache_chunk_size is not None:
        raise ConfigError(
            None, None, "not supported by MD2PR (token states are needed)", field="gradient_cache_chunk_size"
        )
    if training_args.flops_query_weight or training_args.flops_passage_weight:
        raise ConfigError(
            None, None, "MD2PR trains a dense student: no FLOPs regulariser", field="flops_query_weight"
        )
    set_seed(training_args.seed)

    bi_encoder, tokenizer = load_bi_encoder(model_args.student_path, **model_args.recipe())
    if bi_encoder.config.representation != "dense":
        raise ConfigError(
            None, None, "the MD2PR student is a dense encoder (docs/methods.md#md2pr)", field="representation"
        )
    student = MD2PRStudentModel.from_bi_encoder(bi_encoder)
    del bi_encoder

    teacher_scores = None
    if data_args.teacher_scores_run:
        teacher_scores = read_trec_run(data_args.teacher_scores_run)
    elif md2pr.teacher_scores == "precomputed":
        raise ConfigError(
            None, None, "teacher_scores precomputed needs --teacher_scores_run", field="teacher_scores"
        )
    if not md2pr.needs_teacher or md2pr.teacher_scores == "precomputed":
        on_the_fly = False
    elif md2pr.teacher_scores == "on_the_fly" or md2pr.uses_word_level or teacher_scores is None:
        on_the_fly = True
    else:  # auto with a score run: the teacher (when given) covers passages the run lacks
        on_the_fly = model_args.teacher is not None
    teacher = None
    if on_the_fly:
        if not model_args.teacher:
            raise ConfigError(None, None, "MD2PR needs a teacher: --teacher RANKER_FOLDER", field="teacher")
        teacher = build_teacher(model_args.teacher, md2pr)
    attach_projection(student, teacher, md2pr)

    with training_args.main_process_first(desc="building the training set"):
        records, description = training_data(data_args, training_args.seed)
    collator = MD2PRCollator(
        tokenizer, student.config, group_size=data_args.group_size, positive_sampling=data_args.positive_sampling,
        negative_sampling=data_args.negative_sampling, pad_to_multiple_of=data_args.pad_to_multiple_of,
        teacher_tokenizer=None if teacher is None else teacher.tokenizer,
        teacher_recipe=None if teacher is None else teacher.recipe,
        teacher_max_length=md2pr.teacher_max_length, teacher_inputs=teacher is not None,
        word_level=md2pr.uses_word_level, teacher_scores=teacher_scores,
    )  # fmt: skip
    student_name = model_args.student_path
    is_minilm = student_name.lower() in (a.lower() for a in MINILM_ALIASES)
    published = (
        parse_key_values(model_args.published_results, source="--published_results")
        or MD2PRConfig.paper["published"]
    )
    run_info = {
        "method": "MD2PR (multi-level distillation from a cross-encoder ranker)",
        "paper": MD2PRConfig.paper,
        "published_results": published,
        "base_model": MINILM_HUB_ID if is_minilm else student_name,
        "teacher": model_args.teacher,
        "data": description,
        "num_train_examples": len(records),
        "examples_with_negatives": sum(bool(r["negatives"]) for r in records),
        "hyperparameters": {
            "group_size": data_args.group_size,
            "cross_device_negatives": training_args.cross_device_negatives,
            "in_batch_negatives": training_args.in_batch_negatives,
            "teacher_on_the_fly": teacher is not None,
            "teacher_scores_run": data_args.teacher_scores_run,
            "hidden_projection": student.hidden_projection is not None,
        },
    }
    trainer = MD2PRTrainer(
        model=student, args=training_args, train_dataset=Dataset.from_list(records), data_collator=collator,
        processing_class=tokenizer, md2pr=md2pr, teacher=teacher,
        cross_device_negatives=training_args.cross_device_negatives,
        in_batch_negatives=training_args.in_batch_negatives, run_info=run_info,
    )  # fmt: skip
    train_output = trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    trainer.save_model()
    result: dict[str, Any] = {
        "output_dir": training_args.output_dir,
        "train": train_output.metrics,
        "false_negatives_masked": trainer.false_negative_total,
        "teacher_seconds": trainer.teacher_seconds,
    }
    if trainer.is_world_process_zero():
        trainer.save_state()
    if data_args.eval_split and trainer.is_world_process_zero():
        result["eval"] = evaluate_trained(trainer, tokenizer, data_args, training_args, render_card)
    return result


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
