"""Study runner statistics, reports and plots: controlled experiments (arms x seeds).

``stats`` has the numbers (t intervals over seeds, paired bootstrap over units), ``report`` writes
``report.md`` and a compact summary from a ``study.json``-like dict, ``plots`` draws PNGs (matplotlib
is imported only when a plot is drawn).
"""

from .plots import plot_bars, plot_curves, plot_effective_rank
from .report import comparison_table, summary, verdict, write_report
from .stats import mean_ci, paired_bootstrap, paired_difference_by_units

__all__ = [
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
