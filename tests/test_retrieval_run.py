"""The retrieval scripts end to end on a tiny BEIR folder (tiny model): fine-tune, evaluate, mine, encode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maeir.data.retrieval import load_beir, read_training_jsonl, write_beir
from maeir.data.sentences import split_sentences

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def beir_folder(tmp_path_factory, sample_texts) -> Path:
    """Inverse-cloze queries over the Lee news corpus: first sentence -> the rest of the document."""
    corpus, queries, qrels = {}, {}, {"train": {}, "test": {}}
    for i, text in enumerate(sample_texts[:48]):
        sentences = split_sentences(text)
        if len(sentences) < 2:
            continue
        doc = f"doc{i}"
        corpus[doc] = {"title": "", "text": " ".join(sentences[1:])[:400]}
        queries[f"q{i}"] = sentences[0][:200]
        qrels["train" if i % 3 else "test"][f"q{i}"] = {doc: 1}
    return write_beir(tmp_path_factory.mktemp("beir") / "lee", corpus, queries, qrels)


COMMON = [
    "--max_steps", "2", "--per_device_train_batch_size", "4", "--learning_rate", "1e-4", "--report_to", "none",
    "--use_cpu", "true", "--disable_tqdm", "true", "--save_strategy", "no", "--query_max_length", "24",
    "--passage_max_length", "48", "--logging_steps", "1",
]  # fmt: skip


def test_finetune_evaluate_mine_encode(tmp_path, beir_folder, tiny_backbone_dir):
    from maeir.cli.encode_corpus import main as encode_main
    from maeir.cli.evaluate_retrieval import main as evaluate_main
    from maeir.cli.finetune_retriever import main as finetune_main
    from maeir.cli.mine_negatives import main as mine_main

    out = tmp_path / "retriever"
    result = finetune_main([
        str(REPO / "configs/retriever_cpu.yaml"), "--model_name_or_path", tiny_backbone_dir, "--beir", str(beir_folder),
        "--output_dir", str(out), "--eval_split", "test", "--sparse_top_k", "32", "--eval_batch_size", "8", *COMMON,
    ])  # fmt: skip
    assert result["train"]["train_loss"] > 0
    for name in ("config.json", "model.safetensors", "encoding_recipe.json", "modules.json", "README.md",
                 "maeir_run.json", "query_encoder/config.json"):  # fmt: skip
        assert (out / name).is_file(), name
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["encoding_recipe"]["representation"] == "hybrid" and info["examples_with_negatives"] > 0
    metrics = json.loads((out / "eval_test" / "metrics.json").read_text())
    assert set(metrics["views"]) == {"dense", "sparse", "hybrid"} and metrics["num_queries"] == 16
    assert {"MRR@10", "nDCG@10", "R@100"} <= set(metrics)

    # The run contract of evaluate_retrieval.py, with the model and with BM25.
    evaluation = evaluate_main(["--model", str(out), "--beir", str(beir_folder), "--split", "test",
                                "--output_dir", str(tmp_path / "eval"), "--show_progress", "false"])  # fmt: skip
    assert evaluation["nDCG@10"] == pytest.approx(metrics["nDCG@10"], abs=1e-6)  # reloading changes nothing
    lines = [line.split() for line in (tmp_path / "eval" / "run.trec").read_text().splitlines()]
    test = load_beir(beir_folder, "test")
    assert {line[0] for line in lines} == set(test.queries) and all(line[1] == "Q0" for line in lines)
    # k = 1000 > corpus: the dense view returns every document, so the hybrid union does too.
    assert len(lines) == len(test.queries) * len(test.corpus)
    bm25 = evaluate_main(
        ["--model", "bm25", "--beir", str(beir_folder), "--output_dir", str(tmp_path / "bm25")]
    )
    assert bm25["nDCG@10"] > 0.3 and (tmp_path / "bm25" / "run.trec").is_file()

    # Hard negatives mined with the trained model never include a positive.
    mined = tmp_path / "hard.jsonl"
    mine_main(["--retriever", str(out), "--beir", str(beir_folder), "--output", str(mined), "--depth", "10",
               "--num_negatives", "3"])  # fmt: skip
    qrels = load_beir(beir_folder, "train").qrels
    records = read_training_jsonl(mined)
    assert len(records) == len(qrels)
    for record in records:
        negatives = {n["docid"] for n in record["negatives"]}
        assert len(negatives) == 3 and not negatives & set(qrels[record["query_id"]])
    # ... and BM25 negatives (bm25s) neither, even though BM25 ranks the positives near the top.
    summary = mine_main(["--retriever", "bm25", "--beir", str(beir_folder), "--output", str(tmp_path / "bm25.jsonl"),
                         "--depth", "5", "--num_negatives", "2"])  # fmt: skip
    records = read_training_jsonl(tmp_path / "bm25.jsonl")
    assert summary["queries"] == len(records) == len(qrels) and summary["mean_negatives"] == 2
    for record in records:
        negatives = {n["docid"] for n in record["negatives"]}
        assert negatives and not negatives & set(qrels[record["query_id"]])

    # Sharded encoding then search from the saved shards gives the same metrics.
    prefixes = []
    for shard in range(2):
        prefix = str(tmp_path / "emb" / f"corpus.{shard}")
        encode_main(["--model", str(out), "--beir", str(beir_folder), "--shard", str(shard), "--num_shards", "2",
                     "--output", prefix])  # fmt: skip
        prefixes.append(prefix)
    again = evaluate_main(["--model", str(out), "--beir", str(beir_folder), "--output_dir", str(tmp_path / "again"),
                           "--corpus_embeddings", ",".join(prefixes), "--show_progress", "false"])  # fmt: skip
    assert again["views"]["hybrid"]["nDCG@10"] == pytest.approx(
        metrics["views"]["hybrid"]["nDCG@10"], abs=1e-6
    )


@pytest.mark.slow
def test_two_process_finetuning_under_accelerate(tmp_path, beir_folder, tiny_backbone_dir):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file",
        str(REPO / "configs/accelerate/cpu_ddp_2proc.yaml"), "--main_process_port", "29547",
        str(REPO / "scripts/finetune_retriever.py"), str(REPO / "configs/retriever_cpu.yaml"),
        "--model_name_or_path", tiny_backbone_dir, "--beir", str(beir_folder), "--output_dir", str(out), *COMMON,
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-4000:]
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["hyperparameters"]["world_size"] == 2  # really two processes
    assert info["hyperparameters"]["global_batch_size"] == 8
    assert (out / "model.safetensors").is_file()
