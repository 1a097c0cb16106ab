"""Fast generation: the one-token decode step written for inference only.

``GPT.forward`` serves training, evaluation and prefill, so each call builds what any of them may need:
an offset causal mask, sliced position tables, dropout modules, a KV cache looked up on each layer.
For one new token none of that is needed, and at batch 1 on a CPU the cost of a token is mostly
Python and dispatch overhead, not arithmetic. ``decode_step`` is the same math in fewer ops: the new
token's key and value are written into the static cache, its query attends to positions 0..pos, and
only the last position reaches the LM head. The prompt still goes through ``GPT.forward`` (``prefill``):
one call, whatever its length. ``decode_stream`` yields exactly what ``gpt.sampling.generate_stream``
yields, sliding window included.

Measured and left out (benchmarks/README.md): ``torch.compile`` of the step (an 18-42 s compile on a CPU
for at most ~1.3x per token, so it never pays for a short answer), bf16 weights (matrix-vector products
are no faster than fp32 here) and bf16 autocast (a cast of every weight at every token: slower than fp32).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from gpt.config import SampleConfig
from gpt.model import GPT, MLP, CausalSelfAttention, activation
from gpt.runtime import resolve_precision
from gpt.sampling import Constraint, generate_stream

Rope = tuple[torch.Tensor, torch.Tensor] | None
Cache = list[tuple[torch.Tensor, torch.Tensor]]  # (keys, values) per layer, each (B, nkv, block_size, hs)


def attend_one(attn: CausalSelfAttention, x: torch.Tensor, rope: Rope, keys: torch.Tensor,
               values: torch.Tensor, pos: int) -> torch.Tensor:
    """Self-attention for one new position: x (B, 1, C) -> (B, 1, C), its key and value cached at pos."""
    B, _, C = x.shape
    nh, nkv = attn.n_head, attn.n_kv_head
    # with T = 1, (B, 1, heads, hs) transposed to (B, heads, 1, hs) is the (B, heads, T, hs) layout, for free
    qkv = attn.c_attn(x).view(B, 1, nh + 2 * nkv, attn.head_size)
    qk = attn.norm_and_rotate(qkv[:, :, :nh + nkv], rope).transpose(1, 2)
    q, k = qk.split([nh, nkv], dim=1)  # (B, nh, 1, hs), (B, nkv, 1, hs)
    v = qkv[:, :, nh + nkv:].transpose(1, 2)  # (B, nkv, 1, hs)
    keys[:, :, pos:pos + 1] = k
    values[:, :, pos:pos + 1] = v
    y = F.scaled_dot_product_attention(q, keys[:, :, :pos + 1], values[:, :, :pos + 1], enable_gqa=nkv != nh)
    return attn.c_proj(y.view(B, 1, C))  # (B, nh, 1, hs) is already laid out as (B, 1, C)


def mlp_one(mlp: MLP, x: torch.Tensor) -> torch.Tensor:
    """The MLP without its dropout module (identity at inference)."""
    return mlp.c_proj(activation(mlp.c_fc(x), mlp.kind))


def decode_step(model: GPT, cache: Cache, token: torch.Tensor, pos: int) -> torch.Tensor:
    """One token (B, 1) at position pos through the cache -> its logits (B, vocab)."""
    x = model.wte(token)  # (B, 1, C)
    rope = None
    if model.wpe is not None:
        x = x + model.wpe.weight[pos]
    else:
        rope = model.rope_cos[pos:pos + 1], model.rope_sin[pos:pos + 1]  # (1, hs): the position's row
    for block, (keys, values) in zip(model.h, cache):
        x = x + attend_one(block.attn, block.ln_1(x), rope, keys, values, pos)
        x = x + mlp_one(block.mlp, block.ln_2(x))
    return model.lm_head(model.ln_f(x))[:, 0]


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
                  constraint: Constraint | None = None) -> Iterator[torch.Tensor]:
    """Yield (B, 1) next tokens exactly as ``gpt.sampling.generate_stream`` does, through ``decode_step``."""
    yield from generate_stream(model, idx, opts, generator, read=prefill, step=decode_step, constraint=constraint)


def fast_generate(model: GPT, idx: torch.Tensor, opts: SampleConfig,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """idx (B, T) -> (B, T + max_new_tokens), the same tokens as ``gpt.sampling.generate``, faster."""
    return torch.cat([idx, *decode_stream(model, idx, opts, generator)], dim=1)


def generation_precision(name: str, device: torch.device) -> str:
    """The precision to generate in: 'auto' is fp32 on a CPU, whatever its bf16 support.

    One token at a time, bf16 autocast casts every weight again at every token, which made generation
    1.1-2.3x slower than fp32 here, and bf16 weights were no faster than fp32 (benchmarks/README.md).
    """
    if name == "auto" and device.type == "cpu":
        return "fp32"
    return resolve_precision(name, device)
