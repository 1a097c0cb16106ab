"""Errors a user can cause and fix: each is printed by the CLI as one line with an exit code, never a traceback."""

from __future__ import annotations

import errno


class GPTError(Exception):
    """Base of the project's expected failures; `code` is the process exit code."""

    code = 1

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class InputError(GPTError, ValueError):
    """Bad usage, configuration, input or file: exit code 2."""

    code = 2


def describe(exc: BaseException) -> tuple[str, int] | None:
    """(one-line message, exit code) for an expected failure, None for a bug that deserves its traceback."""
    if isinstance(exc, GPTError):
        return str(exc), exc.code
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"the disk is full ({exc.filename or 'while writing'}); free space and run again", 1
        if exc.errno in (errno.ENOENT, errno.EACCES, errno.EISDIR, errno.ENOTDIR, errno.EROFS, errno.EPERM):
            return f"{exc.strerror}: {exc.filename}", 2
        if exc.errno == errno.EADDRINUSE:
            return f"address already in use: {exc}", 1
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller --train.batch_size or model", 1
    return None
