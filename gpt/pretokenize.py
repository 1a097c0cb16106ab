"""Pre-tokens of large inputs, in bounded memory: safe cut points, counting in parallel, a bounded pool map.

Tokenizer training counts each distinct pre-token of the corpus once (gpt/bpe.py learns merges from the
counts); the data pipeline encodes large files in pieces. Both cut long texts only where the pieces
pre-tokenize exactly as the whole would (``SAFE_CUT``), and both feed a process pool through
``bounded_map`` so that memory stays bounded on any input. This module must not import torch.
"""

from __future__ import annotations

import signal
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor

import regex

PIECE_CHARS = 1 << 20  # streamed training input is cut into pieces of about this many characters
# Where a long text may be cut so that its pieces encode exactly as the whole: between a letter and
# whitespace. With the built-in patterns a run of letters ends there whatever follows, a piece that
# ends in a letter cannot end in whitespace (so `\s++$` does not fire early), and no pattern looks
# behind. (A cut after a newline is not safe: GPT-2's pattern splits "  \nA" as "  ", "\n" but a
# piece ending "  \n" as "  \n".) Custom patterns may need their own rule.
SAFE_CUT = r"(?<=\p{L})(?=\s)"


def _safe_cuts(text: str) -> Iterator[str]:
    """Cut a long text into pieces of about PIECE_CHARS at SAFE_CUT points."""
    start = 0
    safe_cut = regex.compile(SAFE_CUT)
    while len(text) - start > PIECE_CHARS:
        match = safe_cut.search(text, start + PIECE_CHARS)
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
