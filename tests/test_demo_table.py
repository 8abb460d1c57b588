"""The demo's table: committed-study lines and reading lines (no training; synthetic study.json)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("demo_script", REPO / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _synthetic_study() -> dict:
    """3 seeds x 3 arms, stages probe + finetune; dial_mae clearly above the control on R@1 (probe)."""
    runs = []
    units = [f"c{i}" for i in range(30)]
    for seed in (1, 2, 3):
        for arm, level in (("none", 0.2), ("mlm", 0.3), ("dial_mae", 0.6)):
            per_unit = {u: level + 0.01 * ((i + seed) % 5) for i, u in enumerate(units)}
            mean = sum(per_unit.values()) / len(per_unit)
            runs.append({"arm": arm, "seed": seed, "stage": "probe", "post_train_steps": 600,
                         "metrics": {"R@1": mean, "MRR": mean + 0.1}, "per_unit": {"R@1": per_unit}})  # fmt: skip
            runs.append({"arm": arm, "seed": seed, "stage": "finetune",
                         "metrics": {"R@1": 0.5 + 0.01 * seed * (arm == "dial_mae"), "MRR": 0.7}})  # fmt: skip
    return {
        "name": "dial_mae_cpu",
        "control": "mlm",
        "reference_arms": ["none"],
        "headline_metric": "R@1",
        "headline_stage": "probe",
        "arms": ["none", "mlm", "dial_mae"],
        "seeds": [1, 2, 3],
        "protocol": {
            "base": {"args": {"max_steps": 2000, "per_device_train_batch_size": 64}},
            "post_training": {"args": {"max_steps": 600, "per_device_train_batch_size": 64}},
            "finetune": {"args": {"max_steps": 300}},
        },
        "machine": {"processor": "x86_64", "cpus": 16, "cuda": None},
        "runs": runs,
    }


def test_missing_study_says_so(demo, tmp_path):
    lines = demo.study_rows(tmp_path, ["dial_mae"])
    assert lines == ["committed study studies/dial_mae: no committed study yet"]
    every = demo.study_rows(tmp_path)
    assert [line.split(":")[0] for line in every] == [
        f"committed study studies/{m}" for m in demo.STUDY_METHODS
    ]
    assert all("no committed study yet" in line for line in every)


def test_study_rows_from_a_synthetic_study(demo, tmp_path):
    folder = tmp_path / "studies" / "dial_mae"
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps(_synthetic_study()))
    lines = demo.study_rows(tmp_path, ["dial_mae"])
    header = lines[0]
    assert header.startswith("committed study studies/dial_mae (")
    assert (
        "3 seeds" in header and "post-training 600 steps x 64" in header and "fine-tuning 300 steps" in header
    )
    assert "x86_64, 16 CPUs" in header and header.endswith("see studies/dial_mae/report.md")
    body = lines[1:]
    # headline stage first, then the other stage; one line per arm, headline metric only
    assert [line.split(":")[0].strip() for line in body] == ["probe R@1"] * 3 + ["finetune R@1"] * 3
    control = next(line for line in body if line.startswith("  probe R@1: mlm:"))
    assert "(the control)" in control and " ± " in control and "(n=3)" in control
    dial = next(line for line in body if line.startswith("  probe R@1: dial_mae:"))
    assert "diff to MLM control +0.300 [" in dial and "(excludes zero)" in dial
    # the same numbers as the study's own summary
    from maeir.cli.study import summary

    entry = summary({**_synthetic_study(), "metrics": ["R@1"]})["probe"]["dial_mae"]["R@1"]
    assert f"{entry['mean']:.3f} ± {entry['half_width']:.3f}" in dial
    # without per-unit scores the finetune difference is a t interval over the seeds' differences
    assert any(line.startswith("  finetune R@1: dial_mae:") and "control +0.020 [" in line for line in body)


def test_every_study_folder_is_listed_and_a_broken_one_does_not_stop_the_table(demo, tmp_path):
    (tmp_path / "studies" / "other").mkdir(parents=True)
    (tmp_path / "studies" / "other" / "study.json").write_text("{not json")
    (tmp_path / "studies" / "mae_lm").mkdir(parents=True)
    (tmp_path / "studies" / "mae_lm" / "study.json").write_text(
        json.dumps({**_synthetic_study(), "runs": []})
    )
    lines = demo.study_rows(tmp_path)
    assert "committed study studies/mae_lm: study.json has no runs yet" in lines
    assert any(
        line.startswith("committed study studies/other: study.json could not be summarised") for line in lines
    )


def test_readings_and_block_format(demo, tmp_path):
    assert "(studies/dial_mae, not committed yet)" in demo.live_reading("20 steps", "dial_mae", tmp_path)
    (tmp_path / "studies" / "md2pr").mkdir(parents=True)
    (tmp_path / "studies" / "md2pr" / "study.json").write_text("{}")
    ranker = {"model": "MiniLM 3-layer cross-encoder (24 steps) re-ranking BM25 top 10",
              "metrics": {"MRR@10": 0.30, "BM25 MRR@10": 0.45}}  # fmt: skip
    reading = demo.md2pr_reading([ranker], 24, tmp_path)
    assert "is below BM25 (MRR@10 0.300 vs 0.450)" in reading and "only that the pipeline runs" in reading
    assert "(studies/md2pr) has not compared its arms yet" in reading
    runs = [{"arm": arm, "stage": "finetune", "seed": 1} for arm in ("contrastive", "md2pr")]
    (tmp_path / "studies" / "md2pr" / "study.json").write_text(
        json.dumps({"headline_stage": "finetune", "runs": runs[:1]})
    )
    assert "has not compared its arms yet" in demo.md2pr_reading([ranker], 24, tmp_path)
    (tmp_path / "studies" / "md2pr" / "study.json").write_text(
        json.dumps({"headline_stage": "finetune", "runs": runs})
    )
    assert "(studies/md2pr, below) is the evidence" in demo.md2pr_reading([ranker], 24, tmp_path)
    # a study that compared its arms is the evidence over one that stopped at its teacher gate
    (tmp_path / "studies" / "md2pr" / "study.json").write_text(
        json.dumps({"headline_stage": "finetune", "runs": []})
    )
    (tmp_path / "studies" / "md2pr_small_student").mkdir()
    (tmp_path / "studies" / "md2pr_small_student" / "study.json").write_text(
        json.dumps({"headline_stage": "finetune", "runs": runs})
    )
    assert "(studies/md2pr_small_student, below) is the evidence" in demo.md2pr_reading(
        [ranker], 24, tmp_path
    )
    row = {"task": "t", "model": "m", "post_training_steps": 0, "post_training_final_loss": None,
           "accuracy": 0.5, "macro_f1": None, "seconds": 1.0, "metrics": {"MRR": 0.25}}  # fmt: skip
    text = demo.format_summary([{"title": "B", "rows": [row], "reading": ["reading: r"], "studies": ["s"]}])
    assert text.splitlines() == [
        "### B",
        "",
        *demo.TABLE_HEADER,
        "| t | m | 0 | - | 0.5000 | - | 1.0 | MRR 0.2500 |",
        "",
        "    reading: r",
        "    s",
    ]


def test_a_study_stopped_at_its_teacher_precondition_says_so(demo):
    verdict = {"metric": "MRR@10", "passed": False,
               "first_stage": {"teacher": 0.165, "first_stage": 0.151, "beats": True},
               "student": {"teacher": 0.201, "student": 0.236, "beats": False}}  # fmt: skip
    study = {"runs": [], "stages": {"teacher": {"precondition": verdict}}}
    (line,) = demo._study_lines(study, "studies/md2pr")
    assert "stopped at its precondition" in line and "teacher 0.201 vs student 0.236" in line
    assert "first_stage" not in line  # only what failed
    assert demo._study_lines({"runs": []}, "x") == ["committed study x: study.json has no runs yet"]
