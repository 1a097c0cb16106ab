"""Setting up a run before any training: inputs, the tokenizer, the token cache, --init-from, the resume point.

`gpt train`, `gpt prepare` and `gpt tokenizer train` all go through here, so the three agree on what the
default input is, when a tokenizer is trained or reused, and how many processes count pre-tokens.
Everything here validates before it writes: a run directory's trained files are replaced only when the
new run is committed (``commit_run``), never while a typo or a missing GPU can still stop it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from gpt.batches import Batches, BatchSource
from gpt.bpe import Tokenizer
from gpt.bpe_formats import load_tokenizer, read_tokenizer_config
from gpt.chat import CHAT_TEMPLATE, add_chat_tokens, grow_embeddings, has_chat_tokens, render
from gpt.checkpoint import (
    BASE_WEIGHTS,
    Checkpointer,
    load_state,
    load_weights,
    read_config,
    verify_checkpoint,
    write_run_files,
)
from gpt.config import Config, ModelConfig, result_changes
from gpt.conversations import (
    ConversationBatches,
    MixedBatches,
    conversation_texts,
    is_conversation_file,
    read_rendered,
    too_long,
)
from gpt.data import TokenData, check_sizes, open_prepared, prepare
from gpt.documents import BUILTIN, collect_files, iter_texts
from gpt.errors import InputError
from gpt.files import RunLock, atomic_write
from gpt.lora import apply_lora, store_base, trainable_parameters
from gpt.model import GPT
from gpt.qa_mix import aim_at_recall, augmentation_file, conversations, derived_pairs, source_documents, text_passages
from gpt.retrieval import RUN_PASSAGES, RUN_PASSAGES_JSON
from gpt.runtime import Dist

MAX_CHAT_REPEATS = 4  # times as often as the text a conversation may be seen, unless data.chat_weight is given
PENDING_TOKENIZER = ".tokenizer.pending.json"  # a new run's tokenizer, until the run is committed
# What a fresh run replaces. The token cache (data/) stays: it is checked against its tokenizer and inputs.
TEMPLATE_FILE, SPECIAL_FILE = "chat_template.jinja", "special.json"  # the chat format; a HF model's tokens
RUN_FILES = ("checkpoints", "model.safetensors", "best.safetensors", "tokenizer.json", "log.jsonl", "loss.png",
             "config.toml", BASE_WEIGHTS, TEMPLATE_FILE, SPECIAL_FILE)
FINE_TUNE_MAY_CHANGE = {"dropout", "drop_path"}  # model keys --init-from lets a user change: not the architecture


class SetupError(InputError):
    """A run that cannot be set up as asked (inputs, --init-from, the resume point)."""


def default_inputs(cfg: Config) -> list[str]:
    """--input, else ./input.txt if present, else the built-in corpus (Python's reference documentation)."""
    if cfg.data.input:
        return list(cfg.data.input)
    return ["input.txt"] if os.path.isfile("input.txt") else [BUILTIN]


def tokenizer_workers(requested: int, files: list[str]) -> int:
    """Counting processes: what was asked, else up to 4 cores for inputs over 8 MB (smaller: not worth a pool)."""
    if requested:
        return requested
    size = sum(os.path.getsize(f) for f in files if f != BUILTIN and os.path.isfile(f))
    return min(4, os.cpu_count() or 1) if size > 8 << 20 else 1


def split_inputs(files: list[str]) -> tuple[list[str], list[str]]:
    """(text files, conversation files): a .jsonl whose records are conversations is a conversation file."""
    chats = [f for f in files if is_conversation_file(f)]
    return [f for f in files if f not in chats], chats


def train_tokenizer(files: list[str], cfg: Config, workers: int = 0, progress: bool = False,
                    log: Callable[[str], None] = print, chat: bool = False) -> Tokenizer:
    """A new BPE tokenizer on the text of files (conversations' messages included); chat tokens if any."""
    tok = cfg.tokenizer
    log(f"tokenizer: training byte-level BPE, vocab {tok.vocab_size}, pattern {tok.pattern}")
    start = time.perf_counter()
    text_files, chat_files = split_inputs(files)
    texts = itertools.chain(iter_texts(text_files, cfg.data.jsonl_field),
                            conversation_texts(chat_files, cfg.data.skip_bad))
    tokenizer = Tokenizer.train(texts, tok.vocab_size, tok.pattern, tok.special_tokens,
                                workers=tokenizer_workers(workers, files), progress=progress)
    if chat or chat_files:
        tokenizer = add_chat_tokens(tokenizer)
    log(f"tokenizer: {tokenizer.vocab_size} tokens in {time.perf_counter() - start:.1f}s")
    return tokenizer


def reusable_tokenizer(run_dir: Path, cfg: Config) -> Tokenizer | None:
    """The run's tokenizer.json when the run's config says it was trained with these settings on these inputs."""
    path = run_dir / "tokenizer.json"
    if not path.exists() or not (run_dir / "config.toml").exists():
        return None
    saved = read_config(run_dir)
    same_inputs = (saved.data.input, saved.data.val_input, saved.data.jsonl_field) == \
        (cfg.data.input, cfg.data.val_input, cfg.data.jsonl_field)
    return load_tokenizer(path) if saved.tokenizer == cfg.tokenizer and same_inputs else None


def adopt(source: str) -> tuple[ModelConfig, Tokenizer]:
    """Fine-tuning keeps the source's architecture and tokenizer: read both from a run or a HF directory."""
    src = Path(source)
    if (src / "config.toml").exists():
        return read_config(src).model, load_tokenizer(src / "tokenizer.json")
    if (src / "config.json").exists():
        from gpt.hf import config_from_hf
        try:
            hf_config = json.loads((src / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SetupError(f"--init-from {src}: config.json is not readable JSON ({exc})") from None
        if not (src / "tokenizer.json").exists():
            raise SetupError(f"{src} has no tokenizer.json: its tokenizer is needed to fine-tune it")
        return config_from_hf(hf_config), load_tokenizer(src / "tokenizer.json")
    raise SetupError(f"--init-from {src}: neither a gpt run directory nor a Hugging Face model directory")


def load_init_weights(model: GPT, source: str) -> None:
    """The --init-from source's weights into a model of its architecture (a run's model.safetensors, or HF)."""
    src = Path(source)
    if (src / "config.toml").exists():
        load_weights(model, src / "model.safetensors")
    else:
        from gpt.hf import load_hf_into
        load_hf_into(model, src)


def read_chat_files(source: str | Path) -> dict:
    """bos_token, eos_token, add_bos_token and chat_template (the keys present) of a model directory.

    A Hugging Face directory has them in tokenizer_config.json; a gpt run fine-tuned from one has them in
    special.json and chat_template.jinja (what carry_hf_chat_files wrote), so they pass on to its fine-tunes.
    """
    src = Path(source)
    if not (src / "config.toml").exists():
        return read_tokenizer_config(src)
    try:
        chat = json.loads((src / SPECIAL_FILE).read_text(encoding="utf-8")) if (src / SPECIAL_FILE).exists() else {}
        if (src / TEMPLATE_FILE).exists():
            chat["chat_template"] = (src / TEMPLATE_FILE).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read the chat files of {src}: {exc}") from None
    return chat


def carry_hf_chat_files(chat: dict, run_dir: Path) -> None:
    """Store a source model's chat template as chat_template.jinja and its special tokens as special.json.

    Files the source lacks are removed, so a run never keeps an earlier source's template.
    """
    special = {k: v for k, v in chat.items() if k != "chat_template"}
    files = {TEMPLATE_FILE: chat.get("chat_template"),
             SPECIAL_FILE: json.dumps(special, indent=1) if special else None}
    for name, content in files.items():
        if content:
            atomic_write(run_dir / name, content)
        else:
            (run_dir / name).unlink(missing_ok=True)


def check_fine_tune_overrides(adopted: ModelConfig, cfg: Config, explicit: set[str], source: str) -> None:
    """A --model.KEY given with --init-from must not be silently ignored: refuse what would change the shape."""
    for key in sorted(explicit):
        section, _, name = key.partition(".")
        if section == "model" and name not in FINE_TUNE_MAY_CHANGE and name != "vocab_size" \
                and getattr(cfg.model, name) != getattr(adopted, name):
            raise SetupError(f"--{key} {getattr(cfg.model, name)} conflicts with --init-from {source} (its model has "
                             f"{name} = {getattr(adopted, name)}); fine-tuning keeps the source's architecture")


def resume_point(run_dir: Path, cfg: Config, resume: str, warn: Callable[[str], None]) -> Path | None:
    """The checkpoint to continue from. resume: 'auto', 'must' (--resume) or 'never' (--fresh).

    A run directory whose weights would be overwritten by a new run is refused rather than retrained
    silently: every checkpoint damaged, or weights without any checkpoint.
    """
    if resume == "never":
        return None
    checkpointer = Checkpointer(run_dir)
    checkpoint = checkpointer.latest_good(warn=warn)
    if checkpoint is None:
        damaged = checkpointer.list()
        if damaged:
            reasons = "; ".join(f"{p.name}: {verify_checkpoint(p)}" for p in damaged[-2:])
            raise SetupError(f"every checkpoint in {run_dir} is damaged ({reasons}); nothing was changed. "
                             "Use --fresh to start over, or another --out")
        if resume == "must":
            raise SetupError(f"nothing to resume: {run_dir} holds no intact checkpoint")
        if (run_dir / "model.safetensors").exists():
            raise SetupError(f"{run_dir} holds trained weights but no checkpoint to resume; nothing was changed. "
                             "Use --fresh to start over, or another --out")
        return None
    saved = read_config(run_dir)
    if not cfg.model.vocab_size:  # derived from the tokenizer: not a difference
        saved.model.vocab_size = 0
    changes = result_changes(saved, cfg)
    if changes:
        raise SetupError(f"{run_dir} holds a checkpoint of another config ({'; '.join(changes[:3])}); "
                         "use another --out, or --fresh to start over")
    return checkpoint


Rendered = list[tuple[list[int], list[int]]]  # conversations as (ids, loss mask)


@dataclass
class Prepared:
    """What a run starts from: tokenizer, text token data and conversations (either may be absent), checkpoint."""
    files: list[str]
    tokenizer: Tokenizer
    data: TokenData | None
    chat_train: Rendered
    chat_val: Rendered
    checkpoint: Path | None
    state: dict | None  # the checkpoint's state.pt, read (and so checked) before anything is written
    base_vocab: int  # the --init-from model's vocabulary, before chat tokens grew it (else the model's)
    chat: dict | None = None  # --init-from's chat template and special tokens (read_chat_files)
    recall: bool = False  # the text is mostly entries, trained to recite them (qa_mix.aim_at_recall)
    chat_cap: float = 1.0  # the most the conversations' share of a batch may be (chat_share_cap)


def prepare_run(cfg: Config, run_dir: Path, dist: Dist, resume: str = "auto", init_from: str | None = None,
                explicit: set[str] = frozenset(), progress: bool = False,
                log: Callable[[str], None] = print) -> Prepared:
    """Everything a run needs before its first write to the run directory's trained files."""
    files = collect_files(default_inputs(cfg))  # a missing input is reported first, before any resume check
    text_files, chat_files = split_inputs(files)
    documents = source_documents(cfg, text_files)  # read once: questions and passages both come from it
    pairs = derived_pairs(cfg, documents, log)  # questions the text's own structure gives (gpt/qa_mix.py)
    kept = explicit | ({"model.n_layer", "tokenizer.vocab_size"} if init_from else set())  # the model's own
    recall = aim_at_recall(cfg, documents, pairs, kept, log)  # a glossary or wiki: recited, not regularised
    needs_chat = bool(chat_files or pairs)
    adopted, chat = None, None
    if init_from:
        model_cfg, adopted = adopt(init_from)
        chat = read_chat_files(init_from)
        check_fine_tune_overrides(model_cfg, cfg, explicit, init_from)
        cfg.model = ModelConfig(**{**model_cfg.__dict__, **{k: getattr(cfg.model, k) for k in FINE_TUNE_MAY_CHANGE}})
        if needs_chat:  # a base model learning to chat: its tokenizer gains the chat tokens, its embedding rows
            adopted = add_chat_tokens(adopted)
    base_vocab = cfg.model.vocab_size
    if adopted is not None:
        cfg.model.vocab_size = max(base_vocab, adopted.vocab_size)
    checkpoint = resume_point(run_dir, cfg, resume, warn=log)
    state = load_state(checkpoint) if checkpoint else None  # a damaged or hostile state.pt stops here, untouched
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(run_dir / "tokenizer.json") if checkpoint else adopted
    if tokenizer is None and resume != "never":
        tokenizer = reusable_tokenizer(run_dir, cfg)
        if tokenizer is not None and needs_chat:  # prepared without questions: the same ids, plus chat tokens
            tokenizer = add_chat_tokens(tokenizer)
    if tokenizer is None:
        if dist.master:
            tokenizer = train_tokenizer(files, cfg, cfg.data.workers, progress, log, chat=needs_chat)
            tokenizer.save(run_dir / PENDING_TOKENIZER)
        dist.barrier()
        tokenizer = tokenizer or load_tokenizer(run_dir / PENDING_TOKENIZER)
    derive_vocab_size(cfg, tokenizer)
    passages = text_passages(documents) if pairs else None
    derived = conversations(pairs, passages, cfg, tokenizer=tokenizer)  # fitted as gpt ask --source fits them
    if dist.master:
        if passages is not None:
            passages.save(run_dir / RUN_PASSAGES)  # what gpt ask answers from, as the run was trained to
        else:
            (run_dir / RUN_PASSAGES).unlink(missing_ok=True)  # an earlier run's, in this directory: not this text
        (run_dir / RUN_PASSAGES_JSON).unlink(missing_ok=True)  # what runs kept before; gone once the new one is in
    if pairs:  # the entries in other forms, first: the validation split stays the end of the user's text
        if dist.master:
            augmentation_file(pairs, run_dir / "data", cfg.train.seed)
        dist.barrier()
        text_files = [str(run_dir / "data" / "augmented.txt"), *text_files]
    data = prepare_tokens(cfg, text_files, tokenizer, run_dir / "data", dist, progress, log) if text_files else None
    chat_train, chat_val = render_conversations(cfg, chat_files, tokenizer, log, derived) if needs_chat else ([], [])
    return Prepared(files, tokenizer, data, chat_train, chat_val, checkpoint, state,
                    base_vocab or cfg.model.vocab_size, chat, recall, chat_share_cap(data, chat_train, explicit))


def chat_share_cap(data: TokenData | None, chat_train: Rendered, explicit: set[str]) -> float:
    """The most the conversations' share of each batch may be, so that none is seen more than MAX_CHAT_REPEATS
    times as often as the text: a novel's ten derived questions would otherwise take half of every batch, read
    a hundred times for each time the text is. 1.0 (no cap) when data.chat_weight is given, or nothing to mix."""
    if "data.chat_weight" in explicit or data is None or not chat_train:
        return 1.0
    text, chat = len(data.train), sum(len(ids) for ids, _ in chat_train)
    return MAX_CHAT_REPEATS * chat / (text + MAX_CHAT_REPEATS * chat)


def render_conversations(cfg: Config, files: list[str], tokenizer: Tokenizer, log: Callable[[str], None],
                         derived: list[list[dict]] = ()) -> tuple[Rendered, Rendered]:
    """Read, check and render the conversations; (train, held out): the last val_fraction of ten or more.

    derived conversations (questions from the text) are shuffled in after the user's own; those too long
    for the context are left out without complaint: the user did not write them.
    """
    rendered, _, bad = read_rendered(files, tokenizer, cfg.data.skip_bad)
    extra = [r for r in (render(tokenizer, c) for c in derived) if len(r[0]) <= cfg.model.block_size + 1]
    random.Random(cfg.train.seed).shuffle(extra)
    rendered += extra
    long = too_long(rendered, cfg.model.block_size)
    if long and not cfg.data.skip_long:
        raise SetupError(f"{len(long)} conversation(s) are longer than the context of {cfg.model.block_size + 1} "
                         f"tokens (e.g. number {long[0] + 1}: {len(rendered[long[0]][0])} tokens); raise "
                         "--model.block_size or pass --data.skip_long true")
    dropped = set(long)
    rendered = [r for i, r in enumerate(rendered) if i not in dropped]
    if not rendered and not files:  # questions derived from the text, none short enough: not the user's error
        log(f"questions: none fits the context of {cfg.model.block_size + 1} tokens; training on the text alone")
        return [], []
    if not rendered:
        raise SetupError("no conversations left to train on" + (f" ({bad} bad, {len(long)} too long)"))
    n_val = max(1, round(len(rendered) * cfg.data.val_fraction)) if len(rendered) >= 10 else 0
    trained = sum(sum(mask) for _, mask in rendered) / max(1, sum(len(ids) for ids, _ in rendered))
    log(f"conversations: {len(rendered) - n_val:,} to train on, {n_val:,} held out, {trained:.0%} of their tokens "
        "in the loss"
        + (f"; skipped {bad} bad record(s)" if bad else "") + (f"; skipped {len(long)} too long" if long else ""))
    return rendered[:len(rendered) - n_val], rendered[len(rendered) - n_val:]


def derive_vocab_size(cfg: Config, tokenizer: Tokenizer) -> None:
    if not cfg.model.vocab_size:
        cfg.model.vocab_size = tokenizer.vocab_size
    elif cfg.model.vocab_size < tokenizer.vocab_size:
        raise SetupError(f"model.vocab_size {cfg.model.vocab_size} is smaller than the tokenizer's "
                         f"{tokenizer.vocab_size}")


def prepare_tokens(cfg: Config, files: list[str], tokenizer: Tokenizer, cache: Path, dist: Dist,
                   progress: bool, log: Callable[[str], None]) -> TokenData:
    """Rank 0 builds or verifies the token cache; the other ranks then open it without hashing it again."""
    d = cfg.data
    data = None
    if dist.master:
        data = prepare(files, tokenizer, cache, d.val_input, d.val_fraction, d.jsonl_field, d.workers,
                       progress=progress, log=log)
    dist.barrier()
    return data if data is not None else open_prepared(cache, tokenizer, d.val_fraction)


def commit_run(run_dir: Path, cfg: Config, prepared: Prepared, fresh: bool) -> None:
    """The point of no return (rank 0): a fresh run replaces the old one's files; then config and tokenizer."""
    if fresh:
        for name in RUN_FILES:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    write_run_files(run_dir, cfg, prepared.tokenizer)
    if has_chat_tokens(prepared.tokenizer):  # our chat format travels with the run (and its exports)
        atomic_write(run_dir / TEMPLATE_FILE, CHAT_TEMPLATE)
        (run_dir / SPECIAL_FILE).unlink(missing_ok=True)
    elif prepared.chat is not None:
        carry_hf_chat_files(prepared.chat, run_dir)
    (run_dir / PENDING_TOKENIZER).unlink(missing_ok=True)


def build_model(cfg: Config, prepared: Prepared, init_from: str | None, log: Callable[[str], None],
                precision: str = "fp32") -> GPT:
    """A new model, or the --init-from weights (the embedding grown when chat tokens were added); adapters
    on its projections with --train.lora_rank R (gpt/lora.py), the rest frozen, and held in bf16 when the
    run's precision is bf16 (store_base)."""
    if not init_from or prepared.checkpoint is not None:  # a resumed run has its own weights
        model = GPT(cfg.model)
    else:
        model = GPT(dataclasses.replace(cfg.model, vocab_size=prepared.base_vocab))
        load_init_weights(model, init_from)
        added = grow_embeddings(model, cfg.model.vocab_size)
        model.config = cfg.model
        log(f"init: weights from {init_from}" + (f"; {added} new token rows (chat tokens)" if added else ""))
    tr = cfg.train
    if tr.lora_rank:
        wrapped = apply_lora(model, tr.lora_rank, tr.lora_alpha, tr.lora_dropout, tr.lora_targets)
        trained = sum(p.numel() for p in trainable_parameters(model).values())
        base = ""
        if precision == "bf16":  # autocast rounds the frozen matrices to bf16 for every matmul anyway
            base = f"; the frozen base held in bf16 ({store_base(model, torch.bfloat16) / 2**20:.1f} MiB freed)"
        log(f"lora: rank {tr.lora_rank} adapters on {len(wrapped)} projections, {trained:,} trainable "
            f"parameters ({100 * trained / model.num_params():.2f}% of the model){base}")
    return model


def batch_source(cfg: Config, prepared: Prepared, per_rank: int, dist: Dist, device: torch.device) -> BatchSource:
    """Random text windows, conversations packed anew each epoch, or both mixed by data.chat_weight."""
    sources = []
    if prepared.data is not None:
        sources.append(Batches(prepared.data.train, cfg.model.block_size, per_rank, cfg.train.seed, dist.rank,
                               dist.world_size, device))
    if prepared.chat_train:
        sources.append(ConversationBatches(prepared.chat_train, cfg.model.block_size, prepared.tokenizer.eot_id,
                                           per_rank, cfg.train.seed, dist.rank, dist.world_size, device))
    if len(sources) == 1:
        return sources[0]
    return MixedBatches(sources, text_and_chat_weights(cfg, 0.0, prepared.chat_cap), cfg.train.seed)


def text_and_chat_weights(cfg: Config, progress: float, cap: float = 1.0) -> list[float]:
    """The shares of text and of conversations in a batch at `progress` (0 to 1) through the run:
    data.chat_weight, and data.chat_weight_decay once the lr decays, if set; at most `cap` (chat_share_cap)."""
    d, decaying = cfg.data, progress >= 1.0 - cfg.train.decay_fraction
    chat = min(d.chat_weight_decay if decaying and d.chat_weight_decay >= 0 else d.chat_weight, cap)
    return [1.0 - chat, chat]


def mix_line(cfg: Config, cap: float = 1.0) -> str:
    """The conversations' share of each batch, as the start-up line says it."""
    before, after = text_and_chat_weights(cfg, 0.0, cap)[1], text_and_chat_weights(cfg, 1.0, cap)[1]
    capped = cap < max(cfg.data.chat_weight, cfg.data.chat_weight_decay)
    share = lambda x: f"{x:.0%}" if x >= 0.095 else f"{x:.1%}"  # noqa: E731
    return (f" at {share(before)} of each batch" + (f", {share(after)} while the lr decays" if after != before else "")
            + (f" (capped: each seen at most {MAX_CHAT_REPEATS}x as often as the text)" if capped else ""))


def prepare_only(cfg: Config, run_dir: Path, progress: bool = False) -> TokenData:
    """`gpt prepare`: the tokenizer and the token cache, under the run's lock; a new run records its config."""
    lock = RunLock(run_dir).acquire()
    try:
        prepared = prepare_run(cfg, run_dir, Dist(), progress=progress)
        if prepared.data is None:
            raise SetupError("gpt prepare tokenizes text; conversation files are read when training starts")
        check_sizes(prepared.data, cfg.model.block_size)
        if prepared.checkpoint is None:  # a trained run keeps its files
            commit_run(run_dir, cfg, prepared, fresh=False)
    finally:
        lock.release()
    return prepared.data
