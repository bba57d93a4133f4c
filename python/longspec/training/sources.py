"""The corpus sources of LongSpec drafts' training data: where long documents come from, and how
each source is read.

The draft learns to imitate a frozen target on *long* documents, so we need texts of tens of
thousands of tokens that exist on any Debian machine without a network: the CPython standard
library, the Python 3.11 documentation sources (one .deb), man pages and GNU info manuals; and,
named in --sources, "code": Go, Rust, C++, JavaScript/TypeScript, Ruby and Perl source files from
15 Debian library packages (906 files, 19.6 M characters on Debian 12, at most 4 M per package),
"books": long prose, five HTML books of Debian documentation packages as text (65 documents,
13.6 M characters), kept for measuring; "manuals": 21 more HTML manuals read the same way
(106 documents, 20.8 M characters), for training; and "repos": repository-level code, every source
file of one Debian package concatenated in path order (LCC / RepoBench style), from 20 packages
that no other source reads, kept for measuring code drafts at 16k-32k tokens; "code2" (53 more
packages of source, 28 M characters, more languages) and "manuals2" (24 more manuals, 21 M
characters), for training.

Each source has an extractor returning (documents, provenance); EXTRACTORS maps a source's name to
it. data.py caches what they return, splits, tokenises and packs it.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import platform
import re
import subprocess
import sys
import sysconfig
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from . import html_books

ALL_SOURCES = ("stdlib", "pydocs", "man", "info")  # the default recipe
# Optional sources (name them in --sources): "code", source files in other languages from Debian
# packages that ship them (library -dev packages; none of the Go standard library, linux-doc,
# perl-doc or the Debian Reference, which independent evaluations keep for themselves).
# "books": long prose, HTML books of Debian documentation packages as text (html_books.py).
# "manuals": more HTML manuals of Debian documentation packages (html_books.MANUALS), for training,
# none of them among the books.
# "repos": repository-level code for measuring (extract_repos): one document per package of
# REPO_PACKAGES, its source files in path order, each after a comment line naming its path.
# "code2": more source files for training, read as "code" is, from CODE2_PACKAGES (more
# languages: Python beyond the standard library, PHP, Lua, Erlang, C); "manuals2": more manuals,
# read as "manuals" are, from html_books.MANUALS2. Neither overlaps an earlier source.
EXTRA_SOURCES = ("code", "books", "manuals", "repos", "code2", "manuals2")
LICENCES = {"stdlib": "PSF-2.0", "pydocs": "PSF-2.0", "man": "mixed free licences (per package)",
            "info": "GFDL / GPL (per package)", "code": "free licences (per package, debian/copyright)",
            "books": "free licences (per package, see html_books.py)",
            "manuals": "free licences (per package, see html_books.MANUALS)",
            "repos": "free licences (per package, debian/copyright)",
            "code2": "free licences (per package, debian/copyright)",
            "manuals2": "free licences (per package, see html_books.MANUALS2)"}
CODE_PACKAGES = {  # language -> Debian 12 packages whose files are source code
    "go": ("golang-github-spf13-cobra-dev", "golang-google-grpc-dev", "golang-github-prometheus-client-golang-dev",
           "golang-golang-x-tools-dev"),
    "rust": ("librust-serde-dev", "librust-regex-dev", "librust-tokio-dev", "librust-syn-dev"),
    "c++": ("libeigen3-dev", "nlohmann-json3-dev"),
    "javascript": ("libjs-jquery", "node-acorn", "node-typescript"),
    "ruby": ("ruby-rack",),
    "perl": ("libmoose-perl",),
}
CODE_SUFFIXES = {".go": "go", ".rs": "rust", ".h": "c++", ".hpp": "c++", ".hh": "c++", ".cc": "c++", ".cpp": "c++",
                 ".c": "c", ".js": "javascript", ".mjs": "javascript", ".ts": "typescript", ".rb": "ruby", ".pm": "perl",
                 ".pl": "perl"}
CODE_SKIP_DIRS = frozenset({"test", "tests", "testdata", "testing", "examples", "benches", "fixtures"})
CODE_MIN_BYTES = 4096
CODE_MAX_LINE = 400  # a longer mean line is minified or generated, not code a model reads
CODE_MAX_CHARS = 1_000_000  # a longer file is a generated bundle (TypeScript's tsserver.js: 9 MB)
CODE_PACKAGE_MAX_CHARS = 4_000_000  # no package dominates (Eigen's headers alone are 8 M)
# Packages of whole-repository documents, disjoint from CODE_PACKAGES (no draft trained on their
# code), none of the reserved ones, each with well over 32k tokens of source on Debian 12.
REPO_PACKAGES = {
    "go": ("golang-github-stretchr-testify-dev", "golang-gopkg-yaml.v3-dev", "golang-github-spf13-pflag-dev",
           "golang-github-google-go-cmp-dev"),
    "rust": ("librust-nom-dev", "librust-clap-dev", "librust-itertools-dev", "librust-hashbrown-dev"),
    "c++": ("libfmt-dev", "libspdlog-dev", "libcli11-dev", "librange-v3-dev"),
    "javascript": ("node-lodash",),
    "ruby": ("ruby-thor", "ruby-mustermann"),
    "perl": ("libmojolicious-perl", "libdatetime-perl"),
    "python": ("python3-jinja2", "python3-urllib3", "python3-docutils"),
}
REPO_SUFFIXES = {**CODE_SUFFIXES, ".py": "python"}
REPO_MIN_BYTES = 256  # a repository's small files are part of its context
REPO_MAX_CHARS = 600_000  # ~150k tokens: enough for the longest context measured (128k)
COMMENT_PREFIX = {"python": "#", "ruby": "#", "perl": "#"}  # every other language: "//"
# More training code, disjoint from CODE_PACKAGES and REPO_PACKAGES (none of the reserved sources).
CODE2_PACKAGES = {
    "go": ("golang-github-prometheus-common-dev", "golang-github-hashicorp-hcl-dev", "golang-github-gorilla-websocket-dev",
           "golang-github-spf13-viper-dev", "golang-github-pelletier-go-toml-dev", "golang-github-urfave-cli-dev",
           "golang-github-miekg-dns-dev"),
    "rust": ("librust-futures-util-dev", "librust-hyper-dev", "librust-rayon-dev", "librust-chrono-dev",
             "librust-num-bigint-dev", "librust-bytes-dev", "librust-url-dev", "librust-toml-dev",
             "librust-proc-macro2-dev", "librust-crossbeam-channel-dev"),
    "c++": ("libgtest-dev", "libyaml-cpp-dev", "libtbb-dev", "libmsgpack-dev", "libabsl-dev"),
    "c": ("libsqlite3-dev", "libcurl4-openssl-dev", "libuv1-dev"),
    "javascript": ("node-express", "node-yargs", "node-commander", "libjs-bootstrap4"),
    "ruby": ("ruby-activesupport", "ruby-rspec-core", "ruby-sinatra", "ruby-nokogiri"),
    "perl": ("libdbi-perl", "libmoo-perl", "libtype-tiny-perl", "libplack-perl", "libtemplate-perl"),
    "python": ("python3-sqlalchemy", "python3-flask", "python3-werkzeug", "python3-click", "python3-pygments",
               "python3-tornado", "python3-twisted"),
    "php": ("php-guzzlehttp-guzzle", "php-symfony-console", "php-twig", "php-phpseclib", "php-league-commonmark",
            "php-monolog"),
    "lua": ("lua-penlight",),
    "erlang": ("erlang-src",),
}
CODE2_SUFFIXES = {**REPO_SUFFIXES, ".php": "php", ".lua": "lua", ".erl": "erlang", ".hrl": "erlang"}
CODE2_PACKAGE_MAX_CHARS = 2_000_000  # many packages, none dominating
STDLIB_MIN_BYTES = 2048
STDLIB_SKIP_DIRS = frozenset({"test", "tests", "idlelib", "site-packages", "__pycache__"})
PYDOCS_PACKAGE = "python3.11-doc"
MAN_SECTIONS = ("1", "2", "3", "5", "7", "8")
MAN_MIN_CHARS = 4096
MAN_MAX_CHARS = 20_000_000
MAN_FAMILY_SHARE = 0.10  # no command family (e.g. 16k near-identical gcloud pages) gets more


@dataclass(frozen=True)
class Document:
    source: str  # one of ALL_SOURCES or EXTRA_SOURCES
    name: str  # stable id inside the source, e.g. "json/decoder.py", "man1/bash.1"
    text: str


def _log(msg: str) -> None:
    print(f"[sources] {msg}", file=sys.stderr, flush=True)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def unit_hash(key: str) -> float:
    """A uniform number in [0, 1) that depends only on ``key`` (not on Python's salted hash())."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")  # all sources are UTF-8; never fail a whole run on one byte


def _read_maybe_gz(path: str | Path) -> bytes:
    with (gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")) as f:
        return f.read()


# ---------- Extractors: each takes a root so tests can point it at a temp tree; returns (docs, provenance).
def extract_stdlib(root: str | Path | None = None, min_bytes: int = STDLIB_MIN_BYTES):
    """CPython's own .py files. Tests, idlelib and third-party packages are skipped: test code is
    repetitive boilerplate and site-packages is not PSF-licensed."""
    default = root is None
    root = Path(sysconfig.get_paths()["stdlib"] if default else root)
    docs = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if STDLIB_SKIP_DIRS.intersection(rel.parts[:-1]) or not path.is_file():
            continue
        data = path.read_bytes()
        if len(data) >= min_bytes:
            docs.append(Document("stdlib", rel.as_posix(), _decode(data)))
    prov = {"root": str(root), "python_version": platform.python_version() if default else None,
            "skipped_dirs": sorted(STDLIB_SKIP_DIRS), "min_bytes": min_bytes}
    return docs, prov


def _fetch_deb(package: str, dest: str) -> tuple[Path, dict]:
    """``apt-get download`` one package; returns the .deb and its name/version/sha256."""
    subprocess.run(["apt-get", "download", package], cwd=dest, check=True, capture_output=True)
    deb = next(Path(dest).glob(f"{package}_*.deb"))
    out = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version"], check=True, capture_output=True, text=True)
    fields = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    return deb, {"debian_package": fields["Package"], "debian_version": fields["Version"],
                 "deb_file": deb.name, "deb_sha256": sha256_file(deb)}


def extract_pydocs(root: str | Path | None = None):
    """The reStructuredText sources of the Python docs (``html/_sources/**/*.rst.txt``).
    With no root, the Debian package is downloaded into a temp dir and unpacked with dpkg -x."""
    if root is None:
        with tempfile.TemporaryDirectory(prefix="longspec-pydocs-") as tmp:
            deb, prov = _fetch_deb(PYDOCS_PACKAGE, tmp)
            subprocess.run(["dpkg", "-x", str(deb), os.path.join(tmp, "x")], check=True)
            docs, _ = extract_pydocs(os.path.join(tmp, "x"))
            return docs, prov
    root = Path(root)
    src = root if root.name == "_sources" else next(iter(sorted(root.rglob("_sources"))), None)
    if src is None:
        raise FileNotFoundError(f"no _sources directory under {root}")
    docs = [Document("pydocs", p.relative_to(src).as_posix()[: -len(".txt")], _decode(p.read_bytes()))
            for p in sorted(src.rglob("*.rst.txt")) if p.is_file()]
    return docs, {"root": str(src)}


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BLANK_RUNS = re.compile(r"\n{3,}")


def render_man_page(path: str | Path) -> str:
    """``man -l FILE | col -bx`` at 80 columns: plain text as a reader would see it."""
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", LC_ALL="C.UTF-8", GROFF_NO_SGR="1")
    man = subprocess.Popen(["man", "-l", str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        col = subprocess.run(["col", "-bx"], stdin=man.stdout, capture_output=True, env=env, timeout=120)
    finally:
        man.stdout.close()
        man.kill()  # only matters after a timeout; a finished man is not signalled
        man.wait()
    text = _ANSI.sub("", col.stdout.decode("utf-8", "replace"))
    return _BLANK_RUNS.sub("\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip() + "\n"


def _man_candidates(root: Path, sections: Sequence[str], min_source_bytes: int) -> list[tuple[str, Path]]:
    """Real pages (not symlinks, not ``.so`` aliases) whose roff source is big enough to matter."""
    out = []
    for sec in sections:
        for path in sorted(root.glob(f"man{sec}/*")):
            if path.is_symlink() or not path.is_file():
                continue
            data = _read_maybe_gz(path)
            if len(data) >= min_source_bytes and not data.startswith(b".so "):
                out.append((f"man{sec}/{path.name.removesuffix('.gz')}", path))
    return out


def _dpkg_packages(paths: Sequence[str | Path]) -> dict[str, int]:
    """"package version" -> number of ``paths`` it owns: the licence/version trail of man and info
    pages ("unknown" where dpkg does not know a file; {} without dpkg)."""
    owners: dict[str, str] = {}
    paths = [str(p) for p in paths]
    try:
        for i in range(0, len(paths), 500):
            out = subprocess.run(["dpkg", "-S", *paths[i:i + 500]], capture_output=True, text=True).stdout
            for line in out.splitlines():
                if ": /" in line:
                    pkgs, path = line.split(": /", 1)
                    owners["/" + path] = pkgs.split(",")[0].split(":")[0].strip()
        pkgs = sorted(set(owners.values()))
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *pkgs],
                             capture_output=True, text=True).stdout if pkgs else ""
    except FileNotFoundError:
        return {}
    versions = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    found = (f"{owners[p]} {versions.get(owners[p], '?')}" if p in owners else "unknown" for p in paths)
    return dict(sorted(Counter(found).items()))


def extract_man(root: str | Path = "/usr/share/man", sections: Sequence[str] = MAN_SECTIONS,
                max_chars: int = MAN_MAX_CHARS, min_chars: int = MAN_MIN_CHARS,
                family_share: float = MAN_FAMILY_SHARE,
                render: Callable[[Path], str] = render_man_page):
    """Rendered man pages >= min_chars, visited in a fixed pseudo-random order (hash of the name)
    until max_chars; one family may take at most family_share of the budget so that thousands of
    generated pages of one tool cannot crowd out the rest. Rendering is ~0.2 s/page, so pages whose
    source is under min_chars/2 bytes are not rendered at all."""
    root = Path(root)
    candidates = sorted(_man_candidates(root, sections, min_chars // 2), key=lambda c: unit_hash(c[0]))
    docs, used, seen, per_family, total, rendered = [], [], set(), Counter(), 0, 0
    for name, path in candidates:
        if total >= max_chars:
            break
        family = re.split(r"[-_.:]", path.name, maxsplit=1)[0].lower()  # gcloud_x.1 -> gcloud
        if per_family[family] >= family_share * max_chars:
            continue
        text = render(path)
        rendered += 1
        if rendered % 250 == 0:
            _log(f"man: rendered {rendered}, kept {len(docs)} pages, {total / 1e6:.1f} M chars")
        digest = sha256_hex(text.encode("utf-8"))
        if len(text) < min_chars or digest in seen:
            continue
        seen.add(digest)
        docs.append(Document("man", name, text))
        used.append(path)
        total += len(text)
        per_family[family] += len(text)
    docs.sort(key=lambda d: d.name)
    prov = {"root": str(root), "sections": list(sections), "min_chars": min_chars, "max_chars": max_chars,
            "family_share": family_share, "candidates": len(candidates), "rendered": rendered,
            "render": "MANWIDTH=80 man -l FILE | col -bx", "packages": _dpkg_packages(used)}
    return docs, prov


_INFO_FILE = re.compile(r"^(?P<manual>.+?)\.info(?:-(?P<part>\d+))?(?:\.gz)?$")
_INFO_META = ("Indirect:", "Tag Table:", "End Tag Table", "Local Variables:")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_info(text: str, subfile: bool) -> str:
    """Drop the navigation tables and control characters of an info file. Sub-files (foo.info-2)
    repeat the preamble before their first node separator, so that part is dropped too."""
    blocks = text.split("\x1f")
    if subfile:
        blocks = blocks[1:]
    kept = [b for b in blocks if not b.lstrip("\n").startswith(_INFO_META)]
    return _CONTROL.sub("", "\n".join(kept))


def extract_info(root: str | Path = "/usr/share/info"):
    """One document per manual: foo.info + foo.info-1 + foo.info-2 ... concatenated in order."""
    groups: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    for path in sorted(Path(root).iterdir()):
        m = _INFO_FILE.match(path.name)
        if m and path.is_file():
            groups[m["manual"]].append((int(m["part"] or 0), path))
    docs, used = [], []
    for manual, parts in sorted(groups.items()):
        parts.sort()
        text = "".join(clean_info(_decode(_read_maybe_gz(p)), subfile=part > 0) for part, p in parts)
        docs.append(Document("info", manual, _BLANK_RUNS.sub("\n\n", text).strip() + "\n"))
        used.append(parts[0][1])
    return docs, {"root": str(root), "packages": _dpkg_packages(used)}


def code_files(root: str | Path, min_bytes: int = CODE_MIN_BYTES, suffixes: dict[str, str] | None = None,
               max_chars: int = CODE_PACKAGE_MAX_CHARS) -> list[tuple[str, str, str]]:
    """(relative path, language, text) of the source files under an unpacked package: by suffix
    (CODE_SUFFIXES unless given), no test / example directories or Go *_test.go files, at least
    min_bytes, not minified or bundled; in path order up to max_chars in all."""
    root = Path(root)
    suffixes = CODE_SUFFIXES if suffixes is None else suffixes
    out, total = [], 0
    for path in sorted(root.rglob("*")):
        lang = suffixes.get(path.suffix)
        rel = path.relative_to(root)
        if lang is None or path.is_symlink() or not path.is_file() or CODE_SKIP_DIRS.intersection(rel.parts[:-1]):
            continue
        if path.name.endswith("_test.go") or path.name.endswith(".min.js"):
            continue
        data = path.read_bytes()
        if len(data) < min_bytes:
            continue
        text = _decode(data)
        if len(text) > CODE_MAX_CHARS or len(text) / max(1, text.count("\n")) > CODE_MAX_LINE:
            continue
        if total + len(text) > max_chars:
            break
        total += len(text)
        out.append((rel.as_posix(), lang, text))
    return out


def _read_packages(packages: dict[str, Sequence[str]], root: str | Path | None, read: Callable[[Path], list]):
    """(listed language, package, provenance entry, read(unpacked tree)) for every package of
    {language: packages}: each downloaded and unpacked with dpkg -x into a temporary directory, or
    with root, the unpacked trees root/<package>/ as they are."""
    for lang, names in packages.items():
        for name in names:
            if root is not None:
                yield lang, name, {"root": str(Path(root) / name)}, read(Path(root) / name)
                continue
            with tempfile.TemporaryDirectory(prefix="longspec-pkg-") as tmp:
                deb, entry = _fetch_deb(name, tmp)
                subprocess.run(["dpkg", "-x", str(deb), os.path.join(tmp, "x")], check=True)
                found = read(Path(tmp) / "x")
            yield lang, name, entry, found


def extract_code(packages: dict[str, Sequence[str]] | None = None, root: str | Path | None = None,
                 source: str = "code", suffixes: dict[str, str] | None = None,
                 max_chars: int = CODE_PACKAGE_MAX_CHARS):
    """Source files of CODE_PACKAGES (or `packages`) by `suffixes` (CODE_SUFFIXES), at most
    max_chars per package (_read_packages). One document per file, named "<package>/<path>"; a
    package's files in path order; documents of `source`."""
    packages = CODE_PACKAGES if packages is None else packages
    docs, prov = [], {"packages": {}, "languages": Counter()}

    def read(tree):
        return code_files(tree, suffixes=suffixes, max_chars=max_chars)

    for lang, name, entry, found in _read_packages(packages, root, read):
        for rel, file_lang, text in found:
            docs.append(Document(source, f"{name}/{rel}", text))
            prov["languages"][file_lang] += 1
        prov["packages"][name] = dict(entry, listed_as=lang, files=len(found))
    prov["languages"] = dict(sorted(prov["languages"].items()))
    return docs, prov


def repository_document(files: Sequence[tuple[str, str, str]]) -> str:
    """One package's files (code_files' triples) as one text: each file after a comment line
    naming its path ('// path' or '# path'), in the order given."""
    return "".join(f"{COMMENT_PREFIX.get(lang, '//')} {rel}\n{text}{'' if text.endswith(chr(10)) else chr(10)}"
                   for rel, lang, text in files)


def extract_repos(packages: dict[str, Sequence[str]] | None = None, root: str | Path | None = None):
    """One document per package of REPO_PACKAGES (named by the package): its source files
    (REPO_SUFFIXES, at least REPO_MIN_BYTES, up to REPO_MAX_CHARS in all) through
    repository_document (packages read by _read_packages)."""
    packages = REPO_PACKAGES if packages is None else packages
    docs, prov = [], {"packages": {}}

    def read(tree):
        return code_files(tree, min_bytes=REPO_MIN_BYTES, suffixes=REPO_SUFFIXES, max_chars=REPO_MAX_CHARS)

    for lang, name, entry, found in _read_packages(packages, root, read):
        if found:
            docs.append(Document("repos", name, repository_document(found)))
        prov["packages"][name] = dict(entry, listed_as=lang, files=len(found),
                                      chars=sum(len(text) for _, _, text in found))
    return docs, prov


def extract_books(books: dict[str, str] | None = None, root: str | Path | None = None, source: str = "books",
                  max_chars: int | None = None):
    """The HTML books of html_books.BOOKS (package -> first page), each package downloaded and
    unpacked with dpkg -x (or, with root, the unpacked trees root/<package>/ as they are), as
    documents of consecutive pages in reading order named "<package>/<first page>"; at most
    max_chars characters per package."""
    books = html_books.BOOKS if books is None else books
    book_documents = html_books.book_documents
    docs, prov = [], {"packages": {}}
    for name, first in books.items():
        if root is not None:
            entry = {"root": str(Path(root) / name)}
            found = book_documents(Path(root) / name / first, max_chars=max_chars)
        else:
            with tempfile.TemporaryDirectory(prefix="longspec-books-") as tmp:
                deb, entry = _fetch_deb(name, tmp)
                subprocess.run(["dpkg", "-x", str(deb), os.path.join(tmp, "x")], check=True)
                found = book_documents(Path(tmp) / "x" / first, max_chars=max_chars)
        docs.extend(Document(source, f"{name}/{page}", text) for page, text in found)
        prov["packages"][name] = dict(entry, first_page=first, documents=len(found),
                                      chars=sum(len(text) for _, text in found))
    return docs, prov


def extract_manuals(manuals: dict[str, str] | None = None, root: str | Path | None = None, source: str = "manuals",
                    max_chars: int | None = None):
    """The manuals of html_books.MANUALS (or `manuals`), read as books are (extract_books), at
    most max_chars (html_books.MANUAL_MAX_CHARS) characters each, as documents of `source`."""
    return extract_books(html_books.MANUALS if manuals is None else manuals, root=root, source=source,
                         max_chars=html_books.MANUAL_MAX_CHARS if max_chars is None else max_chars)


EXTRACTORS: dict[str, Callable[[], tuple[list[Document], dict]]] = {
    "stdlib": extract_stdlib, "pydocs": extract_pydocs, "man": extract_man, "info": extract_info,
    "code": extract_code, "books": extract_books, "manuals": extract_manuals, "repos": extract_repos,
    "code2": lambda: extract_code(CODE2_PACKAGES, source="code2", suffixes=CODE2_SUFFIXES,
                                  max_chars=CODE2_PACKAGE_MAX_CHARS),
    "manuals2": lambda: extract_manuals(html_books.MANUALS2, source="manuals2",
                                        max_chars=html_books.MANUAL2_MAX_CHARS)}
