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


# ----------------------------------------------------------------------------- models transformers builds

def llama_family(kind: str, **kw):
    """A random-weight transformers model of a real architecture, built offline (no download)."""
    shape = dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5)
    if kind == "qwen2":
        config = transformers.Qwen2Config(**{**shape, **kw})
        cls = transformers.Qwen2ForCausalLM
    else:
        config = transformers.LlamaConfig(**{**shape, **kw})
        cls = transformers.LlamaForCausalLM
    torch.manual_seed(7)
    model = cls(config).eval()
    with torch.no_grad():  # off the init: zero biases and unit norms would hide a mapping mistake
        for p in model.parameters():
            p += 0.05 * torch.randn_like(p)
    return model


ARCHITECTURES = {
    "llama-untied": ("llama", dict(tie_word_embeddings=False)),
    "llama-tied": ("llama", dict(tie_word_embeddings=True, rope_theta=500000.0)),
    "llama-mha-eps": ("llama", dict(num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=1000.0)),
    "qwen2-tied": ("qwen2", dict(tie_word_embeddings=True, rope_theta=1000000.0)),
    "qwen2-untied": ("qwen2", dict(tie_word_embeddings=False)),
}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_transformers_models_import_and_export_with_equal_logits(arch, tmp_path):
    kind, options = ARCHITECTURES[arch]
    theirs = llama_family(kind, **options)
    theirs.save_pretrained(tmp_path / "src")
    ours = load_hf(tmp_path / "src")
    cfg = ours.config
    assert (cfg.qkv_bias, cfg.tie_embeddings, cfg.n_kv_head) == \
        (kind == "qwen2", options.get("tie_word_embeddings", False), options.get("num_key_value_heads", 2))
    assert cfg.rope_theta == options.get("rope_theta", 10000.0) and cfg.norm_eps == options.get("rms_norm_eps", 1e-5)
    if kind == "qwen2":  # the biases are really there, and different from zero
        assert ours.h[0].attn.c_attn.bias.abs().min() > 0 and ours.h[0].attn.c_proj.bias is None
    idx = torch.randint(0, 120, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = theirs(idx).logits
        assert (ours.all_logits(idx) - reference).abs().max().item() < 1e-4
    save_hf(ours, None, tmp_path / "back")  # and back: transformers reads our export as the same model
    again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert type(again) is type(theirs)
    assert again.config.tie_word_embeddings == theirs.config.tie_word_embeddings
    with torch.no_grad():
        assert (again(idx).logits - reference).abs().max().item() < 1e-4


def test_real_gpt2_layout_without_prefix_and_with_attention_buffers(tmp_path):
    """OpenAI's GPT-2 files name tensors without 'transformer.' and keep the causal-mask buffers."""
    from safetensors.torch import save_file
    theirs = to_hf_model(random_model(STYLES["gpt2"]))
    state = {k.removeprefix("transformer."): v.contiguous() for k, v in theirs.state_dict().items()
             if k != "lm_head.weight"}
    for i in range(2):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(32, 32)).view(1, 1, 32, 32)
    save_file(state, str(tmp_path / "model.safetensors"))
    theirs.config.save_pretrained(tmp_path)
    idx = torch.randint(0, 120, (1, 16))
    with torch.no_grad():
        assert (load_hf(tmp_path).all_logits(idx) - theirs(idx).logits).abs().max().item() < 1e-4


@pytest.mark.parametrize("change, message", [
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "rope scaling of type 'llama3' is not supported"),
    ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope scaling of type 'linear' is not supported"),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}}, "type 'yarn'"),
    ({"attention_bias": True}, "llama with attention_bias = True is not supported"),
    ({"hidden_act": "gelu"}, "hidden_act = 'gelu'"),
    ({"head_dim": 32}, "head_dim = 32"),
    ({"model_type": "qwen2", "use_sliding_window": True}, "qwen2 with use_sliding_window = True"),
    ({"model_type": "mistral"}, "model_type 'mistral' is not supported"),
])
def test_options_we_would_compute_differently_are_refused_in_one_line(change, message, tmp_path):
    from gpt.checkpoint import CheckpointError
    from gpt.hf import config_from_hf
    config = llama_family("llama").config.to_dict()
    config.update(change)
    with pytest.raises(CheckpointError, match=message) as info:
        config_from_hf(config)
    assert "\n" not in str(info.value)
