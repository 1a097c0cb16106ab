"""Making a text answerable: questions derived from its structure, mixed into training with the text itself.

A model trained only on plain text stores facts it cannot be asked for (Allen-Zhu & Li, *Physics of
Language Models 3.1*). So when the text has structure (headings, glossary lines, FAQ blocks,
definitions; see gpt/qa.py), a run also trains on:

- closed-book conversations: "What is X?" answered by X's entry, in the chat format (gpt/chat.py);
- open-book conversations: the same question with the passages retrieval finds for it in the context
  (gpt/retrieval.py), so that `gpt ask --source` answers from a passage;
- the entries re-rendered in other recognised forms ("X: ...", "## X", "X is ..."), in a new order per
  rendering, as extra text: knowledge seen in several forms is the knowledge questions can extract.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from gpt.config import Config
from gpt.data import read_documents
from gpt.files import atomic_write
from gpt.qa import QAPair, augmented_text, derive_pairs
from gpt.retrieval import PassageIndex, fitted_question

MIN_PAIRS = 10  # fewer facts than this: the text has no structure worth a recipe
MAX_CHARS = 64 << 20  # derive from the first 64 MB of text: enough facts, bounded time
OPEN_BOOK_SHARE = 0.25  # of the derived questions, also asked with retrieved passages in the context
RENDERINGS = 2  # extra renderings of the entries added to the text
CHARS_PER_TOKEN = 3  # about what a small BPE vocabulary gives on English (benchmarks/README.md): fits by length


def derived_pairs(cfg: Config, files: list[str], log: Callable[[str], None]) -> list[QAPair]:
    """The question/answer pairs the text's structure gives, or none when data.qa is off or they are too few."""
    if cfg.data.qa == "off" or not files:
        return []
    pairs = [p for source, text in read_documents(files, cfg.data.jsonl_field, MAX_CHARS)
             for p in derive_pairs(text, source, phrasings=2, seed=cfg.train.seed)]
    if len(pairs) < MIN_PAIRS and cfg.data.qa == "auto":
        return []
    log(f"questions: {len(pairs):,} derived from the text's structure (data.qa {cfg.data.qa})")
    return pairs


def conversations(pairs: list[QAPair], files: list[str], cfg: Config) -> list[list[dict]]:
    """Closed-book conversations for every pair, open-book ones for a seeded share of them."""
    chats = [[{"role": "user", "content": p.question}, {"role": "assistant", "content": p.answer}] for p in pairs]
    if not pairs:
        return chats
    index = PassageIndex.build(read_documents(files, cfg.data.jsonl_field, MAX_CHARS))
    rng = random.Random(cfg.train.seed)
    room = CHARS_PER_TOKEN * cfg.model.block_size  # a conversation longer than the context is not trained on
    for p in rng.sample(pairs, max(1, int(len(pairs) * OPEN_BOOK_SHARE))):
        passages = [h.text for h in index.search(p.question, k=2)]
        budget = room - len(p.answer) - 40  # the chat tokens and the answer need their room too
        question, used = fitted_question(p.question, passages, lambda text, budget=budget: len(text) < budget)
        if used:
            chats.append([{"role": "user", "content": question}, {"role": "assistant", "content": p.answer}])
    return chats


def augmentation_file(pairs: list[QAPair], cache_dir: Path, seed: int) -> Path:
    """The entries re-rendered RENDERINGS times, each in a new order, as a text file for the token cache."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / "augmented.txt"
    text = "\n\n".join(augmented_text(pairs, seed=seed, epoch=e) for e in range(RENDERINGS))
    if not path.exists() or path.read_text(encoding="utf-8") != text:  # unchanged: the cache stays valid
        atomic_write(path, text)
    return path
