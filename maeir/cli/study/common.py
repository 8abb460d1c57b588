"""What the study tasks and the runner share: the named corpora, and the encoder of a run folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import AutoModel, AutoTokenizer

from ...data.corpus import load_text_corpus
from ...datasets.embedded.chitchat import chitchat_conversations, embedded_chitchat, split_ids
from ...io_utils import atomic_write_text
from ...modeling.backbone import resolve_backbone_path
from ...modeling.base import MaskedAutoEncoderPreTrainedModel


def corpus_texts(names: Sequence[str]) -> list[str]:
    """Texts of the named corpora: ``chitchat_train`` / ``chitchat_valid`` / ``chitchat_test`` (one text per
    conversation of that split of :func:`~maeir.datasets.embedded.chitchat.embedded_chitchat`, turns joined with [SEP]), ``wikipedia`` (the embedded passages) or a ``.jsonl``/``.txt`` path (its ``text`` fields/lines)."""
    texts: list[str] = []
    for name in names:
        if name == "chitchat_train":
            for line in open(embedded_chitchat().train_sessions, encoding="utf-8"):
                texts.append(" [SEP] ".join(json.loads(line)["turns"]))
        elif name in ("chitchat_valid", "chitchat_test"):
            conversations = chitchat_conversations()
            for cid in split_ids(list(conversations), 42)[name.split("_")[1]]:
                texts.append(" [SEP] ".join(conversations[cid]))
        elif name == "wikipedia":
            texts.extend(load_text_corpus(None)["text"])
        else:
            texts.extend(load_text_corpus(name)["text"])
    return texts


def write_corpus(names: Sequence[str], path: Path) -> Path:
    """The named corpora as one JSON-lines file of ``{"text"}`` (the base pre-training corpus)."""
    if not path.is_file():
        atomic_write_text(
            path, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in corpus_texts(names))
        )
    return path


def encoder_of(model):
    """The encoder of a maeir pre-training model, or ``model`` itself."""

    return model.encoder if isinstance(model, MaskedAutoEncoderPreTrainedModel) else model


def encoder_folder(model_path: str) -> str:
    """``model_path/encoder`` for a pre-training run folder, else ``model_path`` (a backbone folder or name)."""

    encoder = Path(model_path) / "encoder"
    return str(encoder) if encoder.is_dir() else resolve_backbone_path(model_path)


def load_encoder(model_path: str, encoder_overrides: dict[str, Any] | None = None):
    """The plain encoder (``AutoModel``) of a run folder or backbone, and its tokenizer.

    ``encoder_overrides`` change the backbone config before loading, as the drivers'
    ``--encoder_overrides`` do (e.g. ``{"num_hidden_layers": 2}``: the first two layers only)."""

    path = encoder_folder(model_path)
    encoder = AutoModel.from_pretrained(
        path,
        local_files_only=True,
        use_safetensors=True,
        attn_implementation="sdpa",
        **(encoder_overrides or {}),
    )
    return encoder, AutoTokenizer.from_pretrained(path, local_files_only=True)
