"""Byte-level BPE tokenizer: train, encode, decode, save, load, and talk to tiktoken / Hugging Face.

The rule this tokenizer defines (and that both encoders follow): text is split into pre-tokens by
a regex; inside each pre-token, starting from single bytes, repeatedly merge the leftmost adjacent
pair whose concatenation is a vocabulary token of the lowest rank (rank = token id). That is
tiktoken's rule, so ``tiktoken.Encoding`` built from our ranks is an exact fast path.

Training is classic BPE with a deterministic tie-break: the pair with the highest count wins, and
among equal counts the smallest (left id, right id). Ids are the byte values 0-255, then 256 + the
index of the merge that created the token. This module must not import torch.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import os
import re
import signal
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import regex

from gpt.errors import GPTError

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
_PIECE_CHARS = 1 << 20  # streamed training input is cut into pieces of about this many characters
# Where a long text may be cut so that its pieces encode exactly as the whole: between a letter and
# whitespace. With the built-in patterns a run of letters ends there whatever follows, a piece that
# ends in a letter cannot end in whitespace (so `\s++$` does not fire early), and no pattern looks
# behind. (A cut after a newline is not safe: GPT-2's pattern splits "  \nA" as "  ", "\n" but a
# piece ending "  \n" as "  \n".) Custom patterns may need their own rule.
SAFE_CUT = r"(?<=\p{L})(?=\s)"


class TokenizerError(GPTError, ValueError):
    """Bad tokenizer input or file; the CLI prints it as one line."""

    code = 2


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


def bpe_pieces(piece: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """The tokenizer's rule on one pre-token: merge the leftmost lowest-rank pair until none is left."""
    parts = [piece[i:i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best, best_rank = -1, None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best_rank is None or rank < best_rank):
                best, best_rank = i, rank
        if best < 0:
            break
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return parts


# ----------------------------------------------------------------------------- training input

def _safe_cuts(text: str) -> Iterator[str]:
    """Cut a long text into pieces of about _PIECE_CHARS at SAFE_CUT points."""
    start = 0
    safe_cut = regex.compile(SAFE_CUT)
    while len(text) - start > _PIECE_CHARS:
        match = safe_cut.search(text, start + _PIECE_CHARS)
        if not match:
            break
        yield text[start:match.end()]
        start = match.end()
    yield text[start:]


def _count_piece(args: tuple[str, str, tuple[str, ...]]) -> Counter:
    text, pattern, specials = args
    counts: Counter = Counter()
    parts = regex.split("|".join(map(regex.escape, specials)), text) if specials else [text]
    compiled = regex.compile(pattern)
    for part in parts:
        counts.update(compiled.findall(part))
    return counts


def bounded_map(pool: Executor, fn: Callable, items: Iterable, window: int) -> Iterator:
    """pool.map, in order, with at most `window` items in flight: memory stays bounded on any input."""
    in_flight: deque[Future] = deque()
    for item in items:
        if len(in_flight) >= window:
            yield in_flight.popleft().result()
        in_flight.append(pool.submit(fn, item))
    while in_flight:
        yield in_flight.popleft().result()


def count_pretokens(texts: Iterable[str], pattern: str, specials: Collection[str] = (),
                    workers: int = 1) -> Counter:
    """Unique pre-tokens with their frequencies, streaming texts piece by piece (special tokens excluded).

    Memory holds only the counts (which grow far slower than the corpus) plus a few pieces in flight.
    """
    pieces = (cut for text in texts for cut in _safe_cuts(text))
    jobs = ((piece, pattern, tuple(specials)) for piece in pieces)
    total: Counter = Counter()
    if workers <= 1:
        for job in jobs:
            total.update(_count_piece(job))
        return total
    # Workers ignore Ctrl-C: the main process handles it, and no worker prints a traceback.
    with ProcessPoolExecutor(workers, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN)) as pool:
        for counts in bounded_map(pool, _count_piece, jobs, window=2 * workers):
            total.update(counts)
    return total


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
                 pattern: str = "gpt4", special_tokens: dict[str, int] | None = None):
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
        taken = set(self.special_tokens.values()) & set(range(len(self.vocab)))
        if taken:
            raise TokenizerError(f"special token ids overlap the vocabulary: {sorted(taken)[:3]}")
        self.special_by_id = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        self._regex = regex.compile(self.pattern)
        self._cache: dict[str, list[int]] = {}
        self._fast = None

    # -- properties
    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + len(self.special_tokens)

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
                cached = [self.ranks[p] for p in bpe_pieces(chunk.encode("utf-8"), self.ranks)]
                if len(self._cache) < 200_000:
                    self._cache[chunk] = cached
            ids.extend(cached)
        return ids

    def encode(self, text: str, allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
               disallowed_special: Literal["all"] | Collection[str] = "all", reference: bool = False) -> list[int]:
        """Text -> ids. A special token's text is an error unless allowed (as a token) or disallowed_special=()."""
        _check_text(text)
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
        _check_text(text)
        return self.fast.encode_to_numpy(text, allowed_special=set(), disallowed_special=())

    def encode_batch(self, texts: list[str], allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                     disallowed_special: Literal["all"] | Collection[str] = "all",
                     num_threads: int = 0) -> list[list[int]]:
        """Encode many texts in parallel threads (tiktoken releases the GIL)."""
        allowed: set[str] = set()
        for text in texts:
            _check_text(text)
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
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "tokenizer") -> Tokenizer:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise TokenizerError(f"{source} is not a gpt-bpe tokenizer file")
        if data.get("version") != FORMAT_VERSION:
            raise TokenizerError(f"{source} has tokenizer format version {data.get('version')}; "
                                 f"this gpt reads version {FORMAT_VERSION}")
        try:
            byte_ids = data.get("byte_ids") or list(range(256))
            vocab = [bytes([b]) for b in byte_ids]
            merges = [(int(a), int(b)) for a, b in data["merges"]]
            for a, b in merges:
                vocab.append(vocab[a] + vocab[b])
            return cls(vocab, merges, data["pattern"], {str(k): int(v) for k, v in data["special_tokens"].items()})
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise TokenizerError(f"{source} is damaged: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the JSON tokenizer file (atomically)."""
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a tokenizer file: our JSON, a Hugging Face tokenizer.json, or a .tiktoken ranks file."""
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise TokenizerError(f"cannot read tokenizer {path}: {exc.strerror}") from None
        if str(path).endswith(".tiktoken"):
            return cls.from_tiktoken_file(path)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TokenizerError(f"{path} is not a tokenizer file (not JSON)") from None
        if isinstance(data, dict) and "model" in data and "format" not in data:
            return cls.from_hf_dict(data, str(path))
        return cls.from_dict(data, str(path))

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    # -- interop: tiktoken
    def save_tiktoken(self, path: str | Path) -> None:
        """tiktoken's ranks file: one 'base64(token) rank' line per token (special tokens are not in it)."""
        lines = [f"{base64.b64encode(tok).decode()} {rank}" for rank, tok in enumerate(self.vocab)]
        Path(path).write_text("\n".join(lines) + "\n")

    @classmethod
    def from_ranks(cls, ranks: dict[bytes, int], pattern: str = "gpt4",
                   special_tokens: dict[str, int] | None = None) -> Tokenizer:
        """Rebuild from tiktoken-style ranks; each merged token's pair is recovered by running the rule."""
        vocab = [b""] * len(ranks)
        for tok, rank in ranks.items():
            if not 0 <= rank < len(ranks):
                raise TokenizerError(f"ranks are not 0..{len(ranks) - 1}: found {rank}")
            vocab[rank] = tok
        merges = []
        for rank, tok in enumerate(vocab):
            if len(tok) > 1:
                parts = bpe_pieces(tok, {t: r for t, r in ranks.items() if r < rank})
                if len(parts) != 2:
                    raise TokenizerError(f"token {tok!r} (rank {rank}) is not a merge of two earlier tokens")
                merges.append((ranks[parts[0]], ranks[parts[1]]))
        return cls(vocab, merges, pattern, special_tokens)

    @classmethod
    def from_tiktoken_file(cls, path: str | Path, pattern: str = "gpt4",
                           special_tokens: dict[str, int] | None = None) -> Tokenizer:
        ranks = {}
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            if line.strip():
                try:
                    tok, rank = line.split()
                    ranks[base64.b64decode(tok)] = int(rank)
                except ValueError:
                    raise TokenizerError(f"{path}:{n}: not a 'base64 rank' line") from None
        return cls.from_ranks(ranks, pattern, special_tokens)

    # -- interop: Hugging Face tokenizers
    def to_hf_dict(self) -> dict:
        """A Hugging Face tokenizer.json (BPE model, regex Split + ByteLevel) that encodes identically."""
        to_uni = bytes_to_unicode()
        text = ["".join(to_uni[b] for b in tok) for tok in self.vocab]
        merges = []
        for rank, tok in enumerate(self.vocab):  # every split into two earlier tokens, ranked by the result
            for cut in range(1, len(tok)):
                a, b = self.ranks.get(tok[:cut]), self.ranks.get(tok[cut:])
                if a is not None and b is not None and a < rank and b < rank:
                    merges.append([text[a], text[b]])
        added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for s, i in self.special_tokens.items()]
        return {
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": self.pattern}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {t: i for i, t in enumerate(text)}, "merges": merges},
        }

    def save_hf(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_hf_dict(), ensure_ascii=False))

    @classmethod
    def from_hf_dict(cls, data: dict, source: str = "tokenizer.json") -> Tokenizer:
        model = data.get("model", {})
        if model.get("type") != "BPE":
            raise TokenizerError(f"{source}: only byte-level BPE tokenizers can be imported")
        from_uni = {c: b for b, c in bytes_to_unicode().items()}
        try:
            ranks = {bytes(from_uni[c] for c in tok): i for tok, i in model["vocab"].items()}
        except KeyError:
            raise TokenizerError(f"{source}: not a byte-level vocabulary") from None
        pattern = PATTERNS["gpt2"]
        pre = data.get("pre_tokenizer") or {}
        for step in pre.get("pretokenizers", [pre]):
            if step.get("type") == "Split" and "Regex" in step.get("pattern", {}):
                pattern = step["pattern"]["Regex"]
        specials = {t["content"]: t["id"] for t in data.get("added_tokens", []) if t.get("special")}
        return cls.from_ranks(ranks, pattern, specials)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by Hugging Face byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping
