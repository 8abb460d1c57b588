"""Command-line drivers: each module has a ``main(argv)`` that the scripts in ``scripts/`` call.

:func:`parse_training_command` is the common start of every training driver.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import transformers

from ..config_file import parse_args
from ..distributed import check_world_size, with_cpu_backend


def setup_logging() -> None:
    """INFO logs from maeir with timestamps; transformers' own at WARNING."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()


def parse_training_command(
    dataclass_types: Sequence[type], argv: Sequence[str] | None = None
) -> tuple[Any, ...]:
    """Parse a training driver's command line (config file + overrides) into ``dataclass_types``.

    The last type must be a ``TrainingArguments``. Several processes launched on a machine without
    CUDA are joined into one job (:func:`maeir.distributed.with_cpu_backend`), and a world size other
    than the launched one is refused; logging is set up.
    """
    argv = with_cpu_backend(sys.argv[1:] if argv is None else argv)
    parsed = parse_args(tuple(dataclass_types), argv)
    check_world_size(parsed[-1])
    setup_logging()
    return parsed
