"""Cutting a text into passages: what retrieval (gpt/retrieval.py) indexes and an open-book answer quotes.

A passage is a unit of the text's own structure: a markdown paragraph, one glossary line (with its wrapped end),
one term of a definition list, one FAQ block. Each keeps the heading path above it as its first line ("Plants >
Monstera"), is cut to at most MAX_CHARS at a sentence's end, remembers its source file, first line and page, and
is titled by what it answers: the heading right above it, its glossary or definition-list term, its FAQ
question, or the term its first sentence defines ("A suite is ..."). Titles are compared by title_key.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass

from gpt.docstrings import documented
from gpt.markup import HEADING, front_matter_lines
from gpt.qa import (
    ANSWER_LINE,
    LEADING_ARTICLE,
    QUESTION_LINE,
    SENTENCE_END,
    continued,
    defined_term,
    definition_list_item,
    glossary_entry,
    heading_title,
    is_title_line,
    not_an_entry,
    sentence_under_title,
    source_line,
    titled_lines,
)

MAX_CHARS = 800  # a passage is a paragraph or entry, not a chapter: it must fit in a small model's context
# a plural's end: -es after s, x, ch, sh ("classes", "boxes"); else -s after three letters, not after s ("lambdas")
_PLURAL = re.compile(r"(?:(?<=ss|\wx|ch|sh)es|(?<=\w\w[^\Ws])s)$")


@dataclass(frozen=True)
class Passage:
    text: str
    source: str
    line: int  # 1-based line of the passage's first text line in its source
    score: float = 0.0
    titles: tuple[str, ...] = ()  # the heading, glossary term or FAQ question this passage opens, if any
    body: int = 0  # where the entry's own text starts in `text`: after the heading path, "Term: " or "A: "
    page: int = 0  # the page of a paginated source (a PDF) the passage starts on; 0 for a text

    def cited(self) -> str:
        """Where the passage is, as a reader looks it up: "notes.md:12", or a PDF's "manual.pdf, page 3"."""
        return f"{self.source}, page {self.page}" if self.page else f"{self.source}:{self.line}"


def title_key(title: str) -> str:
    """A title or subject as compared: no case, markup, leading article, end punctuation or plural -s
    ("What is a lambda?" finds the section "Lambdas")."""
    text = " ".join(title.replace("**", "").replace("`", "").split()).casefold().rstrip("?.!: ")
    return _PLURAL.sub("", LEADING_ARTICLE.sub("", text))


def pieces(text: str, limit: int) -> list[tuple[int, str]]:
    """(offset, piece) with each piece at most `limit` characters, cut after a sentence, else at a space."""
    pieces, at = [], 0
    while len(text) - at > limit:
        window = text[at:at + limit + 1]
        cut = max(window.rfind(end) for end in (". ", "\n", "? ", "! ", "。", "？", "！"))
        cut = cut + 1 if cut > limit // 3 else window.rfind(" ")
        cut = cut if cut > 0 else limit
        pieces.append((at, text[at:at + cut]))
        at += cut
        while at < len(text) and text[at].isspace():
            at += 1
    if at < len(text):
        pieces.append((at, text[at:]))
    return pieces


def _paragraph_units(start: int, heading: str, text: str, under: str) -> Iterable[tuple]:
    """The units of one paragraph, as _units yields them, titled by what opens it: the heading right above it
    (`under`) and a definition list's term or an FAQ block's question (the body at its definition or answer);
    else the term its first definitional sentence defines ("A suite is ..."), the sentences before that sentence
    a unit of their own, untitled, so that the titled passage opens with the entry it answers. A paragraph that
    opens under a heading with a definitional sentence is titled by both."""
    titles = (under,) if under else ()
    lines = text.split("\n")
    while item := definition_list_item(lines, 0):  # a term on its line, its definition under it: a unit per term
        term, body = item
        unit = "\n".join(lines[:1 + len(body)])
        yield start, heading, unit, (term,), unit.find(body[0].strip(), len(lines[0]))  # not titled by a heading above
        start, lines, titles = start + 1 + len(body), lines[1 + len(body):], ()
        if not lines:
            return
    text = "\n".join(lines)
    if question := QUESTION_LINE.match(lines[0]):
        at = 0
        for line in lines:
            if answer := ANSWER_LINE.match(line):
                yield start, heading, text, titles + (question.group(1).strip(),), at + answer.start(1)
                return
            at += len(line) + 1
    if not titles:
        starts = [0] + [m.end() for m in SENTENCE_END.finditer(text)]
        for at, end in zip(starts, starts[1:] + [len(text)]):
            if term := defined_term(sentence_under_title(text[at:end])):
                if at:
                    yield start, heading, text[:at].rstrip(), (), 0
                yield start + text.count("\n", 0, at), heading, text[at:], (term,), 0
                return
    first = SENTENCE_END.search(text)
    term = defined_term(sentence_under_title(text[:first.end() if first else len(text)])) if titles else None
    if term and title_key(term) not in map(title_key, titles):
        titles += (term,)  # "## Description" over "Alda is a music composition language ...": it answers both
    yield start, heading, text, titles, 0


def _units(lines: list[str]) -> Iterable[tuple[int, str, str, tuple[str, ...], int]]:
    """(index of first line, heading path, text, titles, body offset) of every paragraph, glossary lines (with their
    wrapped ends) as units of their own. A unit's titles name the entry it is: the heading above it when it comes
    first under that heading, its glossary term, its FAQ question; the body offset is where its own text starts."""
    path: list[tuple[int, str]] = []  # (level, title) of the headings above
    block: list[str] = []
    under = ""  # the title of a heading no unit has followed yet
    wrapped = 0  # lines before this one are the wrapped end of a glossary line, already in its unit
    for i, line in enumerate(lines + [""]):
        if i < wrapped:
            continue
        heading = HEADING.match(line) if i < len(lines) else None
        entry = glossary_entry(line, 0, opens=not block)
        if block and (heading or not line.strip() or entry):
            if len(block) > 1 and is_title_line(block[0], block[1]):  # a plain-text title: a heading below all #s
                path = [(lv, t) for lv, t in path if lv < 7] + [(7, block.pop(0).strip())]
                under = path[-1][1]
            note = not_an_entry(block[0])  # a version note, grammar or session under a title: its entry is next
            yield from _paragraph_units(i - len(block), " > ".join(t for _, t in path), "\n".join(block),
                                            "" if note else under)
            block, under = [], under if note else ""
        if heading:
            level = len(heading.group(1))
            path = [(lv, t) for lv, t in path if lv < level] + [(level, heading_title(heading.group(2)))]
            under = path[-1][1]
        elif entry:
            more = continued(lines, i + 1)
            text, wrapped = " ".join([line.strip(), *(m.strip() for m in more)]), i + 1 + len(more)
            after = text.find(entry.term) + len(entry.term)
            body = text.find(entry.definition.split()[0], after) if after >= len(entry.term) else -1
            yield i, " > ".join(t for _, t in path), text, (under, entry.term) if under else (entry.term,), max(body, 0)
            under = ""
        elif line.strip():
            block.append(line)


def passages_of(text: str, source: str, max_chars: int = MAX_CHARS, pages: tuple[int, ...] = ()) -> list[Passage]:
    """The passages of one text; each keeps its heading path as a first line, the first piece of a unit its titles,
    and, given the line each page starts on (documents.Document.pages), its page."""
    lines, inserted = titled_lines(text, source)
    metadata = front_matter_lines(lines)  # a note's YAML front matter is not a passage; line numbers stay
    lines = [""] * metadata + lines[metadata:]
    found = []
    for start, heading, body, titles, at in _units(lines):
        room = max(max_chars - len(heading) - 1, max_chars // 2)
        prefix = f"{heading}\n" if heading else ""
        for n, (offset, piece) in enumerate(pieces(body, room)):
            line = start + 1 + body.count("\n", 0, offset)
            opens = n == 0 and at < len(piece)
            line = source_line(line, inserted)
            found.append(Passage(prefix + piece, source, line, titles=titles if opens else (),
                                 body=len(prefix) + (at if opens else 0), page=bisect.bisect_right(pages, line)))
    documented_names = _docstring_passages(text, source, max_chars)
    return sorted(found + documented_names, key=lambda p: p.line) if documented_names else found


def _docstring_passages(text: str, source: str, max_chars: int) -> list[Passage]:
    """Code's docstrings and doc comments, each titled by the name it documents (a method by "Class.method" and
    "method") and cited at its declaration's line (gpt/docstrings.py): what "What does collect_files do?" is
    answered from. [] for any other text."""
    found = []
    for doc in documented(text, source):
        prefix, titles = f"{doc.name}\n", tuple(dict.fromkeys([doc.name, doc.name.rsplit(".", 1)[-1]]))
        for n, (_, piece) in enumerate(pieces(doc.docstring, max(max_chars - len(prefix), max_chars // 2))):
            found.append(Passage(prefix + piece, source, doc.line, titles=titles if n == 0 else (), body=len(prefix)))
    return found
