"""Statistics for controlled experiments (arms x seeds): t intervals over seeds, paired bootstrap over units.

* :func:`mean_ci` — mean and Student-t confidence interval of one metric over seeds.
* :func:`paired_bootstrap` — paired difference ``arm - control`` over evaluation units (queries,
  dialogue groups): units are resampled with replacement, giving a percentile interval and a
  two-sided p-value. With several seeds per arm, each arm's per-unit score is first averaged over its
  seeds, so the bootstrap measures the variation between units of the seed-averaged scores.
* :func:`paired_difference_by_units` — aligns two ``unit id -> score`` mappings (or one mapping per
  seed) on their ids and calls :func:`paired_bootstrap`.

All results are plain ``float``/``int``/``bool``/``list`` values, ready for JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

# Resample in chunks so that the [chunk, n_units] index matrix stays around this many entries.
_CHUNK_ELEMENTS = 4_000_000


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample std (ddof=1) and Student-t ``confidence`` interval of ``values`` (one per seed).

    Returns ``{mean, ci: [low, high], ci_low, ci_high, half_width, std, n, confidence, ci_defined}``.
    With a single value the interval and std are ``nan`` and ``ci_defined`` is ``False``.
    """
    _check_confidence(confidence)
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"mean_ci got non-finite values: {array.tolist()}")
    n = int(array.size)
    mean = float(array.mean())
    if n == 1:
        std = half = low = high = math.nan
    else:
        std = float(array.std(ddof=1))
        half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df=n - 1) * std / math.sqrt(n))
        low, high = mean - half, mean + half
    return {
        "mean": mean,
        "ci": [low, high],
        "ci_low": low,
        "ci_high": high,
        "half_width": half,
        "std": std,
        "n": n,
        "confidence": confidence,
        "ci_defined": n > 1,
    }


def paired_bootstrap(
    arm: np.ndarray,
    control: np.ndarray,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    unit_ids: Sequence[Any] | None = None,
    control_unit_ids: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Paired bootstrap of ``mean(arm - control)`` over units.

    ``arm`` and ``control`` are per-unit scores of shape ``[n_units]`` or ``[n_seeds, n_units]``,
    column ``j`` being the same unit on both sides (pass ``unit_ids``/``control_unit_ids`` to have
    that checked). With a seed axis, each side is averaged over its seeds first (the seed counts
    may differ); ``per_seed_differences`` then holds ``mean(arm[i] - control[i])`` for each seed
    row ``i`` (rows paired by index), or ``None`` when the seed counts differ.

    Units are resampled with replacement ``n_resamples`` times (``numpy`` generator seeded by
    ``seed``, so the result is deterministic). Returns ``{mean_difference, ci: [low, high], ci_low,
    ci_high, p_value, excludes_zero, n_units, n_resamples, confidence, arm_mean, control_mean,
    n_seeds_arm, n_seeds_control, per_seed_differences}``. The p-value is two-sided: the share of
    resamples on the other side of zero from the observed difference (ties count), doubled, clipped
    to 1; a value of 0 means below ``1 / n_resamples``.
    """
    _check_confidence(confidence)
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    arm_2d = _as_seed_unit_matrix(arm, "arm")
    control_2d = _as_seed_unit_matrix(control, "control")
    n_units = arm_2d.shape[1]
    if control_2d.shape[1] != n_units:
        raise ValueError(
            f"arm and control must score the same units: arm has {n_units} units, "
            f"control has {control_2d.shape[1]}"
        )
    if unit_ids is not None or control_unit_ids is not None:
        if unit_ids is None or control_unit_ids is None:
            raise ValueError("pass both unit_ids and control_unit_ids, or neither")
        if len(unit_ids) != n_units:
            raise ValueError(f"unit_ids has {len(unit_ids)} ids for {n_units} units")
        if list(unit_ids) != list(control_unit_ids):
            raise ValueError("arm and control unit ids differ (same ids in the same order are required)")

    arm_units = arm_2d.mean(axis=0)
    control_units = control_2d.mean(axis=0)
    differences = arm_units - control_units
    observed = float(differences.mean())

    rng = np.random.default_rng(seed)
    n_resamples = int(n_resamples)
    boot = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, _CHUNK_ELEMENTS // n_units)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        index = rng.integers(0, n_units, size=(stop - start, n_units))
        boot[start:stop] = differences[index].mean(axis=1)

    alpha = 1.0 - confidence
    low, high = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    # Resampled means of identical values can differ from them in the last bits: snap to the range.
    low, high = max(low, float(differences.min())), min(high, float(differences.max()))
    if observed > 0:
        p_value = 2.0 * float(np.mean(boot <= 0))
    elif observed < 0:
        p_value = 2.0 * float(np.mean(boot >= 0))
    else:
        p_value = 1.0
    per_seed = None
    if arm_2d.shape[0] == control_2d.shape[0]:
        per_seed = [float(v) for v in (arm_2d - control_2d).mean(axis=1)]
    return {
        "mean_difference": observed,
        "ci": [low, high],
        "ci_low": low,
        "ci_high": high,
        "p_value": min(1.0, p_value),
        "excludes_zero": bool(low > 0 or high < 0),
        "n_units": int(n_units),
        "n_resamples": n_resamples,
        "confidence": confidence,
        "arm_mean": float(arm_units.mean()),
        "control_mean": float(control_units.mean()),
        "n_seeds_arm": int(arm_2d.shape[0]),
        "n_seeds_control": int(control_2d.shape[0]),
        "per_seed_differences": per_seed,
    }


UnitScores = Mapping[Any, float] | Sequence[Mapping[Any, float]]


def paired_difference_by_units(
    arm_units: UnitScores,
    control_units: UnitScores,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`paired_bootstrap` on ``unit id -> score`` mappings (or a list of them, one per seed).

    Every mapping, on both sides and for every seed, must hold exactly the same unit ids (compared as
    strings, as they come back from JSON); otherwise a ``ValueError`` names some of the differences.
    Units are put in sorted id order. The result also carries ``unit_ids``.
    """
    arm_maps = _as_mapping_list(arm_units, "arm_units")
    control_maps = _as_mapping_list(control_units, "control_units")
    reference = {str(k) for k in arm_maps[0]}
    for label, maps in (("arm_units", arm_maps), ("control_units", control_maps)):
        for index, mapping in enumerate(maps):
            ids = {str(k) for k in mapping}
            if len(ids) != len(mapping):
                raise ValueError(f"{label}[{index}] has unit ids that collide once turned into strings")
            if ids != reference:
                missing, extra = sorted(reference - ids), sorted(ids - reference)
                raise ValueError(
                    f"unit ids differ: {label}[{index}] lacks {len(missing)} ids of arm_units[0] "
                    f"(e.g. {missing[:5]}) and has {len(extra)} others (e.g. {extra[:5]})"
                )
    if not reference:
        raise ValueError("no units to compare (empty mappings)")
    ids = sorted(reference)

    def matrix(maps: list[Mapping[Any, float]]) -> np.ndarray:
        rows = []
        for mapping in maps:
            as_str = {str(k): v for k, v in mapping.items()}
            rows.append([float(as_str[i]) for i in ids])
        return np.asarray(rows, dtype=np.float64)

    result = paired_bootstrap(
        matrix(arm_maps), matrix(control_maps), n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    result["unit_ids"] = ids
    return result


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _as_seed_unit_matrix(values: Any, label: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{label} must have shape [n_units] or [n_seeds, n_units], got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{label} is empty (shape {array.shape})")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{label} contains non-finite scores")
    return array


def _as_mapping_list(units: UnitScores, label: str) -> list[Mapping[Any, float]]:
    if isinstance(units, Mapping):
        return [units]
    maps = list(units)
    if not maps:
        raise ValueError(f"{label} is an empty list (one mapping per seed expected)")
    for index, mapping in enumerate(maps):
        if not isinstance(mapping, Mapping):
            raise ValueError(
                f"{label}[{index}] is a {type(mapping).__name__}, not a unit id -> score mapping"
            )
    return maps
