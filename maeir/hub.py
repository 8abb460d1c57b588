"""Publish any maeir run folder on the Hugging Face Hub: a pre-training run (its plain encoder, or the
full model), a fine-tuned retriever, a cross-encoder ranker or an MD2PR student.

:func:`build_upload_folder` assembles exactly what will be uploaded, in a folder of its own:

- ``what="encoder"`` (a pre-training run only): the files of ``RUN_DIR/encoder/`` plus an encoder
  model card;
- ``what="full"``: the model files of ``RUN_DIR`` (``encoder/`` included), without checkpoints,
  optimizer/scheduler/RNG states, ``training_args.bin``, staging folders, logs and hidden files,
  plus the run's model card (:mod:`maeir.cards`, the kind told from ``maeir_run.json``);
- ``what=None``: ``"encoder"`` when the run has an ``encoder/`` folder, else ``"full"``.

The card is rendered for the target repo id from ``RUN_DIR/maeir_run.json`` when present, else from
the arguments stored in ``RUN_DIR/README.md`` by :mod:`maeir.cards.pretraining`, else from that
README's metadata header (a run folder of another kind without ``maeir_run.json``: its README as is). Before anything is uploaded the folder is checked: weights are ``.safetensors`` only
(pickled ``.bin``/``.pt``/``.pkl`` files are refused), the config loads with ``AutoConfig``, and the
card's metadata passes :func:`maeir.cards.validate_card_metadata`. :func:`push` then creates the
repo and uploads the folder (or, with ``dry_run``, only prints what it would upload).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import huggingface_hub
import torch
import transformers
from huggingface_hub import ModelCard
from huggingface_hub.utils import HFValidationError, validate_repo_id
from safetensors import safe_open

from . import modeling  # noqa: F401  (registers maeir's configs with AutoConfig)
from .cards import (
    KINDS as PRETRAINING_KINDS,
)
from .cards import (
    card_args_from_card,
    card_data,
    card_for_run,
    card_kind,
    render_model_card,
    validate_card_metadata,
)
from .io_utils import STAGING_PREFIX, atomic_directory

WHATS = ("encoder", "full")
RUN_INFO_FILE = "maeir_run.json"
ENCODER_DIR = "encoder"
# Marks a folder built here, so that re-building may replace it (and nothing else); never uploaded.
UPLOAD_MARKER = ".maeir-upload"
# Skipped when copying a run: training state, logs, and folders that are not part of the model.
SKIP_DIR_PATTERNS = ("checkpoint-*", f"{STAGING_PREFIX}*", ".*", "runs", "logs", "wandb", "__pycache__")
SKIP_FILE_PATTERNS = (
    "optimizer.*", "scheduler.*", "scaler.*", "rng_state*.pth", "training_args.bin", "trainer_state.json",
    RUN_INFO_FILE, ".*", "*.tmp", "*.lock", "events.out.tfevents.*",
)  # fmt: skip
# Serialisations that can run code when loaded (pickle) or that are not safetensors weights.
REFUSED_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".h5", ".msgpack")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model")


class HubUploadError(ValueError):
    """A run folder that cannot be published as it is."""


# ---------------------------------------------------------------------------------------------
# Which files


def _skipped(name: str, is_dir: bool) -> bool:
    patterns = SKIP_DIR_PATTERNS if is_dir else SKIP_FILE_PATTERNS
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def upload_files(
    run_dir: str | os.PathLike, what: str, exclude: Sequence[str | os.PathLike] = ()
) -> list[tuple[Path, str]]:
    """``(source, path_in_repo)`` of the model files of a run to upload (the card not included)."""
    what = resolve_what(run_dir, what)
    if what not in WHATS:
        raise HubUploadError(f"what must be one of {WHATS}, got {what!r}")
    run_dir = Path(run_dir)
    root = run_dir / ENCODER_DIR if what == "encoder" else run_dir
    if not root.is_dir():
        raise HubUploadError(
            f"{root}: not found (a run folder written by maeir has an '{ENCODER_DIR}/' sub-folder)"
        )
    excluded = {Path(p).resolve() for p in exclude}
    files: list[tuple[Path, str]] = []
    for folder, dirnames, filenames in os.walk(root):
        folder_path = Path(folder)
        dirnames[:] = sorted(
            d for d in dirnames if not _skipped(d, True) and (folder_path / d).resolve() not in excluded
        )
        for name in sorted(filenames):
            if _skipped(name, False):
                continue
            source = folder_path / name
            rel = source.relative_to(root).as_posix()
            if rel == "README.md" or rel == f"{ENCODER_DIR}/README.md":
                continue  # the card is rendered for the target repo
            files.append((source, rel))
    return files


def resolve_what(run_dir: str | os.PathLike, what: str | None) -> str:
    """``what`` as given, or (None) ``"encoder"`` for a run with an ``encoder/`` folder, else ``"full"``."""
    if what is None:
        return "encoder" if (Path(run_dir) / ENCODER_DIR).is_dir() else "full"
    return what


def _check_safetensors(path: Path) -> None:
    """Read the safetensors header: 8-byte little-endian length, then a JSON object."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(handle.read(length))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (OSError, ValueError, struct.error) as err:
        raise HubUploadError(f"{path}: not a valid .safetensors file ({err})") from None


def check_weight_files(files: Sequence[tuple[Path, str]]) -> None:
    """Refuse pickled or non-safetensors weights; require safetensors weights with valid headers."""
    refused = [rel for _source, rel in files if rel.lower().endswith(REFUSED_SUFFIXES)]
    if refused:
        raise HubUploadError(
            f"refusing to upload {', '.join(refused)}: only .safetensors weights are published (pickle files "
            "can run code when loaded); re-save the model with save_pretrained(..., safe_serialization=True) "
            "and delete the .bin/.pt files"
        )
    weights = [(source, rel) for source, rel in files if rel.endswith(".safetensors")]
    if not any("/" not in rel for _source, rel in weights):
        raise HubUploadError("no .safetensors weights at the top of the folder to upload")
    for source, _rel in weights:
        _check_safetensors(source)
    names = {rel for _source, rel in files}
    for source, rel in files:
        if rel.endswith(".safetensors.index.json"):
            index = json.loads(source.read_text(encoding="utf-8"))
            prefix = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
            missing = sorted({prefix + shard for shard in index.get("weight_map", {}).values()} - names)
            if missing:
                raise HubUploadError(f"{rel} names shards that are missing: {', '.join(missing)}")


def check_config_loads(folder: str | os.PathLike) -> Any:
    """Load ``folder/config.json`` with ``AutoConfig`` (maeir's architectures registered); return it."""

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise HubUploadError(f"{folder}: no config.json")
    try:
        return transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # any failure means users could not load it either
        raise HubUploadError(
            f"{folder}/config.json does not load with transformers.AutoConfig: {err}"
        ) from None


def check_model_loads(folder: str | os.PathLike) -> None:
    """Load ``folder`` exactly as users will: read every tensor of every safetensors file (truncated
    or non-finite weights are refused), then ``from_pretrained`` with the class its ``config.json``
    names; refuse weights that do not fit that config (another architecture's config.json, tensors
    missing, unexpected or of another shape), naming the tensors."""

    folder = Path(folder)
    config = check_config_loads(folder)
    weights = sorted(folder.glob("*.safetensors"))
    stored: set[str] = set()
    for path in weights:
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():
                    tensor = handle.get_tensor(name)
                    stored.add(name)
                    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                        raise HubUploadError(f"{path}: tensor {name!r} holds NaN or infinite values")
        except HubUploadError:
            raise
        except Exception as err:  # noqa: BLE001 - a file that does not read is damaged
            raise HubUploadError(f"{path}: the weights do not read ({err})") from None
    architectures = list(getattr(config, "architectures", None) or [])
    model_class = next(
        (getattr(module, name) for name in architectures for module in (transformers, modeling)
         if hasattr(module, name)),
        transformers.AutoModel,
    )  # fmt: skip
    try:
        model, info = model_class.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True, output_loading_info=True
        )
    except Exception as err:  # noqa: BLE001 - any failure means users could not load it either
        raise HubUploadError(
            f"{folder} does not load with {model_class.__name__}.from_pretrained: {err}"
        ) from None
    problems = {
        "missing from the weights": sorted(k for k in info.get("missing_keys", []) if "position_ids" not in k),
        "in the weights but not in the model": sorted(info.get("unexpected_keys", [])),
        "of another shape": sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", [])),
    }  # fmt: skip
    problems = {what: names for what, names in problems.items() if names}
    if problems:
        detail = "; ".join(f"{len(names)} tensors {what}: {names[:5]}" for what, names in problems.items())
        raise HubUploadError(
            f"{folder}: the weights do not fit config.json ({type(config).__name__}, {model_class.__name__}): {detail}"
        )
    del model


# ---------------------------------------------------------------------------------------------
# The card


def _load_card(path: Path) -> ModelCard | None:
    if not path.is_file():
        return None
    try:
        return ModelCard.load(path)
    except (ValueError, OSError) as err:
        raise HubUploadError(f"{path}: unreadable model card ({err})") from None


def _args_from_metadata(card: ModelCard) -> dict[str, Any]:
    """Render arguments recovered from a card's metadata header (a card not written by maeir)."""
    data = card.data.to_dict()
    tags = [t for t in data.get("tags") or [] if isinstance(t, str)]
    generic = {
        "maeir",
        "masked-autoencoder",
        "dense-retrieval",
        "pretraining",
        "fill-mask",
        "feature-extraction",
        "text-embeddings",
    }
    method = next((t for t in tags if t not in generic and not t.startswith("arxiv:")), "maeir")
    arxiv = next((t.split(":", 1)[1] for t in tags if t.startswith("arxiv:")), None)
    metrics = None
    if card.data.eval_results:
        metrics = {r.metric_name or r.metric_type: r.metric_value for r in card.data.eval_results}
    base = data.get("base_model")
    return {
        "method": method,
        "method_title": method,
        "paper": {"title": method, "arxiv": arxiv} if arxiv else None,
        "base_model": base if isinstance(base, str) else "",
        "datasets": data.get("datasets") or [],
        "dataset_description": "",
        "hyperparameters": {},
        "losses": {},
        "metrics": metrics,
        "license": data.get("license") or "apache-2.0",
    }


def run_card(run_dir: str | os.PathLike, what: str, repo_id: str | None = None) -> ModelCard:
    """The card to publish with ``what`` of ``run_dir``, rendered for ``repo_id``."""
    run_dir = Path(run_dir)
    what = resolve_what(run_dir, what)
    kind = "encoder" if what == "encoder" else "pretraining"
    encoder_subfolder = ENCODER_DIR if (what == "full" and (run_dir / ENCODER_DIR).is_dir()) else None
    info_path = run_dir / RUN_INFO_FILE
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as err:
            raise HubUploadError(f"{info_path}: not valid JSON ({err})") from None
        if not isinstance(info, dict):
            raise HubUploadError(f"{info_path}: expected a JSON object")
        if card_kind(info) not in PRETRAINING_KINDS:  # a retriever, ranker or MD2PR run
            if what != "full":
                raise HubUploadError(f"{run_dir} is a {card_kind(info)} run: publish it with what='full'")
            return ModelCard(card_data(info, model_id=repo_id).render())
        info = {**info, "encoder_subfolder": encoder_subfolder}
        return card_for_run(info, kind, model_id=repo_id)
    readmes = [run_dir / "README.md"] + ([run_dir / ENCODER_DIR / "README.md"] if what == "encoder" else [])
    cards = [card for card in (_load_card(path) for path in readmes) if card is not None]
    if not cards:
        raise HubUploadError(
            f"{run_dir}: neither {RUN_INFO_FILE} nor README.md: nothing to build the model card from"
        )
    for card in cards:
        args = card_args_from_card(card)
        if args:
            args = {**args, "encoder_subfolder": encoder_subfolder}
            return card_for_run(args, kind, model_id=repo_id)
    if what == "full" and not (run_dir / ENCODER_DIR).is_dir():
        return cards[0]  # not a pre-training run, and not written by maeir: its own card as it is
    args = _args_from_metadata(cards[0])
    return render_model_card(
        kind=kind, model_id=repo_id or run_dir.name, encoder_subfolder=encoder_subfolder, **args
    )


# ---------------------------------------------------------------------------------------------
# Building and pushing


def _is_within(path: Path, other: Path) -> bool:
    try:
        path.resolve().relative_to(other.resolve())
        return True
    except ValueError:
        return False


def build_upload_folder(
    run_dir: str | os.PathLike, what: str, out_dir: str | os.PathLike, *, repo_id: str | None = None
) -> Path:
    """Assemble in ``out_dir`` exactly the files to upload for ``what`` of ``run_dir``; return ``out_dir``.

    ``out_dir`` is replaced as a whole (atomically) if it is a folder built here before; an existing
    folder that is not refuses the build. Raises :class:`HubUploadError` or
    :class:`~maeir.cards.ModelCardError` when the run cannot be published as it is.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not run_dir.is_dir():
        raise HubUploadError(f"{run_dir}: run folder not found")
    if _is_within(run_dir, out_dir):
        raise HubUploadError(f"the upload folder {out_dir} must not be the run folder or contain it")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / UPLOAD_MARKER).is_file():
        raise HubUploadError(
            f"{out_dir} exists and was not built by maeir: choose an empty or new --staging_dir"
        )

    what = resolve_what(run_dir, what)
    files = upload_files(run_dir, what, exclude=[out_dir])
    check_weight_files(files)
    card = run_card(run_dir, what, repo_id=repo_id)
    validate_card_metadata(card)
    with atomic_directory(out_dir) as staging:
        for source, rel in files:
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        (staging / "README.md").write_text(card.content, encoding="utf-8")
        (staging / UPLOAD_MARKER).write_text(f"built from {run_dir.resolve()} ({what})\n", encoding="utf-8")
        check_model_loads(staging)
        if what == "full" and (staging / ENCODER_DIR / "config.json").is_file():
            check_model_loads(staging / ENCODER_DIR)
    return out_dir


def _size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def describe_upload_folder(folder: str | os.PathLike) -> str:
    """The files of an upload folder with their sizes, one a line, and the total."""
    folder = Path(folder)
    rows, total = [], 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == UPLOAD_MARKER:
            continue
        size = path.stat().st_size
        total += size
        rows.append(f"  {_size(size):>10}  {rel}")
    missing_tokenizer = not any((folder / name).is_file() for name in TOKENIZER_FILES)
    lines = [f"{folder}:", *rows, f"  {_size(total):>10}  total ({len(rows)} files)"]
    if missing_tokenizer:
        lines.append("  warning: no tokenizer files: users will need the base model's tokenizer")
    return "\n".join(lines)


def default_staging_dir(repo_id: str, what: str) -> Path:
    """``$TMPDIR/maeir-hub/<owner>--<name>-<what>``."""
    return Path(tempfile.gettempdir()) / "maeir-hub" / f"{repo_id.replace('/', '--')}-{what}"


def push(
    run_dir: str | os.PathLike,
    repo_id: str,
    *,
    what: str | None = "encoder",
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    staging_dir: str | os.PathLike | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> Path:
    """Build and check the upload folder of ``run_dir``, print it, and upload it to ``repo_id``.

    With ``dry_run`` nothing touches the network. Returns the upload folder.
    """
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HubUploadError(f"--repo_id {repo_id!r}: {err}") from None
    what = resolve_what(run_dir, what)
    out_dir = Path(staging_dir) if staging_dir is not None else default_staging_dir(repo_id, what)
    folder = build_upload_folder(run_dir, what, out_dir, repo_id=repo_id)
    print(describe_upload_folder(folder))
    target = f"{repo_id}@{revision}" if revision else repo_id
    if dry_run:
        label = "encoder" if what == "encoder" else "full model"
        print(
            f"dry run: would upload the {label} of {run_dir} to https://huggingface.co/{target}; nothing uploaded"
        )
        return folder

    api = huggingface_hub.HfApi(token=token)  # looked up at call time (tests replace it)
    api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        revision=revision,
        commit_message=commit_message or f"Upload {what} from maeir",
        ignore_patterns=[UPLOAD_MARKER],
    )
    print(f"uploaded: {getattr(info, 'commit_url', info)}")
    return folder
