"""The embedded retrieval benchmark: inverse-cloze queries over real Wikipedia prose shipped on PyPI.

Built from :func:`maeir.datasets.embedded.wikipedia_passages` (gensim's English Wikipedia shard, cleaned
and packed into sentence-aligned passages) with the inverse cloze task of Lee et al. (2019,
"Latent Retrieval for Weakly Supervised Open Domain Question Answering", Section 5): a sentence of
a passage is the query, and the same passage **with that sentence removed** is its one relevant
document, so a query never matches its document word for word.

- Articles are split into train and test articles (fixed seed): no article gives queries to both
  splits, so test queries are about passages the model never saw as training positives.
- The corpus holds every query's document, every other passage of the test articles (same-topic
  distractors) and random passages of the other articles up to ``corpus_size``.
- Written in BEIR format (``corpus.jsonl``, ``queries.jsonl``, ``qrels/train.tsv``,
  ``qrels/test.tsv``, plus ``SOURCE.md``), cached atomically under
  ``maeir.datasets.embedded.cache_dir()``, so the very same code path also runs on real BEIR folders.

Public API: :func:`embedded_retrieval_benchmark` (-> the folder), :func:`build_ict_benchmark`
(-> corpus, queries, qrels in memory), :data:`DEFAULT_SETTINGS`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...data.retrieval import write_beir
from ...data.sentences import split_sentences
from .files import cache_dir
from .wikipedia import CLEANER_VERSION, wikipedia_passages

#: Bump when the construction changes (cached folders carry it in their names).
BENCHMARK_VERSION = 1
MIN_QUERY_WORDS = 6
MAX_QUERY_WORDS = 40
MIN_DOCUMENT_WORDS = 15

DEFAULT_SETTINGS: dict[str, Any] = {
    "passage_words": 64,
    "test_queries": 200,
    "train_queries": 1500,
    "corpus_size": 2500,
    "test_article_share": 0.25,
    "seed": 13,
}


def _ict_example(passage: Mapping[str, str], rng: random.Random) -> tuple[str, str] | None:
    """``(query sentence, passage without it)`` or None when the passage has no suitable sentence."""
    sentences = split_sentences(passage["text"])
    if len(sentences) < 2:
        return None
    choices = [i for i, s in enumerate(sentences) if MIN_QUERY_WORDS <= len(s.split()) <= MAX_QUERY_WORDS]
    rng.shuffle(choices)
    for index in choices:
        rest = " ".join(s for i, s in enumerate(sentences) if i != index)
        if len(rest.split()) >= MIN_DOCUMENT_WORDS:
            return sentences[index], rest
    return None


def build_ict_benchmark(
    passage_words: int = 64,
    test_queries: int = 200,
    train_queries: int = 1500,
    corpus_size: int = 2500,
    test_article_share: float = 0.25,
    seed: int = 13,
) -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, dict[str, dict[str, int]]]]:
    """``(corpus, queries, {"train": qrels, "test": qrels})`` (see the module docstring)."""
    if not 0 < test_article_share < 1:
        raise ValueError(f"test_article_share must be in (0, 1), got {test_article_share}")
    rng = random.Random(seed)
    passages = wikipedia_passages(passage_words)
    by_article: dict[str, list[dict[str, str]]] = {}
    for passage in passages:
        by_article.setdefault(passage["doc_id"], []).append(passage)
    articles = sorted(by_article)
    rng.shuffle(articles)
    # Test articles: a share of the passages (not of the article count: articles differ a lot in size).
    test_articles, covered = set(), 0
    for article in articles:
        if covered >= test_article_share * len(passages):
            break
        test_articles.add(article)
        covered += len(by_article[article])

    def examples(article_ids, wanted: int) -> list[tuple[dict[str, str], str, str]]:
        pool = [p for a in sorted(article_ids) for p in by_article[a]]
        rng.shuffle(pool)
        out = []
        for passage in pool:
            example = _ict_example(passage, rng)
            if example is not None:
                out.append((passage, *example))
                if len(out) >= wanted:
                    break
        return out

    test = examples(test_articles, test_queries)
    train = examples(set(articles) - test_articles, train_queries)
    corpus: dict[str, dict[str, str]] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    for split, chosen in (("test", test), ("train", train)):
        for passage, query, document in chosen:
            query_id = f"q-{passage['id']}"
            queries[query_id] = query
            corpus[passage["id"]] = {"title": passage["title"], "text": document}
            qrels[split][query_id] = {passage["id"]: 1}
    distractors = [p for a in sorted(test_articles) for p in by_article[a] if p["id"] not in corpus]
    others = [
        p for a in sorted(set(articles) - test_articles) for p in by_article[a] if p["id"] not in corpus
    ]
    rng.shuffle(distractors)
    rng.shuffle(others)
    for passage in distractors + others:
        if len(corpus) >= corpus_size:
            break
        corpus[passage["id"]] = {"title": passage["title"], "text": passage["text"]}
    ordered = dict(sorted(corpus.items()))
    return ordered, queries, qrels


def _source_text(settings: Mapping[str, Any], corpus, queries, qrels) -> str:
    # The text is part of the benchmark's bytes: it keeps the builder's former module path
    # (now maeir.datasets.embedded.wikipedia), so the committed benchmark stays byte-identical.
    lines = [
        "# Embedded retrieval benchmark (maeir): inverse-cloze task over Wikipedia",
        "",
        "Source: the English Wikipedia shard of gensim's test data (a 2016 dump, CC BY-SA 3.0), cleaned by",
        "`maeir.data.embedded.wikipedia_documents` and packed into sentence-aligned passages.",
        "Queries: one sentence of a passage; relevant document: that passage without the sentence",
        "(inverse cloze task, Lee et al., 2019). Train and test queries come from disjoint articles.",
        "",
        f"Settings: {dict(settings)}; benchmark version {BENCHMARK_VERSION}, cleaner version {CLEANER_VERSION}.",
        f"Corpus: {len(corpus)} passages; queries: {len(qrels['train'])} train, {len(qrels['test'])} test.",
    ]
    return "\n".join(lines) + "\n"


def embedded_retrieval_benchmark(**settings: Any) -> Path:
    """The BEIR folder of the benchmark with ``settings`` (:data:`DEFAULT_SETTINGS` by default).

    Built once (a few seconds) and cached atomically under ``cache_dir()/retrieval/``.
    """
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(f"unknown benchmark settings {unknown}; known: {sorted(DEFAULT_SETTINGS)}")
    values = {**DEFAULT_SETTINGS, **settings}
    name = (
        f"enwiki-ict-v{CLEANER_VERSION}.{BENCHMARK_VERSION}-w{values['passage_words']}-q{values['test_queries']}"
        f"-t{values['train_queries']}-c{values['corpus_size']}-a{values['test_article_share']}-s{values['seed']}"
    )
    folder = cache_dir() / "retrieval" / name
    if (folder / "qrels" / "test.tsv").is_file():
        return folder
    corpus, queries, qrels = build_ict_benchmark(**values)
    write_beir(
        folder,
        corpus,
        queries,
        qrels,
        extra_files={"SOURCE.md": _source_text(values, corpus, queries, qrels)},
    )
    return folder
