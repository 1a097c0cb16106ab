"""Run directories and checkpoints: written atomically, verified on load, never executing code.

A run directory holds everything needed to use or continue a model without the original config or data::

    config.toml          the resolved config (feed it back with --config)
    tokenizer.json       the tokenizer (gpt-bpe JSON)
    model.safetensors    the weights to use (generate / eval / serve / export): the last step's, or at the
                         end of a run whose validation got worse, the best evaluated ones
    best.safetensors     the weights with the best validation loss so far
    checkpoints/step-N/  model.safetensors + state.pt (optimizer, step, RNG, sampler) + meta.json (hashes)
    base.safetensors     with LoRA only: the frozen model, once; checkpoints then hold adapters.safetensors
                         (the adapters alone) instead of model.safetensors, and model.safetensors /
                         best.safetensors hold the merged weights W + s*B*A, so readers need not know LoRA
    log.jsonl            every metric, one JSON object a line
    data/                the token cache

Each checkpoint directory is assembled under a temporary name and renamed into place, so a crash, a
SIGKILL or a full disk leaves the previous checkpoint intact. meta.json is written last and holds the
SHA-256 of each file: a checkpoint whose hashes do not match is skipped for the one before it. Every
weights file also carries the SHA-256 of its own tensors in its metadata, checked on load, and weights
that are not finite are refused. state.pt is read with ``weights_only=True``: a hostile pickle cannot run.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from gpt.bpe import Tokenizer
from gpt.bpe_formats import load_tokenizer
from gpt.config import Config, ConfigError, from_dict, read_toml, to_toml
from gpt.errors import InputError
from gpt.files import atomic_copy, atomic_write, fsync_dir, sha256_file
from gpt.lora import lora_modules, lora_state_dict, merged_state_dict
from gpt.model import GPT, state_mismatch
from gpt.runtime import unwrap_model

CHECKPOINT_VERSION = 1
WEIGHTS_VERSION = 1
BASE_WEIGHTS = "base.safetensors"  # a LoRA run's frozen model, in the run directory
ADAPTERS = "adapters.safetensors"  # a LoRA run's adapters, in each checkpoint


class CheckpointError(InputError):
    """A missing, damaged or mismatched checkpoint; the CLI prints it as one line."""


# ----------------------------------------------------------------------------- weights files

def weights_dict(model: nn.Module, part: str = "merged") -> dict[str, torch.Tensor]:
    """The plain model's state dict on CPU, without the tied LM head (it is wte.weight).

    With LoRA adapters, part picks what the base names hold: "merged" W + s*B*A (an ordinary GPT's
    weights) or "base" the frozen W; "adapters" is the lora_A / lora_B tensors alone.
    """
    model = unwrap_model(model)
    if part == "adapters":
        return {k: v.contiguous().cpu() for k, v in lora_state_dict(model).items()}
    state = merged_state_dict(model) if part == "merged" else model.state_dict()
    state = {k: v.detach().contiguous().cpu() for k, v in state.items() if ".lora_" not in k}
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)
    return state


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes: a weights file's fingerprint, stored inside it."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None,
                 part: str = "merged") -> None:
    """A safetensors file, atomically; its metadata records the format version and the tensors' hash."""
    state = weights_dict(model, part)
    meta = {"format": "gpt", "version": str(WEIGHTS_VERSION), "sha256": tensors_digest(state), **(metadata or {})}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, refusing a damaged file, a hash mismatch and non-finite values."""
    try:
        with safe_open(str(path), framework="pt") as fh:  # one read: the tensors and the header's metadata
            state = {name: fh.get_tensor(name) for name in fh.keys()}
            metadata = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read weights {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    recorded = metadata.get("sha256")
    if recorded and recorded != tensors_digest(state):
        raise CheckpointError(f"weights {path} are damaged (their hash does not match)")
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"weights {path} are damaged: tensor '{name}' holds NaN or infinite values")
    return state


def use_best_weights(run_dir: str | Path, step: int) -> None:
    """Copy best.safetensors over model.safetensors atomically, if it holds the weights of `step`.

    The step is checked against the file's own metadata: a run killed between writing best.safetensors and
    its next checkpoint resumes with an older record of the best than the file, and must not mislabel it.
    """
    best = Path(run_dir) / "best.safetensors"
    try:
        with safe_open(str(best), framework="pt") as fh:
            recorded = (fh.metadata() or {}).get("step")
    except (SafetensorError, OSError) as exc:
        raise OSError(f"cannot read {best}: {exc}") from None
    if recorded != str(step):
        raise OSError(f"{best} holds step {recorded}, not the best evaluated step {step}")
    atomic_copy(best, best.with_name("model.safetensors"))


def load_weights(model: nn.Module, path: str | Path, part: str = "merged") -> None:
    """Load safetensors weights into model, refusing the first missing, unexpected or mis-shaped tensor.

    A LoRA model takes "base" weights (into its frozen W) or "adapters" (see weights_dict).
    """
    state = read_weights(path)
    check_state(model, state, str(path), part)
    unwrap_model(model).load_state_dict(state, strict=False)


def load_checkpoint_weights(model: nn.Module, checkpoint: Path) -> None:
    """A checkpoint's weights: its model.safetensors, or for a LoRA model the run's base plus its adapters."""
    if not lora_modules(unwrap_model(model)):
        return load_weights(model, checkpoint / "model.safetensors")
    load_weights(model, checkpoint.parent.parent / BASE_WEIGHTS, part="base")
    load_weights(model, checkpoint / ADAPTERS, part="adapters")


def check_state(model: nn.Module, state: dict[str, torch.Tensor], source: str, part: str = "merged") -> None:
    if problem := state_mismatch(weights_dict(model, part), state):
        raise CheckpointError(f"{source}: {problem}")


# ----------------------------------------------------------------------------- checkpoints

class Checkpointer:
    """checkpoints/step-N folders of one run: save atomically, keep the newest `keep`, find the newest intact one."""

    def __init__(self, run_dir: str | Path, keep: int = 2):
        self.root = Path(run_dir) / "checkpoints"
        self.keep = keep

    def save(self, model: nn.Module, state: dict[str, Any], step: int) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step-{step:08d}"
        tmp = self.root / f".tmp-step-{step:08d}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            lora = bool(lora_modules(unwrap_model(model)))  # the frozen base is the run's, stored once
            weights = ADAPTERS if lora else "model.safetensors"
            save_weights(model, tmp / weights, {"step": str(step)}, part="adapters" if lora else "merged")
            atomic_write(tmp / "state.pt", lambda path: torch.save(state, path))
            meta = {"format": "gpt-checkpoint", "version": CHECKPOINT_VERSION, "step": step,
                    "sha256": {name: sha256_file(tmp / name) for name in (weights, "state.pt")}}
            atomic_write(tmp / "meta.json", json.dumps(meta))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in self.list()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def list(self) -> list[Path]:
        return sorted(p for p in self.root.glob("step-*") if p.is_dir()) if self.root.exists() else []

    def latest_good(self, warn: Callable[[str], None] = print) -> Path | None:
        """The newest checkpoint that verifies, warning about each damaged one skipped."""
        for path in reversed(self.list()):
            problem = verify_checkpoint(path)
            if problem is None:
                return path
            warn(f"warning: checkpoint {path} is damaged ({problem}); falling back to the previous one")
        return None

    def kept(self, warn: Callable[[str], None] = print) -> str:
        """What a run that stops on an error keeps, said in words: its newest intact checkpoint, or none."""
        last = self.latest_good(warn)
        return f"the last intact checkpoint is {last.name}" if last else "no checkpoint was written"


def verify_checkpoint(path: Path) -> str | None:
    """None if the checkpoint is intact, else what is wrong with it."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return "meta.json is missing or damaged"
    if not isinstance(meta, dict) or meta.get("version") != CHECKPOINT_VERSION:
        return f"checkpoint format version {meta.get('version') if isinstance(meta, dict) else '?'} " \
               f"(this gpt reads {CHECKPOINT_VERSION})"
    for name, digest in meta.get("sha256", {}).items():
        if not (path / name).exists() or sha256_file(path / name) != digest:
            return f"{name} does not match its recorded hash"
    return None


def load_state(path: Path) -> dict[str, Any]:
    """A checkpoint's state.pt: tensors and plain containers only (weights_only), so it never runs code."""
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError):
        raise CheckpointError(f"checkpoint {path} is not a valid state file (state.pt)") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"checkpoint {path} is not a valid state file (state.pt)")
    return state


# ----------------------------------------------------------------------------- run directories

def write_run_files(run_dir: str | Path, cfg: Config, tokenizer: Tokenizer) -> None:
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write(run / "config.toml", to_toml(cfg))
    tokenizer.save(run / "tokenizer.json")


def read_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / "config.toml"
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.toml); train one with gpt train")
    try:
        return from_dict(read_toml(path, "run config"))
    except ConfigError as exc:
        raise CheckpointError(f"{path} is damaged: {exc}") from None


def load_run(run_dir: str | Path, device: str | torch.device = "cpu",
             weights: str = "model.safetensors") -> tuple[GPT, Tokenizer, Config]:
    """Model (eval mode), tokenizer and config from a run directory."""
    run = Path(run_dir)
    cfg = read_config(run)
    tokenizer = load_tokenizer(run / "tokenizer.json")
    if not (run / weights).exists():
        raise CheckpointError(f"{run} has no {weights} yet (has training saved a checkpoint?)")
    if cfg.model.vocab_size < tokenizer.vocab_size:
        raise CheckpointError(f"{run}: the model's vocab_size {cfg.model.vocab_size} is smaller than the "
                              f"tokenizer's {tokenizer.vocab_size}")
    model = GPT(cfg.model)
    load_weights(model, run / weights)
    return model.to(device).eval(), tokenizer, cfg
