"""Byte-level BPE tokenizer: train, encode, decode, and our own JSON file (other formats: gpt/bpe_formats.py).

The rule this tokenizer defines (and that both encoders follow): text is split into pre-tokens by
a regex; a pre-token that is itself a vocabulary token is that token; otherwise, starting from
single bytes, repeatedly merge the leftmost adjacent pair whose concatenation is a vocabulary token
of the lowest rank (rank = token id). That is tiktoken's rule, so ``tiktoken.Encoding`` built from
our ranks is an exact fast path. (In a vocabulary where every token is reached by the merge rule,
the whole-token shortcut changes nothing; Hugging Face calls it ``ignore_merges``.)

Training is classic BPE with a deterministic tie-break: the pair with the highest count wins, and
among equal counts the smallest (left id, right id). Ids are the byte values 0-255, then 256 + the
index of the merge that created the token. This module must not import torch.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Literal

import numpy as np
import regex

from gpt.errors import InputError
from gpt.files import atomic_write, format_problem
from gpt.pretokenize import count_pretokens

FORMAT = "gpt-bpe"
FORMAT_VERSION = 1

PATTERNS = {
    # GPT-4 (cl100k_base): contractions, words with one leading non-letter, numbers of 1-3 digits, ...
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
            r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
    # GPT-2 (r50k_base): words with one optional leading space.
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",
    # No pre-tokenization: merges may cross words and spaces (slow on long texts; for teaching).
    "none": r"""[\s\S]+""",
}
ENDOFTEXT = "<|endoftext|>"
_SURROGATE = re.compile("[\ud800-\udfff]")
# Bounds a tokenizer file cannot exceed, so that a hostile file (e.g. merges that keep doubling a
# token) fails in one line instead of eating memory. Real vocabularies stay far below them: GPT-2's,
# cl100k's and Llama 3's longest tokens are 128 bytes or less, and their byte total is about 1 MB.
MAX_TOKEN_BYTES = 1024
MAX_VOCAB_BYTES = 64 << 20
MAX_TOKEN_ID = (1 << 24) - 1  # ids become embedding rows: 16.7M rows is beyond any real vocabulary
NORMALIZERS = ("NFC",)  # Unicode normal forms a tokenizer may apply before splitting (Qwen2 uses NFC)


class TokenizerError(InputError):
    """Bad tokenizer input or file; the CLI prints it as one line."""


def _check_text(text: str) -> None:
    if text.isascii():
        return
    if match := _SURROGATE.search(text):
        raise TokenizerError(f"text has a lone surrogate (U+{ord(match.group()):04X}) at index {match.start()}; "
                             "it is not valid Unicode and has no UTF-8 bytes")


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of pair, left to right, with new_id."""
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def bpe_pieces(piece: bytes, ranks: dict[bytes, int], max_rank: int | None = None) -> list[bytes]:
    """The merge rule on one pre-token: merge the leftmost lowest-rank pair until none is left.

    With max_rank, only tokens of a lower rank may form: on a token's own bytes this stops at the
    two parts that the token merges (how merges are recovered from ranks, in linear time).
    """
    limit = len(ranks) + 2 ** 62 if max_rank is None else max_rank
    parts = [piece[i:i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best, best_rank = -1, limit
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best, best_rank = i, rank
        if best < 0:
            break
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return parts


def learn_merges(word_counts: dict[bytes, int], n_merges: int,
                 progress: bool = False) -> tuple[list[tuple[int, int]], list[bytes]]:
    """Classic BPE on counted pre-tokens, with incremental pair counts and a lazily refreshed heap.

    Returns the merges that created new tokens, in order, and the vocabulary (id -> bytes).
    """
    words = [list(w) for w in word_counts]
    freqs = list(word_counts.values())
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> words that (may) contain it
    for i, w in enumerate(words):
        for pair in zip(w, w[1:]):
            pair_counts[pair] += freqs[i]
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    vocab = [bytes([b]) for b in range(256)]
    lookup = {tok: i for i, tok in enumerate(vocab)}
    merges: list[tuple[int, int]] = []
    bar = _progress(n_merges, "bpe merges") if progress else None
    while len(merges) < n_merges and heap:
        neg, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count <= 0:
            continue
        if -neg != count:  # stale entry: counts only fall without a fresh push, so re-queue
            heapq.heappush(heap, (-count, pair))
            continue
        merged = vocab[pair[0]] + vocab[pair[1]]
        new_id = lookup.get(merged)  # the same bytes reached by another pair reuse their id
        if new_id is None:
            new_id = len(vocab)
            vocab.append(merged)
            lookup[merged] = new_id
            merges.append(pair)
            if bar:
                bar.update(1)
        for i in where.pop(pair):
            word = words[i]
            new_word = merge_pair(word, pair, new_id)
            if len(new_word) == len(word):
                continue  # stale index entry
            f = freqs[i]
            for p in zip(word, word[1:]):
                pair_counts[p] -= f
            for p in zip(new_word, new_word[1:]):
                pair_counts[p] += f
                where[p].add(i)
            words[i] = new_word
            for p in zip(new_word, new_word[1:]):  # only pairs with the new token can have grown
                if new_id in p:
                    heapq.heappush(heap, (-pair_counts[p], p))
        pair_counts.pop(pair, None)
    if bar:
        bar.close()
    return merges, vocab


def _progress(total: int, desc: str):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="merge", leave=False, disable=None)


# ----------------------------------------------------------------------------- the tokenizer

class Tokenizer:
    """Byte-level BPE: ``train``, ``encode``, ``decode``, ``save``, ``load``."""

    def __init__(self, vocab: list[bytes] | None = None, merges: list[tuple[int, int]] | None = None,
                 pattern: str = "gpt4", special_tokens: dict[str, int] | None = None,
                 normalizer: str | None = None):
        self.vocab = list(vocab) if vocab is not None else [bytes([b]) for b in range(256)]
        self.merges = list(merges or [])
        self.pattern_name = pattern if pattern in PATTERNS else "custom"
        self.pattern = PATTERNS.get(pattern, pattern)
        self.ranks = {tok: i for i, tok in enumerate(self.vocab)}
        if len(self.ranks) != len(self.vocab):
            raise TokenizerError("vocabulary has duplicate tokens")
        missing = [b for b in range(256) if bytes([b]) not in self.ranks]
        if missing:
            raise TokenizerError(f"vocabulary lacks {len(missing)} of the 256 single bytes (e.g. {missing[0]}); "
                                 "byte-level BPE needs all of them")
        self.special_tokens = dict(special_tokens or {})
        self._check_special_ids()
        if normalizer not in (None, *NORMALIZERS):
            raise TokenizerError(f"unsupported normalizer {normalizer!r}; supported: {', '.join(NORMALIZERS)}")
        self.normalizer = normalizer
        try:
            self._regex = regex.compile(self.pattern)
        except regex.error as exc:
            raise TokenizerError(f"bad split pattern: {exc}") from None
        self.special_by_id = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        self._cache: dict[str, list[int]] = {}
        self._fast = None

    def _check_special_ids(self) -> None:
        seen: set[int] = set()
        for text, i in self.special_tokens.items():
            if not text:
                raise TokenizerError("a special token is the empty string")
            if type(i) is not int or not len(self.vocab) <= i <= MAX_TOKEN_ID or i in seen:
                raise TokenizerError(f"special token {text!r} has id {i!r}: special ids must be distinct integers "
                                     f"from {len(self.vocab)} (after the vocabulary) to {MAX_TOKEN_ID}")
            seen.add(i)

    # -- properties
    @property
    def vocab_size(self) -> int:
        """One more than the largest id (special ids may leave gaps after the vocabulary)."""
        return max([len(self.vocab) - 1, *self.special_tokens.values()]) + 1

    @property
    def eot_id(self) -> int | None:
        return self.special_tokens.get(ENDOFTEXT)

    # -- training
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, pattern: str = "gpt4",
              special_tokens: Collection[str] = (ENDOFTEXT,), workers: int = 1,
              progress: bool = False) -> Tokenizer:
        """Learn vocab_size - 256 - len(special_tokens) merges from texts (an iterable, streamed)."""
        special_tokens = list(special_tokens)
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise TokenizerError(f"vocab_size {vocab_size} is too small: it needs 256 bytes + "
                                 f"{len(special_tokens)} special tokens = {256 + len(special_tokens)}")
        pattern_str = PATTERNS.get(pattern, pattern)
        try:
            regex.compile(pattern_str)
        except regex.error as exc:
            raise TokenizerError(f"bad split pattern: {exc}") from None
        counts = count_pretokens(texts, pattern_str, special_tokens, workers)
        if not counts:
            raise TokenizerError("cannot train a tokenizer on empty text "
                                 "(the inputs are empty, or binary files that were skipped)")
        word_counts: Counter = Counter()
        for word, count in counts.items():
            _check_text(word)
            word_counts[word.encode("utf-8")] += count
        merges, vocab = learn_merges(word_counts, n_merges, progress)
        specials = {tok: len(vocab) + i for i, tok in enumerate(special_tokens)}
        return cls(vocab, merges, pattern, specials)

    # -- encoding
    def _prepare(self, text: str) -> str:
        """Check the text, and apply the normalizer (to the whole text, special-token text included)."""
        _check_text(text)
        if self.normalizer and not text.isascii():
            return unicodedata.normalize(self.normalizer, text)
        return text

    def _special_check(self, text: str, allowed_special: Literal["all"] | AbstractSet[str],
                       disallowed_special: Literal["all"] | Collection[str]) -> set[str]:
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise TokenizerError(f"not a special token of this tokenizer: {sorted(unknown)[0]!r}")
        disallowed = set(self.special_tokens) - allowed if disallowed_special == "all" else set(disallowed_special)
        for tok in disallowed:
            if tok in text:
                raise TokenizerError(f"text contains the special token {tok!r}; pass allowed_special={{{tok!r}}} "
                                     "to encode it as a special token, or disallowed_special=() to encode it as text")
        return allowed

    def encode_ordinary_reference(self, text: str) -> list[int]:
        """The readable reference encoder: split by the pattern, then the BPE rule per pre-token (cached)."""
        ids: list[int] = []
        for chunk in self._regex.findall(text):
            cached = self._cache.get(chunk)
            if cached is None:
                raw = chunk.encode("utf-8")
                whole = self.ranks.get(raw)  # a pre-token that is a token is that token
                cached = [whole] if whole is not None else [self.ranks[p] for p in bpe_pieces(raw, self.ranks)]
                if len(self._cache) < 200_000:
                    self._cache[chunk] = cached
            ids.extend(cached)
        return ids

    def encode(self, text: str, allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
               disallowed_special: Literal["all"] | Collection[str] = "all", reference: bool = False) -> list[int]:
        """Text -> ids. A special token's text is an error unless allowed (as a token) or disallowed_special=()."""
        text = self._prepare(text)
        allowed = self._special_check(text, allowed_special, disallowed_special)
        if not reference:  # tiktoken's ordinary path is faster when no special token can occur
            if not allowed:
                return self.fast.encode_ordinary(text)
            return self.fast.encode(text, allowed_special=allowed, disallowed_special=())
        if not allowed:
            return self.encode_ordinary_reference(text)
        ids: list[int] = []
        specials = "(" + "|".join(regex.escape(t) for t in sorted(allowed, key=len, reverse=True)) + ")"
        for i, part in enumerate(regex.split(specials, text)):
            if i % 2:
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self.encode_ordinary_reference(part))
        return ids

    def encode_to_array(self, text: str) -> np.ndarray:
        """Text -> ids as a uint32 array, special-token text as plain text (the data pipeline's path).

        Straight from tiktoken's buffer: no Python list of ints in between, so a thread holds the GIL
        for less of the work (1.16x encode + np.asarray here, and more with several threads).
        """
        text = self._prepare(text)
        return self.fast.encode_to_numpy(text, allowed_special=set(), disallowed_special=())

    def encode_batch(self, texts: list[str], allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                     disallowed_special: Literal["all"] | Collection[str] = "all",
                     num_threads: int = 0) -> list[list[int]]:
        """Encode many texts in parallel threads (tiktoken releases the GIL)."""
        allowed: set[str] = set()
        texts = [self._prepare(text) for text in texts]
        for text in texts:
            allowed = self._special_check(text, allowed_special, disallowed_special)
        threads = num_threads or os.cpu_count() or 1
        if not allowed:
            return self.fast.encode_ordinary_batch(texts, num_threads=threads)
        return self.fast.encode_batch(texts, num_threads=threads, allowed_special=allowed, disallowed_special=())

    @property
    def fast(self):
        """tiktoken.Encoding with our ranks and pattern: the same rule, in Rust."""
        if self._fast is None:
            import tiktoken
            self._fast = tiktoken.Encoding(f"gpt-bpe-{self.hash()[:12]}", pat_str=self.pattern,
                                           mergeable_ranks=self.ranks, special_tokens=self.special_tokens)
        return self._fast

    # -- decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Ids -> the exact bytes."""
        out = []
        for i in ids:
            if 0 <= i < len(self.vocab):
                out.append(self.vocab[i])
            elif i in self.special_by_id:
                out.append(self.special_by_id[i])
            else:
                raise TokenizerError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return b"".join(out)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; bytes that are not valid UTF-8 (e.g. a cut multi-byte character) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_text(self, i: int) -> str:
        """One token as printable text, for --show views."""
        return self.decode_bytes([i]).decode("utf-8", errors="backslashreplace")

    # -- files
    def to_dict(self) -> dict:
        standard = all(self.vocab[i] == bytes([i]) for i in range(256))
        data = {"format": FORMAT, "version": FORMAT_VERSION,
                "pattern": self.pattern_name if self.pattern_name != "custom" else self.pattern,
                "merges": [list(p) for p in self.merges], "special_tokens": self.special_tokens}
        if not standard:
            data["byte_ids"] = [self.vocab[i][0] for i in range(256)]
        if self.normalizer:
            data["normalizer"] = self.normalizer
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "tokenizer") -> Tokenizer:
        if problem := format_problem(data, FORMAT, FORMAT_VERSION, "gpt-bpe tokenizer file"):
            raise TokenizerError(f"{source} {problem}")
        try:
            byte_ids = data.get("byte_ids") or list(range(256))
            vocab = [bytes([b]) for b in byte_ids]
            merges = [(int(a), int(b)) for a, b in data["merges"]]
            total = len(vocab)
            for n, (a, b) in enumerate(merges):
                if not (0 <= a < len(vocab) and 0 <= b < len(vocab)):
                    raise TokenizerError(f"{source}: merge {n} ({a}, {b}) names a token that does not exist yet")
                token = vocab[a] + vocab[b]
                total += len(token)
                if len(token) > MAX_TOKEN_BYTES or total > MAX_VOCAB_BYTES:
                    raise TokenizerError(f"{source}: merge {n} makes a {len(token)}-byte token ({total} bytes in all); "
                                         f"a tokenizer may have tokens of up to {MAX_TOKEN_BYTES} bytes and "
                                         f"{MAX_VOCAB_BYTES >> 20} MiB in all")
                vocab.append(token)
            specials = {str(k): int(v) for k, v in data["special_tokens"].items()}
            return cls(vocab, merges, data["pattern"], specials, data.get("normalizer"))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            if isinstance(exc, TokenizerError):
                raise
            raise TokenizerError(f"{source} is damaged: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the JSON tokenizer file (atomically)."""
        atomic_write(path, json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
