"""Controlled studies: arms x seeds, post-train → probe → fine-tune → evaluate, one command.

``python scripts/study.py configs/study/dial_mae_cpu.yaml --output_dir D [--smoke]`` runs every arm
of the study config with every seed, through the same drivers a user runs (``maeir.cli.pretrain``,
``maeir.cli.response_selection``, ``maeir.cli.classification``), in-process. Every arm gets
the same data, post-training steps, batch, learning rate, fine-tuning and evaluation: only the arm's
own fields differ. Results go to

- ``D/study.json``: the protocol (the config as run, its hash), every run's metrics, per-unit scores
  (for the paired bootstrap), curves, seed and wall time, the machine;
- ``D/report.md``: per arm mean and 95% interval over seeds, paired differences to the control
  (:mod:`maeir.cli.study.report`);
- ``D/*.png``: metric vs post-training steps for every arm, per-arm bars (and, for MAE-LM, the
  effective rank per layer).

A study is resumable: a run whose result is in ``study.json`` is skipped, so a killed study goes on
where it stopped. Changing the protocol of an existing study is refused unless
``--protocol_change "why"`` is given; the reason is recorded in the report with the earlier runs kept.

The config format is described in :mod:`maeir.cli.study.config`; the runner is
:class:`maeir.cli.study.runner.StudyRunner`, the tasks are in :mod:`maeir.cli.study.tasks`, the drivers
they run in :mod:`maeir.cli.study.drivers`. The study lives with the commands because it runs them;
``stats`` (t intervals over seeds, paired bootstrap over units), ``report`` (``report.md`` and a compact
summary of a ``study.json``-like dict) and ``plots`` (matplotlib imported only when a plot is drawn)
are its analysis half, exported here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import HfArgumentParser

from .. import setup_logging
from .plots import plot_bars, plot_curves, plot_effective_rank
from .report import comparison_table, summary, verdict, write_report
from .runner import StudyRunner
from .stats import mean_ci, paired_bootstrap, paired_difference_by_units


@dataclass
class StudyArguments:
    """``scripts/study.py`` options."""

    config: str = field(metadata={"help": "Study config (YAML/JSON): arms, seeds, stages (configs/study/)."})
    output_dir: str = field(metadata={"help": "Study folder: study.json, report.md, plots, run folders."})
    smoke: bool = field(
        default=False, metadata={"help": "Merge the config's `smoke:` values in: a tiny run (tests)."}
    )
    seeds: str | None = field(
        default=None, metadata={"help": "Run only these of the protocol's seeds now, e.g. '1,2' (resumable)."}
    )
    arms: str | None = field(default=None, metadata={"help": "Run only these arms (comma-separated)."})
    protocol_change: str | None = field(
        default=None,
        metadata={"help": "Accept a changed protocol for an existing study; the reason goes in the report."},
    )
    redo_stages: str | None = field(
        default=None,
        metadata={
            "help": "With --protocol_change: stages (comma-separated, e.g. 'finetune') whose recorded runs are "
            "moved to `superseded_runs` (kept in study.json and the report) and run again under the new protocol."
        },
    )
    keep_models: bool = field(
        default=False, metadata={"help": "Keep every run's model folders (default: delete after scoring)."}
    )
    tokenizer: str | None = field(
        default=None,
        metadata={"help": "Use this trained tokenizer folder (e.g. a committed study's studies/NAME/tokenizer) "
                  "instead of training one: the tokenizers library's WordPiece trainer is not deterministic "
                  "(huggingface/tokenizers#1794), so an exact reproduction reuses the study's own."},
    )  # fmt: skip
    report_only: bool = field(default=False, metadata={"help": "Only rewrite report.md and the plots."})


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) a study; returns the study dict (also in ``OUTPUT_DIR/study.json``)."""

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):  # the study config as the first, positional argument
        argv = ["--config", *argv]
    (args,) = HfArgumentParser(StudyArguments).parse_args_into_dataclasses(argv)
    setup_logging()
    return StudyRunner(args).run()


__all__ = [
    "StudyArguments",
    "main",
    "comparison_table",
    "mean_ci",
    "paired_bootstrap",
    "paired_difference_by_units",
    "plot_bars",
    "plot_curves",
    "plot_effective_rank",
    "summary",
    "verdict",
    "write_report",
]
