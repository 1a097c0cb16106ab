"""Speculative decoding on trained runs: tokens/s of replies with drafts (gpt/speculate.py) and without.

Drafts are guesses, so the gain depends on the text: random weights say nothing (their greedy replies
loop, which drafting guesses all too well). This benchmark loads trained run directories and times
gpt.generate.Generator, batch 1, one thread as on CPU, on three workloads:
  continue  greedy continuations (--new-tokens) of 16-token prompts cut from the run's validation tokens
  sampled   the same prompts at temperature 0.8 (a draw accepts a draft less often than argmax)
  ask       each question as `gpt ask` asks it: open-book and quoted when the run has its passages, else
            closed-book (greedy, up to 64 tokens, to the end of the reply)
Each variant (--draft-tokens N, 0 = one token per forward) runs in a fresh process, interleaved, medians of
--reps; every variant must give the same tokens as 0 (their digest is printed). Forwards per token counts
prefills and decode forwards.

    python benchmarks/bench_speculate.py RUN [RUN ...] [--reps 3] [--draft-tokens 0 7] [--prompts 8]
        [--new-tokens 200] [--questions "What is a decorator?" ...] [--compile]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

QUESTIONS = ["What is a decorator?", "What is a generator?", "What is a suite?", "What is a module?",
             "What is an exception?", "What is a tuple?", "What is a coroutine?", "What is a list?"]


def prompts_from(gen, n: int) -> list[list[int]]:
    """n 16-token prompts at evenly spaced places of the run's validation tokens (else its training tokens)."""
    import numpy as np

    from gpt.data import open_prepared
    data = open_prepared(gen.run_dir / "data", gen.tokenizer, gen.config.data.val_fraction)
    tokens = data.val if len(data.val) > 16 * n else data.train
    starts = np.linspace(0, len(tokens) - 17, n).astype(int)
    return [tokens[s:s + 16].astype(int).tolist() for s in starts]


def workloads(gen, args) -> dict[str, list]:
    """{workload: [callable that decodes one reply and returns its tokens]}."""
    from gpt.ask import ask, passages_to_ask
    greedy = gen.options(max_new_tokens=args.new_tokens, temperature=0.0)
    sampled = gen.options(max_new_tokens=args.new_tokens, temperature=0.8, seed=7)
    prompts = prompts_from(gen, args.prompts)
    index = passages_to_ask(gen.run_dir, None)
    short = gen.options(max_new_tokens=64, temperature=0.0)

    def continuation(ids, opts):
        return lambda: reply(ids, opts)

    def reply(ids, opts, end_ids=None, quote=None):  # (its text, its tokens) as Generator streams it
        info = {}
        text = "".join(gen.stream_ids(ids, opts, info, end_ids, quote))
        return text, info["completion_tokens"]

    def asked(question):
        def run():
            put = ask(gen, index, [{"role": "user", "content": question}])  # as gpt ask asks it (gpt/ask.py)
            ids, end_ids = gen.reply_prompt(put.messages)
            return reply(ids, short, end_ids, put.quote(gen))
        return run

    return {"continue": [continuation(p, greedy) for p in prompts],
            "sampled": [continuation(p, sampled) for p in prompts],
            "ask " + ("open-book" if index is not None else "closed-book"): [asked(q) for q in args.questions]}


def run_one(run_dir: str, draft_tokens: int, args) -> dict:
    import torch

    import gpt.decode
    import gpt.speculate
    from gpt.generate import Generator
    # --compile: the forward over 1 to 8 positions, compiled once for all of them (as gpt serve --compile does)
    gen = Generator(run_dir, "cpu", draft_tokens=draft_tokens, compile=args.compile)
    if args.compile:  # as gpt serve --compile does before it listens: every graph, the window's end included
        gen.warm_up()
    gen.corpus  # wait for the index (a thread builds it at load), so that every timed reply has it  # noqa: B018
    forwards = [0]
    count = lambda real: lambda *a: forwards.__setitem__(0, forwards[0] + 1) or real(*a)  # noqa: E731
    gen.forward = count(gen.forward)
    for module in (gpt.speculate, gpt.decode):
        module.prefill = count(module.prefill)
    result = {}
    with torch.inference_mode():
        for name, jobs in workloads(gen, args).items():
            start = time.perf_counter()
            jobs[0]()  # warm-up
            warmup = time.perf_counter() - start
            forwards[0], out, start = 0, [], time.perf_counter()
            for job in jobs:
                out.append(job())
            seconds = time.perf_counter() - start
            count = sum(n for _, n in out)
            digest = hashlib.sha256(json.dumps(out).encode()).hexdigest()[:12]
            result[name] = dict(tok_s=count / seconds, tokens=count, forwards=forwards[0], digest=digest,
                                warmup=warmup)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--draft-tokens", type=int, nargs="+", default=[0, 7])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--questions", nargs="+", default=QUESTIONS)
    parser.add_argument("--compile", action="store_true", help="torch.compile the decode forwards (dynamic shapes)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        import torch
        torch.set_num_threads(1)
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args)))
        return
    passed = ["--prompts", str(args.prompts), "--new-tokens", str(args.new_tokens), "--questions", *args.questions,
              *(["--compile"] if args.compile else [])]
    print(f"batch 1, 1 thread; each variant in a fresh process, interleaved, medians of {args.reps}; "
          f"load average at the start {os.getloadavg()[0]:.1f}")
    for run in args.runs:
        rows = {n: [] for n in args.draft_tokens}
        for _ in range(args.reps):
            for n in args.draft_tokens:
                cmd = [sys.executable, __file__, run, *passed, "--one", run, str(n)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                rows[n].append(json.loads(done.stdout.splitlines()[-1]))
        base = args.draft_tokens[0]
        for name in rows[base][0]:
            base_tok_s = statistics.median(r[name]["tok_s"] for r in rows[base])
            for n, reps in rows.items():
                tok_s = statistics.median(r[name]["tok_s"] for r in reps)
                first = reps[0][name]
                each = " / ".join(f"{r[name]['tok_s']:.0f}" for r in reps)
                same = "same tokens" if first["digest"] == rows[base][0][name]["digest"] else "OTHER TOKENS"
                print(f"{run} | {name:20s} | draft {n} | {tok_s:7.1f} tok/s "
                      f"({each}) | x{tok_s / base_tok_s:.2f} | "
                      f"{first['forwards'] / first['tokens']:.2f} forwards/token | {first['tokens']} tokens | {same} | "
                      f"warm-up {statistics.median(r[name]['warmup'] for r in reps):.1f} s")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
