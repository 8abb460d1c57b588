"""Study configs: loading and checking a study config (``configs/study/*.yaml``), the ``smoke:`` merge,
the protocol hash a resumed study is checked against, and driver command lines from mappings.

Config (YAML), top-level fields (see ``configs/study/*.yaml``)::

    name, description, task (response_selection | text_encoder | retrieval), seeds, control,
    reference_arms, headline_metric, headline_stage,
    tokenizer:      {vocab_size, corpora: [chitchat_train | wikipedia | PATH.jsonl ...]}   (optional)
    base:           {args: {pretrain driver fields}, corpora: [...]}   a backbone built once, shared (optional)
    teacher:        {args: {train_reranker driver fields}}   a cross-encoder trained once, shared (optional;
                    the MD2PR teacher: ``{teacher}`` in the fine-tuning fields)
    post_training:  {args: {pretrain driver fields common to every arm}, probe_every: N,
                     corpora: [...] (optional: the training text, written to one JSON-lines file)}
    arms:           {name: null (no post-training) | {pretrain driver fields of this arm}}; an arm's
                    ``finetune: {...}`` key is merged into its fine-tuning fields (retrieval task), and an
                    arm holding nothing else is not post-trained (e.g. the MD2PR distillation arms)
    finetune:       {args: {fine-tuning driver fields}}
    evaluation:     {task-specific: test files, number of groups, probe settings}
    smoke:          {the same keys: values merged in by --smoke, for a tiny run in the tests}

Strings may refer to ``{output_dir}``, ``{base}`` (the shared backbone's run folder),
``{tokenizer}`` (the trained tokenizer's folder) and ``{teacher}`` (the shared ranker's folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from ...config_file import deep_merge
from ...errors import ConfigError
from .tasks import TASKS

STUDY_FILE = "study.json"
TOP_LEVEL_FIELDS = {
    "name", "description", "task", "seeds", "control", "reference_arms", "headline_metric",
    "headline_stage", "metrics", "tokenizer", "base", "teacher", "post_training", "arms", "finetune",
    "evaluation", "smoke",
}  # fmt: skip


def load_study_config(path: str | os.PathLike, smoke: bool = False) -> dict[str, Any]:
    """The study config as a dict (``smoke:`` merged in when asked); unknown keys are refused with their line."""
    path = os.fspath(path)
    try:
        text = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        raise ConfigError(path, None, "study config not found") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(path, mark.line + 1 if mark else None, f"invalid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(path, 1, "a study config must be a mapping")
    lines = {node.value: node.start_mark.line + 1 for node, _ in root.value}
    for key in config:
        if key not in TOP_LEVEL_FIELDS:
            raise ConfigError(
                path, lines.get(key), f"unknown study field; known: {sorted(TOP_LEVEL_FIELDS)}", key
            )
    for key in ("name", "task", "seeds", "control", "arms", "headline_metric"):
        if key not in config:
            raise ConfigError(path, None, "required study field is missing", key)

    if config["task"] not in TASKS:
        raise ConfigError(path, lines.get("task"), f"unknown task; choose from {sorted(TASKS)}", "task")
    arms = config["arms"]
    if not isinstance(arms, dict) or not arms:
        raise ConfigError(
            path, lines.get("arms"), "a mapping of arm name: fields (null: no post-training)", "arms"
        )
    if config["control"] not in arms:
        raise ConfigError(
            path, lines.get("control"), f"the control must be one of the arms {list(arms)}", "control"
        )
    seeds = config["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(path, lines.get("seeds"), "a non-empty list of integer seeds", "seeds")
    if smoke:
        config = deep_merge({k: v for k, v in config.items() if k != "smoke"}, config.get("smoke") or {})
    config.pop("smoke", None)
    return config


def protocol_hash(config: dict) -> str:
    """A short hash of the protocol (the config as run, keys sorted)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def substitute(value: Any, names: dict[str, str]) -> Any:
    """``value`` with ``{output_dir}``/``{base}``/``{tokenizer}`` filled in (recursively)."""
    if isinstance(value, str):
        for key, replacement in names.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    return value


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": sys.version.split()[0],
    }
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0]
        info["amx_bf16"] = "amx_bf16" in flags
    except (OSError, IndexError):
        pass
    return info


def file_safe(name: str) -> str:
    """A metric or stage name as a file-name part (``R@1`` → ``R_at_1``)."""
    return name.replace("@", "_at_").replace(":", "_").replace("/", "_")
