"""Retrieval metrics through ``ir-measures``, TREC run files, a JSON report and a printed table.

Public API:

- :data:`DEFAULT_MEASURES` (``MRR@10``, ``nDCG@10``, ``R@100``, ``R@1000``) and :func:`parse_measures`
  (our names or any ``ir-measures`` name, e.g. ``P@5``, ``AP``, ``nDCG@10``, ``RR(rel=2)@10``).
- :func:`evaluate_run`: metric means over **every** judged query (a query the run misses counts as
  0, as the MS MARCO MRR@10 convention asks; docs/methods.md#cot-mae-v2 metrics), computed per query by
  ``ir-measures``; returns ``{name: value}`` plus ``num_queries`` and ``queries_without_results``.
- :func:`write_trec_run` / :func:`read_trec_run`: ``qid Q0 docid rank score tag`` files.
- :func:`format_table`: a Markdown table of several systems' metrics.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import ir_measures

from ..data.retrieval import RetrievalData
from ..errors import CorpusFormatError
from ..io_utils import atomic_write_text

Run = dict[str, dict[str, float]]

#: Our metric names -> ir-measures names.
ALIASES = {"MRR@10": "RR@10", "MRR@100": "RR@100", "MRR": "RR"}
DEFAULT_MEASURES = ("MRR@10", "nDCG@10", "R@100", "R@1000")


def parse_measures(names: Iterable[str]) -> dict[str, object]:
    """``{our name: ir_measures measure}``; unknown names raise ``ValueError`` listing the cause."""

    out = {}
    for name in names:
        try:
            out[name] = ir_measures.parse_measure(ALIASES.get(name, name))
        except (ValueError, NameError, SyntaxError, TypeError) as err:
            raise ValueError(f"unknown measure {name!r}: {err}") from None
    return out


def judged_queries(qrels: Mapping[str, Mapping[str, int]], min_relevance: int = 1) -> list[str]:
    """Queries with at least one relevant document (the ones a metric can be defined for)."""
    return [q for q, docs in qrels.items() if any(r >= min_relevance for r in docs.values())]


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str] = DEFAULT_MEASURES,
    per_query: bool = False,
) -> dict:
    """Mean of each measure over every query with a relevant document in ``qrels``.

    Values come from ``ir_measures.iter_calc`` (pytrec_eval); queries absent from ``run`` or with an
    empty result list score 0. With ``per_query``, ``"per_query": {measure: {qid: value}}`` is added.
    """

    parsed = parse_measures(measures)
    queries = judged_queries(qrels)
    run = {str(q): {str(d): float(s) for d, s in run.get(q, {}).items()} for q in queries}
    qrels_used = {str(q): {str(d): int(r) for d, r in qrels[q].items()} for q in queries}
    queries = [str(q) for q in queries]
    values: dict[str, dict[str, float]] = {name: dict.fromkeys(queries, 0.0) for name in parsed}
    by_measure = {str(m): name for name, m in parsed.items()}
    nonempty = {q: docs for q, docs in run.items() if docs}
    if nonempty:
        for metric in ir_measures.iter_calc(list(parsed.values()), qrels_used, nonempty):
            values[by_measure[str(metric.measure)]][metric.query_id] = float(metric.value)
    count = len(queries)
    report: dict = {name: (sum(v.values()) / count if count else 0.0) for name, v in values.items()}
    report["num_queries"] = count
    report["queries_without_results"] = count - len(nonempty)
    if per_query:
        report["per_query"] = values
    return report


def write_trec_run(
    path: str | os.PathLike, run: Mapping[str, Mapping[str, float]], tag: str = "maeir"
) -> Path:
    """TREC run file (``qid Q0 docid rank score tag``, ranks from 1 by descending score), atomically."""
    lines = []
    for qid, docs in run.items():
        ranked = sorted(docs.items(), key=lambda item: (-item[1], item[0]))
        lines += [f"{qid} Q0 {doc} {rank} {score:.6f} {tag}" for rank, (doc, score) in enumerate(ranked, 1)]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return Path(path)


def read_trec_run(path: str | os.PathLike) -> Run:
    """Read a TREC run file written by :func:`write_trec_run` or any TREC tool."""
    run: Run = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6:
                raise CorpusFormatError(path, number, f"expected 6 columns, got {len(parts)}")
            try:
                score = float(parts[4])
            except ValueError:
                raise CorpusFormatError(path, number, f"not a number: {parts[4]!r}", field="score") from None
            run.setdefault(parts[0], {})[parts[2]] = score
    return run


def format_table(
    rows: Sequence[Mapping], measures: Sequence[str] = DEFAULT_MEASURES, name_key: str = "system"
) -> str:
    """Markdown table: one row per system, one column per measure (4 decimals)."""
    header = f"| {name_key} | " + " | ".join(measures) + " |"
    lines = [header, "|---|" + "---:|" * len(measures)]
    for row in rows:
        cells = [f"{row[m]:.4f}" if isinstance(row.get(m), (int, float)) else "-" for m in measures]
        lines.append(f"| {row.get(name_key, '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def limit_queries(data: RetrievalData, max_queries: int | None) -> RetrievalData:
    """``data`` with only its first ``max_queries`` judged queries (all with ``None``)."""
    if max_queries is None:
        return data
    keep = list(data.qrels)[:max_queries]
    return RetrievalData(
        data.corpus,
        {q: data.queries[q] for q in keep},
        {q: data.qrels[q] for q in keep},
        data.name,
        data.info,
    )
