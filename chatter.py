"""Keeping C libraries' chatter (FAISS, TensorFlow, decoders writing to the process's file descriptors) off the
terminal and out of a command's output."""

from __future__ import annotations

import contextlib
import ctypes
import os


def _flush_c_stdio() -> None:
    """Flush the C library's own buffers (what a C ``printf`` left there), so it lands where it was meant to."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def silenced(fd: int, active: bool = True):
    """Send what is written to file descriptor ``fd`` (1 or 2) to /dev/null meanwhile; Python's own
    ``sys.stdout`` and ``sys.stderr`` objects are untouched."""
    if not active:
        yield
        return
    try:
        saved = os.dup(fd)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        _flush_c_stdio()
        os.dup2(devnull, fd)
        yield
    finally:
        _flush_c_stdio()
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
