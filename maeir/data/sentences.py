"""Sentence splitting and sentence-aligned passage packing of English prose."""

from __future__ import annotations

import re

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "e.g", "i.e", "cf",
    "no", "nos", "vol", "vols", "pp", "p", "ca", "c", "fl", "approx", "inc", "ltd", "co", "corp",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "gen",
    "col", "lt", "sgt", "capt", "cmdr", "adm", "rev", "gov", "sen", "rep", "ed", "eds", "op",
    "ibid", "al", "fig", "figs", "ch", "sec", "art", "est", "govt", "dept", "univ", "assn", "bros",
    "u.s", "u.k", "u.n", "a.d", "b.c", "a.m", "p.m", "ph.d", "viz", "var", "subsp", "sp", "spp",
    "mme", "mlle", "messrs", "rt", "hon", "pres", "supt", "gens", "ave", "blvd", "cap", "ff", "v",
}  # fmt: skip
_RE_SENTENCE_BREAK = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c\u2018(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split English prose into sentences (a rule-based splitter that knows common abbreviations)."""
    sentences, start = [], 0
    for match in _RE_SENTENCE_BREAK.finditer(text):
        if match.group(0)[0] == ".":
            before = text[start : match.start()].rsplit(None, 1)
            word = before[-1].lstrip("(\"'\u201c\u2018[") if before else ""
            if (
                word.lower() in _ABBREVIATIONS
                or re.fullmatch(r"[A-Z]", word)  # an initial: J. R. R. Tolkien
                or re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word)  # e.g, U.S
            ):
                continue
        end = match.end()
        sentence = text[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = end
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def pack_passages(text: str, max_words: int) -> list[str]:
    """Greedily pack whole sentences into passages of at most ``max_words`` words.

    A sentence is never split, unless it alone is longer than ``max_words``: then it is cut into
    ``max_words``-word pieces. Paragraph breaks are crossed (passages are dense).
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    passages: list[str] = []
    current: list[str] = []
    count = 0
    for paragraph in text.split("\n\n"):
        for sentence in split_sentences(paragraph):
            words = sentence.split()
            if len(words) > max_words:
                if current:
                    passages.append(" ".join(current))
                    current, count = [], 0
                passages.extend(" ".join(words[k : k + max_words]) for k in range(0, len(words), max_words))
                continue
            if count + len(words) > max_words:
                passages.append(" ".join(current))
                current, count = [], 0
            current.append(" ".join(words))
            count += len(words)
    if current:
        passages.append(" ".join(current))
    return passages
