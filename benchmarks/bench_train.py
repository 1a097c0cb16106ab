"""Training throughput: tokens/s and MFU for the design's default model and the CPU presets, fp32 vs bf16.

MFU is counted against this machine's matmul peaks, measured in the same run (a large square matmul in
fp32 and in bf16). Also reports the share of a step spent fetching the batch, and, with --contention,
the step time while a busy process competes for a core.

    python benchmarks/bench_train.py [--presets default cpu] [--steps 6] [--contention]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gpt.batches import Batches  # noqa: E402
from gpt.config import resolve  # noqa: E402
from gpt.model import GPT  # noqa: E402
from gpt.optim import build_optimizers  # noqa: E402
from gpt.runtime import autocast  # noqa: E402


def matmul_peak(dtype: torch.dtype, n: int = 4096, reps: int = 3) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start)


def measure(preset: str, precision: str, steps: int, compile_model: bool = False) -> dict:
    cfg = resolve(preset=preset, overrides={"train.precision": precision})
    cfg.model.vocab_size = cfg.tokenizer.vocab_size
    torch.manual_seed(0)
    model = GPT(cfg.model)
    opts = build_optimizers(model, cfg, torch.device("cpu"))
    tokens = np.random.default_rng(0).integers(0, cfg.model.vocab_size, 2_000_000).astype(np.uint16)
    batches = Batches(tokens, cfg.model.block_size, cfg.train.batch_size, seed=0)
    run = torch.compile(model) if compile_model else model
    device = torch.device("cpu")
    fetch, times = [], []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        x, y = batches.next()
        t1 = time.perf_counter()
        with autocast(device, precision):
            _, loss = run(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        loss.item()
        if i >= 2:  # warm-up steps (allocator, compile) excluded
            fetch.append(t1 - t0)
            times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    tokens_per_step = cfg.train.batch_size * cfg.model.block_size
    return {"preset": preset, "precision": precision, "compile": compile_model, "step_ms": step * 1e3,
            "tokens_per_s": tokens_per_step / step, "flops": model.flops_per_token() * tokens_per_step / step,
            "fetch_share": float(np.median(fetch)) / step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["default", "cpu", "shakespeare-cpu"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to warm up)")
    parser.add_argument("--contention", action="store_true", help="also measure with a busy process beside")
    args = parser.parse_args()
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ['OMP_WAIT_POLICY']}; matmul peak fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f}")
    for preset in args.presets:
        base = None
        variants = [("fp32", False), ("bf16", False)] + ([("bf16", True)] if args.compile else [])
        for precision, compiled in variants:
            r = measure(preset, precision, args.steps, compiled)
            base = base or r["tokens_per_s"]
            print(f"{preset:16s} {precision}{' compiled' if compiled else '':9s} step {r['step_ms']:7.0f} ms "
                  f"{r['tokens_per_s']:9,.0f} tok/s  x{r['tokens_per_s'] / base:.2f} vs fp32 eager  "
                  f"MFU {r['flops'] / peak16:.0%} of bf16 peak, {r['flops'] / peak32:.0%} of fp32 peak  "
                  f"batch fetch {r['fetch_share']:.2%} of the step")
    if args.contention:
        alone = measure("cpu", "bf16", args.steps)["step_ms"]
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1)
            shared = measure("cpu", "bf16", args.steps)["step_ms"]
        finally:
            busy.kill()
        print(f"contention (cpu preset, bf16): alone {alone:.0f} ms/step, beside a busy process {shared:.0f} ms/step "
              f"-> {shared / alone:.2f}x slower")


if __name__ == "__main__":
    main()
