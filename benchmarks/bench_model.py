"""Model speed against its references, side by side in one run (CPU, fp32, random weights).

1. Generation of 500 new tokens: our KV-cache generator (gpt/decode.py) vs a no-cache re-run of the whole context per
   token (nanoGPT's way) vs `transformers` GPT2LMHeadModel.generate on the same weights (greedy),
   and vs llama.cpp (llama-cpp-python, the [gguf] extra) on the same model exported to GGUF (f32, q8_0).
2. Forward+backward throughput of the same GPT-2 architecture: ours vs `transformers`.

    python benchmarks/bench_model.py [--new-tokens 500] [--layers 6] [--embd 384]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from gpt.bpe import ENDOFTEXT, Tokenizer  # noqa: E402
from gpt.config import ModelConfig, SampleConfig  # noqa: E402
from gpt.decode import fast_generate  # noqa: E402
from gpt.gguf_export import export_gguf  # noqa: E402
from gpt.model import GPT  # noqa: E402


def timed(fn, reps: int = 3) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@torch.no_grad()
def no_cache_generate(model: GPT, idx: torch.Tensor, n: int) -> torch.Tensor:
    for _ in range(n):
        context = idx[:, -model.config.block_size:]
        logits, _ = model(context)
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


def llama_cpp_greedy(llm, prompt: list[int], n: int) -> list[int]:
    """llama.cpp's forward and KV cache, batch 1, argmax each step (what our generate(temperature=0) does)."""
    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(n):
        out.append(int(llm.scores[llm.n_tokens - 1].argmax()))
        llm.eval(out[-1:])
    return out


def bench_llama_cpp(model: GPT, prompt: torch.Tensor, n: int, t_ours: float, expected: list[int]) -> None:
    try:
        import llama_cpp
    except ImportError:
        print("llama.cpp: skipped (pip install 'gpt[gguf]')")
        return
    # the ids are random, so any tokenizer will do: a tiny one (ids past it are exported as [PAD] tokens)
    tokenizer = Tokenizer.train(["the benchmark text"], 260, pattern="gpt2", special_tokens=[ENDOFTEXT])
    ids = prompt[0].tolist()
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("f32", "q8_0"):
            path = export_gguf(model, tokenizer, Path(tmp) / f"model-{dtype}.gguf", dtype=dtype)
            kv = dict(type_k=0, type_v=0) if dtype == "f32" else {}  # f32 KV cache: the same numbers as ours
            llm = llama_cpp.Llama(model_path=str(path), n_ctx=model.config.block_size, logits_all=True, verbose=False,
                                  n_threads=torch.get_num_threads(), **kv)
            same = llama_cpp_greedy(llm, ids, n) == expected
            t = timed(lambda llm=llm: llama_cpp_greedy(llm, ids, n))
            print(f"generate: llama.cpp {dtype:4} {n / t:7.1f} tok/s (ours x{t / t_ours:.2f}) | "
                  f"same greedy tokens as ours: {same}")
            llm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-tokens", type=int, default=500)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--embd", type=int, default=384)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--vocab", type=int, default=4096)
    args = parser.parse_args()
    from gpt.hf import to_hf_model
    cfg = ModelConfig(vocab_size=args.vocab, block_size=1024, n_layer=args.layers, n_head=args.heads, n_embd=args.embd)
    torch.manual_seed(0)
    ours = GPT(cfg).eval()
    theirs = to_hf_model(ours).eval()
    prompt = torch.randint(0, args.vocab, (1, 16))
    n = args.new_tokens
    print(f"model: GPT-2 style {args.layers}x{args.embd}, vocab {args.vocab}, block 1024; fp32; "
          f"{torch.get_num_threads()} threads; {n} new tokens after a 16-token prompt")

    greedy = SampleConfig(max_new_tokens=n, temperature=0)
    a = fast_generate(ours, prompt, greedy)
    b = no_cache_generate(ours, prompt, n)
    c = theirs.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                        attention_mask=torch.ones_like(prompt), pad_token_id=0)
    same = torch.equal(a, b) and torch.equal(a, c)
    t_ours = timed(lambda: fast_generate(ours, prompt, greedy))
    t_none = timed(lambda: no_cache_generate(ours, prompt, n), reps=1)
    t_hf = timed(lambda: theirs.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                         attention_mask=torch.ones_like(prompt), pad_token_id=0))
    print(f"generate: ours (KV cache) {n / t_ours:7.1f} tok/s | no-cache re-run {n / t_none:7.1f} tok/s "
          f"(ours x{t_none / t_ours:.1f}) | transformers {n / t_hf:7.1f} tok/s (ours x{t_hf / t_ours:.2f}) | "
          f"same greedy tokens: {same}")
    bench_llama_cpp(ours, prompt, n, t_ours, a[0, prompt.size(1):].tolist())

    B, T = 16, 256
    x = torch.randint(0, args.vocab, (B, T))
    ours.train()
    theirs.train()

    def ours_step():
        _, loss = ours(x, x)
        loss.backward()

    def theirs_step():
        theirs(x, labels=x).loss.backward()

    t_o, t_t = timed(ours_step), timed(theirs_step)
    print(f"forward+backward (batch {B} x {T}): ours {B * T / t_o:9,.0f} tok/s | "
          f"transformers {B * T / t_t:9,.0f} tok/s | ours x{t_t / t_o:.2f}")


if __name__ == "__main__":
    main()
