"""Making a text answerable: questions derived from its structure, mixed into training with the text itself.

A model trained only on plain text stores facts it cannot be asked for (Allen-Zhu & Li, *Physics of
Language Models 3.1*). So when the text has structure (headings, glossary lines, FAQ blocks,
definitions; see gpt/qa.py), a run also trains on:

- closed-book conversations: "What is X?" answered by X's entry, in the chat format (gpt/chat.py), and
  "what is x" as people type it;
- open-book conversations: the question with the passages retrieval finds for it in the context, built by
  gpt/retrieval.py's open_book() exactly as `gpt ask --source` builds it, answered with the best passage's
  first sentence: a small model learns to copy the answer out of the passage;
- the entries re-rendered in other recognised forms ("X: ...", "## X", "X is ..."), in a new order per
  rendering, as extra text: knowledge seen in several forms is the knowledge questions can extract.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterable
from pathlib import Path

from gpt.bpe import Tokenizer
from gpt.chat import render
from gpt.config import Config, TrainConfig, apply, get_value
from gpt.conversations import fits_window
from gpt.documents import Document, read_documents
from gpt.files import atomic_write
from gpt.qa import (
    DEFINITION,
    LEADING_ARTICLE,
    SENTENCE_END,
    TERM_KINDS,
    Entry,
    QAError,
    QAPair,
    bare_term,
    pairs_of_documents,
    term_of,
)
from gpt.retrieval import PassageIndex, open_book

MIN_PAIRS = 10  # fewer facts than this: the text has no structure worth a recipe
MAX_CHARS = 64 << 20  # derive from the first 64 MB of text: enough facts, bounded time
OPEN_BOOK_SHARE = 1.0  # open-book conversations per derived question (a seeded sample when below 1)
# at most: each is a search of the whole text, and a short run trains on fewer conversations than this
OPEN_BOOK_MAX = 5000
RENDERINGS = 2  # extra renderings of the entries added to the text
RENDERED_SENTENCES = 0  # a rendering carries this many of an entry's first sentences (0: all of it)
MIN_WORDS = 5  # a closed-book answer cut to fit the context keeps at least this many words
CASUAL = True  # each term's "What is X?" also asked as typed in a hurry: "what is x", no capitals, no "?"
RECALL_SHARE = 0.5  # a text whose entries are at least this share of it (a glossary, a wiki) is for reciting them
# Such a text's share of each batch is what stores the entries no question asks about, and the questions' share
# is what makes the asked ones answerable: a quarter questions while the lr is high, half while it decays, did
# better on both than half throughout (benchmarks/README.md, round 14).
RECALL_CHAT_WEIGHTS = (0.25, 0.5)  # data.chat_weight, data.chat_weight_decay
# Such a text is stored by how often each entry is seen, so the recipe sees it more often in the same time:
# longer tokens (4,096 instead of the cpu preset's 1,024: a step carries 1.4x the text, each entry is fewer
# tokens to recite) and, for the cpu preset's model, 2 layers instead of 4 (twice the steps). Together they took
# held-out answers at the 30-minute budget from 0.34 to 0.50 F1 (benchmarks/README.md, round 15).
RECALL_VOCAB = 4096  # tokenizer.vocab_size, at least
RECALL_LAYERS = {(4, 256): 2}  # (model.n_layer, model.n_embd) of the cpu preset -> model.n_layer; others: as set
# Muon's (or NorMuon's) lr at 1.5x the AdamW groups' stores the entries faster: at 1,000 steps on the Jargon File,
# trained answers 0.29 -> 0.39 F1, held-out ones 0.12 -> 0.14; at 2x both fell back (benchmarks/README.md, round 24).
RECALL_MUON_LR_SCALE = 1.5  # train.muon_lr = this x train.lr, where muon_lr is left to follow train.lr
FORMS = ("heading", "colon", "dash", "sentence")  # renderings of a term entry that gpt.qa reads back
FAQ_FORMS = ("qa", "question", "heading")  # renderings of a question entry


def source_documents(cfg: Config, files: list[str]) -> list[Document]:
    """(source, text) of the text questions are derived from and passages retrieved from (its first MAX_CHARS),
    read once for both; none when data.qa is off."""
    return [] if cfg.data.qa == "off" else read_documents(files, cfg.data.jsonl_field, MAX_CHARS)


def derived_pairs(cfg: Config, documents: list[Document], log: Callable[[str], None]) -> list[QAPair]:
    """The question/answer pairs the documents' structure gives, or none when data.qa is off or they are too few."""
    if cfg.data.qa == "off" or not documents:
        return []
    pairs = pairs_of_documents(documents, phrasings=2, seed=cfg.train.seed)
    if len(pairs) < MIN_PAIRS and cfg.data.qa == "auto":
        return []
    log(f"questions: {len(pairs):,} derived from the text's structure (data.qa {cfg.data.qa})")
    return pairs


def entry_share(documents: list[Document], pairs: list[QAPair]) -> float:
    """The share of the documents' characters that their entries' answers make up, each entry counted once:
    near 1 for a glossary, about 0.1 for Python's reference (prose with some definitions), 0 for a novel."""
    total = sum(len(document.text) for document in documents)
    answers = {(p.source, p.line, p.answer) for p in pairs}
    return sum(len(answer) for *_, answer in answers) / total if total else 0.0


def recall_overrides(cfg: Config, share: float) -> dict[str, float]:
    """What a text that is mostly entries changes in cfg: no regulariser and no pass cap, more of the text in
    each batch until the lr decays (RECALL_CHAT_WEIGHTS), a vocabulary of at least RECALL_VOCAB, for the cpu
    preset's model fewer layers (RECALL_LAYERS), and a higher lr for Muon (RECALL_MUON_LR_SCALE). The
    regulariser and the cap are there for validation of prose seen many times, and both keep a model from
    reciting its text: on the Jargon File at 30 minutes they took trained answers from 0.75 to 0.17 F1
    (benchmarks/README.md, round 8). Empty for other texts, and where cfg already has all of it."""
    if share < RECALL_SHARE:
        return {}
    wanted = {"model.drop_path": 0.0, "train.weight_decay": min(cfg.train.weight_decay, TrainConfig.weight_decay),
              "train.max_epochs": 0.0, "data.chat_weight": RECALL_CHAT_WEIGHTS[0],
              "data.chat_weight_decay": RECALL_CHAT_WEIGHTS[1],
              "tokenizer.vocab_size": max(cfg.tokenizer.vocab_size, RECALL_VOCAB),
              "model.n_layer": RECALL_LAYERS.get((cfg.model.n_layer, cfg.model.n_embd), cfg.model.n_layer)}
    if cfg.train.optimizer in ("muon", "normuon") and not cfg.train.muon_lr:
        wanted["train.muon_lr"] = RECALL_MUON_LR_SCALE * cfg.train.lr
    return {key: value for key, value in wanted.items() if get_value(cfg, key) != value}


def aim_at_recall(cfg: Config, documents: list[Document], pairs: list[QAPair], explicit: set[str],
                  log: Callable[[str], None]) -> bool:
    """Apply recall_overrides to cfg, except keys set on the command line, and say so. True if the text is for
    recall (mostly entries)."""
    share = entry_share(documents, pairs) if pairs else 0.0
    given = explicit | ({"data.chat_weight_decay"} if "data.chat_weight" in explicit else set())  # one share: kept
    changes = {k: v for k, v in recall_overrides(cfg, share).items() if k not in given}
    if changes:
        apply(cfg, changes)
        log(f"recall: entries are {share:.0%} of the text, so it is trained to recite them: "
            + ", ".join(f"{k} {v:g}" for k, v in changes.items()) + " (set them to choose otherwise)")
    return share >= RECALL_SHARE


def text_passages(documents: list[Document]) -> PassageIndex:
    """The documents' passages, indexed: what open-book examples are retrieved from, saved in the run directory
    so that `gpt ask` answers from them (retrieval.RUN_PASSAGES)."""
    return PassageIndex.build(documents)


def conversations(pairs: list[QAPair], index: PassageIndex, cfg: Config, share: float = OPEN_BOOK_SHARE,
                  tokenizer: Tokenizer | None = None) -> list[list[dict]]:
    """Closed-book conversations for every pair (CASUAL: "What is X?" typed as "what is x" too), then open-book
    ones for a seeded `share` of them (OPEN_BOOK_MAX at most).

    An open-book conversation is kept when the best passage retrieved is the pair's own entry (its first
    sentence starts the pair's answer): the model is taught to copy the right passage, not a neighbour's.
    With the run's tokenizer, each is checked to fit the context as gpt ask --source checks it
    (Generator.fits), and a closed-book answer too long for it is cut to its first sentences that fit;
    without, the room is counted in characters only.
    """
    fits = None if tokenizer is None else lambda text, answer: fits_window(render(tokenizer, [
        {"role": "user", "content": text}, {"role": "assistant", "content": answer}])[0], cfg.model.block_size)
    chats = [[{"role": "user", "content": p.question}, {"role": "assistant", "content": fitted_answer(p, fits)}]
             for p in pairs]
    if CASUAL:  # a small model reads "monstera" and "Monstera" as different tokens: both must lead to the answer
        for pair, (_, answer) in list(zip(pairs, chats)):
            if typed := casual_question(pair):
                chats.append([{"role": "user", "content": typed}, dict(answer)])
    if not pairs:
        return chats
    rng = random.Random(cfg.train.seed)
    asked = pairs * int(share) + rng.sample(pairs, round(len(pairs) * (share % 1)))
    if len(asked) > OPEN_BOOK_MAX:  # a seeded sample, in the text's order
        asked = [asked[i] for i in sorted(rng.sample(range(len(asked)), OPEN_BOOK_MAX))]
    for p in asked:
        book = open_book(index, p.question, cfg.model.block_size, fits=fits)
        if book.answer and " ".join(p.answer.split()).startswith(book.answer):
            chats.append([{"role": "user", "content": book.prompt}, {"role": "assistant", "content": book.answer}])
    return chats


def casual_question(pair: QAPair) -> str | None:
    """A term's "What is X?" as typed in a hurry, lowercase with no "?" ("what is monstera"); None for the
    other phrasings and for FAQ questions."""
    term = term_of(pair.question) if pair.kind in TERM_KINDS else None
    return pair.question.lower().rstrip("?") if term and pair.question in (f"What is {term}?", f"What are {term}?") \
        else None


def fitted_answer(pair: QAPair, fits: Callable[[str, str], bool] | None) -> str:
    """The pair's answer, or when its conversation does not fit the context, its first sentences that do (its
    first words, MIN_WORDS at least, if not even one sentence fits): a long entry still teaches its question,
    in the text's own words. Without `fits`, the answer as it is."""
    if fits is None or fits(pair.question, pair.answer):
        return pair.answer
    ends = [m.start() for m in SENTENCE_END.finditer(pair.answer)]
    for end in reversed(ends):
        if fits(pair.question, answer := pair.answer[:end]):
            return answer
    # the first sentence's longest prefix of words that fits, by bisection: a longer one never fits if this does not
    words = pair.answer[:ends[0] if ends else len(pair.answer)].split()
    first_too_long = bisect.bisect_left(range(MIN_WORDS, len(words)), True,
                                        key=lambda n: not fits(pair.question, " ".join(words[:n])))
    if first_too_long == 0:  # not even MIN_WORDS: the whole answer, which packing then skips as too long
        return pair.answer
    return " ".join(words[:MIN_WORDS + first_too_long - 1])


def augmentation_file(pairs: list[QAPair], cache_dir: Path, seed: int) -> Path:
    """The entries re-rendered RENDERINGS times, each in a new order, as a text file for the token cache."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / "augmented.txt"
    text = "\n\n".join(augmented_text(pairs, seed=seed, epoch=e) for e in range(RENDERINGS))
    if not path.exists() or path.read_text(encoding="utf-8") != text:  # unchanged: the cache stays valid
        atomic_write(path, text)
    return path


# ----------------------------------------------------------------------------- augmentation for pretraining

_RENDERINGS = {"heading": "## {name}\n\n{definition}", "colon": "{name}: {definition}", "dash": "{name} — {definition}",
               "qa": "Q: {term}\nA: {definition}", "question": "Question: {term}\nAnswer: {definition}"}


def render_entry(term: str, definition: str, form: str) -> str:
    """The entry in one of the recognised forms: heading, colon, dash, qa, question or sentence ("X is ...", for
    a definition that is already "Term is a ..." or opens with a/an/the; others fall back to colon)."""
    name = term[:1].upper() + term[1:]
    if form == "sentence":
        if (match := DEFINITION.match(definition)) and match.group("term").lower() == term.lower():
            return definition  # already "Term is a ..."
        if LEADING_ARTICLE.match(definition):
            return f"{name} is {definition[0].lower()}{definition[1:]}"
        form = "colon"
    if form not in _RENDERINGS:
        raise QAError(f"unknown form {form!r}; choose from {', '.join(FORMS + FAQ_FORMS[:2])}")
    return _RENDERINGS[form].format(name=name, term=term, definition=definition)


def _as_entries(items: Iterable[QAPair | Entry]) -> list[Entry]:
    entries, seen = [], set()
    for item in items:
        if isinstance(item, QAPair):
            term = term_of(item.question) if item.kind in TERM_KINDS else None
            item = Entry(term or item.question, item.answer, item.kind if term else "faq", item.source, item.line)
        key = (bare_term(item.term).lower(), item.definition)
        if key not in seen:  # the several phrasings of one fact are one entry
            seen.add(key)
            entries.append(item)
    return entries


def augmented_text(items: Iterable[QAPair | Entry], seed: int = 0, epoch: int = 0) -> str:
    """Every entry once, each in a randomly chosen form, in a shuffled order that differs per epoch."""
    rng = random.Random(f"{seed}|{epoch}")
    entries = _as_entries(items)
    rng.shuffle(entries)
    rendered = [render_entry(e.term, leading_sentences(e.definition, RENDERED_SENTENCES),
                             rng.choice(FAQ_FORMS if e.kind == "faq" else FORMS)) for e in entries]
    return "\n\n".join(rendered) + ("\n" if rendered else "")


def leading_sentences(text: str, n: int) -> str:
    """The first n sentences of text (all of it when n is 0), as the text has them."""
    ends = [m.start() for m in SENTENCE_END.finditer(text)]
    return text[:ends[n - 1]] if 0 < n <= len(ends) else text
