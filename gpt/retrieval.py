"""Find the passages of the training text that answer a question: Okapi BM25 over an inverted index.

Open-book answering needs the few passages a question is about, and a small model needs them fast and
explainable. BM25 scores a passage by how often it contains each query word (saturating with k1, so the tenth
"plant" adds little), how rare that word is across passages (IDF, so "what" and "is" weigh nothing next to
"monstera") and how long the passage is (b, so long passages don't win by size alone):

    score(q, p) = sum over words w of q:  idf(w) * tf(w, p) * (k1 + 1) / (tf(w, p) + k1 * (1 - b + b * |p| / avg|p|))
    idf(w) = ln(1 + (N - n(w) + 0.5) / (n(w) + 0.5))        (N passages, n(w) of them contain w)

Passages are the text cut at its structure: a markdown paragraph, or one glossary line, each prefixed with the
heading path above it and bounded to `max_chars`, each remembering its source file and first line.

A question about a named thing ("What is X?", "Tell me about X.", an FAQ's own question) is answered first by
the passage whose title is X: the heading it opens, its glossary term or its FAQ question (compared without
case, articles or end punctuation). BM25 ranks the rest: words alone cannot tell "foo" from "foo bar" or from
an entry that merely mentions foo, and a title can.

open_book() builds the prompt an open-book answer is given and trained with (gpt/ask.py, for `gpt ask`, `gpt chat`
and `gpt serve`, and gpt/qa_mix.py both call it, so a model is asked in exactly the form it learnt): the best
passage first, cut to leave room in the context for an answer copied out of it.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import json
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gpt.documents import read_documents
from gpt.errors import InputError
from gpt.files import atomic_write, format_problem
from gpt.markup import HEADING, front_matter_lines
from gpt.qa import (
    ANSWER_LINE,
    QUESTION_LINE,
    SENTENCE_END,
    TEMPLATES,
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

INDEX_FORMAT = "gpt-passages"
INDEX_VERSION = 5  # 2: titles and body offsets; 3: definitional titles; 4: setext and RST headings; 5: pages
RUN_PASSAGES = "passages.json"  # a run's own text as passages, saved when it trains on open-book questions
MAX_CHARS = 800  # a passage is a paragraph or entry, not a chapter: it must fit in a small model's context
_WORD = re.compile(r"\w+")
_CJK = re.compile("[\u3005-\u3007\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
                  "\U00020000-\U0003134f]+")  # kana (half-width too), ideographs, 々 and 〇
# a plural's end: -es after s, x, ch, sh ("classes", "boxes"); else -s after three letters, not after s ("lambdas")
_PLURAL = re.compile(r"(?:(?<=ss|\wx|ch|sh)es|(?<=\w\w[^\Ws])s)$")
QUESTION_WORDS = frozenset("""
what whats is are was were the a an of does do did mean means meant by tell me about define definition explain
describe can could you give who how why when where which please i to it this that
""".split())  # they shape a question but say nothing of its subject: dropped from queries (unless nothing is left)


class RetrievalError(InputError):
    """A passage index file that cannot be used, or passages asked for that cannot be had: one line, exit 2."""


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


def words(text: str) -> list[str]:
    """Lowercase word tokens with a plural "s" cut ("plants" finds "plant"); used for passages and queries alike.
    Chinese and Japanese put no spaces between words, so there each two neighbouring characters are a word (the
    bigrams Lucene's CJK analyzer indexes): "龟背竹是什么" finds "龟背竹是一种植物"."""
    found = []
    for w in _WORD.findall(_CJK.sub(r" \g<0> ", text.lower())):
        if _CJK.match(w):
            found += [w[i:i + 2] for i in range(max(len(w) - 1, 1))]
        else:
            found.append(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return found


_ALSO_ASKED = ("What are {t}?", "What's {t}?", "What was {t}?", "What were {t}?", "Who is {t}?", "Who was {t}?",
               "Who are {t}?", "Who were {t}?", "Who's {t}?",  # people and places are asked "who", not "what"
               "What does {t} do?", "What is {t} used for?", "What is {t} for?")  # programs and tools
# "What is X?" and the other ways gpt/qa.py asks about a term, longest first ("What is meant by X?" before "What
# is X?"), read without case and with any end punctuation: the X of a question is its subject.
_ASKED = [re.compile(re.escape(head).replace("\\ ", r"\s+") + r"(.+?)" + re.escape(tail.rstrip("?.")) + r"\s*[?.!]*",
                     re.IGNORECASE)
          for head, tail in sorted((t.split("{t}") for t in (*TEMPLATES, *_ALSO_ASKED)),
                                   key=lambda parts: -len(parts[0]) - len(parts[1]))]
_ASKED += [re.compile(r"(.+?)是什么(?:意思)?[？?]?"), re.compile(r"什么是(.+?)[？?]?"),  # Chinese, Japanese
           re.compile(r"(.+?)(?:って|とは)(?:何|なん)(?:ですか)?[？?]?")]
_ARTICLE = re.compile(r"^(?:the|a|an)\s+")


def question_subject(question: str) -> str:
    """What a question asks about: the X of "What is X?", "Tell me about X." ...; else the whole question."""
    question = " ".join(question.split())
    for asked in _ASKED:
        if match := asked.fullmatch(question):
            return match.group(1)
    return question


def title_key(title: str) -> str:
    """A title or subject as compared: no case, markup, leading article, end punctuation or plural -s
    ("What is a lambda?" finds the section "Lambdas")."""
    text = " ".join(title.replace("**", "").replace("`", "").split()).casefold().rstrip("?.!: ")
    return _PLURAL.sub("", _ARTICLE.sub("", text))


# ----------------------------------------------------------------------------- cutting text into passages

def _pieces(text: str, limit: int) -> list[tuple[int, str]]:
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
        for n, (offset, piece) in enumerate(_pieces(body, room)):
            line = start + 1 + body.count("\n", 0, offset)
            opens = n == 0 and at < len(piece)
            line = source_line(line, inserted)
            found.append(Passage(prefix + piece, source, line, titles=titles if opens else (),
                                 body=len(prefix) + (at if opens else 0), page=bisect.bisect_right(pages, line)))
    return found


def _emphasized(subject: str) -> re.Pattern:
    """`subject` (or its plural) in *emphasis* or **bold**, as notes mark a term where they introduce it."""
    if not subject:
        return re.compile(r"(?!)")  # matches nothing
    term = re.escape(subject).replace("\\ ", r"\s+")
    return re.compile(rf"(?<![\w*])(\*\*?){term}(?:e?s)?\1(?![\w*])", re.IGNORECASE)


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
        self._titled: dict[str, list[int]] = defaultdict(list)  # title key -> passages with that title, in order
        for i, passage in enumerate(passages):
            for key in dict.fromkeys(title_key(question_subject(t)) for t in passage.titles):  # "What is CRAN?": cran
                self._titled[key].append(i)
        # what search ranks by besides titles and BM25, worked out once per passage, not once per query
        entries = [p.text[p.body:] for p in passages]
        self._notation = {i for i, entry in enumerate(entries) if not_an_entry(entry, notation=True)}
        self._starred = {i for i, entry in enumerate(entries) if "*" in entry}  # may emphasize a term

    @classmethod
    def build(cls, files_or_texts: Iterable[str | os.PathLike | tuple[str, ...]],
              max_chars: int = MAX_CHARS) -> PassageIndex:
        """Index files (paths; binary ones skipped with a warning), (source, text) pairs and documents.Document."""
        passages: list[Passage] = []
        for item in files_or_texts:
            documents = [item] if isinstance(item, tuple) else read_documents([os.fspath(item)])
            for source, text, *pages in documents:
                passages += passages_of(text, source, max_chars, *pages)
        return cls(passages)

    def _idf(self, word: str) -> float:
        n = len(self._postings.get(word, ()))
        return math.log(1 + (len(self.passages) - n + 0.5) / (n + 0.5))

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The k best passages for `query`, best first; [] when nothing matches.

        Passages titled with the question's subject come first (in text order; else those whose title starts
        with it), then the others: prose before notation such as grammar and sessions (qa.not_an_entry),
        first those where the subject is emphasized ("one or more *decorator* expressions": where a term is
        introduced), then by BM25 score (ties: earlier passage first). A passage whose entry repeats a
        better one's word for word (the same section included in two documents) is left out.
        """
        asked = _WORD.findall(query.lower())
        terms = list(dict.fromkeys(words(" ".join([w for w in asked if w not in QUESTION_WORDS] or asked))))
        scores: dict[int, float] = defaultdict(float)
        for word in terms:
            idf = self._idf(word)
            for i, tf in self._postings.get(word, ()):
                norm = 1 - self.b + self.b * self._lengths[i] / self._average
                scores[i] += idf * tf * (self.k1 + 1) / (tf + self.k1 * norm)
        subject = title_key(question_subject(query))
        titled = {i: rank for rank, i in enumerate(self._titled_with(subject, query))}
        found = [i for i, s in scores.items() if s > 0] + [i for i in titled if i not in scores]
        introduced = _emphasized(subject)
        first = subject.split()[0].lower() if subject else ""

        def rank(i: int) -> tuple[int, bool, bool, float, int]:  # the regex only where a plain scan finds the term
            entry = self.passages[i].text[self.passages[i].body:] if i in self._starred else ""
            emphasized = first in entry.lower() and introduced.search(entry)
            return titled.get(i, len(titled)), i in self._notation, not emphasized, -scores.get(i, 0), i

        best, seen = [], set()
        for i in heapq.nsmallest(4 * max(k, 0), found, key=rank):
            entry = self.passages[i].text[self.passages[i].body:]
            if len(best) < k and entry not in seen:
                seen.add(entry)
                best.append(dataclasses.replace(self.passages[i], score=round(scores.get(i, 0.0), 6)))
        return best

    def _titled_with(self, subject: str, question: str = "") -> list[int]:
        """Passages titled `subject`: any titled with the very question (an FAQ's), any whose entry opens with it, then
        the shallowest (page "tar" before page "file"'s option "tar"); else those whose titles start with it."""
        if not subject:
            return []
        if exact := self._titled.get(subject):  # "Lists are ..." before "The items of a list ..."
            asked, depth = title_key(question), lambda i: self.passages[i].text[:self.passages[i].body].count(" > ")
            return sorted(exact, key=lambda i: (asked not in map(title_key, self.passages[i].titles),
                                                not self._opens_with(i, subject), depth(i)))
        return sorted(i for key, ids in self._titled.items() if key.startswith(subject + " ") for i in ids)

    def _opens_with(self, i: int, subject: str) -> bool:
        """Whether passage i's entry opens with the subject ("A list is ...", "Lists are ..."): it says what X is."""
        entry = _ARTICLE.sub("", self.passages[i].text[self.passages[i].body:].lstrip().casefold())
        return title_key(" ".join(entry.split()[:len(subject.split())])) == subject

    def save(self, path: str | os.PathLike) -> None:
        """JSON with a format name and version, written to a temporary file and renamed into place."""
        record = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "k1": self.k1, "b": self.b,
                  "passages": [[p.text, p.source, p.line, list(p.titles), p.body, p.page] for p in self.passages]}
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
        problem = format_problem(record, INDEX_FORMAT, INDEX_VERSION, "passage index")
        if problem and format_problem(record, INDEX_FORMAT, 4, "passage index"):  # 4: the same rows, without pages
            raise RetrievalError(f"{path} {problem}")
        try:
            passages = [Passage(str(text), str(source), int(line), titles=tuple(map(str, titles)), body=int(body),
                                page=int(page[0]) if page else 0)
                        for text, source, line, titles, body, *page in record["passages"]]
            return cls(passages, float(record["k1"]), float(record["b"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RetrievalError(f"{path} is a damaged passage index ({type(exc).__name__}: {exc})") from None


def open_book_question(question: str, passages: list[str]) -> str:
    """A question with its retrieved passages before it: the form open-book examples are trained in."""
    context = "\n\n".join(passages)
    return f"Context:\n{context}\n\nQuestion: {question}"


CHARS_PER_TOKEN = 3  # about what a small BPE vocabulary gives on English (benchmarks/README.md): room by length
PROMPT_TOKENS = 12  # the chat tokens, "Context:" and "Question:" around an open-book conversation
MIN_ANSWER = 30  # characters: with less room than two of these (a short sentence each), no open book
MIN_PASSAGE = 80  # characters: a further passage cut shorter than this says nothing


@dataclass(frozen=True)
class OpenBook:
    """An open-book question: the prompt, the passages in it (best first), and the answer copied from it."""

    prompt: str
    passages: list[Passage]
    answer: str  # the best passage's first sentence as the prompt shows it; "" when there is no passage
    shown: tuple[str, ...] = ()  # the passages as the prompt shows them (cut); answers quote the first


def first_sentence(text: str, limit: int) -> str:
    """The first sentence of `text`, whitespace collapsed, cut at a word to at most `limit` characters."""
    text = " ".join(text.split())
    if end := SENTENCE_END.search(text):
        text = text[:end.start()]
    if len(text) > limit:
        cut = text.rfind(" ", 0, limit + 1)
        text = text[:cut if cut > 0 else limit]
    return text.rstrip()


def _shown(text: str, limit: int) -> str:
    """`text` cut to `limit` characters: after a sentence, else at a word with " ..." to say so."""
    if len(text) <= limit:
        return text
    piece = _pieces(text, max(limit - 4, 1))[0][1].rstrip()
    return piece if piece.endswith((".", "!", "?", "。", "！", "？")) else piece + " ..."


def _fill(question: str, hits: list[Passage], room: int) -> OpenBook | None:
    """The prompt within `room` characters (answer included): the best passage first, cut to leave room for
    its first sentence copied as the answer, then further passages, cut, in what is left."""
    best = hits[0]
    head, body = best.text[:best.body], " ".join(best.text[best.body:].split())
    left = room - len(question) - len(head)
    answer = first_sentence(body, (left - 5) // 2)  # 5: what _shown may cut before the limit, " ..." included
    if left < 2 * MIN_ANSWER or not answer:
        return None
    shown = _shown(body, left - len(answer))
    texts = [head + (shown if shown.startswith(answer) else answer + " ...")]
    left -= len(answer) + len(texts[0]) - len(head)
    for hit in hits[1:]:
        left -= 2  # the blank line between passages
        if left < MIN_PASSAGE:
            break
        texts.append(_shown(hit.text, left))
        left -= len(texts[-1])
    return OpenBook(open_book_question(question, texts), hits[:len(texts)], answer, tuple(texts))


def open_book(index: PassageIndex, question: str, block_size: int, k: int = 2,
              fits: Callable[[str, str], bool] | None = None) -> OpenBook:
    """The open-book question `gpt ask` asks (gpt/ask.py) and gpt/qa_mix.py trains: k passages retrieved, fitted
    to a context of block_size tokens with room left for the answer.

    The room is counted in characters (CHARS_PER_TOKEN), so training and asking build the same prompt without
    a tokenizer; fits(prompt, answer), when given, checks the real conversation and the room shrinks until it
    passes. With no passage, or no room for one, the bare question (OpenBook.passages empty).
    """
    hits = index.search(question, k)
    room = CHARS_PER_TOKEN * (block_size - PROMPT_TOKENS)
    while hits and (book := _fill(question, hits, room)):
        if fits is None or fits(book.prompt, book.answer):
            return book
        room = room * 7 // 8
    return OpenBook(question, [], "")
