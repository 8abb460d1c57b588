"""Offline validation of a card's metadata (what the Hub would reject) and saving a card as README.md."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

from ..io_utils import atomic_write_text
from .common import (
    _LANGUAGE_RE,
    _LICENSE_RE,
    KNOWN_PIPELINE_TAGS,
    REQUIRED_METADATA,
    ModelCardError,
    is_hub_repo_id,
)

logger = logging.getLogger(__name__)

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
