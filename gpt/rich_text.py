"""Web pages, Jupyter notebooks and RTF documents read as Markdown, whole; notes apps' exports as a note each.

None of these is text anyone reads as it is written, so gpt/documents.py converts a web page (its tags), a
notebook (its JSON) or an RTF file (its control words: what macOS TextEdit and WordPad save) before anything else
sees it: the model trains on the text, and line numbers are those of the Markdown. RTF is read with the small
striprtf library (an optional dependency: pip install 'gpt[rtf]'); without it an RTF file is skipped with a
warning rather than trained on as control words. An Evernote export (.enex) holds many notes, each a web page
in XML: each becomes a document of its own, "# Title" over its text; so does each Google Keep note of a Takeout
export (a .json file a note, read in place of its .html twin).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import BinaryIO

from gpt.files import uncompressed_name, xml_elements
from gpt.subtitles import SUBTITLE_SUFFIXES, subtitles_to_markdown

NOTEBOOK_SUFFIXES = (".ipynb",)
EVERNOTE_SUFFIXES = (".enex",)
_KEEP_MARK = b'"userEditedTimestampUsec"'  # a field every Google Keep note of a Takeout export has


def notebook_to_markdown(text: str) -> str | None:
    """A Jupyter notebook's cells in order: Markdown cells as they are, code cells fenced in the notebook's
    language; outputs left out. None when the text is not a notebook's JSON."""
    try:
        notebook = json.loads(text)
        cells, language = notebook["cells"], notebook.get("metadata", {}).get("language_info", {}).get("name", "")
        parts = []
        for cell in cells:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else str(cell["source"])
            if cell.get("cell_type") == "markdown":
                parts.append(source.strip())
            elif cell.get("cell_type") == "code" and source.strip():
                parts.append(f"```{language}\n{source.strip()}\n```")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return "\n\n".join(p for p in parts if p) + "\n"


HTML_SUFFIXES = (".html", ".htm", ".xhtml")
_HTML_SKIPPED = {"head", "script", "style", "noscript", "template", "svg", "nav", "math", "button", "select"}
# what a heading's link to itself shows (Sphinx and MkDocs "¶", Node.js "#", Docusaurus a zero-width space)
_PERMALINK_MARKS = {"", "#", "\u00b6", "\u00a7", "\U0001f517", "\u200b"}
_HTML_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_HTML_BLOCKS = {"p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "table", "hr",
                "figure", "figcaption", "details", "summary", "form", "fieldset", "body"}


class _MarkdownWriter(HTMLParser):
    """A web page's text as Markdown: headings as #s, paragraphs apart, list items as "- ", <dt>/<dd> as a
    definition list, <pre> as a fence, table cells apart; scripts, styles, the <head> and menus left out."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line, self.prefix, self.skipped, self.pre, self.lists = "", "", 0, 0, 0
        self.anchor: int | None = None  # where the text of a link to this page (href="#...") starts in the line

    def _end_line(self, blank: bool = False) -> None:
        if self.line.strip():
            self.lines.append(self.prefix + " ".join(self.line.split()))
        self.line, self.prefix = "", ""
        if blank and self.lines and self.lines[-1]:
            self.lines.append("")

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _HTML_SKIPPED or self.skipped:
            self.skipped += tag in _HTML_SKIPPED
        elif tag == "pre":
            self._end_line(blank=True)
            self.lines.append("```")
            self.pre += 1
        elif tag in _HTML_HEADINGS:
            self._end_line(blank=True)
            self.prefix = "#" * int(tag[1]) + " "
        elif tag in ("li", "dt", "dd", "br", "tr"):
            self._end_line()
            self.prefix = {"li": "- ", "dd": ": ", "tr": "| "}.get(tag, "")
        elif tag in ("td", "th"):
            self.line += " | " if self.line.strip() else ""
        elif tag in ("ul", "ol", "dl"):
            self._end_line(blank=not self.lists)
            self.lists += 1
        elif tag in _HTML_BLOCKS:
            self._end_line(blank=True)
        elif tag == "a":
            self.anchor = len(self.line) if (dict(attrs).get("href") or "").startswith("#") else None

    def handle_endtag(self, tag: str) -> None:
        if self.skipped:
            self.skipped -= tag in _HTML_SKIPPED
        elif tag == "pre" and self.pre:
            self.lines += self.line.strip("\n").split("\n") if self.line.strip() else []
            self.line, self.pre = "", self.pre - 1
            self.lines += ["```", ""]
        elif tag == "tr":
            self.line += " |" if self.line.strip() else ""
            self._end_line()
        elif tag in ("ul", "ol", "dl"):
            self.lists = max(self.lists - 1, 0)
            self._end_line(blank=not self.lists)
        elif tag in _HTML_HEADINGS or tag in _HTML_BLOCKS:
            self._end_line(blank=True)
        elif tag in ("li", "dt", "dd"):
            self._end_line()
        elif tag == "a" and self.anchor is not None:
            if self.line[self.anchor:].strip() in _PERMALINK_MARKS:  # "Monstera¶": the title is "Monstera"
                self.line = self.line[:self.anchor]
            self.anchor = None

    def handle_data(self, data: str) -> None:
        if not self.skipped:
            self.line += data

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        """"<![CDATA[...]]>" and the like; a "<![" with no name after it ("a <![ b") is text, where Python 3.11's
        parser raises an AssertionError."""
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            self.handle_data(self.rawdata[i:i + 3])
            return i + 3


def html_to_markdown(html: str) -> str:
    """The text of a web page, as Markdown (see _MarkdownWriter)."""
    writer = _MarkdownWriter()
    writer.feed(html)
    writer.close()
    writer._end_line()
    return "\n".join(writer.lines).strip() + "\n"


RTF_SUFFIXES = (".rtf",)
CONVERTED_SUFFIXES = HTML_SUFFIXES + NOTEBOOK_SUFFIXES + RTF_SUFFIXES + SUBTITLE_SUFFIXES


def rtf_to_markdown(rtf: str) -> str | None:
    """An RTF document's text (its paragraphs, its characters escaped or in Unicode), or None without striprtf."""
    try:
        from striprtf.striprtf import rtf_to_text
    except ImportError:
        return None
    return "\n".join(line.rstrip() for line in rtf_to_text(rtf, errors="replace").split("\n")).strip() + "\n"


def as_markdown(path: str, text: str, warn: Callable[[str], None]) -> str | None:
    """A web page, a notebook, an RTF document or subtitles (gpt/subtitles.py) as Markdown; a .ipynb file that is
    no notebook as it is, with a warning; None (and a warning) for an RTF file when striprtf is not installed."""
    suffix = uncompressed_name(path).lower()
    if suffix.endswith(HTML_SUFFIXES):
        return html_to_markdown(text)
    if suffix.endswith(SUBTITLE_SUFFIXES):
        return subtitles_to_markdown(text)
    if suffix.endswith(RTF_SUFFIXES):
        if (document := rtf_to_markdown(text)) is None:
            warn(f"skipping {path}: reading RTF needs striprtf (pip install 'gpt[rtf]')")
        return document
    if (notebook := notebook_to_markdown(text)) is None:
        warn(f"{path} is not a Jupyter notebook's JSON: reading it as text")
        return text
    return notebook


def evernote_notes(stream: BinaryIO) -> Iterator[tuple[str, str]]:
    """(title, Markdown) of each note of an Evernote export: "# Title" over its text; its pictures and attachments
    (base64 in the file) are not read. Streams, note by note; a damaged file raises xml.etree.ElementTree.ParseError
    where the damage is met."""
    for note in xml_elements(stream, "note"):
        title = " ".join((note.findtext("title") or "").split())
        text = html_to_markdown(note.findtext("content") or "").strip("\n")
        if text:
            yield _titled(title, text)


def is_keep_note(head: bytes) -> bool:
    """Whether a .json file's first bytes are a Google Keep note's, as Takeout exports them."""
    return _KEEP_MARK in head and (b'"textContent"' in head or b'"listContent"' in head)


def keep_notes(stream: BinaryIO) -> Iterator[tuple[str, str]]:
    """(title, Markdown) of a Google Keep note (Takeout writes one JSON file a note): "# Title" over its text, a
    checklist as "- [x] item" lines; nothing for a note in the bin. Raises ValueError for a file that is no JSON."""
    note = json.load(stream)
    if not isinstance(note, dict) or note.get("isTrashed"):
        return
    items = [i for i in note.get("listContent") or [] if isinstance(i, dict)]
    lines = [str(note.get("textContent") or "").strip()]
    lines += [f"- [{'x' if item.get('isChecked') else ' '}] {item.get('text', '')}".rstrip() for item in items]
    title, text = " ".join(str(note.get("title") or "").split()), "\n".join(line for line in lines if line)
    if text:
        yield _titled(title, text)


def _titled(title: str, text: str) -> tuple[str, str]:
    """A note of an export as (its name, its Markdown): "# Title" over its text; "Untitled" names one with none."""
    return title or "Untitled", f"# {title}\n\n{text}\n" if title else f"{text}\n"
