"""Fast generation: the one-token decode step written for inference only.

``GPT.forward`` serves training, evaluation and prefill, so each call builds what any of them may need:
an offset causal mask, sliced position tables, dropout modules, a KV cache looked up on each layer.
For one new token none of that is needed, and at batch 1 on a CPU the cost of a token is mostly
Python and dispatch overhead, not arithmetic. ``decode_step`` is the same math in fewer ops: the new
token's key and value are written into the static cache, its query attends to positions 0..pos, and
only the last position reaches the LM head. The prompt still goes through ``GPT.forward`` (``prefill``):
one call, whatever its length. ``decode_stream`` yields exactly what ``gpt.sampling.generate_stream``
yields, sliding window included.

Measured (benchmarks/README.md): ``torch.compile`` of ``decode_block`` takes 6-40 s for 1.5-2x per token on
a small model, so only a long-lived ``gpt serve --compile`` pays it (``forward`` below), never a short answer;
bf16 weights (matrix-vector products are no faster than fp32 here) and bf16 autocast (a cast of every weight
at every token: slower than fp32) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import torch

from gpt.config import SampleConfig
from gpt.model import GPT, MLP, CausalSelfAttention, activation, cached_attention
from gpt.runtime import resolve_precision
from gpt.sampling import Constraint, generate_stream

Rope = tuple[torch.Tensor, torch.Tensor] | None
Cache = list[tuple[torch.Tensor, torch.Tensor]]  # (keys, values) per layer, each (B, nkv, block_size, hs)
Forward = Callable[[GPT, Cache, torch.Tensor, int], torch.Tensor]  # decode_block's signature


def attend(attn: CausalSelfAttention, x: torch.Tensor, rope: Rope, keys: torch.Tensor, values: torch.Tensor,
           pos: int) -> torch.Tensor:
    """Self-attention for T new positions pos..pos+T-1: x (B, T, C) -> (B, T, C), their keys and values cached.

    Each new position attends to the cache up to itself: no mask for one position, a causal one for several.
    """
    B, T, C = x.shape
    nh, nkv = attn.n_head, attn.n_kv_head
    qkv = attn.c_attn(x).view(B, T, nh + 2 * nkv, attn.head_size)
    qk = attn.norm_and_rotate(qkv[:, :, :nh + nkv], rope).transpose(1, 2)
    q, k = qk.split([nh, nkv], dim=1)  # (B, nh, T, hs), (B, nkv, T, hs)
    v = qkv[:, :, nh + nkv:].transpose(1, 2)  # (B, nkv, T, hs)
    keys[:, :, pos:pos + T] = k
    values[:, :, pos:pos + T] = v
    mask = None if T == 1 else torch.ones(T, pos + T, dtype=torch.bool, device=x.device).tril(pos)
    y = cached_attention(q, keys[:, :, :pos + T], values[:, :, :pos + T], mask)  # (B, nh, T, hs)
    # with T = 1, (B, nh, 1, hs) is already laid out as (B, 1, C): the transpose and reshape are views
    return attn.c_proj(y.transpose(1, 2).reshape(B, T, C))


def mlp_one(mlp: MLP, x: torch.Tensor) -> torch.Tensor:
    """The MLP without its dropout module (identity at inference)."""
    return mlp.c_proj(activation(mlp.c_fc(x), mlp.kind))


def decode_block(model: GPT, cache: Cache, tokens: torch.Tensor, pos: int) -> torch.Tensor:
    """Tokens (B, T) at positions pos..pos+T-1 through the cache -> the logits after each (B, T, vocab).

    T = 1 is a decode step; several tokens at once check a draft (gpt/speculate.py).
    """
    T = tokens.size(1)
    x = model.wte(tokens)  # (B, T, C)
    rope = None
    if model.wpe is not None:
        x = x + model.wpe.weight[pos:pos + T]
    else:
        rope = model.rope_cos[pos:pos + T], model.rope_sin[pos:pos + T]  # (T, hs): one row per position
    for block, (keys, values) in zip(model.h, cache):
        x = x + attend(block.attn, block.ln_1(x), rope, keys, values, pos)
        x = x + mlp_one(block.mlp, block.ln_2(x))
    return model.lm_head(model.ln_f(x))


def decode_step(model: GPT, cache: Cache, token: torch.Tensor, pos: int,
                forward: Forward = decode_block) -> torch.Tensor:
    """One token (B, 1) at position pos through the cache (by `forward`) -> its logits (B, vocab)."""
    return forward(model, cache, token, pos)[:, 0]


def prefill(model: GPT, idx: torch.Tensor) -> tuple[torch.Tensor, Cache]:
    """Read a prompt (B, T) through GPT.forward into a fresh static cache: the last logits (B, vocab), the cache."""
    model.setup_cache(idx.size(0))
    try:
        logits = model(idx, pos=0)[0][:, -1, :]
        return logits, [(b.attn.cache.k, b.attn.cache.v) for b in model.h]
    finally:
        model.clear_cache()


@torch.inference_mode()
def decode_stream(model: GPT, idx: torch.Tensor, opts: SampleConfig, generator: torch.Generator | None = None,
                  constraint: Constraint | None = None, forward: Forward = decode_block) -> Iterator[torch.Tensor]:
    """Yield (B, 1) next tokens exactly as ``gpt.sampling.generate_stream`` does, one ``forward`` a token
    (decode_block, or a compiled decode_block)."""
    yield from generate_stream(model, idx, opts, generator, read=prefill, step=partial(decode_step, forward=forward),
                               constraint=constraint)


def fast_generate(model: GPT, idx: torch.Tensor, opts: SampleConfig,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """idx (B, T) -> (B, T + max_new_tokens), the same tokens as ``gpt.sampling.generate``, faster."""
    return torch.cat([idx, *decode_stream(model, idx, opts, generator)], dim=1)


def generation_precision(name: str, device: torch.device) -> str:
    """The precision to generate in: 'auto' is fp32, on a CPU or a GPU.

    One token at a time, bf16 autocast casts every weight again at every token. That made generation
    1.1-2.3x slower than fp32 on a CPU, and 1.2-1.4x slower on an H200 at batch 1, where a step is bound by
    its kernel launches; bf16 weights were no faster than fp32 on either (benchmarks/README.md).
    """
    return "fp32" if name == "auto" else resolve_precision(name, device)
