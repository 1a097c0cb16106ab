"""Speculative decoding with no second model: guess the next tokens by looking them up, check them in one forward.

At batch 1 a forward over a few positions costs far less than that many forwards: the weights are read
once either way, and the Python and dispatch overhead per op is the same. So a reply goes faster
whenever its next tokens can be guessed. The guess (a draft) is what followed the last few tokens where
they occurred before: in the prompt and the reply so far (an answer quoting its passage, a list repeating
its pattern), else in the run's training tokens (the text the model learned to say). A reply under a quote
constraint (`gpt ask`) is guessed by the constraint itself: the passage as it goes on from where the quote is.

The model reads its last token and the draft in one forward (gpt.decode.decode_block) and gets the logits
after each. Then each position's token is chosen exactly as the one-token path chooses it (same sampler,
same random draws in the same order, the constraint told of each token): while the chosen token is the
drafted one, the draft goes on; the first that is not ends the round, and it becomes the next round's
last token. So the reply holds the same tokens as ``gpt.decode.decode_stream``'s (float rounding aside:
a forward over several positions may round differently), only from fewer forwards. Keys and values of
rejected draft tokens stay in the static cache, past the current position, to be overwritten.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from gpt.config import SampleConfig
from gpt.decode import Cache, Forward, decode_block, prefill
from gpt.model import GPT
from gpt.sampling import Constraint, sample_next, slid_window

DRAFT_TOKENS = 7  # per round: a forward over 8 positions (the last token and the draft), 16 while sure
CONTEXT_NGRAMS = (4, 3, 2)  # longest first: a longer match is a better guess
CORPUS_NGRAM = 3
CANDIDATES, LOOKBACK = 32, 12  # of a common n-gram's occurrences, the one matching the most tokens before it
CORPUS_MAX_TOKENS = 1 << 22  # the index holds 24 bytes a token: at most 96 MiB, built in about a second
# Drafts are sent while at least this share of guessed tokens is taken: a forward over 8 positions costs
# about one and a half one-position forwards on a CPU, which 7 guesses repay about when each is taken with
# p >= 0.3 (1 + p + ... + p^7 tokens a forward). Below it (a draw at a high temperature, text unlike the
# corpus) guesses are still made and scored against the tokens chosen, at no cost, so sending resumes
# when they improve (benchmarks/README.md).
MIN_TAKEN = 0.3
TAKEN_MEMORY = 8  # the share taken is a running average over about this many scored guesses
# While nearly every guess is taken (text the model recites, a quoted answer) a draft twice as long (a forward
# over 16 positions) pays: fewer forwards per token for little more each (benchmarks/README.md, round 14).
SURE_TAKEN = 0.8


class CorpusIndex:
    """Where each n-gram of a token corpus occurs: the n-grams' hashes sorted, for binary search.

    Built with numpy in O(N log N), looked up in O(log N). Hash collisions only make a worse draft: a
    draft is checked, never trusted.
    """

    def __init__(self, tokens: np.ndarray, n: int = CORPUS_NGRAM):
        self.n = n
        self.tokens = np.asarray(tokens[:CORPUS_MAX_TOKENS], dtype=np.int64)
        hashes = self._hash([self.tokens[i:len(self.tokens) - n + 1 + i] for i in range(n)])
        self.order = np.argsort(hashes)
        self.sorted = hashes[self.order]

    @staticmethod
    def _hash(columns: Sequence[np.ndarray]) -> np.ndarray:
        h = np.zeros_like(columns[0])
        for c in columns:
            h = h * 1_000_003 + c  # wraps around in int64: a hash, not an encoding
        return h

    def continuation(self, last: Sequence[int], k: int) -> list[int]:
        """Up to k tokens that followed the n-gram `last` ends with; [] if it never occurs.

        Of its occurrences (the first CANDIDATES), the one whose preceding tokens match more of `last` wins.
        """
        if len(last) < self.n or len(self.sorted) == 0:
            return []
        key = self._hash([np.array([t], dtype=np.int64) for t in last[-self.n:]])[0]
        lo, hi = np.searchsorted(self.sorted, key, "left"), np.searchsorted(self.sorted, key, "right")
        if lo == hi:
            return []
        starts = self.order[lo:min(hi, lo + CANDIDATES)]  # where the n-gram occurs
        back = np.array(last[-self.n - LOOKBACK:-self.n][::-1], dtype=np.int64)  # the tokens before it, nearest first
        before = starts[:, None] - 1 - np.arange(len(back))  # (candidates, lookback): corpus positions to compare
        same = (before >= 0) & (self.tokens[np.maximum(before, 0)] == back)
        matched = np.cumprod(same, axis=1).sum(axis=1)  # how far back each occurrence keeps matching
        start = int(starts[matched.argmax()]) + self.n
        return self.tokens[start:start + k].tolist()


class Drafter:
    """Guesses the next tokens of one reply: n-gram lookup in the text so far, then in a corpus."""

    def __init__(self, corpus: CorpusIndex | None = None, vocab_size: int | None = None):
        self.corpus = corpus
        self.vocab_size = vocab_size  # a corpus token past the model's vocabulary ends a draft
        self.history: list[int] = []
        self.after: dict[tuple[int, ...], int] = {}  # n-gram -> where the tokens after its latest occurrence begin
        self.taken = 0.5  # the running share of guessed tokens the model took

    def worth_sending(self) -> bool:
        """Whether guesses are taken often enough to repay checking them in a wider forward."""
        return self.taken >= MIN_TAKEN

    def draft_length(self, base: int) -> int:
        """How many tokens to guess: `base`, or twice as many and one while nearly every guess is taken."""
        return 2 * base + 1 if self.taken >= SURE_TAKEN else base

    def score(self, guess: Sequence[int], chosen: Sequence[int]) -> None:
        """Update the share taken: each guess matching the chosen token counts 1, the first mismatch 0."""
        for g, c in zip(guess, chosen):
            self.taken += (float(g == c) - self.taken) / TAKEN_MEMORY
            if g != c:
                break

    def extend(self, tokens: Sequence[int]) -> None:
        """Append tokens to the text so far, indexing the n-grams that end with each."""
        for t in tokens:
            self.history.append(t)
            end = len(self.history)
            for n in CONTEXT_NGRAMS:
                if end > n:  # the n-gram ending one token back, now that the token after it is known
                    self.after[tuple(self.history[end - 1 - n:end - 1])] = end - 1

    def draft(self, k: int) -> list[int]:
        """Up to k tokens that may come next: after the longest match in the text so far, else in the corpus."""
        if k <= 0:
            return []
        for n in CONTEXT_NGRAMS:
            start = self.after.get(tuple(self.history[-n:])) if len(self.history) >= n else None
            if start is not None:
                return self.history[start:start + k]
        guess = self.corpus.continuation(self.history, k) if self.corpus is not None else []
        if self.vocab_size is not None:
            guess = guess[:next((i for i, t in enumerate(guess) if t >= self.vocab_size), len(guess))]
        return guess


@torch.inference_mode()
def speculative_stream(model: GPT, idx: torch.Tensor, opts: SampleConfig, generator: torch.Generator | None = None,
                       constraint: Constraint | None = None, corpus: CorpusIndex | None = None,
                       draft_tokens: int = DRAFT_TOKENS, forward: Forward = decode_block) -> Iterator[torch.Tensor]:
    """Yield (1, 1) next tokens as ``gpt.decode.decode_stream`` does, checking drafts of up to draft_tokens in
    one ``forward`` (decode_block, or a compiled decode_block)."""
    if idx.size(0) != 1:
        raise ValueError("speculative decoding follows one sequence: batch size 1")
    block, device = model.config.block_size, idx.device
    keep = slid_window(block)
    seq = idx[0, -block:].tolist()
    drafter = Drafter(corpus, model.config.vocab_size)
    drafter.extend(idx[0].tolist())
    left = opts.max_new_tokens

    def choose(logits: torch.Tensor) -> int:  # logits (1, vocab) -> the next token, as generate_stream picks it
        nonlocal left
        if constraint is not None:
            logits = constraint.mask(logits)
        context = torch.tensor([seq], device=device) if opts.repetition_penalty != 1.0 else None
        token = sample_next(logits, opts, context, generator).item()
        if constraint is not None:
            constraint.advance(token)
        seq.append(token)
        drafter.extend([token])
        left -= 1
        return token

    def read(window: list[int]) -> tuple[int, Cache]:  # a fresh cache from the window: the token after it
        logits, cache = prefill(model, torch.tensor([window], device=device))
        return choose(logits), cache

    if left <= 0:
        return
    try:
        last, cache = read(seq)  # the last chosen token, not yet in the cache
        yield torch.tensor([[last]], device=device)
        while left > 0:
            if len(seq) > block:  # the cache is full: slide the window, read its last 3/4 again
                del seq[:-keep]
                last, cache = read(seq)
                yield torch.tensor([[last]], device=device)
                continue
            k = min(drafter.draft_length(draft_tokens), block - len(seq), left - 1)
            draft = (constraint.guess(k) if constraint is not None else []) or drafter.draft(k)
            sent = draft if drafter.worth_sending() else []
            logits = forward(model, cache, torch.tensor([[last, *sent]], device=device), len(seq) - 1)[0]
            for i in range(len(sent) + 1):  # logits[i] follow sent[i - 1]: choose; go on while they agree
                last = choose(logits[i:i + 1])
                yield torch.tensor([[last]], device=device)
                if left == 0 or i == len(sent) or last != sent[i]:
                    break
            drafter.score(draft, seq[-(i + 1):])  # a draft not sent is scored on its first guess
    finally:
        model.clear_cache()
