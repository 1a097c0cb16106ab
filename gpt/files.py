"""Writing files so that nothing is ever half-written: one atomic write, one hash, one lock for a run directory
(and one way to read the lines of a JSONL file, and a compressed input as its text).

Every file the project writes (tokenizers, token-cache manifests, weights, checkpoints, exports, plots)
goes through ``atomic_write``: a temporary file beside the target, flushed and fsynced, renamed over the
target, and the folder fsynced, so a crash, a SIGKILL or a full disk leaves either the old file or the new
one, never a torn one. This module must not import torch.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from gpt.errors import InputError


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside path durable (a no-op where folders cannot be opened, e.g. Windows)."""
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


def temp_path(path: str | Path) -> Path:
    """The hidden temporary name a file is written under before it is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def atomic_write(path: str | Path, data: bytes | str | Callable[[Path], None]) -> None:
    """Write bytes, text (UTF-8) or whatever `data(tmp_path)` writes to path atomically and durably."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        if callable(data):
            data(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        else:
            with open(tmp, "wb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except Exception as exc:  # torch and safetensors report a full disk as their own errors: say it plainly
        if named := disk_full_at(exc, path):
            raise named from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def atomic_copy(source: str | Path, path: str | Path) -> None:
    """Copy a file over path atomically: readers see the old file or the whole new one."""
    atomic_write(path, lambda tmp: shutil.copyfile(source, tmp))


def format_problem(record: object, fmt: str, version: int, what: str) -> str | None:
    """Why a loaded JSON record is not a `what` this gpt reads (its "format" and "version" keys), or None."""
    if not isinstance(record, dict) or record.get("format") != fmt:
        return f"is not a {what} (no \"format\": \"{fmt}\")"
    if record.get("version") != version:
        return f"is a {what} of format version {record.get('version')!r}; this gpt reads version {version}"
    return None


def disk_full_at(exc: BaseException, path: str | Path) -> OSError | None:
    """An OSError naming `path` when exc is a full disk that does not say which file it was writing, else None."""
    if is_disk_full(exc) and not (isinstance(exc, OSError) and exc.filename):
        return OSError(errno.ENOSPC, "No space left on device", str(path))
    return None


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC, also when a library reports it as its own error (torch.save: 'unexpected pos' or, when the end
    of its zip file does not fit, 'basic_ios::clear: iostream error'; safetensors)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc)
    return type(exc).__name__ in ("RuntimeError", "SafetensorError") and any(
        hint in text for hint in ("unexpected pos", "iostream error", "No space left", "ENOSPC", "Disk quota",
                                 "os error 28"))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def write_jsonl(records: Iterable[dict], path: str | Path) -> None:
    """One JSON object a line (UTF-8, unescaped), written atomically: what jsonl_lines reads back."""
    atomic_write(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}  # suffix -> opener, all in the standard library
# what a damaged compressed file raises where the damage is reached (a bad header, data cut short, a bad block)
DAMAGED_DATA = (OSError, EOFError, zlib.error, lzma.LZMAError)


def compression(path: str | Path) -> str:
    """The suffix of a compressed file's name that says so (".gz", ".bz2", ".xz"); "" for any other file."""
    suffix = os.path.splitext(str(path))[1].lower()
    return suffix if suffix in COMPRESSED else ""


def uncompressed_name(path: str | Path) -> str:
    """The name a file's format is read from: a compressed "Notes.md.gz" is Markdown, "chats.jsonl.xz" JSONL."""
    suffix = compression(path)
    return str(path)[:-len(suffix)] if suffix else str(path)


def open_bytes(path: str | Path) -> BinaryIO:
    """A file opened to read its bytes, decompressed as they are read if it is compressed (.gz, .bz2, .xz)."""
    return COMPRESSED.get(compression(path), open)(path, "rb")


def jsonl_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for each non-blank line of a JSONL file (compressed or not), read as UTF-8
    (bad bytes replaced, a byte-order mark as Windows editors write one dropped).

    Parsing is the caller's: each reader has its own record shape and its own policy for a bad line.
    """
    with io.TextIOWrapper(open_bytes(path), encoding="utf-8-sig", errors="replace") as fh:
        try:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    yield number, line
        except DAMAGED_DATA as exc:
            if not compression(path):
                raise
            raise InputError(f"{path}: damaged compressed data ({exc})") from None


class RunInUse(InputError):
    """A run directory another trainer holds."""


class RunLock:
    """An exclusive lock on a run directory (flock on `.lock`): one trainer at a time, released by the OS on exit.

    Readers (generate, serve, eval) never take it: they read files that are only ever replaced whole.
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / ".lock"
        self.fh = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; the run directory is then unguarded
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunInUse(f"{self.path.parent} is in use by PID {holder} (another gpt train); wait for it, "
                           "or use another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self.fh = fh
        return self

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()  # closing drops the flock
            self.fh = None


def xml_elements(stream: BinaryIO, name: str) -> Iterator[ET.Element]:
    """Each element called `name` (in any namespace) of an XML file, whole, as the parser ends it; what was read
    before it is let go after it, so an export larger than memory streams. ParseError where the file is damaged."""
    events = ET.iterparse(stream, events=("start", "end"))
    root = next(events)[1]
    for event, element in events:
        if event == "end" and element.tag.rsplit("}", 1)[-1] == name:
            yield element
            root.clear()
