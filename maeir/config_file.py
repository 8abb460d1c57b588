"""Dataclass arguments from a YAML/JSON config file plus command-line overrides.

``python script.py CONFIG.yaml --max_steps 10`` reads the file, checks every key against the
dataclasses (unknown keys and values of the wrong type raise :class:`ConfigError` naming the file
and line), then lets the command line override it. Values from the file go through the very same
``HfArgumentParser`` conversion as command-line values, so a config file and a command line mean
exactly the same thing.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import yaml
from transformers import HfArgumentParser

from .errors import ConfigError, set_config_sources

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def read_config_file(
    path: str | os.PathLike, nested: dict[str, int | None] | None = None
) -> dict[str, tuple[Any, int]]:
    """Read a flat YAML or JSON mapping as ``{key: (value, line)}`` (lines are 1-based).

    ``nested`` (if given) receives the lines of the keys of mapping values as ``{"key.sub": line}``.
    """
    path = os.fspath(path)
    try:
        text = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        raise ConfigError(path, None, "config file not found") from None
    except UnicodeDecodeError as err:
        line = text_line_of_offset(open(path, "rb").read(), err.start)
        raise ConfigError(path, line, "config file is not valid UTF-8") from None
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(path, err.lineno, f"invalid JSON: {err.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError(path, 1, "a config file must hold a mapping of field: value")
        if nested is not None:
            for key, value in data.items():
                for sub in value if isinstance(value, dict) else ():
                    nested[f"{key}.{sub}"] = _json_key_line(text, sub)
        return {key: (value, _json_key_line(text, key)) for key, value in data.items()}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, line, f"invalid YAML: {getattr(err, 'problem', err)}") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(path, root.start_mark.line + 1, "a config file must hold a mapping of field: value")
    out: dict[str, tuple[Any, int]] = {}
    for key_node, value_node in root.value:
        key = key_node.value
        line = key_node.start_mark.line + 1
        if key in out:
            raise ConfigError(path, line, "duplicate key", field=key)
        value = yaml.SafeLoader(yaml.serialize(value_node)).get_single_data()
        out[key] = (value, line)
        if nested is not None and isinstance(value_node, yaml.MappingNode):
            for sub_node, _ in value_node.value:
                nested[f"{key}.{sub_node.value}"] = sub_node.start_mark.line + 1
    return out


def text_line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _json_key_line(text: str, key: str) -> int | None:
    match = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def argv_tokens(key: str, value: Any) -> list[str]:
    """The command-line tokens of one field (``None`` gives none; booleans as true/false; mappings as JSON)."""
    if value is None:
        return []
    if isinstance(value, bool):
        return [f"--{key}", "true" if value else "false"]
    if isinstance(value, dict):
        return [f"--{key}", json.dumps(value)]
    if isinstance(value, (list, tuple)):
        return [f"--{key}", *[json.dumps(v) if isinstance(v, dict) else str(v) for v in value]]
    return [f"--{key}", str(value)]


def deep_merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in (mappings recursively; other values replaced)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def to_argv(fields: Mapping[str, Any]) -> list[str]:
    """Command-line arguments of a mapping of fields, in order (see :func:`argv_tokens`)."""
    return [token for key, value in fields.items() for token in argv_tokens(key, value)]


def _check_value(parser: HfArgumentParser, path: str, key: str, value: Any, line: int) -> None:
    action = parser._option_string_actions.get(f"--{key}")
    if action is None or value is None:
        return
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        raw = (
            json.dumps(item)
            if isinstance(item, dict)
            else ("true" if item is True else "false" if item is False else str(item))
        )
        try:
            converted = action.type(raw) if action.type is not None else raw
        except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
            raise ConfigError(path, line, f"invalid value {item!r} ({err})", field=key) from None
        if action.choices is not None and converted not in action.choices and raw not in action.choices:
            raise ConfigError(
                path,
                line,
                f"invalid value {item!r}: choose from {sorted(map(str, action.choices))}",
                field=key,
            )


def with_cpu_autocast(args: list[str], known: set[str]) -> list[str]:
    """``--bf16 true`` on a machine without CUDA: add ``--use_cpu true``, so that the ``Trainer`` trains
    under CPU bf16 autocast (AMX where the processor has it) instead of refusing bf16."""
    if "bf16" not in known or "use_cpu" not in known or torch.cuda.is_available():
        return args
    bf16 = False
    for index, arg in enumerate(args):
        name, _, inline = arg.partition("=")
        if name == "--use_cpu":
            return args
        if name == "--bf16":
            value = inline or (
                args[index + 1] if index + 1 < len(args) and not args[index + 1].startswith("--") else "true"
            )
            bf16 = value.lower() in ("true", "1", "yes")
    return [*args, "--use_cpu", "true"] if bf16 else args


def parse_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple:
    """Parse ``[CONFIG.yaml|CONFIG.json] [--field value ...]`` into the given dataclasses.

    The command line overrides the file. Raises :class:`ConfigError` for unknown keys and bad values
    in the file (with file and line) and for values out of range (:data:`VALUE_RANGES`; with the file
    and line, or the command-line argument), and exits with argparse's message for a bad command line.
    Records where each field came from, so that later errors about a field name the file and line
    (:func:`maeir.errors.config_source`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(tuple(dataclass_types))
    file_argv: list[str] = []
    sources: dict[str, tuple[str, int | None]] = {}
    if argv and argv[0].endswith(CONFIG_SUFFIXES) and not argv[0].startswith("-"):
        path = argv.pop(0)
        known = {action.dest for action in parser._actions}
        nested: dict[str, int | None] = {}
        for key, (value, line) in read_config_file(path, nested).items():
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(path, line, f"unknown field{hint}", field=key)
            _check_value(parser, path, key, value, line)
            file_argv += argv_tokens(key, value)
            sources[key] = (path, line)
        sources.update({key: (path, line) for key, line in nested.items()})
    on_command_line = {arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--")}
    set_config_sources(
        {key: where for key, where in sources.items() if key.split(".", 1)[0] not in on_command_line}
    )
    combined = with_cpu_autocast(file_argv + argv, {action.dest for action in parser._actions})
    try:
        parsed = parser.parse_args_into_dataclasses(args=combined, look_for_args_file=False)
    except ValueError as err:  # a dataclass's own __post_init__ check (TrainingArguments, ...)
        dests = sorted({action.dest for action in parser._actions}, key=len, reverse=True)
        named = [d for d in dests if re.search(rf"\b{re.escape(d)}\b", str(err))]
        raise ConfigError(None, None, str(err), field=named[0] if named else None) from None
    for instance in parsed:
        check_value_ranges(instance)
    return parsed


#: ``field: (lowest, lowest allowed?, highest, highest allowed?)`` checked on every parsed dataclass
#: that has the field (None: unbounded on that side; a None value is not checked).
VALUE_RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "learning_rate": (0, False, None, False),
    "weight_decay": (0, True, None, False),
    "warmup_ratio": (0, True, 1, True),
    "warmup_steps": (0, True, None, False),
    "max_grad_norm": (0, True, None, False),
    "num_train_epochs": (0, False, None, False),
    "per_device_train_batch_size": (1, True, None, False),
    "per_device_eval_batch_size": (1, True, None, False),
    "gradient_accumulation_steps": (1, True, None, False),
    "save_total_limit": (1, True, None, False),
    "max_seq_length": (2, True, None, False),
    "max_train_samples": (1, True, None, False),
    "max_eval_groups": (1, True, None, False),
    "max_groups": (1, True, None, False),
    "group_size": (1, True, None, False),
    "eval_group_size": (1, True, None, False),
    "num_negatives": (0, True, None, False),
    "batch_size": (1, True, None, False),
    "eval_batch_size": (1, True, None, False),
    "context_max_length": (2, True, None, False),
    "response_max_length": (2, True, None, False),
    "query_max_length": (2, True, None, False),
    "passage_max_length": (2, True, None, False),
    "temperature": (0, False, None, False),
    "seed": (0, True, 2**32 - 1, True),
    "dataloader_num_workers": (0, True, None, False),
}


def check_value_ranges(instance: Any) -> None:
    """Raise :class:`ConfigError` for a field of ``instance`` outside :data:`VALUE_RANGES`."""
    max_steps = getattr(instance, "max_steps", None)
    if isinstance(max_steps, int) and max_steps < -1:
        raise ConfigError(
            None, None, f"must be > 0 (or -1: train num_train_epochs), got {max_steps}", "max_steps"
        )
    for name, (low, low_ok, high, high_ok) in VALUE_RANGES.items():
        value = getattr(instance, name, None)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value != value:  # NaN
            raise ConfigError(None, None, "must be a number, got nan", field=name)
        if low is not None and (value < low or (value == low and not low_ok)):
            raise ConfigError(None, None, f"must be {'>=' if low_ok else '>'} {low}, got {value}", field=name)
        if high is not None and (value > high or (value == high and not high_ok)):
            raise ConfigError(
                None, None, f"must be {'<=' if high_ok else '<'} {high}, got {value}", field=name
            )


def parse_key_values(text: str | dict | None, *, source: str = "--method_config") -> dict[str, Any]:
    """Parse ``'{"a": 1}'`` (JSON) or ``'a=1,b=0.5,c=true'`` into a dict with YAML scalar typing."""
    if text is None or text == "":
        return {}
    if isinstance(text, dict):
        return dict(text)
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(None, None, f"invalid JSON: {err.msg}", field=source.lstrip("-")) from None
        return value
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise ConfigError(None, None, f"expected key=value, got {item!r}", field=source.lstrip("-"))
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw)
    return out
