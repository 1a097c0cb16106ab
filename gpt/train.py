"""The training loop: plain code, no framework.

``Trainer`` owns one run directory. It builds (or reuses) the tokenizer and the token cache, the model
and the optimizer, then loops: fetch a batch, forward/backward under autocast, clip, step, log; every
``eval_interval`` steps it measures validation loss and bits per byte; every ``ckpt_interval`` steps
(and on Ctrl-C / SIGTERM) it writes an atomic checkpoint. A run resumes exactly where it stopped.
Under torchrun it wraps the model in DistributedDataParallel; only rank 0 writes anything.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import random
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from gpt import __version__
from gpt.bpe import Tokenizer
from gpt.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    latest_good_checkpoint,
    load_state,
    load_weights,
    read_config,
    save_checkpoint,
    save_weights,
    write_run_files,
)
from gpt.config import Config, diff, to_dict
from gpt.data import (
    BUILTIN,
    Batches,
    TokenData,
    check_sizes,
    collect_files,
    eval_windows,
    iter_texts,
    prepare,
    token_byte_lengths,
)
from gpt.errors import GPTError
from gpt.model import GPT


class TrainError(GPTError):
    """A run that cannot start or continue; the CLI prints it as one line (exit code in .code)."""


# ----------------------------------------------------------------------------- the machine

def cpu_has_bf16() -> bool:
    """Native bf16 matmul on this CPU (AVX512-BF16 or AMX): where bf16 autocast pays (about 4x here)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError("--device cuda was asked for, but no CUDA GPU is available", 2)
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    if name != "auto":
        if name == "fp16" and device.type != "cuda":
            raise TrainError("train.precision fp16 needs a CUDA device (use bf16 or fp32)", 2)
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def autocast_context(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def lr_multiplier(cfg: Config, step: int, progress: float) -> float:
    """Linear warmup times a cosine / warmup-stable-decay / constant shape of progress in [0, 1]."""
    tr = cfg.train
    if tr.warmup_iters >= 0:
        warm = min(1.0, (step + 1) / (tr.warmup_iters + 1))
    else:  # 2% of the run, by progress, so it also fits time-budgeted runs
        warm = min(1.0, max(progress, 1e-3) / 0.02)
    # the decay shape starts where warmup ends, so the peak lr is reached
    w = 0.02 if tr.warmup_iters < 0 else 0.0 if tr.max_time else min(0.5, tr.warmup_iters / tr.max_iters)
    p = min(max((progress - w) / (1 - w), 0.0), 1.0)
    if tr.schedule == "cosine":
        shape = tr.min_lr_ratio + (1 - tr.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))
    elif tr.schedule == "wsd":
        start = 1.0 - tr.decay_fraction
        shape = 1.0 if p < start else tr.min_lr_ratio + (1 - tr.min_lr_ratio) * (1.0 - p) / tr.decay_fraction
    else:
        shape = 1.0
    return warm * shape


def build_optimizers(model: nn.Module, cfg: Config, device: torch.device) -> list[torch.optim.Optimizer]:
    """AdamW with weight decay on matrices only; with optimizer=muon, Muon takes the hidden 2-D matrices.

    An untied token embedding is its own group at lr x embedding_lr_scale, without decay: each row
    gets a gradient only when its token occurs, so it learns slowest of all the weights.
    """
    tr = cfg.train
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    embeddings = {"wte.weight", "wpe.weight", "lm_head.weight"}
    token_table = [params.pop("wte.weight")] if not cfg.model.tie_embeddings and "wte.weight" in params else []
    hidden = [p for n, p in params.items() if p.dim() == 2 and n not in embeddings]
    other_matrices = [p for n, p in params.items() if p.dim() == 2 and n in embeddings]
    vectors = [p for n, p in params.items() if p.dim() < 2]
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}  # fused CPU AdamW: 5x faster step here
    optimizers: list[torch.optim.Optimizer] = []
    if tr.optimizer == "muon":
        if not hasattr(torch.optim, "Muon"):
            raise TrainError("train.optimizer muon needs torch.optim.Muon (PyTorch >= 2.9)", 2)
        optimizers.append(torch.optim.Muon(hidden, lr=tr.muon_lr or tr.lr, weight_decay=tr.weight_decay,
                                           adjust_lr_fn="match_rms_adamw"))
        decay = other_matrices
    else:
        decay = hidden + other_matrices
    groups = [{"params": decay, "weight_decay": tr.weight_decay}, {"params": vectors, "weight_decay": 0.0}]
    if token_table:
        groups.append({"params": token_table, "weight_decay": 0.0, "lr": tr.lr * tr.embedding_lr_scale})
    optimizers.append(torch.optim.AdamW(groups, lr=tr.lr, betas=(tr.beta1, tr.beta2), **fused))
    for opt in optimizers:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


# ----------------------------------------------------------------------------- the trainer

@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def master(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> Dist:
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist()
    d = Dist(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(d.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return d


class Trainer:
    """Trains cfg's model on cfg's data into run_dir; see the module docstring."""

    def __init__(self, cfg: Config, run_dir: str | Path, resume: str = "auto", init_from: str | None = None,
                 progress: bool = True, log=print):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.dist = init_distributed(cfg.train.device)
        self.log = log if self.dist.master else (lambda *a, **k: None)
        self.device = resolve_device(cfg.train.device)
        if self.dist.world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.precision = resolve_precision(cfg.train.precision, self.device)
        self._configure_torch()
        self.stop_signal: str | None = None
        self.step, self.tokens_seen, self.elapsed, self.best_val = 0, 0, 0.0, float("inf")
        self.eval_history: list[dict] = []
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if init_from:
            self._adopt(init_from)
        self.files = collect_files(self.inputs())  # a missing input is reported first, before any resume check
        checkpoint = self._find_checkpoint(resume)
        self.tokenizer = self._tokenizer(reuse=checkpoint is not None or init_from is not None)
        self._derive_model_config()
        self.data = self._data()
        check_sizes(self.data, cfg.model.block_size)
        self.model = GPT(cfg.model).to(self.device)
        if init_from and checkpoint is None:  # a resumed run has its own weights
            self._init_from(init_from)
        self.optimizers = build_optimizers(self.model, cfg, self.device)
        per_rank = cfg.train.batch_size // self.dist.world_size
        if per_rank * self.dist.world_size != cfg.train.batch_size:
            raise TrainError(f"train.batch_size {cfg.train.batch_size} must divide by the {self.dist.world_size} "
                             "processes", 2)
        self.batches = Batches(self.data.train, cfg.model.block_size, per_rank, cfg.train.seed,
                               self.dist.rank, self.dist.world_size, self.device)
        self.byte_lengths = torch.from_numpy(token_byte_lengths(self.tokenizer))
        if checkpoint is not None:
            self._restore(checkpoint)
        self.train_model = self._wrap_model()
        if self.dist.master:
            write_run_files(self.run_dir, cfg, self.tokenizer)
        self._print_header()

    # -- set-up
    def _configure_torch(self) -> None:
        tr = self.cfg.train
        if self.device.type == "cpu":
            threads = tr.threads or torch.get_num_threads()
            torch.set_num_threads(max(1, threads))
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.set_float32_matmul_precision("high")
        seed = tr.seed + self.dist.rank
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _find_checkpoint(self, resume: str) -> Path | None:
        """resume: 'auto' (continue a matching run), 'must' (--resume), 'never' (--fresh)."""
        if resume == "never":
            return None
        checkpoint = latest_good_checkpoint(self.run_dir, warn=self.log)
        if checkpoint is None:
            if resume == "must":
                raise TrainError(f"nothing to resume: {self.run_dir} holds no intact checkpoint", 2)
            return None
        saved = read_config(self.run_dir)
        if not self.cfg.model.vocab_size:  # derived from the tokenizer: not a difference
            saved.model.vocab_size = 0
        changes = diff(saved, self.cfg, ("model", "tokenizer", "data"))
        if changes:
            raise TrainError(f"{self.run_dir} holds a checkpoint of another config ({'; '.join(changes[:3])}); "
                             "use another --out, or --fresh to start over", 2)
        return checkpoint

    def _tokenizer(self, reuse: bool) -> Tokenizer:
        path = self.run_dir / "tokenizer.json"
        if reuse and path.exists():
            return Tokenizer.load(path)
        tok_cfg = self.cfg.tokenizer
        if self.dist.master:
            self.log(f"tokenizer: training byte-level BPE, vocab {tok_cfg.vocab_size}, pattern {tok_cfg.pattern}")
            start = time.perf_counter()
            workers = self.cfg.data.workers or min(4, os.cpu_count() or 1)
            size = sum(os.path.getsize(f) for f in self.files if f != BUILTIN)
            tokenizer = Tokenizer.train(iter_texts(self.files, self.cfg.data.jsonl_field), tok_cfg.vocab_size,
                                        tok_cfg.pattern, tok_cfg.special_tokens,
                                        workers=workers if size > 8 << 20 else 1, progress=self.progress)
            tokenizer.save(path)
            self.log(f"tokenizer: {tokenizer.vocab_size} tokens in {time.perf_counter() - start:.1f}s -> {path}")
        self._barrier()
        return Tokenizer.load(path)

    def inputs(self) -> list[str]:
        if self.cfg.data.input:
            return list(self.cfg.data.input)
        return ["input.txt"] if os.path.isfile("input.txt") else [BUILTIN]

    def _derive_model_config(self) -> None:
        m = self.cfg.model
        if not m.vocab_size:
            m.vocab_size = self.tokenizer.vocab_size
        elif m.vocab_size < self.tokenizer.vocab_size:
            raise TrainError(f"model.vocab_size {m.vocab_size} is smaller than the tokenizer's "
                             f"{self.tokenizer.vocab_size}", 2)

    def _data(self) -> TokenData:
        d = self.cfg.data
        kwargs = dict(val_inputs=d.val_input, val_fraction=d.val_fraction, jsonl_field=d.jsonl_field,
                      workers=d.workers)
        if self.dist.master:
            prepare(self.inputs(), self.tokenizer, self.run_dir / "data", progress=self.progress, log=self.log,
                    **kwargs)
        self._barrier()
        return prepare(self.inputs(), self.tokenizer, self.run_dir / "data", progress=False, log=lambda *a: None,
                       **kwargs)

    def _adopt(self, source: str) -> None:
        """Fine-tuning keeps the source's architecture and tokenizer: take them from its directory."""
        src = Path(source)
        if (src / "config.toml").exists():
            self.cfg.model = read_config(src).model
            tokenizer = Tokenizer.load(src / "tokenizer.json")
        elif (src / "config.json").exists():
            from gpt.hf import config_from_hf
            self.cfg.model = config_from_hf(json.loads((src / "config.json").read_text()))
            if not (src / "tokenizer.json").exists():
                raise TrainError(f"{src} has no tokenizer.json: its tokenizer is needed to fine-tune it", 2)
            tokenizer = Tokenizer.load(src / "tokenizer.json")
        else:
            raise TrainError(f"--init-from {src}: neither a gpt run directory nor a Hugging Face model directory", 2)
        if self.dist.master:
            tokenizer.save(self.run_dir / "tokenizer.json")
        self._barrier()

    def _init_from(self, source: str) -> None:
        src = Path(source)
        if (src / "config.toml").exists():
            load_weights(self.model, src / "model.safetensors")
        else:
            from gpt.hf import load_hf_into
            load_hf_into(self.model, src)
        self.log(f"init: weights from {source}")

    def _wrap_model(self) -> nn.Module:
        model: nn.Module = self.model
        if self._want_compile():
            model = torch.compile(model)
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DDP(model, device_ids=ids)
        return model

    def _want_compile(self) -> bool:
        mode = self.cfg.train.compile
        if mode == "off":
            return False
        if mode == "auto":  # measured: on CPU it pays too little for a 30+ s cold compile (benchmarks/README.md)
            return self.device.type == "cuda"
        return True

    def _print_header(self) -> None:
        cfg, m = self.cfg, self.model
        self.log(f"gpt {__version__} | torch {torch.__version__} | python {platform.python_version()} | "
                 f"device {self.device} | precision {self.precision} | threads {torch.get_num_threads()} | "
                 f"processes {self.dist.world_size} | compile {self._want_compile()}")
        self.log(f"model: {cfg.model.n_layer} layers x {cfg.model.n_embd}, {cfg.model.n_head} heads, "
                 f"block {cfg.model.block_size}, vocab {cfg.model.vocab_size} (from the tokenizer), "
                 f"{m.num_params() / 1e6:.2f}M parameters ({m.wte.weight.numel() / 1e6:.2f}M in the token embedding"
                 f"{', tied to the LM head' if cfg.model.tie_embeddings else ''})")
        tokens_per_step = cfg.train.batch_size * cfg.train.grad_accum * cfg.model.block_size
        budget = f", time budget {cfg.train.max_time:.0f}s" if cfg.train.max_time else ""
        self.log(f"train: {len(self.data.train):,} tokens, val {len(self.data.val):,} tokens; {tokens_per_step:,} "
                 f"tokens/step (batch {cfg.train.batch_size} x accum {cfg.train.grad_accum} x block "
                 f"{cfg.model.block_size}); up to {cfg.train.max_iters:,} steps{budget}; warmup "
                 f"{cfg.train.warmup_iters if cfg.train.warmup_iters >= 0 else '2% of the run'}; schedule "
                 f"{cfg.train.schedule}; optimizer {cfg.train.optimizer}; run dir {self.run_dir}")

    # -- the loop
    def progress_fraction(self) -> float:
        tr = self.cfg.train
        by_steps = self.step / tr.max_iters
        return max(by_steps, self.elapsed / tr.max_time) if tr.max_time else by_steps

    def set_lr(self) -> float:
        mult = lr_multiplier(self.cfg, self.step, self.progress_fraction())
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * mult
        return self.cfg.train.lr * mult

    def train_step(self) -> float:
        """One optimizer step over grad_accum micro-batches; returns the mean loss."""
        accum = self.cfg.train.grad_accum
        total = torch.zeros((), device=self.device)
        for micro in range(accum):
            x, y = self.batches.next()
            sync = micro == accum - 1 or self.dist.world_size == 1
            ctx = nullcontext() if sync else self.train_model.no_sync()
            with ctx, autocast_context(self.device, self.precision):
                _, loss = self.train_model(x, y)
            (loss / accum).backward()
            total += loss.detach()
        if self.cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        for opt in self.optimizers:
            opt.step()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        loss = total / accum
        if self.dist.world_size > 1:
            dist.all_reduce(loss, op=dist.ReduceOp.AVG)
        return loss.item()

    def run(self) -> dict[str, Any]:
        """Train until max_iters or max_time, then evaluate and save; returns the final metrics."""
        tr = self.cfg.train
        self._install_signal_handlers()
        bar = self._bar()
        tokens_per_step = tr.batch_size * tr.grad_accum * self.cfg.model.block_size
        flops_per_step = self.model.flops_per_token() * tokens_per_step
        last_time, last_step = time.perf_counter(), self.step
        loop_start = time.perf_counter() - self.elapsed
        while self.progress_fraction() < 1.0:
            lr = self.set_lr()
            loss = self.train_step()
            self.step += 1
            self.tokens_seen += tokens_per_step
            self.elapsed = time.perf_counter() - loop_start
            if not math.isfinite(loss):
                self._nan_stop(loss)
            if self.step % tr.log_interval == 0 or self.step == 1:
                now = time.perf_counter()
                dt = (now - last_time) / max(1, self.step - last_step)
                last_time, last_step = now, self.step
                tps = tokens_per_step / dt
                self._log_metrics({"step": self.step, "loss": round(loss, 5), "lr": lr, "tokens_per_s": round(tps),
                                   "mfu": flops_per_step / dt, "elapsed": round(self.elapsed, 2),
                                   "tokens": self.tokens_seen}, bar)
            if bar is not None:
                bar.update(1)
            if self.stop_signal:
                self._save(final=False)
                raise TrainError(f"stopped by {self.stop_signal} at step {self.step}; checkpoint saved in "
                                 f"{self.run_dir} (run the same command again to resume)", 130)
            if self.step % tr.eval_interval == 0:
                self._save(final=False)  # save first: an eval must never cost a checkpoint
                self.evaluate_and_log()
            elif self.step % tr.ckpt_interval == 0:
                self._save(final=False)
        if bar is not None:
            bar.close()
        self._save(final=False)
        done_before = self.eval_history and self.eval_history[-1]["step"] == self.step
        result = dict(self.eval_history[-1], final=True) if done_before else self.evaluate_and_log(final=True)
        self.finish()
        return result

    def finish(self) -> None:
        if self.dist.world_size > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    # -- evaluation
    @torch.no_grad()
    def evaluate(self, iters: int | None = None) -> dict[str, float]:
        """Validation loss (nats/token) and bits per byte on eval_iters fixed random batches of the val split."""
        self.model.eval()
        block = min(self.cfg.model.block_size, len(self.data.val) - 1)
        batches = Batches(self.data.val, block, self.cfg.train.batch_size, seed=12345, device=self.device)
        nats = nbytes = ntokens = 0.0
        for _ in range(iters or self.cfg.train.eval_iters):
            x, y = batches.next()
            with autocast_context(self.device, self.precision):
                _, loss = self.model(x, y)
            n = y.numel()
            nats += loss.item() * n
            ntokens += n
            nbytes += self.byte_lengths[y.cpu()].sum().item()
        self.model.train()
        loss = nats / ntokens
        return {"val_loss": loss, "val_bpb": nats / (math.log(2) * max(nbytes, 1))}

    def evaluate_and_log(self, final: bool = False) -> dict[str, Any]:
        metrics = self.evaluate()
        record = {"step": self.step, **{k: round(v, 5) for k, v in metrics.items()}, "elapsed": round(self.elapsed, 2)}
        if final:
            record["final"] = True
        self.eval_history.append(record)
        if self.dist.master:
            self._append_log(record)
            if metrics["val_loss"] < self.best_val:
                self.best_val = metrics["val_loss"]
                self._on_disk("best.safetensors", lambda: save_weights(self.model, self.run_dir / "best.safetensors",
                                                                       {"step": str(self.step)}))
            self.log(f"step {self.step}: val loss {metrics['val_loss']:.4f}, {metrics['val_bpb']:.4f} bits/byte")
            self._plot()
            if self.cfg.train.sample_tokens:
                self.log("sample: " + self.sample(self.cfg.train.sample_tokens).replace("\n", "\n        "))
        return record

    def sample(self, n_tokens: int, prompt: str = "") -> str:
        start = self.tokenizer.encode(prompt) if prompt else [self.tokenizer.eot_id or 10]
        idx = torch.tensor([start], device=self.device)
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed)
        self.model.eval()
        with autocast_context(self.device, self.precision):
            out = self.model.generate(idx, n_tokens, temperature=0.8, top_k=50, generator=gen)
        self.model.train()
        return self.tokenizer.decode(out[0, len(start):].tolist())

    # -- state
    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        return {
            "step": self.step, "tokens_seen": self.tokens_seen, "elapsed": self.elapsed, "best_val": self.best_val,
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "sampler": self.batches.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "config": to_dict(self.cfg),
        }

    def _restore(self, checkpoint: Path) -> None:
        try:
            state = load_state(checkpoint)
            load_weights(self.model, checkpoint / "model.safetensors")
            for opt, opt_state in zip(self.optimizers, state["optimizers"]):
                opt.load_state_dict(opt_state)
        except (CheckpointError, RuntimeError, KeyError, ValueError) as exc:
            raise TrainError(f"cannot resume from {checkpoint}: {exc}", 2) from None
        self.step, self.tokens_seen = state["step"], state["tokens_seen"]
        self.elapsed, self.best_val = state["elapsed"], state["best_val"]
        self.batches.load_state_dict(state["sampler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        n = rng["numpy"]
        np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.log(f"resume: continuing from {checkpoint} at step {self.step}")

    def _save(self, final: bool) -> None:
        if not self.dist.master:
            return
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise TrainError("weights are not finite; keeping the previous checkpoint", 3)
        run, model, step = self.run_dir, self.model, self.step
        if self._on_disk("a checkpoint", lambda: save_checkpoint(run, model, self.state_dict(), step)):
            self._on_disk("model.safetensors", lambda: save_weights(model, run / "model.safetensors",
                                                                    {"step": str(step)}))

    def _on_disk(self, what: str, write) -> bool:
        """Run one write; a full disk (any OSError) costs that write only, never the run or the previous file."""
        try:
            write()
            return True
        except OSError as exc:  # weights, checkpoints and loss.png are temp file + rename: the old file stays whole
            self.log(f"warning: could not write {what} at step {self.step}: {exc.strerror or exc}; "
                     "the previous one is intact")
            return False

    def _nan_stop(self, loss: float) -> None:
        last = latest_good_checkpoint(self.run_dir, warn=self.log)
        where = f"the last good checkpoint ({last.name}) is kept" if last else "no checkpoint was written"
        raise TrainError(f"loss became {loss} at step {self.step}; stopping ({where}). "
                         "Try a lower --train.lr or --train.precision fp32", 3)

    def _install_signal_handlers(self) -> None:
        def handler(signum, frame):
            if self.stop_signal:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self.stop_signal = signal.Signals(signum).name
        if threading_main():
            signal.signal(signal.SIGINT, handler)
            signal.signal(signal.SIGTERM, handler)

    # -- logging
    def _bar(self):
        if not (self.progress and self.dist.master):
            return None
        from tqdm import tqdm
        total = None if self.cfg.train.max_time else self.cfg.train.max_iters
        return tqdm(total=total, initial=self.step, desc="train", unit="step", dynamic_ncols=True, disable=None)

    def _log_metrics(self, record: dict, bar) -> None:
        if not self.dist.master:
            return
        self._append_log(record)
        text = f"loss {record['loss']:.4f} lr {record['lr']:.2e} {record['tokens_per_s']:,} tok/s"
        if bar is not None:
            bar.set_postfix_str(text, refresh=False)
        elif record["step"] % (10 * self.cfg.train.log_interval) == 0 or record["step"] == 1:
            self.log(f"step {record['step']}: {text} ({record['elapsed']:.0f}s)")

    def _append_log(self, record: dict) -> None:
        def append() -> None:
            with open(self.run_dir / "log.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
        self._on_disk("log.jsonl", append)
        for sink in self._sinks():
            sink(record)

    def _sinks(self) -> list:
        """TensorBoard and Weights & Biases, when asked for (train.tensorboard / train.wandb) and installed."""
        if hasattr(self, "_sink_list"):
            return self._sink_list
        self._sink_list = []
        if self.cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise TrainError("train.tensorboard needs the tensorboard package (pip install 'gpt[tensorboard]')",
                                 2) from None
            writer = SummaryWriter(str(self.run_dir / "tensorboard"))

            def to_tensorboard(record: dict) -> None:
                for key, value in record.items():
                    if key != "step" and isinstance(value, (int, float)):
                        writer.add_scalar(key, value, record["step"])
                writer.flush()
            self._sink_list.append(to_tensorboard)
        if self.cfg.train.wandb:
            try:
                import wandb
            except ImportError:
                raise TrainError("train.wandb needs the wandb package (pip install 'gpt[wandb]')", 2) from None
            wandb.init(project="gpt", dir=str(self.run_dir), config=to_dict(self.cfg), resume="allow")
            self._sink_list.append(lambda r: wandb.log({k: v for k, v in r.items() if k != "step"}, step=r["step"]))
        return self._sink_list

    def _plot(self) -> None:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        records = self._read_log()
        train = [(r["step"], r["loss"]) for r in records if "loss" in r]
        val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
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
        self._on_disk("loss.png", lambda: atomic_write_bytes(self.run_dir / "loss.png", png.getvalue()))

    def _read_log(self) -> list[dict]:
        """log.jsonl's records, passing over a line a full disk cut short (or a log it never let start)."""
        records = []
        try:
            with open(self.run_dir / "log.jsonl") as fh:
                for line in fh:
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        except OSError:
            pass
        return records

    def _barrier(self) -> None:
        if self.dist.world_size > 1 and dist.is_initialized():
            dist.barrier()


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


@torch.no_grad()
def evaluate_text(model: GPT, tokenizer: Tokenizer, files: list[str], device: torch.device, precision: str,
                  batch_size: int = 16) -> dict[str, float]:
    """Loss and bits per byte of model on every token of the given files (non-overlapping windows)."""
    from gpt.data import iter_documents
    ids: list[int] = []
    for doc in iter_documents(collect_files(files)):
        for piece in doc:
            ids.extend(tokenizer.encode(piece, disallowed_special=()))
        if tokenizer.eot_id is not None:
            ids.append(tokenizer.eot_id)
    if len(ids) < 2:
        raise TrainError("the evaluation text is empty", 2)
    tokens = np.asarray(ids, dtype=np.int64)
    lengths = torch.from_numpy(token_byte_lengths(tokenizer))
    nats = nbytes = ntok = 0.0
    for x, y in eval_windows(tokens, model.config.block_size, batch_size):
        x, y = x.to(device), y.to(device)
        with autocast_context(device, precision):
            _, loss = model(x, y)
        n = (y >= 0).sum().item()
        nats += loss.item() * n
        ntok += n
        nbytes += lengths[y[y >= 0].cpu()].sum().item()
    return {"loss": nats / ntok, "bpb": nats / (math.log(2) * max(nbytes, 1)), "tokens": int(ntok),
            "bytes": int(nbytes)}


def main_train(cfg: Config, run_dir: str, resume: str = "auto", init_from: str | None = None) -> dict:
    trainer = Trainer(cfg, run_dir, resume=resume, init_from=init_from, progress=sys.stderr.isatty())
    return trainer.run()
