"""The training loop: plain code, no framework, assembled from the pieces around it.

``Trainer`` owns one run directory (locked while it trains). Set-up comes from gpt/run_setup.py
(tokenizer, token cache, --init-from, resume point), the device and processes from gpt/runtime.py,
optimizers and the schedule from gpt/optim.py, evaluation from gpt/evaluate.py, checkpoints from
gpt/checkpoint.py and metrics from gpt/metrics.py. What is left here is the loop: take batches from a
batch source, forward/backward under autocast, clip, step, log; evaluate every ``eval_interval`` steps;
checkpoint every ``ckpt_interval`` steps and on Ctrl-C / SIGTERM. A run resumes exactly where it stopped.
"""

from __future__ import annotations

import math
import platform
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpt import __version__
from gpt.batches import Batches, eval_windows
from gpt.checkpoint import Checkpointer, load_state, load_weights, save_weights
from gpt.config import Config, to_dict
from gpt.data import check_sizes, token_byte_lengths
from gpt.errors import GPTError
from gpt.evaluate import evaluate
from gpt.files import RunLock
from gpt.metrics import Metrics, guarded
from gpt.model import GPT, IGNORE_INDEX
from gpt.optim import build_optimizers, lr_multiplier, set_lr
from gpt.run_setup import commit_run, load_init_weights, prepare_run
from gpt.runtime import (
    autocast,
    configure,
    grad_scaler,
    init_distributed,
    rank_device,
    resolve_device,
    resolve_precision,
    wrap_model,
)
from gpt.sampling import generate


class TrainError(GPTError):
    """A run that cannot start or continue; the CLI prints it as one line (exit code in .code)."""


class Trainer:
    """Trains cfg's model on cfg's data into run_dir; see the module docstring."""

    def __init__(self, cfg: Config, run_dir: str | Path, resume: str = "auto", init_from: str | None = None,
                 explicit: set[str] = frozenset(), progress: bool = True, log=print):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.dist = init_distributed(cfg.train.device)
        self.log = log if self.dist.master else (lambda *a, **k: None)
        self.device = rank_device(resolve_device(cfg.train.device), self.dist)
        self.precision = resolve_precision(cfg.train.precision, self.device)
        configure(self.device, cfg.train.threads, seed=cfg.train.seed + self.dist.rank)
        self.lock = RunLock(self.run_dir).acquire() if self.dist.master else None
        self.metrics: Metrics | None = None
        self.step, self.tokens_seen, self.elapsed, self.best_val = 0, 0, 0.0, float("inf")
        self.eval_history: list[dict] = []
        self.stop_signal: str | None = None
        try:
            self._set_up(resume, init_from, explicit)
        except BaseException:
            self.close(clean=False)
            raise
        self._print_header()

    def _set_up(self, resume: str, init_from: str | None, explicit: set[str]) -> None:
        cfg = self.cfg
        prepared = prepare_run(cfg, self.run_dir, self.dist, resume, init_from, explicit, self.progress, self.log)
        self.tokenizer, self.data = prepared.tokenizer, prepared.data
        check_sizes(self.data, cfg.model.block_size)
        self.model = GPT(cfg.model).to(self.device)
        if init_from and prepared.checkpoint is None:  # a resumed run has its own weights
            load_init_weights(self.model, init_from)
            self.log(f"init: weights from {init_from}")
        self.optimizers = build_optimizers(self.model, cfg, self.device)
        self.scaler = grad_scaler(self.device, self.precision)
        self.batches = Batches(self.data.train, cfg.model.block_size, self._per_rank_batch(), cfg.train.seed,
                               self.dist.rank, self.dist.world_size, self.device)
        self.byte_lengths = token_byte_lengths(self.tokenizer)
        self.checkpointer = Checkpointer(self.run_dir)
        if prepared.checkpoint is not None:
            self._restore(prepared.checkpoint)
        self.train_model = wrap_model(self.model, self.device, self.dist, self._want_compile())
        if self.dist.master:
            commit_run(self.run_dir, cfg, prepared, fresh=resume == "never")
            self.metrics = Metrics(self.run_dir, cfg, warn=self.log)

    def _per_rank_batch(self) -> int:
        per_rank, world = self.cfg.train.batch_size // self.dist.world_size, self.dist.world_size
        if per_rank * world != self.cfg.train.batch_size:
            raise TrainError(f"train.batch_size {self.cfg.train.batch_size} must divide by the {world} processes", 2)
        return per_rank

    def _want_compile(self) -> bool:
        mode = self.cfg.train.compile
        # auto: on GPUs only; on CPU a 30+ s cold compile does not pay in a short run (benchmarks/README.md)
        return mode == "on" or (mode == "auto" and self.device.type == "cuda")

    def _print_header(self) -> None:
        cfg, m, tr = self.cfg, self.model, self.cfg.train
        self.log(f"gpt {__version__} | torch {torch.__version__} | python {platform.python_version()} | "
                 f"device {self.device} | precision {self.precision} | threads {torch.get_num_threads()} | "
                 f"processes {self.dist.world_size} | compile {self._want_compile()}")
        self.log(f"model: {cfg.model.n_layer} layers x {cfg.model.n_embd}, {cfg.model.n_head} heads, "
                 f"block {cfg.model.block_size}, vocab {cfg.model.vocab_size} (from the tokenizer), "
                 f"{m.num_params() / 1e6:.2f}M parameters ({m.wte.weight.numel() / 1e6:.2f}M in the token embedding"
                 f"{', tied to the LM head' if cfg.model.tie_embeddings else ''})")
        budget = f", time budget {tr.max_time:.0f}s" if tr.max_time else ""
        warmup = tr.warmup_iters if tr.warmup_iters >= 0 else "2% of the run"
        self.log(f"train: {len(self.data.train):,} tokens, val {len(self.data.val):,} tokens; "
                 f"{self.tokens_per_step:,} tokens/step (batch {tr.batch_size} x accum {tr.grad_accum} x block "
                 f"{cfg.model.block_size}); up to {tr.max_iters:,} steps{budget}; warmup {warmup}; schedule "
                 f"{tr.schedule}; optimizer {tr.optimizer}; run dir {self.run_dir}")

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.train.batch_size * self.cfg.train.grad_accum * self.cfg.model.block_size

    # -- the loop
    def progress_fraction(self) -> float:
        tr = self.cfg.train
        by_steps = self.step / tr.max_iters
        return max(by_steps, self.elapsed / tr.max_time) if tr.max_time else by_steps

    def train_step(self) -> float:
        """One optimizer step over grad_accum micro-batches; returns the loss per target token.

        The loss is summed over target tokens and divided by their count over all micro-batches and all
        processes, so every target token weighs the same however the masks fall (DDP averages gradients
        over processes, hence the factor world_size).
        """
        micro = [self.batches.next() for _ in range(self.cfg.train.grad_accum)]
        local = sum(int((y != IGNORE_INDEX).sum()) for _, y in micro)
        (global_count,) = self.dist.sum([float(local)], self.device)
        scale = self.dist.world_size / max(global_count, 1.0)
        total = torch.zeros((), device=self.device)
        for x, y in micro:
            with autocast(self.device, self.precision):
                _, loss_sum = self.train_model(x, y, reduction="sum")
            self.scaler.scale(loss_sum * scale).backward()
            total += loss_sum.detach()
        for opt in self.optimizers:
            self.scaler.unscale_(opt)
        if self.cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        for opt in self.optimizers:
            self.scaler.step(opt)
        self.scaler.update()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        (loss_total,) = self.dist.sum([total.item()], self.device)
        return loss_total / max(global_count, 1.0)

    def run(self) -> dict[str, Any]:
        """Train until max_iters or max_time, then evaluate and save; returns the final metrics."""
        previous = self._install_signal_handlers()
        try:
            return self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.close()

    def _loop(self) -> dict[str, Any]:
        tr = self.cfg.train
        bar = self._bar()
        flops_per_step = self.model.flops_per_token() * self.tokens_per_step
        last_time, last_step = time.perf_counter(), self.step
        loop_start = time.perf_counter() - self.elapsed
        while self.progress_fraction() < 1.0:
            lr = tr.lr * lr_multiplier(self.cfg, self.step, self.progress_fraction())
            set_lr(self.optimizers, lr / tr.lr)
            loss = self.train_step()
            self.step += 1
            self.tokens_seen += self.tokens_per_step
            self.elapsed = time.perf_counter() - loop_start
            if not math.isfinite(loss):
                self._nan_stop(loss)
            if self.step % tr.log_interval == 0 or self.step == 1:
                now = time.perf_counter()
                dt = (now - last_time) / max(1, self.step - last_step)
                last_time, last_step = now, self.step
                self._log_step({"step": self.step, "loss": round(loss, 5), "lr": lr,
                                "tokens_per_s": round(self.tokens_per_step / dt),
                                "flops_per_s": round(flops_per_step / dt), "elapsed": round(self.elapsed, 2),
                                "tokens": self.tokens_seen}, bar)
            if bar is not None:
                bar.update(1)
            if self.stop_signal:
                saved = "checkpoint saved in" if self.save() is None else "the last intact checkpoint is kept in"
                raise TrainError(f"stopped by {self.stop_signal} at step {self.step}; {saved} "
                                 f"{self.run_dir} (run the same command again to resume)", 130)
            if self.step % tr.eval_interval == 0:
                self.save()  # save first: an eval must never cost a checkpoint
                self.evaluate_and_log()
            elif self.step % tr.ckpt_interval == 0:
                self.save()
        if bar is not None:
            bar.close()
        problem = self.save()
        done_before = self.eval_history and self.eval_history[-1]["step"] == self.step
        result = dict(self.eval_history[-1], final=True) if done_before else self.evaluate_and_log(final=True)
        # The run outlived failed saves; a result it could not save must not pass in silence. Raised after
        # the evaluation, which every process takes part in, so no process waits on rank 0.
        if problem:
            raise self._unsaved(problem)
        return result

    def close(self, clean: bool = True) -> None:
        """End the run's resources: sinks, the process group (after a barrier if clean), the run's lock."""
        if self.metrics is not None:
            self.metrics.close()
        if clean:
            self.dist.teardown()
        if self.lock is not None:
            self.lock.release()

    # -- evaluation
    def evaluate(self, max_batches: int | None = None) -> dict[str, float]:
        """Validation loss (nats/token) and bits per byte on the first eval_iters batches of windows."""
        block = min(self.cfg.model.block_size, len(self.data.val) - 1)
        windows = eval_windows(self.data.val, block, self.cfg.train.batch_size,
                               max_batches or self.cfg.train.eval_iters, self.dist.rank, self.dist.world_size)
        result = evaluate(self.model, windows, self.byte_lengths, self.device, self.precision, self.dist)
        return {"val_loss": result["loss"], "val_bpb": result["bpb"]}

    def evaluate_and_log(self, final: bool = False) -> dict[str, Any]:
        metrics = self.evaluate()
        record = {"step": self.step, **{k: round(v, 5) for k, v in metrics.items()}, "elapsed": round(self.elapsed, 2)}
        if final:
            record["final"] = True
        self.eval_history.append(record)
        if self.dist.master:
            self.metrics.log(record)
            if metrics["val_loss"] < self.best_val:
                self.best_val = metrics["val_loss"]
                guarded("best.safetensors", lambda: save_weights(self.model, self.run_dir / "best.safetensors",
                                                                 {"step": str(self.step)}), self.log)
            self.log(f"step {self.step}: val loss {metrics['val_loss']:.4f}, {metrics['val_bpb']:.4f} bits/byte")
            self.metrics.plot()
            if self.cfg.train.sample_tokens:
                self.log("sample: " + self.sample(self.cfg.train.sample_tokens).replace("\n", "\n        "))
        return record

    def sample(self, n_tokens: int, prompt: str = "") -> str:
        start = self.tokenizer.encode(prompt) if prompt else [self.tokenizer.eot_id or 10]
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed)
        opts = type(self.cfg.sample)(max_new_tokens=n_tokens, temperature=0.8, top_k=50)
        self.model.eval()
        with autocast(self.device, self.precision):
            out = generate(self.model, torch.tensor([start], device=self.device), opts, gen)
        self.model.train()
        return self.tokenizer.decode(out[0, len(start):].tolist())

    # -- state
    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        return {
            "step": self.step, "tokens_seen": self.tokens_seen, "elapsed": self.elapsed, "best_val": self.best_val,
            "optimizers": [opt.state_dict() for opt in self.optimizers], "scaler": self.scaler.state_dict(),
            "sampler": self.batches.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "config": to_dict(self.cfg),
        }

    def _restore(self, checkpoint: Path) -> None:
        state = load_state(checkpoint)
        try:
            load_weights(self.model, checkpoint / "model.safetensors")
            for opt, opt_state in zip(self.optimizers, state["optimizers"]):
                opt.load_state_dict(opt_state)
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.batches.load_state_dict(state["sampler"])
            rng = state["rng"]
            torch.set_rng_state(rng["torch"])
            random.setstate(rng["python"])
            n = rng["numpy"]
            np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise TrainError(f"cannot resume from {checkpoint}: {exc}", 2) from None
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.step, self.tokens_seen = state["step"], state["tokens_seen"]
        self.elapsed, self.best_val = state["elapsed"], state["best_val"]
        self.log(f"resume: continuing from {checkpoint} at step {self.step}")

    def save(self) -> str | None:
        """A checkpoint, then model.safetensors; a full disk costs this save only (rank 0 writes).

        Returns the warning of a write that failed, None when both were written.
        """
        if not self.dist.master:
            return None
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise TrainError("weights are not finite; keeping the previous checkpoint", 3)
        step, model, failed = self.step, self.model, []

        def warn(message: str) -> None:
            failed.append(message)
            self.log(message)
        if guarded(f"a checkpoint at step {step}", lambda: self.checkpointer.save(model, self.state_dict(), step),
                   warn):
            guarded(f"model.safetensors at step {step}",
                    lambda: save_weights(model, self.run_dir / "model.safetensors", {"step": str(step)}), warn)
        return failed[0] if failed else None

    def _unsaved(self, problem: str) -> TrainError:
        """The error that ends a run whose last save failed (a full disk): what was lost, what is kept."""
        last = self.checkpointer.latest_good(warn=self.log)
        kept = f"the last intact checkpoint is {last.name}" if last else "no checkpoint was written"
        reason = problem.removeprefix("warning: ").split("; the previous")[0]
        return TrainError(f"{reason}; {kept}: free space and run the same command again", 1)

    def _nan_stop(self, loss: float) -> None:
        last = self.checkpointer.latest_good(warn=self.log)
        where = f"the last good checkpoint ({last.name}) is kept" if last else "no checkpoint was written"
        raise TrainError(f"loss became {loss} at step {self.step}; stopping ({where}). "
                         "Try a lower --train.lr or --train.precision fp32", 3)

    def _install_signal_handlers(self) -> dict:
        """Ctrl-C / SIGTERM ask the loop to save and stop; returns the handlers to put back afterwards."""
        def handler(signum, frame):
            if self.stop_signal:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self.stop_signal = signal.Signals(signum).name
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    # -- logging
    def _bar(self):
        if not (self.progress and self.dist.master):
            return None
        from tqdm import tqdm
        total = None if self.cfg.train.max_time else self.cfg.train.max_iters
        return tqdm(total=total, initial=self.step, desc="train", unit="step", dynamic_ncols=True, disable=None)

    def _log_step(self, record: dict, bar) -> None:
        if not self.dist.master:
            return
        self.metrics.log(record)
        text = f"loss {record['loss']:.4f} lr {record['lr']:.2e} {record['tokens_per_s']:,} tok/s"
        if bar is not None:
            bar.set_postfix_str(text, refresh=False)
        elif record["step"] % (10 * self.cfg.train.log_interval) == 0 or record["step"] == 1:
            self.log(f"step {record['step']}: {text} ({record['elapsed']:.0f}s)")
