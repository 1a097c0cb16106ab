"""The Tiny Shakespeare CPU speedrun: best validation bits per byte in a wall-clock budget, everything included.

Protocol: the last 10% of the file's bytes are held out. The clock starts before the tokenizer is
trained (on the first 90% only) and covers data preparation and training; the schedule is fitted to
what is left of the budget. Then the whole held-out text is scored once, in non-overlapping windows
of block_size tokens (every held-out token predicted once, windows not overlapping, so the first
tokens of each window see little context), as bits per byte = total nats / (ln 2 * held-out bytes).

    python benchmarks/speedrun.py [--budget 70] [--preset shakespeare-cpu] [--processes 2] [--seeds 4]
                                  [--section.key value ...]

One run's score depends on its seed (initial weights, the order of the windows) by as much as 0.04:
--seeds N runs seeds 1337, 1, 2, ..., N - 1 one after the other, each in a fresh process, and reports
their median, which is the figure to compare.

nanoGPT's CPU recipe reaches 2.74 bits per byte on the same held-out text in the same time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


from gpt.batches import eval_windows  # noqa: E402
from gpt.config import parse_overrides, resolve  # noqa: E402
from gpt.data import token_byte_lengths  # noqa: E402
from gpt.evaluate import evaluate  # noqa: E402
from gpt.train import Trainer  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
NANOGPT_BPB = 2.74


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=70.0, help="seconds, tokenizer + data + training")
    parser.add_argument("--preset", default="shakespeare-cpu")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--seeds", type=int, default=1, help="runs with seeds 1337, 1, 2, ...; their median")
    parser.add_argument("--processes", type=int, default=1, help="train in this many processes of one thread each "
                        "(torchrun, gloo); the clock starts before they do")
    args, extra = parser.parse_known_args()
    if not Path(args.data).exists():
        sys.exit(f"speedrun: {args.data} not found (it lives in ../shared/data beside the checkout)")
    if args.seeds > 1:
        sys.exit(over_seeds(args.seeds, extra + [f"--{k}={v}" for k, v in vars(args).items()
                                                 if k in ("budget", "preset", "data", "processes")]))
    raw = Path(args.data).read_bytes()
    cut = len(raw) - len(raw) // 10
    launched = os.environ.get("SPEEDRUN_DIR")  # a process of a --processes run: the launcher's folder and files
    with tempfile.TemporaryDirectory() as tmp:
        tmp = launched or tmp
        train_file, val_file = Path(tmp) / "train.txt", Path(tmp) / "val.txt"
        if not launched:
            train_file.write_bytes(raw[:cut])
            val_file.write_bytes(raw[cut:])
        if args.processes > 1 and "RANK" not in os.environ:
            sys.exit(launch(args.processes, tmp))
        overrides = {"data.input": [str(train_file)], "data.val_input": [str(val_file)], "train.seed": args.seed,
                     **({"train.threads": 1} if "RANK" in os.environ else {}), **parse_overrides(extra)}
        cfg = resolve(preset=args.preset, overrides=overrides)
        start = float(os.environ.get("SPEEDRUN_START", time.time()))
        trainer = Trainer(cfg, Path(tmp) / "run", resume="never", progress=False, log=lambda *a: None)
        (setup,) = trainer.dist.sum([time.time() - start], trainer.device)  # one budget for all processes
        setup /= trainer.dist.world_size
        # 2 s for the end: the final save, and validation of the last step's weights and of their moving average
        # on 4 batches (the trainer keeps the better: a choice worth more than one batch's evidence)
        trainer.cfg.train.max_time = max(1.0, args.budget - setup - 2.0)
        trainer.cfg.train.eval_iters = 4
        result = trainer.run()
        wall = time.time() - start
        if not trainer.dist.master:
            return
        bpb, loss = score(trainer, len(raw) - cut)
    m = cfg.model
    kept = "the weights' moving average" if result.get("weights") == "averaged" else "the last step's"
    print(f"speedrun: {bpb:.4f} bits/byte on the held-out 10% ({loss:.4f} nats/token), {kept} | wall {wall:.1f}s "
          f"(setup {setup:.1f}s, {trainer.step} steps, {trainer.tokens_seen / 1e6:.2f}M tokens) | "
          f"{m.n_layer}x{m.n_embd} block {m.block_size} vocab {trainer.tokenizer.vocab_size} | "
          f"nanoGPT {NANOGPT_BPB} -> ratio {bpb / NANOGPT_BPB:.3f}")


def launch(processes: int, folder: str) -> int:
    """This script again under torchrun, in `processes` processes sharing folder, timed from now."""
    env = {**os.environ, "SPEEDRUN_DIR": folder, "SPEEDRUN_START": repr(time.time()), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", "29531", __file__, *sys.argv[1:]]
    return subprocess.run(command, env=env).returncode


def over_seeds(count: int, passed: list[str]) -> int:
    """This script once per seed, each in a fresh process; prints every score and their median."""
    scores = []
    for seed in [1337, *range(1, count)]:
        run = subprocess.run([sys.executable, __file__, "--seed", str(seed), *passed], capture_output=True, text=True)
        line = run.stdout.strip().splitlines()[-1] if run.returncode == 0 and run.stdout.strip() else ""
        if not line.startswith("speedrun: "):
            print(f"speedrun: seed {seed} failed: {(run.stderr or run.stdout).strip()[-500:]}")
            return 1
        print(f"seed {seed}: {line}", flush=True)
        scores.append(float(line.split()[1]))
    print(f"speedrun: median {statistics.median(scores):.4f} bits/byte over {count} seeds "
          f"(min {min(scores):.4f}, max {max(scores):.4f}) | nanoGPT {NANOGPT_BPB} -> ratio "
          f"{statistics.median(scores) / NANOGPT_BPB:.3f}")
    return 0


def score(trainer: Trainer, val_bytes: int) -> tuple[float, float]:
    """Bits per byte and nats per token of the whole held-out text, through gpt/evaluate.py."""
    lengths = token_byte_lengths(trainer.tokenizer)
    tokens = trainer.data.val
    assert int(lengths[tokens.astype("int64")].sum()) == val_bytes, "held-out tokens must decode to the held-out bytes"
    # every held-out byte but the first token's, which has no context, is scored
    windows = eval_windows(tokens, trainer.model.config.block_size, 32)
    result = evaluate(trainer.model, windows, lengths, trainer.device, trainer.precision)
    return result["bpb"], result["loss"]


if __name__ == "__main__":
    main()
