"""Find the passages of the training text that answer a question: Okapi BM25 over an inverted index.

Open-book answering needs the few passages a question is about, and a small model needs them fast and
explainable. BM25 scores a passage by how often it contains each query word (saturating with k1, so the tenth
"plant" adds little), how rare that word is across passages (IDF, so "what" and "is" weigh nothing next to
"monstera") and how long the passage is (b, so long passages don't win by size alone):

    score(q, p) = sum over words w of q:  idf(w) * tf(w, p) * (k1 + 1) / (tf(w, p) + k1 * (1 - b + b * |p| / avg|p|))
    idf(w) = ln(1 + (N - n(w) + 0.5) / (n(w) + 0.5))        (N passages, n(w) of them contain w)

Passages are the text cut at its structure: a markdown paragraph, or one glossary line, each prefixed with the
heading path above it and bounded to `max_chars`, each remembering its source file and first line.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gpt.data import read_documents
from gpt.errors import InputError
from gpt.files import atomic_write, format_problem
from gpt.qa import HEADING, glossary_entry, heading_title

INDEX_FORMAT = "gpt-passages"
INDEX_VERSION = 1
MAX_CHARS = 800  # a passage is a paragraph or entry, not a chapter: it must fit in a small model's context
_WORD = re.compile(r"\w+")
# Words that shape a question but say nothing about its subject; dropped from queries (unless nothing else is left).
QUESTION_WORDS = frozenset("""
what whats is are was were the a an of does do did mean means meant by tell me about define definition explain
describe can could you give who how why when where which please i to it this that
""".split())


class RetrievalError(InputError):
    """A passage index file that cannot be used; the CLI prints it as one line."""


@dataclass(frozen=True)
class Passage:
    text: str
    source: str
    line: int  # 1-based line of the passage's first text line in its source
    score: float = 0.0


def words(text: str) -> list[str]:
    """Lowercase word tokens with a plural "s" cut ("plants" finds "plant"); used for passages and queries alike."""
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in _WORD.findall(text.lower())]


# ----------------------------------------------------------------------------- cutting text into passages

def _pieces(text: str, limit: int) -> list[tuple[int, str]]:
    """(offset, piece) with each piece at most `limit` characters, cut after a sentence, else at a space."""
    pieces, at = [], 0
    while len(text) - at > limit:
        window = text[at:at + limit + 1]
        cut = max(window.rfind(". "), window.rfind("\n"), window.rfind("? "), window.rfind("! "))
        cut = cut + 1 if cut > limit // 3 else window.rfind(" ")
        cut = cut if cut > 0 else limit
        pieces.append((at, text[at:at + cut]))
        at += cut
        while at < len(text) and text[at].isspace():
            at += 1
    if at < len(text):
        pieces.append((at, text[at:]))
    return pieces


def _units(lines: list[str]) -> Iterable[tuple[int, str, str]]:
    """(index of first line, heading path, text) of every paragraph, with glossary lines as units of their own."""
    path: list[tuple[int, str]] = []  # (level, title) of the headings above
    block: list[str] = []
    for i, line in enumerate(lines + [""]):
        heading = HEADING.match(line) if i < len(lines) else None
        entry = glossary_entry(line, 0, opens=not block)
        if block and (heading or not line.strip() or entry):
            yield i - len(block), " > ".join(t for _, t in path), "\n".join(block)
            block = []
        if heading:
            level = len(heading.group(1))
            path = [(lv, t) for lv, t in path if lv < level] + [(level, heading_title(heading.group(2)))]
        elif entry:
            yield i, " > ".join(t for _, t in path), line.strip()
        elif line.strip():
            block.append(line)


def passages_of(text: str, source: str, max_chars: int = MAX_CHARS) -> list[Passage]:
    """The passages of one text; each keeps its heading path as a first line."""
    lines = text.splitlines()
    found = []
    for start, heading, body in _units(lines):
        room = max(max_chars - len(heading) - 1, max_chars // 2)
        for offset, piece in _pieces(body, room):
            line = start + 1 + body.count("\n", 0, offset)
            found.append(Passage(f"{heading}\n{piece}" if heading else piece, source, line))
    return found


# ----------------------------------------------------------------------------- the index

class PassageIndex:
    """BM25 over passages; build() from files or (source, text) pairs, search() for a question."""

    def __init__(self, passages: list[Passage], k1: float = 1.5, b: float = 0.75):
        self.passages, self.k1, self.b = passages, k1, b
        self._postings: dict[str, list[tuple[int, int]]] = defaultdict(list)  # word -> [(passage, count)]
        self._lengths = []
        for i, passage in enumerate(passages):
            counts = Counter(words(passage.text))
            self._lengths.append(sum(counts.values()))
            for word, count in counts.items():
                self._postings[word].append((i, count))
        self._average = sum(self._lengths) / len(self._lengths) if passages else 0.0

    @classmethod
    def build(cls, files_or_texts: Iterable[str | os.PathLike | tuple[str, str]],
              max_chars: int = MAX_CHARS) -> PassageIndex:
        """Index files (paths; binary ones skipped with a warning) and (source, text) pairs."""
        passages: list[Passage] = []
        for item in files_or_texts:
            documents = [item] if isinstance(item, tuple) else read_documents([os.fspath(item)])
            for source, text in documents:
                passages += passages_of(text, source, max_chars)
        return cls(passages)

    def _idf(self, word: str) -> float:
        n = len(self._postings.get(word, ()))
        return math.log(1 + (len(self.passages) - n + 0.5) / (n + 0.5))

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The k best passages for `query`, best first (ties: earlier passage first); [] when nothing matches."""
        asked = _WORD.findall(query.lower())
        terms = list(dict.fromkeys(words(" ".join([w for w in asked if w not in QUESTION_WORDS] or asked))))
        scores: dict[int, float] = defaultdict(float)
        for word in terms:
            idf = self._idf(word)
            for i, tf in self._postings.get(word, ()):
                norm = 1 - self.b + self.b * self._lengths[i] / self._average
                scores[i] += idf * tf * (self.k1 + 1) / (tf + self.k1 * norm)
        best = heapq.nsmallest(max(k, 0), scores.items(), key=lambda item: (-item[1], item[0]))
        return [Passage(p.text, p.source, p.line, round(s, 6)) for i, s in best if s > 0 for p in [self.passages[i]]]

    def save(self, path: str | os.PathLike) -> None:
        """JSON with a format name and version, written to a temporary file and renamed into place."""
        record = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "k1": self.k1, "b": self.b,
                  "passages": [[p.text, p.source, p.line] for p in self.passages]}
        atomic_write(path, json.dumps(record, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> PassageIndex:
        """An index saved by save(); a damaged or foreign file is a one-line RetrievalError (the index is rebuilt
        from the passages, which is quick and cannot disagree with them)."""
        try:
            with open(path, encoding="utf-8") as fh:
                record = json.load(fh)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RetrievalError(f"{path} is not a passage index (damaged JSON: {exc})") from None
        if problem := format_problem(record, INDEX_FORMAT, INDEX_VERSION, "passage index"):
            raise RetrievalError(f"{path} {problem}")
        try:
            passages = [Passage(str(text), str(source), int(line)) for text, source, line in record["passages"]]
            return cls(passages, float(record["k1"]), float(record["b"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RetrievalError(f"{path} is a damaged passage index ({type(exc).__name__}: {exc})") from None


def open_book_question(question: str, passages: list[str]) -> str:
    """A question with its retrieved passages before it: the form open-book examples are trained in."""
    context = "\n\n".join(passages)
    return f"Context:\n{context}\n\nQuestion: {question}"


def fitted_question(question: str, passages: list[str], fits: Callable[[str], bool]) -> tuple[str, int]:
    """The open-book question with as many of the best passages as fit (the last one cut if need be).

    fits(text) says whether a question text fits the model's context. Returns (text, passages used);
    with no room for any passage, the bare question and 0.
    """
    for k in range(len(passages), 0, -1):
        text = open_book_question(question, passages[:k])
        if fits(text):
            return text, k
    best = passages[0] if passages else ""
    while len(best) > 40:
        best = best[:len(best) // 2].rsplit(" ", 1)[0] + " ..."
        if fits(text := open_book_question(question, [best])):
            return text, 1
    return question, 0
