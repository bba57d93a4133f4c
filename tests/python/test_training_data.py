"""Training data: the pipeline (longspec.training.data: split, tokenise, pack, shards, cache) and
the corpus sources (longspec.training.sources: extractors).

No downloads and no real tokenizer: a character-level fake tokenizer stands in for the HF one, and
the extractors are pointed at small temp trees.
"""
from __future__ import annotations

import gzip
import importlib
import importlib.util
import os
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest


def _load_training_modules():
    """data, sources and html_books from the repository's source files when present (they are pure
    Python + numpy, and an installed longspec may be an older build), else the installed package.
    The source directory is loaded as a package of its own name, so that its modules' relative
    imports find each other without running longspec/__init__.py (which loads the extension)."""
    root = Path(__file__).resolve().parents[2] / "python" / "longspec" / "training"
    if not (root / "data.py").is_file():
        from longspec.training import data, html_books, sources

        return data, sources, html_books
    spec = importlib.util.spec_from_file_location("longspec_training_src", root / "__init__.py",
                                                  submodule_search_locations=[str(root)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package  # where its submodules' relative imports look it up
    spec.loader.exec_module(package)
    return tuple(importlib.import_module(f"{spec.name}.{name}") for name in ("data", "sources", "html_books"))


D, S, H = _load_training_modules()
EOS = 0


class CharTokenizer:
    """One token per character, id = code point + offset (never EOS). Same call shape as HF:
    tok(list_of_texts, add_special_tokens=False)["input_ids"] -> list of lists."""

    def __init__(self, offset: int = 1):
        self.offset = offset
        self.calls = 0

    def __call__(self, texts, add_special_tokens=True):
        assert add_special_tokens is False
        self.calls += 1
        return {"input_ids": [[ord(c) + self.offset for c in t] for t in texts]}


def _docs(n: int, seed: int = 0, sources=("stdlib", "man")) -> list:
    rng = random.Random(seed)
    return [S.Document(sources[i % len(sources)], f"dir{i % 7}/doc{i}.txt",
                       "".join(rng.choice("abcdefgh \n") for _ in range(rng.randint(0, 50))))
            for i in range(n)]


def _keys(docs) -> set:
    return {(d.source, d.name) for d in docs}


# ---------------------------------------------------------------------------- split

def test_split_is_disjoint_complete_and_deterministic():
    docs = _docs(2000)
    train, held = D.split_documents(docs, 0.05, seed=0)
    assert not _keys(train) & _keys(held)
    assert _keys(train) | _keys(held) == _keys(docs)
    assert 0.03 < len(held) / len(docs) < 0.07
    train2, held2 = D.split_documents(docs, 0.05, seed=0)
    assert train2 == train and held2 == held
    assert _keys(D.split_documents(docs, 0.05, seed=1)[1]) != _keys(held)


def test_split_ignores_order_and_other_sources():
    docs = _docs(1000, sources=("stdlib", "man", "info"))
    held = _keys(D.split_documents(docs, 0.1)[1])
    shuffled = list(docs)
    random.Random(3).shuffle(shuffled)
    assert _keys(D.split_documents(shuffled, 0.1)[1]) == held
    only_man = [d for d in docs if d.source == "man"]
    assert _keys(D.split_documents(only_man, 0.1)[1]) == {k for k in held if k[0] == "man"}
    # the text is not part of the key: editing a document does not move it across the split
    edited = [S.Document(d.source, d.name, d.text + "x") for d in docs]
    assert _keys(D.split_documents(edited, 0.1)[1]) == held


def test_split_extremes():
    docs = _docs(50)
    assert D.split_documents(docs, 0.0) == (docs, [])
    assert D.split_documents(docs, 1.0) == ([], docs)


# ---------------------------------------------------------------------------- tokenise

def test_tokenize_documents_batches_and_uint32():
    docs = _docs(300)
    tok = CharTokenizer()
    ids = D.tokenize_documents(docs, tok, batch_size=16)
    assert tok.calls == 19  # ceil(300 / 16) batched calls
    assert len(ids) == len(docs)
    for d, t in zip(docs, ids):
        assert t.dtype == np.uint32
        assert t.tolist() == [ord(c) + 1 for c in d.text]
    assert D.tokenize_documents([], tok) == []


# ---------------------------------------------------------------------------- pack

def _token_docs(n=40, seed=0, lo=0, hi=300):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 1000, size=rng.integers(lo, hi)).astype(np.uint32) for _ in range(n)]


@pytest.mark.parametrize("seq_len", [1, 7, 64, 1000])
def test_pack_sequences_keeps_every_token_in_order(seq_len):
    docs = _token_docs()
    packed = D.pack_sequences(docs, seq_len, EOS, seed=5)
    total = sum(len(d) + 1 for d in docs)
    assert packed.shape == (total // seq_len, seq_len)
    assert packed.dtype == np.uint32
    stream = packed.reshape(-1).tolist()
    # split at separators: every piece is one whole input document, each used once, except the
    # last piece, which is the truncated head of a further document
    pieces, cur = [], []
    for t in stream:
        if t == EOS:
            pieces.append(cur)
            cur = []
        else:
            cur.append(t)
    remaining = {i: d.tolist() for i, d in enumerate(docs)}
    for piece in pieces:
        match = next(i for i, d in remaining.items() if d == piece)
        del remaining[match]
    assert cur == [] or any(d[:len(cur)] == cur for d in remaining.values())
    assert stream.count(EOS) == len(pieces)


def test_pack_sequences_seeded_shuffle():
    docs = _token_docs(seed=1)
    a = D.pack_sequences(docs, 32, EOS, seed=0)
    np.testing.assert_array_equal(a, D.pack_sequences(docs, 32, EOS, seed=0))
    assert not np.array_equal(a, D.pack_sequences(docs, 32, EOS, seed=1))
    assert D.pack_sequences(docs[:1], 10_000, EOS).shape == (0, 10_000)
    assert D.pack_sequences([], 8, EOS).shape == (0, 8)


def test_long_documents_filters_by_length():
    docs = [np.zeros(n, np.uint32) for n in (0, 5, 99, 100, 101, 5000)]
    assert [len(d) for d in D.long_documents(docs, 100)] == [100, 101, 5000]
    assert D.long_documents(docs, 10_000) == []


# ---------------------------------------------------------------------------- shards

@pytest.mark.parametrize("max_id, stored", [(65535, np.uint16), (65536, np.uint32), (151_645, np.uint32)])
def test_shard_round_trip_list(tmp_path, max_id, stored):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, max_id, size=n, endpoint=True).astype(np.uint32) for n in (0, 1, 17, 3000)]
    docs[-1][0] = max_id
    docs += [np.arange(5, dtype=np.uint32)] * 11  # > 10 docs: key order must stay numeric
    path = tmp_path / "docs.npz"
    size = D.save_token_shards(path, docs)
    assert size == path.stat().st_size > 0
    with np.load(path) as z:
        assert {z[k].dtype for k in z.files} == {np.dtype(stored)}
    back = D.load_token_shards(path)
    assert len(back) == len(docs)
    for a, b in zip(docs, back):
        assert b.dtype == np.uint32
        np.testing.assert_array_equal(a, b)
    assert D.load_token_shards(path, dtype=None)[3].dtype == stored


def test_shard_round_trip_packed(tmp_path):
    packed = D.pack_sequences(_token_docs(), 16, EOS)
    path = tmp_path / "packed.npz"
    D.save_token_shards(path, packed)
    back = D.load_token_shards(path)
    assert isinstance(back, np.ndarray) and back.dtype == np.uint32
    np.testing.assert_array_equal(back, packed)
    with np.load(path) as z:  # what the training CLI does
        assert z[z.files[0]].dtype == np.uint16


# ---------------------------------------------------------------------------- extractors

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_extract_stdlib_skips_tests_small_and_third_party(tmp_path):
    big = "x = 1\n" * 500  # 3000 bytes
    for rel in ("json/decoder.py", "os.py", "test/test_os.py", "idlelib/editor.py", "lib2to3/tests/t.py",
                "site-packages/numpy/core.py", "unittest/test/test_case.py", "json/README.txt"):
        _write(tmp_path / rel, big)
    _write(tmp_path / "tiny.py", "pass\n")
    docs, prov = S.extract_stdlib(tmp_path)
    assert [d.name for d in docs] == ["json/decoder.py", "os.py"]
    assert all(d.source == "stdlib" and d.text == big for d in docs)
    assert prov["root"] == str(tmp_path)


def test_extract_pydocs_from_unpacked_tree(tmp_path):
    src = tmp_path / "usr/share/doc/python3.11/html/_sources"
    _write(src / "library/json.rst.txt", "json\n====\n")
    _write(src / "index.rst.txt", "index\n")
    _write(src / "library/notes.txt", "not rst\n")
    docs, _ = S.extract_pydocs(tmp_path)
    assert [(d.name, d.text) for d in docs] == [("index.rst", "index\n"), ("library/json.rst", "json\n====\n")]


def test_extract_info_joins_subfiles_and_drops_tables(tmp_path):
    def gz(name, text):
        with gzip.open(tmp_path / name, "wt") as f:
            f.write(text)

    gz("foo.info.gz", "This is foo.info.\nPreamble.\n\x1f\nIndirect:\nfoo.info-1: 100\n\x1f\nTag Table:\n"
                      "(Indirect)\nNode: Top\x7f100\n\x1f\nEnd Tag Table\n")
    gz("foo.info-2.gz", "This is foo.info.\n\x1f\nFile: foo.info, Node: Two\n\nSecond part.\n")
    gz("foo.info-1.gz", "This is foo.info.\n\x1f\nFile: foo.info, Node: Top\n\nFirst \x00\x08[index\x00\x08]part.\n")
    (tmp_path / "bar.info").write_text("Bar manual.\n\x1f\nFile: bar.info, Node: Top\n\nBar text.\n")
    (tmp_path / "dir").write_text("directory\n")
    docs, _ = S.extract_info(tmp_path)
    assert [d.name for d in docs] == ["bar", "foo"]
    foo = docs[1].text
    assert foo.index("Preamble") < foo.index("First [index]part.") < foo.index("Second part.")
    assert foo.count("This is foo.info.") == 1
    assert "Tag Table" not in foo and "Indirect" not in foo
    assert not any(ord(c) < 32 and c not in "\n\t" for c in foo)


def test_extract_man_budget_family_cap_and_dedup(tmp_path):
    pages = {"man1/alpha.1": "A" * 5000, "man1/beta.1": "B" * 5000, "man1/gamma-x.1": "C" * 5000,
             "man1/gamma-y.1": "D" * 5000, "man7/dup.7": "A" * 5000, "man8/short.8": "s" * 100}
    for name, text in pages.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        with gzip.open(tmp_path / (name + ".gz"), "wt") as f:
            f.write(text)  # the fake renderer returns the source: size filter applies to both
    (tmp_path / "man1/alias.1.gz").symlink_to(tmp_path / "man1/alpha.1.gz")
    render = lambda p: gzip.open(p, "rt").read()  # noqa: E731
    docs, prov = S.extract_man(tmp_path, sections=("1", "7", "8"), max_chars=10**6, family_share=0.005,
                               render=render)
    names = [d.name for d in docs]
    assert names == sorted(names)
    assert sum(n.startswith("man1/gamma") for n in names) == 1  # family cap: 5000 chars each
    assert ("man1/alpha.1" in names) != ("man7/dup.7" in names)  # identical text kept once
    assert "man8/short.8" not in names and "man1/alias.1" not in names
    few, _ = S.extract_man(tmp_path, sections=("1",), max_chars=9000, family_share=1.0, render=render)
    assert len(few) == 2  # stops once the character budget is reached


def test_collect_documents_caches_per_source(tmp_path, monkeypatch):
    calls = []

    def fake_extract():
        calls.append(1)
        return [S.Document("stdlib", "a.py", "print('é')\n"), S.Document("stdlib", "b.py", "x\n")], {"v": 1}

    monkeypatch.setitem(S.EXTRACTORS, "stdlib", fake_extract)
    first = D.collect_documents(["stdlib"], cache_dir=tmp_path)
    second = D.collect_documents(["stdlib"], cache_dir=tmp_path)
    assert first == second and len(calls) == 1
    entry = D._read_manifest(tmp_path)["stdlib"]
    assert entry["count"] == 2 and entry["total_chars"] == 13 and entry["v"] == 1 and len(entry["jsonl_sha256"]) == 64
    with pytest.raises(ValueError):
        D.collect_documents(["nope"], cache_dir=tmp_path)


def test_code_files_keep_sources_and_skip_tests_small_and_minified(tmp_path):
    body = "func F() int {\n\treturn 1\n}\n" * 300  # ~7.8 KB of ordinary lines
    files = {
        "usr/share/gocode/src/x/a.go": body,                        # kept
        "usr/share/gocode/src/x/a_test.go": body,                   # Go test file
        "usr/share/gocode/src/x/testdata/b.go": body,               # test data directory
        "usr/share/cargo/registry/serde/src/lib.rs": body,          # kept
        "usr/share/javascript/jquery/jquery.js": body,              # kept
        "usr/share/javascript/jquery/jquery.min.js": body,          # minified by name
        "usr/share/javascript/x/bundle.js": "var a=1;" * 2000,      # minified by line length
        "usr/include/small.h": "int x;\n",                          # too small
        "usr/share/doc/README": body,                               # not a source suffix
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    got = S.code_files(tmp_path)
    assert [(rel, lang) for rel, lang, _ in got] == [
        ("usr/share/cargo/registry/serde/src/lib.rs", "rust"), ("usr/share/gocode/src/x/a.go", "go"),
        ("usr/share/javascript/jquery/jquery.js", "javascript")]
    assert all(text == body for _, _, text in got)
    # extract_code over unpacked trees root/<package>/: documents named package/path, counted.
    docs, prov = S.extract_code({"go": ("pkg-a",), "rust": ("pkg-b",)}, root=tmp_path.parent / "unpacked")
    assert docs == [] and prov["packages"]["pkg-a"]["files"] == 0
    (tmp_path.parent / "unpacked").mkdir(exist_ok=True)
    os.rename(tmp_path, tmp_path.parent / "unpacked" / "pkg-a")
    docs, prov = S.extract_code({"go": ("pkg-a",)}, root=tmp_path.parent / "unpacked")
    assert [d.name for d in docs] == ["pkg-a/usr/share/cargo/registry/serde/src/lib.rs", "pkg-a/usr/share/gocode/src/x/a.go",
                                      "pkg-a/usr/share/javascript/jquery/jquery.js"]
    assert {d.source for d in docs} == {"code"} and prov["languages"] == {"go": 1, "javascript": 1, "rust": 1}


def test_repos_are_one_document_per_package_with_path_lines(tmp_path, monkeypatch):
    # Repository-level documents: every source file of a package (Python included, small files
    # included, tests not), in path order, each after a comment line naming its path; capped.
    root = tmp_path / "unpacked"
    files = {
        "pkg-py/usr/lib/python3/dist-packages/m/b.py": "x = 1\n" * 60,          # 360 bytes: kept
        "pkg-py/usr/lib/python3/dist-packages/m/a.py": "def f():\n    pass\n" * 20,
        "pkg-py/usr/lib/python3/dist-packages/m/tests/t.py": "y = 2\n" * 100,    # a test directory
        "pkg-py/usr/lib/python3/dist-packages/m/tiny.py": "z = 3\n",            # under REPO_MIN_BYTES
        "pkg-rs/usr/share/cargo/registry/n/src/lib.rs": "fn f() {}\n" * 40,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    docs, prov = S.extract_repos({"python": ("pkg-py",), "rust": ("pkg-rs", "pkg-missing")}, root=root)
    assert [(d.source, d.name) for d in docs] == [("repos", "pkg-py"), ("repos", "pkg-rs")]
    a, b = files["pkg-py/usr/lib/python3/dist-packages/m/a.py"], files["pkg-py/usr/lib/python3/dist-packages/m/b.py"]
    assert docs[0].text == (f"# usr/lib/python3/dist-packages/m/a.py\n{a}# usr/lib/python3/dist-packages/m/b.py\n{b}")
    assert docs[1].text.startswith("// usr/share/cargo/registry/n/src/lib.rs\nfn f() {}\n")
    assert prov["packages"]["pkg-py"]["files"] == 2 and prov["packages"]["pkg-missing"]["files"] == 0
    # The `code` source's own reading is unchanged: no Python, no file under CODE_MIN_BYTES.
    assert S.code_files(root / "pkg-py") == []
    monkeypatch.setattr(S, "REPO_MAX_CHARS", len(a) + 10)  # the cap stops before the next file
    docs, _ = S.extract_repos({"python": ("pkg-py",)}, root=root)
    assert docs[0].text == f"# usr/lib/python3/dist-packages/m/a.py\n{a}"
    assert "repos" in S.EXTRA_SOURCES and not set(sum(S.REPO_PACKAGES.values(), ())) & set(
        sum(S.CODE_PACKAGES.values(), ()))


def _write_book(root: Path, pages: dict[str, str]) -> None:
    for rel, html in pages.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(html)


def _page(body: str, next_href: str | None, head_link: bool = True) -> str:
    link = f'<link rel="next" href="{next_href}" />' if next_href and head_link else ""
    anchor = f'<a rel="next" href="{next_href}">Next</a>' if next_href and not head_link else ""
    return (f"<html><head><title>t</title>{link}</head><body><div class=\"navheader\">Prev Home</div>"
            f"<nav>menu</nav><div role=\"main\">{body}</div>{anchor}<script>var x = 1;</script></body></html>")


def test_html_books_follow_the_next_chain_and_keep_prose_and_code(tmp_path):
    pytest.importorskip("bs4")  # the `train` / `test` extras install it
    book = tmp_path / "pkg-book" / "usr/share/doc/book"
    _write_book(book, {
        "index.html": _page("<h1>The  Book</h1><p>First\n   paragraph with <code>inline</code> code.</p>",
                            "ch1/one.html"),
        # an mdBook-style link in the body, a fragment, and code whose indentation must stay
        "ch1/one.html": _page("<p>Second<br>line</p><pre>fn main() {\n    println!(\"hi\");\n}</pre>",
                              "../two.html#top", head_link=False),
        "two.html": _page("<ul><li>a</li><li>b</li></ul><!-- a comment -->", "index.html"),  # a cycle
        "outside.html": _page("<p>never reached</p>", None),
    })
    pages = list(H.walk_book(book / "index.html"))
    assert [rel for rel, _ in pages] == ["index.html", "ch1/one.html", "two.html"]
    assert pages[0][1] == "The Book\nFirst paragraph with inline code."
    assert pages[1][1] == 'Second\nline\nfn main() {\n    println!("hi");\n}'
    assert pages[2][1] == "a\nb"
    # Pages joined into documents of at least min_chars, in order, named after their first page.
    assert H.book_documents(book / "index.html", min_chars=60) == [
        ("index.html", pages[0][1] + "\n\n" + pages[1][1] + "\n"), ("two.html", "a\nb\n")]
    # A link out of the book's directory ends the chain.
    _write_book(book, {"two.html": _page("<p>b</p>", "../../../../etc/passwd")})
    assert [rel for rel, _ in H.walk_book(book / "index.html")] == ["index.html", "ch1/one.html", "two.html"]
    # extract_books over unpacked trees root/<package>/: documents named package/first page.
    docs, prov = S.extract_books({"pkg-book": "usr/share/doc/book/index.html"}, root=tmp_path)
    assert [(d.source, d.name) for d in docs] == [("books", "pkg-book/index.html")]
    assert prov["packages"]["pkg-book"]["documents"] == 1 and "books" in S.EXTRA_SOURCES
    # A cap on a book's characters ends it at the first page past the cap (the pages before stay).
    assert H.book_documents(book / "index.html", min_chars=10, max_chars=len(pages[0][1]) + 2) == [
        ("index.html", pages[0][1] + "\n")]
    assert H.book_documents(book / "index.html", min_chars=10, max_chars=1) == []
    # The "manuals" source reads the same way under its own name, and never re-uses a book.
    docs, _ = S.extract_manuals({"pkg-book": "usr/share/doc/book/index.html"}, root=tmp_path)
    assert {d.source for d in docs} == {"manuals"} and docs[0].name == "pkg-book/index.html"
    assert not set(H.MANUALS) & set(H.BOOKS) and "manuals" in S.EXTRA_SOURCES


def test_second_code_and_manual_sources_add_new_packages_only(tmp_path):
    # code2 and manuals2 read packages no earlier source reads (so an ablation adding them adds only
    # new text), none reserved for independent evaluation, and name their documents as their own.
    pkgs = lambda d: set(sum((tuple(v) for v in d.values()), ()))  # noqa: E731
    assert not pkgs(S.CODE2_PACKAGES) & (pkgs(S.CODE_PACKAGES) | pkgs(S.REPO_PACKAGES))
    assert not set(H.MANUALS2) & (set(H.MANUALS) | set(H.BOOKS))
    def reserved(name):  # the Go standard library, linux-doc, perl-doc, the Debian Reference
        return (name in ("golang-go", "golang-src", "golang-doc", "perl-doc") or re.match(r"golang-1\.\d+", name)
                or name.startswith(("linux-doc", "debian-reference")))

    every = pkgs(S.CODE2_PACKAGES) | set(H.MANUALS2) | pkgs(S.REPO_PACKAGES)
    assert not [name for name in every if reserved(name)]
    assert {"code2", "manuals2"} <= set(S.EXTRA_SOURCES) and {"code2", "manuals2"} <= set(S.EXTRACTORS)
    tree = tmp_path / "pkg-php" / "usr/share/php/X"
    tree.mkdir(parents=True)
    (tree / "Client.php").write_text("<?php\nfunction f() { return 1; }\n" * 200)
    (tree / "view.lua").write_text("local x = 1\n" * 500)
    docs, prov = S.extract_code({"php": ("pkg-php",)}, root=tmp_path, source="code2", suffixes=S.CODE2_SUFFIXES)
    assert [(d.source, d.name) for d in docs] == [("code2", "pkg-php/usr/share/php/X/Client.php"),
                                                  ("code2", "pkg-php/usr/share/php/X/view.lua")]
    assert prov["languages"] == {"lua": 1, "php": 1}
    assert S.extract_code({"php": ("pkg-php",)}, root=tmp_path)[0] == []  # "code" reads neither suffix
