"""Sampling from a run directory: streaming text that never breaks a UTF-8 character, stop strings, batches.

``Generator`` loads a run once and serves many requests (the CLI, chat and the HTTP server use it).
A run's [sample] table gives the default options; callers override fields with ``options(...)``.
It owns no training logic and writes nothing.
"""

from __future__ import annotations

import codecs
import dataclasses
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gpt.bpe import Tokenizer
from gpt.chat import ChatError, check_messages, has_chat_tokens, render, stop_ids
from gpt.checkpoint import load_run
from gpt.config import SampleConfig, check_sample
from gpt.conversations import fits_window
from gpt.data import training_tokens
from gpt.decode import decode_block, decode_stream, fast_generate, generation_precision, prefill
from gpt.qa import SENTENCE_END
from gpt.runtime import autocast, resolve_device
from gpt.sampling import Constraint, Quote
from gpt.speculate import DRAFT_TOKENS, CorpusIndex, speculative_stream


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" (end of text or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int


class Generator:
    """A loaded model + tokenizer. Requests are serialised by a lock: one model, one cache, no mixing.

    A reply is decoded speculatively (gpt/speculate.py): drafts of up to `draft_tokens` looked up in the
    text so far and in the run's training tokens, checked in one forward; the same tokens, fewer forwards.
    draft_tokens=0 decodes one token per forward. compile=True compiles the forward (warm_up() pays for it).
    """

    def __init__(self, run_dir: str | Path, device: str = "auto", precision: str = "auto",
                 weights: str = "model.safetensors", threads: int = 1, draft_tokens: int = DRAFT_TOKENS,
                 compile: bool = False):
        self.device = resolve_device(device)
        if self.device.type == "cpu" and threads:
            # one token at a time is a chain of tiny ops: more threads only add hand-offs (benchmarks/README.md)
            torch.set_num_threads(threads)
        self.model, self.tokenizer, self.config = load_run(run_dir, self.device, weights)
        self.precision = generation_precision(precision, self.device)
        self.name = Path(run_dir).resolve().name
        self.run_dir = Path(run_dir)
        self.draft_tokens = draft_tokens
        # dynamic: one compiled graph for every position and draft length, not one per shape
        self.forward = torch.compile(decode_block, dynamic=True) if compile else decode_block
        self.lock = threading.Lock()
        # drafts come from the text so far until the index is built (about a second for 4M tokens), so a
        # large corpus delays no reply; which drafts are tried changes the speed, never the tokens. Not a daemon:
        # a daemon thread that wants the GIL back while Python exits is ended by pthread_exit, whose unwinding
        # through C++ frames (numpy's sort) can abort the process. The exit waits for the index instead. (A rare
        # abort after a finished answer was seen again with this thread already joined: cli.READERS guards it.)
        self._corpus: CorpusIndex | None = None
        self._indexing = threading.Thread(target=self._index_corpus if draft_tokens else None)
        self._indexing.start()

    def _index_corpus(self) -> None:
        try:
            tokens = training_tokens(self.run_dir / "data", self.tokenizer, self.config.data.val_fraction)
            self._corpus = CorpusIndex(tokens) if tokens is not None and len(tokens) else None
        except (OSError, ValueError, MemoryError) as e:  # drafts only save time: replies go on without them
            _stderr(f"note: no drafts from {self.run_dir / 'data'} ({e})")

    @property
    def corpus(self) -> CorpusIndex | None:
        """The n-gram index of the run's training tokens, waiting until it is built; None without a token cache
        or without drafts (draft_tokens=0)."""
        self._indexing.join()
        return self._corpus

    @property
    def block_size(self) -> int:
        return self.config.model.block_size

    def options(self, limit: int | None = None, **changes: Any) -> SampleConfig:
        """The run's [sample] defaults with the given fields replaced (None means: keep the default), checked."""
        opts = dataclasses.replace(self.config.sample, **{k: v for k, v in changes.items() if v is not None})
        check_sample(opts, limit, prefix="")
        return opts

    def encode_prompt(self, prompt: str, warn: Callable[[str], None] | None = None) -> list[int]:
        """Prompt -> ids; special tokens in the prompt are read as text; too long -> keep the end, warn."""
        ids = self.tokenizer.encode(prompt, disallowed_special=()) if prompt else []
        if not ids:
            ids = [self.tokenizer.eot_id if self.tokenizer.eot_id is not None else 10]
        if len(ids) >= self.block_size:
            keep = self.block_size - 1
            (warn or _stderr)(f"warning: the prompt has {len(ids)} tokens, more than the context of "
                              f"{self.block_size}; keeping its last {keep}")
            ids = ids[-keep:]
        return ids

    def _generator(self, seed: int) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed) if seed else gen.seed()
        return gen

    def stream(self, prompt: str, opts: SampleConfig, warn: Callable[[str], None] | None = None,
               info: dict | None = None) -> Iterator[str]:
        """Yield text pieces as they are sampled: whole characters only, stopping at end-of-text or a stop string.

        info, if given, receives prompt_tokens, completion_tokens and finish_reason when the stream ends.
        """
        ids = self.encode_prompt(prompt, warn)
        yield from self.stream_ids(ids, opts, info)

    def stream_ids(self, ids: list[int], opts: SampleConfig, info: dict | None = None,
                   end_ids: set[int] | None = None, constraint: Constraint | None = None) -> Iterator[str]:
        """stream() for a prompt already in ids; end_ids end the text (default: <|endoftext|>); a constraint
        (gpt.sampling.Quote) narrows each token's choice."""
        info = info if info is not None else {}
        info.update(prompt_tokens=len(ids), completion_tokens=0, finish_reason="length")
        end_ids = end_ids if end_ids is not None else {self.tokenizer.eot_id}
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        hold = max((len(s) for s in opts.stop), default=1) - 1  # chars that might start a stop string
        pending = ""
        with self.lock, torch.inference_mode(), autocast(self.device, self.precision):
            idx = torch.tensor([ids], device=self.device)
            for nxt in self._decode(idx, opts, constraint):
                token = nxt.item()
                info["completion_tokens"] += 1
                if token in end_ids:
                    info["finish_reason"] = "stop"
                    break
                pending += decoder.decode(self.tokenizer.decode_bytes([token]))
                cut = _find_stop(pending, opts.stop)
                if cut is not None:
                    pending = pending[:cut]
                    info["finish_reason"] = "stop"
                    break
                if len(pending) > hold:
                    yield pending[:len(pending) - hold]
                    pending = pending[len(pending) - hold:]
        pending += decoder.decode(b"", final=True) if info["finish_reason"] == "length" else ""
        if pending:
            yield pending

    def _decode(self, idx: torch.Tensor, opts: SampleConfig, constraint: Constraint | None) -> Iterator[torch.Tensor]:
        generator = self._generator(opts.seed)
        if not self.draft_tokens:
            return decode_stream(self.model, idx, opts, generator, constraint, self.forward)
        return speculative_stream(self.model, idx, opts, generator, constraint, self._corpus, self.draft_tokens,
                                  self.forward)

    def warm_up(self) -> None:
        """Run the forward over one and several new tokens at a few positions, so that a compiled one has its
        graphs before the first request: early in the window, and at its end, which dynamic shapes compile
        apart (there the cache is read whole); a reply that reached it recompiled for seconds."""
        with self.lock, torch.inference_mode(), autocast(self.device, self.precision):
            for width in (w for w in (1, 2, 3) if 2 * w + 1 <= self.block_size):
                cache = prefill(self.model, torch.zeros(1, width, dtype=torch.long, device=self.device))[1]
                for pos in (width, width + 1, self.block_size - width):
                    self.forward(self.model, cache, torch.zeros(1, width, dtype=torch.long, device=self.device), pos)
            self.model.clear_cache()

    def complete(self, prompt: str, opts: SampleConfig, warn: Callable[[str], None] | None = None) -> Completion:
        info: dict = {}
        text = "".join(self.stream(prompt, opts, warn, info))
        return Completion(text, info["finish_reason"], info["prompt_tokens"], info["completion_tokens"])

    # -- conversations
    @property
    def chat_format(self) -> bool:
        """True for a run trained with the chat format (gpt/chat.py); a base run only continues text."""
        return has_chat_tokens(self.tokenizer)

    def chat_ids(self, messages: list[dict]) -> list[int]:
        """The conversation rendered up to the assistant's turn; the oldest turns give way to fit the context."""
        check_messages(messages)
        system = messages[:1] if messages[0]["role"] == "system" else []
        turns = messages[len(system):]
        while True:
            ids, _ = render(self.tokenizer, system + turns, add_generation_prompt=True)
            if len(ids) < self.block_size or len(turns) <= 1:
                break
            turns = turns[1:]
        if len(ids) >= self.block_size:
            raise ChatError(f"the message has {len(ids)} tokens with the chat format; this model's context is "
                            f"{self.block_size} tokens")
        return ids

    def fits(self, messages: list[dict], answer: str | None = None) -> bool:
        """Whether a conversation leaves room for an answer in the context, as it will be rendered; with `answer`,
        whether that answer fits too (the rule training applies: block_size + 1 tokens, its <|end|> included)."""
        if not self.chat_format:
            prompt = plain_chat_prompt(messages) + (f" {answer}" if answer else "")
            return len(self.encode_prompt(prompt, warn=lambda m: None)) < self.block_size - 1
        try:
            if answer:
                turns = [*messages, {"role": "assistant", "content": answer}]
                return fits_window(render(self.tokenizer, turns)[0], self.block_size)
            return len(render(self.tokenizer, messages, add_generation_prompt=True)[0]) < self.block_size
        except ChatError:
            return False

    def stream_chat(self, messages: list[dict], opts: SampleConfig, info: dict | None = None,
                    constraint: Constraint | None = None) -> Iterator[str]:
        """The assistant's reply, streamed: through the chat format, or a plain 'User:/Assistant:' prompt."""
        ids, end_ids = self.reply_prompt(messages)
        if not self.chat_format:
            opts = dataclasses.replace(opts, stop=[*opts.stop, PLAIN_CHAT_STOP])
        yield from self.stream_ids(ids, opts, info, end_ids, constraint)

    def reply_prompt(self, messages: list[dict]) -> tuple[list[int], set[int]]:
        """The prompt ids stream_chat() reads for `messages`, and the tokens that end its reply."""
        if self.chat_format:
            return self.chat_ids(messages), stop_ids(self.tokenizer)
        check_messages(messages)
        return self.encode_prompt(plain_chat_prompt(messages), warn=lambda m: None), {self.tokenizer.eot_id}

    def quote(self, messages: list[dict], texts: list[str], bodies: list[int] | None = None,
              sentences: bool = True) -> Quote:
        """The constraint that makes stream_chat(messages) copy its reply out of one of `texts`, as the prompt
        holds them: their tokens there (gpt.sampling.Quote; each text where it first occurs after the last).

        With `sentences` the quote is whole sentences: it starts where one does (at the body, the character
        offset `bodies` gives in each text, 0 by default, or after a sentence's end) and ends where one ends.
        """
        ids, end_ids = self.reply_prompt(messages)
        sources = token_spans(self.tokenizer, ids, texts)
        bare = bare_tokens(self.tokenizer, {t for s in sources for t in s})
        if not sentences:
            return Quote(sources, end_ids, bare)
        bodies = bodies or [0] * len(sources)
        bounds = [sentence_bounds(self.tokenizer, s, body) for s, body in zip(sources, bodies)]
        return Quote(sources, end_ids, bare, [b[0] for b in bounds], [b[1] for b in bounds])

    def chat(self, messages: list[dict], opts: SampleConfig, constraint: Constraint | None = None) -> Completion:
        info: dict = {}
        text = "".join(self.stream_chat(messages, opts, info, constraint))
        return Completion(text.strip(), info["finish_reason"], info["prompt_tokens"], info["completion_tokens"])

    def batch(self, prompts: list[str], opts: SampleConfig) -> list[str]:
        """Several prompts in batched forwards: prompts of equal token length share one batch."""
        encoded = [self.encode_prompt(p) for p in prompts]
        groups: dict[int, list[int]] = defaultdict(list)
        for i, ids in enumerate(encoded):
            groups[len(ids)].append(i)
        gen = self._generator(opts.seed)
        out = [""] * len(prompts)
        with self.lock, torch.inference_mode(), autocast(self.device, self.precision):
            for length, members in groups.items():
                idx = torch.tensor([encoded[i] for i in members], device=self.device)
                new = fast_generate(self.model, idx, opts, gen)[:, length:]
                for i, row in zip(members, new.tolist()):
                    if self.tokenizer.eot_id in row:
                        row = row[:row.index(self.tokenizer.eot_id)]
                    text = self.tokenizer.decode(row)
                    cut = _find_stop(text, opts.stop)
                    out[i] = text if cut is None else text[:cut]
        return out


PLAIN_CHAT_STOP = "\nUser:"


def plain_chat_prompt(messages: list[dict]) -> str:
    """For a base run, which has never seen a conversation: 'System: ...\nUser: ...\nAssistant:'."""
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    lines = [f"{names.get(m['role'], m['role'].title())}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def token_spans(tokenizer: Tokenizer, ids: list[int], texts: list[str]) -> list[list[int]]:
    """For each text, in order, the tokens of `ids` lying wholly inside its next occurrence in their bytes.

    A token running past the text's end (".\n\n" after a passage's last sentence) is replaced by the token of
    its part inside the text ("."), when that is one token.
    """
    offsets = [0]  # where each token's bytes start, then where the last one ends
    for i in ids:
        offsets.append(offsets[-1] + len(tokenizer.decode_bytes([i])))
    raw, spans, after = tokenizer.decode_bytes(ids), [], 0
    for text in texts:
        wanted = text.encode("utf-8")
        start = raw.find(wanted, after)
        if start < 0:
            spans.append([])
            continue
        after = start + len(wanted)
        span = [t for t, a, b in zip(ids, offsets, offsets[1:]) if a >= start and b <= after]
        last = next((i for i, (a, b) in enumerate(zip(offsets, offsets[1:])) if a >= start and a < after < b), None)
        if last is not None:
            inside = raw[offsets[last]:after]
            part = tokenizer.encode(inside.decode("utf-8", errors="replace"), disallowed_special=())
            span += part if len(part) == 1 and tokenizer.decode_bytes(part) == inside else []
        spans.append(span)
    return spans


def sentence_bounds(tokenizer: Tokenizer, tokens: list[int], body: int = 0) -> tuple[list[int], list[int]]:
    """(the indices of the tokens that start a sentence, of those that end one) in the text `tokens` spell:
    sentences from character `body` on, split by gpt.qa's SENTENCE_END rule. A token that starts with spaces
    starts the sentence its first letter does."""
    text = tokenizer.decode(tokens)

    def to_bytes(chars: int) -> int:
        return len(text[:chars].encode("utf-8"))

    breaks = [m for m in SENTENCE_END.finditer(text) if m.start() > body]
    starts = {to_bytes(body)} | {to_bytes(m.end()) for m in breaks}
    ends = {to_bytes(m.start()) for m in breaks}
    first, last, at = [], [], 0
    for i, t in enumerate(tokens):
        piece = tokenizer.decode_bytes([t])
        if at + len(piece) - len(piece.lstrip()) in starts:
            first.append(i)
        at += len(piece)
        if at in ends:
            last.append(i)
    return first, last


def bare_tokens(tokenizer: Tokenizer, tokens: set[int]) -> dict[int, int]:
    """{token: the one token of its text without the leading space} for tokens that start with a space."""
    bare = {}
    for t in tokens:
        text = tokenizer.decode_bytes([t])
        if text.startswith(b" ") and len(text) > 1:
            alone = tokenizer.encode(text[1:].decode("utf-8", errors="replace"), disallowed_special=())
            if len(alone) == 1 and tokenizer.decode_bytes(alone) == text[1:]:
                bare[t] = alone[0]
    return bare


def _find_stop(text: str, stops: list[str]) -> int | None:
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)
