"""BM25 with ``bm25s``: the lexical baseline and the source of BM25 negatives.

Public API: :class:`BM25Retriever` (``index(corpus)``, ``search(queries, k) -> run``). Defaults are
the reference setting of ``../shared/data/README.md`` and Anserini's MS MARCO setting: Lucene BM25,
``k1 = 0.9``, ``b = 0.4``, lower-casing, no stemming, English stop words removed. Documents are
``title + " " + text``.
"""

from __future__ import annotations

from collections.abc import Mapping

import bm25s
import numpy as np

Run = dict[str, dict[str, float]]


class BM25Retriever:
    """``bm25s.BM25`` over a ``{doc_id: {"title", "text"}}`` corpus.

    Args:
        k1, b: BM25 parameters.
        method: ``bm25s`` variant (``"lucene"``, ``"robertson"``, ``"atire"``, ``"bm25l"``, ``"bm25+"``).
        stopwords: ``"english"``, a list, or None for none.
        stemmer: ``"english"`` for a Snowball stemmer (needs ``PyStemmer``) or None.
        include_title: prepend titles to document texts.
    """

    def __init__(
        self,
        k1: float = 0.9,
        b: float = 0.4,
        method: str = "lucene",
        stopwords: str | list[str] | None = "english",
        stemmer: str | None = None,
        include_title: bool = True,
        show_progress: bool = False,
    ) -> None:
        self.k1, self.b, self.method = k1, b, method
        self.stopwords = stopwords
        self.include_title = include_title
        self.show_progress = show_progress
        self._stemmer = None
        if stemmer is not None:
            import Stemmer  # PyStemmer, the stemmer bm25s supports

            self._stemmer = Stemmer.Stemmer(stemmer)
        self.model = bm25s.BM25(k1=k1, b=b, method=method)
        self.ids: list[str] = []

    def _tokenize(self, texts: list[str]):
        return bm25s.tokenize(
            texts, stopwords=self.stopwords, stemmer=self._stemmer, show_progress=self.show_progress
        )

    def index(self, corpus: Mapping[str, Mapping[str, str]]) -> BM25Retriever:
        self.ids = list(corpus)
        texts = []
        for doc_id in self.ids:
            passage = corpus[doc_id]
            title = passage.get("title") or ""
            texts.append(f"{title} {passage['text']}" if title and self.include_title else passage["text"])
        self.model.index(self._tokenize(texts), show_progress=self.show_progress)
        return self

    def search(self, queries: Mapping[str, str], k: int = 1000) -> Run:
        """Top-``k`` documents per query (documents scoring 0, i.e. sharing no term, are left out)."""
        query_ids = list(queries)
        k = min(k, len(self.ids))
        tokens = self._tokenize([queries[q] for q in query_ids])
        results, scores = self.model.retrieve(tokens, k=k, show_progress=self.show_progress, n_threads=0)
        run: Run = {}
        for qid, rows, values in zip(query_ids, np.asarray(results), np.asarray(scores)):
            run[qid] = {self.ids[int(r)]: float(s) for r, s in zip(rows, values) if s > 0}
        return run

    def settings(self) -> dict:
        return {"k1": self.k1, "b": self.b, "method": self.method, "stopwords": self.stopwords,
                "stemmer": None if self._stemmer is None else "snowball"}  # fmt: skip
