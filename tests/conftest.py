"""Shared fixtures: small real corpora made on the spot, and a runner for the real `gpt` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHAKESPEARE = SHARED / "tinyshakespeare.txt"


def pydoc_text(n_chars: int = 60_000) -> str:
    """Real English prose that every CPython ships: Python's reference documentation."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k] for k in sorted(topics))[:n_chars]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """gpt says each warning once per process (gpt/documents.py warn); a test is a process of its own here."""
    import gpt.documents
    monkeypatch.setattr(gpt.documents, "_WARNED", {})


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "input.txt"
    path.write_text(pydoc_text())
    return path


@pytest.fixture(scope="session")
def shakespeare() -> str:
    if not SHAKESPEARE.exists():
        pytest.skip(f"{SHAKESPEARE} is absent (the shared data folder is not beside this checkout)")
    return SHAKESPEARE.read_text()


def run_gpt(*args: str, cwd: str | Path | None = None, timeout: float = 300, env: dict | None = None,
            check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI (`python -m gpt`) in a subprocess, `input` on its stdin."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "gpt", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"gpt {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


TINY = ["--preset", "tiny", "--device", "cpu"]


def kill_after(args: list[str], marker: Path, timeout: float = 120) -> None:
    """Start `gpt ARGS`, SIGKILL it as soon as `marker` exists (e.g. a checkpoint folder), and reap it."""
    import signal
    import time
    proc = subprocess.Popen([sys.executable, "-m", "gpt", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, *extra: str, timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """A real `gpt serve` process on 127.0.0.1 for run, once its /health answers: (process, base URL)."""
    import time
    import urllib.request
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gpt", "serve", "--out", str(run), "--port", str(port),
                             "--device", "cpu", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            return proc, base
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "server did not start"
            time.sleep(0.2)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=20)


def losses(run_dir: Path) -> dict[int, float]:
    """step -> loss, the last record for each step (a resumed run logs the steps after its checkpoint again)."""
    import json
    out = {}
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            out[record["step"]] = record["loss"]
    return out


@pytest.fixture()
def folder(tmp_path):
    """A notes folder: Markdown, text, JSONL records in a subfolder, a picture and a Latin-1 file."""
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# Monstera\nMonstera is a plant.\n")
    (root / "sub" / "b.txt").write_text("Water it weekly. " * 50)
    (root / "sub" / "c.jsonl").write_text('{"text": "first record"}\n{"text": "second record"}\n')
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    (root / "latin1.txt").write_bytes("café naïve".encode("latin-1"))
    return root
