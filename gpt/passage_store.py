"""The passage index as flat arrays, and its file: what gpt/retrieval.py searches, loaded at once however large.

An inverted index maps each word to its postings: the passages holding it and how often. Kept as a dict of
Python lists, a large text's index had to be rebuilt, word by word, every time a run was asked something. Kept
as flat arrays it is saved and loaded as it is, in the compressed-sparse-row layout: the postings of all words
end to end, and `starts` saying where each word's own begin. The passages are kept as columns of UTF-8 bytes
and decoded one at a time, when a search looks at one.

The file is safetensors, which loads without executing anything, with its format name and version in the
header's metadata.
"""

from __future__ import annotations

import os
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from gpt.errors import InputError
from gpt.files import atomic_write, format_problem
from gpt.passages import Passage

STORE_FORMAT = "gpt-passages"
# 1-5: one JSON record of passages (PassageIndex.load reads 4 and 5); 6: these arrays. The postings hold
# retrieval.words' words and `titled` passages.title_key's keys: a change to either is a new version.
STORE_VERSION = 6
_STRINGS = ("text", "source", "title")  # columns of strings: UTF-8 bytes end to end, and where each one starts
_NUMBERS = ("source_of", "line", "body", "page", "titles_from", "word_starts", "postings", "counts", "lengths",
            "titled_starts", "titled")
_INTEGERS = (*_NUMBERS, *(f"{s}_starts" for s in _STRINGS))  # saved in the smallest unsigned type that holds them


class StoreError(InputError):
    """A passage index file that cannot be read: one line, exit 2."""


@dataclass
class Postings:
    """The inverted index: word `w`'s postings are passages[starts[r]:starts[r + 1]] (ascending) and
    counts[...] for its row r = rows[w]; lengths[i] is passage i's number of words."""
    rows: dict[str, int]
    starts: np.ndarray  # (V + 1,) int64
    passages: np.ndarray  # (P,) int32
    counts: np.ndarray  # (P,) int32
    lengths: np.ndarray  # (N,) int32

    @classmethod
    def of(cls, passage_words: Iterable[list[str]]) -> Postings:
        """The postings of passages given as their words, in order."""
        rows: dict[str, int] = {}
        row_of, passage_of, counts, lengths = array("q"), array("i"), array("i"), array("i")
        for i, passage in enumerate(passage_words):
            counted = Counter(passage)
            lengths.append(len(passage))
            row_of.extend(rows.setdefault(word, len(rows)) for word in counted)
            counts.extend(counted.values())
            passage_of.extend(repeat(i, len(counted)))
        word_of = np.frombuffer(row_of, np.int64)
        order = np.argsort(word_of, kind="stable")  # by word, and each word's passages still in order
        return cls(rows, _starts(np.bincount(word_of, minlength=len(rows))), np.frombuffer(passage_of, np.int32)[order],
                   np.frombuffer(counts, np.int32)[order], np.frombuffer(lengths, np.int32).copy())

    def of_word(self, word: str) -> tuple[np.ndarray, np.ndarray]:
        """(passages, counts) of `word`; both empty for a word in no passage."""
        row = self.rows.get(word)
        span = slice(self.starts[row], self.starts[row + 1]) if row is not None else slice(0, 0)
        return self.passages[span], self.counts[span]


class PassageTable(Sequence):
    """The passages of a stored index, each decoded when it is first looked at."""

    def __init__(self, columns: dict[str, np.ndarray], sources: list[str]):
        self._columns, self._sources, self._decoded = columns, sources, {}

    def __len__(self) -> int:
        return len(self._columns["line"])

    def __getitem__(self, i: int | slice) -> Passage | list[Passage]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # a negative index counts from the end; past the end is an IndexError
        if i not in self._decoded:
            c = self._columns
            titles = range(c["titles_from"][i], c["titles_from"][i + 1])
            self._decoded[i] = Passage(_string(c, "text", i), self._sources[c["source_of"][i]], int(c["line"][i]),
                                       titles=tuple(_string(c, "title", t) for t in titles),
                                       body=int(c["body"][i]), page=int(c["page"][i]))
        return self._decoded[i]


def write_index(path: str | os.PathLike, passages: Sequence[Passage], postings: Postings, titled: dict[str, list[int]],
          k1: float, b: float) -> None:
    """Save the index atomically: its passages as columns, its postings and its titles as they are."""
    sources = list(dict.fromkeys(p.source for p in passages))
    source_row = {source: row for row, source in enumerate(sources)}
    columns = {**_strings("text", [p.text for p in passages]), **_strings("source", sources),
               **_strings("title", [t for p in passages for t in p.titles]),
               "source_of": np.array([source_row[p.source] for p in passages], np.int32),
               "line": np.array([p.line for p in passages], np.int32),
               "body": np.array([p.body for p in passages], np.int32),
               "page": np.array([p.page for p in passages], np.int32),
               "titles_from": _starts(len(p.titles) for p in passages), "word_starts": postings.starts,
               "postings": postings.passages, "counts": postings.counts, "lengths": postings.lengths,
               "titled_starts": _starts(map(len, titled.values())),
               "titled": np.array([i for found in titled.values() for i in found], np.int32),
               "words": _lines(postings.rows), "titled_keys": _lines(titled)}
    columns = {name: _narrow(values) if name in _INTEGERS else values for name, values in columns.items()}
    metadata = {"format": STORE_FORMAT, "version": str(STORE_VERSION), "k1": repr(k1), "b": repr(b)}
    atomic_write(path, save(columns, metadata=metadata))


def read_index(path: str | os.PathLike) -> tuple[PassageTable, Postings, dict[str, list[int]], float, float]:
    """(passages, postings, titled, k1, b) of a file write_index() saved; anything else is a one-line StoreError."""
    try:
        with safe_open(os.fspath(path), framework="numpy") as fh:
            metadata, columns = fh.metadata() or {}, {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise StoreError(f"{path} is not a passage index ({exc})") from None
    version = metadata.get("version", "")
    record = {"format": metadata.get("format"), "version": int(version) if version.isdigit() else version}
    if problem := format_problem(record, STORE_FORMAT, STORE_VERSION, "passage index"):
        raise StoreError(f"{path} {problem}")
    try:
        k1, b = float(metadata["k1"]), float(metadata["b"])
    except (KeyError, ValueError) as exc:
        raise StoreError(f"{path} is a damaged passage index (BM25's {exc})") from None
    if problem := _inconsistency(columns):
        raise StoreError(f"{path} is a damaged passage index ({problem})")
    words, keys = _unlines(columns["words"]), _unlines(columns["titled_keys"])
    postings = Postings(dict(zip(words, range(len(words)))), columns["word_starts"], columns["postings"],
                        columns["counts"], columns["lengths"])
    at, found = columns["titled_starts"].tolist(), columns["titled"]
    titled = {key: found[at[r]:at[r + 1]].tolist() for r, key in enumerate(keys)}
    sources = [_string(columns, "source", r) for r in range(len(columns["source_starts"]) - 1)]
    return PassageTable(columns, sources), postings, titled, k1, b


def _inconsistency(c: dict[str, np.ndarray]) -> str | None:
    """What makes the columns unusable (missing, of other lengths, pointing outside each other), or None."""
    missing = [name for name in (*_INTEGERS, *(f"{s}_bytes" for s in _STRINGS), "words", "titled_keys")
               if name not in c]
    if missing:
        return f"no {', '.join(missing)}"
    if fractional := [name for name in _INTEGERS if not np.issubdtype(c[name].dtype, np.integer)]:
        return f"its {', '.join(fractional)} are not integers"
    n, words = len(c["line"]), _count_lines(c["words"])
    checks = {"passage columns": all(len(c[k]) == n for k in ("source_of", "body", "page", "lengths"))
              and len(c["text_starts"]) == len(c["titles_from"]) == n + 1,
              "postings": len(c["word_starts"]) == words + 1 and _spans(c["word_starts"], len(c["postings"]))
              and len(c["counts"]) == len(c["postings"]) and _within(c["postings"], n),
              "titles": _spans(c["titles_from"], len(c["title_starts"]) - 1) and _within(c["titled"], n)
              and len(c["titled_starts"]) == _count_lines(c["titled_keys"]) + 1
              and _spans(c["titled_starts"], len(c["titled"])),
              "sources": _within(c["source_of"], len(c["source_starts"]) - 1)}
    checks.update({f"{s} offsets": _spans(c[f"{s}_starts"], len(c[f"{s}_bytes"])) for s in _STRINGS})
    return next((f"its {part} disagree" for part, fine in checks.items() if not fine), None)


def _spans(starts: np.ndarray, total: int) -> bool:
    """Whether `starts` cut 0..total into consecutive spans."""
    ascending = bool(np.all(np.diff(starts.astype(np.int64)) >= 0))  # unsigned, a step down would wrap around
    return len(starts) > 0 and starts[0] == 0 and starts[-1] == total and ascending


def _within(ids: np.ndarray, n: int) -> bool:
    return len(ids) == 0 or (int(ids.min()) >= 0 and int(ids.max()) < n)


def _narrow(values: np.ndarray) -> np.ndarray:
    """Integers in the smallest unsigned type that holds them (int64 if one is negative): a small text's index
    stays small, and a large one's counts take two bytes."""
    if len(values) and values.min() < 0:
        return values.astype(np.int64)
    top = int(values.max()) if len(values) else 0
    return values.astype(next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if top <= np.iinfo(t).max))


def _starts(sizes: Iterable[int]) -> np.ndarray:
    """Where each of consecutive items of these sizes starts, and where the last ends."""
    sizes = np.asarray(sizes if isinstance(sizes, np.ndarray) else list(sizes), np.int64)
    starts = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    return starts


def _strings(name: str, strings: list[str]) -> dict[str, np.ndarray]:
    encoded = [s.encode("utf-8") for s in strings]
    return {f"{name}_bytes": np.frombuffer(b"".join(encoded), np.uint8), f"{name}_starts": _starts(map(len, encoded))}


def _string(columns: dict[str, np.ndarray], name: str, i: int) -> str:
    at = columns[f"{name}_starts"]
    return columns[f"{name}_bytes"][at[i]:at[i + 1]].tobytes().decode("utf-8", errors="replace")


def _lines(strings: Iterable[str]) -> np.ndarray:
    """Strings without line breaks (words, title keys) as one UTF-8 text, a line each."""
    return np.frombuffer("".join(f"{s}\n" for s in strings).encode("utf-8"), np.uint8)


def _count_lines(data: np.ndarray) -> int:
    return int(np.count_nonzero(data == ord("\n")))


def _unlines(data: np.ndarray) -> list[str]:
    return data.tobytes().decode("utf-8", errors="replace").split("\n")[:-1]
