"""Tools for tests/test_faults.py: hashing a run, checking one-line errors, and damaging or planting files.

Each set-up takes (run copy, tmp dir) and breaks one thing the way a user, a disk or an attacker would.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from gpt.files import sha256_file


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root (the lock file's content is a PID: not the run's data)."""
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def assert_kept(root: Path, before: dict[str, str]) -> None:
    after = snapshot(root)
    changed = [name for name, digest in before.items() if after.get(name) != digest]
    assert not changed, f"lost or changed: {changed}"


def assert_one_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert any(n in lines[0] for n in needles), lines[0]
    return lines[0]


def rewrite_meta(checkpoint: Path) -> None:
    """Record the current hashes in meta.json, so a planted file passes the hash check and reaches the loader."""
    meta = json.loads((checkpoint / "meta.json").read_text())
    meta["sha256"] = {name: sha256_file(checkpoint / name) for name in meta["sha256"]}
    (checkpoint / "meta.json").write_text(json.dumps(meta))


def latest(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step-*"))[-1]


class Evil:
    """Unpickling this runs `touch MARKER`: a loader that executes pickles would leave the marker behind."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant_pickle(run: Path, tmp: Path) -> None:
    import torch
    torch.save({"step": 20, "evil": Evil(tmp / "MARKER")}, latest(run) / "state.pt")
    rewrite_meta(latest(run))


def edit_tokenizer(**changes):
    def setup(run: Path, tmp: Path) -> None:
        data = json.loads((run / "tokenizer.json").read_text())
        data.update(changes)
        (run / "tokenizer.json").write_text(json.dumps(data))
    return setup


def weights_all_ff(run: Path, tmp: Path) -> None:
    path = run / "model.safetensors"
    raw = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", raw[:8])[0]
    raw[start:] = b"\xff" * (len(raw) - start)
    path.write_bytes(bytes(raw))


def weights_nan_unhashed(run: Path, tmp: Path) -> None:
    """NaN weights in a well-formed file without our hash: only the finite check can refuse it."""
    from safetensors.torch import load_file, save_file
    state = load_file(str(run / "model.safetensors"))
    next(iter(state.values()))[0] = float("nan")
    save_file(state, str(run / "model.safetensors"))


def hf_folder(weights: bytes | None = None, pickle_only: bool = False):
    def setup(run: Path, tmp: Path) -> None:
        hf = tmp / "hf"
        hf.mkdir()
        (hf / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 32,
                                                    "n_positions": 32, "vocab_size": 300}))
        shutil.copy(run / "tokenizer.json", hf)
        if pickle_only:
            import torch
            torch.save({"evil": Evil(tmp / "MARKER")}, hf / "pytorch_model.bin")
        else:
            (hf / "model.safetensors").write_bytes(weights)
    return setup


def parquet(damage: str):
    def setup(run: Path, tmp: Path) -> None:
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq
        table = pa.table({"text": [f"document number {i} says hello to the world. " * 20 for i in range(3000)]})
        pq.write_table(table, tmp / "d.parquet", compression="snappy", row_group_size=500)
        raw = bytearray((tmp / "d.parquet").read_bytes())
        if damage == "pages":
            for i in range(len(raw) // 4, len(raw) // 2, 7):
                raw[i] ^= 0x5A
        else:
            raw = raw[:len(raw) // 2]
        (tmp / "d.parquet").write_bytes(bytes(raw))
    return setup


def write(name: str, data: bytes, in_run: bool = False):
    def setup(run: Path, tmp: Path) -> None:
        ((run if in_run else tmp) / name).write_bytes(data)
    return setup


def damage_checkpoints(run: Path, tmp: Path) -> None:
    for ck in (run / "checkpoints").glob("step-*"):
        (ck / "state.pt").write_bytes(b"\0" * 100)


def truncate(name: str, keep: int = 100):
    def setup(run: Path, tmp: Path) -> None:
        (run / name).write_bytes((run / name).read_bytes()[:keep])
    return setup


def truncate_state(run: Path, tmp: Path) -> None:
    state = latest(run) / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    rewrite_meta(latest(run))


def mount_tmpfs(path: Path, options: str) -> None:
    """A small or read-only filesystem (needs root and a mount-capable sandbox: skipped elsewhere)."""
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")


# Runs the CLI with one writer failing as a full disk does: torch.save and safetensors raise their own
# errors (not OSError), the log and the token cache get ENOSPC. argv[1] is "WHAT:CALLS" (CALLS: "1" the first
# call only, "all" every call).
INJECT = r"""
import builtins, errno, sys
what, calls = sys.argv.pop(1).split(":")
count = [0]
def failing(real, exc):
    def fake(*args, **kwargs):
        count[0] += 1
        if calls == "all" or count[0] == int(calls):
            raise exc
        return real(*args, **kwargs)
    return fake
full = OSError(errno.ENOSPC, "No space left on device")
if what == "torch_save":
    import torch
    torch.save = failing(torch.save, RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0"))
elif what == "safetensors":
    import gpt.checkpoint
    from safetensors import SafetensorError
    full_st = SafetensorError("Error while serializing: No space left on device (os error 28)")
    gpt.checkpoint.save_file = failing(gpt.checkpoint.save_file, full_st)
else:
    import gpt.data, gpt.metrics
    module, name = (gpt.metrics, "log.jsonl") if what == "log" else (gpt.data, "tokens.bin.tmp")
    real_open = builtins.open
    def fake_open(path, *args, **kwargs):
        if str(path).endswith(name):
            return failing(real_open, full)(path, *args, **kwargs)
        return real_open(path, *args, **kwargs)
    module.open = fake_open
from gpt.cli import main
main(sys.argv[1:])
"""
