"""Long prose for the draft corpus: HTML books from Debian documentation packages, as plain text.

A book is a chain of pages, each linking the next one (``<link rel="next">`` in Sphinx and DocBook
output, ``<a rel="next">`` in mdBook's). The chain is followed from the book's first page, each
page's main content is turned into text (block elements end lines, code keeps its lines, the
navigation is dropped), and consecutive pages are joined into documents of at least
``min_chars`` characters: long documents in reading order, named after their first page.

The packages (Debian 12), none of them reserved for independent evaluation (the Debian Reference,
linux-doc, perl-doc and the Go standard library are not used):
  rust-doc             The Rust Programming Language (MIT / Apache-2.0)
  python-django-doc    Django's documentation (BSD-3-Clause)
  postgresql-doc-15    The PostgreSQL 15 manual (PostgreSQL licence)
  debian-handbook      The Debian Administrator's Handbook, en-US (GPL-2+ or CC-BY-SA-3.0)
  developers-reference The Debian Developer's Reference (MIT-style)
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

# package -> the book's first page inside the unpacked package
BOOKS = {
    "rust-doc": "usr/share/doc/rust-doc/html/book/index.html",
    "python-django-doc": "usr/share/doc/python-django-doc/html/index.html",
    "postgresql-doc-15": "usr/share/doc/postgresql-doc-15/html/index.html",
    "debian-handbook": "usr/share/doc/debian-handbook/html/en-US/index.html",
    "developers-reference": "usr/share/developers-reference/index.html",
}
# The "manuals" source: more HTML manuals from Debian documentation packages, for training only.
# The five BOOKS above stay out of it, so that a draft trained on manuals can still be measured on
# books it never saw. Sphinx output unless noted; licences from each package's debian/copyright.
MANUALS = {
    "cmake-doc": "usr/share/doc/cmake-data/html/index.html",  # BSD-3-Clause
    "debian-policy": "usr/share/doc/debian-policy/policy.html/index.html",  # GPL-2+
    "debian-faq": "usr/share/doc/debian/FAQ/index.html",  # GPL-2+ (DocBook)
    "octave-doc": "usr/share/doc/octave/octave.html/index.html",  # GPL-3+ (Texinfo)
    "python-celery-doc": "usr/share/doc/python-celery-doc/html/index.html",  # BSD-3-Clause
    "python-click-doc": "usr/share/doc/python-click-doc/html/index.html",  # BSD-3-Clause
    "python-cryptography-doc": "usr/share/doc/python-cryptography-doc/html/index.html",  # Apache-2.0 / BSD
    "python-flask-doc": "usr/share/doc/python-flask-doc/html/index.html",  # BSD-3-Clause
    "python-jinja2-doc": "usr/share/doc/python-jinja2-doc/html/index.html",  # BSD-3-Clause
    "python-mpmath-doc": "usr/share/doc/python-mpmath-doc/html/index.html",  # BSD-3-Clause
    "python-pandas-doc": "usr/share/doc/python-pandas-doc/html/index.html",  # BSD-3-Clause
    "python-pygments-doc": "usr/share/doc/python-pygments-doc/html/index.html",  # BSD-2-Clause
    "python-pytest-doc": "usr/share/doc/python-pytest-doc/html/contents.html",  # MIT
    "python-requests-doc": "usr/share/doc/python-requests-doc/html/index.html",  # Apache-2.0
    "python-scipy-doc": "usr/share/doc/python-scipy-doc/html/index.html",  # BSD-3-Clause
    "python-scrapy-doc": "usr/share/doc/python-scrapy-doc/html/index.html",  # BSD-3-Clause
    "python-setuptools-doc": "usr/share/doc/python-setuptools-doc/html/index.html",  # MIT
    "python-sqlalchemy-doc": "usr/share/doc/python-sqlalchemy-doc/html/intro.html",  # MIT
    "python-tornado-doc": "usr/share/doc/python-tornado-doc/html/index.html",  # Apache-2.0
    "python-werkzeug-doc": "usr/share/doc/python-werkzeug-doc/html/index.html",  # BSD-3-Clause
    "sphinx-doc": "usr/share/doc/sphinx-doc/html/index.html",  # BSD-2-Clause
}
# pandas, SciPy and SQLAlchemy hold 6-7 M characters each, mostly API reference: a manual stops
# after this many, so that no one package dominates the source.
MANUAL_MAX_CHARS = 4_000_000
# More manuals (the "manuals2" source), none among BOOKS or MANUALS: compilers, science libraries,
# DNS, accounting, Debian packaging, R. Each stops after MANUAL2_MAX_CHARS (LLVM, SymPy, Astropy and
# statsmodels would give 4-5 M each, mostly reference). First pages checked on Debian 12: each
# chain runs 10 to 1300 pages, except R's manual, one page.
MANUALS2 = {
    "llvm-14-doc": "usr/share/doc/llvm-14-doc/html/index.html",  # Apache-2.0 with LLVM exception
    "clang-14-doc": "usr/share/doc/clang-14/html/index.html",  # Apache-2.0 with LLVM exception
    "python-sympy-doc": "usr/share/doc/python-sympy-doc/html/index.html",  # BSD-3-Clause
    "python-astropy-doc": "usr/share/doc/python-astropy-doc/html/index.html",  # BSD-3-Clause
    "python-statsmodels-doc": "usr/share/doc/python-statsmodels-doc/html/index.html",  # BSD-3-Clause
    "python-dask-doc": "usr/share/doc/python-dask-doc/html/index.html",  # BSD-3-Clause
    "python-xarray-doc": "usr/share/doc/python-xarray-doc/html/index.html",  # Apache-2.0
    "python-skimage-doc": "usr/share/doc/python-skimage-doc/html/index.html",  # BSD-3-Clause
    "python-tables-doc": "usr/share/doc/python-tables-doc/html/index.html",  # BSD-3-Clause
    "python-rdflib-doc": "usr/share/doc/python-rdflib-doc/html/index.html",  # BSD-3-Clause
    "python-cherrypy3-doc": "usr/share/doc/python-cherrypy3-doc/html/index.html",  # BSD-3-Clause
    "python-hypothesis-doc": "usr/share/doc/python-hypothesis-doc/html/index.html",  # MPL-2.0
    "python-aiohttp-doc": "usr/share/doc/python-aiohttp-doc/html/index.html",  # Apache-2.0
    "python-psycopg2-doc": "usr/share/doc/python-psycopg2-doc/html/index.html",  # LGPL-3+
    "python-babel-doc": "usr/share/doc/python-babel-doc/html/index.html",  # BSD-3-Clause
    "python-mako-doc": "usr/share/doc/python-mako-doc/html/index.html",  # MIT
    "cython-doc": "usr/share/doc/cython-doc/html/index.html",  # Apache-2.0
    "mypy-doc": "usr/share/doc/mypy/html/index.html",  # MIT
    "bind9-doc": "usr/share/doc/bind9-doc/arm/index.html",  # MPL-2.0
    "gnucash-docs": "usr/share/doc/gnucash-docs/gnucash-guide-en/index.html",  # GFDL-1.1+ (no invariant sections)
    "aptitude-doc-en": "usr/share/doc/aptitude/html/en/index.html",  # GPL-2+
    "debmake-doc": "usr/share/doc/debmake-doc/html/index.en.html",  # MIT
    "maint-guide": "usr/share/doc/maint-guide/html/index.en.html",  # GPL-2+
    "r-doc-html": "usr/share/R/doc/manual/R-exts.html",  # GPL-2+ (one page)
}
MANUAL2_MAX_CHARS = 2_000_000
BOOK_DOC_MIN_CHARS = 200_000  # about 50k tokens: a document long enough for any stage-2 window
BOOK_MAX_PAGES = 5000  # a guard against a malformed chain

_BLOCK_TAGS = ("p", "div", "section", "article", "li", "dt", "dd", "tr", "table", "pre", "blockquote",
               "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "figure", "figcaption", "hr")
_DROP_TAGS = ("script", "style", "nav", "header", "footer", "noscript", "svg", "button", "form")
# Classes of navigation and decoration blocks in Sphinx, DocBook and mdBook output.
_DROP_CLASS = re.compile(r"(^|\b)(navheader|navfooter|sphinxsidebar|related|headerlink|nav-chapters|"
                         r"mobile-nav-chapters|menu-bar|sidebar|toc-backref|footer|docnav)(\b|$)")
_DROP_ID = re.compile(r"^(banner|title)$")  # Publican's page banner (DocBook)
_WHITE = re.compile(r"\s+")
# A line break the page's structure asks for (block ends, <br>, lines of <pre>), kept apart from
# the source's own white space until that is folded.
_BREAK = "\x00"
_PRE_LINE = "\x01"  # a line break inside <pre>: its indentation stays
_AROUND_BREAK = re.compile(r"[ \t]*\n[ \t]*")
_BLANK_RUNS = re.compile(r"\n{3,}")


def _soup(html: str):
    from bs4 import BeautifulSoup  # a training-time dependency only (the `train` extra)

    return BeautifulSoup(html, "html.parser")


def next_page(soup) -> str | None:
    """The href of the page's rel="next" link (a <link> in the head or an <a> in the body)."""
    for tag in soup.find_all(["link", "a"]):
        rel = tag.get("rel") or []
        if "next" in (rel if isinstance(rel, list) else [rel]) and tag.get("href"):
            return tag["href"]
    return None


def page_text(soup) -> str:
    """The page's main content as text: <main> (mdBook), role="main" or div.body (Sphinx), else
    the body; navigation dropped. Outside <pre>, white space (source line breaks included) folds
    to one space, as a browser shows it; a line ends after each block element and at <br>; text
    inside <pre> keeps its lines. At most one blank line in a row."""
    root = (soup.find("main") or soup.find(attrs={"role": "main"}) or soup.find("div", class_="body")
            or soup.body or soup)
    for tag in root.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in root.find_all(class_=_DROP_CLASS):
        tag.decompose()
    for tag in root.find_all(id=_DROP_ID):
        tag.decompose()
    for br in root.find_all("br"):
        br.replace_with(_BREAK)
    for tag in root.find_all(_BLOCK_TAGS):
        tag.insert_after(_BREAK)
    text = "".join(_text_pieces(root))
    text = _AROUND_BREAK.sub("\n", text.replace(_BREAK, "\n")).replace(_PRE_LINE, "\n")
    return _BLANK_RUNS.sub("\n\n", text).strip()


def _text_pieces(root) -> Iterator[str]:
    """The root's strings in order: white space folded outside <pre>, kept inside it."""
    from bs4 import Comment, Declaration, Doctype, NavigableString

    for piece in root.descendants:
        if not isinstance(piece, NavigableString) or isinstance(piece, (Comment, Declaration, Doctype)):
            continue
        if piece.find_parent("pre") is not None:
            yield str(piece).replace("\n", _PRE_LINE)
        else:
            yield _WHITE.sub(" ", str(piece))


def walk_book(first: Path, max_pages: int = BOOK_MAX_PAGES) -> Iterator[tuple[str, str]]:
    """(page path relative to the first page's directory, page text) along the rel="next" chain,
    each page once, never leaving the first page's directory tree."""
    top = first.resolve().parent
    seen: set[Path] = set()
    page: Path | None = first.resolve()
    while page is not None and page not in seen and len(seen) < max_pages and page.is_file():
        seen.add(page)
        soup = _soup(page.read_bytes().decode("utf-8", "replace"))
        href = next_page(soup)
        yield page.relative_to(top).as_posix(), page_text(soup)
        page = _resolve(top, page, href) if href else None


def book_documents(first: Path, min_chars: int = BOOK_DOC_MIN_CHARS,
                   max_chars: int | None = None) -> list[tuple[str, str]]:
    """(name, text) of the book's documents: consecutive pages joined (a blank line between) until
    a document holds min_chars characters; the last one takes what is left. Named after their
    first page. With max_chars, the book ends at the first page that would pass that total."""
    docs, name, parts, size, total = [], None, [], 0, 0
    for rel, text in walk_book(first):
        if not text:
            continue
        total += len(text) + 2
        if max_chars is not None and total > max_chars:
            break
        if name is None:
            name = rel
        parts.append(text)
        size += len(text) + 2
        if size >= min_chars:
            docs.append((name, "\n\n".join(parts) + "\n"))
            name, parts, size = None, [], 0
    if parts:
        docs.append((name, "\n\n".join(parts) + "\n"))
    return docs


def _resolve(top: Path, current: Path, href: str) -> Path | None:
    """The page an href points to (fragment and query dropped), or None when it leaves the book."""
    href = href.split("#", 1)[0].split("?", 1)[0]
    if not href or "://" in href or href.startswith("mailto:"):
        return None
    target = (current.parent / href).resolve()
    try:
        target.relative_to(top)
    except ValueError:
        return None
    return target
