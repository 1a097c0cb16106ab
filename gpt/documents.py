"""Files in, documents out: the user's text as gpt trains on it and answers from it.

Inputs are files, folders (recursive) and globs; each file (or JSONL/Parquet record) is a document. Bytes that are
not valid UTF-8 are replaced with U+FFFD (documented policy: training text is Unicode); a byte-order mark is
dropped, and one for UTF-16 (Windows' "Unicode" text) or UTF-32 decodes the file so; a Windows or Latin-1 file is
read as cp1252; other files with NUL bytes in their first 8 KiB are treated as binary and skipped with a warning. A
web page (.html, .htm), a Jupyter notebook (.ipynb), an RTF document or subtitles (.srt, .vtt) are read as their
text, written as Markdown (gpt/rich_text.py, gpt/subtitles.py), not as tags, JSON, control words or times; so is a
book (.epub), a word-processor file (.docx, .odt), a spreadsheet (.xlsx, .ods) or slides (.pptx, .odp)
(gpt/zip_documents.py), and a PDF's text (gpt/pdf_text.py, with the optional pypdf). A manual page (ls.1, its troff
source) and an info manual (sed.info) are read as their text too (gpt/man_page.py, gpt/info_manual.py). Each of
these is converted once per process while it is unchanged (the conversions kept up to CONVERTED_CHARS in all). A
large text file is read in pieces, cut only where tokenization cannot change. A compressed file (.gz, .bz2, .xz) is
read as what it holds, by its name without that suffix ("notes.md.gz" is Markdown, "pages.jsonl.xz" JSONL). A
wiki's pages are read as Markdown (gpt/wikitext.py): a MediaWiki export (.xml) as a document per article, a .wiki
file, and a .txt file whose titles are a wiki's (DokuWiki keeps its pages so); an Evernote export (.enex) as a
document per note, and a Google Keep note (Takeout's .json) as one.
This module knows nothing of tokens or models.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import glob
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, NamedTuple, TypeVar
from xml.etree.ElementTree import ParseError

import regex

from gpt.errors import InputError
from gpt.files import DAMAGED_DATA, compression, jsonl_lines, open_bytes, uncompressed_name
from gpt.info_manual import INFO_MARKER, info_to_markdown, is_info_manual, looks_like_info_manual
from gpt.man_page import is_man_page, looks_like_man_page, man_to_markdown
from gpt.markup import MEDIAWIKI_SUFFIXES
from gpt.pdf_text import UnreadablePDF, pdf_to_markdown
from gpt.pretokenize import SAFE_CUT
from gpt.rich_text import CONVERTED_SUFFIXES, EVERNOTE_SUFFIXES, as_markdown, evernote_notes, is_keep_note, keep_notes
from gpt.wikitext import is_mediawiki_export, mediawiki_pages, wiki_dialect, wiki_to_markdown
from gpt.zip_documents import ZIPPED_SUFFIXES, UnreadableDocument, zipped_to_markdown

BUILTIN = "builtin:pydoc"  # Python's reference documentation, shipped with every CPython
_READ_BYTES = 1 << 20  # a large file's pieces: small pieces keep every encoder busy
CONVERTED_CHARS = 1 << 27  # converted files kept for the next pass over the input, in characters
_SAFE_CUT = regex.compile(SAFE_CUT, flags=regex.REVERSE)  # searched backwards: the last cut in a block
WIKI_PAGE_BYTES = 1 << 24  # a .txt file larger than this is streamed as text, never read whole as a wiki page
_INFO_MARKER_BYTES = regex.compile(INFO_MARKER.pattern.encode())  # its NUL bytes do not make an info manual binary
T = TypeVar("T")


class Document(NamedTuple):
    """One document, whole: where it came from and its text. `pages` is, for a paginated file (a PDF), the line
    of `text` each page starts on, so that a passage can be cited by page; () for any other."""
    source: str
    text: str
    pages: tuple[int, ...] = ()


class DataError(InputError):
    """Unusable input; the CLI prints it as one line."""


MAX_WARNINGS_OF_A_KIND = 5  # a folder's many pictures and archives: the first few are named
_WARNED: dict[str, set[str]] = {}  # kind ("" for any) -> the warnings this process has given


def warn(message: str, kind: str = "") -> None:
    """A warning on stderr, once per process: `gpt train` reads its inputs three times (tokenizer, token cache,
    questions). Of a `kind` ("binary files"), the first MAX_WARNINGS_OF_A_KIND, then one line for the rest."""
    said = _WARNED.setdefault(kind, set())
    if message in said:
        return
    said.add(message)
    if not kind or len(said) <= MAX_WARNINGS_OF_A_KIND:
        print(f"warning: {message}", file=sys.stderr)
    elif len(said) == MAX_WARNINGS_OF_A_KIND + 1:
        print(f"warning: skipping more {kind} without naming them", file=sys.stderr)


# ----------------------------------------------------------------------------- finding documents

def collect_files(inputs: Iterable[str]) -> list[str]:
    """Expand files, folders (recursively, hidden entries skipped) and globs into a sorted, unique file list."""
    files: list[str] = []
    for spec in inputs:
        if spec == BUILTIN:
            files.append(spec)
            continue
        matches = sorted(glob.glob(spec, recursive=True)) if glob.has_magic(spec) else [spec]
        if not matches:
            raise DataError(f"no files match {spec!r}")
        for path in matches:
            if os.path.isdir(path):
                for root, dirs, names in os.walk(path):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    found = [os.path.join(root, n) for n in sorted(names) if not n.startswith(".")]
                    readable = [f for f in found if os.path.isfile(f)]  # not a broken link, a pipe, a socket
                    for other in sorted(set(found) - set(readable)):
                        warn(f"skipping {other}: not a file (a broken link?)")
                    files += readable
            elif os.path.isfile(path):
                files.append(path)
            else:
                raise DataError(f"input path does not exist: {path}")
    unique = _without_keep_twins(_one_name_per_file(list(dict.fromkeys(files))))
    if not unique:
        raise DataError("no input files found")
    return unique


def _one_name_per_file(files: list[str]) -> list[str]:
    """The files, each read once: a link to a file already listed (/usr/share/man's egrep.1.gz -> grep.1.gz, a
    hard link, a note linked into two folders) is left out, with one warning for them all."""
    kept, seen = [], set()
    for path in files:
        key: object = path
        if path != BUILTIN:
            with contextlib.suppress(OSError):  # an unreadable file is kept: reading it says what is wrong
                stat = os.stat(path)
                key = (stat.st_dev, stat.st_ino) if stat.st_ino else path  # 0: a file system without inodes
        if key not in seen:
            seen.add(key)
            kept.append(path)
    if linked := len(files) - len(kept):
        warn(f"skipping {linked:,} links to files already read")
    return kept


def _without_keep_twins(files: list[str]) -> list[str]:
    """The files less each Google Keep note's .html twin: Takeout exports a note as "X.json" and "X.html", and the
    JSON is read (its title a title, its checklist a list), with one warning for them all."""
    listed = set(files)
    twins = {path for path in files if path.lower().endswith(".html") and (twin := path[:-5] + ".json") in listed
             and _export_reader(twin) is keep_notes}
    if twins:
        warn(f"reading {len(twins):,} Google Keep notes from their .json files, not their .html twins")
    return [path for path in files if path not in twins]


def builtin_documents() -> dict[str, str]:
    """The default corpus: every topic of Python's reference documentation (pydoc_data.topics), by name."""
    from pydoc_data.topics import topics
    return {name: topics[name] for name in sorted(topics)}


def _text_encoding(path: str) -> str | None:
    """How to decode a file: 'utf-16' or 'utf-32' when it opens with their byte-order mark, None for binary (a NUL in
    its first 8 KiB), 'cp1252' when those 8 KiB hold bytes that are not UTF-8 and no character that is (a
    Windows or Latin-1 file: "café" from an old editor, curly quotes), else 'utf-8-sig' (UTF-8 with its
    byte-order mark, if any, dropped; a stray bad byte in it becomes U+FFFD)."""
    with open_bytes(path) as fh:
        head = fh.read(8192)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16's: "FF FE" opens both
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\0" in _INFO_MARKER_BYTES.sub(b"", head) or head.startswith(b"%PDF-"):  # a PDF not named .pdf: maybe no NUL
        return None
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head)  # a character cut at 8 KiB waits
    legacy = "\ufffd" in text and all(c == "\ufffd" or c.isascii() for c in text)
    return "cp1252" if legacy else "utf-8-sig"


def _read_pieces(path: str, encoding: str = "utf-8-sig") -> Iterator[str]:
    """A text file as str pieces of about a MB, cut only where tokenization cannot change (pretokenize.SAFE_CUT).

    Text with no letter followed by whitespace in 16 blocks (digits only, say) is cut anyway, so that
    memory stays bounded; the pre-tokens at such a cut may differ from those of the whole text.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    carry = ""
    with open_bytes(path) as fh:
        while block := _read_block(fh, path):
            carry += decoder.decode(block)
            if cut := _SAFE_CUT.search(carry, max(0, len(carry) - _READ_BYTES // 2)):
                at = cut.end()
            elif len(carry) >= 16 * _READ_BYTES:
                at = len(carry)
            else:
                continue
            yield carry[:at]
            carry = carry[at:]
    carry += decoder.decode(b"", final=True)
    if carry:
        yield carry


def _read_block(fh: BinaryIO, path: str) -> bytes:
    """The next block of a file; b"" at its end, or with a warning where a compressed file is damaged (the blocks
    before are kept: a download cut short is still text)."""
    try:
        return fh.read(_READ_BYTES)
    except DAMAGED_DATA as exc:
        if not compression(path):
            raise
        warn(f"{path}: damaged compressed data ({exc}); keeping the text read before it")
        return b""


def _jsonl_records(path: str, field: str) -> Iterator[str]:
    for n, line in jsonl_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}:{n}: not valid JSON") from None
        text = record.get(field) if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise DataError(f"{path}:{n}: no string field {field!r} (set --data.jsonl_field)")
        yield text


def _parquet_records(path: str, field: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install 'gpt[parquet]')") from None
    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's errors (ArrowInvalid, OSError) for a damaged or foreign file
        raise DataError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    if field not in table.schema_arrow.names:
        raise DataError(f"{path}: no column {field!r} (set --data.jsonl_field)")
    try:
        for batch in table.iter_batches(columns=[field]):
            yield from (t for t in batch.column(0).to_pylist() if isinstance(t, str))
    except (OSError, ValueError) as exc:  # damaged data pages (ArrowInvalid is a ValueError): found only when read
        raise DataError(f"{path}: damaged Parquet data ({str(exc).splitlines()[0]})") from None


def iter_documents(files: list[str], jsonl_field: str = "text") -> Iterator[Iterable[str]]:
    """Each document as an iterable of text pieces (one piece unless the file is large)."""
    for path in files:
        if path == BUILTIN:
            yield from ([doc] for doc in builtin_documents().values())
        elif uncompressed_name(path).endswith(".jsonl"):
            yield from ([doc] for doc in _jsonl_records(path, jsonl_field))
        elif path.endswith(".parquet"):
            yield from ([doc] for doc in _parquet_records(path, jsonl_field))
        else:
            try:
                if path.lower().endswith(ZIPPED_SUFFIXES):  # a book or a word-processor file: a zip of XML
                    yield from ([text] for text in _converted(path, zipped_to_markdown, UnreadableDocument))
                    continue
                if path.lower().endswith(".pdf"):
                    yield from ([text] for text, _ in _converted(path, pdf_to_markdown, UnreadablePDF))
                    continue
                if reader := _export_reader(path):  # a wiki's pages, a notes app's notes: each a document
                    yield from ([text] for _, text in _exported(path, reader))
                    continue
                if (encoding := _text_encoding(path)) is None:
                    warn(f"skipping binary file {path}", kind="binary files")
                    continue
                if is_man_page(path) or is_info_manual(path):  # their markup and menus would be much of the text
                    yield from _manual(path, encoding)
                    continue
                if uncompressed_name(path).lower().endswith(CONVERTED_SUFFIXES):  # a web page, a notebook, RTF
                    yield from _rich_text(path, encoding)
                    continue
                yield _text_or_wiki_page(path, encoding)
            except DAMAGED_DATA as exc:  # OSError, and a damaged compressed file's errors at its first block
                warn(f"skipping unreadable file {path}: {getattr(exc, 'strerror', None) or exc}")


def _text_or_wiki_page(path: str, encoding: str) -> Iterable[str]:
    """A text file's pieces, streamed (a file larger than memory); a wiki's page (a .wiki file, or a .txt file with
    a wiki's titles: DokuWiki keeps its pages so) whole, as Markdown."""
    pieces, name = _read_pieces(path, encoding), uncompressed_name(path).lower()
    if not name.endswith((*MEDIAWIKI_SUFFIXES, ".txt")):
        return pieces
    first = next(pieces, "")
    dialect = "mediawiki" if name.endswith(MEDIAWIKI_SUFFIXES) else wiki_dialect(first)
    if dialect is None or os.path.getsize(path) > WIKI_PAGE_BYTES:
        return itertools.chain([first], pieces)
    return [wiki_to_markdown(first + "".join(pieces), dialect)]


def _export_reader(path: str) -> Callable[[BinaryIO], Iterator[tuple[str, str]]] | None:
    """What reads the (title, Markdown) of each document in an export: an Evernote export, a MediaWiki export (an
    .xml file, told by its root element), a Google Keep note (a .json file, told by its fields); None for any other
    file, or one that cannot be read (read as text, it warns)."""
    name = uncompressed_name(path).lower()
    if name.endswith(EVERNOTE_SUFFIXES):
        return evernote_notes
    if not name.endswith((".xml", ".json")):
        return None
    try:
        with open_bytes(path) as fh:
            head = fh.read(4096)
    except DAMAGED_DATA:
        return None
    if name.endswith(".xml"):
        return mediawiki_pages if is_mediawiki_export(head) else None
    return keep_notes if is_keep_note(head) else None


def _exported(path: str, reader: Callable[[BinaryIO], Iterator[tuple[str, str]]]) -> Iterator[tuple[str, str]]:
    """(title, Markdown) of each document of an export; where the file is damaged, a warning and no more."""
    try:
        with open_bytes(path) as fh:
            yield from reader(fh)
    except (ParseError, ValueError) as exc:  # XML's, or JSON's (json.JSONDecodeError)
        warn(f"skipping the rest of {path}: not a well-formed export ({exc})")


def _manual(path: str, encoding: str) -> Iterator[Iterable[str]]:
    """A man page or an info manual as one document in Markdown; a file only named like one (a rotated log,
    "syslog.1") as its text, streamed; none for a page that only includes another (".so man1/grep.1")."""
    text = _converted_once(path, "manual", lambda: _manual_text(path, encoding))
    if text is None:
        yield _read_pieces(path, encoding)
    elif text:
        yield [text]


def _rich_text(path: str, encoding: str) -> Iterator[list[str]]:
    """A web page, a notebook, an RTF document or subtitles as its text in Markdown; none if it has no text."""
    text = _converted_once(path, "rich", lambda: as_markdown(path, "".join(_read_pieces(path, encoding)), warn))
    if text is not None:
        yield [text]


def _manual_text(path: str, encoding: str) -> str | None:
    """_manual's Markdown, "" for an alias page, None for a file that is not a manual after all."""
    pieces, head = _read_pieces(path, encoding), ""
    for piece in pieces:  # the first 64 KiB or so: a page's .TH, a manual's first node
        head += piece
        if len(head) >= 1 << 16:
            break
    looks, to_markdown = ((looks_like_man_page, man_to_markdown) if is_man_page(path)
                          else (looks_like_info_manual, info_to_markdown))
    return to_markdown(head + "".join(pieces)) if looks(head) else None


def _converted(path: str, to_markdown: Callable[[str], T], unreadable: type[Exception]) -> Iterator[T]:
    """A file that is not text, as what to_markdown finds in it; skipped with a warning if it finds no text."""
    def convert() -> T | None:
        try:
            return to_markdown(path)
        except unreadable as exc:
            warn(f"skipping {path}: {exc}")
            return None
    try:
        found = _converted_once(path, to_markdown.__name__, convert)
    except OSError as exc:
        warn(f"skipping unreadable file {path}: {exc.strerror}")
        return
    if found is not None:
        yield found


class _ConvertedTexts:
    """What converting a file gave, by its path, size and time: `gpt train` reads its input three times (tokenizer,
    token cache, questions), and a 300-page PDF, or a folder of manual pages, takes seconds to convert (and gives
    its warnings once). Kept up to `budget` characters in all, the least recently used given up first."""

    def __init__(self, budget: int):
        self.budget, self.size, self.kept = budget, 0, collections.OrderedDict()

    def get(self, path: str, kind: str, convert: Callable[[], T]) -> T:
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns, kind)
        if key in self.kept:
            self.kept.move_to_end(key)
            return self.kept[key]
        found = self.kept[key] = convert()
        self.size += _chars(found)
        while self.size > self.budget and len(self.kept) > 1:
            self.size -= _chars(self.kept.popitem(last=False)[1])
        return found


def _chars(converted: object) -> int:
    """The characters of a conversion's text: a text, or a PDF's (text, pages); 0 for none."""
    return len(converted[0] if isinstance(converted, tuple) else converted or "")


_converted_once = _ConvertedTexts(CONVERTED_CHARS).get


def read_documents(files: list[str], jsonl_field: str = "text", max_chars: int = 0) -> list[Document]:
    """Each document, whole, up to max_chars in all (0: no limit). The source is the file, or for a file of
    records its record ("notes.jsonl#3"), for the built-in corpus its topic ("builtin:pydoc#with")."""
    out, total = [], 0
    for path in files:
        if path == BUILTIN:
            named = (Document(f"{path}#{name}", text) for name, text in builtin_documents().items())
        elif path.lower().endswith(".pdf"):
            named = (Document(path, text, pages) for text, pages in _converted(path, pdf_to_markdown, UnreadablePDF))
        elif reader := _export_reader(path):
            named = (Document(f"{path}#{title}", text) for title, text in _exported(path, reader))
        else:
            records = uncompressed_name(path).endswith((".jsonl", ".parquet"))
            named = (Document(f"{path}#{n}" if records else path, "".join(doc))
                     for n, doc in enumerate(iter_documents([path], jsonl_field), 1))
        for document in named:
            out.append(document)
            total += len(document.text)
            if max_chars and total >= max_chars:
                return out
    return out


def iter_texts(files: list[str], jsonl_field: str = "text") -> Iterator[str]:
    """All text pieces, in order: what the tokenizer trains on."""
    for doc in iter_documents(files, jsonl_field):
        yield from doc
