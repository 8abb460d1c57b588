"""Study statistics (t intervals, paired bootstrap, id alignment), the markdown report and the plots."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scipy import stats as scipy_stats

from maeir.cli.study import (
    mean_ci,
    paired_bootstrap,
    paired_difference_by_units,
    summary,
    verdict,
    write_report,
)

# -- mean_ci ---------------------------------------------------------------------------------------


def test_mean_ci_matches_scipy_t_interval():
    values = [0.5, 0.6, 0.7]
    result = mean_ci(values)
    low, high = scipy_stats.t.interval(0.95, df=2, loc=0.6, scale=scipy_stats.sem(values))
    assert result["mean"] == pytest.approx(0.6)
    assert result["std"] == pytest.approx(0.1)
    assert result["ci_low"] == pytest.approx(low)
    assert result["ci_high"] == pytest.approx(high)
    # By hand: t_{0.975, 2} = 4.302653, sd / sqrt(3) = 0.0577350.
    assert result["half_width"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), abs=1e-6)
    assert result["n"] == 3 and result["ci_defined"]
    wider = mean_ci(values, confidence=0.99)
    assert wider["half_width"] > result["half_width"]


def test_mean_ci_single_value_has_no_interval():
    result = mean_ci([0.42])
    assert result["mean"] == 0.42 and result["n"] == 1
    assert not result["ci_defined"]
    assert math.isnan(result["ci_low"]) and math.isnan(result["ci_high"]) and math.isnan(result["std"])
    with pytest.raises(ValueError):
        mean_ci([])
    with pytest.raises(ValueError):
        mean_ci([0.1, float("nan")])


# -- paired_bootstrap ------------------------------------------------------------------------------


def test_identical_arms_give_zero_difference():
    scores = np.random.default_rng(1).uniform(size=(3, 50))
    result = paired_bootstrap(scores, scores.copy())
    assert result["mean_difference"] == 0.0
    assert result["ci_low"] <= 0.0 <= result["ci_high"]
    assert not result["excludes_zero"]
    assert result["p_value"] == 1.0
    assert result["per_seed_differences"] == [0.0, 0.0, 0.0]
    assert result["n_units"] == 50 and result["n_seeds_arm"] == 3


def test_constant_shift_gives_degenerate_interval_excluding_zero():
    control = np.random.default_rng(2).uniform(size=80)
    result = paired_bootstrap(control + 0.1, control)
    assert result["mean_difference"] == pytest.approx(0.1)
    assert result["ci_low"] == pytest.approx(0.1, abs=1e-12)
    assert result["ci_high"] == pytest.approx(0.1, abs=1e-12)
    assert result["excludes_zero"]
    assert result["p_value"] == 0.0
    negative = paired_bootstrap(control - 0.1, control)
    assert negative["excludes_zero"] and negative["ci_high"] == pytest.approx(-0.1, abs=1e-12)


def test_bootstrap_agrees_with_normal_approximation():
    rng = np.random.default_rng(3)
    control = rng.uniform(size=400)
    arm = control + rng.normal(0.03, 0.2, size=400)
    result = paired_bootstrap(arm, control, n_resamples=20000, seed=5)
    diff = arm - control
    se = diff.std(ddof=1) / math.sqrt(diff.size)
    z = scipy_stats.norm.ppf(0.975)
    assert result["mean_difference"] == pytest.approx(diff.mean())
    assert result["ci_low"] == pytest.approx(diff.mean() - z * se, abs=0.1 * z * se)
    assert result["ci_high"] == pytest.approx(diff.mean() + z * se, abs=0.1 * z * se)
    normal_p = 2 * scipy_stats.norm.sf(abs(diff.mean()) / se)
    assert result["p_value"] == pytest.approx(normal_p, abs=0.02)
    assert result["excludes_zero"] == (normal_p < 0.05)


def test_seed_axis_is_averaged_before_resampling():
    rng = np.random.default_rng(4)
    arm = rng.uniform(size=(3, 30))
    control = rng.uniform(size=(2, 30))
    result = paired_bootstrap(arm, control, n_resamples=2000)
    direct = paired_bootstrap(arm.mean(axis=0), control.mean(axis=0), n_resamples=2000)
    assert result["mean_difference"] == pytest.approx(arm.mean() - control.mean())
    assert result["ci"] == pytest.approx(direct["ci"])
    assert result["per_seed_differences"] is None  # seed counts differ: no pairing by seed
    same = paired_bootstrap(arm, arm[::-1] + 0.05, n_resamples=100)
    expected = (arm - (arm[::-1] + 0.05)).mean(axis=1)
    assert same["per_seed_differences"] == pytest.approx(expected.tolist())


def test_bootstrap_is_deterministic_per_seed():
    rng = np.random.default_rng(6)
    arm, control = rng.uniform(size=60), rng.uniform(size=60)
    first = paired_bootstrap(arm, control, n_resamples=3000, seed=11)
    again = paired_bootstrap(arm, control, n_resamples=3000, seed=11)
    other = paired_bootstrap(arm, control, n_resamples=3000, seed=12)
    assert first == again
    assert first["ci"] != other["ci"]


def test_bootstrap_validates_shapes_and_ids():
    with pytest.raises(ValueError, match="same units"):
        paired_bootstrap(np.zeros(5), np.zeros(6))
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="empty"):
        paired_bootstrap(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="ids differ"):
        paired_bootstrap(np.zeros(2), np.zeros(2), unit_ids=["a", "b"], control_unit_ids=["b", "a"])
    with pytest.raises(ValueError, match="non-finite"):
        paired_bootstrap(np.array([0.0, np.nan]), np.zeros(2))


# -- paired_difference_by_units --------------------------------------------------------------------


def test_alignment_by_ids_ignores_order_and_key_type():
    arm = {"q1": 1.0, "q2": 0.0, "q3": 1.0}
    control = {"q3": 0.0, "q1": 1.0, "q2": 0.0}  # same ids, other order
    result = paired_difference_by_units(arm, control, n_resamples=500)
    assert result["unit_ids"] == ["q1", "q2", "q3"]
    assert result["mean_difference"] == pytest.approx(1 / 3)
    per_seed = paired_difference_by_units(
        [{1: 0.5, 2: 0.5}, {"1": 0.7, "2": 0.3}], [{"1": 0.5, "2": 0.5}] * 2
    )
    assert per_seed["per_seed_differences"] == pytest.approx([0.0, 0.0])
    assert per_seed["n_seeds_arm"] == 2


def test_alignment_refuses_mismatched_ids():
    with pytest.raises(ValueError, match="unit ids differ"):
        paired_difference_by_units({"q1": 1.0, "q2": 0.0}, {"q1": 1.0, "q3": 0.0})
    with pytest.raises(ValueError, match="unit ids differ"):
        paired_difference_by_units([{"q1": 1.0, "q2": 0.0}, {"q1": 1.0}], [{"q1": 1.0, "q2": 0.0}] * 2)
    with pytest.raises(ValueError):
        paired_difference_by_units([], [{"q1": 1.0}])


# -- report ----------------------------------------------------------------------------------------

EFFECTS = {"mlm": 0.0, "mae-lm": 0.08, "cotmae": 0.0, "none": -0.25}


def synthetic_study(n_units: int = 50, seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """Control ``mlm``, ``mae-lm`` clearly better, ``cotmae`` the same, ``none`` clearly worse."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.7, size=n_units)
    runs = []
    for arm, effect in EFFECTS.items():
        for seed in seeds:
            scores = np.clip(base + effect + rng.normal(0, 0.03, size=n_units), 0, 1)
            per_unit = {f"q{u}": float(s) for u, s in enumerate(scores)}
            mrr = float(scores.mean() * 0.9 + rng.normal(0, 0.001))
            curve = [
                {"step": step, "r10@1": float(scores.mean() * step / 300 + rng.normal(0, 0.005))}
                for step in (100, 200, 300)
            ]
            runs.append(
                {
                    "arm": arm,
                    "seed": seed,
                    "stage": "finetune",
                    "metrics": {"r10@1": float(scores.mean()), "mrr": mrr},
                    "per_unit": {"r10@1": per_unit},
                    "wall_time_s": 30.0 + seed,
                    "curve": curve,
                }
            )
    return {
        "name": "Synthetic study",
        "description": "Four arms on fake per-query scores.",
        "command": "python -m maeir.cli.study --config configs/study/synthetic.json",
        "protocol": {"backbone": "minilm", "finetune": {"epochs": 1, "lr": 2e-5}, "seeds": list(seeds)},
        "control": "mlm",
        "reference_arms": ["none"],
        "metrics": ["r10@1", "mrr"],
        "headline_metric": "r10@1",
        "arms": list(EFFECTS),
        "seeds": list(seeds),
        "runs": runs,
        "protocol_changes": ["Fewer fine-tuning steps than planned (CPU budget)."],
        "machine": {"cpu": "2 cores", "gpu": None},
        "wall_time_s": 400.0,
    }


def test_summary_differences_match_direct_bootstrap():
    study = synthetic_study()
    result = summary(study, n_resamples=2000)
    arms = result["finetune"]
    assert list(arms) == ["mlm", "mae-lm", "cotmae", "none"]
    assert arms["mlm"]["r10@1"]["diff_to_control"] is None
    by_arm = {arm: [r["per_unit"]["r10@1"] for r in study["runs"] if r["arm"] == arm] for arm in EFFECTS}
    direct = paired_difference_by_units(by_arm["mae-lm"], by_arm["mlm"], n_resamples=2000)
    diff = arms["mae-lm"]["r10@1"]["diff_to_control"]
    assert diff["mean_difference"] == pytest.approx(direct["mean_difference"])
    assert diff["ci"] == pytest.approx(direct["ci"])
    assert diff["method"] == "bootstrap (units)" and diff["n_units"] == 50
    assert diff["excludes_zero"] and diff["mean_difference"] == pytest.approx(0.08, abs=0.02)
    assert not arms["cotmae"]["r10@1"]["diff_to_control"]["excludes_zero"]
    assert arms["none"]["r10@1"]["diff_to_control"]["excludes_zero"]
    assert arms["none"]["r10@1"]["diff_to_control"]["mean_difference"] < 0
    # mrr has no per-unit scores: paired t over seeds.
    mrr = arms["mae-lm"]["mrr"]["diff_to_control"]
    assert mrr["method"] == "seeds (t)" and len(mrr["per_seed_differences"]) == 3
    assert arms["mae-lm"]["r10@1"]["diff_to_references"]["none"]["excludes_zero"]
    json.dumps(result, allow_nan=False)  # strict JSON


def test_write_report_contents_match_stats(tmp_path):
    study = synthetic_study()
    (tmp_path / "bars.png").write_bytes(b"\x89PNG fake")
    path = write_report(study, tmp_path, n_resamples=2000)
    assert path == str(tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    stats = summary(study, n_resamples=2000)["finetune"]
    for arm in EFFECTS:
        assert f"`{arm}`" in text
    for heading in (
        "# Synthetic study",
        "## Protocol",
        "## Stage: finetune",
        "## Reproduce",
        "## Protocol changes",
    ):
        assert heading in text
    assert study["command"] in text and "Fewer fine-tuning steps" in text and "![bars](bars.png)" in text
    assert "`finetune.lr`" in text

    verdicts = dict(re.findall(r"^- finetune / `([^`]+)`: (.+)$", text, flags=re.M))
    assert set(verdicts) == {"mae-lm", "cotmae", "none"}
    for arm, line in verdicts.items():
        diff = stats[arm]["r10@1"]["diff_to_control"]
        assert line == verdict(diff, "mlm")
        expected = f"{diff['mean_difference']:+.3f} [{diff['ci'][0]:+.3f}, {diff['ci'][1]:+.3f}]"
        assert expected in line
    assert verdicts["mae-lm"].startswith("higher than mlm control: +0.0")
    assert verdicts["none"].startswith("lower than mlm control: -0.2")
    assert verdicts["cotmae"].startswith("no difference detectable")

    # Difference tables: one row per arm and metric, "excludes zero" as in the stats.
    rows = re.findall(
        r"^\| `([^`]+)` \| (r10@1|mrr) \| ([+-][0-9.]+) \| .*? \| (\*\*yes\*\*|no) \|", text, re.M
    )
    seen = {}
    for arm, metric, value, excludes in rows:
        seen.setdefault((arm, metric), []).append((float(value), excludes == "**yes**"))
    control_rows = {key: vals[0] for key, vals in seen.items()}
    for arm in ("mae-lm", "cotmae", "none"):
        for metric in ("r10@1", "mrr"):
            diff = stats[arm][metric]["diff_to_control"]
            value, excludes = control_rows[(arm, metric)]
            assert value == pytest.approx(diff["mean_difference"], abs=5e-4)
            assert excludes == diff["excludes_zero"]
    assert "Paired difference to `none`" in text  # the reference arm gets its own table
    mean_cell = f"{stats['mae-lm']['r10@1']['mean']:.3f} ± {stats['mae-lm']['r10@1']['half_width']:.3f} (n=3)"
    assert mean_cell in text


def test_report_single_seed_has_no_interval(tmp_path):
    study = synthetic_study(seeds=(0,))
    write_report(study, tmp_path, n_resamples=500)
    text = (tmp_path / "report.md").read_text()
    assert "(n=1, no CI)" in text


# -- plots -----------------------------------------------------------------------------------------


def test_plots_write_png_files(tmp_path):
    pytest.importorskip("matplotlib")
    from maeir.cli.study import plot_bars, plot_curves, plot_effective_rank

    study = synthetic_study(n_units=10)
    paths = [
        plot_curves(study, tmp_path / "curves.png", "r10@1", "finetune"),
        plot_bars(study, tmp_path / "bars.png", "r10@1", "finetune"),
        plot_effective_rank(
            {
                "mlm": [[10.0, 12.0, 9.0], [11.0, 12.5, 9.5]],
                "mae-lm": [[14.0, 15.0, 13.0], [13.5, 15.2, 12.0]],
            },
            tmp_path / "sub" / "rank.png",
        ),
    ]
    for path in paths:
        data = open(path, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["bars.png", "curves.png", "rank.png", "sub"]
    with pytest.raises(ValueError):
        plot_curves(study, tmp_path / "x.png", "missing", "finetune")
    write_report(study, tmp_path, n_resamples=200)
    text = (tmp_path / "report.md").read_text()
    assert "![curves](curves.png)" in text and "![rank](sub/rank.png)" in text


def test_comparison_table_rows_match_summary():
    from maeir.cli.study import comparison_table

    study = synthetic_study()
    table = comparison_table({"studies/x/report.md": study}).splitlines()
    stats = summary(study)["finetune"]
    rows = {line.split("|")[4].strip(" `"): line for line in table[2:]}
    assert set(rows) == {"mlm", "mae-lm", "cotmae", "none"}
    assert "| control |" in rows["mlm"]
    diff = stats["mae-lm"]["r10@1"]["diff_to_control"]
    assert f"{diff['mean_difference']:+.3f}" in rows["mae-lm"] and "**✓**" in rows["mae-lm"]
    assert "**✓**" not in rows["cotmae"].split("|")[6]  # no detectable difference to the control
    assert f"{stats['none']['r10@1']['mean']:.3f}" in rows["none"]
