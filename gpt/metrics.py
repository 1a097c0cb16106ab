"""Where training metrics go: log.jsonl always, TensorBoard and Weights & Biases when asked, and loss.png.

``Metrics`` is opened once per run on rank 0 and closed at the end (closing flushes TensorBoard and
finishes the W&B run). A write that fails for lack of disk space costs that write only: the run goes on.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpt.config import Config, ConfigError, to_dict
from gpt.files import atomic_write


def guarded(what: str, write: Callable[[], None], warn: Callable[[str], None]) -> bool:
    """Run one write; a full disk (any OSError) costs that write only, never the run or the previous file."""
    try:
        write()
        return True
    except OSError as exc:  # every file is written atomically: the previous version stays whole
        warn(f"warning: could not write {what}: {exc.strerror or exc}; the previous one is intact")
        return False


class Metrics:
    """log.jsonl plus the optional sinks of cfg.train (tensorboard, wandb); `close()` at the end of a run."""

    def __init__(self, run_dir: str | Path, cfg: Config, warn: Callable[[str], None] = print):
        self.run_dir, self.warn = Path(run_dir), warn
        self.sinks: list[Callable[[dict], None]] = []
        self.closers: list[Callable[[], None]] = []
        if cfg.train.tensorboard:
            self._open_tensorboard()
        if cfg.train.wandb:
            self._open_wandb(cfg)

    def _open_tensorboard(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("train.tensorboard needs the tensorboard package (pip install 'gpt[tensorboard]')") \
                from None
        writer = SummaryWriter(str(self.run_dir / "tensorboard"))

        def to_tensorboard(record: dict) -> None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    writer.add_scalar(key, value, record["step"])
            writer.flush()
        self.sinks.append(to_tensorboard)
        self.closers.append(writer.close)

    def _open_wandb(self, cfg: Config) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError("train.wandb needs the wandb package (pip install 'gpt[wandb]')") from None
        run = wandb.init(project="gpt", dir=str(self.run_dir), config=to_dict(cfg), resume="allow")
        self.sinks.append(lambda r: run.log({k: v for k, v in r.items() if k != "step"}, step=r["step"]))
        self.closers.append(run.finish)

    def log(self, record: dict[str, Any]) -> None:
        def append() -> None:
            with open(self.run_dir / "log.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        guarded("log.jsonl", append, self.warn)
        for sink in self.sinks:
            sink(record)

    def records(self) -> list[dict]:
        """log.jsonl's records, passing over a line a full disk cut short (or a log it never let start)."""
        records = []
        try:
            with open(self.run_dir / "log.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        except OSError:
            pass
        return records

    def plot(self) -> None:
        """loss.png: train and validation loss by step (needs matplotlib, the [plot] extra; skipped without)."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        records = self.records()
        train = [(r["step"], r["loss"]) for r in records if "loss" in r]
        val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
        if not (train or val):  # e.g. a full disk kept log.jsonl from being written: nothing to draw
            return
        fig, ax = plt.subplots(figsize=(7, 4))
        if train:
            ax.plot(*zip(*train), label="train", alpha=0.7)
        if val:
            ax.plot(*zip(*val), "o-", label="val")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        ax.legend()
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=90)
        plt.close(fig)
        guarded("loss.png", lambda: atomic_write(self.run_dir / "loss.png", png.getvalue()), self.warn)

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers, self.sinks = [], []


class ProgressLine:
    """The terminal's view of a run: a tqdm bar on a terminal, else a line every 10 logged steps."""

    def __init__(self, bar: bool, total: int | None, initial: int, every: int, log: Callable[[str], None]):
        self.bar, self.every, self.log = None, every, log
        if bar:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True, disable=None)

    def show(self, record: dict) -> None:
        text = f"loss {record['loss']:.4f} lr {record['lr']:.2e} {record['tokens_per_s']:,} tok/s"
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
        elif record["step"] % (10 * self.every) == 0 or record["step"] == 1:
            self.log(f"step {record['step']}: {text} ({record['elapsed']:.0f}s)")

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
