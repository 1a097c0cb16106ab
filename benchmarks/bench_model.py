"""Model speed against its references, side by side in one run (CPU, fp32, random weights).

1. Generation of 500 new tokens: our KV-cache generator (gpt/decode.py) vs a no-cache re-run of the whole context per
   token (nanoGPT's way) vs `transformers` GPT2LMHeadModel.generate on the same weights (greedy).
2. Forward+backward throughput of the same GPT-2 architecture: ours vs `transformers`.

    python benchmarks/bench_model.py [--new-tokens 500] [--layers 6] [--embd 384]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from gpt.config import ModelConfig, SampleConfig  # noqa: E402
from gpt.decode import fast_generate  # noqa: E402
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
