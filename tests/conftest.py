"""Shared fixtures: the real MiniLM tokenizer and tiny models built from its config (fast on CPU)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer  # noqa: E402

from maeir.modeling.backbone import resolve_backbone_path, tiny_config  # noqa: E402


@pytest.fixture(scope="session")
def minilm_path() -> str:
    return resolve_backbone_path("minilm")


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def tiny_encoder_config(minilm_path):
    return tiny_config(AutoConfig.from_pretrained(minilm_path))


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory, tiny_encoder_config, tokenizer) -> str:
    """A tiny BertForMaskedLM with the real MiniLM vocabulary, saved like a real backbone folder."""
    folder = tmp_path_factory.mktemp("tiny_backbone")
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(tiny_encoder_config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def sample_texts() -> list[str]:
    """Real sentences (gensim's Lee corpus, shipped on PyPI)."""
    from maeir.datasets.embedded import lee_corpus_path

    lines = [
        line.strip() for line in open(lee_corpus_path(), encoding="utf-8", errors="replace") if line.strip()
    ]
    return lines[:64]
