"""The embedded Wikipedia: gensim's English Wikipedia shard as clean prose and passages.

The shard ships in ``gensim``'s wheel (its test data), installed by ``pip install maeir[data]``:

- :func:`wikipedia_documents`: 206 pages of a MediaWiki XML dump, 96 articles once cleaned, turned
  into clean prose: redirects, disambiguation pages, lists and non-article
  namespaces are dropped; templates, tables, files, references, HTML tags and wiki markup are
  removed (a few inline templates that carry text, like ``{{convert}}`` or ``{{lang}}``, keep their
  text: :mod:`maeir.datasets.embedded.mediawiki`); headings become paragraph breaks and
  reference-only sections (References, See also, ...) are dropped.
- :func:`wikipedia_passages` / :func:`embedded_wikipedia_corpus` pack the prose into sentence-aligned
  passages (:func:`maeir.data.sentences.pack_passages`), the latter cached as JSON lines under
  :func:`~maeir.datasets.embedded.files.cache_dir`. The dump is located through the import
  machinery without importing ``gensim`` (importing it costs seconds and pulls in scipy).

Why not gensim's ``gensim.corpora.wikicorpus.filter_wiki`` (checked on the first 20 kept articles,
issue 12): it gives 1,324 passages of 100 words where this cleaner gives 1,146, but the extra text is
markup and non-prose: ``'''bold'''``/``''italic''`` quotes and ``==Heading==`` lines stay, dropped
templates leave holes (``Alabama () is``, ``At , Alabama``), tables and lists become run-on name lists
(Academy Award for Best Production Design: 50 passages vs 2), and References/See also stay in.
"""

from __future__ import annotations

import html
import json
import re
import threading
from pathlib import Path

from ...data.sentences import pack_passages, split_sentences
from ...io_utils import atomic_write_text
from .files import WIKI_PACKAGE, cache_dir, package_file
from .mediawiki import HOLE as _HOLE
from .mediawiki import expand_templates, iter_wiki_pages, replace_balanced

#: Bump when the cleaner or the passage packer changes: cached files carry it in their names.
CLEANER_VERSION = 2

WIKI_PARTS = (
    "test",
    "test_data",
    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
)

MIN_PARAGRAPH_WORDS = 6
MIN_DOCUMENT_WORDS = 50


# ---------------------------------------------------------------------------------------------
# Wikitext -> prose

_NAMESPACES = {
    "file", "image", "media", "category", "wikipedia", "wp", "template", "help", "portal", "user",
    "talk", "special", "module", "draft", "mediawiki", "book", "timedtext", "wikt", "wiktionary",
    "commons", "s", "wikisource", "q", "wikiquote", "b", "wikibooks", "n", "wikinews", "v",
    "wikiversity", "voy", "species", "d", "meta", "m", "mw", "c", "w", "w:en", "iarchive", "doi",
}  # fmt: skip
_DROP_LINK_PREFIXES = {"file", "image", "media", "category"}
_DISAMBIGUATION_TEMPLATES = {
    "disambiguation", "disambig", "dab", "disamb", "hndis", "geodis", "letter disambiguation",
    "place name disambiguation", "set index article", "sia", "surname", "given name",
    "shipindex", "mountainindex", "roadindex", "school disambiguation", "hospital disambiguation",
    "airport disambiguation", "call sign disambiguation", "species latin name disambiguation",
    "human name disambiguation", "numberdis", "mil-unit-dis", "lake index", "month-year index",
}  # fmt: skip
_LIST_TITLE = re.compile(r"^(lists? of|index of|outline of|glossary of|timeline of)\b", re.IGNORECASE)
_SKIP_SECTIONS = {
    "see also", "references", "notes", "further reading", "external links", "bibliography",
    "sources", "citations", "footnotes", "notes and references", "references and notes",
    "works cited", "gallery", "primary sources", "secondary sources", "selected bibliography",
    "general references", "cited sources", "explanatory notes", "reference notes",
    "literature", "external link", "reference", "note", "source", "links",
}  # fmt: skip
_DROP_CONTENT_TAGS = (
    "gallery|timeline|graph|imagemap|source|syntaxhighlight|templatedata|poem|mapframe|maplink|inputbox"
    "|categorytree|references|table"
)
# Inline content that cannot be rendered as text (formulas ...): a sentence that held one is dropped.
_HOLE_TAGS = "math|chem|ce|score|hiero"

_RE_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_RE_REF_SELF = re.compile(r"<ref\b[^<>]*?/\s*>", re.IGNORECASE)
_RE_REF = re.compile(r"<ref\b[^<>]*>.*?</ref\s*>", re.IGNORECASE | re.DOTALL)
_RE_DROP_TAGS = re.compile(
    rf"<({_DROP_CONTENT_TAGS})\b[^<>]*?(?:/\s*>|>.*?</\1\s*>)", re.IGNORECASE | re.DOTALL
)
_RE_HOLE_TAGS = re.compile(rf"<({_HOLE_TAGS})\b[^<>]*?(?:/\s*>|>.*?</\1\s*>)", re.IGNORECASE | re.DOTALL)
_RE_BREAK_TAGS = re.compile(r"</?(?:blockquote|p|div|center|hr|ol|ul|dl)\b[^<>]*>", re.IGNORECASE)
_RE_BR = re.compile(r"<br\s*/?\s*>|</br\s*>", re.IGNORECASE)
_RE_LI = re.compile(r"<li\b[^<>]*>", re.IGNORECASE)
_RE_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*\b[^<>]*>")
_RE_EXT_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]*\s*([^\]\n]*)\]")
_RE_URL = re.compile(r"(?:https?:|ftp:)//[^\s<>\]|]+")
_RE_QUOTES = re.compile(r"'{2,}")
_RE_MAGIC = re.compile(r"__[A-Z]+__")
_RE_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_RE_EMPTY_PARENS = re.compile(r" ?\((?:\s|[,;:\u2013\u2014-])*(?:(?:e\.g\.|i\.e\.|see|cf\.)\s*)?\)")
_RE_EMPTY_BRACKETS = re.compile(r" ?\[\s*\]")
_RE_PAREN_LEAD = re.compile(r"\(\s*(?:[,;:]\s*)+")
_RE_PAREN_TRAIL = re.compile(r"(?:[,;:]\s*)+\)")
_RE_SPACE_BEFORE_PUNCT = re.compile(r" ([,.;:!?%)\]])")
_RE_SPACE_AFTER_OPEN = re.compile(r"([(\[])\s+")
_RE_DOUBLE_PUNCT = re.compile(r"[,;] ?(?=[,;.])")
_RE_LEFTOVER = re.compile(r"\[\[|\]\]|\{\{|\}\}|\{\||\|\}")
# How a sentence starts (anything else, like a lower-case word or stray punctuation, is a fragment).
_RE_SENTENCE_START = re.compile(r"^(?:[^\W\d_a-z]|[0-9\"'\u201c\u2018(\[\u27e8\u00bf\u00a1]|\.\.\.|\u2026)")
_RE_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")


def _render_link(inner: str) -> str:
    """The visible text of ``[[inner]]``; ``""`` for files, categories and interlanguage links."""
    target, pipe, label = inner.partition("|")
    target = target.strip()
    leading_colon = target.startswith(":")
    if leading_colon:
        target = target[1:].strip()
    prefix = target.split(":", 1)[0].strip().lower() if ":" in target else None
    if prefix in _DROP_LINK_PREFIXES and not leading_colon:
        return ""
    if "[[" in label:  # a caption holding links: only files have those, and they are gone
        label = _expand_links(label)
    label = label.strip()
    if label:
        return label
    namespaced = prefix is not None and (
        prefix in _NAMESPACES or re.fullmatch(r"[a-z]{2,3}(-[a-z]+)?", prefix)
    )
    if namespaced:
        if not pipe:  # interlanguage / interwiki link without a label: shows nothing in an article
            return ""
        target = target.split(":", 1)[1]
    if pipe:  # the pipe trick: [[Paris, Texas|]] -> Paris
        target = re.sub(r"\s*\(.*?\)\s*$", "", target).split(",")[0]
    page, _, anchor = target.partition("#")
    return (page or anchor).strip()


def _expand_links(text: str) -> str:
    """Replace every ``[[link]]`` by its visible text (files and categories by nothing)."""
    return replace_balanced(text, "[[", "]]", _render_link)


def _remove_tables(text: str) -> str:
    """Drop every ``{| ... |}`` table (nested ones included); tables are data, not prose."""
    out, depth = [], 0
    for line in text.split("\n"):
        stripped = line.lstrip(": \t")
        if stripped.startswith("{|"):
            depth += 1
            continue
        if depth:
            if stripped.startswith("|}"):
                depth -= 1
            continue
        out.append(line)
    return "\n".join(out)


def _tidy(text: str) -> str:
    """Entities, spacing and punctuation left behind by removed markup."""
    if "&" in text:
        text = html.unescape(html.unescape(text))
    if not text.isascii():
        text = text.translate(_INVISIBLE)
    text = " ".join(text.split())  # every run of (Unicode) white space -> one space
    text = _RE_LEFTOVER.sub("", text)
    for _ in range(2):
        if "(" in text:
            text = _RE_EMPTY_PARENS.sub("", text)
            text = _RE_PAREN_LEAD.sub("(", text)
            text = _RE_PAREN_TRAIL.sub(")", text)
        if "[" in text:
            text = _RE_EMPTY_BRACKETS.sub("", text)
    text = _RE_SPACE_AFTER_OPEN.sub(r"\1", text)
    text = _RE_SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _RE_DOUBLE_PUNCT.sub("", text)
    return " ".join(text.split())


def _is_prose(paragraph: str) -> bool:
    words = paragraph.split()
    if len(words) < MIN_PARAGRAPH_WORDS or not _RE_SENTENCE_END.search(paragraph):
        return False
    letters = sum(map(str.isalpha, paragraph))
    return letters >= 0.6 * len(paragraph.replace(" ", "")) and any(ch.islower() for ch in paragraph)


def _drop_fragments(paragraph: str) -> str:
    """Drop sentences that lost a formula, and a leading lower-case fragment (the tail of a list)."""
    if _HOLE not in paragraph and _RE_SENTENCE_START.match(paragraph):
        return paragraph
    sentences = [s for s in split_sentences(paragraph) if _HOLE not in s]
    if sentences and not _RE_SENTENCE_START.match(sentences[0]):
        sentences.pop(0)
    return " ".join(sentences)


def _drop_dangling_intro(paragraph: str) -> str:
    """``... These are:`` (a list followed, now gone): drop that last, unfinished sentence."""
    if paragraph.endswith(":"):
        sentences = split_sentences(paragraph)
        paragraph = " ".join(sentences[:-1])
    return paragraph


def wikitext_to_paragraphs(wikitext: str) -> list[str]:
    """Clean prose paragraphs of one article's wikitext (see the module docstring)."""
    text = wikitext.replace("\r\n", "\n").replace("\r", "\n")
    text = _RE_COMMENT.sub("", text)
    text = _RE_REF_SELF.sub("", text)
    text = _RE_REF.sub("", text)
    text = _RE_DROP_TAGS.sub("", text)
    text = _RE_HOLE_TAGS.sub(_HOLE, text)
    text = _RE_MAGIC.sub("", text)
    text = expand_templates(text)
    text = _remove_tables(text)
    text = _expand_links(text)
    text = _RE_EXT_LINK.sub(r"\1", text)
    text = _RE_URL.sub("", text)
    text = _RE_BR.sub(" ", text)
    text = _RE_LI.sub("\n* ", text)
    text = _RE_BREAK_TAGS.sub("\n\n", text)
    text = _RE_TAG.sub("", text)
    text = _RE_QUOTES.sub("", text)

    paragraphs: list[str] = []
    current: list[str] = []
    list_items: list[str] = []
    skip_level = 0  # > 0 while inside a reference-only section of that heading level

    def flush() -> None:
        for block in (current, list_items):
            if block:
                paragraph = _drop_dangling_intro(_drop_fragments(_tidy(" ".join(block))))
                if _is_prose(paragraph):
                    paragraphs.append(paragraph)
                block.clear()

    for line in text.split("\n"):
        heading = _RE_HEADING.match(line.strip())
        if heading:
            flush()
            level = len(heading.group(1))
            if skip_level and level > skip_level:
                continue
            title = _tidy(heading.group(2)).lower().strip(" :")
            skip_level = level if title in _SKIP_SECTIONS else 0
            continue
        if skip_level:
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("----"):
            flush()
            continue
        if stripped[0] in "|!}" or stripped.startswith("{|"):  # table or template residue
            continue
        if stripped[0] in "*#;:":
            item = stripped.lstrip("*#;: ").strip()
            if current:
                flush()
            # Keep list items that are sentences; bare names and link lists are not prose.
            if (
                len(item.split()) >= MIN_PARAGRAPH_WORDS
                and _RE_SENTENCE_END.search(item)
                and _RE_SENTENCE_START.match(item)
            ):
                list_items.append(item)
            elif list_items:
                flush()
            continue
        if list_items:
            flush()
        current.append(stripped)
    flush()
    return paragraphs


def _is_disambiguation(title: str, wikitext: str) -> bool:
    if "(disambiguation)" in title.lower():
        return True
    for match in re.finditer(r"\{\{\s*([^|}\n]+)", wikitext):
        if match.group(1).strip().lower().replace("_", " ") in _DISAMBIGUATION_TEMPLATES:
            return True
    return False


def clean_wiki_page(title: str, wikitext: str, ns: str = "0", redirect: bool = False) -> str | None:
    """The prose of one page as paragraphs joined by blank lines, or None for a non-article.

    Non-articles: other namespaces, redirects, disambiguation and set-index pages, lists/outlines/
    glossaries, and pages with fewer than ``MIN_DOCUMENT_WORDS`` words of prose left.
    """
    if ns != "0" or redirect or wikitext.lstrip()[:9].upper() == "#REDIRECT":
        return None
    if _LIST_TITLE.match(title) or _is_disambiguation(title, wikitext):
        return None
    paragraphs = wikitext_to_paragraphs(wikitext)
    if paragraphs and re.search(r"\bmay (also )?refer to\b", paragraphs[0]):
        return None
    text = "\n\n".join(paragraphs)
    if len(text.split()) < MIN_DOCUMENT_WORDS:
        return None
    return text


# ---------------------------------------------------------------------------------------------
# Public entry points


def wikipedia_dump_path() -> Path:
    """The bz2 MediaWiki XML dump shard that ships in gensim's test data."""
    return package_file(WIKI_PACKAGE, *WIKI_PARTS)


_LOCK = threading.Lock()
_DOCUMENTS: tuple[dict[str, str], ...] | None = None


def _build_documents() -> list[dict[str, str]]:
    documents = []
    for page in iter_wiki_pages(wikipedia_dump_path()):
        text = clean_wiki_page(
            str(page["title"]), str(page["wikitext"]), ns=str(page["ns"]), redirect=bool(page["redirect"])
        )
        if text is not None:
            documents.append({"id": f"enwiki-{page['id']}", "title": str(page["title"]), "text": text})
    return documents


def _documents_cache_path() -> Path:
    return cache_dir() / f"enwiki-gensim-documents-v{CLEANER_VERSION}.jsonl"


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def wikipedia_documents() -> list[dict[str, str]]:
    """The articles of gensim's English Wikipedia shard as clean prose: ``{"id", "title", "text"}``.

    ``text`` holds paragraphs separated by ``"\\n\\n"``. Built once (about two seconds) and cached
    in memory and under :func:`cache_dir`; a new ``CLEANER_VERSION`` rebuilds.
    """
    global _DOCUMENTS
    with _LOCK:
        if _DOCUMENTS is None:
            path = _documents_cache_path()
            try:
                documents = _read_jsonl(path)
            except (OSError, ValueError):
                documents = _build_documents()
                try:
                    _write_jsonl(path, documents)
                except OSError:  # a read-only home: the in-memory copy is enough
                    pass
            _DOCUMENTS = tuple(documents)
        return [dict(document) for document in _DOCUMENTS]


def wikipedia_passages(max_words: int = 100) -> list[dict[str, str]]:
    """Sentence-packed passages ``{"id", "doc_id", "title", "text"}`` of :func:`wikipedia_documents`."""
    passages = []
    for document in wikipedia_documents():
        for k, text in enumerate(pack_passages(document["text"], max_words)):
            passages.append(
                {
                    "id": f"{document['id']}-{k}",
                    "doc_id": document["id"],
                    "title": document["title"],
                    "text": text,
                }
            )
    return passages


def embedded_wikipedia_corpus(max_words: int = 100) -> Path:
    """Path of a JSON-lines file of Wikipedia training passages (see :func:`wikipedia_passages`).

    Written once, atomically, as ``cache_dir()/enwiki-gensim-passages-v{CLEANER_VERSION}-w{max_words}.jsonl``.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    path = cache_dir() / f"enwiki-gensim-passages-v{CLEANER_VERSION}-w{max_words}.jsonl"
    if not path.is_file():
        _write_jsonl(path, wikipedia_passages(max_words))
    return path
