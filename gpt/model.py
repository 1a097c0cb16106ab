"""The GPT model in one file: embeddings, pre-norm transformer blocks, LM head, and a static KV cache.

Variants are chosen by ModelConfig, not by copies of the model: learned or rotary positions, LayerNorm
or RMSNorm, GELU / ReLU^2 / SwiGLU MLPs, grouped-query attention, QK-norm, biases (everywhere, or on the
q/k/v projection only, as Qwen2), tied embeddings. With the gpt2 preset the weights map one-to-one onto
Hugging Face GPT2LMHeadModel, with the llama preset onto LlamaForCausalLM, and with qkv_bias added onto
Qwen2ForCausalLM (see gpt/hf.py). Shapes: B batch, T time, C n_embd, nh heads, hs head size.
Sampling lives in gpt/sampling.py. This module must not read files or know about tokenizers.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from gpt.config import ModelConfig
from gpt.linear_loss import IGNORE_INDEX, linear_cross_entropy, plain_cross_entropy

# IGNORE_INDEX (-1), imported from there: a target the loss skips (padding, tokens outside a loss mask)


def mlp_hidden(cfg: ModelConfig) -> int:
    """Hidden width: 4C for GELU/ReLU^2; Llama's 2/3 * 4C rounded up to a multiple of 64 for SwiGLU."""
    if cfg.mlp_hidden:
        return cfg.mlp_hidden
    if cfg.mlp == "swiglu":
        return 64 * math.ceil(int(8 * cfg.n_embd / 3) / 64)
    return 4 * cfg.n_embd


def apply_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """F.dropout (training mode), with a mask that is cheap to draw on a CPU.

    One Bernoulli draw per element is most of dropout's cost on a CPU (benchmarks/README.md). Here each
    element gets 16 random bits instead, four to one 64-bit draw, and is dropped when they fall below
    p * 65536: the same rule with p rounded to 1/65536. Elsewhere F.dropout's fused kernel is faster.
    """
    if x.device.type != "cpu" or p == 0.0:
        return F.dropout(x, p) if p else x
    n = x.numel()
    bits = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)  # uniform over all 64 bits
    drop = bits.view(torch.int16)[:n].view(x.shape) < round(p * 65536) - 2**15
    return (x * (1.0 / (1.0 - p))).masked_fill(drop, 0.0)


class Dropout(nn.Module):
    """nn.Dropout through apply_dropout() above: identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_dropout(x, self.p) if self.training else x


# fp32 logits of a batch from which training's loss is computed in chunks: from there the chunked loss is also
# faster on a CPU (the whole logits no longer stay in cache; benchmarks/README.md)
FUSED_LOSS_MIN_BYTES = 8 * 2**20
# Logits of a batch (rows x vocab) from which the chunked loss runs outside a compiled graph: inductor indexed
# its fused kernels with 32-bit integers and one read out of bounds (an illegal memory access on an H100 for
# GPT-2 small at 64 x 1024 rows; benchmarks/README.md). Below this, compiled, its pointwise passes fuse.
COMPILED_LOSS_MAX_ELEMENTS = 2**31


class RMSNormFunction(torch.autograd.Function):
    """x / rms(x) * weight over the last dim, computed in fp32 and returned in x's dtype, with a backward of seven
    passes over x: autograd's chain through F.rms_norm's pieces makes about three times as many on a CPU
    (benchmarks/README.md). weight may have more dims than one (qk-norm's gains per head): it broadcasts."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            xf = x.to(torch.promote_types(x.dtype, torch.float32))
            r = torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps)  # (..., 1)
            normed = xf * r
            ctx.save_for_backward(normed, r, weight)
            ctx.x_dtype = x.dtype
            return (normed * weight.to(xf.dtype)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        normed, r, weight = ctx.saved_tensors
        with torch.autocast(grad.device.type, enabled=False):
            grad = grad.to(normed.dtype)
            g = grad * weight.to(normed.dtype)  # the gradient reaching the normalised x
            # d/dx of x * r: r (g - normed * mean(g * normed)), the mean's term from r's dependence on x
            dx = torch.addcmul(g, normed, (g * normed).mean(-1, keepdim=True), value=-1.0).mul_(r)
            dw = None
            if ctx.needs_input_grad[1]:
                dw = (grad * normed).sum(dim=tuple(range(grad.dim() - weight.dim()))).to(weight.dtype)
        return dx.to(ctx.x_dtype), dw, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim. Training on a CPU takes RMSNormFunction; decoding, and GPUs (whose rms_norm
    kernels are fused, forward and backward), take torch's own."""
    if x.device.type == "cpu" and torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return RMSNormFunction.apply(x, weight, eps)
    if weight.dim() == 1:
        return F.rms_norm(x, (x.size(-1),), weight.to(x.dtype), eps)
    return F.rms_norm(x, (x.size(-1),), eps=eps) * weight.to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def make_norm(cfg: ModelConfig, dim: int | None = None) -> nn.Module:
    dim = dim or cfg.n_embd
    if cfg.norm == "rmsnorm":
        return RMSNorm(dim, cfg.norm_eps)
    return nn.LayerNorm(dim, eps=cfg.norm_eps, bias=cfg.bias)


def rope_tables(head_size: int, length: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * theta^(-2i/hs), each (length, hs), in the rotate-half layout Llama uses."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_size, 2, dtype=torch.float32) / head_size))
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)  # (length, hs/2)
    angles = torch.cat([angles, angles], dim=-1)  # (length, hs)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+hs/2}) by position-dependent angles; cos and sin broadcast over x's heads."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # stay in x's dtype: bf16 under autocast
    return x * cos + rotated * sin


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head = cfg.n_head, cfg.n_kv_head or cfg.n_head
        self.head_size = cfg.n_embd // cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, (self.n_head + 2 * self.n_kv_head) * self.head_size,
                                bias=cfg.bias or cfg.qkv_bias)
        # q, k and v are separate maps stacked in one matrix: an optimizer that treats a matrix as one map splits it
        self.c_attn.row_pieces = [size * self.head_size for size in (self.n_head, self.n_kv_head, self.n_kv_head)]
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.c_proj.is_residual_proj = True
        self.q_norm = make_norm(cfg, self.head_size) if cfg.qk_norm else None
        self.k_norm = make_norm(cfg, self.head_size) if cfg.qk_norm else None
        self.dropout = cfg.dropout
        self.resid_dropout = Dropout(cfg.dropout)
        self.cache: KVCache | None = None

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None, pos: int) -> torch.Tensor:
        B, T, C = x.size()
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_size
        qkv = self.c_attn(x)  # (B, T, (nh + 2 * nkv) * hs)
        qk = self.norm_and_rotate(qkv[..., :(nh + nkv) * hs].view(B, T, nh + nkv, hs), rope)
        q, k = qk.transpose(1, 2).split([nh, nkv], dim=1)  # (B, nh, T, hs), (B, nkv, T, hs)
        v = qkv[..., (nh + nkv) * hs:].view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        dropout = self.dropout if self.training else 0.0
        if self.cache is None and q.device.type == "cpu" and q.dtype == torch.bfloat16:
            y = written_out_attention(q, k, v, dropout)  # faster than SDPA here: benchmarks/README.md
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))
        if self.cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout,
                                               enable_gqa=nkv != nh)  # (B, nh, T, hs)
        else:
            k, v = self.cache.update(pos, k, v)  # (B, nkv, pos+T, hs)
            mask = None  # queries at pos..pos+T-1 see keys 0..their own position
            if pos > 0:
                mask = torch.arange(pos + T, device=x.device) <= pos + torch.arange(T, device=x.device)[:, None]
            y = cached_attention(q, k, v, mask, causal=pos == 0 and T > 1)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def norm_and_rotate(self, qk: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """QK-norm, then rotary positions, of the queries and keys side by side: qk is (B, T, nh + nkv, hs).

        Together rather than queries, then keys: half the kernels, each over twice the data.
        """
        if isinstance(self.q_norm, RMSNorm):  # each head scaled by its own norm's gain: (nh + nkv, hs)
            gains = torch.cat([self.q_norm.weight.expand(self.n_head, -1),
                               self.k_norm.weight.expand(self.n_kv_head, -1)])
            qk = rms_norm(qk, gains, self.q_norm.eps)
        elif self.q_norm is not None:
            q, k = qk.split([self.n_head, self.n_kv_head], dim=2)
            qk = torch.cat([self.q_norm(q), self.k_norm(k)], dim=2)
        if rope is not None:
            cos, sin = rope  # (T, hs) each, one row per position
            qk = apply_rope(qk, cos[:, None], sin[:, None])
        return qk


# cuDNN's attention builds a graph for each new pair of lengths, and a cache's keys grow by a token each call:
# on a GPU in bf16 that made generation 20x slower than fp32 (benchmarks/README.md). The others build nothing.
CACHED_ATTENTION_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def cached_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                     causal: bool = False) -> torch.Tensor:
    """Queries (B, nh, T, hs) over a cache's keys and values (B, nkv, S, hs), S changing call to call."""
    with sdpa_kernel(CACHED_ATTENTION_BACKENDS) if q.is_cuda else nullcontext():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                              enable_gqa=k.size(1) != q.size(1))


def written_out_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs) + causal mask) v: what SDPA computes, as plain batched matmuls.

    Used for bf16 on CPU, where SDPA's flash kernel is slower than these three ops (benchmarks/README.md).
    q is (B, nh, T, hs); k and v are (B, nkv, T, hs) and are repeated for grouped-query attention.
    """
    T, groups = q.size(2), q.size(1) // k.size(1)
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))  # (B, nh, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    if dropout:
        att = apply_dropout(att, dropout)
    return att @ v  # (B, nh, T, hs)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.kind, hidden = cfg.mlp, mlp_hidden(cfg)
        # SwiGLU's fc holds [gate; up] stacked, so one matmul serves both
        self.c_fc = nn.Linear(cfg.n_embd, 2 * hidden if cfg.mlp == "swiglu" else hidden, bias=cfg.bias)
        self.c_fc.row_pieces = [hidden, hidden] if cfg.mlp == "swiglu" else [hidden]
        self.c_proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.c_proj.is_residual_proj = True
        self.dropout = Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)  # (B, T, hidden) or (B, T, 2 * hidden)
        return self.dropout(self.c_proj(activation(h, self.kind)))  # (B, T, C)


class ReluSquared(torch.autograd.Function):
    """relu(h)^2 whose gradient is one product, 2 relu(h) * grad: autograd's own chain (a power's backward, then
    relu's threshold backward) makes more passes over the MLP's widest activation (benchmarks/README.md)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:
        r = F.relu(h)
        ctx.save_for_backward(r)
        return r * r

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (r,) = ctx.saved_tensors
        return torch.mul(r, grad).mul_(2.0)


def activation(h: torch.Tensor, kind: str) -> torch.Tensor:
    """The MLP's non-linearity: SwiGLU on [gate; up], ReLU^2, or GPT-2's tanh GELU."""
    if kind == "swiglu":
        gate, up = h.chunk(2, dim=-1)
        return F.silu(gate) * up
    if kind == "relu2":
        return ReluSquared.apply(h) if h.requires_grad else F.relu(h).square()  # no autograd node to decode
    return F.gelu(h, approximate="tanh")


def kept_samples(batch: int, p: float, device: torch.device) -> torch.Tensor:
    """Stochastic depth's draw: the indices of the samples that keep a branch, each with probability 1 - p.
    At least one is kept, so every parameter gets a gradient (DistributedDataParallel needs that)."""
    keep = torch.nonzero(torch.rand(batch, device=device) >= p).squeeze(1)
    return keep if keep.numel() else keep.new_zeros(1)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.drop_path = cfg.drop_path

    def forward(self, x: torch.Tensor, rope, pos: int) -> torch.Tensor:
        if self.training and self.drop_path:
            return self.forward_dropping(x, rope, pos)
        x = x + self.attn(self.ln_1(x), rope, pos)
        return x + self.mlp(self.ln_2(x))

    def forward_dropping(self, x: torch.Tensor, rope, pos: int) -> torch.Tensor:
        """Stochastic depth (Huang et al. 2016): each sample skips each branch with probability drop_path, the
        kept ones are scaled by 1 / (1 - drop_path). The branches run on the kept samples only, so the
        regulariser saves compute where dropout costs it."""
        scale = 1.0 / (1.0 - self.drop_path)
        keep = kept_samples(x.size(0), self.drop_path, x.device)  # (K,)
        x = x.index_add(0, keep, self.attn(self.ln_1(x.index_select(0, keep)), rope, pos).to(x.dtype), alpha=scale)
        keep = kept_samples(x.size(0), self.drop_path, x.device)
        return x.index_add(0, keep, self.mlp(self.ln_2(x.index_select(0, keep))).to(x.dtype), alpha=scale)


class KVCache(nn.Module):
    """Preallocated keys and values for one layer: (B, nkv, max_len, hs) each, written in place."""

    def __init__(self, batch: int, n_kv_head: int, max_len: int, head_size: int, dtype, device):
        super().__init__()
        shape = (batch, n_kv_head, max_len, head_size)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, pos: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = k.size(2)
        self.k[:, :, pos:pos + T] = k
        self.v[:, :, pos:pos + T] = v
        return self.k[:, :, :pos + T], self.v[:, :, :pos + T]


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size < 1:
            raise ValueError("ModelConfig.vocab_size must be set (it is normally taken from the tokenizer)")
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.pos == "learned" else None
        self.drop = Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        if cfg.pos == "rope":
            cos, sin = rope_tables(cfg.n_embd // cfg.n_head, cfg.block_size, cfg.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's init: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer) (or zero)."""
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "is_residual_proj", False):
                std = 0.0 if self.config.zero_init_proj else 0.02 / math.sqrt(2 * self.config.n_layer)
            nn.init.normal_(module.weight, mean=0.0, std=std) if std else nn.init.zeros_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, pos: int = 0,
                reduction: str = "mean", return_logits: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """idx (B, T) -> logits (B, T, vocab) and the cross-entropy over targets != IGNORE_INDEX.

        reduction "mean" averages over the scored targets, "sum" adds them up (the trainer divides by
        the global count of targets itself). pos is the position of idx[:, 0], used with the KV cache.
        Without targets only the last position's logits are computed (B, 1, vocab): all sampling needs.
        With targets and return_logits=False the logits are None and the loss comes from
        linear_cross_entropy (gpt/linear_loss.py), which never holds the (B, T, vocab) logits at once.
        """
        B, T = idx.size()
        if pos + T > self.config.block_size:
            raise ValueError(f"sequence of {pos + T} tokens is longer than block_size {self.config.block_size}")
        stream = self.ln_f.weight.dtype  # the residual stream's; a LoRA base may hold the tables in bf16
        x = self.wte(idx).to(stream)  # (B, T, C)
        rope = None
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(pos, pos + T, device=idx.device)).to(stream)
        else:
            rope = self.rope_cos[pos:pos + T], self.rope_sin[pos:pos + T]
        x = self.drop(x)
        for block in self.h:
            x = block(x, rope, pos)
        x = self.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None  # (B, 1, vocab)
        # The fused loss only where the logits are large (a big batch or vocabulary): below that they are small
        # next to the activations, and the plain path keeps training's numerics as they were. A wrapped head
        # (LoRA) takes the plain path, and so does fp16: the fused loss sums the head's weight gradient over
        # all rows before the loss scale applies, which can overflow fp16's range.
        device = x.device.type
        fp16 = torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.float16
        logit_count = targets.numel() * self.config.vocab_size  # of the batch
        if not return_logits and logit_count * 4 >= FUSED_LOSS_MIN_BYTES and type(self.lm_head) is nn.Linear \
                and not fp16:  # fp32 logits at least FUSED_LOSS_MIN_BYTES
            loss = linear_cross_entropy
            if torch.compiler.is_compiling() and logit_count >= COMPILED_LOSS_MAX_ELEMENTS:
                loss = torch.compiler.disable(linear_cross_entropy)
            return None, loss(x, self.lm_head.weight, targets, reduction, self.loss_chunks())
        logits = self.lm_head(x)  # (B, T, vocab)
        return logits, plain_cross_entropy(logits, targets, reduction)

    def loss_chunks(self) -> int:
        """Row chunks for linear_cross_entropy: each chunk's logits (rows x vocab) no larger than the hidden
        states (rows x n_embd x n_layer) the blocks keep for the backward, so the loss is never what fills
        the memory; the count depends on the shape only (GPT-2 small: 6). More, smaller chunks cost time
        in per-chunk overhead and in summing the head's weight gradient once per chunk."""
        cfg = self.config
        return math.ceil(cfg.vocab_size / (cfg.n_embd * cfg.n_layer))

    def all_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits at every position (B, T, vocab), for tests and inspection."""
        dummy = torch.full_like(idx, IGNORE_INDEX)
        return self.forward(idx, dummy)[0]

    # ------------------------------------------------------------------ sizes
    def num_params(self, embeddings: bool = True) -> int:
        """Parameter count (tied weights once); embeddings=False leaves out the wte/wpe lookup tables."""
        n = sum(p.numel() for p in self.parameters())
        if not embeddings:
            n -= self.wte.weight.numel() if not self.config.tie_embeddings else 0
            n -= self.wpe.weight.numel() if self.wpe is not None else 0
        return n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token: 6 * N (N = matmul parameters, LM head included) + 12 * L * C * T (attention).

        The PaLM / nanoGPT estimate; forward is a third of it.
        """
        cfg = self.config
        T = seq_len or cfg.block_size
        return 6.0 * self.num_params(embeddings=False) + 12.0 * cfg.n_layer * cfg.n_embd * T

    # ------------------------------------------------------------------ generation
    def setup_cache(self, batch: int, dtype: torch.dtype | None = None) -> None:
        """Allocate a static KV cache of block_size positions for each layer."""
        p = self.wte.weight
        for block in self.h:
            a = block.attn
            a.cache = KVCache(batch, a.n_kv_head, self.config.block_size, a.head_size, dtype or p.dtype, p.device)

    def clear_cache(self) -> None:
        for block in self.h:
            block.attn.cache = None


def state_mismatch(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """The first missing, mis-shaped or unexpected tensor of a state dict against the expected one, or None."""
    for key, tensor in expected.items():
        if key not in state:
            return f"missing tensor '{key}'"
        if tuple(state[key].shape) != tuple(tensor.shape):
            return f"tensor '{key}' has shape {tuple(state[key].shape)}, the model expects {tuple(tensor.shape)}"
    extra = sorted(set(state) - set(expected))
    return f"unexpected tensor '{extra[0]}'" if extra else None
