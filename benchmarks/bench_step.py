"""The trainer's step time for a preset, this checkout against another: issue 19's regulariser A/B.

Each round runs a fresh process per checkout, one after the other (interleaved, so a slow spell of the
machine hits both): a `Trainer` on the first 90% of the corpus, `train_step()` timed over --steps after 5
warm-up steps, the preset's own regulariser and everything. Prints each round, the medians, and the ratio
of the other checkout's median to this one's. The other checkout is any directory holding a `gpt` package
(e.g. `git worktree add /tmp/old 29084d8`); its own preset of that name is used.

    python benchmarks/bench_step.py --against /tmp/old [--preset cpu] [--rounds 5] [--steps 30]
        [--corpus ../shared/data/tinyshakespeare.txt] [--set train.batch_size=16 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HERE = Path(__file__).resolve().parents[1]
CORPUS = HERE.parent / "shared" / "data" / "tinyshakespeare.txt"


def time_steps(preset: str, corpus: Path, steps: int, overrides: list[str]) -> float:
    """Milliseconds per train_step() in this process (whichever `gpt` it imports)."""
    from gpt.config import resolve
    from gpt.train import Trainer
    tmp = Path(tempfile.mkdtemp())
    raw = corpus.read_bytes()
    (tmp / "text.txt").write_bytes(raw[:len(raw) * 9 // 10])
    sets = dict(s.split("=", 1) for s in overrides)
    cfg = resolve(preset=preset, overrides={"data.input": [str(tmp / "text.txt")], "train.max_time": 0,
                                            "train.max_iters": 100000, **sets})
    trainer = Trainer(cfg, tmp / "run", resume="never", progress=False, log=lambda *a: None)
    for _ in range(5):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=False, help="another checkout's root (holding gpt/)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(time_steps(args.preset, args.corpus, args.steps, args.set)))
        return
    if not args.corpus.exists():
        sys.exit(f"error: no corpus at {args.corpus} (give --corpus FILE)")
    checkouts = {"this": HERE, **({"other": Path(args.against).resolve()} if args.against else {})}
    times: dict[str, list[float]] = {name: [] for name in checkouts}
    cmd = [sys.executable, __file__, "--one", "--preset", args.preset, "--steps", str(args.steps),
           "--corpus", str(args.corpus), "--set", *args.set]
    print(f"preset {args.preset}, {args.steps} steps after 5, fresh processes interleaved; "
          f"load average {os.getloadavg()[0]:.1f}")
    for round_ in range(args.rounds):
        for name in reversed(checkouts):  # the other checkout first in each round
            env = {**os.environ, "PYTHONPATH": str(checkouts[name])}
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=tempfile.gettempdir())
            times[name].append(json.loads(done.stdout.splitlines()[-1]))
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {t[-1]:.0f} ms" for n, t in times.items()))
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"{name:6s} {checkouts[name]}: median {median:.0f} ms/step")
    if "other" in medians:
        ratios = [o / t for o, t in zip(times["other"], times["this"])]
        print(f"this checkout is x{medians['other'] / medians['this']:.2f} faster by medians "
              f"(per round: {' / '.join(f'{r:.2f}' for r in ratios)}); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
