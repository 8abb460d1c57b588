"""Bad input over every reader, config and loader: refused (never a silent success), with a message that
names the file, line and field or the command-line argument, and nothing half-written left behind.

Each case builds its input in ``tmp_path`` and returns ``(call, expected)``: ``call`` runs a reader, a
loader or a driver through :func:`maeir.cli.run_cli` (as the scripts do); ``expected`` are the
substrings the message must hold (``{tmp}`` stands for ``tmp_path``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from maeir.cli import run_cli
from maeir.errors import InputError

REPO = Path(__file__).resolve().parents[1]
CASES: dict[str, Callable] = {}


def case(name: str):
    def register(setup: Callable) -> Callable:
        assert name not in CASES, name
        CASES[name] = setup
        return setup

    return register


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


# ---------------------------------------------------------------------------------------------
# shared inputs


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_backbone_dir, sample_texts) -> dict:
    root = tmp_path_factory.mktemp("bad_input_ctx")
    corpus = write(root / "corpus.txt", "\n".join(sample_texts[:16]) + "\n")
    dialogues = write(
        root / "dialogues.txt", "".join(f"1\thello {i}\tfine {i}\n0\thello {i}\tno\n" for i in range(8))
    )
    from maeir.cli.pretrain import main

    run = root / "run"
    argv = [str(REPO / "configs/mae_lm_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir, "--train_file", str(corpus),
            "--output_dir", str(run), "--max_steps", "1", "--max_seq_length", "32", "--save_strategy", "no",
            "--per_device_train_batch_size", "2", "--disable_tqdm", "true", "--report_to", "none"]  # fmt: skip
    assert run_cli(main, argv) == 0
    return {
        "backbone": tiny_backbone_dir,
        "corpus": str(corpus),
        "dialogues": str(dialogues),
        "run": str(run),
    }


def pretrain_argv(ctx, tmp, *extra, config: str | None = "configs/mae_lm_cpu.yaml") -> list[str]:
    head = [str(REPO / config)] if config else []
    return [*head, "--model_name_or_path", ctx["backbone"], "--train_file", ctx["corpus"],
            "--output_dir", str(tmp / "out"), "--max_steps", "1", "--max_seq_length", "32",
            "--per_device_train_batch_size", "2", "--disable_tqdm", "true", "--report_to", "none", *extra]  # fmt: skip


def pretrain(ctx, tmp, *extra, config: str | None = "configs/mae_lm_cpu.yaml"):
    from maeir.cli.pretrain import main

    return lambda: run_cli(main, pretrain_argv(ctx, tmp, *extra, config=config))


def with_config(ctx, tmp, text: str, *extra, name: str = "bad.yaml"):
    """A pre-training run whose config file is ``text`` (placed before the CLI arguments)."""
    from maeir.cli.pretrain import main

    path = write(tmp / name, text)
    argv = [str(path), "--model_name_or_path", ctx["backbone"], "--train_file", ctx["corpus"],
            "--output_dir", str(tmp / "out"), "--disable_tqdm", "true", "--report_to", "none", *extra]  # fmt: skip
    return lambda: run_cli(main, argv), str(path)


GOOD = "method: mae_lm\nlearning_rate: 1.0e-4\n"


# ---------------------------------------------------------------------------------------------
# A. config files: file:line:field


def _config_case(name: str, text: str, line: int, field: str, *also: str):
    @case(f"config-{name}")
    def setup(ctx, tmp):
        call, path = with_config(ctx, tmp, text)
        key = f"method_config.{field}" if name.startswith("method-") and "." not in field else field
        return call, [f"{path}:{line}", f"'{key}'", *also]


_config_case("unknown-key", GOOD + "lerning_rate: 1\n", 3, "lerning_rate", "did you mean 'learning_rate'")
_config_case("unknown-key-2", "method: mae_lm\nbogus_field: 3\n", 2, "bogus_field", "unknown field")
_config_case("bad-int", GOOD + "max_steps: abc\n", 3, "max_steps", "invalid value")
_config_case("bad-float", GOOD + "weight_decay: heavy\n", 3, "weight_decay")
_config_case("bad-bool", GOOD + "pack_sequences: maybe\n", 3, "pack_sequences")
_config_case("bad-choice", GOOD + "lr_scheduler_type: nope\n", 3, "lr_scheduler_type", "choose from")
_config_case("duplicate-key", GOOD + "method: mlm\n", 3, "method", "duplicate")
_config_case("negative-lr", "method: mae_lm\nlearning_rate: -1.0\n", 2, "learning_rate", "must be > 0")
_config_case("zero-lr", "method: mae_lm\nlearning_rate: 0\n", 2, "learning_rate", "must be > 0")
_config_case("zero-batch", GOOD + "per_device_train_batch_size: 0\n", 3, "per_device_train_batch_size")
_config_case("zero-eval-batch", GOOD + "per_device_eval_batch_size: 0\n", 3, "per_device_eval_batch_size")
_config_case("negative-save-limit", GOOD + "save_total_limit: -1\n", 3, "save_total_limit", ">= 1")
_config_case("negative-warmup", GOOD + "warmup_steps: -3\n", 3, "warmup_steps")
_config_case("negative-decay", GOOD + "weight_decay: -0.5\n", 3, "weight_decay")
_config_case("negative-grad-norm", GOOD + "max_grad_norm: -1.0\n", 3, "max_grad_norm")
_config_case("zero-accumulation", GOOD + "gradient_accumulation_steps: 0\n", 3, "gradient_accumulation_steps")
_config_case("zero-save-limit", GOOD + "save_total_limit: 0\n", 3, "save_total_limit")
_config_case("negative-seed", GOOD + "seed: -1\n", 3, "seed")
_config_case("huge-seed", GOOD + "seed: 99999999999\n", 3, "seed")
_config_case("negative-max-steps", "method: mae_lm\nmax_steps: -5\n", 2, "max_steps")
_config_case("zero-epochs", GOOD + "num_train_epochs: 0\n", 3, "num_train_epochs")
_config_case("negative-workers", GOOD + "dataloader_num_workers: -1\n", 3, "dataloader_num_workers")
_config_case("max-train-samples", GOOD + "max_train_samples: 0\n", 3, "max_train_samples")
_config_case(
    "method-unknown-field", "method: mae_lm\nmethod_config:\n  mask_rat: 0.3\n", 3, "mask_rat", "unknown"
)
_config_case(
    "method-string-rate",
    "method: mae_lm\nmethod_config:\n  mask_rate: high\n",
    3,
    "mask_rate",
    "expected float",
)
_config_case(
    "method-rate-range", "method: mae_lm\nmethod_config:\n  mask_rate: 1.5\n", 3, "mask_rate", "(0, 1)"
)
_config_case("method-bool-type", "method: mae_lm\nmethod_config:\n  mask_rate: 0.3\n  whole_word_mask: 3\n", 4,
             "method_config.whole_word_mask", "expected bool")  # fmt: skip
_config_case(
    "method-int-type",
    "method: mae_lm\nmethod_config:\n  decoder_layers: 1.5\n",
    3,
    "decoder_layers",
    "expected int",
)
_config_case(
    "method-int-range",
    "method: mae_lm\nmethod_config:\n  decoder_layers: 0\n",
    3,
    "method_config.decoder_layers",
)
_config_case(
    "method-dial-rate", "method: dial_mae\nmethod_config:\n  decoder_mask_rate: 0\n", 3, "decoder_mask_rate"
)
_config_case(
    "method-bool-string", "method: mlm\nmethod_config:\n  whole_word_mask: yes please\n", 3, "whole_word_mask"
)


@case("config-invalid-yaml")
def _(ctx, tmp):
    call, path = with_config(ctx, tmp, "method: mae_lm\nlearning_rate: [1,\n")
    return call, [path, "invalid YAML"]


@case("config-yaml-tab")
def _(ctx, tmp):
    call, path = with_config(ctx, tmp, "method: mae_lm\n\tlearning_rate: 1\n")
    return call, [f"{path}:2", "invalid YAML"]


@case("config-not-a-mapping")
def _(ctx, tmp):
    call, path = with_config(ctx, tmp, "- a\n- b\n")
    return call, [f"{path}:1", "mapping"]


@case("config-invalid-json")
def _(ctx, tmp):
    call, path = with_config(ctx, tmp, '{"method": "mae_lm",\n "x": }\n', name="bad.json")
    return call, [f"{path}:2", "invalid JSON"]


@case("config-json-array")
def _(ctx, tmp):
    call, path = with_config(ctx, tmp, "[1, 2]\n", name="bad.json")
    return call, [f"{path}:1", "mapping"]


@case("config-json-unknown")
def _(ctx, tmp):
    call, path = with_config(ctx, tmp, '{\n  "method": "mae_lm",\n  "nope": 1\n}\n', name="bad.json")
    return call, [f"{path}:3", "'nope'"]


@case("config-not-utf8")
def _(ctx, tmp):
    from maeir.cli.pretrain import main

    path = write(tmp / "bad.yaml", b"method: mae_lm\nx: \xff\xfe\n")
    return lambda: run_cli(main, [str(path), *pretrain_argv(ctx, tmp, config=None)]), [f"{path}:2", "UTF-8"]


@case("config-missing-file")
def _(ctx, tmp):
    from maeir.cli.pretrain import main

    path = tmp / "nowhere.yaml"
    return lambda: run_cli(main, [str(path), *pretrain_argv(ctx, tmp, config=None)]), [str(path), "not found"]


# ---------------------------------------------------------------------------------------------
# B. command-line values: the argument's name


def _cli_case(name: str, args: list[str], *expected: str, exit_status: int = 2):
    @case(f"cli-{name}")
    def setup(ctx, tmp):
        return pretrain(ctx, tmp, *args), list(expected)


_cli_case("negative-lr", ["--learning_rate", "-1"], "argument --learning_rate", "must be > 0")
_cli_case("nan-lr", ["--learning_rate", "nan"], "argument --learning_rate", "nan")
_cli_case("zero-batch", ["--per_device_train_batch_size", "0"], "argument --per_device_train_batch_size")
_cli_case("short-seq", ["--max_seq_length", "1"], "argument --max_seq_length", ">= 2")
_cli_case("bad-int", ["--max_steps", "abc"], "argument --max_steps", "invalid int value")
_cli_case("bad-float", ["--learning_rate", "fast"], "argument --learning_rate")
_cli_case("bad-bool", ["--pack_sequences", "maybe"], "argument --pack_sequences")
_cli_case("unknown-flag", ["--no_such_flag", "1"], "--no_such_flag")
_cli_case("bad-choice", ["--lr_scheduler_type", "nope"], "argument --lr_scheduler_type")
_cli_case("zero-save-limit", ["--save_total_limit", "0"], "argument --save_total_limit")
_cli_case("negative-decay", ["--weight_decay", "-0.1"], "argument --weight_decay")
_cli_case("negative-seed", ["--seed", "-3"], "argument --seed")
_cli_case("method-string-rate", ["--method_config", "mask_rate=abc"], "argument --method_config",
          "'mask_rate'", "expected float")  # fmt: skip
_cli_case("method-unknown", ["--method_config", "nope=1"], "argument --method_config", "'nope'")
_cli_case(
    "method-bad-json", ["--method_config", '{"mask_rate": '], "argument --method_config", "invalid JSON"
)
_cli_case("method-no-value", ["--method_config", "mask_rate"], "argument --method_config", "key=value")
_cli_case("method-not-mapping", ["--method_config", "[1, 2]"], "argument --method_config")
_cli_case("method-range", ["--method_config", "mask_rate=0"], "argument --method_config", "'mask_rate'")
_cli_case("unknown-method", ["--method", "bert_is_all"], "bert_is_all")
_cli_case("packing-unsupported", ["--method", "dial_mae", "--pack_sequences", "true"], "pack_sequences")


@case("cli-overrides-file-line")
def _(ctx, tmp):
    """A value from the command line is reported as the argument even when the file sets it too."""
    call, _ = with_config(ctx, tmp, "method: mae_lm\nlearning_rate: 0.001\n", "--learning_rate", "-2")
    return call, ["argument --learning_rate"]


# ---------------------------------------------------------------------------------------------
# C. pre-training corpora


def _corpus_case(name: str, filename: str, content: str | bytes, line: int | None, *also: str):
    @case(f"corpus-{name}")
    def setup(ctx, tmp):
        from maeir.data.corpus import load_text_corpus

        path = write(tmp / filename, content)
        return (lambda: load_text_corpus(str(path))), [str(path) + (f":{line}" if line else ""), *also]


_corpus_case("bad-json", "c.jsonl", '{"text": "a"}\n{"text": \n', 2, "not valid JSON")
_corpus_case("json-array", "c.jsonl", '[\n{"text": "a"}\n]\n', 1, "JSON Lines")
_corpus_case("not-object", "c.jsonl", '{"text": "a"}\n[1, 2]\n', 2, "JSON object")
_corpus_case("missing-field", "c.jsonl", '{"text": "a"}\n{"body": "b"}\n', 2, "'text'", "missing")
_corpus_case("number-text", "c.jsonl", '{"text": 3}\n', 1, "'text'", "string")
_corpus_case("empty-text", "c.jsonl", '{"text": "a"}\n{"text": "  "}\n', 2, "'text'")
_corpus_case("nan", "c.jsonl", '{"text": "a", "x": NaN}\n', 1, "NaN")
_corpus_case("bad-utf8-txt", "c.txt", b"good line\nbad \xff\xfe line\n", 2, "UTF-8")
_corpus_case("bad-utf8-jsonl", "c.jsonl", b'{"text": "ok"}\n{"text": "\xff"}\n', 2, "UTF-8")
_corpus_case("empty-file", "empty.txt", b"\n\n", None, "empty")


@case("corpus-missing-file-driver")
def _(ctx, tmp):
    return pretrain(ctx, tmp, "--train_file", str(tmp / "none.txt")), [str(tmp / "none.txt")]


@case("corpus-nul-bytes")
def _(ctx, tmp):
    path = write(tmp / "nul.txt", b"\x00\x00\x00\x00\n" * 20)
    return pretrain(ctx, tmp, "--train_file", str(path)), [str(path), "no real token"]


@case("corpus-control-chars")
def _(ctx, tmp):
    path = write(tmp / "ctrl.txt", "\x01\x02\x03\x04\x05\n" * 20)
    return pretrain(ctx, tmp, "--train_file", str(path)), [str(path), "no real token"]


@case("max-seq-length-over-positions")
def _(ctx, tmp):
    return pretrain(ctx, tmp, "--max_seq_length", "100000"), [
        "argument --max_seq_length",
        "position embeddings",
    ]


@case("max-seq-length-over-positions-file")
def _(ctx, tmp):
    call, path = with_config(ctx, tmp, "method: mae_lm\n", "--max_seq_length", "100000")
    return call, ["argument --max_seq_length", "512 position embeddings"]


@case("dial-context-over-positions")
def _(ctx, tmp):
    from maeir.cli.pretrain import main

    sessions = write(tmp / "s.jsonl", json.dumps({"turns": ["hi", "there", "you"]}) + "\n")
    argv = pretrain_argv(ctx, tmp, "--method", "dial_mae", "--train_file", str(sessions), "--method_config",
                         "context_max_length=4096", config=None)  # fmt: skip
    return lambda: run_cli(main, argv), ["argument --method_config", "'context_max_length'", "position"]


# ---------------------------------------------------------------------------------------------
# D. BEIR folders


def beir(tmp: Path, corpus=None, queries=None, qrels=None) -> Path:
    folder = tmp / "beir"
    write(folder / "corpus.jsonl", corpus if corpus is not None else
          '{"_id": "d1", "text": "alpha"}\n{"_id": "d2", "text": "beta"}\n')  # fmt: skip
    write(folder / "queries.jsonl", queries if queries is not None else '{"_id": "q1", "text": "a"}\n')
    write(
        folder / "qrels" / "test.tsv",
        qrels if qrels is not None else "query-id\tcorpus-id\tscore\nq1\td1\t1\n",
    )
    return folder


def _beir_case(name: str, file: str, line: int | None, *also: str, **parts):
    @case(f"beir-{name}")
    def setup(ctx, tmp):
        from maeir.data.retrieval import load_beir

        folder = beir(tmp, **parts)
        path = folder / file
        return (lambda: load_beir(folder, "test")), [str(path) + (f":{line}" if line else ""), *also]


_beir_case("corpus-bad-json", "corpus.jsonl", 2, "JSON", corpus='{"_id": "d1", "text": "a"}\n{"_id": \n')
_beir_case("corpus-no-id", "corpus.jsonl", 1, "'_id'", corpus='{"text": "a"}\n')
_beir_case(
    "corpus-dup-id",
    "corpus.jsonl",
    2,
    "duplicate",
    corpus='{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n',
)
_beir_case("corpus-text-number", "corpus.jsonl", 1, "'text'", corpus='{"_id": "d1", "text": 5}\n')
_beir_case("corpus-all-empty", "corpus.jsonl", None, "all 2 documents are empty",
           corpus='{"_id": "d1", "text": ""}\n{"_id": "d2", "text": " ", "title": ""}\n')  # fmt: skip
_beir_case("corpus-no-documents", "corpus.jsonl", None, "no documents", corpus="\n")
_beir_case(
    "queries-dup",
    "queries.jsonl",
    2,
    "duplicate",
    queries='{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n',
)
_beir_case("queries-no-text", "queries.jsonl", 1, "'text'", queries='{"_id": "q1"}\n')
_beir_case("queries-bad-utf8", "queries.jsonl", 1, "UTF-8", queries=b'{"_id": "q1", "text": "\xff"}\n')
_beir_case("qrels-columns", "qrels/test.tsv", 2, "columns", qrels="query-id\tcorpus-id\tscore\nq1 d1\n")
_beir_case("qrels-score", "qrels/test.tsv", 2, "'score'", qrels="query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
_beir_case(
    "qrels-fraction", "qrels/test.tsv", 2, "integer", qrels="query-id\tcorpus-id\tscore\nq1\td1\t0.5\n"
)
_beir_case(
    "qrels-empty-query", "qrels/test.tsv", 2, "'query-id'", qrels="query-id\tcorpus-id\tscore\n \td1\t1\n"
)
_beir_case("qrels-unknown-query", "qrels/test.tsv", 2, "'query-id'", "not in queries.jsonl",
           qrels="query-id\tcorpus-id\tscore\nq9\td1\t1\n")  # fmt: skip
_beir_case("qrels-unknown-doc", "qrels/test.tsv", 2, "'corpus-id'", "1 of 2 judgements", "--allow_missing_documents",
           qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td9\t1\n")  # fmt: skip
_beir_case("qrels-empty", "qrels/test.tsv", None, "no judgements", qrels="query-id\tcorpus-id\tscore\n")


@case("beir-missing-split")
def _(ctx, tmp):
    from maeir.data.retrieval import load_beir

    folder = beir(tmp)
    return (lambda: load_beir(folder, "dev")), [str(folder / "qrels" / "dev.tsv"), "not found"]


@case("beir-missing-folder")
def _(ctx, tmp):
    from maeir.data.retrieval import load_beir

    return (lambda: load_beir(tmp / "nothing")), [str(tmp / "nothing"), "not found"]


@case("beir-evaluate-unknown-doc")
def _(ctx, tmp):
    from maeir.cli.evaluate_retrieval import main

    folder = beir(tmp, qrels="query-id\tcorpus-id\tscore\nq1\td7\t1\n")
    argv = ["--model", ctx["backbone"], "--beir", str(folder), "--output_dir", str(tmp / "out")]
    return (lambda: run_cli(main, argv)), [str(folder / "qrels" / "test.tsv") + ":2", "never be retrieved"]


@case("beir-evaluate-missing-folder")
def _(ctx, tmp):
    from maeir.cli.evaluate_retrieval import main

    argv = ["--model", ctx["backbone"], "--beir", str(tmp / "nope"), "--output_dir", str(tmp / "out")]
    return (lambda: run_cli(main, argv)), [str(tmp / "nope")]


@case("beir-finetune-all-empty")
def _(ctx, tmp):
    from maeir.cli.finetune_retriever import main

    folder = beir(tmp, corpus='{"_id": "d1", "text": ""}\n', qrels="q\tc\ts\nq1\td1\t1\n")
    argv = [str(REPO / "configs/retriever_cpu.yaml"), "--model_name_or_path", ctx["backbone"], "--beir", str(folder),
            "--train_split", "test", "--output_dir", str(tmp / "out"), "--max_steps", "1", "--report_to", "none"]  # fmt: skip
    return (lambda: run_cli(main, argv)), [str(folder / "corpus.jsonl"), "empty"]


def test_missing_documents_warn_with_counts_under_the_flag(tmp_path, caplog):
    from maeir.data.retrieval import load_beir

    folder = beir(tmp_path, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td8\t1\nq1\td9\t1\n")
    data = load_beir(folder, "test", allow_missing_documents=True)
    assert data.info["judged_documents_not_in_corpus"] == 2
    assert "2 of 3 judgements" in caplog.text and "2 distinct" in caplog.text


# ---------------------------------------------------------------------------------------------
# E. training JSONL, response-selection files


def _jsonl_case(name: str, content: str, line: int, *also: str):
    @case(f"train-jsonl-{name}")
    def setup(ctx, tmp):
        from maeir.data.retrieval import read_training_jsonl

        path = write(tmp / "train.jsonl", content)
        return (lambda: read_training_jsonl(path)), [f"{path}:{line}", *also]


_jsonl_case("no-positives", '{"query": "q"}\n', 1, "positive")
_jsonl_case("positive-no-text", '{"query": "q", "positive_passages": [{"title": "t"}]}\n', 1, "text")
_jsonl_case("bad-json", '{"query": "q", "positives": ["a"]}\n{"query": \n', 2, "JSON")
_jsonl_case("no-query", '{"positives": ["a"]}\n', 1, "query")
_jsonl_case("positives-not-list", '{"query": "q", "positives": "a"}\n', 1, "list")
_jsonl_case("empty-positive", '{"query": "q", "positives": [""]}\n', 1, "empty")
_jsonl_case("negative-bad-type", '{"query": "q", "positives": ["a"], "negatives": [3]}\n', 1, "negatives[0]")


def _dialogue_case(name: str, content: str | bytes, line: int, *also: str):
    @case(f"dialogue-{name}")
    def setup(ctx, tmp):
        from maeir.data.dialogue import read_response_selection

        path = write(tmp / "d.txt", content)
        return (lambda: read_response_selection(path, group_size=2)), [f"{path}:{line}", *also]


_dialogue_case("columns", "1\thi\thello\n0 hi hello\n", 2, "at least 3")
_dialogue_case("label", "1\thi\thello\n2\thi\tbye\n", 2, "'label'")
_dialogue_case("label-word", "yes\thi\thello\n", 1, "'label'")
_dialogue_case("empty-context", "1\t\t\thello\n", 1, "'context'")
_dialogue_case("group-differs", "1\thi\thello\n0\thi\tbye\n1\tother\tthing\n0\thi\tz\n", 4, "'context'")
_dialogue_case("bad-utf8", b"1\thi\thello\n0\thi\t\xff\xfe\n", 2, "UTF-8")


@case("response-selection-group-size")
def _(ctx, tmp):
    from maeir.cli.response_selection import finetune_main

    argv = [str(REPO / "configs/finetune_response_selection_cpu.yaml"), "--model_name_or_path", ctx["backbone"],
            "--train_file", ctx["dialogues"], "--output_dir", str(tmp / "out"), "--group_size", "0"]  # fmt: skip
    return (lambda: run_cli(finetune_main, argv)), ["argument --group_size"]


@case("response-selection-context-over-positions")
def _(ctx, tmp):
    from maeir.cli.response_selection import finetune_main

    argv = [str(REPO / "configs/finetune_response_selection_cpu.yaml"), "--model_name_or_path", ctx["backbone"],
            "--train_file", ctx["dialogues"], "--output_dir", str(tmp / "out"), "--context_max_length", "9999"]  # fmt: skip
    return (lambda: run_cli(finetune_main, argv)), ["argument --context_max_length", "position embeddings"]


@case("retriever-query-over-positions")
def _(ctx, tmp):
    from maeir.cli.finetune_retriever import main

    argv = [str(REPO / "configs/retriever_cpu.yaml"), "--model_name_or_path", ctx["backbone"],
            "--output_dir", str(tmp / "out"), "--query_max_length", "5000", "--max_steps", "1"]  # fmt: skip
    return (lambda: run_cli(main, argv)), ["argument --query_max_length", "position embeddings"]


@case("evaluate-response-selection-missing-data")
def _(ctx, tmp):
    from maeir.cli.response_selection import evaluate_main

    argv = ["--model", ctx["backbone"], "--data", str(tmp / "none.txt")]
    return (lambda: run_cli(evaluate_main, argv)), [str(tmp / "none.txt"), "not found"]


# ---------------------------------------------------------------------------------------------
# F. run folders and checkpoints


def finished_run(tmp: Path) -> Path:
    out = tmp / "out"
    write(out / "model.safetensors", b"x")
    write(out / "trainer_state.json", "{}")
    return out


def fake_checkpoint(folder: Path, skip: str | None = None, extra: dict | None = None) -> Path:
    """A complete-looking checkpoint (real files from a tiny state dict), minus ``skip``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.zeros(2)}, folder / "model.safetensors")
    torch.save({"state": {}}, folder / "optimizer.pt")
    torch.save({}, folder / "scheduler.pt")
    torch.save({}, folder / "rng_state.pth")
    write(folder / "trainer_state.json", json.dumps({"global_step": 1}))
    for name, data in (extra or {}).items():
        write(folder / name, data)
    if skip:
        (folder / skip).unlink()
    return folder


@case("run-folder-finished")
def _(ctx, tmp):
    out = finished_run(tmp)
    return pretrain(ctx, tmp), ["argument --output_dir", str(out), "finished run", "--overwrite_output_dir"]


@case("run-folder-other-checkpoints")
def _(ctx, tmp):
    fake_checkpoint(tmp / "out" / "checkpoint-7")
    return pretrain(ctx, tmp), ["argument --output_dir", "checkpoint-7"]


@case("run-folder-locked")
def _(ctx, tmp):
    holder = subprocess.Popen(["sleep", "60"])
    write(
        tmp / "out" / ".maeir.lock",
        json.dumps({"pid": holder.pid, "host": socket.gethostname(), "since": "now"}),
    )

    def call():
        try:
            return pretrain(ctx, tmp)()
        finally:
            holder.kill()
            holder.wait()

    return call, ["argument --output_dir", f"PID {holder.pid}", "in use by another run"]


@case("run-folder-locked-other-host")
def _(ctx, tmp):
    write(tmp / "out" / ".maeir.lock", json.dumps({"pid": 1, "host": "elsewhere.example", "since": "now"}))
    return pretrain(ctx, tmp), ["elsewhere.example", "in use"]


def _resume_case(name: str, *also: str, skip: str | None = None, extra: dict | None = None, explicit=True):
    @case(f"resume-{name}")
    def setup(ctx, tmp):
        checkpoint = fake_checkpoint(tmp / "out" / "checkpoint-2", skip=skip, extra=extra)
        value = str(checkpoint) if explicit else "missing-folder"
        expected = ["argument --resume_from_checkpoint", *also]
        return pretrain(ctx, tmp, "--resume_from_checkpoint", value), expected


_resume_case("no-optimizer", "optimizer.pt is missing", skip="optimizer.pt")
_resume_case("no-scheduler", "scheduler.pt is missing", skip="scheduler.pt")
_resume_case("no-rng", "rng_state.pth is missing", skip="rng_state.pth")
_resume_case("no-trainer-state", "trainer_state.json is missing", skip="trainer_state.json")
_resume_case("no-weights", "model.safetensors is missing", skip="model.safetensors")
_resume_case("pickle-weights", "pytorch_model.bin", "safetensors", extra={"pytorch_model.bin": b"pickle"})
_resume_case(
    "truncated-weights", "truncated", extra={"model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{}"}
)
_resume_case("missing-folder", "does not exist", explicit=False)


@case("resume-damaged-optimizer")
def _(ctx, tmp):
    """A real checkpoint whose optimizer.pt is garbage: the error names that file."""
    from maeir.cli.pretrain import main

    assert run_cli(main, pretrain_argv(ctx, tmp, "--save_steps", "1")) == 0
    checkpoint = tmp / "out" / "checkpoint-1"
    (checkpoint / "optimizer.pt").write_bytes(b"garbage, not a torch file")
    argv = pretrain_argv(ctx, tmp, "--max_steps", "2", "--resume_from_checkpoint", "last")
    return (lambda: run_cli(main, argv)), [str(checkpoint / "optimizer.pt"), "damaged checkpoint file"]


@case("resume-last-skips-incomplete")
def _(ctx, tmp):
    """``last`` takes the newest complete checkpoint; with none complete an explicit one is still refused."""
    fake_checkpoint(tmp / "out" / "checkpoint-5", skip="optimizer.pt")
    from maeir.run_folder import last_complete_checkpoint, resolve_resume

    class Args:
        output_dir = str(tmp / "out")
        resume_from_checkpoint = str(tmp / "out" / "checkpoint-5")

    assert last_complete_checkpoint(tmp / "out") is None
    return (lambda: resolve_resume(Args)), ["argument --resume_from_checkpoint", "checkpoint-5/optimizer.pt"]


# ---------------------------------------------------------------------------------------------
# G. loaders and publishing


def copy_encoder(ctx, tmp) -> Path:
    folder = tmp / "enc"
    shutil.copytree(ctx["backbone"], folder)
    return folder


@case("load-bi-encoder-weights-do-not-fit")
def _(ctx, tmp):
    from safetensors.torch import load_file, save_file

    from maeir.retrieval.loading import load_bi_encoder

    folder = copy_encoder(ctx, tmp)
    weights = load_file(folder / "model.safetensors")
    save_file(
        {k.replace("encoder.layer", "encoder.block"): v for k, v in weights.items()},
        folder / "model.safetensors",
    )
    return (lambda: load_bi_encoder(folder)), [str(folder), "do not fit config.json", "encoder.layer.0"]


@case("evaluate-weights-do-not-fit")
def _(ctx, tmp):
    from safetensors.torch import load_file, save_file

    from maeir.cli.evaluate_retrieval import main

    folder = copy_encoder(ctx, tmp)
    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if "attention" not in k}, folder / "model.safetensors")
    argv = ["--model", str(folder), "--beir", str(beir(tmp)), "--output_dir", str(tmp / "out")]
    return (lambda: run_cli(main, argv)), [str(folder), "do not fit", "attention"]


def _hub_case(name: str, damage: Callable[[Path], None], *also: str):
    @case(f"hub-{name}")
    def setup(ctx, tmp):
        from maeir.cli.push_to_hub import main

        run = tmp / "run"
        shutil.copytree(ctx["run"], run)
        damage(run / "encoder")
        argv = [str(run), "--repo_id", "someone/model", "--dry-run", "--staging_dir", str(tmp / "staging")]
        return (lambda: main(argv)), list(also)


def _truncate(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _gpt2_config(folder: Path) -> None:
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=64, n_head=2).save_pretrained(folder)


def _pickle(folder: Path) -> None:
    write(folder / "pytorch_model.bin", b"pickle")


def _nan(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, folder / "model.safetensors")


def _bad_config(folder: Path) -> None:
    write(folder / "config.json", "{not json")


_hub_case("truncated-weights", _truncate, "model.safetensors")
_hub_case("gpt2-config", _gpt2_config, "do not fit config.json", "GPT2")
_hub_case("pickle-weights", _pickle, "pytorch_model.bin")
_hub_case("nan-weights", _nan, "NaN")
_hub_case("bad-config", _bad_config, "config.json")


# ---------------------------------------------------------------------------------------------
# the test


def outcome(call: Callable, capsys) -> tuple[object, str]:
    """``(status, message)``: a run_cli exit status or SystemExit code, or "raised" for an exception."""
    try:
        status = call()
    except SystemExit as exit_:
        return exit_.code, capsys.readouterr().err
    except (InputError, ValueError, OSError, RuntimeError) as err:
        return "raised", str(err)
    captured = capsys.readouterr()
    return (status if isinstance(status, int) else 0), captured.err + captured.out


def half_written(root: Path) -> list[str]:
    return [
        str(p)
        for p in root.rglob("*")
        if p.name.startswith((".staging-", ".trash-")) or p.name.endswith(".tmp")
    ]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_clearly(name, ctx, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, expected = CASES[name](ctx, tmp_path)
    before_out = (tmp_path / "out").exists()
    before = set((tmp_path / "out").rglob("*")) if before_out else set()
    status, message = outcome(call, capsys)
    assert status not in (0, None), f"{name}: accepted (exit 0)"
    expected = [part.replace("{tmp}", str(tmp_path)) for part in expected]
    for part in expected:
        assert part in message, f"{name}: {part!r} not in {message!r}"
    assert "Traceback" not in message
    assert not half_written(tmp_path), half_written(tmp_path)
    out = tmp_path / "out"
    if not before_out and not name.startswith("resume-damaged"):
        assert not out.exists() or not any(p for p in out.iterdir() if p.name != ".maeir.lock"), (
            f"{name}: left {sorted(p.name for p in out.iterdir())}"
        )
    elif before_out and not name.startswith("resume-damaged"):
        after = {p for p in out.rglob("*") if p.name != ".maeir.lock"}
        assert after == {p for p in before if p.name != ".maeir.lock"}, f"{name}: changed the folder"
    if out.exists():
        lock = out / ".maeir.lock"
        assert not lock.exists() or json.loads(lock.read_text())["pid"] != os.getpid()


def test_there_are_at_least_100_cases():
    assert len(CASES) >= 100, len(CASES)
