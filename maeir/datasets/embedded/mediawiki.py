"""MediaWiki dumps: reading the XML pages, and expanding the templates that carry prose.

Used by :mod:`maeir.datasets.embedded.wikipedia`: a few inline templates that carry text (like
``{{convert}}`` or ``{{lang}}``) keep their text, every other template is dropped whole.
"""

from __future__ import annotations

import bz2
import os
import re
from collections.abc import Callable, Iterator
from xml.etree import ElementTree

# Inline content that cannot be rendered as text (formulas ...): a sentence that held one is dropped.
HOLE = "\x07"
_MONTHS = ("January February March April May June July August September October November December").split()
_RE_NAMED_ARG = re.compile(r"^\s*([A-Za-z0-9_ -]+?)\s*=(.*)$", re.DOTALL)


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
# Templates


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
    "angbr": lambda p, n: f"⟨{_first(p)}⟩" if _first(p).strip() else HOLE,
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


def replace_balanced(text: str, opener: str, closer: str, render: Callable[[str], str]) -> str:
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
        return _render_template(expand_templates(inner))
    return ""  # a template that contributes no text (citations, infoboxes ...): skip it whole


def expand_templates(text: str) -> str:
    """Replace every (nested) ``{{template}}`` by its text, innermost first."""
    return replace_balanced(text, "{{", "}}", _template_text)
