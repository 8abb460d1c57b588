"""The embedded Wikipedia corpus (clean prose, sentence-packed passages) and the text corpus reader."""

from __future__ import annotations

import json
import os
import re

import pytest

from maeir.data.corpus import load_text_corpus
from maeir.data.sentences import pack_passages, split_sentences
from maeir.datasets.embedded import (
    CLEANER_VERSION,
    clean_wiki_page,
    embedded_wikipedia_corpus,
    lee_corpus_path,
    package_file,
    wikipedia_documents,
    wikipedia_passages,
)
from maeir.datasets.embedded.wikipedia import wikitext_to_paragraphs
from maeir.errors import CorpusFormatError

MARKUP = (
    "[[",
    "]]",
    "{{",
    "}}",
    "{|",
    "|}",
    "<ref",
    "</ref",
    "'''",
    "''",
    "&nbsp;",
    "&amp;",
    "<br",
    "thumb|",
)


@pytest.fixture(scope="module", autouse=True)
def maeir_cache(tmp_path_factory):
    """A private cache folder for the module (corpus files and normalised copies are built there)."""
    folder = tmp_path_factory.mktemp("maeir_cache")
    old = os.environ.get("MAEIR_CACHE")
    os.environ["MAEIR_CACHE"] = str(folder)
    yield folder
    if old is None:
        del os.environ["MAEIR_CACHE"]
    else:
        os.environ["MAEIR_CACHE"] = old


@pytest.fixture(scope="module")
def documents(maeir_cache):
    return wikipedia_documents()


# -- the Wikipedia cleaner ----------------------------------------------------------------------


def test_wikipedia_documents_are_clean_prose(documents):
    assert 80 <= len(documents) <= 206
    ids = [d["id"] for d in documents]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"enwiki-\d+", i) for i in ids)
    for doc in documents:
        assert set(doc) == {"id", "title", "text"}
        text = doc["text"]
        for token in MARKUP:
            assert token not in text, (doc["title"], token)
        for paragraph in text.split("\n\n"):
            assert paragraph.strip() == paragraph and paragraph
            assert "\n" not in paragraph
            assert not re.match(r"^(=|\*|#|:|;|\|)", paragraph), (doc["title"], paragraph[:80])
        assert not re.search(r"(?m)^==|==$", text)
        assert "(disambiguation)" not in doc["title"] and not doc["title"].startswith("List of")
    titles = {d["title"] for d in documents}
    assert {"Anarchism", "Albedo", "Abraham Lincoln"} <= titles
    assert not titles & {"AccessibleComputing", "Ada", "Alien", "Aa River", "List of anthropologists"}
    albedo = next(d for d in documents if d["title"] == "Albedo")["text"]
    assert albedo.startswith("Albedo or reflection coefficient, derived from Latin albedo")
    assert "about 15 °C" in albedo  # &nbsp; and the degree sign survive as text


def test_cleaner_on_handwritten_wikitext():
    wikitext = """{{Infobox thing
| name = X
| image = [[File:X.png|thumb|caption with [[link]]]]
}}
'''Foo''' ({{IPAc-en|f|uː}}; {{lang-de|Fu}}) is a [[bar (thing)|bar]] of about {{convert|15|km|mi}}.<ref name="a">{{cite web|url=http://x.org|title=T}}</ref> It has [[baz]]es.<ref name="a"/>
<!-- a hidden comment -->
[[File:Foo.jpg|thumb|200px|A picture of [[Foo]].]]

==History==
In 1900&nbsp;it was found by [http://example.org the finders] near [[Paris, Texas|]].
{| class="wikitable"
|-
! A !! B
|-
| 1 || 2
|}
The following kinds exist:
* short item
* This list item is a complete sentence about foo.

== See also ==
* [[Bar]]

[[Category:Things]]
[[de:Foo]]
"""
    paragraphs = wikitext_to_paragraphs(wikitext)
    assert paragraphs == [
        "Foo (Fu) is a bar of about 15 km. It has bazes.",
        "In 1900 it was found by the finders near Paris.",
        "This list item is a complete sentence about foo.",
    ]


@pytest.mark.parametrize(
    ("title", "wikitext", "ns"),
    [
        ("AbacuS", "#REDIRECT [[Abacus]] {{R from CamelCase}}", "0"),
        ("Foo (disambiguation)", "'''Foo''' may refer to: " + "a thing among many other things. " * 20, "0"),
        ("Foo", "'''Foo''' is a name. " * 30 + "{{disambiguation}}", "0"),
        ("List of foos", "This is a list of foos with many foos in it. " * 20, "0"),
        ("Talk:Foo", "Some discussion of the article that is quite long indeed. " * 20, "1"),
        ("Foo", "'''Foo''' is short.", "0"),
    ],
)
def test_non_articles_are_dropped(title, wikitext, ns):
    assert clean_wiki_page(title, wikitext, ns=ns) is None


def test_split_sentences_knows_abbreviations():
    text = 'Dr. Smith moved to Washington D.C. in 1990, e.g. for work. J. R. R. Tolkien wrote it. "Is it?" He left.'
    assert split_sentences(text) == [
        "Dr. Smith moved to Washington D.C. in 1990, e.g. for work.",
        "J. R. R. Tolkien wrote it.",
        '"Is it?"',
        "He left.",
    ]


def test_pack_passages_splits_only_overlong_sentences():
    long_sentence = " ".join(f"w{i}" for i in range(25)) + "."
    text = "One two three. Four five six seven.\n\n" + long_sentence + " Eight nine. Ten."
    passages = pack_passages(text, max_words=10)
    assert passages == [
        "One two three. Four five six seven.",
        " ".join(f"w{i}" for i in range(10)),
        " ".join(f"w{i}" for i in range(10, 20)),
        " ".join(f"w{i}" for i in range(20, 24)) + " w24.",
        "Eight nine. Ten.",
    ]
    with pytest.raises(ValueError):
        pack_passages(text, max_words=0)


def test_embedded_corpus_passages(documents, maeir_cache):
    max_words = 60
    path = embedded_wikipedia_corpus(max_words=max_words)
    assert path.parent == maeir_cache and f"v{CLEANER_VERSION}" in path.name and "w60" in path.name
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) > len(documents)
    by_doc: dict[str, list[dict]] = {}
    for row in rows:
        assert set(row) == {"id", "doc_id", "title", "text"}
        assert 1 <= len(row["text"].split()) <= max_words
        by_doc.setdefault(row["doc_id"], []).append(row)
    for doc in documents:
        parts = by_doc[doc["id"]]
        assert [p["id"] for p in parts] == [f"{doc['id']}-{k}" for k in range(len(parts))]
        # Packing only regroups the words: nothing lost, reordered or added.
        assert " ".join(p["text"] for p in parts).split() == doc["text"].split()
        # Every passage starts at a sentence start, or inside a sentence longer than max_words at a
        # multiple of max_words.
        allowed, position = set(), 0
        for paragraph in doc["text"].split("\n\n"):
            for sentence in split_sentences(paragraph):
                n_words = len(sentence.split())
                allowed.add(position)
                allowed.update(range(position + max_words, position + n_words, max_words))
                position += n_words
        position = 0
        for part in parts:
            assert position in allowed, (doc["title"], part["text"][:80])
            position += len(part["text"].split())
    # Cached: the second call does not rewrite; the ids are deterministic.
    mtime = path.stat().st_mtime_ns
    assert embedded_wikipedia_corpus(max_words=max_words) == path and path.stat().st_mtime_ns == mtime
    assert [p["id"] for p in wikipedia_passages(max_words)] == [r["id"] for r in rows]


def test_package_files():
    assert lee_corpus_path().is_file()
    with pytest.raises(ImportError, match=r"pip install maeir\[data\]"):
        package_file("no_such_package_maeir_test", "x.txt")
    with pytest.raises(FileNotFoundError, match="gensim"):
        package_file("gensim", "no", "such_file.txt")


# -- the corpus reader --------------------------------------------------------------------------


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_jsonl_round_trip(tmp_path):
    records = [
        {"text": "first text", "id": 1},
        {"text": "second text", "score": "x"},
        {"text": "third", "id": 3},
    ]
    path = _write(tmp_path / "c.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode())
    dataset = load_text_corpus(path, cache_dir=tmp_path / "hf")
    assert dataset.column_names == ["text"]
    assert dataset["text"] == ["first text", "second text", "third"]
    assert load_text_corpus(path, max_samples=2, cache_dir=tmp_path / "hf")["text"] == [
        "first text",
        "second text",
    ]


def test_jsonl_custom_field_blank_lines_and_bom(tmp_path):
    data = '\ufeff{"body": "caf\u00e9 one", "n": 1}\n\n{"body": "two", "n": "mixed"}\n   \n'.encode()
    path = _write(tmp_path / "c.json", data)
    dataset = load_text_corpus(path, text_field="body", cache_dir=tmp_path / "hf")
    assert dataset.column_names == ["text"] and dataset["text"] == ["caf\u00e9 one", "two"]


def test_txt_round_trip(tmp_path):
    path = _write(tmp_path / "c.txt", b"line one\n\n   \nline two\r\nline three\n")
    dataset = load_text_corpus(path, cache_dir=tmp_path / "hf")
    assert dataset.column_names == ["text"]
    assert dataset["text"] == ["line one", "line two", "line three"]


def test_lee_corpus_loads_as_text(tmp_path):
    dataset = load_text_corpus(lee_corpus_path(), cache_dir=tmp_path / "hf")
    assert len(dataset) == 300 and dataset.column_names == ["text"]


def test_default_is_embedded_wikipedia(maeir_cache, tmp_path):
    dataset = load_text_corpus(None, max_samples=5, cache_dir=tmp_path / "hf")
    assert dataset.column_names == ["text"] and len(dataset) == 5
    assert dataset[0]["text"].startswith("Anarchism is a political philosophy")


@pytest.mark.parametrize(
    ("name", "data", "line", "field", "message"),
    [
        ("bad_json.jsonl", b'{"text": "a"}\n{"text": "b"}\n{"text": "c",,}\n', 3, None, "not valid JSON"),
        ("missing.jsonl", b'{"text": "a"}\n{"body": "b"}\n', 2, "text", "missing"),
        (
            "number.jsonl",
            b'{"text": "a"}\n{"text": "b"}\n{"text": 42}\n',
            3,
            "text",
            "expected a string, found a number",
        ),
        ("null.jsonl", b'{"text": null}\n', 1, "text", "expected a string, found null"),
        ("empty_text.jsonl", b'{"text": "a"}\n{"text": "  "}\n', 2, "text", "empty text"),
        ("array.jsonl", b'{"text": "a"}\n["text"]\n', 2, None, "expected a JSON object"),
        ("nan.jsonl", b'{"text": "a", "x": NaN}\n', 1, None, "NaN is not valid JSON"),
        ("pretty.json", b'[\n  {"text": "a"}\n]\n', 1, None, "one complete JSON object per line"),
        (
            "utf8.jsonl",
            b'{"text": "a"}\n{"text": "b"}\n{"text": "c"}\n{"text": "caf\xe9"}\n',
            4,
            None,
            "invalid UTF-8",
        ),
        ("utf8.txt", b"good line\nanother\nbad \xff\xfe line\n", 3, None, "invalid UTF-8"),
        ("empty.jsonl", b"", None, None, "empty"),
        ("blank.jsonl", b"\n  \n\n", None, None, "empty"),
        ("empty.txt", b"\n\n   \n", None, None, "empty"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path, name, data, line, field, message):
    path = _write(tmp_path / name, data)
    with pytest.raises(CorpusFormatError) as info:
        load_text_corpus(path, cache_dir=tmp_path / "hf")
    err = info.value
    assert err.path == str(path) and err.line == line and err.field == field
    assert message in str(err)
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(err).startswith(where)


def test_reader_rejects_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(CorpusFormatError, match="unsupported corpus file type"):
        load_text_corpus(_write(tmp_path / "c.csv", b"text\na\n"))
    with pytest.raises(CorpusFormatError, match="not found"):
        load_text_corpus(tmp_path / "missing.jsonl")
