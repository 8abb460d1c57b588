"""Model cards of pre-training runs (the full model and its encoder): rendering and re-rendering.

Two Jinja2 templates (``maeir/cards/templates/pretraining.md`` for the full pre-training model and
``maeir/cards/templates/encoder.md`` for the plain encoder) are rendered with
``huggingface_hub.ModelCard.from_template``; the YAML header comes from a ``ModelCardData`` with the
Hub metadata (library, license, language, tags, datasets, base model, pipeline tag and, when
metrics are known, a ``model-index``).

``ModelCard.validate()`` asks the Hub; :func:`validate_card_metadata` checks the same things that can
be checked offline. A local path is never written as ``base_model`` (the Hub only accepts repo
ids): it appears in the card text only.

Each card ends with an HTML comment holding the arguments it was rendered with, so that a card can
be re-rendered for another repo id or as the other kind (:func:`card_args_from_card`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .common import (
    _CARD_ARGS_RE,
    DEFAULT_AUTO_CLASSES,
    PIPELINE_TAGS,
    ModelCardError,
    _cell,
    _check_kind,
    _check_metric_values,
    _metric_number,
    _safe_json_for_html_comment,
    _slug,
    arxiv_id,
    base_model_name,
    framework_versions,
    hub_base_model,
    is_hub_repo_id,
    metric_type,
    template_path,
)

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Rendering


def render_model_card(
    *,
    kind: str,
    model_id: str,
    method: str,
    method_title: str,
    paper: Mapping[str, Any] | None,
    base_model: str,
    datasets: Sequence[str],
    dataset_description: str,
    hyperparameters: Mapping[str, Any],
    losses: Mapping[str, float],
    metrics: Mapping[str, float] | None = None,
    license: str = "apache-2.0",
    extra_tags: Iterable[str] = (),
    method_description: str | None = None,
    eval_dataset: Mapping[str, str] | None = None,
    auto_class: str | None = None,
    pooling: str = "cls",
    encoder_subfolder: str | None = "encoder",
    from_scratch: bool = False,
    architecture: str | None = None,
) -> ModelCard:
    """Render the model card of a pre-trained model (``kind="pretraining"``) or its encoder (``"encoder"``).

    ``paper``: ``{"title", "arxiv" (id or URL), "bibtex", "published": {metric: value} | None}``.
    ``base_model``: a Hub repo id or a local path (a local path goes in the text only).
    ``datasets``: Hub dataset ids for the metadata (anything else is listed in the text only).
    ``metrics``: evaluation results of this model, written to ``model-index`` too; they were measured
    on ``eval_dataset`` (``{"type", "name", "split", "config", "task_type", "task_name"}``; default:
    type ``custom``, name ``Evaluation set``, task ``text-retrieval``).
    ``auto_class``: the Auto class in the loading snippet of the full model (default
    ``AutoModelForPreTraining``); ``pooling``: ``"cls"`` or ``"mean"``, for the encoder snippet;
    ``encoder_subfolder``: where the full model's repo holds the plain encoder (None: nowhere).
    ``from_scratch``: the model was trained from a random initialisation with the architecture
    ``architecture`` (a config's name, e.g. ``bert-base-uncased (num_hidden_layers=2)``); no
    ``base_model`` is declared.
    """
    _check_kind(kind)
    if not model_id or not isinstance(model_id, str):
        raise ModelCardError(f"model_id must be a non-empty string, got {model_id!r}")
    if pooling not in ("cls", "mean"):
        raise ModelCardError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
    if metrics is not None:
        _check_metric_values(metrics, "metrics")
    paper = dict(paper or {})
    published = paper.get("published") or {}
    if published:
        _check_metric_values(published, "paper['published']")
    arxiv = arxiv_id(paper.get("arxiv"))

    card_args = {
        "model_id": model_id,
        "method": method,
        "method_title": method_title,
        "paper": paper or None,
        "base_model": os.fspath(base_model) if base_model else "",
        "datasets": list(datasets or []),
        "dataset_description": dataset_description or "",
        "hyperparameters": dict(hyperparameters or {}),
        "losses": dict(losses or {}),
        "metrics": dict(metrics) if metrics else None,
        "license": license,
        "extra_tags": list(extra_tags or []),
        "method_description": method_description,
        "eval_dataset": dict(eval_dataset) if eval_dataset else None,
        "auto_class": auto_class,
        "pooling": pooling,
        "encoder_subfolder": encoder_subfolder,
        "from_scratch": bool(from_scratch),
        "architecture": architecture,
    }

    # -- metadata -------------------------------------------------------------------------------
    base_id = None if from_scratch else hub_base_model(base_model)
    hub_datasets = [d for d in (datasets or []) if is_hub_repo_id(str(d)) and not Path(str(d)).exists()]
    local_datasets = [str(d) for d in (datasets or []) if str(d) not in hub_datasets]
    tags = ["maeir", _slug(method) or "maeir-method", "masked-autoencoder", "dense-retrieval"]
    tags += (
        ["pretraining", "fill-mask"] if kind == "pretraining" else ["feature-extraction", "text-embeddings"]
    )
    if arxiv:
        tags.append(f"arxiv:{arxiv}")
    tags += [str(t) for t in extra_tags or []]
    model_name = model_id.rstrip("/").split("/")[-1]
    eval_results = None
    if metrics:
        dataset_info = dict(eval_dataset or {})
        eval_results = [
            EvalResult(
                task_type=dataset_info.get("task_type", "text-retrieval"),
                task_name=dataset_info.get("task_name", "Retrieval"),
                dataset_type=dataset_info.get("type", "custom"),
                dataset_name=dataset_info.get("name", "Evaluation set"),
                dataset_split=dataset_info.get("split"),
                dataset_config=dataset_info.get("config"),
                metric_type=metric_type(name),
                metric_name=name,
                metric_value=float(value),
            )
            for name, value in metrics.items()
        ]
    card_data = ModelCardData(
        library_name="transformers",
        license=license,
        language="en",
        tags=tags,
        datasets=hub_datasets or None,
        base_model=base_id,
        pipeline_tag=PIPELINE_TAGS[kind],
        model_name=model_name if eval_results else None,
        eval_results=eval_results,
    )

    # -- text -----------------------------------------------------------------------------------
    shown_base = os.fspath(base_model) if base_model else ""
    if from_scratch:
        shape = f"`{base_model_name(architecture or shown_base)}`" if (architecture or shown_base) else None
        shape_text = f" with the architecture of {shape}" if shape else ""
        base_markdown = f"scratch (random initialisation){shape_text}"
        backbone = (
            f"Trained from scratch (random initialisation){shape_text}: no pre-trained weights were used, "
            "only the architecture's configuration."
        )
    elif base_id:
        base_markdown = f"[`{base_id}`](https://huggingface.co/{base_id})"
        backbone = f"Initialised from {base_markdown}"
        backbone += f" (local copy used for training: `{shown_base}`)." if shown_base != base_id else "."
    elif shown_base:
        base_markdown = f"the local checkpoint `{shown_base}`"
        backbone = f"Initialised from the local checkpoint `{shown_base}` (not a Hugging Face Hub model)."
    else:
        base_markdown = "a randomly initialised encoder"
        backbone = "Randomly initialised (no pre-trained backbone)."
    dataset_text = dataset_description or ""
    if local_datasets:
        dataset_text = (
            (dataset_text + " " if dataset_text else "")
            + "Files: "
            + ", ".join(f"`{d}`" for d in local_datasets)
            + "."
        )
    metric_rows = []
    for name, value in (metrics or {}).items():
        metric_rows.append((_cell(name), _metric_number(value), _metric_number(published.get(name))))
    if metric_rows or published:
        for name, value in published.items():
            if not metrics or name not in metrics:
                metric_rows.append((_cell(name), "—", _metric_number(value)))
    eval_info = dict(eval_dataset or {})
    if metrics:
        eval_description = "Results of this model"
        if eval_info.get("name"):
            eval_description += f" on {eval_info['name']}"
            if eval_info.get("split"):
                eval_description += f" ({eval_info['split']} split)"
        eval_description += "."
    else:
        eval_description = (
            "This model has not been evaluated yet; the paper's published numbers are listed for reference."
        )
    paper_view = None
    if paper:
        paper_view = {
            "title": paper.get("title") or method_title,
            "arxiv_id": arxiv,
            "arxiv_url": f"https://arxiv.org/abs/{arxiv}" if arxiv else None,
            "bibtex": (paper.get("bibtex") or "").strip(),
        }
    template_kwargs = {
        "model_id": model_id,
        "model_name": model_name,
        "method": method,
        "method_title": method_title,
        "method_description": method_description or paper.get("summary"),
        "paper": paper_view,
        "base_model_markdown": base_markdown,
        "backbone_sentence": backbone,
        "dataset_description": dataset_text,
        "dataset_links": ", ".join(f"[`{d}`](https://huggingface.co/datasets/{d})" for d in hub_datasets),
        "hyperparameter_rows": [(_cell(k), _cell(v)) for k, v in (hyperparameters or {}).items()],
        "loss_rows": [(_cell(k), _metric_number(v)) for k, v in (losses or {}).items()],
        "metric_rows": metric_rows,
        "has_published": bool(published),
        "eval_description": eval_description,
        "versions": list(framework_versions().items()),
        "auto_class": auto_class or DEFAULT_AUTO_CLASSES[kind],
        "pooling": pooling,
        "pooling_description": "the [CLS] token's last hidden state"
        if pooling == "cls"
        else "the mean of the last hidden states",
        "encoder_subfolder": encoder_subfolder,
        "card_args_json": _safe_json_for_html_comment(card_args),
    }
    card = ModelCard.from_template(card_data, template_path=str(template_path(kind)), **template_kwargs)
    # Jinja leaves runs of blank lines where optional blocks were skipped: squeeze them.
    text = re.sub(r"\n{3,}", "\n\n", card.text).strip() + "\n"
    return ModelCard(f"---\n{card.data.to_yaml()}\n---\n\n{text}")


def card_args_from_card(card: ModelCard | str) -> dict[str, Any] | None:
    """The :func:`render_model_card` arguments stored in a card rendered by this module, or None."""
    text = card.content if isinstance(card, ModelCard) else str(card)
    match = _CARD_ARGS_RE.search(text)
    if not match:
        return None
    try:
        args = json.loads(match.group(1))
    except json.JSONDecodeError:
        return None
    return args if isinstance(args, dict) else None


_RENDER_KEYS = (
    "model_id",
    "method",
    "method_title",
    "paper",
    "base_model",
    "datasets",
    "dataset_description",
    "hyperparameters",
    "losses",
    "metrics",
    "license",
    "extra_tags",
    "method_description",
    "eval_dataset",
    "auto_class",
    "pooling",
    "encoder_subfolder",
    "from_scratch",
    "architecture",
)


def card_for_run(info: Mapping[str, Any], kind: str, model_id: str | None = None) -> ModelCard:
    """The card of ``kind`` for a run described by ``info`` (the content of ``maeir_run.json``).

    ``info`` holds :func:`render_model_card` keyword arguments; missing ones get defaults, and a few
    other names are understood (``backbone``/``model_name_or_path`` for ``base_model``,
    ``hub_model_id``/``run_name``/``output_dir`` for ``model_id``, ``data`` and
    ``num_train_examples`` for ``dataset_description``, ``published_results`` for the paper's
    ``published`` numbers). ``model_id`` overrides the one in ``info`` (the repo pushed to).
    Metrics that are not finite numbers are left out with a warning instead of raising: this runs
    when a model is saved.
    """
    _check_kind(kind)
    args = {key: info[key] for key in _RENDER_KEYS if key in info and info[key] is not None}
    if "encoder_subfolder" in info:  # None is meaningful here: the repo holds no encoder folder
        args["encoder_subfolder"] = info["encoder_subfolder"]
    base_model = args.get("base_model") or info.get("backbone") or info.get("model_name_or_path") or ""
    args["base_model"] = os.fspath(base_model) if base_model else ""
    output_dir = info.get("output_dir")
    args["model_id"] = (
        model_id
        or args.get("model_id")
        or info.get("hub_model_id")
        or info.get("run_name")
        or (Path(output_dir).name if output_dir else None)
        or "maeir-model"
    )
    args.setdefault("method", info.get("method_name") or "maeir")
    args.setdefault("paper", None)
    args.setdefault("method_title", _method_title(str(args["method"]), args["paper"]))
    published = info.get("published_results")
    if published and isinstance(args["paper"], Mapping):
        args["paper"] = {**args["paper"], "published": published}
    datasets = args.get("datasets") or []
    args["datasets"] = [datasets] if isinstance(datasets, str) else list(datasets)
    if "dataset_description" not in args:
        data = info.get("data")
        if isinstance(data, (str, os.PathLike)) and Path(data).is_file():
            data = f"The local file `{os.fspath(data)}`."
        text = data.strip() if isinstance(data, str) else ""
        if text:
            text = text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
        if isinstance(info.get("num_train_examples"), int):
            text += f" {info['num_train_examples']:,} training examples."
        args["dataset_description"] = text.strip()
    args.setdefault("hyperparameters", {})
    args.setdefault("losses", {})
    # Called when a run is saved: a bad number must not lose the checkpoint, so it is left out.
    if args.get("metrics") is not None:
        args["metrics"] = _finite_metrics(args["metrics"], "metrics") or None
    if isinstance(args.get("paper"), Mapping) and args["paper"].get("published") is not None:
        args["paper"] = {
            **args["paper"],
            "published": _finite_metrics(args["paper"]["published"], "published"),
        }
    return render_model_card(kind=kind, **args)


def _method_title(method: str, paper: Any) -> str:
    """``Dial-MAE`` from the paper title ``Dial-MAE: ConTextual ...`` when it names the method, else ``MAE-LM``."""
    if isinstance(paper, Mapping) and isinstance(paper.get("method_title"), str):
        return paper["method_title"]
    title = paper.get("title") if isinstance(paper, Mapping) else None
    if isinstance(title, str) and ":" in title:
        prefix = title.split(":", 1)[0].strip()
        if prefix and (_slug(prefix).startswith(_slug(method)) or _slug(method).startswith(_slug(prefix))):
            return prefix
    return method.upper() if len(method) <= 12 else method


def _finite_metrics(metrics: Any, what: str) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        logger.warning("model card: ignoring %s %r (not a mapping of metric name to number)", what, metrics)
        return {}
    kept = {}
    for name, value in metrics.items():
        if (
            isinstance(name, str)
            and name.strip()
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        ):
            if math.isfinite(value):
                kept[name] = value
                continue
        logger.warning("model card: ignoring %s %r = %r (not a finite number)", what, name, value)
    return kept
