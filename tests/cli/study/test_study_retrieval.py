"""The study runner's retrieval task (CoT-MAE v2 and MD2PR studies): smoke runs of both shipped study
configs, per-query units covering the test queries, and the probe's per-query MRR@10 agreeing with
``ir-measures`` computed independently on the same run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from maeir.cli import study as study_driver
from maeir.cli.study import runner as study_runner
from maeir.cli.study import teacher as study_teacher
from maeir.cli.study.config import load_study_config
from maeir.cli.study.tasks import RetrievalTask

REPO = Path(__file__).resolve().parents[3]
COTMAE = REPO / "configs/study/cotmae_v2_cpu.yaml"
MD2PR = REPO / "configs/study/md2pr_cpu.yaml"
MD2PR_SMALL_STUDENT = REPO / "configs/study/md2pr_small_student_cpu.yaml"


def run_study(config: Path, output_dir: Path) -> dict:
    return study_driver.main([str(config), "--output_dir", str(output_dir), "--smoke"])


def expected_runs(config_path: Path) -> set[tuple[str, int, str]]:
    config = load_study_config(config_path, smoke=True)
    return {
        (arm, seed, stage)
        for arm in config["arms"]
        for seed in config["seeds"]
        for stage in ("probe", "finetune")
    }


def judged_test_queries(config_path: Path) -> set[str]:
    config = load_study_config(config_path, smoke=True)
    return set(RetrievalTask(config["evaluation"], {}).data.qrels)


def check_units(study: dict, queries: set[str]) -> None:
    assert study["evaluation_data"]["units"] == len(queries)
    for run in study["runs"]:
        assert run["per_unit"], run["stage"]
        for metric, units in run["per_unit"].items():
            assert set(units) == queries, (run["arm"], run["stage"], metric)
            assert all(0.0 <= v <= 1.0 for v in units.values())
            mean = sum(units.values()) / len(units)
            assert mean == pytest.approx(run["metrics"][metric], abs=1e-12)  # every query weighs the same


def check_every_run_recorded(out: Path, study: dict, config: Path) -> None:
    """Every (arm, seed, stage) of the protocol is in the study, once, and on disk."""
    expected = expected_runs(config)
    assert {(r["arm"], r["seed"], r["stage"]) for r in study["runs"]} == expected
    assert len(json.loads((out / "study.json").read_text())["runs"]) == len(expected)


@pytest.fixture(scope="module")
def cotmae_smoke(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cotmae_v2_study")
    return out, run_study(COTMAE, out)


def test_cotmae_v2_smoke_runs_every_arm_seed_and_stage(cotmae_smoke):
    out, study = cotmae_smoke
    check_every_run_recorded(out, study, COTMAE)
    assert set(study["arms"]) == {"none", "mlm", "cotmae_v2", "dense_view", "no_ar_dec", "no_ae_dec"}
    check_units(study, judged_test_queries(COTMAE))
    representation = study["protocol"]["finetune"]["args"]["representation"]
    views = ("dense", "sparse", "hybrid") if representation == "hybrid" else (representation,)
    for run in study["runs"]:
        if run["stage"] == "probe":
            assert set(run["metrics"]) == {"MRR@10", "nDCG@10"}
        else:  # the fine-tuned model is scored in each of its views (a hybrid one: dense, sparse, hybrid)
            assert set(run["metrics"]) == {f"{v}_{m}" for v in views for m in ("MRR@10", "nDCG@10")}
    none = next(r for r in study["runs"] if r["arm"] == "none" and r["stage"] == "probe")
    for run in study["runs"]:  # probe curve: the base at step 0, every probe_every steps, the last step
        if run["stage"] == "probe" and run["arm"] != "none":
            assert [p["step"] for p in run["curve"]] == [0, 2, 4]
            assert run["curve"][0]["MRR@10"] == none["metrics"]["MRR@10"]
            assert run["curve"][-1]["MRR@10"] == run["metrics"]["MRR@10"]
    assert "no_ae_dec" in (out / "report.md").read_text()


def test_probe_per_query_mrr_is_ir_measures_on_the_same_run(cotmae_smoke):
    """The probe's MRR@10 and its per-query scores equal ir-measures' RR@10 computed on the probe's run."""
    import ir_measures

    out, study = cotmae_smoke
    config = load_study_config(COTMAE, smoke=True)
    task = RetrievalTask(config["evaluation"], {})
    encoder, tokenizer = task.load(str(out / "base"))
    run = task.probe_run(encoder, tokenizer)
    metrics, per_unit, _ = task.probe(encoder, tokenizer)
    none = next(r for r in study["runs"] if r["arm"] == "none" and r["stage"] == "probe")
    assert metrics == pytest.approx(none["metrics"], abs=1e-12)  # the recorded probe of the base
    qrels = [ir_measures.Qrel(q, d, r) for q, docs in task.data.qrels.items() for d, r in docs.items()]
    scored = [ir_measures.ScoredDoc(q, d, s) for q, docs in run.items() for d, s in docs.items()]
    reference = {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.RR @ 10], qrels, scored)}
    reference = {q: reference.get(q, 0.0) for q in task.data.qrels}  # a query without results scores 0
    assert per_unit["MRR@10"] == pytest.approx(reference, abs=1e-12)
    assert metrics["MRR@10"] == pytest.approx(sum(reference.values()) / len(reference), abs=1e-12)
    assert sum(per_unit["MRR@10"].values()) / len(per_unit["MRR@10"]) == pytest.approx(
        metrics["MRR@10"], abs=1e-12
    )


@pytest.fixture(scope="module")
def md2pr_smoke(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("md2pr_study")
    return out, run_study(MD2PR, out)


def test_md2pr_smoke_runs_every_arm_with_its_terms(md2pr_smoke):
    out, study = md2pr_smoke
    check_every_run_recorded(out, study, MD2PR)
    assert set(study["arms"]) == {"contrastive", "kl", "word_level", "fn_filtering", "md2pr"}
    check_units(study, judged_test_queries(MD2PR))
    # the teacher is trained once, into {teacher}, and its own evaluation recorded (BM25 and re-ranked)
    assert (out / "teacher" / "maeir_run.json").is_file()
    teacher = study["stages"]["teacher"]
    assert {"rerank", "first_stage"} <= set(teacher["eval"])
    # its training negatives were mined first (teacher.mine), and it also re-ranked the student's own top K
    assert teacher["mine"]["queries"] > 0 and teacher["fields"]["train_file"] == teacher["mine"]["output"]
    assert teacher["eval"]["rerank_student_top"]["depth"] == 5
    assert teacher["eval"]["student"]["MRR@10"] == pytest.approx(probes_mrr(study), abs=1e-9)
    probes = [r for r in study["runs"] if r["stage"] == "probe"]
    assert len({r["metrics"]["MRR@10"] for r in probes}) == 1  # no post-training: one student for all
    finetuned = {r["arm"]: r for r in study["runs"] if r["stage"] == "finetune"}
    for run in finetuned.values():
        assert {"dense_MRR@10", "dense_nDCG@10", "false_negatives_masked"} <= set(run["metrics"])
        assert not any(m.startswith(("sparse_", "hybrid_")) for m in run["metrics"])  # a dense student
    # the filter masks negatives only in the arms that have it on
    assert finetuned["contrastive"]["metrics"]["false_negatives_masked"] == 0
    assert finetuned["kl"]["metrics"]["false_negatives_masked"] == 0
    # each arm trained with its own terms (the distillation config saved next to the student is gone
    # with the run folder; the terms are in the protocol)
    arms = study["protocol"]["arms"]
    assert arms["contrastive"]["finetune"] == {
        "kl_weight": 0.0,
        "word_level_weight": 0.0,
        "false_negative_filtering": False,
    }
    report = (out / "report.md").read_text()
    assert "dense_MRR@10" in report and "## The teacher (precondition)" in report


def test_a_teacher_folder_in_place_is_reused_with_its_own_evaluation(md2pr_smoke, tmp_path):
    """A teacher already in ``OUTPUT_DIR/teacher`` (same ``teacher.args``, e.g. copied from another study)
    is not trained again: its training driver's own evaluation is recorded, marked ``reused``; the
    small-student study (its student cut by ``encoder_overrides``) then runs every arm from it."""
    import shutil

    source, _ = md2pr_smoke
    out = tmp_path / "small_student"
    shutil.copytree(source / "teacher", out / "teacher")
    shutil.copytree(source / "tokenizer", out / "tokenizer")  # the smoke student's vocabulary = the teacher's
    weights = (out / "teacher" / "model.safetensors").read_bytes()
    study = run_study(MD2PR_SMALL_STUDENT, out)
    check_every_run_recorded(out, study, MD2PR_SMALL_STUDENT)
    teacher = study["stages"]["teacher"]
    assert teacher["reused"] is True and "mine" not in teacher
    assert (out / "teacher" / "model.safetensors").read_bytes() == weights  # not trained again
    own = json.loads((source / "teacher" / "eval_test" / "metrics.json").read_text())["views"]
    assert teacher["eval"]["first_stage"]["MRR@10"] == own["first_stage"]["MRR@10"]
    assert teacher["eval"]["rerank"]["MRR@10"] == own["rerank"]["MRR@10"]
    assert teacher["fields"]["max_steps"] == 2  # the reused folder's own record (maeir_run.json)
    assert teacher["eval"]["student"]["MRR@10"] == pytest.approx(probes_mrr(study), abs=1e-9)


def test_evaluation_encoder_overrides_cut_the_probed_student(tiny_backbone_dir):
    """``encoder_overrides`` (default: the fine-tuning student's own) load the start model's first
    layers only, with the full model's weights for them."""
    from transformers import AutoModel

    config = load_study_config(MD2PR_SMALL_STUDENT, smoke=True)
    task = RetrievalTask(config["evaluation"], {"args": {"encoder_overrides": "num_hidden_layers=1"}})
    cut, _ = task.load(tiny_backbone_dir)
    full = AutoModel.from_pretrained(tiny_backbone_dir)
    assert full.config.num_hidden_layers > 1 and cut.config.num_hidden_layers == 1
    assert len(cut.encoder.layer) == 1
    for name, value in cut.state_dict().items():
        if not name.startswith("pooler."):  # a masked-LM backbone has no pooler: fresh in both
            assert torch.equal(value, full.state_dict()[name]), name
    explicit = RetrievalTask(
        {**config["evaluation"], "encoder_overrides": {}},
        {"args": {"encoder_overrides": "num_hidden_layers=1"}},
    )
    assert len(explicit.load(tiny_backbone_dir)[0].encoder.layer) == full.config.num_hidden_layers


def probes_mrr(study: dict) -> float:
    (value,) = {r["metrics"]["MRR@10"] for r in study["runs"] if r["stage"] == "probe"}
    return value


@pytest.mark.parametrize(
    ("rerank", "student", "passed"), [(0.30, 0.25, True), (0.20, 0.25, False), (0.25, 0.25, False)]
)
def test_teacher_gate_stops_the_study_unless_the_teacher_beats_the_student(tmp_path, rerank, student, passed):
    """``teacher.require_beats``: a teacher that does not rank better than the student is refused, loudly,
    and the verdict is kept in study.json either way."""
    from maeir.errors import ConfigError

    runner = study_runner.StudyRunner.__new__(study_runner.StudyRunner)
    runner.args = type("A", (), {"config": "s.yaml"})()
    runner.out, runner.study = tmp_path, {}
    reports = []
    runner.report = lambda: reports.append(True)  # a stopped study still writes its report (the verdict)
    stage = {"eval": {"rerank": {"MRR@10": 0.5}, "first_stage": {"MRR@10": 0.1},
                      "rerank_student_top": {"MRR@10": rerank}, "student": {"MRR@10": student}}}  # fmt: skip
    spec = {"require_beats": ["first_stage", "student"]}
    if passed:
        study_teacher.check_teacher(runner, spec, stage)
    else:
        with pytest.raises(ConfigError, match="does not beat"):
            study_teacher.check_teacher(runner, spec, stage)
    assert stage["precondition"]["passed"] is passed
    assert stage["precondition"]["first_stage"]["beats"] is True
    assert (tmp_path / "study.json").is_file()  # written before the refusal
    assert reports == ([] if passed else [True])


def test_an_arm_with_only_finetune_fields_is_not_post_trained(tmp_path, monkeypatch):
    """``{finetune: {...}}`` arms skip post-training and hand their fields to the task's fine-tuning."""
    config = tmp_path / "s.yaml"
    config.write_text(
        "name: s\ntask: retrieval\nseeds: [3]\ncontrol: a\nheadline_metric: MRR@10\n"
        "arms: {a: {finetune: {kl_weight: 0.5}}}\n"
        "finetune: {driver: distill_md2pr, args: {student: some_student, kl_weight: 1.0}}\n"
    )
    calls = []

    class FakeTask:
        def describe(self):
            return {}

        def load(self, path):
            calls.append(("load", path))
            return None, None

        def probe(self, model, tokenizer):
            return {"MRR@10": 0.5}, {"MRR@10": {"q": 0.5}}, {}

        def finetune_stages(self):
            return ["finetune"]

        def finetune_and_evaluate(self, model_path, output_dir, seed, stage, finetune=None):
            calls.append(("finetune", model_path, seed, finetune))
            return {"dense_MRR@10": 0.25}, {"dense_MRR@10": {"q": 0.25}}

    monkeypatch.setattr(study_runner.StudyRunner, "make_task", lambda self: FakeTask())
    monkeypatch.setattr(study_runner, "run_pretraining", lambda *a, **k: pytest.fail("post-trained"))
    study = study_driver.main([str(config), "--output_dir", str(tmp_path / "out")])
    assert calls == [("load", "some_student"), ("finetune", "some_student", 3, {"kl_weight": 0.5})]
    assert [(r["arm"], r["stage"]) for r in study["runs"]] == [("a", "probe"), ("a", "finetune")]
