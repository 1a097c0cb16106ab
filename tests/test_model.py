import pytest
import torch
from torch.nn.attention import SDPBackend

from gpt.config import PRESETS, ModelConfig, SampleConfig, resolve
from gpt.model import (
    CACHED_ATTENTION_BACKENDS,
    GPT,
    Block,
    Dropout,
    ReluSquared,
    RMSNormFunction,
    apply_dropout,
    rms_norm,
)
from gpt.sampling import generate, sample_next


@pytest.fixture
def fused_loss_always(monkeypatch):
    """The fused, chunked loss even for these small test batches (gpt.model uses it for large logits only)."""
    import gpt.model
    monkeypatch.setattr(gpt.model, "FUSED_LOSS_MIN_BYTES", 0)

VARIANTS = {
    "gpt2": dict(),
    "llama": dict(norm="rmsnorm", mlp="swiglu", pos="rope", bias=False, tie_embeddings=False, n_kv_head=2),
    "modern": dict(norm="rmsnorm", mlp="relu2", pos="rope", bias=False, qk_norm=True, zero_init_proj=True),
}


def small(**kw) -> ModelConfig:
    return ModelConfig(**{**dict(vocab_size=97, block_size=24, n_layer=2, n_head=4, n_embd=32), **kw})


@pytest.mark.parametrize("variant", VARIANTS)
def test_causality(variant):
    torch.manual_seed(0)
    model = GPT(small(**VARIANTS[variant])).eval()
    if variant == "modern":  # zero-init projections make every position trivially equal; perturb them
        for p in model.parameters():
            p.data += 0.02 * torch.randn_like(p)
    idx = torch.randint(0, 97, (2, 20))
    changed = idx.clone()
    changed[:, 12] = (changed[:, 12] + 1) % 97
    a, b = model.all_logits(idx), model.all_logits(changed)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:], atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_kv_cache_equals_full_forward_at_every_step(variant):
    torch.manual_seed(1)
    model = GPT(small(**VARIANTS[variant])).eval()
    for p in model.parameters():
        p.data += 0.02 * torch.randn_like(p)
    idx = torch.randint(0, 97, (3, 20))
    full = model.all_logits(idx)
    model.setup_cache(3)
    with torch.no_grad():
        out, _ = model(idx[:, :5], pos=0)  # prefill 5, then one token at a time
        assert torch.allclose(out[:, -1], full[:, 4], atol=1e-5)
        for t in range(5, 20):
            out, _ = model(idx[:, t:t + 1], pos=t)
            assert torch.allclose(out[:, -1], full[:, t], atol=1e-5), t
        # a multi-token chunk after a prefix uses the offset causal mask
        model.setup_cache(3)
        model(idx[:, :7], pos=0)
        out, _ = model(idx[:, 7:12], pos=7)
        assert torch.allclose(out[:, -1], full[:, 11], atol=1e-5)
    model.clear_cache()


def test_attention_over_a_cache_never_uses_cudnn():
    """cuDNN's attention builds a graph for each sequence length, and a cache grows a token a call: on an H200,
    bf16 generation ran 20x slower through it (benchmarks/README.md). The math itself is the test above's."""
    assert SDPBackend.CUDNN_ATTENTION not in CACHED_ATTENTION_BACKENDS
    assert SDPBackend.MATH in CACHED_ATTENTION_BACKENDS  # whatever else is refused, one backend always runs


def test_greedy_cached_generation_equals_rerun():
    torch.manual_seed(2)
    model = GPT(small()).eval()
    idx = torch.randint(0, 97, (1, 6))
    cached = generate(model, idx, SampleConfig(max_new_tokens=15, temperature=0))
    seq = idx
    for _ in range(15):  # nanoGPT's way: the whole sequence again for every token
        nxt = model.all_logits(seq)[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
    assert torch.equal(cached, seq)


def test_generation_slides_past_block_size():
    model = GPT(small(block_size=8)).eval()
    opts = SampleConfig(max_new_tokens=30, temperature=1.0, top_k=5)
    out = generate(model, torch.zeros(2, 3, dtype=torch.long), opts)
    assert out.shape == (2, 33)
    too_long = generate(model, torch.zeros(1, 20, dtype=torch.long), SampleConfig(max_new_tokens=2))  # cropped
    assert too_long.shape == (1, 22)


def test_param_count_matches_formula():
    c = small()
    V, T, C, L, H = c.vocab_size, c.block_size, c.n_embd, c.n_layer, 4 * c.n_embd
    per_layer = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * H + H) + (H * C + C)
    expected = V * C + T * C + L * per_layer + 2 * C
    model = GPT(c)
    assert model.num_params() == expected
    assert model.num_params(embeddings=False) == expected - T * C  # tied wte is also the LM head matmul
    assert model.flops_per_token() == 6 * (expected - T * C) + 12 * L * C * T


def test_swiglu_gqa_param_count():
    c = small(**VARIANTS["llama"])
    C, hs, nkv = c.n_embd, c.n_embd // c.n_head, 2
    H = 64 * -(-int(8 * C / 3) // 64)
    attn = C * (C + 2 * nkv * hs) + C * C
    mlp = C * 2 * H + H * C
    expected = 2 * c.vocab_size * C + c.n_layer * (attn + mlp + 2 * C) + C
    assert GPT(c).num_params() == expected


@pytest.mark.parametrize("preset", [p for p in PRESETS if p not in ("default",)])
def test_every_preset_learns(preset):
    cfg = resolve(preset=preset, overrides={"model.n_layer": 2, "model.n_embd": 64, "model.n_head": 4,
                                            "model.block_size": 16, "model.n_kv_head": 0 if preset != "llama" else 2})
    cfg.model.vocab_size = 50
    torch.manual_seed(0)
    model = GPT(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = torch.arange(17).repeat(8, 1) % 50  # a fixed sequence to memorise
    losses = []
    for _ in range(30):
        _, loss = model(data[:, :-1], data[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_loss_ignores_padding():
    model = GPT(small()).eval()
    idx = torch.randint(0, 97, (1, 10))
    y = torch.randint(0, 97, (1, 10))
    _, full = model(idx, y)
    y2 = y.clone()
    y2[0, 5:] = -1
    _, part = model(idx, y2)
    logits = model.all_logits(idx)
    expected = torch.nn.functional.cross_entropy(logits[0, :5], y[0, :5])
    assert torch.allclose(part, expected, atol=1e-5) and not torch.allclose(full, part)


def test_sampling_filters():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    g = torch.Generator().manual_seed(0)
    opts = SampleConfig
    assert {sample_next(logits, opts(temperature=1.0, top_k=2), generator=g).item() for _ in range(50)} <= {2, 3}
    assert {sample_next(logits, opts(temperature=1.0, top_p=0.5), generator=g).item() for _ in range(50)} == {3}
    assert sample_next(logits, opts(temperature=0.0)).item() == 3
    penalised = sample_next(logits, opts(temperature=0.0, repetition_penalty=100.0), torch.tensor([[3]]))
    assert penalised.item() == 2


def test_too_long_input_is_refused():
    with pytest.raises(ValueError, match="longer than block_size"):
        GPT(small(block_size=8))(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("n_kv", [4, 2])
def test_written_out_attention_equals_sdpa(n_kv):
    from gpt.model import written_out_attention
    torch.manual_seed(0)
    q = torch.randn(2, 4, 16, 8)
    k, v = torch.randn(2, n_kv, 16, 8), torch.randn(2, n_kv, 16, 8)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=n_kv != 4)
    assert torch.allclose(written_out_attention(q, k, v), expected, atol=1e-5)


def test_bf16_training_forward_matches_fp32():
    torch.manual_seed(0)
    model = GPT(small(**{**VARIANTS["modern"], "zero_init_proj": False}))
    idx = torch.randint(0, 97, (4, 24))
    _, fp32 = model(idx, idx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, bf16 = model(idx, idx)
    assert abs(bf16.item() - fp32.item()) / fp32.item() < 0.01


# ---------------------------------------------------------------- the chunked loss (gpt/linear_loss.py)

def loss_and_grads(model: GPT, idx, y, fused: bool, reduction: str, bf16: bool):
    """The loss and the gradients of every trainable parameter, through the plain or the chunked loss."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits, loss = model(idx, y, reduction=reduction, return_logits=not fused)
    assert (logits is None) == fused
    (loss * 0.7).backward()  # a grad_output other than 1, as the trainer's 1 / count scale
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("tied, frozen_head", [(True, False), (False, False), (False, True), (True, True)])
def test_chunked_loss_equals_plain_cross_entropy(tied, frozen_head, reduction, bf16, fused_loss_always):
    torch.manual_seed(0)
    model = GPT(small(tie_embeddings=tied, vocab_size=301))  # 301 / (32 x 2): 5 chunks of 10 rows for 48 rows
    assert model.loss_chunks() == 5
    if frozen_head:  # as under LoRA: the head (and with it a tied embedding) gets no gradient
        model.lm_head.weight.requires_grad_(False)
    idx, y = torch.randint(0, 301, (2, 24)), torch.randint(0, 301, (2, 24))
    y[0, 3:9] = -1  # ignored targets, some inside a chunk and one whole chunk's worth
    y[1, :] = torch.where(torch.arange(24) % 3 == 0, -1, y[1, :])
    loss_p, grads_p = loss_and_grads(model, idx, y, False, reduction, bf16)
    loss_f, grads_f = loss_and_grads(model, idx, y, True, reduction, bf16)
    assert loss_f.dtype == torch.float32 and grads_p.keys() == grads_f.keys()
    assert (("wte.weight" if tied else "lm_head.weight") in grads_f) != frozen_head  # tied: one name, wte's
    # fp32: the same sums in another order; bf16: the matmuls round differently, softmax and loss stay fp32
    rtol, atol = (1e-5, 1e-6) if not bf16 else (2e-3, 0.0)
    assert torch.allclose(loss_f, loss_p, rtol=rtol)
    for name, g in grads_p.items():
        err = (grads_f[name] - g).abs().max() / g.abs().max()
        assert err < (1e-5 if not bf16 else 0.03), (name, err.item())


def test_chunked_loss_of_only_ignored_targets_and_without_grad(fused_loss_always):
    from gpt.linear_loss import linear_cross_entropy
    model = GPT(small())
    idx, y = torch.randint(0, 97, (2, 8)), torch.full((2, 8), -1)
    assert torch.isnan(model(idx, y, return_logits=False)[1])  # as F.cross_entropy's mean over nothing
    assert model(idx, y, reduction="sum", return_logits=False)[1].item() == 0.0
    x, w = torch.randn(6, 4, requires_grad=True), torch.randn(9, 4, requires_grad=True)
    t = torch.randint(0, 9, (6,))
    with torch.no_grad():  # evaluation: the loss alone, no gradient work
        expected = torch.nn.functional.cross_entropy(x @ w.t(), t, reduction="sum")
        assert torch.allclose(linear_cross_entropy(x, w, t, "sum", chunks=4), expected)
    loss = linear_cross_entropy(x, w, t, chunks=2)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward through it once"):
        loss.backward()


def test_fp16_autocast_takes_the_plain_loss(monkeypatch, fused_loss_always):
    import gpt.model
    torch.manual_seed(0)
    model = GPT(small(vocab_size=301))
    idx, y = torch.randint(0, 301, (2, 24)), torch.randint(0, 301, (2, 24))

    def fused_loss(*args):
        raise AssertionError("fp16 must not take the fused loss")
    monkeypatch.setattr(gpt.model, "linear_cross_entropy", fused_loss)
    with torch.autocast("cpu", dtype=torch.float16):
        _, fused = model(idx, y, reduction="sum", return_logits=False)
        _, plain = model(idx, y, reduction="sum")
    assert torch.equal(fused, plain)
    with pytest.raises(AssertionError, match="fused loss"):  # bf16 does take it
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(idx, y, reduction="sum", return_logits=False)


def test_the_fused_loss_is_for_large_logits_only(monkeypatch):
    import gpt.model
    model = GPT(small(vocab_size=301))
    idx, y = torch.randint(0, 301, (2, 24)), torch.randint(0, 301, (2, 24))
    logits, plain = model(idx, y, return_logits=False)  # 2 x 24 x 301 fp32 logits: far below the bar
    assert logits is not None
    monkeypatch.setattr(gpt.model, "FUSED_LOSS_MIN_BYTES", 2 * 24 * 301 * 4)  # exactly at the bar: fused
    none, fused = model(idx, y, return_logits=False)
    assert none is None and torch.allclose(fused, plain, rtol=1e-5)


@pytest.mark.parametrize("p", [0.1, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cheap_dropout_is_dropout(p, dtype):
    """apply_dropout drops a share p of the elements (a binomial count), scales the rest by 1/(1-p), and its
    gradient is the same mask; the same seed gives the same mask, eval mode none at all."""
    torch.manual_seed(0)
    x = (torch.rand(64, 128, 96) + 1.0).to(dtype).requires_grad_(True)  # no zeros: a zero output means dropped
    y = apply_dropout(x, p)
    dropped = y == 0
    n = x.numel()
    assert abs(dropped.sum().item() - p * n) < 5 * (n * p * (1 - p)) ** 0.5
    for k in range(4):  # each 16-bit slice of the 64-bit draws is used: none is stuck
        share = dropped.flatten()[k::4].float().mean().item()
        assert abs(share - p) < 0.01
    torch.testing.assert_close(y[~dropped], (x * (1 / (1 - p)))[~dropped])
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.where(dropped, 0.0, 1 / (1 - p)).to(dtype))
    torch.manual_seed(0)
    torch.rand(64, 128, 96)
    assert torch.equal(apply_dropout(x.detach(), p) == 0, dropped)
    module = Dropout(p).eval()
    assert module(x) is x


@pytest.mark.parametrize("norm,n_kv", [("rmsnorm", 4), ("rmsnorm", 2), ("layernorm", 2)])
def test_queries_and_keys_normed_and_rotated_together_as_apart(norm, n_kv):
    """norm_and_rotate on (B, T, nh + nkv, hs) equals each norm and RoPE applied to queries and keys apart, in
    the (B, heads, T, hs) layout, with gains that differ between the two norms and between the channels."""
    from gpt.model import apply_rope
    torch.manual_seed(0)
    model = GPT(small(norm=norm, pos="rope", qk_norm=True, n_kv_head=n_kv))
    attn = model.h[0].attn
    with torch.no_grad():
        attn.q_norm.weight.uniform_(0.5, 1.5)
        attn.k_norm.weight.uniform_(-1.5, -0.5)
    B, T, nh, hs = 2, 10, attn.n_head, attn.head_size
    qk = torch.randn(B, T, nh + n_kv, hs)
    rope = model.rope_cos[:T], model.rope_sin[:T]
    q, k = qk.split([nh, n_kv], dim=2)
    q = apply_rope(attn.q_norm(q.transpose(1, 2)), *rope)  # (B, nh, T, hs)
    k = apply_rope(attn.k_norm(k.transpose(1, 2)), *rope)
    together = attn.norm_and_rotate(qk, rope).transpose(1, 2)  # (B, nh + nkv, T, hs)
    assert torch.allclose(together, torch.cat([q, k], dim=1), atol=1e-5)


@pytest.mark.parametrize("limit, traced", [(0, False), (2**62, True)])
def test_a_compiled_model_runs_a_large_batch_loss_outside_the_graph(monkeypatch, fused_loss_always, limit, traced):
    """Inductor's 32-bit indexing overflowed on the chunked loss of a batch with over 2**31 logits: from
    COMPILED_LOSS_MAX_ELEMENTS the loss runs eagerly between compiled pieces, with the same loss and gradients."""
    import gpt.model
    calls = []

    def spied(*args):
        calls.append(torch.compiler.is_compiling())  # True only while dynamo traces it into the graph
        return linear_cross_entropy(*args)
    from gpt.linear_loss import linear_cross_entropy
    monkeypatch.setattr(gpt.model, "linear_cross_entropy", spied)
    monkeypatch.setattr(gpt.model, "COMPILED_LOSS_MAX_ELEMENTS", limit)
    torch.manual_seed(0)
    model = GPT(small(vocab_size=301, n_layer=1))
    idx, y = torch.randint(0, 301, (2, 24)), torch.randint(0, 301, (2, 24))
    torch._dynamo.reset()
    loss_c, grads_c = loss_and_grads(torch.compile(model), idx, y, True, "sum", False)
    assert calls and all(c == traced for c in calls)
    loss_e, grads_e = loss_and_grads(model, idx, y, True, "sum", False)
    assert torch.allclose(loss_c, loss_e, rtol=1e-5)
    for name, g in grads_e.items():
        assert torch.allclose(grads_c["_orig_mod." + name], g, rtol=1e-4, atol=1e-6), name


def test_drop_path_skips_whole_branches_per_sample_in_training_only():
    """Stochastic depth: a sample either gets a branch's full output (scaled by 1/(1-p)) or none of it."""
    torch.manual_seed(0)
    p, B = 0.4, 64
    block = Block(small(drop_path=p)).train()
    x = torch.randn(B, 10, 32)
    torch.manual_seed(1)
    keep_attn, keep_mlp = torch.rand(B) >= p, torch.rand(B) >= p  # the draws forward_dropping will make
    assert 0 < keep_attn.sum() < B and 0 < keep_mlp.sum() < B
    with torch.no_grad():
        after_attn = x + keep_attn[:, None, None] * block.attn(block.ln_1(x), None, 0) / (1 - p)
        expected = after_attn + keep_mlp[:, None, None] * block.mlp(block.ln_2(after_attn)) / (1 - p)
        torch.manual_seed(1)
        assert torch.allclose(block(x, None, 0), expected, atol=1e-5)
    plain, stochastic = GPT(small()), GPT(small(drop_path=0.5))
    stochastic.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 97, (8, 16))
    assert torch.equal(plain.eval().all_logits(idx), stochastic.eval().all_logits(idx))  # eval: every block
    loss = stochastic.train()(idx, idx)[1]
    loss.backward()
    assert all(p.grad is not None for p in stochastic.parameters())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_relu_squared_has_autograds_value_and_gradient(dtype):
    h = torch.randn(4, 7, 64, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ReluSquared.apply, (h,))
    h = (3 * torch.randn(4, 7, 64)).to(dtype).requires_grad_(True)
    grad = torch.randn(4, 7, 64).to(dtype)
    reference = torch.nn.functional.relu(h).square()
    (expected,) = torch.autograd.grad(reference, h, grad)
    out = ReluSquared.apply(h)
    (got,) = torch.autograd.grad(out, h, grad)
    assert torch.equal(out, reference)
    assert torch.allclose(got, expected, rtol=1e-2 if dtype == torch.bfloat16 else 1e-6)


@pytest.mark.parametrize("weight_shape", [(16,), (3, 16)])  # a norm's weight; qk-norm's gains per head
def test_rms_norm_function_has_rms_norms_value_and_gradient(weight_shape):
    x = torch.randn(2, 5, 3, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(weight_shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: RMSNormFunction.apply(a, b, 1e-5), (x, w))
    x, w = (3 * torch.randn(2, 5, 3, 16)).requires_grad_(True), torch.randn(weight_shape).requires_grad_(True)
    grad = torch.randn(2, 5, 3, 16)
    reference = torch.nn.functional.rms_norm(x, (16,), eps=1e-5) * w
    out = rms_norm(x, w, 1e-5)
    assert out.grad_fn.name() == "RMSNormFunctionBackward"  # training on a CPU takes the function
    assert torch.allclose(out, reference, atol=1e-6)
    for got, expected in zip(torch.autograd.grad(out, (x, w), grad), torch.autograd.grad(reference, (x, w), grad)):
        assert torch.allclose(got, expected, atol=1e-5)
    with torch.no_grad():  # decoding takes torch's kernel, same values
        assert torch.allclose(rms_norm(x, w, 1e-5), reference, atol=1e-6)


def test_rms_norm_keeps_a_bf16_input_bf16_under_autocast():
    x = torch.randn(4, 8, 32).to(torch.bfloat16).requires_grad_(True)
    w = torch.ones(32, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rms_norm(x, w, 1e-5)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32
