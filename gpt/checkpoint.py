"""Run directories and checkpoints: written atomically, verified on load, never executing code.

A run directory holds everything needed to use or continue a model without the original config or data::

    config.toml          the resolved config (feed it back with --config)
    tokenizer.json       the tokenizer (gpt-bpe JSON)
    model.safetensors    the latest weights, for generate / eval / serve / export
    best.safetensors     the weights with the best validation loss so far
    checkpoints/step-N/  model.safetensors + state.pt (optimizer, step, RNG, sampler) + meta.json (hashes)
    log.jsonl            every metric, one JSON object a line
    data/                the token cache

Each checkpoint directory is assembled under a temporary name and renamed into place, so a crash,
a SIGKILL or a full disk leaves the previous checkpoint intact. meta.json is written last and holds
the SHA-256 of each file: a checkpoint whose hashes do not match is skipped for the one before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gpt.bpe import Tokenizer
from gpt.bpe_formats import load_tokenizer
from gpt.config import Config, ConfigError, from_dict, to_toml
from gpt.errors import GPTError
from gpt.model import GPT

CHECKPOINT_VERSION = 1
KEEP_CHECKPOINTS = 2


class CheckpointError(GPTError, ValueError):
    """A missing, damaged or mismatched checkpoint; the CLI prints it as one line."""

    code = 2


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def weights_dict(model: GPT) -> dict[str, torch.Tensor]:
    """The uncompiled model's state dict without the tied LM head (it is wte.weight)."""
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)
    return state


def save_weights(model: GPT, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """model.safetensors, atomically; metadata records the format version."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file(weights_dict(model), str(tmp), metadata={"format": "gpt", "version": str(CHECKPOINT_VERSION),
                                                            **(metadata or {})})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_weights(model: GPT, path: str | Path) -> None:
    """Load safetensors weights into model, refusing the first missing, unexpected or mis-shaped tensor."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read weights {path}: {exc}") from None
    check_state(model, state, str(path))
    model.load_state_dict(state, strict=False)


def check_state(model: GPT, state: dict[str, torch.Tensor], source: str) -> None:
    expected = weights_dict(model)
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"{source}: missing tensor '{key}'")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{source}: tensor '{key}' has shape {tuple(state[key].shape)}, "
                                  f"the model expects {tuple(tensor.shape)}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(f"{source}: unexpected tensor '{extra[0]}'")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(run_dir: str | Path, model: GPT, state: dict[str, Any], step: int) -> Path:
    """Write checkpoints/step-N atomically (temp dir + rename), then prune to the newest KEEP_CHECKPOINTS."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_weights(model, tmp / "model.safetensors", {"step": str(step)})
        torch.save(state, tmp / "state.pt")
        meta = {"format": "gpt-checkpoint", "version": CHECKPOINT_VERSION, "step": step,
                "sha256": {name: sha256_file(tmp / name) for name in ("model.safetensors", "state.pt")}}
        atomic_write_bytes(tmp / "meta.json", json.dumps(meta).encode())
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    return sorted(p for p in root.glob("step-*") if p.is_dir()) if root.exists() else []


def verify_checkpoint(path: Path) -> str | None:
    """None if the checkpoint is intact, else what is wrong with it."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return "meta.json is missing or damaged"
    if meta.get("version") != CHECKPOINT_VERSION:
        return f"checkpoint format version {meta.get('version')} (this gpt reads {CHECKPOINT_VERSION})"
    for name, digest in meta.get("sha256", {}).items():
        if not (path / name).exists() or sha256_file(path / name) != digest:
            return f"{name} does not match its recorded hash"
    return None


def latest_good_checkpoint(run_dir: str | Path, warn=print) -> Path | None:
    """The newest checkpoint that verifies, warning about each damaged one skipped."""
    for path in reversed(list_checkpoints(run_dir)):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        warn(f"warning: checkpoint {path} is damaged ({problem}); falling back to the previous one")
    return None


def load_state(path: Path) -> dict[str, Any]:
    return torch.load(path / "state.pt", map_location="cpu", weights_only=True)


def write_run_files(run_dir: str | Path, cfg: Config, tokenizer: Tokenizer) -> None:
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run / "config.toml", to_toml(cfg).encode())
    tokenizer.save(run / "tokenizer.json")


def read_config(run_dir: str | Path) -> Config:
    from gpt.config import tomllib
    path = Path(run_dir) / "config.toml"
    try:
        with open(path, "rb") as fh:
            return from_dict(tomllib.load(fh))
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} is not a run directory (no config.toml); train one with gpt train") from None
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        raise CheckpointError(f"{path} is damaged: {exc}") from None


def load_run(run_dir: str | Path, device: str | torch.device = "cpu",
             weights: str = "model.safetensors") -> tuple[GPT, Tokenizer, Config]:
    """Model (eval mode), tokenizer and config from a run directory."""
    run = Path(run_dir)
    cfg = read_config(run)
    tokenizer = load_tokenizer(run / "tokenizer.json")
    if not (run / weights).exists():
        raise CheckpointError(f"{run} has no {weights} yet (has training saved a checkpoint?)")
    model = GPT(cfg.model)
    load_weights(model, run / weights)
    if cfg.model.vocab_size < tokenizer.vocab_size:
        raise CheckpointError(f"{run}: the model's vocab_size {cfg.model.vocab_size} is smaller than the "
                              f"tokenizer's {tokenizer.vocab_size}")
    return model.to(device).eval(), tokenizer, cfg
