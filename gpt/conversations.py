"""Conversations for fine-tuning: read JSONL, pack rendered conversations into windows, and batch them.

Each JSONL line is one conversation, in any of three shapes (detected per line):
``{"messages": [{"role": ..., "content": ...}, ...]}`` (OpenAI style), ``{"prompt": ..., "completion": ...}``
or ``{"question": ..., "answer": ...}`` (the last two may carry a ``"system"`` string).
``pack`` lays whole conversations into windows of block_size + 1 tokens, best fit decreasing, with
targets of ``IGNORE_INDEX`` (ignored by the loss) outside assistant turns and in the padding. ``PackedBatches``
and ``MixedBatches`` are batch sources, like ``gpt.batches.Batches``.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gpt.batches import to_device
from gpt.bpe import Tokenizer
from gpt.chat import ChatError, check_messages, render
from gpt.files import jsonl_lines, uncompressed_name
from gpt.model import IGNORE_INDEX

SHAPES = (("messages",), ("prompt", "completion"), ("question", "answer"))


def _to_messages(record: object) -> list[dict]:
    """One JSON record -> checked messages, or ChatError naming what is wrong."""
    if not isinstance(record, dict):
        raise ChatError("not a JSON object")
    if "messages" in record:
        messages = record["messages"]
        if isinstance(messages, list):  # keep role and content only: extra keys (name, weight) are not rendered
            messages = [{k: m[k] for k in ("role", "content") if k in m} if isinstance(m, dict) else m
                        for m in messages]
    else:
        for question, answer in SHAPES[1:]:
            if question in record and answer in record:
                system = [{"role": "system", "content": record["system"]}] if "system" in record else []
                messages = [*system, {"role": "user", "content": record[question]},
                            {"role": "assistant", "content": record[answer]}]
                break
        else:
            raise ChatError("no 'messages', 'prompt' + 'completion' or 'question' + 'answer' fields")
    check_messages(messages)
    if not any(m["role"] == "assistant" for m in messages):
        raise ChatError("no assistant message: nothing to learn")
    return messages


def read_conversations(path: str | Path, skip_bad: bool = False) -> tuple[list[list[dict]], int]:
    """A JSONL file -> (conversations, number of bad lines skipped). A bad line raises unless skip_bad."""
    conversations, skipped = [], 0
    for n, line in jsonl_lines(path):
        try:
            conversations.append(_to_messages(json.loads(line)))
        except (json.JSONDecodeError, ChatError) as exc:
            if not skip_bad:
                reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
                raise ChatError(f"{path}:{n}: {reason}") from None
            skipped += 1
    if not conversations:
        raise ChatError(f"{path}: no conversations" + (f" ({skipped} bad lines skipped)" if skipped else ""))
    return conversations, skipped


def is_conversation_file(path: str | Path) -> bool:
    """True for a .jsonl file (compressed or not) whose first non-empty line is a conversation record (so routing is by
    content)."""
    if not uncompressed_name(path).endswith(".jsonl"):
        return False
    lines = jsonl_lines(path)
    try:
        _, first = next(lines, (0, ""))
        record = json.loads(first)
    except json.JSONDecodeError:  # also an empty file
        return False
    finally:
        lines.close()
    return isinstance(record, dict) and any(all(k in record for k in keys) for keys in SHAPES)


# ----------------------------------------------------------------------------- packing

def fits_window(ids: Sequence[int], block_size: int) -> bool:
    """Whether a rendered conversation fits one training window of block_size + 1 tokens (inputs and targets)."""
    return len(ids) <= block_size + 1


def too_long(rendered: Sequence[tuple[list[int], list[int]]], block_size: int) -> list[int]:
    """Indices of the rendered conversations that cannot fit one window of block_size + 1 tokens."""
    return [i for i, (ids, _) in enumerate(rendered) if not fits_window(ids, block_size)]


def _best_fit(lengths: list[int], capacity: int, order: Sequence[int] | None = None) -> list[list[int]]:
    """Bins of item indices: longest first (or in the given order), each into the fullest bin it fits."""
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin index), sorted
    for i in order if order is not None else sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        at = bisect.bisect_left(free, (lengths[i], -1))
        if at == len(free):
            bins.append([i])
            space, b = capacity, len(bins) - 1
        else:
            space, b = free.pop(at)
            bins[b].append(i)
        if space - lengths[i] > 0:
            bisect.insort(free, (space - lengths[i], b))
    return bins


def pack(rendered: Sequence[tuple[list[int], list[int]]], block_size: int, pad_id: int,
         skip_long: bool = False, names: Sequence[str] | None = None,
         order: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rendered (ids, mask) pairs -> (inputs, targets), int64 arrays of shape (windows, block_size).

    A window holds whole conversations, padded with pad_id: inputs = window[:-1], targets = window[1:]
    where the mask is 1, IGNORE_INDEX elsewhere. A conversation longer than the window raises a
    ChatError unless skip_long (count those with too_long). names, if given, name them in the error.
    order, if given, places the conversations in that order (a permutation of their indices) instead of
    longest first: a new order each epoch gives each conversation new neighbours and offsets.
    """
    width = block_size + 1
    long = too_long(rendered, block_size)
    if long and not skip_long:
        i = long[0]
        name = names[i] if names else f"conversation {i + 1}"
        raise ChatError(f"{name} has {len(rendered[i][0])} tokens, more than block_size + 1 = {width} "
                        f"({len(long)} such); raise the model's block_size or skip them")
    keep = [i for i in range(len(rendered)) if len(rendered[i][0]) <= width]
    if not keep:
        raise ChatError("no conversations to pack" + (f" (all {len(long)} longer than the window)" if long else ""))
    position = {i: k for k, i in enumerate(keep)}
    placed = [position[i] for i in order if i in position] if order is not None else None
    bins = _best_fit([len(rendered[i][0]) for i in keep], width, placed)
    tokens = np.full((len(bins), width), pad_id, dtype=np.int64)
    targets = np.full((len(bins), width), IGNORE_INDEX, dtype=np.int64)
    for row, members in enumerate(bins):
        at = 0
        for k in sorted(members):  # in reading order inside a window: easier to inspect
            ids, mask = rendered[keep[k]]
            tokens[row, at:at + len(ids)] = ids
            targets[row, at:at + len(ids)] = np.where(np.asarray(mask, dtype=bool), ids, IGNORE_INDEX)
            at += len(ids)
    return tokens[:, :-1].copy(), targets[:, 1:].copy()


def read_rendered(files: Sequence[str | Path], tokenizer: Tokenizer,
                  skip_bad: bool = False) -> tuple[list[tuple[list[int], list[int]]], list[str], int]:
    """Every conversation of the files rendered as (ids, mask), with a name for each and the bad records skipped."""
    rendered, names, bad = [], [], 0
    for path in files:
        conversations, skipped = read_conversations(path, skip_bad)
        bad += skipped
        rendered += [render(tokenizer, c) for c in conversations]
        names += [f"{path} conversation {k}" for k in range(1, len(conversations) + 1)]
    return rendered, names, bad


def pack_files(files: Sequence[str | Path], tokenizer: Tokenizer, block_size: int, skip_bad: bool = False,
               skip_long: bool = False, log=print) -> tuple[np.ndarray, np.ndarray]:
    """Conversation JSONL files -> packed (inputs, targets): read, render, pack, and report what was skipped."""
    rendered, names, bad = read_rendered(files, tokenizer, skip_bad)
    inputs, targets = pack(rendered, block_size, tokenizer.eot_id, skip_long, names)
    long = len(too_long(rendered, block_size))
    log(f"conversations: {len(rendered) - long:,} in {len(inputs):,} windows of {block_size + 1} tokens, "
        f"{(targets != IGNORE_INDEX).mean():.0%} of positions trained"
        + (f"; skipped {bad} bad lines" if bad else "") + (f"; skipped {long} too long" if long else ""))
    return inputs, targets


# ----------------------------------------------------------------------------- batch sources

class PackedBatches:
    """Batches of packed windows, epoch by epoch in a seeded order: every window once per epoch.

    Like gpt.batches.Batches, all ranks walk the same global order and each takes its own slice of every
    global batch. The state is (epoch, position): the order of an epoch is recomputed from the seed.
    """

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, device: str | torch.device = "cpu"):
        if inputs.shape != targets.shape or inputs.ndim != 2 or len(inputs) == 0:
            raise ValueError(f"inputs {inputs.shape} and targets {targets.shape} must be the same (N, T), N > 0")
        self.inputs, self.targets = torch.from_numpy(inputs), torch.from_numpy(targets)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.device = torch.device(device)
        self.epoch, self.pos = 0, 0
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.inputs), generator=generator)

    def _take(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The next n windows of the global order, crossing into the next epoch (and its packing) as needed."""
        xs, ys = [], []
        while n > 0:
            if self.pos == len(self._order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._epoch_order(self.epoch)
            chunk = self._order[self.pos:self.pos + n]
            xs.append(self.inputs[chunk])
            ys.append(self.targets[chunk])
            self.pos += len(chunk)
            n -= len(chunk)
        return torch.cat(xs), torch.cat(ys)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._take(self.batch_size * self.world_size)
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        return to_device(x[mine], self.device), to_device(y[mine], self.device)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "windows": len(self.inputs)}

    def load_state_dict(self, state: dict) -> None:
        if state["windows"] != len(self.inputs):
            raise ChatError(f"the saved batch position is for {state['windows']} packed windows, the data now has "
                            f"{len(self.inputs)}: the conversations or block_size changed since the checkpoint")
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._order = self._epoch_order(self.epoch)


class MixedBatches:
    """One batch from several sources in fixed proportions, e.g. plain text and conversations together.

    Each step gives every source the rows it is most behind on (weight x rows so far, minus rows given),
    so the proportions hold exactly in the long run and to within one row in any step; no randomness is
    needed for that. Rows a source produced but a step did not use wait for the next step. The seed
    shuffles the rows of each batch, so a batch split into micro-batches mixes the sources in each.
    """

    def __init__(self, sources: list, weights: list[float], seed: int = 0, batch_size: int | None = None):
        if len(sources) != len(weights) or not sources or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("give one non-negative weight per source, not all zero")
        self.sources, self.seed = sources, seed
        self.weights = [w / sum(weights) for w in weights]
        self.batch_size = batch_size or sources[0].batch_size
        self.step, self.given = 0, [0] * len(sources)
        self._pending: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(sources)
        self.anchor_rows, self.anchor_target = 0, [0.0] * len(sources)  # where the current weights took over

    def _target(self, rows: int) -> list[float]:
        """Each source's share of the first `rows` rows: what it had when the weights last changed, plus its
        weight's share of the rows since."""
        return [t + w * (rows - self.anchor_rows) for t, w in zip(self.anchor_target, self.weights)]

    def reweigh(self, weights: list[float]) -> None:
        """New proportions from the next batch on; the rows already given stay as they were."""
        weights = [w / sum(weights) for w in weights]
        if weights != self.weights:
            rows = self.step * self.batch_size
            self.anchor_rows, self.anchor_target = rows, self._target(rows)
            self.weights = weights

    def _counts(self) -> list[int]:
        counts = [0] * len(self.sources)
        behind = [t - g for t, g in zip(self._target((self.step + 1) * self.batch_size), self.given)]
        for _ in range(self.batch_size):
            s = max(range(len(behind)), key=lambda i: (behind[i], -i))
            counts[s] += 1
            behind[s] -= 1
        return counts

    def _rows(self, s: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._pending[s] or self.sources[s].next()
        while len(x) < n:
            more_x, more_y = self.sources[s].next()
            x, y = torch.cat([x.to(more_x.device), more_x]), torch.cat([y.to(more_y.device), more_y])
        self._pending[s] = (x[n:], y[n:]) if len(x) > n else None
        return x[:n], y[:n]

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        counts = self._counts()
        parts = [self._rows(s, n) for s, n in enumerate(counts) if n]
        self.given = [g + n for g, n in zip(self.given, counts)]
        x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.step))
        self.step += 1
        return x[order.to(x.device)], y[order.to(y.device)]

    def state_dict(self) -> dict:
        pending = [None if p is None else (p[0].cpu(), p[1].cpu()) for p in self._pending]
        return {"step": self.step, "given": list(self.given), "pending": pending,
                "sources": [src.state_dict() for src in self.sources], "weights": list(self.weights),
                "anchor": [self.anchor_rows, list(self.anchor_target)]}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.given = state["step"], list(state["given"])
        if "anchor" in state:  # checkpoints before reweigh() kept one set of weights for the whole run
            self.weights, (self.anchor_rows, self.anchor_target) = list(state["weights"]), state["anchor"]
        self._pending = []
        for src, sub, pending in zip(self.sources, state["sources"], state["pending"]):
            src.load_state_dict(sub)
            device = getattr(src, "device", "cpu")  # rows kept from before go where the source's rows go
            self._pending.append(None if pending is None else (pending[0].to(device), pending[1].to(device)))


class ConversationBatches(PackedBatches):
    """PackedBatches over conversations packed anew every epoch, in a seeded random order.

    With a fixed packing a small set is memorised by where each conversation sits and what precedes it
    in its window; asked alone, the model then misses answers. Repacking moves every conversation to new
    neighbours and offsets each epoch, so the answer can only depend on the conversation itself.
    """

    def __init__(self, rendered: Sequence[tuple[list[int], list[int]]], block_size: int, pad_id: int,
                 batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 device: str | torch.device = "cpu"):
        self.rendered, self.block_size, self.pad_id = list(rendered), block_size, pad_id
        super().__init__(*pack(self.rendered, block_size, pad_id), batch_size, seed, rank, world_size, device)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        shuffle = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + 7919)
        order = torch.randperm(len(self.rendered), generator=shuffle).tolist()
        inputs, targets = pack(self.rendered, self.block_size, self.pad_id, order=order)
        self.inputs, self.targets = torch.from_numpy(inputs), torch.from_numpy(targets)
        return super()._epoch_order(epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "conversations": len(self.rendered)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("conversations") != len(self.rendered):
            raise ChatError(f"the saved batch position is for {state.get('conversations')} conversations, the data "
                            f"now has {len(self.rendered)}: the conversations changed since the checkpoint")
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._order = self._epoch_order(self.epoch)


def eval_batches(rendered: Sequence[tuple[list[int], list[int]]], block_size: int, pad_id: int, batch_size: int,
                 rank: int = 0, world_size: int = 1):
    """Held-out conversations, packed once, as (x, y) batches; rank r takes batches r, r + world_size, ..."""
    inputs, targets = (torch.from_numpy(a) for a in pack(rendered, block_size, pad_id))
    for start in range(rank * batch_size, len(inputs), batch_size * world_size):
        yield inputs[start:start + batch_size], targets[start:start + batch_size]


def conversation_texts(files: Sequence[str | Path], skip_bad: bool = False):
    """Every message's content, for training a tokenizer on conversations."""
    for path in files:
        for conversation in read_conversations(path, skip_bad)[0]:
            yield from (m["content"] for m in conversation)
