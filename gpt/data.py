"""Documents in, token shards out: the data pipeline.

Documents come from gpt/documents.py (files, folders, globs, records) and are joined with ``<|endoftext|>``.
Tokens are written once to a cache (flat uint16/uint32 files plus a JSON manifest) and read back with numpy.memmap;
gpt/batches.py cuts them into batches.
This module knows nothing of models and does not import torch.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from gpt.bpe import Tokenizer
from gpt.documents import BUILTIN, DataError, collect_files, iter_documents, warn
from gpt.files import atomic_write, disk_full_at, sha256_file
from gpt.pretokenize import bounded_map

CACHE_FORMAT = "gpt-tokens"
CACHE_VERSION = 3  # 2: large files cut where tokens cannot change (pretokenize.SAFE_CUT); 3: byte-order marks dropped
_GROUP_CHARS = 1 << 20  # text handed to an encoder at a time: small groups keep every encoder busy
_PROCESS_MIN_BYTES = 32 << 20  # below this, starting encoder processes costs more than it saves


# ----------------------------------------------------------------------------- the token cache

def _source_stats(files: list[str]) -> list[list]:
    stats = []
    for path in files:
        if path == BUILTIN:
            stats.append([path, sys.version.split()[0], 0])
        else:
            st = os.stat(path)
            stats.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
    return stats


def _dtype(tokenizer: Tokenizer) -> np.dtype:
    return np.dtype(np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32)


def _groups(files: list[str], jsonl_field: str) -> Iterator[list[str | None]]:
    """Text pieces gathered into groups of about 1 MB, None where a document ends."""
    group: list[str | None] = []
    chars = 0
    for doc in iter_documents(files, jsonl_field):
        for piece in doc:
            group.append(piece)
            chars += len(piece)
            if chars >= _GROUP_CHARS:
                yield group
                group, chars = [], 0
        group.append(None)
    if group:
        yield group


def _encode_group(tokenizer: Tokenizer, group: list[str | None], dtype: np.dtype) -> tuple[np.ndarray, int, int]:
    """One group -> (token ids as dtype, UTF-8 bytes of text, documents ended); <|endoftext|> between documents."""
    eot = np.array([tokenizer.eot_id] if tokenizer.eot_id is not None else [], dtype=np.uint32)
    arrays = [tokenizer.encode_to_array(t) if t is not None else eot for t in group]
    n_bytes = sum(len(t.encode("utf-8")) for t in group if t is not None)
    return np.concatenate(arrays).astype(dtype), n_bytes, group.count(None)


def encode_files(files: list[str], tokenizer: Tokenizer, jsonl_field: str = "text") -> np.ndarray:
    """Every document of files as one token array (in memory), <|endoftext|> after each: for evaluation texts."""
    dtype = _dtype(tokenizer)
    arrays = [_encode_group(tokenizer, [*doc, None], dtype)[0] for doc in iter_documents(files, jsonl_field)]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


_worker_tokenizer: Tokenizer | None = None  # set once in each encoding process by _start_worker


def _start_worker(tokenizer_dict: dict) -> None:
    global _worker_tokenizer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle, without tracebacks
    _worker_tokenizer = Tokenizer.from_dict(tokenizer_dict)


def _encode_in_worker(group: list[str | None], dtype: np.dtype) -> tuple[np.ndarray, int, int]:
    return _encode_group(_worker_tokenizer, group, dtype)


def _encoder_pool(tokenizer: Tokenizer, workers: int, total_bytes: int) -> tuple[Executor, Callable]:
    """Processes for large inputs; small ones are not worth starting them for (threads, in this process)."""
    # Forked workers start in ~0.15 s; spawned ones (macOS, Windows) import torch afresh, ~2.3 s.
    min_bytes = _PROCESS_MIN_BYTES * (1 if multiprocessing.get_start_method() == "fork" else 8)
    if workers > 1 and total_bytes >= min_bytes:
        return (ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(tokenizer.to_dict(),)),
                _encode_in_worker)
    return ThreadPoolExecutor(workers), partial(_encode_group, tokenizer)


def tokenize_to_file(files: list[str], tokenizer: Tokenizer, path: Path, jsonl_field: str = "text",
                     workers: int = 0, progress: bool = True) -> dict:
    """Stream documents through the tokenizer into a flat token file; returns counts. Bounded memory.

    This process reads and cuts the text into ~1 MB groups; `workers` processes encode them (threads
    for small inputs), a few groups each in flight, and results are written in order. Processes,
    not threads: with threads, the work around tiktoken's GIL-free core (handing over the str, the
    arrays) and the reading all take turns on the GIL, 1.3x slower (benchmarks/README.md).
    """
    dtype = _dtype(tokenizer)
    tmp = path.with_name(path.name + ".tmp")
    workers = workers or os.cpu_count() or 1
    total_bytes = sum(os.path.getsize(f) for f in files if f != BUILTIN and os.path.isfile(f))
    pool, encode = _encoder_pool(tokenizer, workers, total_bytes)
    n_tokens = n_docs = n_bytes = 0
    start = time.perf_counter()
    bar = _bar(progress)
    try:
        with open(tmp, "wb") as out, pool:
            for tokens, size, docs in bounded_map(pool, partial(encode, dtype=dtype), _groups(files, jsonl_field),
                                                   window=4 * workers):
                out.write(tokens.data)
                n_tokens, n_bytes, n_docs = n_tokens + len(tokens), n_bytes + size, n_docs + docs
                if bar is not None:
                    bar.update(size / 1e6)
    except BaseException as exc:  # a half-written file never stays behind, whatever stopped the writing
        tmp.unlink(missing_ok=True)
        if named := disk_full_at(exc, path):
            raise named from None
        raise
    finally:
        if bar is not None:
            bar.close()
    if n_docs == 0 or n_bytes == 0:
        tmp.unlink(missing_ok=True)
        raise DataError("the input is empty: no readable text in " + ", ".join(files[:3]))
    os.replace(tmp, path)
    seconds = time.perf_counter() - start
    return {"tokens": n_tokens, "documents": n_docs, "bytes": n_bytes, "seconds": round(seconds, 3)}


def _bar(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(desc="tokenizing", unit="MB", unit_scale=False, bar_format="{desc}: {n:.1f} MB [{rate_fmt}]",
                disable=None, leave=False)


@dataclass
class TokenData:
    """Tokenized corpus: train and validation token arrays (memmaps) and what they came from."""
    train: np.ndarray
    val: np.ndarray
    val_bytes: int  # UTF-8 bytes of text in the validation tokens (special tokens count 0), for bits per byte
    manifest: dict


def token_byte_lengths(tokenizer: Tokenizer) -> np.ndarray:
    """Bytes of text per token id; special tokens count 0 (they are not text)."""
    lengths = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    lengths[:len(tokenizer.vocab)] = [len(t) for t in tokenizer.vocab]
    return lengths


def prepare(inputs: list[str], tokenizer: Tokenizer, cache_dir: str | Path, val_inputs: list[str] | None = None,
            val_fraction: float = 0.1, jsonl_field: str = "text", workers: int = 0,
            progress: bool = True, log=print) -> TokenData:
    """Tokenize inputs into cache_dir once; later calls with the same inputs and tokenizer reuse it."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    files = collect_files(inputs)
    val_files = collect_files(val_inputs) if val_inputs else []
    want = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "tokenizer": tokenizer.hash(),
            "dtype": _dtype(tokenizer).name, "sources": _source_stats(files), "val_sources": _source_stats(val_files),
            "jsonl_field": jsonl_field}
    manifest_path = cache / "manifest.json"
    manifest = _valid_cache(cache, manifest_path, want)
    if manifest is None:
        manifest = dict(want, files={})
        parts = [("tokens.bin", files)] + ([("val.bin", val_files)] if val_files else [])
        for name, group in parts:
            info = tokenize_to_file(group, tokenizer, cache / name, jsonl_field, workers, progress)
            info["sha256"] = sha256_file(cache / name)
            manifest["files"][name] = info
            mbps = info["bytes"] / 1e6 / max(info["seconds"], 1e-9)
            log(f"data: tokenized {info['bytes'] / 1e6:.2f} MB into {info['tokens']:,} tokens "
                f"({info['bytes'] / max(info['tokens'], 1):.2f} bytes/token, {mbps:.1f} MB/s) -> {cache / name}")
        atomic_write(manifest_path, json.dumps(manifest, indent=1))
    else:
        log(f"data: reusing the token cache in {cache} ({manifest['files']['tokens.bin']['tokens']:,} tokens)")
    return _split(cache, manifest, tokenizer, val_fraction)


def open_prepared(cache_dir: str | Path, tokenizer: Tokenizer, val_fraction: float = 0.1) -> TokenData:
    """A cache another process has just built or verified (a distributed run's other ranks): no hashing again."""
    return _split(Path(cache_dir), _manifest_of(Path(cache_dir), tokenizer), tokenizer, val_fraction)


def _manifest_of(cache: Path, tokenizer: Tokenizer) -> dict:
    """A token cache's manifest, checked to be this tokenizer's."""
    try:
        manifest = json.loads((cache / "manifest.json").read_text())
    except (OSError, ValueError):
        raise DataError(f"the token cache {cache} is missing its manifest") from None
    if manifest.get("tokenizer") != tokenizer.hash():
        raise DataError(f"the token cache {cache} was made with another tokenizer")
    return manifest


def _valid_cache(cache: Path, manifest_path: Path, want: dict) -> dict | None:
    """The manifest if the cache matches the inputs and tokenizer and its files are intact, else None."""
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if any(manifest.get(k) != v for k, v in want.items()):
        return None
    itemsize = np.dtype(want["dtype"]).itemsize
    for name, info in manifest.get("files", {}).items():
        path = cache / name
        if not path.exists() or path.stat().st_size != info["tokens"] * itemsize or sha256_file(path) != info["sha256"]:
            warn(f"token cache file {path} is damaged; rebuilding it")
            return None
    return manifest if "tokens.bin" in manifest.get("files", {}) else None


def _train_val(cache: Path, manifest: dict, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    dtype = np.dtype(manifest["dtype"])
    tokens = np.memmap(cache / "tokens.bin", dtype=dtype, mode="r")
    if "val.bin" in manifest["files"]:
        return tokens, np.memmap(cache / "val.bin", dtype=dtype, mode="r")
    n_val = int(len(tokens) * val_fraction)  # the last val_fraction of the tokens: no train window reaches val
    return tokens[:len(tokens) - n_val], tokens[len(tokens) - n_val:]


def _split(cache: Path, manifest: dict, tokenizer: Tokenizer, val_fraction: float) -> TokenData:
    train, val = _train_val(cache, manifest, val_fraction)
    lengths = token_byte_lengths(tokenizer)
    step = 1 << 22  # in slices: one gather over a large validation memmap would cost 16 bytes a token of RAM
    val_bytes = sum(int(lengths[val[i:i + step]].sum()) for i in range(0, len(val), step))
    return TokenData(train=train, val=val, val_bytes=val_bytes, manifest=manifest)


def training_tokens(cache_dir: str | Path, tokenizer: Tokenizer, val_fraction: float = 0.1) -> np.ndarray | None:
    """The training tokens of a token cache (a memmap), or None when it has none made with this tokenizer."""
    try:
        return _train_val(Path(cache_dir), _manifest_of(Path(cache_dir), tokenizer), val_fraction)[0]
    except (DataError, OSError, ValueError, KeyError):
        return None


def check_sizes(data: TokenData, block_size: int) -> None:
    """A corpus must hold at least one training window; say what would fit when it does not."""
    n_train = len(data.train)
    if n_train < block_size + 1:
        total = n_train + len(data.val)
        fits = n_train >= 2 and len(data.val) >= 2  # else no block_size would do
        hint = f"Use more text or --model.block_size {n_train - 1}" if fits else "Use more text"
        raise DataError(f"the corpus has {total:,} tokens ({n_train:,} for training); block_size {block_size} needs "
                        f"at least {block_size + 1:,} training tokens. {hint}")
    if len(data.val) < 2:
        raise DataError(f"the validation split has {len(data.val)} tokens; use more text or a larger "
                        "--data.val_fraction, or give --data.val_input")
