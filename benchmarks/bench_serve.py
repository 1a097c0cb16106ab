"""Server throughput and latency: requests/s and p50/p99 at 1, 4 and 16 concurrent clients, 64 new tokens,
for a fixed small model (random weights, 4x128, block 256), and the server's overhead over calling
Generator.complete directly at concurrency 1.

    python benchmarks/bench_serve.py [--requests 48]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def make_run(root: Path) -> Path:
    from pydoc_data.topics import topics

    import torch

    from gpt.bpe import Tokenizer
    from gpt.checkpoint import save_weights, write_run_files
    from gpt.config import resolve
    from gpt.model import GPT
    tok = Tokenizer.train([topics[k] for k in sorted(topics)], 1024)
    cfg = resolve(overrides={"model.n_layer": 4, "model.n_embd": 128, "model.n_head": 4, "model.block_size": 256})
    cfg.model.vocab_size = tok.vocab_size
    torch.manual_seed(0)
    run = root / "bench"
    write_run_files(run, cfg, tok)
    save_weights(GPT(cfg.model), run / "model.safetensors")
    return run


def post(url: str, body: dict) -> float:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as resp:
        resp.read()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=48)
    args = parser.parse_args()
    from gpt.config import SampleConfig
    from gpt.generate import Generator
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp))
        gen = Generator(run, "cpu")
        params = SampleConfig(max_new_tokens=64, temperature=0, stop=[])
        gen.complete("The", params)
        direct = statistics.median(timed_direct(gen, params) for _ in range(10))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "gpt", "serve", "--out", str(run), "--port", str(port),
                                   "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base)
            # min_tokens is not an option: greedy decoding of a random model never emits end-of-text early
            body = {"model": "bench", "prompt": "The", "max_tokens": 64, "temperature": 0}
            post(base + "/v1/completions", body)
            print(f"direct Generator.complete: {direct * 1e3:.1f} ms per 64-token request")
            for concurrency in (1, 4, 16):
                n = max(args.requests, concurrency * 3)
                start = time.perf_counter()
                with ThreadPoolExecutor(concurrency) as pool:
                    latencies = sorted(pool.map(lambda _: post(base + "/v1/completions", body), range(n)))
                wall = time.perf_counter() - start
                p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(0.99 * n))]
                extra = f" | overhead vs direct {p50 / direct - 1:+.1%}" if concurrency == 1 else ""
                print(f"concurrency {concurrency:2d}: {n / wall:6.2f} req/s, p50 {p50 * 1e3:7.1f} ms, "
                      f"p99 {p99 * 1e3:7.1f} ms{extra}")
        finally:
            server.terminate()
            server.wait(timeout=20)


def timed_direct(gen, params) -> float:
    start = time.perf_counter()
    gen.complete("The", params)
    return time.perf_counter() - start


def wait_healthy(base: str) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


if __name__ == "__main__":
    main()
