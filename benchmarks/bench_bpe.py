"""Tokenizer speed side by side with Hugging Face `tokenizers` and `tiktoken`, in one run.

Training time for vocab 512 / 4096 / 32768 on Tiny Shakespeare (../shared/data) and on the Python
standard library's .py files (test folders excluded); encoding MB/s (single thread) for our tiktoken
fast path, raw tiktoken on the same ranks, our pure-Python reference encoder, and HF `tokenizers`;
the compression fingerprint; with --memory, peak RSS while training on a large streamed corpus;
with --import, the time to import vocabularies of GPT-2's and Llama 3's sizes (tiktoken ranks, and
a Hugging Face tokenizer.json), the other benchmarks skipped.

    python benchmarks/bench_bpe.py [--vocabs 512 4096 32768] [--memory 400]
    python benchmarks/bench_bpe.py --import [50257 128000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from gpt.bpe import ENDOFTEXT, PATTERNS, Tokenizer
from gpt.bpe_formats import from_hf_dict, from_ranks, to_hf_dict

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def stdlib_corpus() -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    parts = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in ("test", "tests", "idle_test", "site-packages") for p in rel):
            continue
        parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def hf_train(text: str, vocab: int, pattern: str):
    from tokenizers import Regex, models, pre_tokenizers, trainers
    from tokenizers import Tokenizer as HFTokenizer
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator([text], trainer)
    return tok


def seconds(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def mbps(fn, nbytes: int, reps: int = 3) -> float:
    fn()
    best = min(seconds(fn)[0] for _ in range(reps))
    return nbytes / 1e6 / best


def train_row(name: str, text: str, vocab: int, workers: int) -> None:
    size = len(text.encode("utf-8"))
    t_ours, ours = seconds(lambda: Tokenizer.train([text], vocab, "gpt4", (), workers=workers))
    t_hf, hf = seconds(lambda: hf_train(text, vocab, PATTERNS["gpt4"]))
    n_ours, n_hf = len(ours.encode(text)), len(hf.encode(text).ids)
    print(f"train {name:11s} ({size / 1e6:5.2f} MB) vocab {vocab:6d}: ours {t_ours:6.2f}s | HF tokenizers "
          f"{t_hf:6.2f}s | ours/HF x{t_ours / t_hf:.2f} | tokens ours {n_ours:,} HF {n_hf:,} "
          f"({size / n_ours:.4f} bytes/token)")


def encode_row(name: str, text: str, vocab: int, workers: int) -> None:
    size = len(text.encode("utf-8"))
    tok = Tokenizer.train([text], vocab, "gpt4", (), workers=workers)
    hf = hf_train(text, tok.vocab_size, PATTERNS["gpt4"])
    fast = tok.fast
    r_ours = mbps(lambda: tok.encode(text), size)
    r_tik = mbps(lambda: fast.encode_ordinary(text), size)
    r_hf = mbps(lambda: hf.encode(text), size)
    r_ref = mbps(lambda: (tok._cache.clear(), tok.encode(text, reference=True)), size, reps=1)
    print(f"encode {name} (vocab {tok.vocab_size}, one thread): ours {r_ours:.2f} MB/s | tiktoken {r_tik:.2f} MB/s "
          f"(ours x{r_ours / r_tik:.2f}) | reference {r_ref:.2f} MB/s | HF tokenizers {r_hf:.2f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocabs", type=int, nargs="+", default=[512, 4096, 32768])
    parser.add_argument("--memory", type=int, default=0, help="MB of streamed corpus for the peak-RSS check")
    parser.add_argument("--import", dest="import_sizes", type=int, nargs="*",
                        help="time importing generated vocabularies of these sizes (default 50257 128000)")
    args = parser.parse_args()
    if args.import_sizes is not None:
        for size in args.import_sizes or [50257, 128000]:
            import_row(size)
        return
    workers = os.cpu_count() or 1
    corpora = {"stdlib": stdlib_corpus()}
    if SHAKESPEARE.exists():
        corpora["shakespeare"] = SHAKESPEARE.read_text()
    print(f"{workers} cores; GPT-4 pattern; no special tokens")
    for name, text in corpora.items():
        for vocab in args.vocabs:
            train_row(name, text, vocab, workers)
        encode_row(name, text, 32768 if name == "stdlib" else 4096, workers)
    if args.memory:
        memory_check(corpora["stdlib"], args.memory)


def random_ranks(n: int, seed: int = 0) -> dict[bytes, int]:
    """n tokens grown by random merges of earlier tokens (short ones more often), up to 24 bytes."""
    rng = random.Random(seed)
    vocab = [bytes([b]) for b in range(256)]
    seen = set(vocab)
    while len(vocab) < n:
        a, b = vocab[int(len(vocab) * rng.random() ** 2)], vocab[int(len(vocab) * rng.random() ** 3)]
        if a + b not in seen and len(a + b) <= 24:
            seen.add(a + b)
            vocab.append(a + b)
    return {t: i for i, t in enumerate(vocab)}


def import_row(size: int) -> None:
    """Import a generated vocabulary from ranks (tiktoken) and from a tokenizer.json (parsed from text).

    Wall and CPU seconds: on a shared machine the wall time includes waiting for a core.
    """
    ranks = random_ranks(size - 1)
    specials = {ENDOFTEXT: size - 1}
    cpu = time.process_time()
    t_ranks, tok = seconds(lambda: from_ranks(ranks, "gpt4", specials))
    cpu_ranks, cpu = time.process_time() - cpu, time.process_time()
    text = json.dumps(to_hf_dict(tok), ensure_ascii=False)
    cpu_export, cpu = time.process_time() - cpu, time.process_time()
    t_hf, again = seconds(lambda: from_hf_dict(json.loads(text)))
    cpu_hf = time.process_time() - cpu
    assert again.vocab == tok.vocab
    mean = sum(map(len, tok.vocab)) / len(tok.vocab)
    print(f"import vocab {size:,} (mean {mean:.1f} bytes/token): from tiktoken ranks {t_ranks:.2f}s "
          f"(cpu {cpu_ranks:.2f}s) | from tokenizer.json ({len(text) / 1e6:.1f} MB) {t_hf:.2f}s "
          f"(cpu {cpu_hf:.2f}s) | export to tokenizer.json cpu {cpu_export:.2f}s")


def memory_check(text: str, megabytes: int) -> None:
    """Stream a corpus of `megabytes` from disk into training and report peak RSS in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.txt"
        block = text.encode("utf-8")
        with open(path, "wb") as fh:
            written = 0
            while written < megabytes * 1e6:
                fh.write(block)
                written += len(block)
        code = ("import resource, sys; from gpt.bpe import Tokenizer; from gpt.documents import iter_texts; "
                f"t = Tokenizer.train(iter_texts([{str(path)!r}]), 4096, 'gpt4', (), workers=2); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
                "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        elapsed = time.perf_counter() - start
        main_rss, child_rss = int(out[0]) / 1024, int(out[1]) / 1024
        print(f"memory: trained vocab 4096 on {written / 1e6:.0f} MB streamed from disk in {elapsed:.0f}s; peak RSS "
              f"{main_rss:.0f} MB (main), {child_rss:.0f} MB (largest counting worker); corpus/peak "
              f"x{written / 1e6 / max(main_rss, child_rss):.1f}")


if __name__ == "__main__":
    main()
