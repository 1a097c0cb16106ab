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
import time
from pathlib import Path
from typing import Any

import torch

from gpt import __version__, optim, runtime
from gpt.batches import eval_windows
from gpt.checkpoint import BASE_WEIGHTS, Checkpointer, load_checkpoint_weights, save_weights, use_best_weights
from gpt.config import Config, TrainConfig, to_dict
from gpt.conversations import MixedBatches, eval_batches
from gpt.data import check_sizes, token_byte_lengths
from gpt.errors import GPTError
from gpt.evaluate import evaluate, held_out_loss
from gpt.files import RunLock
from gpt.metrics import Metrics, ProgressLine, guarded
from gpt.model import IGNORE_INDEX
from gpt.run_setup import batch_source, build_model, commit_run, mix_line, prepare_run, text_and_chat_weights
from gpt.sampling import sample_text


class TrainError(GPTError):
    """A run that cannot start or continue; the CLI prints it as one line (exit code in .code)."""


class Trainer:
    """Trains cfg's model on cfg's data into run_dir; see the module docstring."""

    def __init__(self, cfg: Config, run_dir: str | Path, resume: str = "auto", init_from: str | None = None,
                 explicit: set[str] = frozenset(), progress: bool = True, log=print):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.dist = runtime.init_distributed(cfg.train.device)
        self.log = log if self.dist.master else (lambda *a, **k: None)
        self.device = runtime.rank_device(runtime.resolve_device(cfg.train.device), self.dist)
        self.precision = runtime.resolve_precision(cfg.train.precision, self.device)
        runtime.configure(self.device, cfg.train.threads, seed=cfg.train.seed + self.dist.rank)
        self.lock = RunLock(self.run_dir).acquire() if self.dist.master else None
        self.step, self.tokens_seen, self.elapsed, self.best_val = 0, 0, 0.0, float("inf")
        self.metrics, self.best_record = None, None  # best_record: the evaluation of best.safetensors' weights
        self.eval_history: list[dict] = []
        self.stop = runtime.StopRequest()  # Ctrl-C / SIGTERM while training: save, then stop
        try:
            self._set_up(resume, init_from, explicit)
        except BaseException:
            self.close(clean=False)
            raise
        self._print_header()

    def _set_up(self, resume: str, init_from: str | None, explicit: set[str]) -> None:
        cfg = self.cfg
        prepared = prepare_run(cfg, self.run_dir, self.dist, resume, init_from, explicit, self.progress, self.log)
        self.tokenizer, self.data, self.chat_val = prepared.tokenizer, prepared.data, prepared.chat_val
        self.chat_conversations, self.recall = len(prepared.chat_train), prepared.recall
        self.chat_cap = prepared.chat_cap
        self.chat_share_at_end = text_and_chat_weights(cfg, 1.0, self.chat_cap)[1] if prepared.chat_train else 0.0
        if self.data is not None:
            check_sizes(self.data, cfg.model.block_size)
        self.text_tokens = len(self.data.train) if self.data is not None else 0
        self.tokens_per_step = cfg.train.batch_size * cfg.train.grad_accum * cfg.model.block_size
        self.model = build_model(cfg, prepared, init_from, self.log, self.precision).to(self.device)
        self.optimizers = optim.build_optimizers(self.model, cfg, self.device)
        # conversations alone, or a text trained to recite: the trained answers, which validation cannot see, are the
        self.answers_first = self.data is None or self.recall  # point: the last weights, neither average nor best
        self.average = optim.WeightAverage(self.model, 0.0 if self.answers_first else cfg.train.weight_average)
        self.scaler = runtime.grad_scaler(self.device, self.precision)
        self.batches = batch_source(cfg, prepared, self._per_rank_batch(), self.dist, self.device)
        self.byte_lengths = token_byte_lengths(self.tokenizer)
        self.checkpointer = Checkpointer(self.run_dir)
        if prepared.checkpoint is not None:
            self._restore(prepared.checkpoint, prepared.state)
        self.train_model = runtime.wrap_model(self.model, self.device, self.dist, self._want_compile())
        if self.dist.master:
            commit_run(self.run_dir, cfg, prepared, fresh=resume == "never")
            if cfg.train.lora_rank and prepared.checkpoint is None:  # the frozen base, once; checkpoints: adapters
                save_weights(self.model, self.run_dir / BASE_WEIGHTS, part="base")
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
        if cap := optim.passes_cap(cfg, self.text_tokens, self.tokens_per_step):
            budget += f", {tr.max_epochs:g} passes or {optim.MIN_CAPPED_STEPS} steps, the more ({cap:,} tokens)"
        warmup = tr.warmup_iters if tr.warmup_iters >= 0 else "2% of the run"
        regulariser = tr.regularise_after and (cfg.model.drop_path or tr.weight_decay > TrainConfig.weight_decay)
        regularised = f", regularised from pass {tr.regularise_after:g}" if regulariser else ""
        data = f"{self.text_tokens:,} tokens, val {len(self.data.val):,} tokens" if self.data is not None else ""
        if self.chat_conversations:
            data += (", " if data else "") + f"{self.chat_conversations:,} conversations (val {len(self.chat_val):,})"
            data += mix_line(cfg, self.chat_cap) if isinstance(self.batches, MixedBatches) else ""
        self.log(f"train: {data}; {self.tokens_per_step:,} tokens/step (batch {tr.batch_size} x accum "
                 f"{tr.grad_accum} x block {cfg.model.block_size}); up to {tr.max_iters:,} steps{budget}; warmup "
                 f"{warmup}; schedule {tr.schedule}; optimizer {tr.optimizer}{regularised}; run dir {self.run_dir}")

    # -- the loop
    def progress_fraction(self) -> float:
        """How far the run is, by whichever limit comes first: steps, the time budget, passes over the data.

        The epoch cap keeps a faster machine from overfitting a small corpus inside the same time budget:
        the run (and its lr decay) ends after max_epochs passes (optim.passes_cap) however fast the steps are.
        """
        tr, cap = self.cfg.train, optim.passes_cap(self.cfg, self.text_tokens, self.tokens_per_step)
        return max(self.step / tr.max_iters, self.elapsed / tr.max_time if tr.max_time else 0.0,
                   self.tokens_seen / cap if cap else 0.0)

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
            with runtime.autocast(self.device, self.precision):
                _, loss_sum = self.train_model(x, y, reduction="sum", return_logits=False)
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
        try:
            with self.stop:
                return self._loop()
        finally:
            self.close()

    def _loop(self) -> dict[str, Any]:
        tr = self.cfg.train
        bar = ProgressLine(self.progress and self.dist.master, None if tr.max_time else tr.max_iters, self.step,
                           tr.log_interval, self.log)
        flops_per_step = self.model.flops_per_token() * self.tokens_per_step
        last_time, last_step = time.perf_counter(), self.step
        loop_start = time.perf_counter() - self.elapsed
        while (progress := self.progress_fraction()) < 1.0:
            lr = tr.lr * optim.lr_multiplier(self.cfg, self.step, progress)
            optim.set_lr(self.optimizers, lr / tr.lr)
            optim.set_regulariser(self.model, self.optimizers, self.cfg, self.tokens_seen / max(self.text_tokens, 1))
            if isinstance(self.batches, MixedBatches):
                self.batches.reweigh(text_and_chat_weights(self.cfg, progress, self.chat_cap))
            loss = self.train_step()
            self.average.update()
            self.step += 1
            self.tokens_seen += self.tokens_per_step
            self.elapsed, stop_requested = self.dist.agree(time.perf_counter() - loop_start, bool(self.stop.signal),
                                                           self.device)
            if not math.isfinite(loss):
                self._nan_stop(loss)
            if self.step % tr.log_interval == 0 or self.step == 1:
                now = time.perf_counter()
                dt = (now - last_time) / max(1, self.step - last_step)
                last_time, last_step = now, self.step
                record = {"step": self.step, "loss": round(loss, 5), "lr": lr,
                          "tokens_per_s": round(self.tokens_per_step / dt), "flops_per_s": round(flops_per_step / dt),
                          "elapsed": round(self.elapsed, 2), "tokens": self.tokens_seen}
                if self.dist.master:
                    self.metrics.log(record)
                    bar.show(record)
            bar.update()
            if stop_requested:
                saved = "checkpoint saved in" if self.save() is None else "the last intact checkpoint is kept in"
                signal = self.stop.signal or "a signal to another process"
                raise TrainError(f"stopped by {signal} at step {self.step}; {saved} "
                                 f"{self.run_dir} (run the same command again to resume)", 130)
            if self.step % tr.eval_interval == 0:
                self.save()  # save first: an eval must never cost a checkpoint
                self.evaluate_and_log()
            elif self.step % tr.ckpt_interval == 0:
                self.save()
        bar.close()
        problem = self.save()
        done_before = self.eval_history and self.eval_history[-1]["step"] == self.step
        result = dict(self.eval_history[-1], final=True) if done_before else self.evaluate_and_log(final=True)
        result = self._try_average(result)
        # The run outlived failed saves; a result it could not save must not pass in silence. Raised after
        # the evaluation, which every process takes part in, so no process waits on rank 0.
        if problem:
            raise self._unsaved(problem)
        return self._use_best_weights(result)

    def _try_average(self, last: dict[str, Any]) -> dict[str, Any]:
        """The weights' moving average (optim.WeightAverage) in place of the last step's if it validates better:
        model.safetensors gets it; the checkpoint keeps the last step's, to resume. Returns the metrics kept."""
        if not self.average.weight:
            return last
        held = self.average.swap()
        averaged = self.evaluate_and_log(final=True, weights="averaged")
        better = held_out_loss(averaged, self.chat_share_at_end) < held_out_loss(last, self.chat_share_at_end)
        if better and (not self.dist.master or guarded("model.safetensors (the averaged weights)", lambda: save_weights(
                self.model, self.run_dir / "model.safetensors", {"step": str(self.step)}), self.log)):
            return averaged  # else the last step's weights stay, in the model and in model.safetensors
        self.average.swap(held)
        return last

    def _use_best_weights(self, last: dict[str, Any]) -> dict[str, Any]:
        """If validation got worse by the end (a small corpus seen too often; held_out_loss), model.safetensors takes
        the best evaluated weights (checkpoints keep the last, to resume); conversations alone, or a text trained
        for recall, keep the last: there the trained answers are the point. Returns the metrics of the weights kept."""
        kept = self.best_record if self.dist.master else None  # all ranks have it once resumed; rank 0 writes
        loss = lambda record: held_out_loss(record, self.chat_share_at_end)  # noqa: E731
        if kept is None or self.answers_first or not loss(kept) < loss(last):
            return last
        if not guarded("model.safetensors (the best weights)", lambda: use_best_weights(self.run_dir, kept["step"]),
                       self.log):
            return last
        self.log(f"model.safetensors: the best weights, from step {kept['step']} (held-out loss {loss(kept):.4f}), "
                 f"not the last step's ({loss(last):.4f})")
        return dict(kept, final=True, last_step=self.step, last_val_loss=last["val_loss"])

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
        """Validation loss (nats/token) and bits per byte on the first eval_iters batches of text windows,
        and the masked loss on held-out conversations; val_loss is the text's, else the conversations'."""
        cfg, d, out = self.cfg, self.dist, {}
        if self.data is not None:
            block = min(cfg.model.block_size, len(self.data.val) - 1)
            windows = eval_windows(self.data.val, block, cfg.train.batch_size, max_batches or cfg.train.eval_iters,
                                   d.rank, d.world_size)
            text = evaluate(self.model, windows, self.byte_lengths, self.device, self.precision, d)
            out.update(val_loss=text["loss"], val_bpb=text["bpb"])
        if self.chat_val:
            batches = eval_batches(self.chat_val, cfg.model.block_size, self.tokenizer.eot_id, cfg.train.batch_size,
                                   d.rank, d.world_size)
            chat = evaluate(self.model, batches, self.byte_lengths, self.device, self.precision, d)
            out = {"val_loss": chat["loss"], "val_bpb": chat["bpb"], **out, "val_chat_loss": chat["loss"]}
        if not out:  # conversations only, too few to hold any out: the training loss of a fixed batch
            out = {"val_loss": float("nan"), "val_bpb": float("nan")}
        return out

    def evaluate_and_log(self, final: bool = False, weights: str = "") -> dict[str, Any]:
        metrics = self.evaluate()
        record = {"step": self.step, **{k: round(v, 5) for k, v in metrics.items()}, "elapsed": round(self.elapsed, 2),
                  **({"final": True} if final else {}), **({"weights": weights} if weights else {})}
        self.eval_history.append(record)
        if self.dist.master:
            self.metrics.log(record)
            if (loss := held_out_loss(record, self.chat_share_at_end)) < self.best_val and guarded(
                    "best.safetensors", lambda: save_weights(self.model, self.run_dir / "best.safetensors",
                                                             {"step": str(self.step)}), self.log):
                self.best_val, self.best_record = loss, record
            self.log(f"step {self.step}{f' ({weights} weights)' if weights else ''}: val loss "
                     f"{metrics['val_loss']:.4f}, {metrics['val_bpb']:.4f} bits/byte")
            self.metrics.plot()
            if self.cfg.train.sample_tokens:
                sample = sample_text(self.model, self.tokenizer, self.cfg.train.sample_tokens, self.cfg.train.seed,
                                     self.precision)
                self.log("sample: " + sample.replace("\n", "\n        "))
        return record

    # -- state
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "tokens_seen": self.tokens_seen, "elapsed": self.elapsed, "best_val": self.best_val,
                "best_record": self.best_record, "optimizers": [opt.state_dict() for opt in self.optimizers],
                "scaler": self.scaler.state_dict(), "sampler": self.batches.state_dict(), "rng": runtime.rng_state(),
                "config": to_dict(self.cfg), "average": self.average.state_dict()}

    def _restore(self, checkpoint: Path, state: dict[str, Any]) -> None:
        try:
            load_checkpoint_weights(self.model, checkpoint)
            for opt, opt_state in zip(self.optimizers, state["optimizers"]):
                opt.load_state_dict(opt_state)
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.batches.load_state_dict(state["sampler"])
            runtime.set_rng_state(state["rng"])
            self.average.load_state_dict(state.get("average"))
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise TrainError(f"cannot resume from {checkpoint}: {exc}", 2) from None
        self.step, self.tokens_seen, self.elapsed = state["step"], state["tokens_seen"], state["elapsed"]
        self.best_record = state.get("best_record")  # its loss again: a run of an older version kept the text's
        self.best_val = held_out_loss(self.best_record, self.chat_share_at_end) if self.best_record else float("inf")
        self.log(f"resume: continuing from {checkpoint} at step {self.step}")

    def save(self) -> str | None:
        """A checkpoint, then model.safetensors (rank 0). A full disk costs this save only: returns its warning."""
        if not self.dist.master:
            return None
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise TrainError("weights are not finite; keeping the previous checkpoint", 3)
        step, model, failed = self.step, self.model, []
        warn = lambda message: (failed.append(message), self.log(message))
        if guarded(f"a checkpoint at step {step}", lambda: self.checkpointer.save(model, self.state_dict(), step),
                   warn):
            guarded(f"model.safetensors at step {step}",
                    lambda: save_weights(model, self.run_dir / "model.safetensors", {"step": str(step)}), warn)
        return failed[0] if failed else None

    def _unsaved(self, problem: str) -> TrainError:
        """The error that ends a run whose last save failed (a full disk): what was lost, what is kept."""
        reason = problem.removeprefix("warning: ").split("; the previous")[0]
        return TrainError(f"{reason}; {self.checkpointer.kept(self.log)}: free space and run the same command again", 1)

    def _nan_stop(self, loss: float) -> None:
        raise TrainError(f"loss became {loss} at step {self.step}; stopping ({self.checkpointer.kept(self.log)}). "
                         "Try a lower --train.lr or --train.precision fp32", 3)
