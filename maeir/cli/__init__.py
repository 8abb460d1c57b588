"""The command-line interface: each module has a ``main(argv)``, runs as ``python -m maeir.cli.<name>``
and as a console script (:mod:`maeir.cli.commands`); the files in ``scripts/`` are one-line wrappers.

:func:`parse_training_command` is the common start of every training driver (validation, the
run-folder lock, the output-folder check), :func:`training_driver` releases the lock when the driver
returns, and :func:`run_cli` is what a script runs: bad input, a full disk and Ctrl-C end with one
clear line instead of a traceback.
"""

from __future__ import annotations

import errno
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import transformers

from ..config_file import parse_args
from ..distributed import check_world_size, with_cpu_backend
from ..errors import InputError
from ..run_folder import (
    last_complete_checkpoint,
    last_run_folder,
    lock_run_folder,
    prepare_output_dir,
    release_run_folders,
)


def setup_logging() -> None:
    """INFO logs from maeir with timestamps; transformers' own at WARNING."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()


@dataclass
class RunFolderArguments:
    """What may happen to an output folder that holds an earlier run."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train into an output folder that holds a finished run (or another run's checkpoints): "
            "its checkpoints are deleted first. Without it such a folder is refused (resuming is allowed)."
        },
    )


def parse_training_command(
    dataclass_types: Sequence[type], argv: Sequence[str] | None = None
) -> tuple[Any, ...]:
    """Parse a training driver's command line (config file + overrides) into ``dataclass_types``.

    The last type must be a ``TrainingArguments``. Values are checked before anything is loaded
    (:func:`maeir.config_file.parse_args`). Several processes launched on a machine without CUDA are
    joined into one job (:func:`maeir.distributed.with_cpu_backend`), and a world size other than the
    launched one is refused; logging is set up. The main process then takes the output folder's lock
    (a second run into it stops here) and refuses a folder holding another run unless this one
    resumes or ``--overwrite_output_dir true`` is given (:func:`maeir.run_folder.prepare_output_dir`).
    """
    argv = with_cpu_backend(sys.argv[1:] if argv is None else argv)
    *parsed, run_args = parse_args((*dataclass_types, RunFolderArguments), argv)
    training_args = parsed[-1]
    check_world_size(training_args)
    setup_logging()
    if training_args.should_save:
        lock = lock_run_folder(training_args.output_dir)
        try:
            prepare_output_dir(training_args, overwrite=run_args.overwrite_output_dir)
        except BaseException:
            release_run_folders()
            raise
        del lock
    return tuple(parsed)


def training_driver(main: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a training driver's ``main``: its run-folder locks are released when it returns or raises."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        finally:
            release_run_folders()

    return wrapper


def interrupted_message() -> str:
    """The one line printed on Ctrl-C: the last complete checkpoint of the run, if any."""
    folder = last_run_folder()
    if folder is None:
        return "interrupted"
    checkpoint = last_complete_checkpoint(folder)
    if checkpoint is None:
        return f"interrupted: {folder} holds no complete checkpoint yet"
    return f"interrupted: the last complete checkpoint is {checkpoint} (continue with --resume_from_checkpoint last)"


def run_cli(main: Callable[..., Any], argv: Sequence[str] | None = None) -> int:
    """Run a driver's ``main`` as a command: 0 on success; on bad input (2), a full or read-only disk (1)
    and Ctrl-C (130) one line on stderr instead of a traceback."""
    try:
        main(argv) if argv is not None else main()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted_message(), file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
            raise
        print(f"error: {err.filename or ''}: {err.strerror}", file=sys.stderr)
        return 1
    return 0


def run_command(main: Callable[..., Any], argv: Sequence[str] | None = None) -> None:
    """Run ``main`` as a command through :func:`run_cli`; exit with its status unless it is 0."""
    if status := run_cli(main, argv):
        sys.exit(status)


def dispatch(argv: Sequence[str] | None, **commands: Callable[..., Any]) -> Any:
    """Run the command named by the first argument (``NAME ARGS...``) on the remaining arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in commands:
        raise InputError(None, None, f"usage: {{{','.join(commands)}}} ARGS...")
    return commands[argv[0]](argv[1:])
