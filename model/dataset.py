"""A folder-per-genre dataset (``rock/``, ``jazz/``, ...): its classes and tracks, and the optional packages
that training and evaluation reports need. Shared by ``prepare``, ``train`` and ``evaluate``."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import SoundalikeError
from ..model.audio import AUDIO_EXTENSIONS


class DatasetError(SoundalikeError):
    """A dataset folder that cannot be trained on; the message says why."""


#: the optional extra ``soundalike[train]``: module -> package to install
TRAIN_EXTRA = {"matplotlib": "matplotlib", "sklearn": "scikit-learn"}


def require_extra(purpose: str, *modules: str) -> None:
    """Raise :class:`DatasetError` (one line: what is missing, what to install) unless ``modules`` import."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            what = "is not installed" if err.name == module else f"fails to import ({err})"
            raise DatasetError(f"{purpose} needs {TRAIN_EXTRA.get(module, module)}, which {what}: "
                               f"pip install 'soundalike[train]'") from None


@dataclasses.dataclass(frozen=True)
class Dataset:
    classes: list[str]
    paths: list[str]
    labels: np.ndarray  # int64 [n], index into classes


def list_dataset(root: str | os.PathLike, *, log: Callable[[str], None] | None = None) -> Dataset:
    """Class = immediate sub-folder of ``root``; its audio files (recursively, hidden ones skipped) are its tracks.

    An empty class folder is skipped with a warning; a class with a single track is kept (it can only be
    trained on, never validated) with a warning."""
    log = log or (lambda m: print(m, file=sys.stderr))
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    classes, paths, labels = [], [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            str(f)
            for f in sub.rglob("*")
            if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file() and not any(part.startswith(".") for part in f.relative_to(sub).parts)
        )
        if not files:
            log(f"warning: {sub}: no audio files, class skipped")
            continue
        if len(files) == 1:
            log(f"warning: {sub}: only one track; it is used for training and cannot be validated or tested")
        classes.append(sub.name)
        paths += files
        labels += [len(classes) - 1] * len(files)
    if len(classes) < 2:
        raise DatasetError(f"{root}: need at least two class folders with audio files, found {len(classes)}")
    return Dataset(classes, paths, np.asarray(labels, dtype=np.int64))
