"""kill -9 at random moments (during saves and rotations too) of pre-training, contrastive and
response-selection runs: every ``checkpoint-*`` stays complete and the resumed run ends bit-identical
to an uninterrupted one. A few trials per kind here; ``benchmarks/kill_resume.py`` runs many."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.kill_resume import trials  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pretrain", "contrastive", "response_selection"])
def test_killed_runs_leave_complete_checkpoints_and_resume_exactly(kind, tmp_path):
    result = trials(kind, 3, tmp_path, seed=1)
    assert result["damaged_checkpoints"] == 0, [r["damaged"] for r in result["records"]]
    assert result["non_identical_resumes"] == 0
