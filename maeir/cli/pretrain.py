"""Driver of ``scripts/pretrain.py``: backbone → method model → data → collator → trainer → checkpoints.

Runs the same on one CPU, under ``accelerate launch`` (DDP, DeepSpeed ZeRO-2) and on GPUs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from transformers import AutoTokenizer, TrainingArguments, set_seed

from ..arguments import PretrainDataArguments, PretrainModelArguments
from ..config_file import parse_key_values
from ..data.corpus import load_text_corpus
from ..data.tokenizer import train_wordpiece_tokenizer
from ..errors import ConfigError
from ..methods import check_data_arguments, get_method
from ..modeling.backbone import MINILM_ALIASES, MINILM_HUB_ID, check_max_length, resolve_backbone_path
from ..run_folder import resolve_resume
from ..trainers import PretrainingTrainer
from . import parse_training_command, training_driver

logger = logging.getLogger(__name__)

TRAINED_TOKENIZER_DIR = "wordpiece_tokenizer"


def method_fields(model_args: PretrainModelArguments, config_class: type) -> dict[str, Any]:
    """The ``--method_config`` fields, checked against the method's config class (names, types, ranges).

    Errors name the field as ``method_config.NAME`` (located in the config file when it came from one).
    """
    fields = parse_key_values(model_args.method_config, source="--method_config")
    if not isinstance(fields, dict):
        raise ConfigError(None, None, "must be a mapping of method fields", "method_config")
    known = config_class.method_field_names()
    for name, value in fields.items():
        if name not in known:
            raise ConfigError(
                None, None, f"unknown {config_class.__name__} field; known: {known}", f"method_config.{name}"
            )
        default = getattr(config_class, name, None)
        expected = type(default) if default is not None else None
        ok = (
            expected is None
            or value is None
            or (expected is bool and isinstance(value, bool))
            or (expected is int and isinstance(value, int) and not isinstance(value, bool))
            or (expected is float and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (expected not in (bool, int, float) and isinstance(value, expected))
        )
        if not ok:
            raise ConfigError(
                None, None, f"expected {expected.__name__}, got {type(value).__name__} {value!r}",
                f"method_config.{name}",
            )  # fmt: skip
    try:
        config_class(**fields)
    except (ValueError, TypeError) as err:
        named = [n for n in sorted(fields, key=len, reverse=True) if n in str(err)]
        field = f"method_config.{named[0]}" if named else "method_config"
        raise ConfigError(None, None, str(err), field) from None
    return fields


def check_real_tokens(dataset: Any, tokenizer: Any, source: str, sample: int = 2000) -> None:
    """Refuse training data whose examples hold no real token after tokenisation (only special or
    unknown tokens: a file of NUL bytes or control characters would train on nothing with loss 0)."""
    if len(dataset) == 0:
        raise ConfigError(source, None, "no training example after tokenisation", field="train_file")
    rows = dataset.select(range(min(sample, len(dataset))))
    special = set(tokenizer.all_special_ids)
    seen_ids = False

    def real(value: Any, key: str = "") -> bool:
        nonlocal seen_ids
        if isinstance(value, dict):
            return any(real(v, k) for k, v in value.items())
        if not key.endswith("ids") or key == "word_ids":
            return False
        seen_ids = True
        if isinstance(value, int):
            return value not in special
        return isinstance(value, list) and any(real(i, key) for i in value)

    for row in rows:
        if real(row):
            return
    if not seen_ids:  # no token ids to inspect (the collator tokenises)
        return
    raise ConfigError(
        source,
        None,
        f"no real token in the first {len(rows)} examples after tokenisation (only special / unknown "
        "tokens): is it a text file?",
        field="train_file",
    )


def architecture_name(base_name: str, overrides: dict[str, Any], encoder_config: Any) -> str:
    """How a from-scratch run names its architecture: the source config, the overrides, the vocabulary."""
    changes = dict(overrides)
    changes["vocab_size"] = encoder_config.vocab_size
    return f"{base_name} ({', '.join(f'{k}={v}' for k, v in changes.items())})"


def trained_tokenizer(
    model_args: PretrainModelArguments, data_args: PretrainDataArguments, output_dir: str
) -> str:
    """``OUTPUT_DIR/wordpiece_tokenizer``: trained on the training texts, or the one a previous run left."""
    if not model_args.from_scratch:
        raise ConfigError(
            None,
            None,
            "a newly trained tokenizer only fits a backbone trained from scratch: add --from_scratch true",
            "train_tokenizer_vocab_size",
        )
    folder = os.path.join(output_dir, TRAINED_TOKENIZER_DIR)
    if os.path.isfile(os.path.join(folder, "tokenizer.json")):
        logger.info("reusing the tokenizer trained by a previous run: %s", folder)
        return folder
    corpus = load_text_corpus(data_args.train_file, data_args.text_field, data_args.max_train_samples)
    return train_wordpiece_tokenizer(
        (text for batch in corpus.iter(batch_size=1000) for text in batch["text"]),
        model_args.train_tokenizer_vocab_size,
        folder,
    )


@training_driver
def main(argv: Sequence[str] | None = None, callbacks: list | None = None) -> PretrainingTrainer:
    """Parse arguments, pre-train, save ``output_dir`` (full model + ``encoder/`` + model card)."""
    model_args, data_args, training_args = parse_training_command(
        (PretrainModelArguments, PretrainDataArguments, TrainingArguments), argv
    )
    # Our collators build the model inputs from `input_ids`: the Trainer must not drop that column.
    training_args.remove_unused_columns = False
    method = get_method(model_args.method)
    check_data_arguments(method, data_args)
    fields = method_fields(model_args, method.model_class.config_class)
    backbone = resolve_backbone_path(model_args.model_name_or_path)
    tokenizer_path = resolve_backbone_path(model_args.tokenizer_name or model_args.model_name_or_path)
    if model_args.train_tokenizer_vocab_size is not None:
        with training_args.main_process_first(desc="training the tokenizer"):
            tokenizer_path = trained_tokenizer(model_args, data_args, training_args.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)

    set_seed(training_args.seed)
    encoder_overrides = parse_key_values(model_args.encoder_overrides, source="--encoder_overrides")
    model = method.model_class.from_backbone(
        backbone,
        from_scratch=model_args.from_scratch,
        tokenizer=tokenizer,
        encoder_overrides=encoder_overrides,
        **fields,
    )
    model.config.padding_free = model_args.padding_free
    check_max_length(model.config.encoder_config, data_args.max_seq_length, "max_seq_length")
    for name in ("context_max_length", "response_max_length"):
        check_max_length(
            model.config.encoder_config, getattr(model.config, name, None), f"method_config.{name}"
        )
    with training_args.main_process_first(desc="building the training set"):
        train_dataset = method.build_dataset(tokenizer, data_args)
    check_real_tokens(train_dataset, tokenizer, data_args.train_file or method.default_data)
    collator = method.collator_class.from_model_config(
        tokenizer, model.config, pad_to_multiple_of=data_args.pad_to_multiple_of
    )
    is_minilm = model_args.model_name_or_path.lower() in (a.lower() for a in MINILM_ALIASES)
    base_name = MINILM_HUB_ID if is_minilm else model_args.model_name_or_path
    config_paper = type(model.config).paper
    run_info = {
        "method": method.name,
        "model_class": type(model).__name__,
        "paper": config_paper,
        "published_results": parse_key_values(model_args.published_results, source="--published_results")
        or config_paper.get("published", {}),
        "base_model": None if model_args.from_scratch else base_name,
        "from_scratch": model_args.from_scratch,
        "output_dir": training_args.output_dir,
        "hub_model_id": training_args.hub_model_id,
        "data": data_args.train_file or method.default_data,
        "num_train_examples": len(train_dataset),
        "hyperparameters": {
            "max_seq_length": data_args.max_seq_length,
            "pack_sequences": data_args.pack_sequences,
            **model.config.method_fields(),
        },
    }
    if model_args.from_scratch:
        run_info["architecture"] = architecture_name(
            base_name, encoder_overrides, model.config.encoder_config
        )
        run_info["hyperparameters"]["from_scratch"] = True
        if model_args.train_tokenizer_vocab_size is not None:
            run_info["hyperparameters"]["train_tokenizer_vocab_size"] = model_args.train_tokenizer_vocab_size
    trainer = PretrainingTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=collator,
        processing_class=tokenizer,
        run_info=run_info,
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    trainer.save_model()
    if trainer.is_world_process_zero():
        trainer.save_state()
    return trainer


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
