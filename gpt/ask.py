"""Asking a trained run a question: open-book from passages, or closed-book from the weights alone.

What `gpt ask`, `gpt chat` and `gpt serve` share, so that the three answer alike. With passages (the run's own
text, kept as passages.safetensors when it was trained to answer from it, or the files of --source), the question is
asked the way the run's open-book questions were trained (gpt/qa_mix.py): the best passages retrieved into the
user's message (retrieval.open_book), and the reply quoted from the best one, a contiguous run of its whole
sentences (sampling.Quote), since that is where the trained answers come from; the other passages are context.
Open-book questions are trained as single turns, so earlier turns of a conversation give way to the passages
when the context cannot hold both. Without passages the conversation is asked as it is.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpt.config import SampleConfig
from gpt.documents import collect_files
from gpt.generate import Generator
from gpt.retrieval import RUN_PASSAGES, RUN_PASSAGES_JSON, OpenBook, Passage, PassageIndex, RetrievalError, open_book
from gpt.sampling import Quote


def passages_to_ask(run_dir: str | os.PathLike, sources: Sequence[str] | None, closed: bool = False,
                    free: bool = False) -> PassageIndex | None:
    """The passages a run answers from: the sources' (files, folders), else the run's own (RUN_PASSAGES, saved
    when it was trained to answer from them), none when `closed`. Flags that cannot apply (closed with sources
    or free; free with no passages at all) are a one-line error before anything is loaded."""
    if closed and (sources or free):
        raise RetrievalError("--closed answers without passages: it does not go with --source or --free")
    kept = [Path(run_dir) / name for name in (RUN_PASSAGES, RUN_PASSAGES_JSON)]  # a run from before: its JSON
    own = next((path for path in kept if path.exists()), None)
    if free and not (sources or own):
        raise RetrievalError(f"--free needs passages: --source FILES (the run has no {RUN_PASSAGES}); "
                             "without passages the answer is always free")
    if sources:
        return PassageIndex.build(collect_files(sources))
    return None if closed or not own else PassageIndex.load(own)


def asked_open_book(gen: Generator, index: PassageIndex, question: str, k: int = 2,
                    system: Sequence[dict] = ()) -> OpenBook:
    """open_book() for a loaded run, checked against its tokenizer and context: the question `gpt ask` asks."""
    return open_book(index, question, gen.block_size, k,
                     lambda text, answer: gen.fits([*system, {"role": "user", "content": text}], answer))


@dataclass(frozen=True)
class Asked:
    """A conversation as the model is asked it, and what its reply may come from."""

    messages: list[dict]  # open-book: the last user message holds the passages
    passages: tuple[Passage, ...] = ()  # shown in that message, best first; none closed-book or when none matched
    shown: tuple[str, ...] = ()  # the passages as the message shows them (cut to the context)
    quoted: bool = False  # the reply is copied from the best passage, else generated freely
    missing: str = ""  # why no passage is shown when there were passages to search

    def quote(self, gen: Generator) -> Quote | None:
        """A new constraint for one reply (a Quote follows a single reply): the best passage's whole sentences."""
        return gen.quote(self.messages, list(self.shown[:1]), [self.passages[0].body]) if self.quoted else None

    def options(self, opts: SampleConfig, temperature_given: bool) -> SampleConfig:
        """An answer from passages is greedy unless a temperature was asked for: a draw may stray from the text."""
        return opts if temperature_given or not self.passages else dataclasses.replace(opts, temperature=0.0)

    def sources(self) -> list[Passage]:
        """The passages a reply came from: the quoted one, or all those shown to a free reply."""
        return list(self.passages[:1] if self.quoted else self.passages)


def ask(gen: Generator, index: PassageIndex | None, messages: list[dict], k: int = 2, free: bool = False) -> Asked:
    """The conversation's last user message asked open-book from `index` (None: closed-book, as it is)."""
    if index is None or not messages or messages[-1]["role"] != "user":
        return Asked(messages)
    *history, question = messages
    system = history[:1] if history and history[0]["role"] == "system" else []
    book = asked_open_book(gen, index, question["content"], k, system)
    if not book.passages:
        found = index.search(question["content"], 1)
        return Asked(messages, missing=f"the passages found do not fit in this model's {gen.block_size}-token "
                     "context beside the question" if found else "no passage matches the question")
    asked = {"role": "user", "content": book.prompt}
    turns = history[len(system):]
    while turns and not gen.fits([*system, *turns, asked], book.answer):
        turns = turns[1:]  # the oldest turn gives way to the passages, and a reply without its question with it
        while turns and turns[0]["role"] == "assistant":
            turns = turns[1:]
    return Asked([*system, *turns, asked], tuple(book.passages), book.shown, quoted=not free)
