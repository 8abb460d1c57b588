"""The teacher stage of a retrieval study (MD2PR): a cross-encoder ranker trained once into
``OUTPUT_DIR/teacher``, evaluated, and gated before anything is distilled from it.

Config fields (``teacher:``): ``args`` (:mod:`maeir.cli.train_reranker`'s fields; ``{teacher}`` is the
folder), ``mine`` (train on negatives mined by a retriever, e.g. the student itself, with
:mod:`maeir.cli.mine_negatives`, instead of ``args.negatives``), ``evaluate_on_student_top`` (K: the
teacher also re-ranks the student's own dense top K on the evaluation split: the comparison that says
whether it can teach the student anything) and ``require_beats`` (names among ``first_stage`` (BM25) and
``student``: the study stops with a :class:`~maeir.errors.ConfigError` when the teacher's re-ranking
MRR@10 does not exceed theirs; the verdict is kept in ``stages.teacher.precondition``).

A teacher folder already in place (trained by an interrupted run of the same study, or copied there
from a study with the same ``teacher.args``) is not trained again; its own evaluation, written by the
training driver into ``teacher/eval_<split>/metrics.json``, is read back and recorded with
``reused: true``.
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ...retrieval.evaluation import read_trec_run, write_trec_run
from .config import substitute
from .drivers import run_driver

if TYPE_CHECKING:
    from .runner import StudyRunner


def numeric_views(views: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The numeric metrics of each view of a re-ranking result (``first_stage``, ``rerank``)."""
    return {
        view: {k: v for k, v in values.items() if isinstance(v, (int, float))}
        for view, values in views.items()
    }


def build_teacher(runner: StudyRunner, task=None) -> None:
    """Train (or reuse) the teacher, evaluate it on the student's own top K, and apply the gate."""
    spec = runner.config.get("teacher")
    folder = runner.out / "teacher"
    if not spec:
        return
    stages = runner.study.setdefault("stages", {})
    if not (folder / "maeir_run.json").is_file():
        fields = substitute(dict(spec["args"]), runner.names())
        if getattr(task, "beir", None):
            fields.setdefault("beir", task.beir)
        start = time.time()
        stage: dict[str, Any] = {}
        if spec.get("mine"):
            mine = {"split": "train", **substitute(dict(spec["mine"]), runner.names())}
            mine.update(beir=fields.get("beir"), output=str(runner.out / "teacher_negatives.jsonl"))
            stage["mine"] = {**mine, **run_driver("mine_negatives", mine)}
            fields["train_file"] = mine["output"]
        fields.update(output_dir=str(folder), save_strategy="no")
        result = run_driver("train_reranker", fields)
        stage.update(wall_time_s=round(time.time() - start, 1), fields=fields)
        if result.get("eval"):
            stage["eval"] = numeric_views(result["eval"].get("views", {}))
        del result
        gc.collect()
        stages["teacher"] = stage
        runner._save()
    stage = stages.setdefault("teacher", {})
    if "fields" not in stage:  # a teacher folder this study did not train: its own record
        reuse_teacher_evaluation(folder, spec, stage)
        runner._save()
    depth = spec.get("evaluate_on_student_top")
    if depth and "student" not in stage.get("eval", {}):
        evaluate_teacher_on_student(runner, task, int(depth), stage)
    check_teacher(runner, spec, stage)


def reuse_teacher_evaluation(folder: Path, spec: dict[str, Any], stage: dict[str, Any]) -> None:
    """Record the evaluation a teacher folder already in place carries (its training driver's own
    ``eval_<split>/metrics.json``: BM25's top K re-ranked, and BM25 alone) and its run record."""
    split = (spec.get("args") or {}).get("eval_split") or "test"
    metrics_file = folder / f"eval_{split}" / "metrics.json"
    run_file = folder / "maeir_run.json"
    stage["reused"] = True
    if run_file.is_file():
        info = json.loads(run_file.read_text())
        stage.setdefault("fields", info.get("hyperparameters", {}))
        stage.setdefault("losses", info.get("losses", {}))
    if metrics_file.is_file():
        stage.setdefault("eval", {}).update(
            numeric_views(json.loads(metrics_file.read_text()).get("views", {}))
        )


def evaluate_teacher_on_student(runner: StudyRunner, task, depth: int, stage: dict[str, Any]) -> None:
    """Re-rank the student's own dense top ``depth`` with the teacher (``stages.teacher.eval``:
    ``student`` = the student alone over the whole corpus, the very run of the zero-shot probe;
    ``rerank_student_top`` = that run's top ``depth`` re-ranked; both scored by the task)."""
    model, tokenizer = task.load(runner.start_model())
    student_run = task.probe_run(model, tokenizer)
    del model
    work = runner.out / "teacher_eval_student"
    write_trec_run(work / "student.trec", student_run, tag="student")
    run_driver(
        "rerank",
        {"model": str(runner.out / "teacher"), "run": str(work / "student.trec"), "beir": task.beir,
         "split": task.split, "output_dir": str(work / "rerank"), "depth": depth, "show_progress": False},
    )  # fmt: skip
    reranked = read_trec_run(work / "rerank" / "run.trec")
    evals = stage.setdefault("eval", {})
    for view, run in (("student", student_run), ("rerank_student_top", reranked)):
        evals[view] = task.score_runs({view: run}, prefix=False)[0]
    evals["rerank_student_top"]["depth"] = depth
    runner._save()


def check_teacher(runner: StudyRunner, spec: dict[str, Any], stage: dict[str, Any]) -> None:
    """The precondition gate (``teacher.require_beats``); the verdict is recorded either way."""
    required = spec.get("require_beats") or []
    if not required:
        return
    evals = stage.get("eval", {})
    verdict: dict[str, Any] = {"metric": "MRR@10", "passed": True}
    for name in required:
        teacher = (evals.get("rerank_student_top") if name == "student" else evals.get("rerank")) or {}
        other = evals.get(name) or {}
        t, o = teacher.get("MRR@10"), other.get("MRR@10")
        ok = t is not None and o is not None and t > o
        verdict[name] = {"teacher": t, name: o, "beats": ok}
        verdict["passed"] = verdict["passed"] and ok
    stage["precondition"] = verdict
    runner._save()
    if not verdict["passed"]:
        runner.report()
        beaten = {k: v for k, v in verdict.items() if isinstance(v, dict)}
        raise ConfigError(
            runner.args.config, None,
            f"the teacher does not beat {required} ({beaten}); nothing is distilled from a teacher "
            "that ranks worse (the verdict is in study.json, stages.teacher.precondition)",
            "teacher.require_beats",
        )  # fmt: skip
