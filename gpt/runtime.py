"""Where the model runs: device, precision, threads, seeds, and the processes of a distributed run.

Training, evaluation, generation, serving and the CLI all ask this module the same questions (which
device? which precision? autocast how? am I rank 0?) so the answers cannot drift. Wrapping a model for
data parallelism and unwrapping it happens here and nowhere else: the one place FSDP would go.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from gpt.errors import InputError


class RuntimeSetupError(InputError):
    """A device or precision this machine does not have."""


# ----------------------------------------------------------------------------- device and precision

def cpu_has_bf16() -> bool:
    """Native bf16 matmul on this CPU (AVX512-BF16 or AMX): where bf16 autocast pays (benchmarks/README.md)."""
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
        raise RuntimeSetupError("--device cuda was asked for, but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeSetupError("--device mps was asked for, but MPS is not available")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' -> bf16 where the hardware has it, fp16 on older GPUs (with a GradScaler), else fp32."""
    if name != "auto":
        if name == "fp16" and device.type != "cuda":
            raise RuntimeSetupError("train.precision fp16 needs a CUDA device (use bf16 or fp32)")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (the scaler is then a no-op)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def configure(device: torch.device, threads: int = 0, seed: int | None = None) -> None:
    """Threads on CPU (0: torch's choice), TF32 matmuls on CUDA, and every RNG seeded when seed is given."""
    if device.type == "cpu" and threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)


def rng_state() -> dict:
    """Every random generator's state (torch, CUDA, Python, NumPy) as tensors and plain values for state.pt."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- distributed

@dataclass
class Dist:
    """This process's place in a run: rank 0 of 1 unless started by torchrun."""
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1 and dist.is_initialized()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of values over all processes (the values themselves in a single process)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def agree(self, clock: float, stop: bool, device: torch.device) -> tuple[float, bool]:
        """The processes' mean clock, and whether any process was asked to stop. Under torchrun each clock differs a
        little: a rank going by its own would set its own lr (the replicas drift apart) and could stop a step before
        the others, leaving them waiting in the next all-reduce."""
        clocks, stops = self.sum([clock, float(stop)], device)
        return clocks / self.world_size, stops > 0

    def teardown(self) -> None:
        """A barrier first, so no rank leaves while another still talks to it."""
        if self.active:
            dist.barrier()
            dist.destroy_process_group()


def init_distributed(device_name: str) -> Dist:
    """Join the process group that torchrun describes in the environment (NCCL on GPUs, gloo on CPU)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist()
    d = Dist(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(d.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return d


def rank_device(device: torch.device, d: Dist) -> torch.device:
    return torch.device("cuda", d.local_rank) if d.world_size > 1 and device.type == "cuda" else device


def wrap_model(model: nn.Module, device: torch.device, d: Dist, compile_model: bool) -> nn.Module:
    """The module the training step calls: compiled and/or DistributedDataParallel around model."""
    wrapped = torch.compile(model) if compile_model else model
    if d.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel
        wrapped = DistributedDataParallel(wrapped, device_ids=[device.index] if device.type == "cuda" else None)
    return wrapped


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and torch.compile wrappers (what checkpoints save)."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


class StopRequest:
    """Catches Ctrl-C and SIGTERM while a block runs, so a loop can save before it stops: ``signal`` names
    the first one; a second Ctrl-C stops at once. Outside the main thread, signals stay as they were."""

    def __init__(self):
        self.signal: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
