"""Interop with Hugging Face model directories: GPT2LMHeadModel, LlamaForCausalLM and Qwen2ForCausalLM, both ways.

Reading needs no `transformers`: config.json is JSON and the weights are safetensors. Writing uses
`transformers` (the [hf] extra) so the directory is exactly what `from_pretrained` expects.
GPT-2 keeps its attention and MLP matrices as Conv1D, [in, out]: all four are transposed both ways.
Llama and Qwen2 keep q/k/v and gate/up as separate matrices, which our model stacks into one
(c_attn, c_fc). Options of a config.json that would make our model compute something else (scaled
rope, sliding windows, other activations, extra biases) are refused with one line naming them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from gpt.bpe import Tokenizer
from gpt.bpe_formats import load_tokenizer, save_hf_tokenizer
from gpt.chat import chat_template_for_export, has_chat_tokens, stop_ids
from gpt.checkpoint import CheckpointError, check_state, read_weights
from gpt.config import ModelConfig
from gpt.model import GPT, mlp_hidden

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
LLAMA_FAMILY = ("llama", "qwen2")  # same layout; Qwen2 adds biases to q/k/v (and only there)


def hf_style(cfg: ModelConfig) -> str:
    """'gpt2', 'llama' or 'qwen2' when the options map onto that architecture, else a CheckpointError naming why not."""
    if (cfg.norm, cfg.mlp, cfg.pos, cfg.bias, cfg.qk_norm) == ("layernorm", "gelu", "learned", True, False) \
            and cfg.tie_embeddings and cfg.n_kv_head in (0, cfg.n_head):
        return "gpt2"
    if (cfg.norm, cfg.mlp, cfg.pos, cfg.bias, cfg.qk_norm) == ("rmsnorm", "swiglu", "rope", False, False):
        return "qwen2" if cfg.qkv_bias else "llama"
    raise CheckpointError("this model has no transformers equivalent: use the gpt2 preset (layernorm, gelu, learned "
                          "positions, biases, tied) or the llama preset (rmsnorm, swiglu, rope, no biases, no qk_norm; "
                          "with model.qkv_bias it is Qwen2)")


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
    hs = cfg.n_embd // cfg.n_head
    qkv_sizes = [cfg.n_head * hs, (cfg.n_kv_head or cfg.n_head) * hs, (cfg.n_kv_head or cfg.n_head) * hs]
    out["model.embed_tokens.weight"] = sd["wte.weight"]
    out["model.norm.weight"] = sd["ln_f.weight"]
    out["lm_head.weight"] = sd["lm_head.weight"]
    for i in range(cfg.n_layer):
        p, q = f"h.{i}.", f"model.layers.{i}."
        for part in ("weight", "bias") if cfg.qkv_bias else ("weight",):
            for name, tensor in zip("qkv", sd[p + f"attn.c_attn.{part}"].split(qkv_sizes)):
                out[q + f"self_attn.{name}_proj.{part}"] = tensor
        gate, up = sd[p + "mlp.c_fc.weight"].chunk(2)
        out.update({q + "self_attn.o_proj.weight": sd[p + "attn.c_proj.weight"],
                    q + "mlp.gate_proj.weight": gate, q + "mlp.up_proj.weight": up,
                    q + "mlp.down_proj.weight": sd[p + "mlp.c_proj.weight"],
                    q + "input_layernorm.weight": sd[p + "ln_1.weight"],
                    q + "post_attention_layernorm.weight": sd[p + "ln_2.weight"]})
    return {k: v.contiguous() for k, v in out.items()}


def hf_config(model: GPT, tokenizer: Tokenizer | None = None, special: dict | None = None):
    """The transformers config of model; bos/eos ids from `special`'s token names, else <|endoftext|>."""
    import transformers
    cfg = model.config
    bos, eos = _special_ids(tokenizer, special or {})
    if hf_style(cfg) == "gpt2":
        return transformers.GPT2Config(
            vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
            n_head=cfg.n_head, n_inner=mlp_hidden(cfg), activation_function="gelu_new", resid_pdrop=0.0,
            embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=cfg.norm_eps, bos_token_id=bos, eos_token_id=eos,
            tie_word_embeddings=True)
    shared = dict(vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, intermediate_size=mlp_hidden(cfg),
                  num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
                  num_key_value_heads=cfg.n_kv_head or cfg.n_head, max_position_embeddings=cfg.block_size,
                  rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_embeddings,
                  hidden_act="silu", bos_token_id=bos, eos_token_id=eos)
    if cfg.qkv_bias:
        return transformers.Qwen2Config(**shared, use_sliding_window=False)
    return transformers.LlamaConfig(**shared, attention_bias=False, mlp_bias=False)


def _special_ids(tokenizer: Tokenizer | None, special: dict) -> tuple[int | None, int | None]:
    if tokenizer is None:
        return None, None
    ids = tokenizer.special_tokens
    eot = tokenizer.eot_id
    return ids.get(special.get("bos_token"), eot), ids.get(special.get("eos_token"), eot)


def to_hf_model(model: GPT, tokenizer: Tokenizer | None = None, special: dict | None = None):
    """A transformers model holding the same weights (fp32, eval mode)."""
    import transformers
    config = hf_config(model, tokenizer, special)
    cls = {"gpt2": transformers.GPT2LMHeadModel, "llama": transformers.LlamaForCausalLM,
           "qwen2": transformers.Qwen2ForCausalLM}[config.model_type]
    hf = cls(config)
    missing, unexpected = hf.load_state_dict(to_hf_state(model), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight") and ".attn.bias" not in k]
    if missing or unexpected:
        raise CheckpointError(f"export mismatch: missing {missing[:2]}, unexpected {unexpected[:2]}")
    if config.tie_word_embeddings:
        hf.tie_weights()
    return hf.eval()


def save_hf(model: GPT, tokenizer: Tokenizer | None, out_dir: str | Path, special: dict | None = None) -> None:
    """Write a directory AutoModelForCausalLM.from_pretrained (and AutoTokenizer) load offline.

    The directory is assembled under a temporary name and renamed into place, so an existing export is
    replaced whole or not at all. A chat run's tokenizer_config.json carries our chat template; special
    (bos_token / eos_token names and a chat_template, what run_setup.read_chat_files returns for a run
    fine-tuned from a Hugging Face model) carries that model's; without either <|endoftext|> is both.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"--to {out} is a file; an HF export is a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "config.json").exists():
        raise CheckpointError(f"--to {out} is a non-empty directory that is not an HF export; nothing was written")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_hf(model, tokenizer, tmp, special or {})
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_hf(model: GPT, tokenizer: Tokenizer | None, out: Path, special: dict) -> None:
    chat = tokenizer is not None and has_chat_tokens(tokenizer)
    if chat:
        special = chat_template_for_export(tokenizer)
    hf = to_hf_model(model, tokenizer, special)
    if chat:  # generation stops at the end of a turn
        hf.generation_config.eos_token_id = sorted(stop_ids(tokenizer))
    hf.save_pretrained(out)
    if tokenizer is not None:
        from transformers import PreTrainedTokenizerFast
        save_hf_tokenizer(tokenizer, out / "tokenizer.json")
        eot = "<|endoftext|>" if tokenizer.eot_id is not None else None
        fast = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"),
                                       eos_token=special.get("eos_token", eot), bos_token=special.get("bos_token", eot),
                                       **({"pad_token": special["pad_token"]} if "pad_token" in special else {}))
        if special.get("chat_template"):
            fast.chat_template = special["chat_template"]
        fast.save_pretrained(out)


# ----------------------------------------------------------------------------- theirs -> ours

def config_from_hf(hf: dict) -> ModelConfig:
    """Our ModelConfig for a config.json of GPT-2, Llama or Qwen2; anything we would compute differently is refused."""
    kind = hf.get("model_type")
    if kind == "gpt2":
        _refuse(hf, kind, activation_function=("gelu_new", "gelu_pytorch_tanh"), scale_attn_weights=(True,),
                scale_attn_by_inverse_layer_idx=(False,))
        n_embd = hf["n_embd"]
        return ModelConfig(vocab_size=hf["vocab_size"], block_size=hf["n_positions"], n_layer=hf["n_layer"],
                           n_head=hf["n_head"], n_embd=n_embd, mlp_hidden=hf.get("n_inner") or 4 * n_embd,
                           norm_eps=hf.get("layer_norm_epsilon", 1e-5), bias=True, norm="layernorm", mlp="gelu",
                           pos="learned", tie_embeddings=True)
    if kind in LLAMA_FAMILY:
        _refuse(hf, kind, hidden_act=("silu",), attention_bias=(False,), mlp_bias=(False,),
                use_sliding_window=(False,), head_dim=(None, hf["hidden_size"] // hf["num_attention_heads"]))
        return ModelConfig(vocab_size=hf["vocab_size"], block_size=hf["max_position_embeddings"],
                           n_layer=hf["num_hidden_layers"], n_head=hf["num_attention_heads"],
                           n_kv_head=hf.get("num_key_value_heads") or hf["num_attention_heads"],
                           n_embd=hf["hidden_size"], mlp_hidden=hf["intermediate_size"],
                           norm_eps=hf.get("rms_norm_eps", 1e-6), bias=False, qkv_bias=kind == "qwen2",
                           norm="rmsnorm", mlp="swiglu", pos="rope", rope_theta=rope_theta(hf),
                           tie_embeddings=hf.get("tie_word_embeddings", False))
    raise CheckpointError(f"model_type {kind!r} is not supported (gpt2, llama or qwen2)")


def _refuse(hf: dict, kind: str, **allowed: tuple) -> None:
    """A config.json key set to a value our model does not compute is refused, naming it (absent keys are fine)."""
    for key, values in allowed.items():
        if key in hf and hf[key] not in values:
            raise CheckpointError(f"{kind} with {key} = {hf[key]!r} is not supported (gpt computes {values[-1]!r})")


def rope_theta(hf: dict) -> float:
    """The rotary base of a Llama-family config.json: rope_theta, or rope_parameters' (transformers 5).

    Scaled variants (linear, dynamic, yarn, llama3, longrope) change the angles; they are refused rather
    than silently computed as plain rotary embeddings.
    """
    params = hf.get("rope_parameters") or {}
    for table in (params, hf.get("rope_scaling") or {}):
        kind = table.get("rope_type", table.get("type", "default"))
        if kind != "default":
            raise CheckpointError(f"rope scaling of type {kind!r} is not supported (gpt computes the default "
                                  "rotary embedding only)")
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise CheckpointError("rope with partial_rotary_factor != 1 is not supported")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def from_hf_state(sd: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    if cfg.pos == "learned":  # GPT-2: keys with or without the "transformer." prefix (both exist in the wild)
        out = {}
        for key, value in sd.items():
            key = key.removeprefix("transformer.")
            if key.endswith(".attn.bias") or key.endswith(".attn.masked_bias") or key == "lm_head.weight":
                continue
            out[key] = value.t().contiguous() if any(key.endswith(n) for n in CONV1D) else value
        return out

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise CheckpointError(f"the Hugging Face weights have no tensor '{key}'")
        return sd[key]

    out = {"wte.weight": take("model.embed_tokens.weight"), "ln_f.weight": take("model.norm.weight")}
    if not cfg.tie_embeddings:  # a tied checkpoint may still hold lm_head.weight: it is wte, ignored
        out["lm_head.weight"] = take("lm_head.weight")
    for i in range(cfg.n_layer):
        p, q = f"h.{i}.", f"model.layers.{i}."
        out[p + "attn.c_attn.weight"] = torch.cat([take(q + f"self_attn.{n}_proj.weight") for n in "qkv"])
        if cfg.qkv_bias:
            out[p + "attn.c_attn.bias"] = torch.cat([take(q + f"self_attn.{n}_proj.bias") for n in "qkv"])
        out[p + "attn.c_proj.weight"] = take(q + "self_attn.o_proj.weight")
        out[p + "mlp.c_fc.weight"] = torch.cat([take(q + "mlp.gate_proj.weight"), take(q + "mlp.up_proj.weight")])
        out[p + "mlp.c_proj.weight"] = take(q + "mlp.down_proj.weight")
        out[p + "ln_1.weight"] = take(q + "input_layernorm.weight")
        out[p + "ln_2.weight"] = take(q + "post_attention_layernorm.weight")
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
    """A Hugging Face GPT-2 / Llama / Qwen2 directory as our GPT (fp32)."""
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
