"""benchmarks/gpu_check.py --smoke: every section runs on the CPU and the one JSON has the agreed structure;
a budget too small for anything skips every unit and says why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.gpu_check import RECIPES, main  # noqa: E402

BUDGET_S = 900.0  # generous: a loaded 2-core machine can be 10x slower than its CPU time


def skipped_or_error(entry: dict) -> bool:
    return isinstance(entry.get("skipped"), str) and entry["skipped"] or "error" in entry


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory) -> tuple[dict, dict]:
    output = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    returned = main(["--smoke", "--output", str(output), "--budget_s", str(BUDGET_S)])
    return returned, json.loads(output.read_text(encoding="utf-8"))


def test_smoke_writes_one_json_with_every_section(smoke_report):
    returned, report = smoke_report
    assert report["smoke"] is True
    assert report["budget"]["elapsed_s"] <= BUDGET_S
    assert report["budget"]["skipped"] == []
    assert report["matmul"]["flops_per_s"] > 0
    assert report["flash_attention_2"] != "available"  # CPU: recorded, with the reason
    assert set(report["padding_free_supported"]) == set(RECIPES)
    for method in RECIPES:
        entry = report["training_steps"]["methods"][method]
        assert "error" not in entry, entry.get("error")
        assert entry["recipe"] == RECIPES[method]
        assert entry["padding_free_supported"] is True  # PretrainingConfig.padding_free
        assert entry["padding_free_supported"] == report["padding_free_supported"][method]
        assert entry["padded_batch"]["real_tokens"] > 0
        assert isinstance(entry["attention"]["flash_attention_2"]["skipped"], str)
        for name in ("sdpa_padded", "sdpa_padding_free"):
            variant = entry["variants"][name]
            assert "error" not in variant, variant.get("error")
            assert variant["median_step_s"] > 0
            assert variant["tokens_per_s"] > 0
            assert variant["flops_per_step"] > 0
            assert variant["mfu"] > 0
            assert variant["padding_free_requested"] is (name == "sdpa_padding_free")
            assert variant["padding_free_effective"] is (name == "sdpa_padding_free")
        memory = report["peak_memory"]["methods"][method]
        assert "error" not in memory, memory.get("error")
        assert memory["recipe"] == RECIPES[method]
        assert memory["per_device_train_batch_size"] > 0
        assert memory["peak_memory_gib"] is None and memory["memory_skipped"]  # CPU run
    encoding = report["encoding"]
    assert encoding["maeir_passages_per_s"] > 0
    assert encoding["sentence_transformers_fp32_passages_per_s"] > 0
    assert encoding["max_abs_difference_vs_sentence_transformers_fp32"] < 1e-3
    faiss = report["faiss"]
    assert faiss["faiss_cpu"]["queries_per_s"] > 0
    assert faiss["faiss_gpu"].get("queries_per_s", 0) > 0 or skipped_or_error(faiss["faiss_gpu"])
    assert returned["training_steps"].keys() == report["training_steps"].keys()


def test_a_budget_too_small_skips_every_unit_with_the_reason(tmp_path):
    output = tmp_path / "gpu_check.json"
    main(["--smoke", "--output", str(output), "--budget_s", "0"])
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["matmul"]["skipped"].startswith("budget")
    for method in RECIPES:
        assert report["training_steps"]["methods"][method]["skipped"].startswith("budget")
        assert report["peak_memory"]["methods"][method]["skipped"].startswith("budget")
    assert report["encoding"]["skipped"].startswith("budget")
    assert report["faiss"]["faiss_cpu"]["skipped"].startswith("budget")
    assert len(report["budget"]["skipped"]) >= 2 * len(RECIPES) + 2
