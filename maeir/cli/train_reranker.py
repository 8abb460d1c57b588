"""Driver of ``scripts/train_reranker.py``: the MD2PR teacher, a cross-encoder trained with listwise CE.

    python scripts/train_reranker.py [CONFIG] --model_name_or_path M --output_dir D \\
        [--train_file F.jsonl | --beir DIR [--train_split train]] [--group_size 8] [--eval_split test]

Data as ``scripts/finetune_retriever.py``: a training JSONL, a BEIR folder's train split (BM25
negatives mined with ``bm25s``) or, by default, the embedded benchmark. Each query's group is one
positive and ``group_size - 1`` negatives (docs/methods.md#md2pr). Writes ``D/`` (an
``AutoModelForSequenceClassification`` checkpoint, recipe in ``config.json``, tokenizer,
``maeir_run.json``, ``README.md``); with ``--eval_split``, re-ranks the split's BM25 top
``--eval_depth`` and writes ``D/eval_{split}/run.trec`` and ``metrics.json``. Runs the same under
``accelerate launch``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import TrainingArguments, set_seed

from ..cards import write_card
from ..config_file import parse_key_values
from ..data.ranker_collator import RankerCollator
from ..data.retrieval import load_beir
from ..datasets.embedded.retrieval_benchmark import embedded_retrieval_benchmark
from ..io_utils import atomic_write_json
from ..methods.md2pr.arguments import RankerModelArguments, RerankArguments
from ..modeling.backbone import MINILM_ALIASES, MINILM_HUB_ID
from ..retrieval.arguments import RetrieverDataArguments
from ..retrieval.bm25 import BM25Retriever
from ..retrieval.evaluation import write_trec_run
from ..retrieval.modeling_cross_encoder import load_cross_encoder
from ..run_folder import resolve_resume
from ..trainers.ranker import RankerTrainer
from . import parse_training_command, training_driver
from .finetune_retriever import training_data
from .rerank import rerank

logger = logging.getLogger(__name__)


def bm25_run_of_split(data_args: RetrieverDataArguments, split: str, k: int):
    """``(data, BM25 run)`` of a split of the training BEIR folder (or the embedded benchmark)."""

    folder = data_args.eval_beir or data_args.beir
    if folder is None:
        folder = embedded_retrieval_benchmark()
    data = load_beir(folder, split)
    return data, BM25Retriever().index(data.corpus).search(data.queries, k=k)


@training_driver
def main(argv: Sequence[str] | None = None) -> dict:
    """Parse arguments, train, save the ranker; returns ``{"output_dir", "train", "eval"}``."""
    model_args, data_args, training_args = parse_training_command(
        (RankerModelArguments, RetrieverDataArguments, TrainingArguments), argv
    )
    training_args.remove_unused_columns = False  # the collator reads the raw text columns
    set_seed(training_args.seed)

    overrides = parse_key_values(model_args.encoder_overrides, source="--encoder_overrides")
    model, tokenizer, recipe = load_cross_encoder(
        model_args.model_name_or_path, encoder_overrides=overrides, **model_args.recipe()
    )
    with training_args.main_process_first(desc="building the training set"):
        records, description = training_data(data_args, training_args.seed)
    without = sum(not r["negatives"] for r in records)
    if without == len(records):
        raise ValueError(
            "no training example has a negative: a listwise ranker needs negatives (--negatives bm25)"
        )
    if without:
        logger.warning(
            "%d of %d examples have no negative: their groups hold only the positive", without, len(records)
        )
    collator = RankerCollator(
        tokenizer, recipe, group_size=data_args.group_size, positive_sampling=data_args.positive_sampling,
        negative_sampling=data_args.negative_sampling, pad_to_multiple_of=data_args.pad_to_multiple_of,
    )  # fmt: skip
    is_minilm = model_args.model_name_or_path.lower() in (a.lower() for a in MINILM_ALIASES)
    run_info = {
        "method": "cross-encoder ranker (listwise CE), MD2PR teacher",
        "base_model": MINILM_HUB_ID if is_minilm else model_args.model_name_or_path,
        "data": description,
        "num_train_examples": len(records),
        "hyperparameters": {
            "group_size": data_args.group_size,
            "listwise_temperature": model_args.temperature,
            "encoder_overrides": overrides,
            **recipe.to_dict(),
        },  # fmt: skip
    }
    trainer = RankerTrainer(
        model=model, args=training_args, train_dataset=Dataset.from_list(records), data_collator=collator,
        processing_class=tokenizer, temperature=model_args.temperature, run_info=run_info,
    )  # fmt: skip
    train_output = trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    trainer.save_model()
    result: dict[str, Any] = {"output_dir": training_args.output_dir, "train": train_output.metrics}
    if trainer.is_world_process_zero():
        trainer.save_state()
    if data_args.eval_split and trainer.is_world_process_zero():
        out = Path(training_args.output_dir)
        eval_dir = out / f"eval_{data_args.eval_split}"
        data, bm25 = bm25_run_of_split(data_args, data_args.eval_split, k=max(model_args.eval_depth, 1000))
        write_trec_run(eval_dir / "bm25.trec", bm25, tag="bm25")
        args = RerankArguments(
            model=str(out), run=str(eval_dir / "bm25.trec"), output_dir=str(eval_dir), split=data_args.eval_split,
            depth=model_args.eval_depth, batch_size=data_args.eval_batch_size, show_progress=not training_args.disable_tqdm,
        )  # fmt: skip
        unwrapped = trainer.accelerator.unwrap_model(trainer.model)
        result["eval"] = rerank(args, model=unwrapped, tokenizer=tokenizer, recipe=recipe, data=data)
        info_path = out / "maeir_run.json"
        info = json.loads(info_path.read_text(encoding="utf-8"))
        info["metrics"] = {
            k: round(v, 4) for k, v in result["eval"]["views"]["rerank"].items() if isinstance(v, float)
        }
        info["eval_data"] = (
            f"{result['eval']['data']} / {data_args.eval_split}, BM25 top {model_args.eval_depth} re-ranked"
        )
        atomic_write_json(info_path, info)

        write_card(out, info, kind="reranker")
    return result


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
