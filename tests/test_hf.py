"""Our model against the real `transformers` implementation, both ways, offline with random weights."""

import pytest
import torch

from gpt.config import ModelConfig
from gpt.hf import load_hf, save_hf, to_hf_model
from gpt.model import GPT

transformers = pytest.importorskip("transformers")

STYLES = {
    "gpt2": ModelConfig(vocab_size=120, block_size=32, n_layer=2, n_head=4, n_embd=48),
    "llama": ModelConfig(vocab_size=120, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=48, norm="rmsnorm",
                         mlp="swiglu", pos="rope", bias=False, tie_embeddings=False, norm_eps=1e-6, rope_theta=500.0),
}


def random_model(cfg: ModelConfig) -> GPT:
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    for p in model.parameters():  # off the init so biases, norms and every square matrix matter
        p.data += 0.05 * torch.randn_like(p)
    return model


@pytest.mark.parametrize("style", STYLES)
def test_export_logits_equal(style, tmp_path):
    ours = random_model(STYLES[style])
    save_hf(ours, None, tmp_path)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(theirs).__name__ == ("GPT2LMHeadModel" if style == "gpt2" else "LlamaForCausalLM")
    idx = torch.randint(0, 120, (2, 32))
    with torch.no_grad():
        diff = (ours.all_logits(idx) - theirs(idx).logits).abs().max().item()
    assert diff < 1e-4


@pytest.mark.parametrize("style", STYLES)
def test_import_logits_and_greedy_generation_equal(style, tmp_path):
    hf_model = to_hf_model(random_model(STYLES[style]))
    torch.manual_seed(5)
    for p in hf_model.parameters():  # new weights made on their side
        p.data += 0.05 * torch.randn_like(p)
    hf_model.save_pretrained(tmp_path)
    ours = load_hf(tmp_path)
    idx = torch.randint(0, 120, (2, 20))
    with torch.no_grad():
        assert (ours.all_logits(idx) - hf_model(idx).logits).abs().max().item() < 1e-4
        prompt = idx[:1, :5]
        theirs = hf_model.generate(prompt, max_new_tokens=12, do_sample=False, attention_mask=torch.ones_like(prompt))
    from gpt.config import SampleConfig
    from gpt.sampling import generate
    mine = generate(ours, prompt, SampleConfig(max_new_tokens=12, temperature=0))
    assert torch.equal(mine, theirs)


def test_unsupported_options_are_refused(tmp_path):
    from gpt.checkpoint import CheckpointError
    model = GPT(ModelConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=16, qk_norm=True))
    with pytest.raises(CheckpointError, match="no transformers equivalent"):
        save_hf(model, None, tmp_path)


def test_mismatched_weights_are_named(tmp_path):
    from gpt.checkpoint import CheckpointError, load_weights, save_weights
    a = GPT(ModelConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=16))
    b = GPT(ModelConfig(vocab_size=60, block_size=8, n_layer=1, n_head=2, n_embd=16))
    save_weights(a, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"'wte.weight' has shape \(50, 16\).*\(60, 16\)"):
        load_weights(b, tmp_path / "m.safetensors")
