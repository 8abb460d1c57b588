"""One card data class per run kind, rendered from a Jinja2 template of ``maeir/cards/templates/``.

:class:`RunCardData` holds what every card shows (filled from a run folder's ``maeir_run.json``:
starting checkpoint, data, hyperparameters, losses, metrics); its subclasses add what their kind
needs and name their template. :func:`card_kind` tells a run's kind from its ``maeir_run.json``,
:func:`render_card` renders the card of a run and :func:`write_card` writes it as ``README.md``:
the one path every trainer, command and ``maeir.hub`` uses. The pre-training kinds (``pretraining``
and ``encoder``) render through :mod:`maeir.cards.pretraining` (Hub metadata with a ``model-index``,
re-renderable for another repo id).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jinja2
import transformers
import yaml

from ..io_utils import atomic_write_text
from .common import TEMPLATES_DIR, base_model_name, markdown_table
from .pretraining import card_for_run
from .validate import save_model_card

# Bookkeeping fields of TrainingArguments: where and how often things are written, not how the model
# was trained; never listed as hyperparameters.
_NOT_HYPERPARAMETERS = {
    "output_dir", "logging_dir", "run_name", "report_to", "hub_model_id", "hub_token", "push_to_hub",
    "resume_from_checkpoint", "overwrite_output_dir", "disable_tqdm", "save_total_limit", "local_rank",
    "deepspeed", "accelerator_config", "include_for_metrics", "logging_strategy", "logging_steps",
    "save_strategy", "save_steps", "eval_steps", "save_only_model", "log_level", "log_level_replica",
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers", "ddp_backend",
    "use_cpu", "logging_first_step", "logging_nan_inf_filter", "trackio_space_id", "project",
}  # fmt: skip


# Always listed, default or not: what a reader needs to reproduce the batch and the schedule.
CORE_HYPERPARAMETERS = (
    "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "warmup_steps",
    "weight_decay", "lr_scheduler_type", "seed", "bf16", "fp16",
)  # fmt: skip


def training_hyperparameters(args: Any, **extra: Any) -> dict[str, Any]:
    """The hyperparameters of a run: :data:`CORE_HYPERPARAMETERS`, then the other fields of its
    ``TrainingArguments`` (or subclass) that differ from a default ``TrainingArguments`` (bookkeeping
    fields left out), the batch geometry (``world_size``, ``global_batch_size``) and ``extra``.
    Enum values are written as their value; non-scalar values are left out."""

    # The declared defaults, not an instance: building a TrainingArguments resets accelerate's state,
    # and this runs while a model is saved mid-training.
    default = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(transformers.TrainingArguments)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    rows: dict[str, Any] = {}
    for name in CORE_HYPERPARAMETERS:
        value = getattr(args, name, None)
        rows[name] = getattr(value, "value", value)
    for f in dataclasses.fields(args):
        if not f.init or f.name in _NOT_HYPERPARAMETERS or f.name in rows or f.name.startswith("_"):
            continue
        value = getattr(args, f.name, None)
        value = getattr(value, "value", value)
        if f.name in default and getattr(default[f.name], "value", default[f.name]) == value:
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            rows[f.name] = value
    world = int(getattr(args, "world_size", 1) or 1)
    rows["world_size"] = world
    rows["global_batch_size"] = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
    rows.update(extra)
    return rows


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,  # Markdown, not HTML  # noqa: S701
)


@dataclass
class RunCardData:
    """What every maeir card shows; a subclass per run kind sets ``kind``, ``template`` and the header."""

    kind: ClassVar[str] = ""
    default_title: ClassVar[str] = "maeir model"
    model_id: str | None = None
    base_model: str = ""
    data: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    eval_data: str | None = None
    license: str = "apache-2.0"
    info: dict[str, Any] = field(default_factory=dict)  # the whole maeir_run.json, for kind-specific fields

    @classmethod
    def from_info(cls, info: Mapping[str, Any], model_id: str | None = None) -> RunCardData:
        """The card data of a run from its ``maeir_run.json`` content; ``model_id`` overrides the one in it."""
        return cls(
            model_id=model_id or info.get("model_id"),
            base_model=base_model_name(info.get("base_model")),
            data=info.get("data"),
            hyperparameters=dict(info.get("hyperparameters") or {}),
            losses=dict(info.get("losses") or {}),
            metrics=dict(info.get("metrics") or {}),
            eval_data=info.get("eval_data"),
            info=dict(info),
        )

    # -- what a subclass adapts -----------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {}

    def context(self) -> dict[str, Any]:
        return {}

    # -- rendering ------------------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        metadata = self.metadata()
        header = (
            metadata if "license" in metadata else {"license": self.license, "language": ["en"], **metadata}
        )
        if "/" in self.base_model and not self.base_model.startswith(("/", ".")):
            header["base_model"] = self.base_model
        return header

    def render(self) -> str:
        """The card's text: YAML header, then the kind's template."""
        values = {
            "header": yaml.safe_dump(self.header(), sort_keys=False).strip(),
            "title": self.model_id or self.default_title,
            "base": self.base_model,
            "data": str(self.data) if self.data else "",
            "hyperparameters_table": markdown_table(self.hyperparameters) if self.hyperparameters else "",
            "losses_table": markdown_table({k: round(v, 4) for k, v in self.losses.items()})
            if self.losses
            else "",
            "metrics_table": markdown_table(self.metrics) if self.metrics else "",
            "eval_data": self.eval_data or "the evaluation split",
            **self.context(),
        }
        return _ENV.get_template(f"{self.kind}.md").render(**values).rstrip("\n") + "\n"


@dataclass
class RetrieverCardData(RunCardData):
    """A bi-encoder fine-tuned by ``maeir-finetune-retriever`` (dense, sparse or hybrid)."""

    kind: ClassVar[str] = "retriever"
    default_title: ClassVar[str] = "maeir bi-encoder"

    @property
    def representation(self) -> str:
        return (self.info.get("encoding_recipe") or {}).get("representation", "dense")

    def metadata(self) -> dict[str, Any]:
        dense = self.representation in ("dense", "hybrid")
        return {
            "library_name": "sentence-transformers" if dense else "transformers",
            "license": self.license,
            "language": ["en"],
            "pipeline_tag": "sentence-similarity" if dense else "feature-extraction",
            "tags": ["maeir", "retrieval", "bi-encoder", self.representation],
        }

    def context(self) -> dict[str, Any]:
        by_view = self.info.get("metrics_by_view") or {}
        rows = ""
        if by_view:
            names = list(next(iter(by_view.values())))
            lines = ["| view | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
            lines += [f"| {view} | " + " | ".join(f"{values[n]:.4f}" for n in names) + " |"
                      for view, values in by_view.items()]  # fmt: skip
            rows = "\n".join(lines)
        return {
            "representation": self.representation,
            "dense": self.representation in ("dense", "hybrid"),
            "recipe_table": markdown_table(dict(self.info.get("encoding_recipe") or {})),
            "by_view_rows": rows,
        }


@dataclass
class RerankerCardData(RunCardData):
    """A cross-encoder ranker trained by ``maeir-train-reranker`` (the MD2PR teacher)."""

    kind: ClassVar[str] = "reranker"
    default_title: ClassVar[str] = "maeir cross-encoder ranker"

    def metadata(self) -> dict[str, Any]:
        return {"library_name": "transformers", "pipeline_tag": "text-ranking",
                "tags": ["maeir", "cross-encoder", "reranker", "md2pr"]}  # fmt: skip

    def context(self) -> dict[str, Any]:
        return {"recipe_table": markdown_table(self.info.get("recipe") or {})}


def md2pr_terms(settings: Mapping[str, Any]) -> str:
    """Which MD2PR terms were on, in words."""
    if not settings:
        return "contrastive learning plus multi-level distillation from a cross-encoder ranker"
    terms = []
    if settings.get("contrastive_weight", 1):
        terms.append("contrastive learning over in-batch and hard negatives")
    if settings.get("kl_weight", 1):
        terms.append(f"sentence-level KL distillation (alpha = {settings.get('kl_weight')})")
    word = settings.get("word_level_weight", 1)
    parts = [name for name, key in (("attention", "attention_weight"), ("hidden-state", "hidden_weight"))
             if word and settings.get(key, 1)]  # fmt: skip
    if parts:
        terms.append(f"word-level {' and '.join(parts)} alignment (beta = {word})")
    text = ", ".join(terms[:-1]) + (" and " if len(terms) > 1 else "") + terms[-1]
    if settings.get("false_negative_filtering") and (
        settings.get("kl_weight") or settings.get("contrastive_weight")
    ):
        text += (f", with dynamic false-negative filtering (threshold {settings.get('fn_threshold_start')} -> "
                 f"{settings.get('fn_threshold_end')}, {settings.get('fn_schedule')})")  # fmt: skip
    return text


@dataclass
class MD2PRCardData(RunCardData):
    """A dual encoder distilled from a cross-encoder by ``maeir-distill-md2pr``."""

    kind: ClassVar[str] = "md2pr"
    default_title: ClassVar[str] = "maeir MD2PR dual encoder"

    def metadata(self) -> dict[str, Any]:
        return {"library_name": "sentence-transformers", "pipeline_tag": "sentence-similarity",
                "tags": ["maeir", "retrieval", "bi-encoder", "distillation", "md2pr"]}  # fmt: skip

    def context(self) -> dict[str, Any]:
        info = self.info
        return {
            "terms": md2pr_terms(info.get("md2pr") or {}),
            "teacher": info.get("teacher") or "precomputed scores",
            "recipe_table": markdown_table(dict(info.get("encoding_recipe") or {})),
            "md2pr_table": markdown_table(info["md2pr"]) if info.get("md2pr") else "",
            "has_false_negatives": "false_negatives_masked" in info,
            "false_negatives_masked": info.get("false_negatives_masked"),
            "published_table": markdown_table(info["published_results"])
            if info.get("published_results")
            else "",
        }


@dataclass
class PretrainingCardData(RunCardData):
    """A pre-training run: the full model (``kind="pretraining"``) or its plain encoder (``"encoder"``),
    rendered by :func:`maeir.cards.pretraining.card_for_run` (Hub metadata with a ``model-index``)."""

    kind: ClassVar[str] = "pretraining"

    def card(self):  # noqa: ANN201 - a huggingface_hub.ModelCard

        return card_for_run(self.info, self.kind, model_id=self.model_id)

    def render(self) -> str:
        return self.card().content


@dataclass
class EncoderCardData(PretrainingCardData):
    kind: ClassVar[str] = "encoder"


CARD_CLASSES: dict[str, type[RunCardData]] = {
    cls.kind: cls
    for cls in (PretrainingCardData, EncoderCardData, RetrieverCardData, RerankerCardData, MD2PRCardData)
}


def card_kind(info: Mapping[str, Any]) -> str:
    """The card kind of a run from its ``maeir_run.json``: ``card_kind`` when recorded, else told from
    the fields each kind writes (MD2PR settings, a cross-encoder recipe, an encoding recipe)."""
    kind = info.get("card_kind")
    if kind in CARD_CLASSES:
        return kind
    if "md2pr" in info:
        return "md2pr"
    if "encoding_recipe" in info:
        return "retriever"
    if "recipe" in info:
        return "reranker"
    return "pretraining"


def card_data(info: Mapping[str, Any], kind: str | None = None, model_id: str | None = None) -> RunCardData:
    """The card data of ``kind`` (default: :func:`card_kind`) for a run described by ``info``."""
    kind = kind or card_kind(info)
    if kind not in CARD_CLASSES:
        raise ValueError(f"kind must be one of {tuple(CARD_CLASSES)}, got {kind!r}")
    cls = CARD_CLASSES[kind]
    return (
        cls(model_id=model_id, info=dict(info))
        if issubclass(cls, PretrainingCardData)
        else cls.from_info(info, model_id)
    )


def render_card(info: Mapping[str, Any], kind: str | None = None, model_id: str | None = None) -> str:
    """The card text of a run (see :func:`card_data`)."""
    return card_data(info, kind, model_id).render()


def write_card(folder: str | os.PathLike, info: Mapping[str, Any], kind: str | None = None) -> Path:
    """Write the card of a run as ``folder/README.md`` (atomically); return its path.

    The pre-training kinds are validated offline first (:func:`maeir.cards.validate.save_model_card`).
    """
    data = card_data(info, kind)
    if isinstance(data, PretrainingCardData):
        return save_model_card(data.card(), folder)
    path = Path(folder) / "README.md"
    atomic_write_text(path, data.render())
    return path
