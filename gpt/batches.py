"""Batch sources: what the training step and evaluation read, one (inputs, targets) pair at a time.

A batch source has ``next() -> (x, y)``, both (B, T) int64 on the device, where y holds the token each
position must predict or ``IGNORE_INDEX`` where nothing is scored (padding, or tokens outside a loss
mask); and ``state_dict()`` / ``load_state_dict()`` so that a resumed run draws exactly the batches the
uninterrupted one would have. ``Batches`` (windows of a token stream, each token once a pass) is the
pretraining source; ``eval_windows`` covers a token stream once, for evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

from gpt.model import IGNORE_INDEX


class BatchSource(Protocol):
    def next(self) -> tuple[torch.Tensor, torch.Tensor]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


def to_device(xy: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host tensor to device; pinned and non-blocking on CUDA so the copy overlaps the previous step."""
    if device.type == "cuda":
        return xy.pin_memory().to(device, non_blocking=True)
    return xy if device.type == "cpu" else xy.to(device)


class Batches:
    """(x, y) windows of block_size + 1 tokens, each token seen once a pass; seeded and resumable.

    A pass tiles the text with windows from an offset drawn for that pass (so the windows' edges move
    from pass to pass) and takes them in a shuffled order. Windows drawn at random instead would, over
    three passes, leave about 5% of a small text unseen (e^-3) and show some of it six times or more:
    a text seen a few times is learnt better seen evenly (benchmarks/README.md). A batch that outruns a
    pass takes the rest from the next. All ranks draw the same global batch and each takes its own
    slice, so the union over ranks is exactly what one process with the global batch would see.
    """

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, device: str | torch.device = "cpu"):
        self.tokens, self.block_size, self.batch_size = tokens, block_size, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device = torch.device(device)
        self.high = len(tokens) - block_size  # windows start in [0, high)
        self.epoch, self.position = 0, 0  # the pass, and how many of its windows were taken
        self._order: np.ndarray | None = None  # the pass's shuffled starts, built when first needed

    def _pass_starts(self, epoch: int) -> np.ndarray:
        """The start of every window of pass `epoch`, shuffled: offset, offset + T, ... below high (an array,
        not a list: a large corpus has millions of windows a pass)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        offset = int(torch.randint(min(self.block_size, self.high), (1,), generator=generator))
        starts = torch.arange(offset, self.high, self.block_size)
        return starts[torch.randperm(len(starts), generator=generator)].numpy()

    def _take(self, n: int) -> np.ndarray:
        parts = []
        while n:
            if self._order is None:
                self._order = self._pass_starts(self.epoch)
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._pass_starts(self.epoch)
            parts.append(self._order[self.position:self.position + n])
            self.position += len(parts[-1])
            n -= len(parts[-1])
        return np.concatenate(parts)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = self._take(self.batch_size * self.world_size)
        mine = starts[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        window = np.stack([self.tokens[s:s + self.block_size + 1] for s in mine]).astype(np.int64)
        xy = to_device(torch.from_numpy(window), self.device)
        return xy[:, :-1], xy[:, 1:]

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        # a checkpoint of an older version (random windows: {"generator": ...}) goes on from a first pass
        self.seed = state.get("seed", self.seed)
        self.epoch, self.position = state.get("epoch", 0), state.get("position", 0)
        self._order = None


def eval_windows(tokens: np.ndarray, block_size: int, batch_size: int, max_batches: int = 0, rank: int = 0,
                 world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping windows scoring every token of `tokens` once (the first max_batches batches, if set).

    Rank r takes batches r, r + world_size, ...: together the ranks cover each window exactly once.
    The last window is padded, its padding targets IGNORE_INDEX.
    """
    n = len(tokens) - 1
    starts = list(range(0, n, block_size))
    batches = [starts[i:i + batch_size] for i in range(0, len(starts), batch_size)]
    if max_batches:
        batches = batches[:max_batches]
    for group in batches[rank::world_size]:
        xy = np.full((len(group), block_size + 1), IGNORE_INDEX, dtype=np.int64)
        for i, start in enumerate(group):
            window = np.asarray(tokens[start:min(start + block_size, n) + 1], dtype=np.int64)
            xy[i, :len(window)] = window
        xy_t = torch.from_numpy(xy)
        yield xy_t[:, :-1].clamp_min(0), xy_t[:, 1:]
