"""Interop with Hugging Face model directories: GPT-2 style <-> GPT2LMHeadModel, Llama style <-> LlamaForCausalLM.

Reading needs no `transformers`: config.json is JSON and the weights are safetensors. Writing uses
`transformers` (the [hf] extra) so the directory is exactly what `from_pretrained` expects.
GPT-2 keeps its attention and MLP matrices as Conv1D, [in, out]: all four are transposed both ways.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gpt.bpe import Tokenizer
from gpt.bpe_formats import load_tokenizer, save_hf_tokenizer
from gpt.checkpoint import CheckpointError, check_state, read_weights
from gpt.config import ModelConfig
from gpt.model import GPT, mlp_hidden

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def hf_style(cfg: ModelConfig) -> str:
    """'gpt2' or 'llama' when the options map onto that architecture, else a CheckpointError naming why not."""
    if (cfg.norm, cfg.mlp, cfg.pos, cfg.bias, cfg.qk_norm) == ("layernorm", "gelu", "learned", True, False) \
            and cfg.tie_embeddings and cfg.n_kv_head in (0, cfg.n_head):
        return "gpt2"
    if (cfg.norm, cfg.mlp, cfg.pos, cfg.bias, cfg.qk_norm) == ("rmsnorm", "swiglu", "rope", False, False):
        return "llama"
    raise CheckpointError("this model has no transformers equivalent: use the gpt2 preset (layernorm, gelu, learned "
                          "positions, biases, tied) or the llama preset (rmsnorm, swiglu, rope, no biases, no qk_norm)")


# ----------------------------------------------------------------------------- ours -> theirs

def to_hf_state(model: GPT) -> dict[str, torch.Tensor]:
    cfg, sd = model.config, {k: v.detach().cpu() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    if hf_style(cfg) == "gpt2":
        for key, value in sd.items():
            if key == "lm_head.weight":
                continue
            if any(key.endswith(name) for name in CONV1D):
                value = value.t()
            out["transformer." + key] = value.contiguous()
        return out
    n_q, n_kv, hs = cfg.n_head * (cfg.n_embd // cfg.n_head), (cfg.n_kv_head or cfg.n_head), cfg.n_embd // cfg.n_head
    out["model.embed_tokens.weight"] = sd["wte.weight"]
    out["model.norm.weight"] = sd["ln_f.weight"]
    out["lm_head.weight"] = sd["lm_head.weight"]
    for i in range(cfg.n_layer):
        p, q = f"h.{i}.", f"model.layers.{i}."
        wq, wk, wv = sd[p + "attn.c_attn.weight"].split([n_q, n_kv * hs, n_kv * hs])
        gate, up = sd[p + "mlp.c_fc.weight"].chunk(2)
        out.update({q + "self_attn.q_proj.weight": wq, q + "self_attn.k_proj.weight": wk,
                    q + "self_attn.v_proj.weight": wv, q + "self_attn.o_proj.weight": sd[p + "attn.c_proj.weight"],
                    q + "mlp.gate_proj.weight": gate, q + "mlp.up_proj.weight": up,
                    q + "mlp.down_proj.weight": sd[p + "mlp.c_proj.weight"],
                    q + "input_layernorm.weight": sd[p + "ln_1.weight"],
                    q + "post_attention_layernorm.weight": sd[p + "ln_2.weight"]})
    return {k: v.contiguous() for k, v in out.items()}


def hf_config(model: GPT, tokenizer: Tokenizer | None = None):
    import transformers
    cfg = model.config
    eot = tokenizer.eot_id if tokenizer else None
    if hf_style(cfg) == "gpt2":
        return transformers.GPT2Config(
            vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
            n_head=cfg.n_head, n_inner=mlp_hidden(cfg), activation_function="gelu_new", resid_pdrop=0.0,
            embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=cfg.norm_eps, bos_token_id=eot, eos_token_id=eot,
            tie_word_embeddings=True)
    return transformers.LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, intermediate_size=mlp_hidden(cfg),
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head or cfg.n_head,
        max_position_embeddings=cfg.block_size, rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings, attention_bias=False, mlp_bias=False, hidden_act="silu",
        bos_token_id=eot, eos_token_id=eot)


def to_hf_model(model: GPT, tokenizer: Tokenizer | None = None):
    """A transformers model holding the same weights (fp32, eval mode)."""
    import transformers
    config = hf_config(model, tokenizer)
    cls = transformers.GPT2LMHeadModel if config.model_type == "gpt2" else transformers.LlamaForCausalLM
    hf = cls(config)
    missing, unexpected = hf.load_state_dict(to_hf_state(model), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight") and ".attn.bias" not in k]
    if missing or unexpected:
        raise CheckpointError(f"export mismatch: missing {missing[:2]}, unexpected {unexpected[:2]}")
    if config.tie_word_embeddings:
        hf.tie_weights()
    return hf.eval()


def save_hf(model: GPT, tokenizer: Tokenizer | None, out_dir: str | Path) -> None:
    """Write a directory AutoModelForCausalLM.from_pretrained (and AutoTokenizer) load offline."""
    out = Path(out_dir)
    to_hf_model(model, tokenizer).save_pretrained(out)
    if tokenizer is not None:
        from transformers import PreTrainedTokenizerFast
        save_hf_tokenizer(tokenizer, out / "tokenizer.json")
        eot = "<|endoftext|>" if tokenizer.eot_id is not None else None
        fast = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"), eos_token=eot, bos_token=eot)
        fast.save_pretrained(out)


# ----------------------------------------------------------------------------- theirs -> ours

def config_from_hf(hf: dict) -> ModelConfig:
    kind = hf.get("model_type")
    if kind == "gpt2":
        n_embd = hf["n_embd"]
        return ModelConfig(vocab_size=hf["vocab_size"], block_size=hf["n_positions"], n_layer=hf["n_layer"],
                           n_head=hf["n_head"], n_embd=n_embd, mlp_hidden=hf.get("n_inner") or 4 * n_embd,
                           norm_eps=hf.get("layer_norm_epsilon", 1e-5), bias=True, norm="layernorm", mlp="gelu",
                           pos="learned", tie_embeddings=True)
    if kind == "llama":
        rope = hf.get("rope_parameters") or {}
        if rope.get("rope_type", "default") != "default" or hf.get("rope_scaling"):
            raise CheckpointError("Llama rope scaling is not supported")
        return ModelConfig(vocab_size=hf["vocab_size"], block_size=hf["max_position_embeddings"],
                           n_layer=hf["num_hidden_layers"], n_head=hf["num_attention_heads"],
                           n_kv_head=hf.get("num_key_value_heads") or hf["num_attention_heads"],
                           n_embd=hf["hidden_size"], mlp_hidden=hf["intermediate_size"],
                           norm_eps=hf.get("rms_norm_eps", 1e-6), bias=False, norm="rmsnorm", mlp="swiglu",
                           pos="rope", rope_theta=rope.get("rope_theta", hf.get("rope_theta", 10000.0)),
                           tie_embeddings=hf.get("tie_word_embeddings", False))
    raise CheckpointError(f"model_type {kind!r} is not supported (gpt2 or llama)")


def from_hf_state(sd: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    if cfg.pos == "learned":  # GPT-2
        out = {}
        for key, value in sd.items():
            key = key.removeprefix("transformer.")
            if key.endswith(".attn.bias") or key.endswith(".attn.masked_bias") or key == "lm_head.weight":
                continue
            out[key] = value.t().contiguous() if any(key.endswith(n) for n in CONV1D) else value
        return out
    out = {"wte.weight": sd["model.embed_tokens.weight"], "ln_f.weight": sd["model.norm.weight"]}
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    for i in range(cfg.n_layer):
        p, q = f"h.{i}.", f"model.layers.{i}."
        out[p + "attn.c_attn.weight"] = torch.cat([sd[q + f"self_attn.{n}_proj.weight"] for n in "qkv"])
        out[p + "attn.c_proj.weight"] = sd[q + "self_attn.o_proj.weight"]
        out[p + "mlp.c_fc.weight"] = torch.cat([sd[q + "mlp.gate_proj.weight"], sd[q + "mlp.up_proj.weight"]])
        out[p + "mlp.c_proj.weight"] = sd[q + "mlp.down_proj.weight"]
        out[p + "ln_1.weight"] = sd[q + "input_layernorm.weight"]
        out[p + "ln_2.weight"] = sd[q + "post_attention_layernorm.weight"]
    return out


def _read_dir(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    root = Path(path)
    try:
        hf = json.loads((root / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise CheckpointError(f"{root} is not a Hugging Face model directory (no readable config.json)") from None
    files = sorted(root.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{root} has no .safetensors weights (pickled .bin files are not loaded: unsafe)")
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        sd.update(read_weights(f))  # a damaged or non-finite file is one line, as for our own weights
    return hf, sd


def load_hf(path: str | Path) -> GPT:
    """A Hugging Face GPT-2 / Llama directory as our GPT (fp32)."""
    hf, sd = _read_dir(path)
    cfg = config_from_hf(hf)
    model = GPT(cfg)
    state = {k: v.float() for k, v in from_hf_state(sd, cfg).items()}
    check_state(model, state, str(path))
    model.load_state_dict(state, strict=False)
    return model.eval()


def load_hf_into(model: GPT, path: str | Path) -> None:
    """Copy a Hugging Face directory's weights into an existing model of the same shape (for --init-from)."""
    hf, sd = _read_dir(path)
    state = {k: v.float() for k, v in from_hf_state(sd, model.config).items()}
    check_state(model, state, str(path))
    model.load_state_dict(state, strict=False)


def load_hf_tokenizer(path: str | Path) -> Tokenizer:
    return load_tokenizer(Path(path) / "tokenizer.json")
