"""GGUF export checked by llama.cpp itself (llama-cpp-python): same token ids, same logits, same greedy text.

Models are small (2 layers x 64) with random weights scaled up from the training init, so logits
have clear margins and a wrong permutation or a swapped tensor shows as a large error, not noise.
"""

from __future__ import annotations

import numpy as np
import pytest
import regex
import torch

from gpt.bpe import PATTERNS, Tokenizer
from gpt.config import ModelConfig, SampleConfig
from gpt.errors import GPTError
from gpt.gguf_export import GGUFExportError, export_gguf, gguf_arch
from gpt.model import GPT
from gpt.sampling import generate

pytest.importorskip("gguf")
llama_cpp = pytest.importorskip("llama_cpp")

MULTILINGUAL = (
    "The quick brown fox can't jump; it's 1234567 m/s fast!\n"
    "Voilà l'été à Paris, où naïve garçons mangent des crêpes. Größe, Straße, Übermut.\n"
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Ελληνικά γράμματα!\n"
    "我们今天去北京看长城。日本語のテキストも、カタカナとひらがな。한국어 문장도 있습니다.\n"
    "مرحبا بالعالم، كيف حالك؟ नमस्ते दुनिया, आप कैसे हैं? שלום עולם\n"
    "Emoji: 😀😃🚀🎉 👩‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ 👍🏽 — done.\n"
    "def f(x):\n    return x  *  2\t# tab\n\n\n  spaced   out   text  \n"
    "Numbers 3.14159, 2,718, 1e-10 and DON'T SHOUT, we'LL see. I'm, you've, they'd.\n"
)
# Texts for checking token ids (they avoid the one known gpt4/llama-bpe difference, at the end).
TEXTS = [MULTILINGUAL, "hello world", "   leading spaces", "ünïcödé😀x", "a\n\nb", "tabs\t\tand\r\nCRLF"]
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")  # llama-vocab.cpp's original Llama 3 / cl100k regex
TRAILING = "x = 1\n    "  # a text ending in a newline and then spaces: where gpt4 and llama-bpe split differently

GGML_F32 = 0  # ggml_type of an f32 KV cache: keys and values are not rounded to f16 in the f32 checks
# Largest |logit difference| allowed, as a fraction of our logits' standard deviation (measured with
# llama-cpp-python 0.3.36 on x86-64: f32 2e-6 with rope, 9e-4 for gpt2, whose GELU ggml's CPU backend
# reads from an f16 table; f16 <= 3.6e-3; q8_0 <= 8.5e-2, activations being rounded to 8 bits too).
LOGIT_TOL = {"f32": 1e-4, "f32-gpt2": 3e-3, "f16": 1e-2, "q8_0": 0.15}

ARCHS = {
    "llama": dict(norm="rmsnorm", mlp="swiglu", pos="rope", bias=False, n_kv_head=2, tie_embeddings=False),
    "llama-tied": dict(norm="rmsnorm", mlp="swiglu", pos="rope", bias=False, tie_embeddings=True),
    "qwen3": dict(norm="rmsnorm", mlp="swiglu", pos="rope", bias=False, qk_norm=True, n_kv_head=2),
    "gpt2": dict(norm="layernorm", mlp="gelu", pos="learned", bias=True, tie_embeddings=True),
    "gpt2-gqa-untied": dict(norm="layernorm", mlp="gelu", pos="learned", bias=True, n_kv_head=2,
                            tie_embeddings=False),
}


def train_texts() -> list[str]:
    # separate texts that end in "\n    " teach the gpt4 tokenizer a token for it (only a text's end makes one)
    return [MULTILINGUAL * 3, *(f"item {w}\n    " for w in "abcdefghijklmnopqrstuvwxyz"), "<|end|> turn<|endoftext|>"]


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Tokenizer]:
    specials = ("<|endoftext|>", "<|end|>")
    return {p: Tokenizer.train(train_texts(), 700, pattern=p, special_tokens=specials) for p in ("gpt4", "gpt2")}


def random_model(arch: str, vocab_size: int, seed: int = 0) -> GPT:
    cfg = ModelConfig(vocab_size=vocab_size, block_size=128, n_layer=2, n_head=4, n_embd=64, **ARCHS[arch])
    torch.manual_seed(seed)
    model = GPT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # norm weights near 1, biases and norm shifts near 0
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            else:  # embeddings std 1, projections std 1/sqrt(fan_in): activations of order one
                p.copy_(torch.randn_like(p) / (1.0 if "wte" in name or "wpe" in name else p.size(1) ** 0.5))
    return model.eval()


def padded_vocab(tokenizer: Tokenizer) -> int:
    return -(-tokenizer.vocab_size // 64) * 64  # rows past the tokenizer are exported as [PAD] tokens


def load(path, vocab_only: bool = False, dtype: str = "f32"):
    kv = dict(type_k=GGML_F32, type_v=GGML_F32) if dtype == "f32" else {}
    return llama_cpp.Llama(model_path=str(path), n_ctx=128, n_batch=128, logits_all=True, vocab_only=vocab_only,
                           verbose=False, seed=0, n_threads=2, **kv)


def llama_tokenize(llm, text: str) -> list[int]:
    return llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)


# ----------------------------------------------------------------------------- tokenizer

@pytest.mark.parametrize("pattern", ["gpt4", "gpt2"])
def test_token_ids_match_llama_cpp(pattern, tokenizers, tmp_path):
    tok = tokenizers[pattern]
    arch = "llama" if pattern == "gpt4" else "gpt2"
    path = export_gguf(random_model(arch, padded_vocab(tok)), tok, tmp_path / "m.gguf")
    llm = load(path, vocab_only=True)
    for text in TEXTS:
        ours = tok.encode(text)
        assert llama_tokenize(llm, text) == ours, text
        assert llm.detokenize(ours) == text.encode("utf-8")
    assert len(tok.encode(MULTILINGUAL)) < len(MULTILINGUAL.encode("utf-8")) // 2  # merges were really learned


def test_gpt2_pattern_has_no_trailing_whitespace_difference(tokenizers, tmp_path):
    tok = tokenizers["gpt2"]
    llm = load(export_gguf(random_model("gpt2", padded_vocab(tok)), tok, tmp_path / "m.gguf"), vocab_only=True)
    assert llama_tokenize(llm, TRAILING) == tok.encode(TRAILING)


def test_gpt4_pattern_differs_from_llama_bpe_only_at_a_trailing_newline_and_spaces(tokenizers, tmp_path):
    """No llama.cpp pre-tokenizer has tiktoken's newer cl100k regex (with `\\s++$`); llama-bpe is the nearest."""
    assert regex.findall(PATTERNS["gpt4"], MULTILINGUAL) == regex.findall(LLAMA3_REGEX, MULTILINGUAL)
    assert regex.findall(PATTERNS["gpt4"], TRAILING)[-1] == "\n    "
    assert regex.findall(LLAMA3_REGEX, TRAILING)[-2:] == ["\n", "    "]
    tok = tokenizers["gpt4"]
    llm = load(export_gguf(random_model("llama", padded_vocab(tok)), tok, tmp_path / "m.gguf"), vocab_only=True)
    ours, theirs = tok.encode(TRAILING), llama_tokenize(llm, TRAILING)
    assert ours[-1] == tok.ranks[b"\n    "]
    assert theirs != ours and tok.decode(theirs) == TRAILING
    assert llama_tokenize(llm, TRAILING + "y") == tok.encode(TRAILING + "y")  # mid-text they agree


def test_special_tokens_and_chat_template_travel(tokenizers, tmp_path):
    tok = tokenizers["gpt4"]
    template = "{% for m in messages %}{{ m['content'] }}<|end|>{% endfor %}"
    path = export_gguf(random_model("llama", padded_vocab(tok)), tok, tmp_path / "m.gguf", chat_template=template)
    llm = load(path, vocab_only=True)
    assert llm.metadata["tokenizer.chat_template"] == template
    assert llm.token_eos() == tok.special_tokens["<|endoftext|>"]
    assert int(llm.metadata["tokenizer.ggml.eot_token_id"]) == tok.special_tokens["<|end|>"]
    vocab = llama_cpp.llama_model_get_vocab(llm.model)  # both end generation (llama.cpp's end-of-generation set)
    assert [llama_cpp.llama_vocab_is_eog(vocab, i) for i in (*tok.special_tokens.values(), 0)] == [True, True, False]
    assert llm.chat_format == "chat_template.default"  # llama-cpp-python picked up the template
    assert llama_tokenize(llm, "<|end|>") != [tok.special_tokens["<|end|>"]]  # special=False: text
    assert llm.tokenize(b"<|end|>", add_bos=False, special=True) == [tok.special_tokens["<|end|>"]]


# ----------------------------------------------------------------------------- model

def llama_logits(llm, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[:len(ids)], dtype=np.float32)


def llama_greedy(llm, ids: list[int], n: int) -> list[int]:
    """llama.cpp's own forward with its KV cache, one token at a time, taking the argmax each step."""
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(n):
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval(out[-1:])
    return out


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_logits_and_greedy_continuation_match_llama_cpp(arch, dtype, tokenizers, tmp_path):
    tok = tokenizers["gpt2" if arch.startswith("gpt2") else "gpt4"]
    model = random_model(arch, padded_vocab(tok))
    assert gguf_arch(model.config) == arch.split("-")[0]
    llm = load(export_gguf(model, tok, tmp_path / "m.gguf", dtype=dtype), dtype=dtype)
    ids = tok.encode(MULTILINGUAL)[:64]
    with torch.no_grad():
        ours = model.all_logits(torch.tensor([ids]))[0].numpy()
    err = np.abs(llama_logits(llm, ids) - ours).max() / ours.std()
    tol = LOGIT_TOL["f32-gpt2" if dtype == "f32" and arch.startswith("gpt2") else dtype]
    assert err < tol, f"max |logit diff| / std = {err:.2e}"

    n = 32
    theirs = llama_greedy(llm, ids[:16], n)
    expected = generate(model, torch.tensor([ids[:16]]), SampleConfig(max_new_tokens=n, temperature=0))[0, 16:].tolist()
    if dtype == "f32":
        assert theirs == expected
        return
    # rounded weights may flip a near tie: each llama.cpp choice must be within tolerance of our best
    with torch.no_grad():
        ours = model.all_logits(torch.tensor([ids[:16] + theirs]))[0, 15:-1].numpy()
    gaps = ours.max(axis=1) - ours[np.arange(n), theirs]
    assert gaps.max() / ours.std() < tol, f"{np.count_nonzero(gaps)} of {n} greedy steps are not our argmax"


# ----------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("options, named", [
    (dict(mlp="relu2"), "mlp=relu2"),
    (dict(norm="rmsnorm"), "norm=rmsnorm"),
    (dict(bias=False), "bias=false"),
    (dict(qk_norm=True), "qk_norm=true"),
    (dict(pos="rope", norm="layernorm", mlp="swiglu", bias=False), "norm=layernorm"),
    (dict(pos="rope", norm="rmsnorm", mlp="gelu", bias=False), "mlp=gelu"),
    (dict(pos="rope", norm="rmsnorm", mlp="swiglu", bias=True), "bias=true"),
])
def test_inexpressible_models_are_refused_in_one_line(options, named, tokenizers, tmp_path):
    tok = tokenizers["gpt2"]
    model = GPT(ModelConfig(vocab_size=padded_vocab(tok), block_size=32, n_layer=1, n_head=2, n_embd=32, **options))
    with pytest.raises(GGUFExportError) as info:
        export_gguf(model, tok, tmp_path / "m.gguf")
    assert named in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, GPTError) and info.value.code == 2
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_bad_tokenizer_pattern_dtype_and_vocab_are_refused(tokenizers, tmp_path):
    tok = tokenizers["gpt2"]
    model = random_model("gpt2", padded_vocab(tok))
    plain = Tokenizer(tok.vocab, tok.merges, pattern="none", special_tokens=tok.special_tokens)
    with pytest.raises(GGUFExportError, match="split pattern 'none'"):
        export_gguf(model, plain, tmp_path / "m.gguf")
    with pytest.raises(GGUFExportError, match="without merges"):
        export_gguf(model, Tokenizer(pattern="gpt2"), tmp_path / "m.gguf")
    with pytest.raises(GGUFExportError, match="unknown GGUF dtype"):
        export_gguf(model, tok, tmp_path / "m.gguf", dtype="q4_0")
    small = random_model("gpt2", tok.vocab_size - 1)
    with pytest.raises(GGUFExportError, match="beyond the model's vocab_size"):
        export_gguf(small, tok, tmp_path / "m.gguf")
    assert list(tmp_path.iterdir()) == []
