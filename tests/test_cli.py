"""The real CLI end to end, in subprocesses: train a tiny model, then use every command on it."""

import json
import subprocess
import sys

import pytest

from .conftest import TINY, run_gpt


@pytest.fixture(scope="module")
def run_dir(corpus_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(out), "--train.max_iters", "40",
                   check=True)
    assert "done: val loss" in proc.stdout
    return out


def test_help_for_every_command():
    for cmd in ["train", "prepare", "generate", "chat", "eval", "inspect", "tokenizer", "export", "serve"]:
        proc = run_gpt(cmd, "--help", check=True)
        assert "usage: gpt" in proc.stdout
    assert "COMMAND" in run_gpt("--help", check=True).stdout


def test_generate_streams_text(run_dir):
    proc = run_gpt("generate", "What is a decorator?", "--out", str(run_dir), "--max-new-tokens", "20", check=True)
    assert proc.stdout.startswith("What is a decorator?") and len(proc.stdout) > len("What is a decorator?") + 5


def test_generate_same_seed_same_text(run_dir):
    args = ("generate", "The", "--out", str(run_dir), "--json", "--seed", "7", "--max-new-tokens", "15")
    a, b = run_gpt(*args, check=True).stdout, run_gpt(*args, check=True).stdout
    assert a == b and json.loads(a)["completion_tokens"] >= 1


def test_a_reader_that_leaves_early_stops_generate_quietly(run_dir):
    proc = subprocess.Popen([sys.executable, "-m", "gpt", "generate", "The", "--out", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `gpt generate ... | head -1`, with head gone before the first word
    assert proc.wait(timeout=120) == 141 and proc.stderr.read() == b""  # as `yes | head` ends: no traceback
    proc.stderr.close()


def test_prompt_longer_than_context_warns(run_dir):
    proc = run_gpt("generate", "word " * 400, "--out", str(run_dir), "--max-new-tokens", "5", check=True)
    assert "keeping its last" in proc.stderr and "Traceback" not in proc.stderr


def test_eval_and_inspect(run_dir, corpus_file):
    result = json.loads(run_gpt("eval", "--out", str(run_dir), "--input", str(corpus_file), check=True).stdout)
    assert 0 < result["bpb"] < 8 and result["tokens"] > 1000
    proc = run_gpt("inspect", "The value of", "--out", str(run_dir), "-k", "3", check=True)
    assert proc.stdout.count("%") == 3


def test_tokenizer_commands(run_dir, corpus_file, tmp_path):
    tok = tmp_path / "tok.json"
    run_gpt("tokenizer", "train", "--input", str(corpus_file), "--vocab-size", "300", "--out", str(tok), check=True)
    ids = run_gpt("tokenizer", "encode", "hello world", "--tokenizer", str(tok), check=True).stdout.split()
    assert run_gpt("tokenizer", "decode", " ".join(ids), "--tokenizer", str(tok), check=True).stdout == "hello world\n"
    shown = run_gpt("tokenizer", "encode", "hello world", "--show", "--tokenizer", str(run_dir), check=True).stdout
    assert "11 bytes ->" in shown


def test_export_formats(run_dir, tmp_path):
    run_gpt("export", "--out", str(run_dir), "--format", "tiktoken", "--to", str(tmp_path / "t.tiktoken"), check=True)
    run_gpt("export", "--out", str(run_dir), "--format", "hf-tokenizer", "--to", str(tmp_path / "t.json"), check=True)
    assert (tmp_path / "t.tiktoken").stat().st_size > 0 and (tmp_path / "t.json").stat().st_size > 0


def test_prepare_alone(corpus_file, tmp_path):
    proc = run_gpt("prepare", "--preset", "tiny", "--input", str(corpus_file), "--out", str(tmp_path), check=True)
    assert "train tokens" in proc.stdout and (tmp_path / "data" / "manifest.json").exists()


@pytest.mark.parametrize("args,code,message", [
    (["train", "--preset", "default", "--model.n_head", "5"], 2,
     "model.n_embd (384) must be divisible by model.n_head (5)"),
    (["train", "--modle.n_layer", "2"], 2, "did you mean 'model.n_layer'"),
    (["train", "--train.max_iters", "ten"], 2, "expects int"),
    (["train", *TINY, "--input", "/nonexistent/file.txt"], 2, "does not exist"),
    (["generate", "hi", "--out", "/nonexistent/run"], 2, "not a run directory"),
    (["tokenizer", "decode", "1 x", "--tokenizer", "/nonexistent.json"], 2, "cannot read tokenizer"),
])
def test_bad_input_is_one_line(args, code, message, tmp_path):
    proc = run_gpt(*args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_empty_and_short_corpora(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    proc = run_gpt("train", *TINY, "--input", str(empty), "--out", str(tmp_path / "a"))
    assert proc.returncode == 2 and "empty" in proc.stderr and "Traceback" not in proc.stderr
    short = tmp_path / "short.txt"
    short.write_text("a few words. " * 2)
    proc = run_gpt("train", *TINY, "--input", str(short), "--out", str(tmp_path / "b"), "--tokenizer.vocab_size", "260")
    assert proc.returncode == 2 and "block_size 32 needs" in proc.stderr


def test_non_utf8_input_trains(tmp_path):
    data = tmp_path / "latin1.txt"
    data.write_bytes(("Les caf\xe9s na\xeffs sont ouverts le matin. " * 200).encode("latin-1"))
    proc = run_gpt("train", *TINY, "--input", str(data), "--out", str(tmp_path / "r"), "--train.max_iters", "5")
    assert proc.returncode == 0, proc.stderr


def test_missing_input_is_reported_before_the_resume_check(run_dir):
    proc = run_gpt("train", *TINY, "--input", "/nonexistent/notes.txt", "--out", str(run_dir))
    assert proc.returncode == 2 and "input path does not exist: /nonexistent/notes.txt" in proc.stderr
    assert "another config" not in proc.stderr


def test_only_binary_input_says_so(tmp_path):
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 8)
    proc = run_gpt("train", *TINY, "--input", str(tmp_path / "blob.bin"), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "skipping binary file" in proc.stderr and "binary files" in proc.stderr


def test_chat_in_a_terminal_answers_and_keeps_history(run_dir):
    """`gpt chat` on a real terminal (a pty): it answers, leaves on Ctrl-D with exit code 0, keeps its history.

    The child is started by subprocess, which execs straight after fork: pty.fork() runs Python in the child of
    this multi-threaded process first, which can deadlock there before exec. Nothing waits forever: the prompt
    "> " counts once the child is quiet after it (a reply may hold "> "), the terminal is drained while waiting,
    and Ctrl-D is typed again until the child leaves or a deadline kills it."""
    import os
    import select
    import subprocess
    import sys
    import time

    def read_prompt(fd: int, seen: bytes = b"", timeout: float = 120) -> bytes:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:  # the child closed the terminal
                    break
            elif seen.endswith(b"> "):  # the prompt, and nothing after it for half a second
                break
        return seen

    (run_dir / ".chat_history").unlink(missing_ok=True)
    master, slave = os.openpty()
    child = subprocess.Popen([sys.executable, "-m", "gpt", "chat", "--out", str(run_dir), "--max-new-tokens", "8",
                              "--seed", "1"], stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        out = read_prompt(master)
        os.write(master, b"The value of\n")
        out = read_prompt(master, out)
        deadline = time.time() + 60
        while child.poll() is None and time.time() < deadline:
            try:
                os.write(master, b"\x04")  # Ctrl-D leaves
                out = read_prompt(master, out, timeout=1)
            except OSError:  # the child has closed its terminal: it is leaving
                time.sleep(0.1)
        if child.poll() is None:
            child.kill()
            pytest.fail(f"gpt chat did not leave on Ctrl-D; its terminal showed {out[-400:]!r}")
    finally:
        child.wait(timeout=30)
        os.close(master)
    assert child.returncode == 0, out[-400:]
    assert b"Traceback" not in out and b"value of" in out
    assert "The value of" in (run_dir / ".chat_history").read_text()


def test_ask_free_without_source_is_a_one_line_error(tmp_path):
    proc = run_gpt("ask", "What is a decorator?", "--out", str(tmp_path / "none"), "--free")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "gpt: error: --free needs passages: --source FILES (the run has no passages.safetensors); without passages the "
        "answer is always free"]
