"""Training throughput: tokens/s and MFU for the design's default model and the CPU presets, fp32 vs bf16.

MFU is counted against this machine's matmul peaks, measured in the same run (a large square matmul in
fp32 and in bf16; on CUDA "fp32" means TF32, as training runs it). Also reports the share of a step spent
fetching the batch, and, with --contention, the step time while a busy process competes for a core.
`gpt2-small` is GPT-2 small's shape (12 x 768, context 1024, vocab 50,304, micro-batch 16) for GPUs.

    python benchmarks/bench_train.py [--presets default cpu] [--steps 6] [--contention]
    python benchmarks/bench_train.py --device cuda --presets default gpt2-small --steps 20 --compile
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

import gpt.model  # noqa: E402
from gpt.batches import Batches  # noqa: E402
from gpt.config import resolve  # noqa: E402
from gpt.model import GPT  # noqa: E402
from gpt.optim import build_optimizers  # noqa: E402
from gpt.runtime import autocast, configure  # noqa: E402

# Shapes measured here that are not presets of their own: (preset, overrides).
SHAPES = {
    "gpt2-small": ("gpt2", {"model.n_layer": 12, "model.n_head": 12, "model.n_embd": 768, "model.block_size": 1024,
                            "tokenizer.vocab_size": 50304, "train.batch_size": 16}),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 4096, reps: int = 3) -> float:
    if device.type == "cuda":
        n, reps = 8192, 20
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def measure(preset: str, precision: str, steps: int, compile_model: bool = False,
            device: str | torch.device = "cpu", extra: dict | None = None) -> dict:
    device = torch.device(device)
    preset, overrides = SHAPES.get(preset, (preset, {}))
    cfg = resolve(preset=preset, overrides={**overrides, **(extra or {}), "train.precision": precision})
    cfg.model.vocab_size = cfg.tokenizer.vocab_size
    torch.manual_seed(0)
    model = GPT(cfg.model).to(device)
    opts = build_optimizers(model, cfg, device)
    tokens = np.random.default_rng(0).integers(0, cfg.model.vocab_size, 4_000_000).astype(np.uint16)
    batches = Batches(tokens, cfg.model.block_size, cfg.train.batch_size, seed=0, device=device)
    run = torch.compile(model) if compile_model else model
    fetch, times = [], []
    begin = time.perf_counter()
    warmup = 3 if device.type == "cuda" else 2
    for i in range(steps + warmup):
        sync(device)
        t0 = time.perf_counter()
        x, y = batches.next()
        sync(device)
        t1 = time.perf_counter()
        with autocast(device, precision):  # the trainer's call: the chunked loss where the logits are large
            _, loss = run(x, y, reduction="sum", return_logits=False)
        loss = loss / y.numel()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        loss.item()
        if i == warmup - 1:
            warm_s = time.perf_counter() - begin
        if i >= warmup:  # warm-up steps (allocator, compile, autotuning) excluded
            fetch.append(t1 - t0)
            times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    tokens_per_step = cfg.train.batch_size * cfg.model.block_size
    peak_mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return {"preset": preset, "precision": precision, "compile": compile_model, "step_ms": step * 1e3,
            "tokens_per_s": tokens_per_step / step, "flops": model.flops_per_token() * tokens_per_step / step,
            "fetch_share": float(np.median(fetch)) / step, "warmup_s": warm_s, "peak_gib": peak_mem}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["default", "cpu", "shakespeare-cpu"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to warm up)")
    parser.add_argument("--contention", action="store_true", help="also measure with a busy process beside")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. "
                        "train.batch_size=64")
    parser.add_argument("--loss-in-graph", choices=["auto", "never", "always"], default="auto",
                        help="compiled runs: the chunked loss inside the graph below gpt.model's limit (auto)")
    args = parser.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.set)
    gpt.model.COMPILED_LOSS_MAX_ELEMENTS = {"auto": gpt.model.COMPILED_LOSS_MAX_ELEMENTS, "never": 0,
                                            "always": 2**62}[args.loss_in_graph]
    device = torch.device(args.device)
    configure(device)  # TF32 matmuls on CUDA, as training sets them
    peak32, peak16 = matmul_peak(torch.float32, device), matmul_peak(torch.bfloat16, device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    print(f"torch {torch.__version__}, {where}; matmul peak fp32 {peak32 / 1e9:,.0f} GFLOP/s, "
          f"bf16 {peak16 / 1e9:,.0f}")
    for preset in args.presets:
        base = None
        variants = [("fp32", False), ("bf16", False)] + ([("bf16", True)] if args.compile else [])
        for precision, compiled in variants:
            try:
                r = measure(preset, precision, args.steps, compiled, device, extra)
            except Exception as e:  # one failing variant (say, compile on an older torch) must not hide the rest
                print(f"{preset:16s} {precision}{' compiled' if compiled else ''}: failed: {type(e).__name__}: {e}")
                continue
            base = base or r["tokens_per_s"]
            print(f"{preset:16s} {precision}{' compiled' if compiled else '':9s} step {r['step_ms']:7.1f} ms "
                  f"{r['tokens_per_s']:11,.0f} tok/s  x{r['tokens_per_s'] / base:.2f} vs fp32 eager  "
                  f"MFU {r['flops'] / peak16:.0%} of bf16 peak, {r['flops'] / peak32:.0%} of fp32 peak  "
                  f"batch fetch {r['fetch_share']:.2%} of the step  warm-up {r['warmup_s']:.1f} s"
                  + (f"  peak memory {r['peak_gib']:.1f} GiB" if device.type == "cuda" else ""), flush=True)
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
