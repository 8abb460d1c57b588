"""The study runner: every arm of a study config with every seed, post-train → probe → fine-tune →
evaluate, in-process, through the same drivers a user runs (:mod:`maeir.cli.study.drivers`).

Results go to ``OUTPUT_DIR/study.json`` (the protocol: the config as run and its hash; every run's
metrics, per-unit scores, curves, seed and wall time; the machine), ``report.md`` and the plots
(:mod:`maeir.cli.study.report`, :mod:`maeir.cli.study.plots`). A study is resumable: a run whose result is in
``study.json`` is skipped. Changing the protocol of an existing study is refused unless a
``protocol_change`` reason is given; the reason is recorded with the earlier runs kept.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, TrainerCallback

from ...config_file import deep_merge
from ...data.tokenizer import train_wordpiece_tokenizer, vocabulary_digest
from ...errors import ConfigError
from ...io_utils import atomic_directory, atomic_write_json
from .common import corpus_texts, encoder_folder, write_corpus
from .config import (
    STUDY_FILE,
    file_safe,
    load_study_config,
    machine_info,
    protocol_hash,
    substitute,
)
from .drivers import run_driver
from .plots import plot_bars, plot_curves, plot_effective_rank
from .report import write_report
from .tasks import TASKS
from .teacher import build_teacher

logger = logging.getLogger(__name__)


class ProbeCallback(TrainerCallback):
    """Scores the task's zero-shot probe every ``every`` post-training steps (the curve of the report)."""

    def __init__(self, probe, every: int, curve: list[dict]) -> None:
        self.probe, self.every, self.curve = probe, every, curve

    def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: D102 - TrainerCallback
        if self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            metrics = self.probe(model)[0]
            self.curve.append({"step": state.global_step, **metrics})
            logger.info("probe at step %d: %s", state.global_step, metrics)


def run_pretraining(fields: dict[str, Any], callbacks: list | None = None) -> dict[str, Any]:
    """Run the pre-training driver with ``fields``; returns its run info (``maeir_run.json``)."""
    trainer = run_driver("pretrain", fields, callbacks=callbacks)
    info = json.loads((Path(fields["output_dir"]) / "maeir_run.json").read_text())
    del trainer
    gc.collect()
    return info


class StudyRunner:
    """Runs a study config into ``args.output_dir`` (see the module docstring).

    ``args`` has the fields of the study command's arguments (:class:`maeir.cli.study.StudyArguments`):
    ``config``, ``output_dir``, ``smoke``, ``seeds``, ``arms``, ``protocol_change``, ``redo_stages``,
    ``keep_models``, ``report_only``.
    """

    def __init__(self, args: Any) -> None:
        self.args = args
        self.config = load_study_config(args.config, smoke=args.smoke)
        # --seeds / --arms choose what this invocation runs; the protocol (and its hash) stays the config's
        self.run_seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else self.config["seeds"]
        unknown = sorted(set(self.run_seeds) - set(self.config["seeds"]))
        if unknown:
            raise ConfigError(
                None, None, f"seeds {unknown} are not in the protocol's {self.config['seeds']}", "seeds"
            )
        self.out = Path(args.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.study = self._load_or_start()

    # -- study.json ------------------------------------------------------------------------------
    def _load_or_start(self) -> dict[str, Any]:
        path = self.out / STUDY_FILE
        digest = protocol_hash(self.config)
        if path.is_file():
            study = json.loads(path.read_text())
            if study.get("protocol_hash") != digest and not self.args.report_only:
                if not self.args.protocol_change:
                    raise ConfigError(
                        self.args.config, None,
                        f"the protocol differs from the one {path} was run with; use a new --output_dir, or "
                        "--protocol_change 'why' to go on (the reason and the earlier runs stay in the report)",
                    )  # fmt: skip
                study.setdefault("protocol_changes", []).append(
                    f"{time.strftime('%Y-%m-%d')}: {self.args.protocol_change} (protocol {study.get('protocol_hash')} "
                    f"-> {digest})"
                )
                study["protocol"], study["protocol_hash"] = self.config, digest
                redo = set(self.args.redo_stages.split(",")) if self.args.redo_stages else set()
                if redo:
                    moved = [r for r in study["runs"] if r["stage"] in redo]
                    for run in moved:
                        run["superseded_by"] = digest
                    study.setdefault("superseded_runs", []).extend(moved)
                    study["runs"] = [r for r in study["runs"] if r["stage"] not in redo]
            elif self.args.redo_stages:
                raise ConfigError(
                    None, None, "--redo_stages needs a changed protocol and --protocol_change", "redo_stages"
                )
            return study
        c = self.config
        return {
            "name": c["name"],
            "description": c.get("description", ""),
            "command": self._command(),
            "protocol": c,
            "protocol_hash": digest,
            "control": c["control"],
            "reference_arms": c.get("reference_arms", ["none"] if "none" in c["arms"] else []),
            "metrics": c.get("metrics"),
            "headline_metric": c["headline_metric"],
            "headline_stage": c.get("headline_stage"),
            "arms": list(c["arms"]),
            "seeds": c["seeds"],
            "runs": [],
            "machine": machine_info(),
            "wall_time_s": 0.0,
        }

    def _command(self) -> str:
        parts = ["python scripts/study.py", self.args.config, "--output_dir", self.args.output_dir]
        if self.args.smoke:
            parts.append("--smoke")
        return " ".join(parts)

    def _save(self) -> None:
        if int(os.environ.get("RANK", "0")) == 0:
            atomic_write_json(self.out / STUDY_FILE, self.study)

    def _done(self, arm: str, seed: int, stage: str) -> bool:
        return any(r["arm"] == arm and r["seed"] == seed and r["stage"] == stage for r in self.study["runs"])

    def _record(self, run: dict[str, Any]) -> None:
        self.study["runs"].append(run)
        self.study["wall_time_s"] = round(self.study.get("wall_time_s", 0.0) + run.get("wall_time_s", 0.0), 1)
        self._save()

    # -- stages ----------------------------------------------------------------------------------
    def names(self) -> dict[str, str]:
        return {
            "output_dir": str(self.out),
            "base": str(self.out / "base"),
            "tokenizer": str(self.out / "tokenizer"),
            "teacher": str(self.out / "teacher"),
        }

    def build_tokenizer(self) -> None:
        """Train the study's WordPiece tokenizer, or copy the one given with ``--tokenizer``.

        Its vocabulary's SHA-256 goes into ``study.json``: the tokenizers library's trainer breaks merge
        ties by hash-map order (huggingface/tokenizers#1794), so two trainings on the same text can differ;
        an exact reproduction passes the study's own folder with ``--tokenizer``.
        """
        spec = self.config.get("tokenizer")
        folder = self.out / "tokenizer"
        given = getattr(self.args, "tokenizer", None)
        if given and not spec:
            raise ConfigError(
                self.args.config, None, "this study trains no tokenizer: drop --tokenizer", "tokenizer"
            )
        if not spec:
            return
        if (folder / "tokenizer_config.json").is_file():
            if given and vocabulary_digest(folder) != vocabulary_digest(given):
                raise ConfigError(
                    None, None, f"{folder} already holds another vocabulary than {given}", "tokenizer"
                )
            return
        start = time.time()
        if given:
            if not (Path(given) / "tokenizer.json").is_file():
                raise ConfigError(None, None, f"{given} has no tokenizer.json", "tokenizer")
            with atomic_directory(folder) as staging:
                for name in ("tokenizer.json", "tokenizer_config.json"):
                    shutil.copy2(Path(given) / name, Path(staging) / name)
        else:
            train_wordpiece_tokenizer(
                corpus_texts(spec.get("corpora", ["wikipedia"])), int(spec["vocab_size"]), folder
            )
        self.study.setdefault("stages", {})["tokenizer"] = {
            "wall_time_s": round(time.time() - start, 1),
            **spec,
            "vocab_sha256": vocabulary_digest(folder),
            **({"copied_from": str(given)} if given else {}),
        }
        self._save()

    def build_base(self) -> None:
        spec = self.config.get("base")
        folder = self.out / "base"
        if not spec or (folder / "maeir_run.json").is_file():
            return
        fields = substitute(dict(spec["args"]), self.names())
        if spec.get("corpora"):
            fields["train_file"] = str(write_corpus(spec["corpora"], self.out / "base_corpus.jsonl"))
        fields["output_dir"] = str(folder)
        start = time.time()
        info = run_pretraining(fields)
        self.study.setdefault("stages", {})["base"] = {
            "wall_time_s": round(time.time() - start, 1), "losses": info.get("losses"), "fields": fields,
        }  # fmt: skip
        self._save()

    def build_teacher(self, task=None) -> None:
        """The shared cross-encoder teacher of a retrieval study (:func:`maeir.cli.study.teacher.build_teacher`)."""
        build_teacher(self, task)

    def start_model(self) -> str:
        """What every arm starts from: the shared base run, or ``post_training.args.model_name_or_path``
        (without post-training at all: ``finetune.args.student`` / ``model_name_or_path``)."""
        if self.config.get("base"):
            return str(self.out / "base")
        if "post_training" not in self.config:
            args = (self.config.get("finetune") or {}).get("args") or {}
            return args.get("student") or args.get("model_name_or_path") or "minilm"
        return self.config["post_training"]["args"]["model_name_or_path"]

    def run_arm(self, task, arm: str, arm_fields: dict | None, seed: int) -> None:
        """Post-train (unless the arm is ``null``), probe, then each fine-tuning stage, recording each.

        An arm's ``finetune`` key goes to the task's fine-tuning (merged into its fields); an arm with
        nothing else is not post-trained."""
        finetune_overrides = None
        if isinstance(arm_fields, dict) and "finetune" in arm_fields:
            arm_fields = dict(arm_fields)
            finetune_overrides = arm_fields.pop("finetune") or {}
            arm_fields = arm_fields or None
        run_dir = self.out / "runs" / arm / f"seed{seed}"
        start_model = self.start_model()
        post_dir = run_dir / "post"
        model_path = start_model if arm_fields is None else str(post_dir)
        pending = [stage for stage in task.finetune_stages() if not self._done(arm, seed, stage)]
        if arm_fields is not None and pending and not (post_dir / "maeir_run.json").is_file():
            # the post-trained model of a finished probe is gone (a kill after clean-up, or a copied
            # study.json): post-train it again (same seed, same result) and record the probe anew
            self.study["runs"] = [
                r
                for r in self.study["runs"]
                if not (r["arm"] == arm and r["seed"] == seed and r["stage"] == "probe")
            ]
        if not self._done(arm, seed, "probe") and arm_fields is None:
            shared = self._start_probe()
            if shared is not None:  # deterministic: the same start model, already probed by another arm/seed
                self._record({
                    **shared, "arm": arm, "seed": seed, "wall_time_s": 0.0,
                    "shared_from": f"{shared['arm']}/seed{shared['seed']}",
                })  # fmt: skip
        if not self._done(arm, seed, "probe"):
            start = time.time()
            steps, curve = 0, []
            if arm_fields is not None:
                post = self.config["post_training"]
                fields = substitute(deep_merge(post.get("args", {}), arm_fields), self.names())
                if post.get("corpora"):
                    fields["train_file"] = str(write_corpus(post["corpora"], self.out / "post_corpus.jsonl"))
                fields.update(output_dir=str(post_dir), seed=seed)
                if self.config.get("base"):
                    fields.update(
                        model_name_or_path=encoder_folder(start_model),
                        tokenizer_name=encoder_folder(start_model),
                    )
                fields.setdefault("save_strategy", "no")
                steps = int(fields["max_steps"])
                callbacks = []
                probe_every = int(self.config["post_training"].get("probe_every", 0))
                if probe_every:
                    if not fields.get("from_scratch"):
                        model, tokenizer = task.load(start_model)
                        curve.append({"step": 0, **task.probe(model, tokenizer)[0]})
                        del model

                    tokenizer = AutoTokenizer.from_pretrained(
                        fields.get("tokenizer_name") or encoder_folder(fields["model_name_or_path"]),
                        local_files_only=True,
                    )
                    callbacks.append(ProbeCallback(lambda m: task.probe(m, tokenizer), probe_every, curve))
                run_pretraining(fields, callbacks=callbacks)
            model, tokenizer = task.load(model_path)
            metrics, per_unit, extra = task.probe(model, tokenizer)
            del model
            gc.collect()
            if steps:
                curve.append({"step": steps, **metrics})
            self._record({
                "arm": arm, "seed": seed, "stage": "probe", "metrics": metrics, "per_unit": per_unit,
                "post_train_steps": steps, "curve": curve, "wall_time_s": round(time.time() - start, 1), **extra,
            })  # fmt: skip
        for stage in task.finetune_stages():
            if self._done(arm, seed, stage):
                continue
            start = time.time()
            ft_dir = run_dir / stage.replace(":", "_")
            extra = {"finetune": finetune_overrides} if finetune_overrides is not None else {}
            metrics, per_unit = task.finetune_and_evaluate(model_path, ft_dir, seed, stage, **extra)
            gc.collect()
            self._record({
                "arm": arm, "seed": seed, "stage": stage, "metrics": metrics, "per_unit": per_unit,
                "wall_time_s": round(time.time() - start, 1),
            })  # fmt: skip
            if not self.args.keep_models:
                shutil.rmtree(ft_dir, ignore_errors=True)
        finished = all(self._done(arm, seed, stage) for stage in ["probe", *task.finetune_stages()])
        if finished and not self.args.keep_models and post_dir.is_dir():
            shutil.rmtree(post_dir, ignore_errors=True)

    def _start_probe(self) -> dict[str, Any] | None:
        """A recorded probe of the start model itself (an arm without post-training), if any."""
        for run in self.study["runs"]:
            if run["stage"] == "probe" and not run.get("post_train_steps") and "shared_from" not in run:
                return run
        return None

    def report(self) -> None:
        """Rewrite report.md and the plots from ``study.json`` (main process only)."""
        if int(os.environ.get("RANK", "0")) != 0:
            return
        if not self.study.get("runs"):
            if self.study.get("stages"):  # stopped before any arm (e.g. the teacher precondition): say so
                write_report(self.study, self.out)
            return
        runs = self.study["runs"]
        stages = list(dict.fromkeys(r["stage"] for r in runs))
        try:
            if any(len(r.get("curve", [])) > 1 for r in runs):
                curve_metrics = list(dict.fromkeys(k for r in runs for p in r.get("curve", []) for k in p))
                for metric in curve_metrics:
                    if metric != "step":
                        plot_curves(self.study, self.out / f"curve_{file_safe(metric)}.png", metric, "probe")
            for stage in stages:
                for metric in self.study.get("metrics") or [self.study["headline_metric"]]:
                    if any(metric in r["metrics"] for r in runs if r["stage"] == stage):
                        plot_bars(
                            self.study,
                            self.out / f"{file_safe(stage)}_{file_safe(metric)}.png",
                            metric,
                            stage,
                        )
            ranks: dict[str, list] = {}
            for run in runs:
                if run.get("effective_rank_per_layer"):
                    ranks.setdefault(run["arm"], []).append(run["effective_rank_per_layer"])
            if ranks:
                plot_effective_rank(ranks, self.out / "effective_rank_per_layer.png")
        except ImportError:
            logger.warning("matplotlib is not installed: no plots (pip install 'maeir[plot]')")
        write_report(self.study, self.out)

    def make_task(self):
        finetune = self.config.get("finetune") or {}
        evaluation = self.config.get("evaluation") or {}
        if self.config["task"] == "response_selection":
            finetune = finetune.get("args", {})
        if self.config["task"] == "retrieval":  # fine-tuning fields may name {teacher}, {base}, ...
            finetune, evaluation = substitute(finetune, self.names()), substitute(evaluation, self.names())
        return TASKS[self.config["task"]](evaluation, finetune)

    def run(self) -> dict[str, Any]:
        if not self.args.report_only:
            task = self.make_task()
            self.study["evaluation_data"] = task.describe()
            self.build_tokenizer()
            self.build_base()
            self.build_teacher(task)
            only = set(self.args.arms.split(",")) if self.args.arms else None
            for seed in self.run_seeds:
                for arm, fields in self.config["arms"].items():
                    if only is None or arm in only:
                        self.run_arm(task, arm, fields, seed)
                        self.report()
        self.report()
        return self.study
