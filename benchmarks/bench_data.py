"""Data preparation at scale: tokenization MB/s and peak RSS on a generated corpus (default 1 GB), and
the cost of fetching a batch relative to a training step of the CPU preset.

The corpus is the Python standard library's .py files, repeated, written as many files to a temp dir.
Preparation runs in a fresh process so its peak RSS (and its encoder processes') is its own.

    python benchmarks/bench_data.py [--mb 1024]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bpe import stdlib_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1024)
    args = parser.parse_args()
    from gpt.bpe import Tokenizer
    text = stdlib_corpus()
    tok = Tokenizer.train([text], 32768, "gpt4", ["<|endoftext|>"], workers=os.cpu_count() or 1)
    block = text.encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tok.save(root / "tok.json")
        corpus = root / "corpus"
        corpus.mkdir()
        written, i = 0, 0
        while written < args.mb * 1e6:
            (corpus / f"part{i:04d}.txt").write_bytes(block)
            written, i = written + len(block), i + 1
        single = single_thread_mbps(tok, text)
        code = ("import resource, time; from gpt.bpe_formats import load_tokenizer; from gpt.data import prepare; "
                f"t = load_tokenizer({str(root / 'tok.json')!r}); s = time.perf_counter(); "
                f"d = prepare([{str(corpus)!r}], t, {str(root / 'cache')!r}, progress=False, log=lambda *a: None); "
                "print(time.perf_counter() - s, len(d.train) + len(d.val), "
                "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
                "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        seconds, n_tokens, rss, worker_rss = float(out[0]), int(out[1]), int(out[2]) / 1024, int(out[3]) / 1024
        cores = os.cpu_count() or 1
        total_rss = rss + cores * worker_rss  # an upper bound: forked workers share pages, peaks need not meet
        rate = written / 1e6 / seconds
        print(f"prepare: {written / 1e6:.0f} MB in {i} files -> {n_tokens:,} tokens in {seconds:.1f}s = "
              f"{rate:.1f} MB/s "
              f"(target 0.8 x {cores} cores x {single:.1f} MB/s single-thread = {0.8 * cores * single:.1f} MB/s; "
              f"x{rate / (0.8 * cores * single):.2f}); peak RSS {rss:.0f} MB + {cores} workers x {worker_rss:.0f} MB "
              f"<= {total_rss:.0f} MB")
    batch_cost()


def single_thread_mbps(tok, text: str) -> float:
    """The fast encoder on one thread, by the path prepare uses (ids straight into an array); best of 3."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        tok.encode_to_array(text)
        times.append(time.perf_counter() - start)
    return len(text.encode("utf-8")) / 1e6 / min(times)


def batch_cost() -> None:
    import numpy as np
    import torch

    from gpt.batches import Batches
    from gpt.config import resolve
    from gpt.model import GPT
    cfg = resolve(preset="cpu")
    cfg.model.vocab_size = cfg.tokenizer.vocab_size
    tokens = np.random.default_rng(0).integers(0, cfg.model.vocab_size, 50_000_000).astype(np.uint16)
    batches = Batches(tokens, cfg.model.block_size, cfg.train.batch_size, seed=0)
    start = time.perf_counter()
    for _ in range(200):
        x, y = batches.next()
    fetch = (time.perf_counter() - start) / 200
    model = GPT(cfg.model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x, y)[1].backward()
    start = time.perf_counter()
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x, y)[1].backward()
    step = (time.perf_counter() - start) / 3
    print(f"batch fetch: {fetch * 1e3:.2f} ms vs {step * 1e3:.0f} ms forward+backward (cpu preset, bf16) = "
          f"{fetch / step:.2%} of a step")


if __name__ == "__main__":
    main()
