"""Evaluation: loss and bits per byte of a model over any source of (inputs, targets) batches.

One function serves training evals, `gpt eval` and the speedrun. Targets equal to ``IGNORE_INDEX``
(padding, or tokens outside a loss mask) are not scored. Bits per byte divides the total loss in bits
by the UTF-8 bytes of the scored target tokens, so runs with different tokenizers compare fairly. In a
distributed run each process scores its own share of the batches and the sums are all-reduced.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn as nn

from gpt.model import IGNORE_INDEX
from gpt.runtime import Dist, autocast


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], byte_lengths: np.ndarray,
             device: torch.device, precision: str = "fp32", dist: Dist | None = None) -> dict[str, float]:
    """{'loss': nats per scored token, 'bpb': bits per byte, 'tokens': scored tokens, 'bytes': their bytes}."""
    lengths = torch.from_numpy(byte_lengths)
    was_training = model.training
    model.eval()
    nats = tokens = nbytes = 0.0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        with autocast(device, precision):
            _, loss_sum = model(x, y, reduction="sum", return_logits=False)
        scored = y[y != IGNORE_INDEX].cpu()
        nats += loss_sum.item()
        tokens += scored.numel()
        nbytes += lengths[scored].sum().item()
    model.train(was_training)
    if dist is not None:
        nats, tokens, nbytes = dist.sum([nats, tokens, nbytes], device)
    if tokens == 0:
        return {"loss": float("nan"), "bpb": float("nan"), "tokens": 0, "bytes": 0}
    return {"loss": nats / tokens, "bpb": nats / (math.log(2) * max(nbytes, 1.0)), "tokens": int(tokens),
            "bytes": int(nbytes)}


def held_out_loss(record: dict, chat_share: float) -> float:
    """The held-out loss that picks the weights a run keeps: the text's and the conversations' losses weighed as
    the run's last batches mix them. A run trained on both is there to write and to answer: weights that
    predict the text a little better but have not yet learnt the answers are not the better ones.
    (With conversations alone, val_loss is theirs; with text alone, there is no val_chat_loss.)"""
    return (1.0 - chat_share) * record["val_loss"] + chat_share * record.get("val_chat_loss", record["val_loss"])
