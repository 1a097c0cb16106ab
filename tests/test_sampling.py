"""The fast decode path (gpt/decode.py) gives the tokens of a plain full-forward loop and of the cached path."""

import pytest
import torch

from gpt.config import ModelConfig, SampleConfig
from gpt.decode import decode_step, decode_stream, fast_generate, prefill
from gpt.model import GPT
from gpt.sampling import generate

VARIANTS = {
    "gpt2": dict(),
    "llama": dict(norm="rmsnorm", mlp="swiglu", pos="rope", bias=False, tie_embeddings=False, n_kv_head=2),
    "modern": dict(norm="rmsnorm", mlp="relu2", pos="rope", bias=False, qk_norm=True, zero_init_proj=True,
                   dropout=0.1),
}


def model_for(variant: str, seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    base = dict(vocab_size=97, block_size=40, n_layer=2, n_head=4, n_embd=32)
    cfg = ModelConfig(**{**base, **VARIANTS[variant], **kw})
    model = GPT(cfg).eval()
    with torch.no_grad():  # zero-init projections and small weights make near-ties; spread the logits
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_path_equals_full_forward_greedy_at_every_step(variant):
    model = model_for(variant)
    idx = torch.randint(0, 97, (1, 5))
    with torch.inference_mode():
        logits, cache = prefill(model, idx)
        seq = idx
        for _ in range(30):
            full = model.all_logits(seq)[:, -1]  # nanoGPT's way: the whole sequence again
            assert torch.allclose(logits, full, atol=1e-5), seq.size(1)
            nxt = full.argmax(-1, keepdim=True)
            assert torch.equal(logits.argmax(-1, keepdim=True), nxt)
            seq = torch.cat([seq, nxt], 1)
            logits = decode_step(model, cache, nxt, seq.size(1) - 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_path_equals_cached_path(variant):
    model = model_for(variant, seed=1)
    idx = torch.randint(0, 97, (2, 7))
    greedy = SampleConfig(max_new_tokens=25, temperature=0)
    assert torch.equal(fast_generate(model, idx, greedy), generate(model, idx, greedy))
    sampled = SampleConfig(max_new_tokens=25, temperature=0.9, top_k=20, top_p=0.9, repetition_penalty=1.3)
    a = fast_generate(model, idx, sampled, torch.Generator().manual_seed(3))
    b = generate(model, idx, sampled, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_fast_path_slides_past_block_size_like_the_cached_path():
    model = model_for("modern", seed=2, block_size=12)
    idx = torch.randint(0, 97, (1, 4))
    opts = SampleConfig(max_new_tokens=40, temperature=0)
    out = fast_generate(model, idx, opts)
    assert out.shape == (1, 44)
    assert torch.equal(out, generate(model, idx, opts))


def test_fast_path_leaves_the_model_as_it_was():
    model = model_for("gpt2")
    tokens = list(decode_stream(model, torch.zeros(1, 3, dtype=torch.long), SampleConfig(max_new_tokens=4)))
    assert len(tokens) == 4 and all(t.shape == (1, 1) for t in tokens)
    assert all(block.attn.cache is None for block in model.h)
    assert not model.training
