"""The LM head and the cross-entropy in one step, in row chunks, so the (rows, vocab) logits never exist whole.

For a vocabulary of 50,257 tokens and a batch of 4 x 256, the plain path (logits = x W^T, then
F.cross_entropy on their fp32 copy) keeps three (1024, 50257) tensors alive until the backward: the
logits in the autocast dtype, their fp32 copy and the log-softmax that cross_entropy saves, half a
gigabyte. Yet the loss needs only one number per row, and its gradient has a closed form:

    loss_i = logsumexp(z_i) - z_i[t_i],      dloss_i/dz_i = softmax(z_i) - onehot(t_i),      z_i = W x_i

so ``linear_cross_entropy`` (the "fused linear cross-entropy" of Liger-Kernel) walks over the rows a chunk
at a time and, for each chunk, computes the logits, the summed loss, and at once the gradients with respect
to the hidden states (g W) and to the head weight (g^T x). The chunk's logits are then dropped. The backward
only scales the stored gradients by the incoming one: nothing is recomputed and no logits are stored.
Rows whose target is ``IGNORE_INDEX`` add nothing to the loss or the gradients. A frozen head (LoRA) gets no
weight gradient, which also skips a third of the head's matmuls.

The matmuls run in the autocast dtype when autocast is on (as the plain path's head does), the softmax and
the loss in fp32. The weight gradient is summed over the chunks in place (addmm_) in the matmul dtype, as the
plain path's one matmul returns it: under bf16 one rounding per chunk instead of one in all, and no
(vocab, C) temporary per chunk (a separate fp32 sum made a 6-chunk GPT-2 step measurably slower).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = -1  # a target the loss skips (gpt.model re-exports it)


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of (x W^T) against targets; forward computes the gradients too (module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype,
                rows: int, need_x: bool, need_w: bool) -> torch.Tensor:
        # Few kernels per chunk: per-row results go into (N, 1) columns with out=, the loss is summed once.
        n, device = x.size(0), x.device
        with torch.autocast(device.type, enabled=False):
            w, xd = weight.to(dtype), x.to(dtype)
            keep = (targets != IGNORE_INDEX)[:, None].float()  # (N, 1): 0 on ignored rows
            t = targets.clamp(min=0)[:, None]  # (N, 1); an ignored row points at token 0, weighted 0
            picked, top, sums = (torch.empty(n, 1, dtype=torch.float32, device=device) for _ in range(3))
            grad_x = torch.empty_like(xd) if need_x else None
            grad_w = torch.zeros(weight.shape, dtype=dtype, device=device) if need_w else None
            for a in range(0, n, rows):
                b = min(a + rows, n)
                z = (xd[a:b] @ w.t()).float()  # (rows, vocab): the only logits alive, one chunk's
                torch.gather(z, 1, t[a:b], out=picked[a:b])
                torch.amax(z, dim=1, keepdim=True, out=top[a:b])
                e = z.sub_(top[a:b]).exp_()  # exp(z - max) in z's memory: one exp pass for loss and gradient
                torch.sum(e, dim=1, keepdim=True, out=sums[a:b])
                if grad_x is None and grad_w is None:
                    continue
                g = e.mul_(keep[a:b] / sums[a:b])  # softmax, zero on ignored rows
                g = g.scatter_add_(1, t[a:b], -keep[a:b]).to(dtype)  # - onehot(t): dloss/dz
                if grad_x is not None:
                    torch.mm(g, w, out=grad_x[a:b])
                if grad_w is not None:
                    grad_w.addmm_(g.t(), xd[a:b])  # no (vocab, C) temporary per chunk
            total = (sums.log_().add_(top).sub_(picked) * keep).sum()  # sum of logsumexp(z) - z[t]
        ctx.grads = grad_x, grad_w, x.dtype, weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        if ctx.grads is None:
            raise RuntimeError("linear_cross_entropy: the gradients were already used; backward through it once")
        grad_x, grad_w, x_dtype, w_dtype = ctx.grads
        ctx.grads = None  # scaled in place below, and freed with the graph
        grad_x = grad_x.to(x_dtype).mul_(grad_out) if grad_x is not None else None
        grad_w = grad_w.to(w_dtype).mul_(grad_out) if grad_w is not None else None
        return grad_x, grad_w, None, None, None, None, None


def linear_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, reduction: str = "mean",
                         chunks: int = 1) -> torch.Tensor:
    """F.cross_entropy(x @ weight.T, targets, ignore_index=IGNORE_INDEX, reduction) without the whole logits.

    x is (..., C) hidden states, weight the (vocab, C) head, targets (...) token ids, split into `chunks`
    row chunks of (nearly) equal size. "mean" divides the sum by the count of scored targets, as
    F.cross_entropy does (nan when there are none), "sum" does not. Under autocast the matmuls take
    autocast's dtype; the result is fp32.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
    x, targets = x.reshape(-1, x.size(-1)), targets.reshape(-1)
    device = x.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
    grad = torch.is_grad_enabled()
    rows = max(1, math.ceil(x.size(0) / max(1, chunks)))
    total = _LinearCrossEntropy.apply(x, weight, targets, dtype, rows, grad and x.requires_grad,
                                      grad and weight.requires_grad)
    if reduction == "sum":
        return total
    return total / (targets != IGNORE_INDEX).sum()


def plain_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The reference: cross-entropy of whole logits (..., vocab), in fp32."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction=reduction)
