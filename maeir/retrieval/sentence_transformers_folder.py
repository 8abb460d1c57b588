"""sentence-transformers folders: writing the files that let ``SentenceTransformer(folder)`` load a saved
dense or hybrid bi-encoder, and ``SparseEncoder(folder, trust_remote_code=True)`` a sparse one
(``modules.json``, pooling, normalisation, prompts, a ``Router`` for untied towers), and
reading a sentence-transformers folder's recipe (pooling, normalisation, max lengths, prompts, towers).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io_utils import atomic_write_json
from .configuration_bi_encoder import BiEncoderConfig
from .tokenization_bi_encoder import SIDES

#: The plain tower checkpoints inside a saved bi-encoder folder.
TOWER_FOLDERS = {"query": "query_encoder", "passage": "passage_encoder"}

ST_TRANSFORMER = "sentence_transformers.models.Transformer"
ST_POOLING = "sentence_transformers.models.Pooling"
ST_NORMALIZE = "sentence_transformers.models.Normalize"
ST_ROUTER = "sentence_transformers.models.Router"
#: maeir's SPLADE pooling, a file copied into sparse folders (loaded with ``trust_remote_code=True``).
SPLADE_MODULE_FILE = "maeir_splade_pooling.py"
ST_SPLADE_POOLING = "maeir_splade_pooling.MaeirSpladePooling"


def _pooling_config(config: BiEncoderConfig) -> dict:
    return {
        "word_embedding_dimension": config.encoder_config.hidden_size,
        "pooling_mode_cls_token": config.pooling == "cls",
        "pooling_mode_mean_tokens": config.pooling == "mean",
        "pooling_mode_max_tokens": config.pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
    }


def _splade_config(config: BiEncoderConfig) -> dict:
    return {
        "pooling_strategy": "max",
        "activation_function": "relu",
        "embedding_dimension": config.encoder_config.vocab_size,
        "excluded_token_ids": sorted(set(config.sparse_excluded_token_ids or [])),
        "top_k": config.sparse_top_k or None,
    }


def write_sentence_transformers_config(folder: str | os.PathLike, config: BiEncoderConfig) -> None:
    """Write ``modules.json`` & co. so that sentence-transformers encodes like maeir.

    A dense or hybrid model: ``SentenceTransformer(folder)`` gives the dense view, ``Transformer ->
    Pooling [-> Normalize]``. A sparse model: ``SparseEncoder(folder, trust_remote_code=True)`` gives the
    sparse view, ``Transformer`` (``fill-mask``) ``-> MaeirSpladePooling`` (:mod:`.maeir_splade_pooling`,
    copied into the folder: maeir's special-token exclusion and top-k). Untied towers: a ``Router``
    with a ``query`` route and a ``document`` route (``encode_query`` / ``encode_document``; plain
    ``encode`` uses the document route). Prompts are the recipe's prefixes. sentence-transformers has
    one ``max_seq_length`` per Transformer: tied towers get the passage length (a query longer than
    ``query_max_length`` is then cut later than by maeir).
    """
    folder = Path(folder)
    sparse = not config.uses_dense

    def heads(prefix: str) -> list[tuple[str, str]]:
        """The modules after a tower, as ``(folder name, type)``, their files written."""
        if sparse:
            name = f"{prefix}1_SpladePooling"
            atomic_write_json(folder / name / "config.json", _splade_config(config))
            return [(name, ST_SPLADE_POOLING)]
        names = [(f"{prefix}1_Pooling", ST_POOLING)]
        atomic_write_json(folder / names[0][0] / "config.json", _pooling_config(config))
        if config.normalize:
            names.append((f"{prefix}2_Normalize", ST_NORMALIZE))
            (folder / names[1][0]).mkdir(parents=True, exist_ok=True)
        return names

    if config.tie_towers:
        entries = [(TOWER_FOLDERS["query"], ST_TRANSFORMER), *heads("")]
        modules = [
            {"idx": i, "name": str(i), "path": path, "type": kind} for i, (path, kind) in enumerate(entries)
        ]
    else:
        modules = [{"idx": 0, "name": "0", "path": "", "type": ST_ROUTER}]
        types, structure = {}, {}
        for side, route in (("query", "query"), ("passage", "document")):
            entries = [(TOWER_FOLDERS[side], ST_TRANSFORMER), *heads(f"{route}_")]
            types.update(entries)
            structure[route] = [name for name, _ in entries]
        atomic_write_json(
            folder / "router_config.json",
            {
                "types": types,
                "structure": structure,
                "parameters": {"default_route": "document", "allow_empty_key": True},
            },
        )
    if sparse:
        shutil.copyfile(Path(__file__).with_name(SPLADE_MODULE_FILE), folder / SPLADE_MODULE_FILE)
    atomic_write_json(folder / "modules.json", modules)
    atomic_write_json(
        folder / "config_sentence_transformers.json",
        {
            "model_type": "SparseEncoder" if sparse else "SentenceTransformer",
            "prompts": {"query": config.query_prefix, "document": config.passage_prefix},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine" if config.normalize and not sparse else "dot",
        },
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        raise ConfigError(path, err.lineno, f"invalid JSON: {err.msg}") from None


def _st_pooling_mode(path: Path) -> tuple[str, bool]:
    """``(pooling, include_prompt)`` of a sentence-transformers ``Pooling`` folder (any version)."""
    pooling = read_json(path / "config.json") or {}
    mode = pooling.get("pooling_mode")  # sentence-transformers >= 6 writes one string (or a list)
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if mode is None:
        flags = [name for name in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens",
                                   "weightedmean_tokens", "lasttoken") if pooling.get(f"pooling_mode_{name}")]  # fmt: skip
        if len(flags) != 1:
            raise ConfigError(
                path / "config.json", None, f"unsupported pooling combination {flags}", "pooling_mode"
            )
        mode = flags[0]
    mapping = {"cls": "cls", "cls_token": "cls", "mean": "mean", "mean_tokens": "mean", "max": "max",
               "max_tokens": "max"}  # fmt: skip
    if not isinstance(mode, str) or mode not in mapping:
        raise ConfigError(path / "config.json", None, f"pooling {mode!r} is not supported (cls, mean, max)",
                          "pooling_mode")  # fmt: skip
    return mapping[mode], bool(pooling.get("include_prompt", True))


def _st_max_length(transformer: Path, st_config: dict) -> int | None:
    """The max length sentence-transformers uses for a ``Transformer`` folder.

    ``max_seq_length`` of ``sentence_bert_config.json`` when given (sentence-transformers < 6 writes
    it); otherwise the tokenizer's ``model_max_length`` capped at the model's
    ``max_position_embeddings`` (what sentence-transformers >= 6 does, and what it saves).
    """
    if st_config.get("max_seq_length"):
        return int(st_config["max_seq_length"])
    lengths = [
        (read_json(transformer / "tokenizer_config.json") or {}).get("model_max_length"),
        (read_json(transformer / "config.json") or {}).get("max_position_embeddings"),
    ]
    lengths = [int(n) for n in lengths if isinstance(n, (int, float)) and 0 < n < 1e9]
    return min(lengths) if lengths else None


def _st_route(folder: Path, entries: list[tuple[str, str]]) -> tuple[dict, Path]:
    """Recipe parts and Transformer folder of one chain of sentence-transformers modules.

    The recipe parts: ``pooling``, ``normalize``, ``include_prompt``, ``max_length``, the tokenizer's
    ``truncation_side`` and the per-task ``query_length`` / ``document_length`` of sentence-transformers
    >= 6 (when set).
    """
    recipe: dict[str, Any] = {"normalize": False}
    transformer = None
    for path, kind in entries:
        short = kind.rsplit(".", 1)[-1]
        if short == "Transformer":
            transformer = folder / path
        elif short == "Pooling":
            recipe["pooling"], recipe["include_prompt"] = _st_pooling_mode(folder / path)
        elif short == "Normalize":
            recipe["normalize"] = True
        else:
            raise ConfigError(folder / "modules.json", None, f"module type {kind!r} is not supported", "type")
    if transformer is None or "pooling" not in recipe:
        raise ConfigError(
            folder / "modules.json", None, "expected a Transformer and a Pooling module", "type"
        )
    st_config = read_json(transformer / "sentence_bert_config.json") or {}
    tokenizer_config = read_json(transformer / "tokenizer_config.json") or {}
    if tokenizer_config.get("truncation_side") in ("left", "right"):
        recipe["truncation_side"] = tokenizer_config["truncation_side"]
    if st_config.get("do_lower_case"):
        if not tokenizer_config.get("do_lower_case"):
            raise ConfigError(
                transformer / "sentence_bert_config.json", None,
                "lower-casing the input for a tokenizer that does not lower-case is not supported",
                "do_lower_case",
            )  # fmt: skip
    max_length = _st_max_length(transformer, st_config)
    if max_length:
        recipe["max_length"] = max_length
    for key in ("query_length", "document_length"):
        if st_config.get(key):
            recipe[key] = int(st_config[key])
    return recipe, transformer


def _st_prompt(st_config: dict, names: tuple[str, ...]) -> str:
    """The prompt ``encode_query`` / ``encode_document`` use: the first of ``names`` that the model has,
    else the default prompt (``default_prompt_name``), else none."""
    prompts = st_config.get("prompts") or {}
    for name in names:
        if name in prompts:
            return prompts[name] or ""
    default = st_config.get("default_prompt_name")
    return (prompts.get(default) or "") if default else ""


def sentence_transformers_recipe(path: str | os.PathLike) -> tuple[dict, dict[str, Path]]:
    """``(recipe, {"query": folder, "passage": folder})`` of a sentence-transformers model folder."""
    folder = Path(path)
    modules = read_json(folder / "modules.json")
    if not isinstance(modules, list):
        raise ConfigError(
            folder / "modules.json", None, "not a sentence-transformers folder (no modules.json list)"
        )
    entries = [(m.get("path", ""), m.get("type", "")) for m in sorted(modules, key=lambda m: m.get("idx", 0))]
    if len(entries) == 1 and entries[0][1].rsplit(".", 1)[-1] in ("Router", "Asym"):
        router = read_json(folder / entries[0][0] / "router_config.json") or {}
        base = folder / entries[0][0]
        structure, types = router.get("structure", {}), router.get("types", {})
        if "query" not in structure or "document" not in structure:
            raise ConfigError(
                base / "router_config.json", None, "expected 'query' and 'document' routes", "structure"
            )
        query, query_tower = _st_route(base, [(name, types[name]) for name in structure["query"]])
        passage, passage_tower = _st_route(base, [(name, types[name]) for name in structure["document"]])
        if (query["pooling"], query["normalize"]) != (passage["pooling"], passage["normalize"]):
            raise ConfigError(
                base / "router_config.json", None, "routes with different pooling are not supported"
            )
        recipe = {"pooling": query["pooling"], "normalize": query["normalize"], "tie_towers": False}
        towers = {"query": query_tower, "passage": passage_tower}
        routes = (query, passage)
    else:
        route, tower = _st_route(folder, entries)
        recipe = {"pooling": route["pooling"], "normalize": route["normalize"], "tie_towers": True}
        towers = {"query": tower, "passage": tower}
        routes = (route, route)
    # Per-task lengths of sentence-transformers >= 6 win over the module's max length.
    lengths = (routes[0].get("query_length"), routes[1].get("document_length"))
    lengths = tuple(task or route.get("max_length") for task, route in zip(lengths, routes))
    if lengths[0]:
        recipe["query_max_length"] = lengths[0]
    if lengths[1]:
        recipe["passage_max_length"] = lengths[1]
    for side, route in zip(SIDES, routes):
        if "truncation_side" in route:
            recipe[f"{side}_truncation_side"] = route["truncation_side"]
    st_config = read_json(folder / "config_sentence_transformers.json") or {}
    recipe["query_prefix"] = _st_prompt(st_config, ("query",))
    recipe["passage_prefix"] = _st_prompt(st_config, ("document", "passage", "corpus"))
    for route, prefix in zip(routes, (recipe["query_prefix"], recipe["passage_prefix"])):
        if prefix and not route["include_prompt"]:
            raise ConfigError(
                folder / "modules.json", None,
                "pooling that leaves the prompt out (include_prompt: false) is not supported", "include_prompt",
            )  # fmt: skip
    recipe["representation"] = "dense"
    return recipe, towers
