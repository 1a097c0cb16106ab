"""LoRA against full fine-tuning on a GPT-2-small-shaped model: tokens/s, peak memory, checkpoint size.

The model is GPT-2 small's shape (12 layers x 768, 12 heads, vocab 50257, block 256) with random
weights; LoRA wraps the attention and MLP projections (rank 8, alpha 16). Both variants take the same
training step as the Trainer (autocast forward, backward, clip, AdamW from build_optimizers) on the same
random batch, bf16 where the CPU has native bf16 matmuls, else fp32. Each variant runs in a fresh
process, so its peak RSS (getrusage) is its own. CPU seconds per step are printed beside the wall-clock
speed: on a shared machine they move less when other processes take the cores. The checkpoint size
counts the tensor bytes a checkpoint must hold to resume: full = weights + AdamW moments; LoRA =
adapters + their AdamW moments (the frozen base is the model it started from, stored once, not in
every checkpoint).

Both variants compute the loss as the Trainer does, in row chunks without the whole logits
(GPT.forward with return_logits=False, gpt/linear_loss.py). Under bf16 the LoRA variant holds its frozen
base in bf16 as a LoRA run does (gpt/lora.py store_base); adapters, norms and optimizer stay fp32.

    python benchmarks/bench_lora.py [--steps 3] [--batch 4] [--rank 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gpt.checkpoint import weights_dict  # noqa: E402
from gpt.config import Config, ModelConfig  # noqa: E402
from gpt.lora import apply_lora, lora_state_dict, store_base, trainable_parameters  # noqa: E402
from gpt.model import GPT  # noqa: E402
from gpt.optim import build_optimizers  # noqa: E402
from gpt.runtime import autocast, cpu_has_bf16  # noqa: E402

GPT2_SMALL = ModelConfig(vocab_size=50257, block_size=256, n_layer=12, n_head=12, n_embd=768)


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))


def optimizer_bytes(optimizers) -> int:
    return sum(tensor_bytes(s.values()) for opt in optimizers for s in opt.state.values())


def measure(variant: str, steps: int, batch: int, rank: int, precision: str) -> dict:
    """One variant, in this process: median step time over `steps` steps after one warm-up step."""
    torch.manual_seed(0)
    model = GPT(GPT2_SMALL)
    if variant == "lora":  # as gpt/run_setup.py build_model sets a LoRA run up
        apply_lora(model, rank=rank, alpha=2 * rank)
        if precision == "bf16":
            store_base(model, torch.bfloat16)
    cfg = Config()
    optimizers = build_optimizers(model, cfg, torch.device("cpu"))
    data = torch.randint(0, GPT2_SMALL.vocab_size, (batch, GPT2_SMALL.block_size + 1),
                         generator=torch.Generator().manual_seed(1))
    x, y = data[:, :-1], data[:, 1:]
    times, cpu_times = [], []
    for i in range(steps + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        with autocast(torch.device("cpu"), precision):
            _, loss = model(x, y, return_logits=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        loss.item()
        if i > 0:  # the first step allocates the optimizer state and warms the allocator
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    kept = weights_dict(model) if variant == "full" else lora_state_dict(model)
    step = float(np.median(times))
    return {"variant": variant, "step_s": step, "cpu_s": float(np.median(cpu_times)),
            "tokens_per_s": batch * GPT2_SMALL.block_size / step,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "checkpoint_bytes": tensor_bytes(kept.values()) + optimizer_bytes(optimizers),
            "trainable": sum(p.numel() for p in trainable_parameters(model).values()),
            "params": model.num_params(), "loss": loss.item()}


def in_fresh_process(variant: str, args: argparse.Namespace, precision: str) -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--steps", str(args.steps), "--batch", str(args.batch),
           "--rank", str(args.rank), "--precision", precision]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--precision", default="")
    parser.add_argument("--child", choices=("full", "lora"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    precision = args.precision or ("bf16" if cpu_has_bf16() else "fp32")
    if args.child:
        print(json.dumps(measure(args.child, args.steps, args.batch, args.rank, precision)))
        return
    print(f"GPT-2 small shape, random weights, batch {args.batch} x {GPT2_SMALL.block_size}, {precision}, "
          f"{torch.get_num_threads()} threads, median of {args.steps} steps after 1 warm-up")
    variants = ("full", "lora")
    results = {v: in_fresh_process(v, args, precision) for v in variants}
    for r in results.values():
        print(f"  {r['variant']:>4}: {r['tokens_per_s']:5.0f} tokens/s "
              f"({r['step_s']:.2f} s, {r['cpu_s']:.2f} CPU s a step)  "
              f"peak RSS {r['peak_rss'] / 2**20:6.0f} MiB  checkpoint {r['checkpoint_bytes'] / 2**20:8.1f} MiB  "
              f"trainable {r['trainable']:,} of {r['params']:,}")
    full = results["full"]
    for name in variants[1:]:
        r = results[name]
        print(f"{name}: peak RSS / full = {r['peak_rss'] / full['peak_rss']:.2f}x (target <= 0.5x), "
              f"checkpoint / full = {r['checkpoint_bytes'] / full['checkpoint_bytes']:.2%} (target <= 5%), "
              f"tokens/s / full = {r['tokens_per_s'] / full['tokens_per_s']:.2f}x (target >= 1.2x; "
              f"{full['cpu_s'] / r['cpu_s']:.2f}x in CPU seconds per step)")


if __name__ == "__main__":
    main()
