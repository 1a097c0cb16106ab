"""Export a model and its tokenizer as one GGUF file that llama.cpp (and so Ollama) run as they are.

GGUF is llama.cpp's single-file format: metadata keys (architecture sizes, the tokenizer, a chat
template) followed by named tensors. The file is written with the `gguf` package's GGUFWriter (the
[gguf] extra), following llama.cpp's own converter (convert_hf_to_gguf.py) for names, shapes and types:

- rope + rmsnorm + swiglu, no biases          -> `llama`  (Q and K rows permuted, see below)
- the same with qk_norm (RMSNorm per head)    -> `qwen3`  (rotate-half rope: no permutation)
- learned positions + layernorm + gelu + bias -> `gpt2`

Anything else (a relu2 MLP, ...) is refused with a one-line GGUFExportError naming the option.
The tokenizer travels as llama.cpp's byte-level BPE ("gpt2" model): tokens in GPT-2's
byte-to-unicode spelling, merges, token types, special ids, and the name of the llama.cpp
pre-tokenizer whose split regex is ours (PRE_TOKENIZERS; docs in tests/test_gguf.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from gpt.bpe import ENDOFTEXT, Tokenizer
from gpt.bpe_formats import bytes_to_unicode, to_hf_dict
from gpt.config import ModelConfig
from gpt.errors import InputError
from gpt.model import GPT, mlp_hidden

DTYPES = ("f32", "f16", "q8_0")
END_OF_TURN = "<|end|>"
# Our split pattern -> the llama.cpp pre-tokenizer (tokenizer.ggml.pre) that splits text like it.
# gpt2: exact. gpt4: llama.cpp's Llama 3 regex is cl100k's original one; ours is tiktoken's newer
# possessive form, which differs only on whitespace at the very end of a text when a newline is
# followed by more whitespace ("x\n  ": ours keeps "\n  " whole, llama.cpp cuts "\n" + "  ").
PRE_TOKENIZERS = {"gpt2": "gpt-2", "gpt4": "llama-bpe"}


class GGUFExportError(InputError):
    """The model or tokenizer has something llama.cpp cannot express; the message names it."""


def gguf_arch(cfg: ModelConfig) -> str:
    """The llama.cpp architecture ('llama', 'qwen3' or 'gpt2') for these options, else a GGUFExportError."""
    def refuse(option: str, why: str) -> GGUFExportError:
        return GGUFExportError(f"cannot export {option} to GGUF: {why}")

    if cfg.mlp == "relu2":
        raise refuse("mlp=relu2", "no llama.cpp architecture has a ReLU^2 MLP (use gelu or swiglu)")
    if cfg.pos == "learned":
        wanted = "llama.cpp's gpt2 (learned positions) needs norm=layernorm, mlp=gelu, bias=true, qk_norm=false"
        for option, bad in (("norm=rmsnorm", cfg.norm != "layernorm"), ("mlp=swiglu", cfg.mlp != "gelu"),
                            ("bias=false", not cfg.bias), ("qk_norm=true", cfg.qk_norm)):
            if bad:
                raise refuse(f"pos=learned with {option}", wanted)
        return "gpt2"
    wanted = "llama.cpp's llama / qwen3 (rope) need norm=rmsnorm, mlp=swiglu, bias=false"
    for option, bad in (("norm=layernorm", cfg.norm != "rmsnorm"), ("mlp=gelu", cfg.mlp != "swiglu"),
                        ("bias=true", cfg.bias)):
        if bad:
            raise refuse(f"pos=rope with {option}", wanted)
    return "qwen3" if cfg.qk_norm else "llama"


def permute_for_llama(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Rows of a Q or K projection from rotate-half rope order to llama.cpp's interleaved pairs.

    Our rope (like Hugging Face Llama) pairs dimension i with i + hs/2 in each head; llama.cpp's
    `llama` rope pairs 2i with 2i+1. The converter's permute moves row i to 2i and i + hs/2 to 2i+1.
    """
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# ----------------------------------------------------------------------------- tensors

LAYER_NAMES = {"ln_1": "attn_norm", "ln_2": "ffn_norm", "attn.c_proj": "attn_output", "mlp.c_proj": "ffn_down"}
GPT2_LAYER_NAMES = {"attn.c_attn": "attn_qkv", "mlp.c_fc": "ffn_up"}


def gguf_tensors(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights under llama.cpp's tensor names, in PyTorch's (out, in) layout, as fp32 on CPU."""
    cfg, arch = model.config, gguf_arch(model.config)
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out = {"token_embd.weight": sd["wte.weight"], "output_norm.weight": sd["ln_f.weight"]}
    if not cfg.tie_embeddings:
        out["output.weight"] = sd["lm_head.weight"]
    if arch == "gpt2":
        out["position_embd.weight"] = sd["wpe.weight"]
        out["output_norm.bias"] = sd["ln_f.bias"]
    n_kv, hs = cfg.n_kv_head or cfg.n_head, cfg.n_embd // cfg.n_head
    for i in range(cfg.n_layer):
        p, b = f"h.{i}.", f"blk.{i}."
        if arch == "gpt2":  # q, k, v stay stacked, as in GPT-2's c_attn; every layer has a bias
            for ours, theirs in {**LAYER_NAMES, **GPT2_LAYER_NAMES}.items():
                out[f"{b}{theirs}.weight"], out[f"{b}{theirs}.bias"] = sd[f"{p}{ours}.weight"], sd[f"{p}{ours}.bias"]
            continue
        for ours, theirs in LAYER_NAMES.items():
            out[f"{b}{theirs}.weight"] = sd[f"{p}{ours}.weight"]
        wq, wk, wv = sd[p + "attn.c_attn.weight"].split([cfg.n_head * hs, n_kv * hs, n_kv * hs])
        if arch == "llama":
            wq, wk = permute_for_llama(wq, cfg.n_head), permute_for_llama(wk, n_kv)
        else:  # qwen3: RMSNorm over each head's q and k before rope
            out[b + "attn_q_norm.weight"] = sd[p + "attn.q_norm.weight"]
            out[b + "attn_k_norm.weight"] = sd[p + "attn.k_norm.weight"]
        out[b + "attn_q.weight"], out[b + "attn_k.weight"], out[b + "attn_v.weight"] = wq, wk, wv
        out[b + "ffn_gate.weight"], out[b + "ffn_up.weight"] = sd[p + "mlp.c_fc.weight"].chunk(2)
    return {k: v.contiguous() for k, v in out.items()}


def encode_tensor(name: str, t: torch.Tensor, dtype: str):
    """(array, GGMLQuantizationType): norms, biases and position table stay f32, as llama.cpp's converter keeps them."""
    import gguf
    q = gguf.GGMLQuantizationType
    data = t.numpy().astype(np.float32)
    if dtype == "f32" or data.ndim == 1 or name.startswith("position_embd"):
        return data, q.F32
    if dtype == "q8_0":
        try:
            return gguf.quants.quantize(data, q.Q8_0), q.Q8_0
        except gguf.QuantError:  # rows not a multiple of Q8_0's 32-value block: the converter's fallback
            pass
    return data.astype(np.float16), q.F16


# ----------------------------------------------------------------------------- tokenizer

def gguf_vocab(tokenizer: Tokenizer, n_vocab: int) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges) for n_vocab embedding rows; rows beyond the tokenizer become [PAD<i>]."""
    from gguf import TokenType
    to_uni = bytes_to_unicode()
    tokens, types = [], []
    for i in range(n_vocab):
        if i < len(tokenizer.vocab):
            tokens.append("".join(to_uni[b] for b in tokenizer.vocab[i]))
            types.append(TokenType.NORMAL)
        elif i in tokenizer.special_by_id:
            tokens.append(tokenizer.special_by_id[i].decode("utf-8"))
            types.append(TokenType.CONTROL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
    merges = [" ".join(pair) for pair in to_hf_dict(tokenizer)["model"]["merges"]]
    return tokens, [int(t) for t in types], merges


def check_tokenizer(tokenizer: Tokenizer, n_vocab: int) -> str:
    """The llama.cpp pre-tokenizer name for this tokenizer, or a GGUFExportError."""
    pre = PRE_TOKENIZERS.get(tokenizer.pattern_name)
    if pre is None:
        raise GGUFExportError(f"cannot export a tokenizer with split pattern {tokenizer.pattern_name!r} to GGUF: "
                              "llama.cpp only knows named pre-tokenizers (train with pattern gpt4 or gpt2)")
    if len(tokenizer.vocab) <= 256:  # the gguf writer cannot write an empty merges list; llama.cpp requires one
        raise GGUFExportError("cannot export a tokenizer without merges (only the 256 bytes) to GGUF: "
                              "llama.cpp needs at least one merge")
    if tokenizer.vocab_size > n_vocab or any(i >= n_vocab for i in tokenizer.special_by_id):
        raise GGUFExportError(f"the tokenizer's ids go beyond the model's vocab_size {n_vocab}")
    return pre


def add_tokenizer(writer, tokenizer: Tokenizer, n_vocab: int, chat_template: str | None) -> None:
    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
    writer.add_tokenizer_pre(check_tokenizer(tokenizer, n_vocab))
    tokens, types, merges = gguf_vocab(tokenizer, n_vocab)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    eos = tokenizer.special_tokens.get(ENDOFTEXT)
    eot = tokenizer.special_tokens.get(END_OF_TURN, eos)  # llama.cpp stops generating at eos and eot alike
    if eos is not None:  # our documents are separated (not started) by <|endoftext|>: it is bos and eos
        writer.add_bos_token_id(eos)
        writer.add_eos_token_id(eos)
    if eot is not None:
        writer.add_eot_token_id(eot)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)


# ----------------------------------------------------------------------------- the file

def add_hparams(writer, cfg: ModelConfig, arch: str) -> None:
    hs = cfg.n_embd // cfg.n_head
    writer.add_context_length(cfg.block_size)
    writer.add_embedding_length(cfg.n_embd)
    writer.add_block_count(cfg.n_layer)
    writer.add_feed_forward_length(mlp_hidden(cfg))
    writer.add_head_count(cfg.n_head)
    writer.add_head_count_kv(cfg.n_kv_head or cfg.n_head)
    writer.add_vocab_size(cfg.vocab_size)
    if arch == "gpt2":
        writer.add_layer_norm_eps(cfg.norm_eps)
        return
    writer.add_layer_norm_rms_eps(cfg.norm_eps)
    writer.add_rope_freq_base(cfg.rope_theta)
    writer.add_rope_dimension_count(hs)
    writer.add_key_length(hs)
    writer.add_value_length(hs)


def export_gguf(model: GPT, tokenizer: Tokenizer, path: str | Path, chat_template: str | None = None,
                dtype: str = "f32") -> Path:
    """Write model + tokenizer as a GGUF file llama.cpp loads; dtype f32, f16 or q8_0 (weight matrices only).

    The file appears whole or not at all: it is written beside `path` and renamed into place.
    """
    try:
        import gguf
    except ImportError:
        raise GGUFExportError("GGUF export needs the gguf package: pip install 'gpt[gguf]'") from None
    if dtype not in DTYPES:
        raise GGUFExportError(f"unknown GGUF dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    cfg, arch = model.config, gguf_arch(model.config)
    check_tokenizer(tokenizer, cfg.vocab_size)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype]
    try:
        writer = gguf.GGUFWriter(str(tmp), arch)
        writer.add_name(path.stem)
        writer.add_file_type(file_type)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_hparams(writer, cfg, arch)
        add_tokenizer(writer, tokenizer, cfg.vocab_size, chat_template)
        for name, tensor in gguf_tensors(model).items():
            data, qtype = encode_tensor(name, tensor, dtype)
            writer.add_tensor(name, data, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
