"""The fault battery of issue 14, through the real CLI: bad inputs, damaged and hostile files, signals, a full
disk, two trainers on one run. Every failure must be exactly one line on stderr (never a traceback) with the
README's exit code, and nothing that existed before may be lost: the run's files are hashed before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import TINY, run_gpt
from .fault_tools import (
    INJECT,
    assert_kept,
    assert_one_line,
    damage_checkpoints,
    edit_tokenizer,
    hf_folder,
    latest,
    mount_tmpfs,
    parquet,
    plant_pickle,
    snapshot,
    truncate,
    truncate_state,
    weights_all_ff,
    weights_nan_unhashed,
    write,
)

ENV = {"PYTHONUNBUFFERED": "1"}


# ----------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def trained(corpus_file, tmp_path_factory) -> Path:
    """One tiny trained run (checkpoints at steps 10 and 20) shared by every case; cases mutate copies."""
    out = tmp_path_factory.mktemp("faults") / "run"
    run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(out), check=True)
    return out


@pytest.fixture
def run(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


TRAIN = ["train", *TINY, "--input", "{corpus}", "--out", "{run}"]
GEN = ["generate", "hi", "--out", "{run}", "--device", "cpu", "--max-new-tokens", "4"]
NO_CUDA = pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is present")

# (id, set-up of the run copy / tmp dir, command, exit code, what the one line says)
CASES = [
    # bad inputs: refused at start-up, the trained run untouched
    ("fresh-typo-input", None, ["train", *TINY, "--input", "{tmp}/notes.txtt", "--out", "{run}", "--fresh"], 2,
     "input path does not exist"),
    pytest.param("fresh-no-cuda", None, [*TRAIN, "--device", "cuda", "--fresh"], 2, "no CUDA GPU", marks=NO_CUDA,
                 id="fresh-no-cuda"),
    ("lr-nan", None, [*TRAIN, "--train.lr", "nan"], 2, "train.lr"),
    ("lr-inf", None, [*TRAIN, "--train.lr", "inf"], 2, "train.lr"),
    ("dropout-neg-inf", None, [*TRAIN, "--model.dropout", "-inf"], 2, "model.dropout"),
    ("unknown-key", None, [*TRAIN, "--modle.n_layer", "2"], 2, "did you mean 'model.n_layer'"),
    ("resume-and-fresh", None, [*TRAIN, "--resume", "--fresh"], 2, "contradict"),
    ("resume-nothing", None, ["train", *TINY, "--input", "{corpus}", "--out", "{tmp}/new", "--resume"], 2,
     "nothing to resume"),
    ("other-config", None, [*TRAIN, "--model.n_layer", "3"], 2, "another config"),
    ("init-from-override", None, ["train", *TINY, "--input", "{corpus}", "--out", "{tmp}/ft", "--init-from", "{run}",
                                  "--model.n_layer", "4"], 2, "conflicts with --init-from"),
    ("init-from-nothing", None, ["train", *TINY, "--input", "{corpus}", "--out", "{tmp}/ft", "--init-from", "{tmp}"],
     2, "neither a gpt run directory"),
    ("config-not-utf8", write("bad.toml", b"[train]\nlr = 0.01 # caf\xe9\n"),
     ["train", "--config", "{tmp}/bad.toml", "--out", "{run}"], 2, "not UTF-8"),
    ("config-not-toml", write("bad.toml", b"[train\nlr = "), ["train", "--config", "{tmp}/bad.toml", "--out", "{run}"],
     2, "not valid TOML"),
    ("empty-input", write("empty.txt", b""), ["train", *TINY, "--input", "{tmp}/empty.txt", "--out", "{tmp}/e"], 2,
     "empty"),
    ("prepare-whitespace", write("blank.txt", b"  \n\t\n   \n"),
     ["prepare", "--preset", "tiny", "--input", "{tmp}/blank.txt", "--out", "{tmp}/p"], 2, "needs at least"),
    ("gen-temperature-neg", None, [*GEN, "--temperature", "-1"], 2, "temperature must be >= 0"),
    ("gen-repetition-zero", None, [*GEN, "--repetition-penalty", "0"], 2, "repetition_penalty must be > 0"),
    ("gen-seed-2**70", None, [*GEN, "--seed", str(2**70)], 2, "seed must be between"),
    ("gen-max-new-neg", None, [*GEN, "--max-new-tokens", "-5"], 2, "max_new_tokens must be between"),
    ("gen-top-p-zero", None, [*GEN, "--top-p", "0"], 2, "top_p must be in (0, 1]"),
    ("gen-top-k-neg", None, [*GEN, "--top-k", "-1"], 2, "top_k must be >= 0"),
    ("gen-num-samples-zero", None, [*GEN, "--num-samples", "0"], 2, "num_samples must be >= 1"),
    ("gen-no-run", None, ["generate", "hi", "--out", "{tmp}/nothing"], 2, "not a run directory"),
    ("decode-not-ids", None, ["tokenizer", "decode", "1 x", "--tokenizer", "{run}"], 2, "integer token ids"),
    # damaged files: one line, and a trained model is never overwritten
    ("all-checkpoints-damaged", damage_checkpoints, TRAIN, 2, "every checkpoint"),
    ("weights-without-checkpoint", lambda r, t: shutil.rmtree(r / "checkpoints"), TRAIN, 2, "no checkpoint to resume"),
    ("state-truncated", truncate_state, [*TRAIN, "--resume"], 2, "not a valid state file"),
    ("run-config-not-utf8", write("config.toml", b"[model]\nn_layer = 2 # \xff\n", in_run=True), GEN, 2,
     "not UTF-8"),
    ("run-config-not-toml", write("config.toml", b"[model\n", in_run=True), GEN, 2, "damaged"),
    ("weights-truncated", truncate("model.safetensors"), GEN, 2, "cannot read weights"),
    ("weights-all-0xff", weights_all_ff, GEN, 2, "damaged"),
    ("weights-nan-unhashed", weights_nan_unhashed, GEN, 2, "NaN or infinite"),
    ("tokenizer-not-json", write("tokenizer.json", b"{not json", in_run=True), GEN, 2, "tokenizer"),
    ("tokenizer-special-id-huge", edit_tokenizer(special_tokens={"<|endoftext|>": 10**12}), GEN, 2, "special ids"),
    ("tokenizer-special-id-neg", edit_tokenizer(special_tokens={"<|endoftext|>": -5}), GEN, 2, "special ids"),
    ("tokenizer-merge-bomb", edit_tokenizer(merges=[[97, 97]] + [[256 + i, 256 + i] for i in range(45)]), GEN, 2,
     "byte token"),
    ("parquet-damaged-pages", parquet("pages"), ["train", *TINY, "--input", "{tmp}/d.parquet", "--out", "{tmp}/q"], 2,
     "damaged Parquet data"),
    ("parquet-truncated", parquet("cut"), ["train", *TINY, "--input", "{tmp}/d.parquet", "--out", "{tmp}/q"], 2,
     "not a readable Parquet"),
    ("eval-missing-input", None, ["eval", "--out", "{run}", "--input", "{tmp}/none.txt"], 2, "does not exist"),
    # hostile files: never executed, refused in one line (the marker file proves nothing ran)
    ("hostile-state-pt", plant_pickle, [*TRAIN, "--resume"], 2, "not a valid state file"),
    ("hostile-state-pt-auto", plant_pickle, TRAIN, 2, "not a valid state file"),
    ("hf-bad-safetensors", hf_folder(b"\x10\0\0\0\0\0\0\0{not a header!!}"),
     ["train", *TINY, "--input", "{corpus}", "--out", "{tmp}/ft", "--init-from", "{tmp}/hf"], 2, "cannot read weights"),
    ("hf-pickle-only", hf_folder(pickle_only=True),
     ["train", *TINY, "--input", "{corpus}", "--out", "{tmp}/ft", "--init-from", "{tmp}/hf"], 2, "not loaded: unsafe"),
]


@pytest.mark.parametrize("case,setup,argv,code,needle", [c if hasattr(c, "values") else pytest.param(*c, id=c[0])
                                                         for c in CASES])
def test_fault_is_one_line_and_loses_nothing(case, setup, argv, code, needle, run, corpus_file, tmp_path):
    if setup is not None:
        setup(run, tmp_path)
    before = snapshot(run)
    args = [a.format(run=run, tmp=tmp_path, corpus=corpus_file) for a in argv]
    proc = run_gpt(*args, cwd=tmp_path, env=ENV)
    line = assert_one_line(proc, code, needle)
    print(f"| {case} | gpt {' '.join(argv)} | {proc.returncode} | {line} |")  # the report's table (pytest -rP)
    assert "weights_only" not in line  # never the advice to unpickle unsafely
    assert not (tmp_path / "MARKER").exists(), "a hostile pickle ran"
    assert_kept(run, before)


# ----------------------------------------------------------------------------- a read-only disk, a busy port

@pytest.fixture
def mounts():
    mounted: list[Path] = []
    yield mounted
    for path in mounted:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_read_only_out_is_one_line(corpus_file, tmp_path, mounts):
    mount_tmpfs(tmp_path / "ro", "ro,size=1m")
    mounts.append(tmp_path / "ro")
    for command in (["train", *TINY], ["prepare", "--preset", "tiny"]):
        proc = run_gpt(*command, "--input", str(corpus_file), "--out", str(tmp_path / "ro" / "run"), env=ENV)
        assert_one_line(proc, 2, "Read-only file system")


def test_serve_on_a_busy_port_exits_2(run):
    pytest.importorskip("uvicorn")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = run_gpt("serve", "--out", str(run), "--device", "cpu", "--port", str(busy.getsockname()[1]), env=ENV)
    assert_one_line(proc, 2, "cannot listen on")


# ----------------------------------------------------------------------------- signals

def start_training(out: Path, corpus: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gpt", "train", *TINY, "--input", str(corpus), "--out", str(out),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV})


def wait_for(proc: subprocess.Popen, text: str, timeout: float = 120) -> None:
    """Read the trainer's stdout until a line holds text."""
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if text in line:
            return
        assert time.monotonic() < deadline, f"no {text!r} in time"
    raise AssertionError(f"the trainer ended before printing {text!r}: {proc.wait()} {proc.stderr.read()}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_then_the_same_command_resumes(sig, corpus_file, tmp_path):
    out = tmp_path / "run"
    proc = start_training(out, corpus_file, "--train.max_iters", "100000", "--train.eval_interval", "100000")
    wait_for(proc, "step 1:")
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert_one_line(done, 130, f"stopped by {sig.name}")
    step = int(done.stderr.split(" at step ")[1].split(";")[0])
    before = snapshot(out)
    again = run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(out), "--train.max_iters",
                    str(step + 3), "--train.eval_interval", "100000", env=ENV)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert f"at step {step}" in again.stdout
    assert_kept(out / "data", {k[5:]: v for k, v in before.items() if k.startswith("data/")})


def test_sigkill_then_resume(corpus_file, tmp_path):
    out = tmp_path / "run"
    proc = start_training(out, corpus_file, "--train.max_iters", "100000", "--train.ckpt_interval", "5",
                          "--train.eval_interval", "100000")
    deadline = time.monotonic() + 120
    while not (out / "model.safetensors").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.kill()
    proc.communicate()
    again = run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(out), "--train.max_iters", "12",
                    "--train.ckpt_interval", "5", env=ENV)
    assert again.returncode == 0 and "resume: continuing" in again.stdout, again.stdout + again.stderr
    from gpt.checkpoint import Checkpointer, verify_checkpoint
    assert all(verify_checkpoint(p) is None for p in Checkpointer(out).list())


def test_damaged_latest_checkpoint_falls_back(run, corpus_file):
    (latest(run) / "state.pt").write_bytes(b"\0" * 10)
    proc = run_gpt(*[a.format(run=run, corpus=corpus_file) for a in TRAIN], "--train.max_iters", "22", env=ENV)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "falling back" in proc.stdout and "at step 10" in proc.stdout


# ----------------------------------------------------------------------------- two processes on one run

def test_second_trainer_is_refused_and_readers_keep_working(run, corpus_file, tmp_path):
    first = start_training(run, corpus_file, "--train.max_iters", "100000", "--train.max_time", "15s",
                           "--train.ckpt_interval", "5")
    wait_for(first, "resume: continuing")
    second = run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(run), env=ENV)
    assert_one_line(second, 2, f"is in use by PID {first.pid}")
    reader = run_gpt(*[a.format(run=run) for a in GEN], env=ENV)
    assert reader.returncode == 0 and reader.stdout.startswith("hi"), reader.stderr
    assert first.poll() is None, "the first trainer should still be running while the reader read"
    stdout, stderr = first.communicate(timeout=180)
    assert first.returncode == 0 and "done: val loss" in stdout and "Traceback" not in stderr, stderr


# ----------------------------------------------------------------------------- a full disk

@pytest.mark.parametrize("what,code", [("torch_save:1", 0), ("safetensors:1", 0), ("safetensors:3", 0),
                                       ("log:all", 0), ("torch_save:all", 1), ("safetensors:all", 1),
                                       ("tokens:1", 1)])
def test_full_disk_costs_a_save_never_the_run(what, code, corpus_file, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", INJECT, what, "train", *TINY, "--input", str(corpus_file),
                           "--out", str(out)], capture_output=True, text=True, env={**os.environ, **ENV}, timeout=300)
    assert "Traceback" not in proc.stderr and proc.returncode == code, (proc.returncode, proc.stderr)
    from gpt.checkpoint import Checkpointer, load_run, verify_checkpoint
    checkpoints = Checkpointer(out).list()
    assert all(verify_checkpoint(p) is None for p in checkpoints)  # what was written is whole
    if code == 0:  # the run went on past the failed write and saved its result
        assert proc.stderr == "" and "done: val loss" in proc.stdout
        assert checkpoints[-1].name == "step-00000020" and load_run(out)[2].model.n_layer == 2
        assert what.startswith("log") or "No space left on device; the previous one is intact" in proc.stdout
    else:
        assert_one_line(proc, 1, "No space left", "disk is full")


@pytest.mark.parametrize("size,code", [("150k", 1), ("700k", 1), ("3m", 0)])
def test_small_filesystem(size, code, corpus_file, tmp_path, mounts):
    """A real full disk: the run goes on past failed saves, then ends in 0 or one line saying what is kept."""
    mount_tmpfs(tmp_path / "small", f"size={size}")
    mounts.append(tmp_path / "small")
    out = tmp_path / "small" / "run"
    proc = run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(out), env=ENV)
    from gpt.checkpoint import Checkpointer, verify_checkpoint
    assert all(verify_checkpoint(p) is None for p in Checkpointer(out).list())  # what was written is whole
    if code:  # the smallest disk may fill before the first checkpoint: the file that did not fit is named
        line = assert_one_line(proc, 1, "No space left on device; ", "the disk is full (/")
        assert "while writing" not in line
    else:
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert (out / "model.safetensors").exists() and Checkpointer(out).list()[-1].name == "step-00000020"


# ----------------------------------------------------------------------------- the server

@pytest.fixture(scope="module")
def server(trained):
    pytest.importorskip("uvicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "gpt", "serve", "--out", str(trained), "--device", "cpu",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV})
    wait_for(proc, "serving")
    deadline = time.monotonic() + 60
    while True:  # "serving" is printed just before uvicorn binds
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.communicate(timeout=30)


def post(conn, path: str, body: str) -> tuple[int, dict]:
    conn.request("POST", path, body=body.encode("utf-8", "surrogatepass"), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


@pytest.mark.parametrize("path,body,param", [
    ("/v1/completions", '{"model": "gpt", "prompt": "hi", "seed": ' + str(2**70) + '}', "seed"),
    ("/v1/completions", '{"model": "gpt", "prompt": "a \\ud800 b"}', "prompt"),
    ("/v1/chat/completions", '{"model": "gpt", "messages": [{"role": "user", "content": "\\udfff"}]}', "messages"),
    ("/v1/completions", json.dumps({"model": "gpt", "prompt": ["a"] * 1000, "n": 8, "max_tokens": 1}), "n"),
    ("/v1/completions", json.dumps({"model": "gpt", "prompt": ["a"] * 8, "max_tokens": 4096}), "max_tokens"),
    ("/v1/completions", json.dumps({"model": "gpt", "prompt": "hi", "temperature": -1}), "temperature"),
    ("/v1/completions", '{"model": "gpt", "prompt": ', None),
], ids=["seed-2**70", "lone-surrogate", "chat-surrogate", "prompts-x-n", "total-tokens", "temperature", "bad-json"])
def test_server_bad_request_is_400_json_and_the_connection_lives(server, path, body, param):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=60)
    status, error = post(conn, path, body)
    assert status == 400 and error["error"]["type"] == "invalid_request_error", error
    assert param is None or param in (error["error"]["param"] or "") + error["error"]["message"], error
    status, ok = post(conn, "/v1/completions", json.dumps({"model": "gpt", "prompt": "hi", "max_tokens": 2}))
    assert status == 200 and ok["choices"][0]["finish_reason"] in ("length", "stop")  # same keep-alive connection
    conn.close()
