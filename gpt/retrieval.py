"""Find the passages of the training text that answer a question: Okapi BM25 over an inverted index.

Open-book answering needs the few passages a question is about, and a small model needs them fast and
explainable. BM25 scores a passage by how often it contains each query word (saturating with k1, so the tenth
"plant" adds little), how rare that word is across passages (IDF, so "what" and "is" weigh nothing next to
"monstera") and how long the passage is (b, so long passages don't win by size alone):

    score(q, p) = sum over words w of q:  idf(w) * tf(w, p) * (k1 + 1) / (tf(w, p) + k1 * (1 - b + b * |p| / avg|p|))
    idf(w) = ln(1 + (N - n(w) + 0.5) / (n(w) + 0.5))        (N passages, n(w) of them contain w)

Passages are the text cut at its structure (gpt/passages.py): a markdown paragraph, or one glossary line, each
prefixed with the heading path above it and bounded to `max_chars`, each remembering its source file and line.

A question about a named thing ("What is X?", "Tell me about X.", an FAQ's own question) is answered first by
the passage whose title is X: the heading it opens, its glossary term or its FAQ question (compared without
case, articles or end punctuation). BM25 ranks the rest: words alone cannot tell "foo" from "foo bar" or from
an entry that merely mentions foo, and a title can.

open_book() builds the prompt an open-book answer is given and trained with (gpt/ask.py, for `gpt ask`, `gpt chat`
and `gpt serve`, and gpt/qa_mix.py both call it, so a model is asked in exactly the form it learnt): the best
passage first, cut to leave room in the context for an answer copied out of it.

A run keeps its index as it is searched (gpt/passage_store.py), so even a large text's loads at once.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from gpt.documents import read_documents
from gpt.errors import InputError
from gpt.files import format_problem
from gpt.passage_store import Postings, StoreError, read_index, write_index
from gpt.passages import MAX_CHARS, Passage, passages_of, pieces, title_key
from gpt.qa import LEADING_ARTICLE, SENTENCE_END, TEMPLATES, not_an_entry

INDEX_FORMAT = "gpt-passages"  # the JSON of runs before gpt/passage_store.py's format 6
RUN_PASSAGES = "passages.safetensors"  # a run's own text as an index, saved when it trains on open-book questions
RUN_PASSAGES_JSON = "passages.json"  # what runs kept before: their passages only
CANDIDATES = 1000  # passages ranked in full for a query: the best by BM25, and those titled as asked
_WORD = re.compile(r"\w+")
_CJK = re.compile("[\u3005-\u3007\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
                  "\U00020000-\U0003134f]+")  # kana (half-width too), ideographs, 々 and 〇
QUESTION_WORDS = frozenset("""
what whats is are was were the a an of does do did mean means meant by tell me about define definition explain
describe can could you give who how why when where which please i to it this that
""".split())  # they shape a question but say nothing of its subject: dropped from queries (unless nothing is left)


class RetrievalError(InputError):
    """A passage index file that cannot be used, or passages asked for that cannot be had: one line, exit 2."""


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


def question_subject(question: str) -> str:
    """What a question asks about: the X of "What is X?", "Tell me about X." ...; else the whole question."""
    question = " ".join(question.split())
    for asked in _ASKED:
        if match := asked.fullmatch(question):
            return match.group(1)
    return question


def _emphasized(subject: str) -> re.Pattern:
    """`subject` (or its plural) in *emphasis* or **bold**, as notes mark a term where they introduce it."""
    if not subject:
        return re.compile(r"(?!)")  # matches nothing
    term = re.escape(subject).replace("\\ ", r"\s+")
    return re.compile(rf"(?<![\w*])(\*\*?){term}(?:e?s)?\1(?![\w*])", re.IGNORECASE)


# ----------------------------------------------------------------------------- the index

class PassageIndex:
    """BM25 over passages; build() from files or (source, text) pairs, search() for a question."""

    def __init__(self, passages: Sequence[Passage], k1: float = 1.5, b: float = 0.75,
                 postings: Postings | None = None, titled: dict[str, list[int]] | None = None):
        """Index passages; a loaded index passes the postings and titles it kept instead of working them out."""
        self.passages, self.k1, self.b = passages, k1, b
        self._postings = postings if postings is not None else Postings.of(words(p.text) for p in passages)
        self._average = float(self._postings.lengths.mean()) if len(passages) else 0.0
        self._weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # word -> (passages, BM25 terms), once asked
        self._sorted_titles: list[str] | None = None  # the title keys in order, when a query first needs them
        if titled is None:
            titled = defaultdict(list)  # title key -> passages with that title, in order
            for i, passage in enumerate(passages):
                for key in dict.fromkeys(title_key(question_subject(t)) for t in passage.titles):  # "What is CRAN?"
                    titled[key].append(i)
        self._titled = dict(titled)
        self._notation: dict[int, bool] = {}  # passage -> qa.not_an_entry(notation=True), once a search ranks it

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
        n = len(self._postings.of_word(word)[0])
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
        scores = self._best_by_bm25(terms)
        subject = title_key(question_subject(query))
        titled = {i: rank for rank, i in enumerate(self._titled_with(subject, query)[:CANDIDATES])}
        found = list(scores) + [i for i in titled if i not in scores]
        introduced = _emphasized(subject)
        first = subject.split()[0].lower() if subject else ""

        def rank(i: int) -> tuple[int, bool, bool, float, int]:  # the regex only where a plain scan finds the term
            entry = self.passages[i].text[self.passages[i].body:]
            emphasized = "*" in entry and first in entry.lower() and introduced.search(entry)
            return titled.get(i, len(titled)), self._is_notation(i, entry), not emphasized, -scores.get(i, 0), i

        best, seen = [], set()
        for i in heapq.nsmallest(4 * max(k, 0), found, key=rank):
            entry = self.passages[i].text[self.passages[i].body:]
            if len(best) < k and entry not in seen:
                seen.add(entry)
                best.append(dataclasses.replace(self.passages[i], score=round(scores.get(i, 0.0), 6)))
        return best

    def _best_by_bm25(self, terms: list[str]) -> dict[int, float]:
        """{passage: BM25 score} for the CANDIDATES best passages holding a query word (ties: the earlier),
        scored with numpy over each word's postings: in a large text a common word is in most passages."""
        total = np.zeros(len(self.passages))
        for word in terms:
            if word in self._postings.rows:
                ids, weights = self._weights.get(word) or self._weigh(word)
                total[ids] += weights
        hit = np.flatnonzero(total)
        if len(hit) > CANDIDATES:
            kth = np.partition(total[hit], len(hit) - CANDIDATES)[len(hit) - CANDIDATES]  # the CANDIDATES-th best
            above, ties = hit[total[hit] > kth], hit[total[hit] == kth]
            hit = np.concatenate([above, ties[:CANDIDATES - len(above)]])
        return dict(zip(hit.tolist(), total[hit].tolist()))

    def _weigh(self, word: str) -> tuple[np.ndarray, np.ndarray]:
        """The passages holding `word` and what it adds to each one's BM25 score; kept for the next query."""
        ids, tf = self._postings.of_word(word)
        norm = 1 - self.b + self.b * self._postings.lengths[ids] / self._average
        self._weights[word] = ids, self._idf(word) * tf * (self.k1 + 1) / (tf + self.k1 * norm)
        return self._weights[word]

    def _titled_with(self, subject: str, question: str = "") -> list[int]:
        """Passages titled `subject`: any titled with the very question (an FAQ's), any whose entry opens with it, then
        the shallowest (page "tar" before page "file"'s option "tar"); else those whose titles start with it."""
        if not subject:
            return []
        if exact := self._titled.get(subject):  # "Lists are ..." before "The items of a list ..."
            asked, depth = title_key(question), lambda i: self.passages[i].text[:self.passages[i].body].count(" > ")
            return sorted(exact, key=lambda i: (asked not in map(title_key, self.passages[i].titles),
                                                not self._opens_with(i, subject), depth(i)))
        if self._sorted_titles is None:
            self._sorted_titles = sorted(self._titled)
        prefix, found = subject + " ", []
        for key in self._sorted_titles[bisect.bisect_left(self._sorted_titles, prefix):]:
            if not key.startswith(prefix):
                break
            found += self._titled[key]
        return sorted(found)

    def _is_notation(self, i: int, entry: str) -> bool:
        """Whether passage i (its entry given) is notation rather than prose: grammar, a session (qa.not_an_entry)."""
        if i not in self._notation:
            self._notation[i] = bool(not_an_entry(entry, notation=True))
        return self._notation[i]

    def _opens_with(self, i: int, subject: str) -> bool:
        """Whether passage i's entry opens with the subject ("A list is ...", "Lists are ..."): it says what X is."""
        entry = LEADING_ARTICLE.sub("", self.passages[i].text[self.passages[i].body:].lstrip().casefold())
        return title_key(" ".join(entry.split()[:len(subject.split())])) == subject

    def save(self, path: str | os.PathLike) -> None:
        """The index as it is searched, passages, postings and titles (gpt/passage_store.py), written atomically."""
        write_index(path, self.passages, self._postings, self._titled, self.k1, self.b)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PassageIndex:
        """An index saved by save(), or the JSON passages of a run from before it (rebuilt here); a damaged or
        foreign file is a one-line RetrievalError."""
        with open(path, "rb") as fh:
            if fh.read(1) == b"{":
                return cls._load_json(path)
        try:
            passages, postings, titled, k1, b = read_index(path)
        except StoreError as exc:
            raise RetrievalError(str(exc)) from None
        return cls(passages, k1, b, postings, titled)

    @classmethod
    def _load_json(cls, path: str | os.PathLike) -> PassageIndex:
        """Passages a run saved as JSON (format versions 4 and 5), indexed anew."""
        try:
            with open(path, encoding="utf-8") as fh:
                record = json.load(fh)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RetrievalError(f"{path} is not a passage index (damaged JSON: {exc})") from None
        if problem := format_problem(record, INDEX_FORMAT, 5, "passage index"):
            if format_problem(record, INDEX_FORMAT, 4, "passage index"):  # 4: the same rows, without pages
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
    piece = pieces(text, max(limit - 4, 1))[0][1].rstrip()
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
