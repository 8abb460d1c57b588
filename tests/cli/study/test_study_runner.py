"""The study runner (``scripts/study.py``): smoke runs of the shipped study configs, resume, protocol
guard, and the MLM control of the Dial-MAE study (decoder loss weight 0) being plain encoder MLM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from maeir.cli import study as study_driver
from maeir.cli.study import runner as study_runner
from maeir.cli.study.config import load_study_config
from maeir.cli.study.tasks import ResponseSelectionTask
from maeir.data.tokenizer import vocabulary_digest
from maeir.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def run_study(config: str, output_dir: Path, *extra: str) -> dict:
    return study_driver.main(
        [str(REPO / "configs/study" / config), "--output_dir", str(output_dir), "--smoke", *extra]
    )


@pytest.fixture(scope="module")
def dial_mae_smoke(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dial_mae_study")
    return out, run_study("dial_mae_cpu.yaml", out)


def test_dial_mae_smoke_runs_every_arm_seed_and_stage(dial_mae_smoke):
    out, study = dial_mae_smoke
    config = load_study_config(REPO / "configs/study/dial_mae_cpu.yaml", smoke=True)
    expected = {
        (arm, seed, stage)
        for arm in config["arms"]
        for seed in config["seeds"]
        for stage in ("probe", "finetune")
    }
    assert {(r["arm"], r["seed"], r["stage"]) for r in study["runs"]} == expected
    on_disk = json.loads((out / "study.json").read_text())
    assert len(on_disk["runs"]) == len(expected)
    for run in study["runs"]:
        assert set(run["metrics"]) >= {"R@1", "R@2", "R@5", "MRR"}
        assert all(0.0 <= run["metrics"][m] <= 1.0 for m in ("R@1", "MRR"))
        # per-unit scores are per conversation and average back to the metric (every group weighted by
        # its conversation's share): at least they are bounded and cover every conversation once
        units = run["per_unit"]["R@1"]
        assert len(units) == study["evaluation_data"]["units"]
        assert all(0.0 <= v <= 1.0 for v in units.values())
    probes = [r for r in study["runs"] if r["stage"] == "probe" and r["arm"] != "none"]
    for run in probes:  # probe curve: step 0 (the base), every probe_every steps, the final step
        assert [p["step"] for p in run["curve"]] == [0, 2, 4]
        assert run["curve"][-1]["R@1"] == run["metrics"]["R@1"]
    none = [r for r in study["runs"] if r["stage"] == "probe" and r["arm"] == "none"]
    assert len({r["metrics"]["R@1"] for r in none}) == 1  # the base is scored the same for every seed
    # ... probed once (the probe of an unchanged start model is deterministic), shared by the other seeds
    assert ["shared_from" in r for r in none] == [False] + [True] * (len(none) - 1)
    assert all(r["per_unit"] == none[0]["per_unit"] for r in none)
    for run in probes:  # ... and every post-trained arm starts from that base
        assert run["curve"][0]["R@1"] == none[0]["metrics"]["R@1"]
    report = (out / "report.md").read_text()
    assert "dial_mae_2dec" in report and "mlm" in report
    assert (out / "curve_R_at_1.png").stat().st_size > 1000
    assert (out / "base" / "maeir_run.json").is_file()
    assert json.loads((out / "base" / "maeir_run.json").read_text())["from_scratch"] is True


def test_probe_scores_equal_the_response_selection_metrics(dial_mae_smoke):
    """The probe's per-group scoring agrees with maeir's R@k on the same scores (one code path)."""
    from maeir.metrics.response_selection import response_selection_metrics

    out, _ = dial_mae_smoke
    config = load_study_config(REPO / "configs/study/dial_mae_cpu.yaml", smoke=True)
    task = ResponseSelectionTask(config["evaluation"], config["finetune"]["args"])
    encoder, tokenizer = task.load(str(out / "base"))
    scores = task.probe_scores(encoder, tokenizer)
    metrics, _, _ = task.probe(encoder, tokenizer)
    reference = response_selection_metrics((s, g.labels) for s, g in zip(scores, task.groups))
    for name in ("R@1", "R@2", "R@5", "MRR"):
        assert metrics[name] == pytest.approx(reference[name], abs=1e-12)


def test_resume_skips_finished_runs_and_redoes_the_missing_one(dial_mae_smoke, monkeypatch):
    """A study killed during its last arm (probe recorded, fine-tuning not, the arm's model folder
    already cleaned up) redoes that arm's post-training, probe and fine-tuning, and nothing else."""
    out, study = dial_mae_smoke
    state = json.loads((out / "study.json").read_text())
    removed = state["runs"].pop()
    assert removed["stage"] == "finetune"
    (out / "study.json").write_text(json.dumps(state))
    calls = []
    real = study_runner.StudyRunner.run_arm

    def counting(self, task, arm, fields, seed):
        before = {id(r) for r in self.study["runs"]}
        real(self, task, arm, fields, seed)
        calls.extend((r["arm"], r["seed"], r["stage"]) for r in self.study["runs"] if id(r) not in before)

    monkeypatch.setattr(study_runner.StudyRunner, "run_arm", counting)
    resumed = run_study("dial_mae_cpu.yaml", out)
    assert calls == [
        (removed["arm"], removed["seed"], "probe"),
        (removed["arm"], removed["seed"], "finetune"),
    ]
    assert len(resumed["runs"]) == len(study["runs"])
    redone = next(
        r
        for r in resumed["runs"]
        if (r["arm"], r["seed"], r["stage"]) == (removed["arm"], removed["seed"], "probe")
    )
    original = next(
        r
        for r in study["runs"]
        if (r["arm"], r["seed"], r["stage"]) == (removed["arm"], removed["seed"], "probe")
    )
    assert redone["metrics"] == original["metrics"]  # same seed, same post-training, same probe


def test_a_changed_protocol_is_refused_unless_explained(dial_mae_smoke, tmp_path):
    out, _ = dial_mae_smoke
    config = (REPO / "configs/study/dial_mae_cpu.yaml").read_text().replace("max_steps: 4,", "max_steps: 6,")
    changed = tmp_path / "dial_mae_cpu.yaml"
    changed.write_text(config)
    with pytest.raises(ConfigError, match="protocol differs"):
        study_driver.main([str(changed), "--output_dir", str(out), "--smoke", "--report_only", "false"])


def test_unknown_study_field_names_its_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\ntask: response_selection\nseeds: [1]\ncontrol: a\nheadline_metric: R@1\narms: {a: null}\nbugdet: 3\n"
    )
    with pytest.raises(ConfigError) as err:
        load_study_config(bad)
    assert "bad.yaml:7" in str(err.value) and "bugdet" in str(err.value)


def test_mlm_control_is_encoder_mlm_only():
    """Dial-MAE with decoder_loss_weight 0 (the study's MLM control) gives the encoder exactly the
    gradient of its masked-LM loss alone, and the decoder none."""
    from transformers import BertConfig

    from maeir.methods.dial_mae import DialMAEForPretraining
    from maeir.methods.dial_mae.configuration_dial_mae import DialMAEConfig

    torch.manual_seed(0)
    encoder = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    model = DialMAEForPretraining(
        DialMAEConfig(encoder_config=encoder.to_dict(), mask_token_id=4, decoder_loss_weight=0.0)
    )
    ids = torch.randint(5, 50, (3, 12))
    labels = ids.clone()
    labels[:, ::3] = -100
    batch = {
        "input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
        "decoder_input_ids": ids[:, :6], "decoder_attention_mask": torch.ones(3, 6, dtype=torch.long),
        "decoder_labels": labels[:, :6],
    }  # fmt: skip
    model.eval()  # no dropout: the two passes must see the same network
    model(**batch).loss.backward()
    control = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    # reference: the same weights trained with the decoder's loss on, but no decoder position labelled
    reference = DialMAEForPretraining(DialMAEConfig(encoder_config=encoder.to_dict(), mask_token_id=4))
    reference.load_state_dict(model.state_dict())
    reference.eval()
    reference(**{**batch, "decoder_labels": torch.full_like(batch["decoder_labels"], -100)}).loss.backward()
    checked = 0
    for name, param in reference.named_parameters():
        if name.startswith("decoder."):
            assert name not in control or torch.count_nonzero(control[name]) == 0, name
        elif param.grad is not None and torch.count_nonzero(param.grad):
            torch.testing.assert_close(control[name], param.grad, rtol=0, atol=0)
            checked += 1
    assert checked > 10  # the encoder's weights did get the MLM gradient


def test_mae_lm_smoke(tmp_path):
    study = run_study("mae_lm_cpu.yaml", tmp_path)
    stages = {(r["arm"], r["stage"]) for r in study["runs"]}
    assert stages == {(a, s) for a in ("mlm", "mae_lm") for s in ("probe", "finetune:tweets")}
    for run in study["runs"]:
        if run["stage"] == "probe":
            ranks = run["effective_rank_per_layer"]
            assert len(ranks) == 3 and all(r > 1.0 for r in ranks)  # embeddings + 2 layers
            assert run["metrics"]["heldout_mlm_loss"] > 0
    assert (tmp_path / "report.md").is_file()
    # same seed + the study's own tokenizer (--tokenizer) -> the same numbers, to the last digit
    tokenizer_stage = study["stages"]["tokenizer"]
    assert tokenizer_stage["vocab_sha256"] == vocabulary_digest(tmp_path / "tokenizer")
    again = run_study("mae_lm_cpu.yaml", tmp_path / "again", "--tokenizer", str(tmp_path / "tokenizer"),
                      "--seeds", "1", "--arms", "mlm")  # fmt: skip
    assert again["stages"]["tokenizer"]["copied_from"] == str(tmp_path / "tokenizer")
    assert again["stages"]["tokenizer"]["vocab_sha256"] == tokenizer_stage["vocab_sha256"]
    first = {r["stage"]: r["metrics"] for r in study["runs"] if (r["arm"], r["seed"]) == ("mlm", 1)}
    assert {r["stage"]: r["metrics"] for r in again["runs"]} == first
    with pytest.raises(ConfigError, match="trains no tokenizer"):  # a study without one refuses the option
        run_study(
            "dial_mae_minilm_probe_cpu.yaml", tmp_path / "dial", "--tokenizer", str(tmp_path / "tokenizer")
        )


def test_seeds_option_runs_a_subset_of_the_protocol(tmp_path):
    config = str(REPO / "configs/study/dial_mae_cpu.yaml")
    runner = study_runner.StudyRunner(
        study_driver.StudyArguments(config=config, output_dir=str(tmp_path / "a"), smoke=True, seeds="2")
    )
    full = study_runner.StudyRunner(
        study_driver.StudyArguments(config=config, output_dir=str(tmp_path / "b"), smoke=True)
    )
    assert runner.run_seeds == [2] and full.run_seeds == [1, 2]
    assert runner.study["protocol_hash"] == full.study["protocol_hash"]  # same protocol, fewer seeds now
    assert "--seeds" not in runner.study["command"]
    with pytest.raises(ConfigError, match="not in the protocol"):
        study_runner.StudyRunner(
            study_driver.StudyArguments(config=config, output_dir=str(tmp_path / "c"), smoke=True, seeds="7")
        )


def test_redo_stages_moves_the_changed_stage_to_superseded_runs(dial_mae_smoke, tmp_path):
    out, study = dial_mae_smoke
    copy = tmp_path / "study"
    shutil.copytree(out, copy)
    config = (REPO / "configs/study/dial_mae_cpu.yaml").read_text().replace("max_steps: 4,", "max_steps: 6,")
    changed = tmp_path / "dial_mae_cpu.yaml"
    changed.write_text(config)
    before = json.loads((copy / "study.json").read_text())
    runner = study_runner.StudyRunner(
        study_driver.StudyArguments(
            config=str(changed), output_dir=str(copy), smoke=True,
            protocol_change="fine-tuning budget", redo_stages="finetune",
        )
    )  # fmt: skip
    moved = runner.study["superseded_runs"]
    assert {(r["arm"], r["seed"]) for r in moved} == {
        (r["arm"], r["seed"]) for r in before["runs"] if r["stage"] == "finetune"
    }
    assert all(r["superseded_by"] == runner.study["protocol_hash"] for r in moved)
    assert [r for r in runner.study["runs"] if r["stage"] == "finetune"] == []
    assert len(runner.study["runs"]) == len([r for r in before["runs"] if r["stage"] == "probe"])
    assert "fine-tuning budget" in runner.study["protocol_changes"][-1]
    with pytest.raises(ConfigError, match="redo_stages"):  # only together with a changed protocol
        study_runner.StudyRunner(
            study_driver.StudyArguments(
                config=str(REPO / "configs/study/dial_mae_cpu.yaml"),
                output_dir=str(copy),
                smoke=True,
                redo_stages="finetune",
            )  # fmt: skip
        )
