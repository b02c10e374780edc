"""One error type a user can act on: every package's errors are SoundalikeErrors, and the command line and the
HTTP service each map that one type (exit code, HTTP status) instead of knowing every class."""

from __future__ import annotations

import subprocess
import sys

import pytest

from soundalike.catalog.indexes import IndexBuildError
from soundalike.catalog.store import EncoderMismatch, StoreError, StoreLocked
from soundalike.errors import NotFound, SoundalikeError, Unavailable
from soundalike.indexer.stages import IndexingError
from soundalike.model.audio import AudioError
from soundalike.model.dataset import DatasetError
from soundalike.model.distill import DistillError
from soundalike.model.encoder import ModelError
from soundalike.model.musicnn import WeightsMissing
from soundalike.model.runtime import RuntimeChoiceError
from soundalike.search.searcher import QueryError, UnknownTrack


@pytest.mark.parametrize("cls", [IndexBuildError, StoreError, EncoderMismatch, StoreLocked, IndexingError, AudioError,
                                 DistillError, ModelError, WeightsMissing, RuntimeChoiceError, DatasetError, QueryError,
                                 UnknownTrack])
def test_every_user_error_is_a_soundalike_error(cls):
    assert issubclass(cls, SoundalikeError)


def test_each_error_carries_its_exit_code_and_http_status():
    assert (SoundalikeError.exit_code, SoundalikeError.http_status) == (2, 400)
    assert issubclass(UnknownTrack, NotFound) and UnknownTrack("x").http_status == 404
    assert issubclass(StoreError, Unavailable) and StoreLocked("x").http_status == 503
    assert QueryError("x").http_status == 400
    assert issubclass(RuntimeChoiceError, ValueError)  # callers that catch ValueError still do


def test_the_command_line_prints_one_line_and_the_errors_exit_code(tmp_path):
    missing = tmp_path / "nowhere.soundalike"
    res = subprocess.run([sys.executable, "-m", "soundalike.cli", "info", "--db", str(missing)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in res.stderr, res.stderr
