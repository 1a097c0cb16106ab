"""Generation speed at batch 1: the cached path through GPT.forward (gpt/sampling.py) vs the fast decode step
(gpt/decode.py), each variant in a fresh process, interleaved, medians of --reps.

Variants: old-bf16 (GPT.forward under bf16 autocast: what `Generator` did on a CPU with avx512_bf16),
old-fp32, new-fp32 (the fast step, fp32 weights, no autocast); new-bf16w (bf16 weights) and
new-compile (torch.compile of the step, compile time reported apart; new-compile-bf16w with bf16 weights)
on request. One torch thread, as `Generator` sets on CPU. Greedy, 500 new tokens after a 16-token prompt,
random weights. Tokens/s is reported by wall clock and by this process's CPU time (less sensitive to a
busy machine), with the load average; every variant must produce the same tokens as old-fp32 (bf16
variants are only compared with each other).

    python benchmarks/bench_generate.py [--reps 3] [--presets cpu default] [--variants old-fp32 new-fp32]
    python benchmarks/bench_generate.py --ceiling   # the weights' matrix-vector products alone: the bound
    python benchmarks/bench_generate.py --device cuda --presets cpu default gpt2 --variants old-bf16 new-fp32 ...

On CUDA the autocast is CUDA's, the clock waits for the device, and the thread count is left alone.
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

import torch  # noqa: E402

from gpt.config import PRESETS, ModelConfig, SampleConfig  # noqa: E402
from gpt.model import GPT  # noqa: E402

MODELS = {
    # the cpu preset with a 512-token context, so 16 + 500 tokens never slide the window
    "cpu": {**{k.split(".")[1]: v for k, v in PRESETS["cpu"].items() if k.startswith("model.")},
            "vocab_size": 1024, "block_size": 512},
    # the design default (GPT-2 style 6 x 384) as in bench_model.py
    "default": {"vocab_size": 4096, "block_size": 1024},
    # GPT-2 small's shape, the GPU recipe's model
    "gpt2": {"n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 50304, "block_size": 1024},
}
VARIANTS = ("old-bf16", "old-fp32", "new-fp32", "new-bf16w", "new-compile", "new-compile-bf16w")


def build(preset: str, variant: str, device: str = "cpu") -> GPT:
    torch.manual_seed(0)
    model = GPT(ModelConfig(**MODELS[preset])).eval()
    with torch.no_grad():  # zero-init projections would make every token's logits alike
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.to(device, torch.bfloat16 if variant.endswith("bf16w") else None)


def generator_for(variant: str):
    """The generate function of a variant, and the autocast dtype it runs under (None: none)."""
    if variant.startswith("old"):
        from gpt.sampling import generate
        return generate, torch.bfloat16 if variant == "old-bf16" else None
    import gpt.decode
    if variant.startswith("new-compile"):  # as gpt serve --compile compiles it
        forward = torch.compile(gpt.decode.decode_block, dynamic=True)
        return lambda model, idx, opts: torch.cat([idx, *gpt.decode.decode_stream(model, idx, opts, forward=forward)],
                                                  dim=1), None
    return gpt.decode.fast_generate, None


def run_one(preset: str, variant: str, n: int, device: str = "cpu") -> dict:
    """Time one variant in this process: a 20-token warm-up (the compile, if any), then n tokens."""
    if device == "cpu":
        torch.set_num_threads(1)
    model = build(preset, variant, device)
    generate, amp = generator_for(variant)
    prompt = torch.randint(0, model.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    prompt = prompt.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    with torch.inference_mode(), torch.autocast(device, dtype=amp or torch.bfloat16, enabled=amp is not None):
        start = time.perf_counter()
        generate(model, prompt, SampleConfig(max_new_tokens=20, temperature=0))
        sync()
        warmup = time.perf_counter() - start
        wall, cpu = time.perf_counter(), time.process_time()
        out = generate(model, prompt, SampleConfig(max_new_tokens=n, temperature=0))
        sync()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    digest = hashlib.sha256(out.cpu().numpy().tobytes()).hexdigest()[:12]
    return dict(preset=preset, variant=variant, wall=n / wall, cpu=n / cpu, warmup=warmup, tokens=digest,
                load=os.getloadavg()[0])


def ceiling(preset: str, reps: int = 300) -> None:
    """The weights' matrix-vector products alone, per token (every nn.Linear of the model once, nothing else):
    what no decoding loop can beat. Bytes read per token over the time is the memory bandwidth reached."""
    model = build(preset, "new-fp32")
    for dtype in (torch.float32, torch.bfloat16):
        layers = [(m.weight.to(dtype), torch.randn(1, 1, m.in_features, dtype=dtype))
                  for m in model.modules() if isinstance(m, torch.nn.Linear)]
        size = sum(w.numel() * w.element_size() for w, _ in layers)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            times = []
            with torch.inference_mode():
                for _ in range(7):
                    start = time.perf_counter()
                    for _ in range(reps):
                        for w, x in layers:
                            torch.nn.functional.linear(x, w)
                    times.append((time.perf_counter() - start) / reps)
            best, median = min(times), statistics.median(times)
            print(f"{preset:8s} ceiling {str(dtype)[6:]:9s} {threads} thread(s): best {1 / best:6.0f} tok/s, median "
                  f"{1 / median:6.0f} ({len(layers)} products, {size / 1e6:.1f} MB, best {size / best / 1e9:.1f} GB/s)")


def fresh(preset: str, variant: str, n: int, device: str) -> dict:
    cmd = [sys.executable, __file__, "--one", preset, variant, "--new-tokens", str(n), "--device", device]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])


def report(preset: str, rows: list[dict], baseline: str) -> None:
    by = {v: [r for r in rows if r["variant"] == v] for v in dict.fromkeys(r["variant"] for r in rows)}
    base = statistics.median(r["wall"] for r in by[baseline]) if baseline in by else None
    for variant, runs in by.items():
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        ratio = f"x{wall / base:.2f} vs {baseline}" if base else ""
        warmup = statistics.median(r["warmup"] for r in runs)
        print(f"{preset:8s} {variant:12s} {wall:7.1f} tok/s wall ({_each(runs, 'wall', '.0f')}) {cpu:7.1f} tok/s cpu  "
              f"warm-up {warmup:5.2f} s  {ratio:20s} tokens {runs[0]['tokens']}  load {_each(runs, 'load', '.1f')}")


def _each(runs: list[dict], key: str, fmt: str) -> str:
    return " / ".join(format(r[key], fmt) for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=500)
    parser.add_argument("--presets", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--variants", nargs="+", default=["old-bf16", "old-fp32", "new-fp32"], choices=VARIANTS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--ceiling", action="store_true", help="time the matrix-vector products alone, then exit")
    parser.add_argument("--one", nargs=2, metavar=("PRESET", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.new_tokens, args.device)))
        return
    if args.ceiling:
        for preset in args.presets:
            ceiling(preset)
        return
    threads = "1 thread" if args.device == "cpu" else torch.cuda.get_device_name(0)
    print(f"batch 1, {threads}, greedy, {args.new_tokens} new tokens; each variant in a fresh process, "
          f"interleaved, medians of {args.reps}; load average at the start {os.getloadavg()[0]:.1f}")
    for preset in args.presets:
        rows = [fresh(preset, v, args.new_tokens, args.device) for _ in range(args.reps) for v in args.variants]
        report(preset, rows, "old-fp32")


if __name__ == "__main__":
    main()
