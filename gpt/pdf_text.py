"""PDF files read as text, with pypdf (an optional dependency: pip install 'gpt[pdf]').

A PDF holds glyphs placed on pages, not paragraphs or titles, so what comes out is each page's text in order,
with words broken at a line's end ("photo-\nsynthesis") joined again. Titles come from the document's outline
(its bookmarks, which most exported PDFs have): a line that is a bookmark's title (its section number aside) is
written as a Markdown title of the bookmark's depth, so that questions and passages find it as they find a note's.
Running headers and footers (a line at the edge of several pages, page numbers) and a table of contents' lines
are left out; a bulleted line is a Markdown list item. A PDF without an outline gives text only; a scanned one
(pictures of pages) gives none, and is skipped with a warning.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

_BROKEN_WORD = re.compile(r"(\w)-\n(\w)")  # "photo-\nsynthesis": the hyphen only cut the word at a line's end
_SECTION_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)*|[A-Z](?:\.\d+)+)\.?\s+")
_LEADER = re.compile(r"(?:\.\s?){4,}\s*\d+\s*$")  # a table of contents' "2.2 Naming . . . . . 3"
_PAGE_NUMBER = re.compile(r"^\s*(?:[-–—]\s*)?(?:\d+|[ivxlc]+)(?:\s*[-–—])?\s*$", re.IGNORECASE)
# A list's bullet glyph, or a C1 control code where the font's bullet has no Unicode mapping (TeX's PDFs give
# "\x88"): a Markdown list item, as notes write one. Other control codes are glyphs with no text.
_BULLET = re.compile(r"^(\s*)[•◦▪▫‣∙●○■□►▸➢\x80-\x9f][ \t]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class UnreadablePDF(ValueError):
    """A PDF that cannot be read; gpt/documents.py skips it with this message."""


def pdf_to_markdown(path: str) -> tuple[str, tuple[int, ...]]:
    """The text of a PDF's pages, its bookmarked titles as Markdown titles (see the module's docstring), and the
    line of that text each page starts on (1-based; a page left empty starts where the next one does)."""
    try:
        from pypdf import PdfReader
    except ImportError:
        raise UnreadablePDF("reading PDF needs pypdf (pip install 'gpt[pdf]')") from None
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its notes on repaired files are not the user's concern
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadablePDF("the PDF is encrypted")
        titles = _outline_titles(reader.outline)
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadablePDF:
        raise
    except Exception as exc:  # a damaged file raises many kinds in pypdf (PdfReadError, zlib.error, IndexError...)
        raise UnreadablePDF(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    kept = _without_running_lines([_BROKEN_WORD.sub(r"\1\2", page).splitlines() for page in pages], titles)
    lines, starts = [], []
    for page in kept:
        starts.append(len(lines) + 1)
        lines += [_as_title(_plain(line), titles) for line in page if not _LEADER.search(line)]
    text = "\n".join(lines).rstrip()  # leading blank lines stay: each line keeps its page
    if not text.strip():
        raise UnreadablePDF("the PDF has no text (a scan? run OCR on it first)")
    return text + "\n", tuple(starts)


def _plain(line: str) -> str:
    """A line of a page as Markdown text: its bullet a list item's "- ", control codes left out."""
    return _CONTROL.sub("", _BULLET.sub(r"\1- ", line))


def _key(title: str) -> str:
    """A title as compared: its section number ("2.1", "A.3.") left out, its words single-spaced, case folded."""
    return " ".join(_SECTION_NUMBER.sub("", title.strip()).split()).casefold()


def _outline_titles(outline: list, depth: int = 1) -> dict[str, int]:
    """{_key of a bookmark's title: its depth}; pypdf nests a bookmark's children as a list after it."""
    titles: dict[str, int] = {}
    for item in outline:
        if isinstance(item, list):
            titles.update({t: d for t, d in _outline_titles(item, depth + 1).items() if t not in titles})
        elif (title := _key(str(getattr(item, "title", "") or ""))) and title not in titles:
            titles[title] = depth
    return titles


def _as_title(line: str, titles: dict[str, int]) -> str:
    """A bookmarked line as a title; a line of the text that starts with "#" (a comment in code) indented as code."""
    depth = titles.get(_key(line))
    return f"{'#' * min(depth, 6)} {line.strip()}" if depth else f"    {line}" if line.startswith("#") else line


def _without_running_lines(pages: list[list[str]], titles: dict[str, int]) -> list[list[str]]:
    """Pages without their running headers and footers: among a page's first and last two lines, a page number,
    or a line that (its numbers aside) is at the edge of two pages or more and is no bookmark's title."""
    def shape(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()))

    edges = Counter(s for page in pages for s in {shape(line) for line in page[:2] + page[-2:]})
    running = {s for s, n in edges.items() if n >= 2}

    def kept(line: str) -> bool:
        return not _PAGE_NUMBER.match(line) and (shape(line) not in running or _key(line) in titles)

    return [[line for i, line in enumerate(page) if 2 <= i < len(page) - 2 or kept(line)] for page in pages]
