"""Encode / index / search / evaluate: FAISS, the sparse inverted index, fusion, metrics, negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maeir.retrieval.dense_index import DenseIndex, dense_search
from maeir.retrieval.encode import Embeddings, encode_corpus, encode_texts
from maeir.retrieval.evaluation import evaluate_run, read_trec_run, write_trec_run
from maeir.retrieval.fusion import fuse_runs, hybrid_rescore
from maeir.retrieval.negatives import sample_negatives
from maeir.retrieval.sparse_index import SparseIndex, sparse_search


def _top(scores: np.ndarray, k: int) -> list[list[int]]:
    return [list(np.argsort(-row, kind="stable")[:k]) for row in scores]


def test_faiss_flat_equals_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    docs, queries = (
        rng.normal(size=(500, 16)).astype(np.float32),
        rng.normal(size=(20, 16)).astype(np.float32),
    )
    ids = [f"d{i}" for i in range(500)]
    exact = queries @ docs.T
    run = dense_search(ids, docs, [f"q{i}" for i in range(20)], queries, k=10)
    for q, expected in enumerate(_top(exact, 10)):
        got = run[f"q{q}"]
        assert list(got) == [ids[i] for i in expected]
        assert np.allclose(list(got.values()), exact[q, expected], atol=1e-4)
    index = DenseIndex(16, "Flat").build(docs, ids)
    index.save(tmp_path / "idx")
    again = DenseIndex.load(tmp_path / "idx", use_gpu=False)
    assert np.array_equal(again.search(queries, 5)[1], index.search(queries, 5)[1])
    # An approximate index built from a factory string returns real ids and sensible recall.
    hnsw = dense_search(ids, docs, [f"q{i}" for i in range(20)], queries, k=10, index_factory="HNSW16")
    overlap = np.mean(
        [len(set(hnsw[f"q{q}"]) & {ids[i] for i in e}) / 10 for q, e in enumerate(_top(exact, 10))]
    )
    assert overlap > 0.8


def _random_sparse(rows: int, vocab: int, nnz: int, generator: torch.Generator) -> torch.Tensor:
    dense = torch.zeros(rows, vocab)
    for row in range(rows):
        cols = torch.randperm(vocab, generator=generator)[:nnz]
        dense[row, cols] = torch.rand(nnz, generator=generator) + 0.1
    return dense


def test_sparse_search_equals_dense_matmul(tmp_path):
    g = torch.Generator().manual_seed(0)
    docs, queries = _random_sparse(300, 200, 12, g), _random_sparse(25, 200, 5, g)
    ids = [f"d{i}" for i in range(300)]
    exact = (queries @ docs.T).numpy()
    run = sparse_search(
        ids, docs.to_sparse_csr(), [f"q{i}" for i in range(25)], queries.to_sparse_csr(), k=10
    )
    for q in range(25):
        got = run[f"q{q}"]
        matching = int((exact[q] > 0).sum())
        assert len(got) == min(10, matching)  # only documents sharing a term are returned
        assert np.allclose(list(got.values()), np.sort(exact[q])[::-1][: len(got)], atol=1e-5)
        for doc, score in got.items():
            assert score == pytest.approx(exact[q, int(doc[1:])], abs=1e-5)
    index = SparseIndex(docs.to_sparse_csr(), ids)
    index.save(tmp_path / "sparse")
    again = SparseIndex.load(tmp_path / "sparse")
    scores, rows = again.search(queries.to_sparse_csr(), 3)
    assert all(
        torch.allclose(s, torch.tensor(np.sort(exact[i])[::-1][:3].copy()), atol=1e-5)
        for i, s in enumerate(scores)
    )


def test_hybrid_rescore_sums_exact_scores_over_the_union():
    g = torch.Generator().manual_seed(1)
    docs_sparse, queries_sparse = _random_sparse(50, 40, 6, g), _random_sparse(4, 40, 4, g)
    rng = np.random.default_rng(1)
    docs_dense, queries_dense = (
        rng.normal(size=(50, 8)).astype(np.float32),
        rng.normal(size=(4, 8)).astype(np.float32),
    )
    ids, qids = [f"d{i}" for i in range(50)], [f"q{i}" for i in range(4)]
    documents = Embeddings(ids, docs_dense, docs_sparse.to_sparse_csr())
    queries = Embeddings(qids, queries_dense, queries_sparse.to_sparse_csr())
    dense_run = dense_search(ids, docs_dense, qids, queries_dense, k=5)
    sparse_run = sparse_search(ids, documents.sparse, qids, queries.sparse, k=5)
    fused = hybrid_rescore(dense_run, sparse_run, queries, documents, dense_weight=2.0, sparse_weight=0.5)
    exact = 2.0 * (queries_dense @ docs_dense.T) + 0.5 * (queries_sparse @ docs_sparse.T).numpy()
    for q, qid in enumerate(qids):
        union = set(dense_run[qid]) | set(sparse_run[qid])
        assert set(fused[qid]) == union
        for doc, score in fused[qid].items():
            assert score == pytest.approx(exact[q, int(doc[1:])], abs=1e-4)
        assert list(fused[qid].values()) == sorted(fused[qid].values(), reverse=True)
    fused_runs = fuse_runs({"q": {"a": 3.0, "b": 1.0}}, {"q": {"b": 2.0, "c": 1.0}})
    assert fused_runs["q"] == {"a": 4.0, "b": 3.0, "c": 2.0}  # a missing score is the run's minimum


def test_metrics_equal_ir_measures_and_count_every_query(tmp_path):
    import ir_measures

    rng = np.random.default_rng(0)
    docs = [f"d{i}" for i in range(60)]
    qrels = {
        f"q{q}": {str(d): int(rng.integers(0, 3)) for d in rng.choice(docs, 6, replace=False)}
        for q in range(15)
    }
    qrels = {q: j for q, j in qrels.items() if any(v > 0 for v in j.values())}
    run = {q: {str(d): float(rng.normal()) for d in rng.choice(docs, 40, replace=False)} for q in qrels}
    ours = evaluate_run(run, qrels, ["MRR@10", "nDCG@10", "R@100", "P@5", "AP"])
    theirs = ir_measures.calc_aggregate(
        [ir_measures.RR @ 10, ir_measures.nDCG @ 10, ir_measures.R @ 100, ir_measures.P @ 5, ir_measures.AP], qrels, run
    )  # fmt: skip
    assert ours["MRR@10"] == pytest.approx(theirs[ir_measures.RR @ 10])
    assert ours["nDCG@10"] == pytest.approx(theirs[ir_measures.nDCG @ 10])
    assert ours["R@100"] == pytest.approx(theirs[ir_measures.R @ 100])
    assert ours["P@5"] == pytest.approx(theirs[ir_measures.P @ 5])
    assert ours["AP"] == pytest.approx(theirs[ir_measures.AP])
    # A query the run misses counts as 0 (MS MARCO convention), a hand computation:
    small_qrels = {"a": {"x": 1}, "b": {"y": 1}, "c": {"z": 1}}
    small_run = {"a": {"w": 2.0, "x": 1.0}, "b": {"y": 5.0}}
    report = evaluate_run(small_run, small_qrels, ["MRR@10"])
    assert report["MRR@10"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert report["queries_without_results"] == 1 and report["num_queries"] == 3
    write_trec_run(tmp_path / "run.trec", run)
    again = read_trec_run(tmp_path / "run.trec")
    assert again.keys() == run.keys()
    for q in run:
        assert again[q].keys() == run[q].keys()
        assert all(again[q][d] == pytest.approx(score, abs=1e-6) for d, score in run[q].items())
    assert evaluate_run(again, qrels)["nDCG@10"] == pytest.approx(ours["nDCG@10"])


def test_hard_negative_mining_never_returns_a_positive():
    rng = np.random.default_rng(0)
    docs = [f"d{i}" for i in range(100)]
    corpus = {d: {"title": "", "text": f"text {d}"} for d in docs}
    corpus["d99"] = {"title": "", "text": "text d0"}  # a duplicate of d0's text
    qrels = {f"q{q}": {docs[q]: 1, docs[q + 1]: 2, docs[q + 2]: 0} for q in range(20)}
    run = {q: {d: float(s) for d, s in zip(docs, rng.normal(size=100))} for q in qrels}
    for q, judged in qrels.items():  # the positives at the very top
        for d in judged:
            run[q][d] = 100.0
    negatives = sample_negatives(run, qrels, depth=50, num_negatives=10, corpus=corpus)
    for q, sampled in negatives.items():
        positives = {d for d, r in qrels[q].items() if r > 0}
        assert len(sampled) == 10 and len(set(sampled)) == 10
        assert not positives & set(sampled)
        ranked = sorted(run[q], key=lambda d: -run[q][d])[:50]
        assert set(sampled) <= set(ranked)
    assert "d99" not in negatives["q0"]  # duplicate of a positive text
    assert docs[2] in {d for d in run["q0"]}  # judged-0 documents may be negatives
    assert negatives == sample_negatives(run, qrels, depth=50, num_negatives=10, corpus=corpus)  # seeded


def test_encoding_order_shards_and_saving(tiny_backbone_dir, tokenizer, sample_texts, tmp_path):
    from maeir.modeling import BiEncoderModel

    model = BiEncoderModel.from_backbone(tiny_backbone_dir, representation="hybrid", sparse_top_k=16).eval()
    texts = [t[: 40 + 7 * i] for i, t in enumerate(sample_texts[:9])]
    batched = encode_texts(model, tokenizer, texts, "passage", batch_size=4, show_progress=False)
    single = [
        encode_texts(model, tokenizer, [t], "passage", batch_size=1, show_progress=False) for t in texts
    ]
    assert np.allclose(batched["dense"], np.concatenate([s["dense"] for s in single]), atol=1e-5)
    assert torch.allclose(
        batched["sparse"].to_dense(), torch.cat([s["sparse"].to_dense() for s in single]), atol=1e-5
    )
    assert ((batched["sparse"].to_dense() > 0).sum(1) <= 16).all()
    corpus = {f"d{i}": {"title": "", "text": t} for i, t in enumerate(texts)}
    shards = [encode_corpus(model, tokenizer, corpus, shard=s, num_shards=3, show_progress=False,
                            output=tmp_path / f"corpus.{s}") for s in range(3)]  # fmt: skip
    assert [len(s) for s in shards] == [3, 3, 3]
    whole = Embeddings.concat([Embeddings.load(tmp_path / f"corpus.{s}") for s in range(3)])
    assert whole.ids == list(corpus)
    assert np.allclose(whole.dense, batched["dense"], atol=1e-5)
    assert torch.allclose(whole.sparse.to_dense(), batched["sparse"].to_dense(), atol=1e-5)
