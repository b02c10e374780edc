"""Keeping C libraries' chatter off the terminal."""

from __future__ import annotations

import os

from ..chatter import silenced


def quiet_stderr(active: bool = True):
    """Silence C libraries writing to file descriptor 2 (not Python's own sys.stderr objects)."""
    return silenced(2, active)


_keras = None


def import_keras():
    """``import keras`` (TensorFlow backend) once, without TensorFlow's start-up log lines on stderr."""
    global _keras
    if _keras is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with quiet_stderr():
            import tensorflow  # noqa: F401  (its C++ logging starts here)
            import keras
        _keras = keras
    return _keras
