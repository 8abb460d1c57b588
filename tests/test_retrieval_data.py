"""Retrieval readers (BEIR, MS MARCO, training JSONL) and the embedded inverse-cloze benchmark."""

from __future__ import annotations

import json

import pytest

from maeir.data.retrieval import (
    load_beir,
    load_msmarco,
    read_beir_corpus,
    read_beir_queries,
    read_qrels,
    read_training_jsonl,
    training_records,
    write_beir,
    write_training_jsonl,
)
from maeir.errors import CorpusFormatError


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("lines", "line", "field"),
    [
        (['{"_id": "a", "text": "x"}', '{"title": "t", "text": "y"}'], 2, "_id"),
        (['{"_id": "a", "text": 3}'], 1, "text"),
        (['{"_id": "a", "text": "x"}', "", '{"_id": "a", "text": "z"}'], 3, "_id"),
        (['{"_id": "a", "text": "x"', '{"_id": "b", "text": "y"}'], 1, None),
        (['["a", "b"]'], 1, None),
        (['{"_id": "a", "title": 5, "text": "x"}'], 1, "title"),
    ],
)
def test_beir_corpus_rejects_malformed_records(tmp_path, lines, line, field):
    path = _write(tmp_path / "corpus.jsonl", lines)
    with pytest.raises(CorpusFormatError) as info:
        read_beir_corpus(path)
    assert info.value.line == line and info.value.field == field
    assert str(path) in str(info.value) and f":{line}:" in str(info.value)


def test_beir_corpus_keeps_empty_documents(tmp_path):
    path = _write(
        tmp_path / "corpus.jsonl", ['{"_id": "a", "text": ""}', '{"_id": "b", "title": "T", "text": "x"}']
    )
    assert read_beir_corpus(path) == {"a": {"title": "", "text": ""}, "b": {"title": "T", "text": "x"}}


def test_beir_queries_and_qrels_reject_malformed_records(tmp_path):
    path = _write(tmp_path / "q.jsonl", ['{"_id": "1", "text": "a"}', '{"_id": "1", "text": "b"}'])
    with pytest.raises(CorpusFormatError, match="duplicate") as info:
        read_beir_queries(path)
    assert (info.value.line, info.value.field) == (2, "_id")
    for rows, line, field in (
        (["query-id\tcorpus-id\tscore", "1\td1\t1", "2\td2\tx"], 3, "score"),
        (["1\td1"], 1, None),
        (["1\td1\t1.5"], 1, "score"),
        (["\td1\t1"], 1, "query-id"),
    ):
        qrels = _write(tmp_path / "qrels.tsv", rows)
        with pytest.raises(CorpusFormatError) as info:
            read_qrels(qrels)
        assert (info.value.line, info.value.field) == (line, field), rows


def test_qrels_formats(tmp_path):
    beir = _write(tmp_path / "a.tsv", ["query-id\tcorpus-id\tscore", "1\td1\t2", "1\td2\t0"])
    trec = _write(tmp_path / "b.txt", ["1 0 d1 2", "1 0 d2 0"])
    assert read_qrels(beir) == read_qrels(trec) == {"1": {"d1": 2, "d2": 0}}


def test_beir_round_trip_and_split(tmp_path):
    corpus = {"d1": {"title": "T", "text": "one"}, "d2": {"title": "", "text": "two"}}
    queries = {"q1": "first?", "q2": "second?", "q3": "unjudged"}
    folder = write_beir(
        tmp_path / "beir", corpus, queries, {"train": {"q1": {"d1": 1}}, "test": {"q2": {"d2": 1}}}
    )
    test = load_beir(folder, "test")
    assert test.corpus == corpus and test.queries == {"q2": "second?"} and test.qrels == {"q2": {"d2": 1}}
    assert load_beir(folder, "train").queries == {"q1": "first?"}
    with pytest.raises(CorpusFormatError):
        load_beir(folder, "dev")
    # A judged query missing from queries.jsonl is an error naming the qrels file.
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq9\td1\t1\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match="not in queries.jsonl") as info:
        load_beir(folder, "test")
    assert info.value.field == "query-id" and "test.tsv" in str(info.value)


def test_msmarco_readers(tmp_path):
    collection = _write(tmp_path / "collection.tsv", ["0\tfirst passage", "1\tsecond passage"])
    queries = _write(tmp_path / "queries.tsv", ["10\twhat is first", "11\tunjudged query"])
    qrels = _write(tmp_path / "qrels.tsv", ["10\t0\t0\t1"])
    data = load_msmarco(collection, queries, qrels)
    assert data.corpus["1"] == {"title": "", "text": "second passage"}
    assert set(data.queries) == {"10", "11"}  # MS MARCO: every dev query counts
    bad = _write(tmp_path / "bad.tsv", ["0\tok", "1 no tab here"])
    with pytest.raises(CorpusFormatError) as info:
        load_msmarco(bad, queries, qrels)
    assert (info.value.line, info.value.field) == (2, "text")


def test_training_jsonl_formats_and_errors(tmp_path):
    tevatron = {"query_id": "7", "query": "q", "positive_passages": [{"docid": "d", "title": "T", "text": "p"}],
                "negative_passages": [{"docid": "n", "title": "", "text": "neg"}]}  # fmt: skip
    simple = {"query": "q2", "pos": ["p2"], "neg": ["n2", "n3"]}
    path = _write(tmp_path / "train.jsonl", [json.dumps(tevatron), json.dumps(simple)])
    records = read_training_jsonl(path)
    assert records[0]["positives"] == [{"docid": "d", "title": "T", "text": "p"}]
    assert [n["text"] for n in records[1]["negatives"]] == ["n2", "n3"] and records[1]["query_id"] == "2"
    write_training_jsonl(tmp_path / "out.jsonl", records)
    assert read_training_jsonl(tmp_path / "out.jsonl") == records
    for record, field in (
        ({"query": "q"}, "positive_passages"),
        ({"query": "q", "positives": []}, "positives"),
        ({"query": "q", "positives": [{"title": "x"}]}, "positives[0].text"),
        ({"query": "q", "positives": ["p"], "negatives": [3]}, "negatives[0]"),
        ({"query": "", "positives": ["p"]}, "query"),
        ({"query": "q", "positives": "p"}, "positives"),
    ):
        bad = _write(tmp_path / "bad.jsonl", [json.dumps(simple), json.dumps(record)])
        with pytest.raises(CorpusFormatError) as info:
            read_training_jsonl(bad)
        assert (info.value.line, info.value.field) == (2, field), record


def test_training_records_from_qrels():
    from maeir.data.retrieval import RetrievalData

    data = RetrievalData(
        corpus={
            "a": {"title": "", "text": "A"},
            "b": {"title": "", "text": "B"},
            "c": {"title": "", "text": "C"},
        },
        queries={"q1": "one", "q2": "two"},
        qrels={"q1": {"a": 1, "b": 0}, "q2": {"zzz": 1}},
    )
    records = training_records(data, negatives={"q1": ["c", "missing"]})
    assert len(records) == 1  # q2's positive is not in the corpus
    assert [p["docid"] for p in records[0]["positives"]] == ["a"]
    assert [n["docid"] for n in records[0]["negatives"]] == ["c"]


def test_embedded_benchmark_is_an_inverse_cloze_task(tmp_path, monkeypatch):
    from maeir.datasets.embedded.retrieval_benchmark import build_ict_benchmark, embedded_retrieval_benchmark

    corpus, queries, qrels = build_ict_benchmark(test_queries=30, train_queries=60, corpus_size=300)
    assert len(qrels["test"]) == 30 and len(qrels["train"]) == 60 and len(corpus) == 300
    article = lambda doc_id: doc_id.rsplit("-", 1)[0]  # noqa: E731
    test_articles = {article(d) for judged in qrels["test"].values() for d in judged}
    train_articles = {article(d) for judged in qrels["train"].values() for d in judged}
    assert not test_articles & train_articles
    for split in ("train", "test"):
        for qid, judged in qrels[split].items():
            (doc,) = judged
            assert doc in corpus and queries[qid] not in corpus[doc]["text"]  # the sentence was removed
            assert len(queries[qid].split()) >= 6
    monkeypatch.setenv("MAEIR_CACHE", str(tmp_path))
    folder = embedded_retrieval_benchmark(test_queries=30, train_queries=60, corpus_size=300)
    data = load_beir(folder, "test")
    assert data.qrels == qrels["test"] and len(data.corpus) == 300 and (folder / "SOURCE.md").is_file()


def test_readers_name_the_line_of_bad_bytes_and_values(tmp_path):
    import gzip

    # Undecodable bytes far into a file are reported on their own line (not where a chunk starts).
    lines = [json.dumps({"_id": f"d{i}", "text": f"document number {i}"}).encode() for i in range(3000)]
    lines[2499] = b'{"_id": "bad", "text": "caf\xe9"}'
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(CorpusFormatError, match="UTF-8") as info:
        read_beir_corpus(path)
    assert info.value.line == 2500
    # gzip-compressed files read the same; a cut gzip stream is a format error, not a crash.
    packed = gzip.compress(b"\n".join(lines[:5]) + b"\n")
    (tmp_path / "c.jsonl.gz").write_bytes(packed)
    assert list(read_beir_corpus(tmp_path / "c.jsonl.gz")) == [f"d{i}" for i in range(5)]
    (tmp_path / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(CorpusFormatError, match="cannot read"):
        read_beir_corpus(tmp_path / "cut.jsonl.gz")
    # A byte-order mark does not break the first record.
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + lines[0] + b"\n")
    assert list(read_beir_corpus(tmp_path / "bom.jsonl")) == ["d0"]
    for score in ("inf", "nan", "-"):
        qrels = _write(tmp_path / "qrels.tsv", ["q1\td1\t1", f"q1\td2\t{score}"])
        with pytest.raises(CorpusFormatError) as info:
            read_qrels(qrels)
        assert (info.value.line, info.value.field) == (2, "score"), score
    bad = _write(tmp_path / "t.jsonl", ['{"query": "q", "positives": ["p"], "query_id": {"a": 1}}'])
    with pytest.raises(CorpusFormatError) as info:
        read_training_jsonl(bad)
    assert (info.value.line, info.value.field) == (1, "query_id")


def test_judged_queries_missing_from_the_queries_file_name_the_qrels_line(tmp_path):
    collection = _write(tmp_path / "collection.tsv", ["0\tfirst passage", "1\tsecond passage"])
    queries = _write(tmp_path / "queries.tsv", ["10\twhat is first", "11\tanother"])
    qrels = _write(tmp_path / "qrels.tsv", ["10\t0\t0\t1", "11\t0\t1\t1", "12\t0\t1\t1"])
    with pytest.raises(CorpusFormatError, match="not in") as info:
        load_msmarco(collection, queries, qrels)
    assert (info.value.line, info.value.field) == (3, "query-id") and str(qrels) in str(info.value)
    duplicate = _write(tmp_path / "dup.tsv", ["10\tq", "10\tq again"])
    with pytest.raises(CorpusFormatError, match="duplicate") as info:
        load_msmarco(collection, duplicate, qrels)
    assert (info.value.line, info.value.field) == (2, "id")
    folder = write_beir(tmp_path / "beir", {"d1": {"text": "x"}}, {"q1": "a"}, {"test": {"q1": {"d1": 1}}})
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\n")
    with pytest.raises(CorpusFormatError) as info:
        load_beir(folder, "test")
    assert (info.value.line, info.value.field) == (3, "query-id")
