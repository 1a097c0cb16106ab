"""Decoding as small functions: logits to probabilities, pick a token, prefill, decode one token, stream.

``SampleConfig`` (gpt/config.py) is the one set of sampling options, from a run's [sample] table, the CLI
and the server down to ``logits_to_probs``. Generation keeps a static KV cache: the prompt is read once
(``prefill``), then each new token costs one position's forward (``decode_one``). When the context fills
block_size the window slides: its last 3/4 is read again into a fresh cache.

A ``Constraint`` narrows what may be sampled, one step at a time: ``Quote`` makes the reply a span copied
out of given token sequences (an open-book answer quoted from its passage), then an end token.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import torch

from gpt.bpe import Tokenizer
from gpt.chat import until_stop
from gpt.config import SampleConfig
from gpt.model import GPT
from gpt.runtime import autocast


def apply_repetition_penalty(logits: torch.Tensor, context: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty: logits of tokens already in context are divided (if > 0) or multiplied by penalty."""
    seen = logits.gather(1, context)
    return logits.scatter(1, context, torch.where(seen > 0, seen / penalty, seen * penalty))


def logits_to_probs(logits: torch.Tensor, opts: SampleConfig) -> torch.Tensor:
    """(B, vocab) logits -> probabilities after temperature, top-k and top-p (temperature > 0)."""
    logits = logits / opts.temperature
    if opts.top_k:
        kth = torch.topk(logits, min(opts.top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if opts.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs > opts.top_p  # keep the smallest set reaching top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits.softmax(dim=-1)


def sample_next(logits: torch.Tensor, opts: SampleConfig, context: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, vocab) -> next token (B, 1): repetition penalty, then greedy (temperature 0) or a draw."""
    logits = logits.float()
    if opts.repetition_penalty != 1.0 and context is not None:
        logits = apply_repetition_penalty(logits, context, opts.repetition_penalty)
    if opts.temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    return torch.multinomial(logits_to_probs(logits, opts), 1, generator=generator)


class Constraint(Protocol):
    """Decoding under a rule: mask() the logits of tokens the rule forbids, then advance() by the token taken."""

    def mask(self, logits: torch.Tensor) -> torch.Tensor: ...

    def advance(self, token: int) -> None: ...

    def guess(self, k: int) -> list[int]: ...  # up to k tokens the rule expects next: a draft (gpt/speculate.py)


class Quote:
    """The reply is one contiguous span of one of `sources` (token id sequences), then one of `end_ids`.

    Copying needs no search: the state is the set of positions the span copied so far may continue at (a
    span can occur more than once). Before the first token any start may come (every source token unless
    `start_at` says otherwise); after it, exactly the tokens that continue some occurrence, or an end. A span
    never runs from one source into the next, and a span that reaches the end of its source can only end.
    `bare` maps a source token to the same text without its leading space (" person" -> "person"): a reply's
    first token has none, since the reply is tokenized on its own, so it starts with the bare form where there is
    one. Per source, `start_at` lists the tokens a quote may start at and `end_after` those it may end
    after (the source's last always); None: any. Each step costs O(occurrences).
    """

    def __init__(self, sources: Sequence[Sequence[int]], end_ids: Iterable[int], bare: dict[int, int] | None = None,
                 start_at: Sequence[Iterable[int]] | None = None, end_after: Sequence[Iterable[int]] | None = None):
        self.end_ids = sorted(set(end_ids))
        if not self.end_ids:
            raise ValueError("a quote needs an end token")
        self.ids: list[int] = []  # the sources back to back, -1 after each: no token continues past a source
        self.stops: set[int] | None = None if end_after is None else set()  # positions a quote may end before
        first: list[int] = []  # positions a quote may start at
        self.source_starts: list[int] = []  # where each source starts in self.ids
        for n, source in enumerate(sources):
            self.source_starts.append(len(self.ids))
            first += [len(self.ids) + i for i in (range(len(source)) if start_at is None else start_at[n])]
            if self.stops is not None:
                self.stops |= {len(self.ids) + i + 1 for i in (*end_after[n], len(source) - 1)}
            self.ids += [*source, -1]
        bare = bare or {}
        self.starts: dict[int, list[int]] = defaultdict(list)  # first token -> positions its span continues at
        for p in first:  # as the reply starts: " person" as "person" where the vocabulary has it
            self.starts[bare.get(self.ids[p], self.ids[p])].append(p + 1)
        self.active: list[int] | None = None  # None: nothing copied yet
        self.ended = False
        self.first = min(first, default=-1)
        self.first_token = bare.get(self.ids[self.first], self.ids[self.first]) if first else -1

    def allowed(self) -> list[int]:
        """The token ids that may come next."""
        if self.ended:
            return self.end_ids
        if self.active is None:
            return sorted(self.starts) or self.end_ids  # no source token at all: only an (empty) end
        can_end = self.stops is None or not self.stops.isdisjoint(self.active)
        return sorted({self.ids[p] for p in self.active if self.ids[p] >= 0} | set(self.end_ids if can_end else ()))

    def advance(self, token: int) -> None:
        """Take `token` (one of allowed()) as the next token of the reply."""
        if token not in self.allowed():
            raise ValueError(f"token {token} does not continue the quote")
        if token in self.end_ids:
            self.ended = True
            return
        if self.active is None:
            self.active = self.starts[token]
        else:
            self.active = [p + 1 for p in self.active if self.ids[p] == token]

    def guess(self, k: int) -> list[int]:
        """Up to k tokens the quote goes on with, if the reply does not end: its first occurrence's next tokens
        (before the first token: the source's first start, most often the passage's first sentence)."""
        if self.ended or k <= 0 or (self.active is None and self.first < 0):
            return []
        if self.active is None:
            rest = [self.first_token, *self.ids[self.first + 1:self.first + k]]
        else:
            rest = self.ids[min(self.active):min(self.active) + k] if self.active else []
        return rest[:rest.index(-1)] if -1 in rest else rest

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """(1, vocab) logits with every token but the allowed ones at -inf."""
        keep = torch.full_like(logits, float("-inf"))
        allowed = torch.tensor(self.allowed(), device=logits.device)
        keep[:, allowed] = logits[:, allowed]
        return keep


def slid_window(block_size: int) -> int:
    """How many tokens the window keeps when the context fills block_size: its last 3/4, read again."""
    return max(1, block_size * 3 // 4)


def prefill(model: GPT, idx: torch.Tensor) -> tuple[torch.Tensor, None]:
    """Read a prompt (B, T) into the model's own fresh KV cache; the last position's logits (B, vocab)."""
    model.setup_cache(idx.size(0))
    return model(idx, pos=0)[0][:, -1, :], None


def decode_one(model: GPT, cache: None, token: torch.Tensor, pos: int) -> torch.Tensor:
    """One new token (B, 1) at position pos through the model's cache; its logits (B, vocab)."""
    return model(token, pos=pos)[0][:, -1, :]


@torch.no_grad()
def generate_stream(model: GPT, idx: torch.Tensor, opts: SampleConfig, generator: torch.Generator | None = None,
                    read: Callable = prefill, step: Callable = decode_one,
                    constraint: Constraint | None = None) -> Iterator[torch.Tensor]:
    """Yield (B, 1) next tokens, up to opts.max_new_tokens: read the prompt once, then one step per token.

    read(model, idx) -> (logits, cache) and step(model, cache, token, pos) -> logits are the decoding
    path: by default GPT.forward with the model's KV cache (readable); gpt/decode.py passes a faster one.
    A constraint (batch 1) masks the logits before each token is chosen and is told which one was.
    """
    if constraint is not None and idx.size(0) != 1:
        raise ValueError("a decoding constraint follows one sequence: batch size 1")
    block = model.config.block_size
    keep = slid_window(block)
    seq = idx[:, -block:]
    try:
        logits, cache = read(model, seq)
        for _ in range(opts.max_new_tokens):
            if constraint is not None:
                logits = constraint.mask(logits)
            nxt = sample_next(logits, opts, seq, generator)
            if constraint is not None:
                constraint.advance(nxt.item())
            yield nxt
            seq = torch.cat([seq, nxt], dim=1)
            if seq.size(1) > block:  # the cache is full: slide the window and read it again
                seq = seq[:, -keep:]
                logits, cache = read(model, seq)
            else:
                logits = step(model, cache, nxt, seq.size(1) - 1)
    finally:
        model.clear_cache()


def generate(model: GPT, idx: torch.Tensor, opts: SampleConfig,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """idx (B, T) -> (B, T + max_new_tokens), sampled with the KV cache."""
    return torch.cat([idx, *generate_stream(model, idx, opts, generator)], dim=1)


def sample_text(model: GPT, tokenizer: Tokenizer, max_new_tokens: int, seed: int, precision: str = "fp32") -> str:
    """A few tokens from the model as it is (temperature 0.8, top-k 50, seeded), from an end-of-text token up to
    the first end of a reply or a text: what the trainer logs at each evaluation."""
    device = next(model.parameters()).device
    start = torch.tensor([[tokenizer.eot_id or 10]], device=device)
    opts = SampleConfig(max_new_tokens=max_new_tokens, temperature=0.8, top_k=50)
    was_training = model.training
    model.eval()
    with autocast(device, precision):
        out = generate(model, start, opts, torch.Generator(device).manual_seed(seed))
    model.train(was_training)
    return tokenizer.decode(until_stop(out[0, 1:].tolist(), tokenizer))
