"""Real text that ships on PyPI: the default, offline pre-training corpora.

Two small real corpora come with ``gensim``'s wheel (its test data), installed by ``pip install
maeir[data]``:

- :func:`wikipedia_documents`: the English Wikipedia shard of gensim's test data (206 pages of a
  MediaWiki XML dump, 96 articles once cleaned), turned into clean prose: redirects, disambiguation pages, lists and non-article
  namespaces are dropped; templates, tables, files, references, HTML tags and wiki markup are
  removed (a few inline templates that carry text, like ``{{convert}}`` or ``{{lang}}``, keep their
  text); headings become paragraph breaks and reference-only sections (References, See also, ...)
  are dropped.
- :func:`lee_corpus_path`: gensim's ``lee_background.cor``, 300 short news documents, one per line.

:func:`embedded_wikipedia_corpus` packs the Wikipedia prose into sentence-aligned passages and
caches them as JSON lines under :func:`cache_dir`. The files are located through the import
machinery without importing ``gensim`` (importing it costs seconds and pulls in scipy).
"""

from __future__ import annotations

import bz2
import html
import importlib.resources
import importlib.util
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree import ElementTree

from ..io_utils import atomic_write_text

#: Bump when the cleaner or the passage packer changes: cached files carry it in their names.
CLEANER_VERSION = 2

DATA_EXTRA_HINT = "pip install maeir[data]"
WIKI_PACKAGE = "gensim"
WIKI_PARTS = (
    "test",
    "test_data",
    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
)
LEE_PARTS = ("test", "test_data", "lee_background.cor")

MIN_PARAGRAPH_WORDS = 6
MIN_DOCUMENT_WORDS = 50


class MissingDataPackageError(ImportError):
    """An optional package that holds embedded data (``maeir[data]``) is not installed."""


def cache_dir() -> Path:
    """Where maeir caches derived data: ``$MAEIR_CACHE``, else ``~/.cache/maeir``."""
    env = os.environ.get("MAEIR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "maeir"


def package_file(package: str, *parts: str) -> Path:
    """Path of the data file ``parts`` inside the installed ``package`` (which is not imported).

    Raises :class:`MissingDataPackageError` naming the pip extra when the package is missing, and
    :class:`FileNotFoundError` when the package is there but the file is not.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise MissingDataPackageError(
            f"the embedded data needs the Python package {package!r}, which is not installed: "
            f"run `{DATA_EXTRA_HINT}` (or `pip install {package}`)"
        )
    roots: list[Path] = []
    if spec.submodule_search_locations:
        roots = [Path(location) for location in spec.submodule_search_locations]
    elif spec.origin:
        roots = [Path(spec.origin).parent]
    for root in roots:
        candidate = root.joinpath(*parts)
        if candidate.is_file():
            return candidate
    if not roots:  # installed in an unusual way (zip import ...): ask importlib.resources (imports it)
        try:
            resource = importlib.resources.files(package).joinpath(*parts)
            if resource.is_file() and isinstance(resource, Path):
                return resource
        except (ImportError, TypeError, FileNotFoundError):
            pass
    where = ", ".join(str(root) for root in roots) or "?"
    raise FileNotFoundError(
        f"{'/'.join(parts)} not found in the installed package {package!r} ({where}); "
        f"reinstall it with `pip install --force-reinstall {package}` or `{DATA_EXTRA_HINT}`"
    )


def lee_corpus_path() -> Path:
    """gensim's ``lee_background.cor``: 300 short news documents, one per line (plain text)."""
    return package_file(WIKI_PACKAGE, *LEE_PARTS)


def wikipedia_dump_path() -> Path:
    """The bz2 MediaWiki XML dump shard that ships in gensim's test data."""
    return package_file(WIKI_PACKAGE, *WIKI_PARTS)


# ---------------------------------------------------------------------------------------------
# Reading the MediaWiki XML dump


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ElementTree.Element, name: str) -> ElementTree.Element | None:
    for child in elem:
        if _local(child.tag) == name:
            return child
    return None


def iter_wiki_pages(path: str | os.PathLike) -> Iterator[dict[str, object]]:
    """``{"id", "title", "ns", "redirect", "wikitext"}`` for each page of a (bz2) MediaWiki dump."""
    opener = bz2.open if os.fspath(path).endswith(".bz2") else open
    with opener(path, "rb") as handle:
        for _event, elem in ElementTree.iterparse(handle, events=("end",)):
            if _local(elem.tag) != "page":
                continue
            title = _child(elem, "title")
            ns = _child(elem, "ns")
            page_id = _child(elem, "id")
            revision = _child(elem, "revision")
            text = _child(revision, "text") if revision is not None else None
            yield {
                "id": (page_id.text or "").strip() if page_id is not None else "",
                "title": (title.text or "").strip() if title is not None else "",
                "ns": (ns.text or "0").strip() if ns is not None else "0",
                "redirect": _child(elem, "redirect") is not None,
                "wikitext": (text.text or "") if text is not None else "",
            }
            elem.clear()


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
_HOLE = "\x07"
_MONTHS = ("January February March April May June July August September October November December").split()

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
_RE_NAMED_ARG = re.compile(r"^\s*([A-Za-z0-9_ -]+?)\s*=(.*)$", re.DOTALL)
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


def _matching(text: str, start: int, opener: str, closer: str) -> int:
    """Index of the ``closer`` that balances the ``opener`` at ``start``, or -1."""
    depth, i = 0, start
    while True:
        next_open = text.find(opener, i)
        next_close = text.find(closer, i)
        if next_close < 0:
            return -1
        if 0 <= next_open < next_close:
            depth += 1
            i = next_open + len(opener)
        else:
            depth -= 1
            if depth == 0:
                return next_close
            i = next_close + len(closer)


def _split_args(inner: str) -> list[str]:
    """Split template content at the ``|`` that are not inside ``[[...]]`` or ``{{...}}``."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(inner):
        pair = inner[i : i + 2]
        if pair in ("[[", "{{"):
            depth += 1
            i += 2
            continue
        if pair in ("]]", "}}") and depth:
            depth -= 1
            i += 2
            continue
        if inner[i] == "|" and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
        i += 1
    parts.append(inner[start:])
    return parts


def _date(args: list[str]) -> str:
    """``{{birth date|1879|3|14}}`` -> ``14 March 1879``."""
    nums = [a.strip() for a in args if a.strip()]
    if not nums:
        return ""
    year = nums[0]
    if len(nums) >= 3 and nums[1].isdigit() and nums[2].isdigit() and 1 <= int(nums[1]) <= 12:
        return f"{int(nums[2])} {_MONTHS[int(nums[1]) - 1]} {year}"
    if len(nums) >= 2 and nums[1].isdigit() and 1 <= int(nums[1]) <= 12:
        return f"{_MONTHS[int(nums[1]) - 1]} {year}"
    return year


_UNITS = {
    "c": "°C", "f": "°F", "k": "K", "km2": "km²", "m2": "m²", "sqmi": "sq mi", "sqkm": "km²",
    "sqft": "sq ft", "m3": "m³", "cuft": "cu ft", "kmh": "km/h", "km/h": "km/h", "mph": "mph",
    "ftin": "ft", "acre": "acres", "ha": "ha", "e6km2": "million km²", "e6sqmi": "million sq mi",
    "e3km2": "thousand km²", "e3sqmi": "thousand sq mi", "e6acre": "million acres", "mi": "mi",
    "km": "km", "m": "m", "ft": "ft", "kg": "kg", "lb": "lb", "t": "t", "cm": "cm", "mm": "mm",
    "in": "in", "nmi": "nmi", "l": "L", "usgal": "US gal", "impgal": "imp gal", "g": "g", "oz": "oz",
    "au": "AU", "ly": "ly", "pc": "pc", "kn": "kn", "hp": "hp", "kw": "kW", "w": "W", "mw": "MW",
}  # fmt: skip
_RANGE_WORDS = {"-", "–", "to", "and", "or", "by", "x", "×", "+/-", "±", "to(-)", "and(-)"}


def _convert(positional: list[str]) -> str:
    """``{{convert|15|km|mi}}`` -> ``15 km``; ``{{convert|3|to|5|m}}`` -> ``3 to 5 m``."""
    args = [a.strip() for a in positional]
    if not args:
        return ""
    value, rest = args[0], args[1:]
    while len(rest) >= 2 and rest[0].lower() in _RANGE_WORDS:
        value = f"{value} {'–' if rest[0] == '-' else rest[0]} {rest[1]}"
        rest = rest[2:]
    unit = rest[0] if rest else ""
    unit = _UNITS.get(unit.lower(), unit)
    return f"{value} {unit}".strip()


def _first(positional: list[str]) -> str:
    return positional[0] if positional else ""


def _last(positional: list[str]) -> str:
    return positional[-1] if positional else ""


def _frac(positional: list[str]) -> str:
    args = [a.strip() for a in positional]
    if len(args) == 3:
        return f"{args[0]} {args[1]}/{args[2]}"
    if len(args) == 2:
        return f"{args[0]}/{args[1]}"
    return f"1/{args[0]}" if args else ""


def _as_of(positional: list[str], named: dict[str, str]) -> str:
    date = _date(positional)
    if not date:
        return ""
    return f"{'as' if named.get('lc', '').lower() in ('y', 'yes', 'true', '1') else 'As'} of {date}"


def _quote(positional: list[str], named: dict[str, str]) -> str:
    text = named.get("text") or named.get("quote") or (positional[0] if positional else "")
    return f"\n\n{text}\n\n" if text.strip() else ""


_TEMPLATE_HANDLERS: dict[str, Callable[[list[str], dict[str, str]], str]] = {
    "convert": lambda p, n: _convert(p),
    "cvt": lambda p, n: _convert(p),
    "lang": lambda p, n: p[1] if len(p) > 1 else "",
    "transl": lambda p, n: _last(p),
    "transliteration": lambda p, n: _last(p),
    "nihongo": lambda p, n: _first(p),
    "small": lambda p, n: _first(p),
    "smaller": lambda p, n: _first(p),
    "big": lambda p, n: _first(p),
    "larger": lambda p, n: _first(p),
    "em": lambda p, n: _first(p),
    "strong": lambda p, n: _first(p),
    "sic": lambda p, n: "".join(p),
    "vanchor": lambda p, n: _first(p),
    "abbr": lambda p, n: _first(p),
    "keypress": lambda p, n: "+".join(p),
    "mvar": lambda p, n: _first(p),
    "math": lambda p, n: _first(p),
    "dts": lambda p, n: " ".join(p),
    "nts": lambda p, n: _first(p),
    "ntsh": lambda p, n: _first(p),
    "ill": lambda p, n: _first(p),
    "interlanguage link": lambda p, n: _first(p),
    "not a typo": lambda p, n: _first(p),
    "proper name": lambda p, n: _first(p),
    "noitalic": lambda p, n: _first(p),
    "angbr": lambda p, n: f"⟨{_first(p)}⟩" if _first(p).strip() else _HOLE,
    "chem": lambda p, n: "".join(a.strip() for a in p),
    "frac": lambda p, n: _frac(p),
    "sfrac": lambda p, n: _frac(p),
    "val": lambda p, n: f"{_first(p)} {n.get('u', '')}".strip(),
    "as of": _as_of,
    "nbsp": lambda p, n: " ",
    "·": lambda p, n: " · ",
    "dot": lambda p, n: " · ",
    "middot": lambda p, n: " · ",
    "!": lambda p, n: "|",
    "'s": lambda p, n: "'s",
    "'": lambda p, n: "'",
    "snd": lambda p, n: " – ",
    "spnd": lambda p, n: " – ",
    "spaced ndash": lambda p, n: " – ",
    "ndash": lambda p, n: "–",
    "mdash": lambda p, n: "—",
    "spaced mdash": lambda p, n: " — ",
    "c.": lambda p, n: f"c. {_first(p)}",
    "circa": lambda p, n: f"c. {_first(p)}",
    "fl.": lambda p, n: f"fl. {_first(p)}",
    "floruit": lambda p, n: f"fl. {_first(p)}",
    "bc": lambda p, n: f"{_first(p)} BC",
    "bce": lambda p, n: f"{_first(p)} BCE",
    "flag": lambda p, n: _first(p),
    "flagcountry": lambda p, n: _first(p),
    "birth date": lambda p, n: _date(p),
    "death date": lambda p, n: _date(p),
    "birth date and age": lambda p, n: _date(p),
    "death date and age": lambda p, n: _date(p),
    "birth year and age": lambda p, n: _date(p[:1]),
    "start date": lambda p, n: _date(p),
    "end date": lambda p, n: _date(p),
    "quote": _quote,
    "quotation": _quote,
    "cquote": _quote,
    "blockquote": _quote,
    "centuries": lambda p, n: _first(p),
    "visible anchor": lambda p, n: _first(p),
    "lang-en": lambda p, n: _first(p),
}


_RAW_TEMPLATES = {"nowrap", "nobr", "no wrap"}
_KEPT_TEMPLATES = _RAW_TEMPLATES | set(_TEMPLATE_HANDLERS)


def _template_key(name: str) -> str:
    """``Template:Lang_fr `` -> ``lang fr``: the normalised name of a template."""
    key = re.sub(r"\s+", " ", name.replace("_", " ")).strip().lower()
    return key[len("template:") :].strip() if key.startswith("template:") else key


def _render_template(inner: str) -> str:
    """The text a template contributes to the prose: kept for a few inline templates, else ``""``."""
    args = _split_args(inner)
    name = _template_key(args[0])
    if name in _RAW_TEMPLATES:  # the whole content is text, '=' and '|' included
        return "|".join(args[1:])
    handler = _TEMPLATE_HANDLERS.get(name)
    if handler is None and re.fullmatch(r"lang-[a-z-]+", name):
        handler = _TEMPLATE_HANDLERS["lang-en"]
    if handler is None:
        return ""
    positional, named = [], {}
    for arg in args[1:]:
        match = _RE_NAMED_ARG.match(arg)
        if match and not match.group(1).strip().isdigit():
            named[match.group(1).strip().lower()] = match.group(2).strip()
        elif match:
            index = int(match.group(1).strip())
            while len(positional) < index:
                positional.append("")
            positional[index - 1] = match.group(2).strip()
        else:
            positional.append(arg)
    return handler(positional, named)


def _replace_balanced(text: str, opener: str, closer: str, render: Callable[[str], str]) -> str:
    """Replace every balanced ``opener ... closer`` (outermost first) by ``render(what is inside)``.

    An opener without its closer is dropped and the scan goes on right after it.
    """
    out, i = [], 0
    while True:
        start = text.find(opener, i)
        if start < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        end = _matching(text, start, opener, closer)
        if end < 0:  # unbalanced: drop the opener, keep the rest
            i = start + len(opener)
            continue
        out.append(render(text[start + len(opener) : end]))
        i = end + len(closer)
    return "".join(out)


def _template_text(inner: str) -> str:
    """The text of ``{{inner}}``: nested templates expanded first; ``""`` for a template that carries none."""
    name = inner.split("|", 1)[0]
    if "{{" in name or _template_key(name) in _KEPT_TEMPLATES or _template_key(name).startswith("lang-"):
        return _render_template(_expand_templates(inner))
    return ""  # a template that contributes no text (citations, infoboxes ...): skip it whole


def _expand_templates(text: str) -> str:
    """Replace every (nested) ``{{template}}`` by its text, innermost first."""
    return _replace_balanced(text, "{{", "}}", _template_text)


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
    return _replace_balanced(text, "[[", "]]", _render_link)


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
    text = _expand_templates(text)
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
# Sentences and passages

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


# ---------------------------------------------------------------------------------------------
# Public entry points

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
