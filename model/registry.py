"""Which encoder a name, a file or a store's recorded spec means, and loading it.

The built-in encoders are the pretrained musicnn networks (weights from the ``musicnn`` wheel) and the distilled
student (weights in this package); any other encoder is a file trained with ``soundalike train`` (``.keras``
plus its sidecar: the seed CNN, or a head on a pretrained backbone) or ``soundalike distill`` (``.npz``). This
module is the one place that knows every kind, so the encoders' own modules need not know each other.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..model.encoder import KerasEncoder, ModelError, read_sidecar

#: Names of the built-in pretrained encoders (weights shipped by a package, nothing to train).
BUILTIN = {"musicnn": "MSD_musicnn+MTT_musicnn", "musicnn-msd": "MSD_musicnn", "musicnn-mtt": "MTT_musicnn",
           "student": "student"}
DEFAULT_ENCODER = "musicnn"


def is_builtin(ref) -> bool:
    return isinstance(ref, str) and ref in BUILTIN


def load_encoder(ref: str | os.PathLike | dict):
    """An encoder from a ``.keras`` path, a student's ``.npz``, a built-in name (``musicnn``, ``musicnn-msd``,
    ``musicnn-mtt``, ``student``) or the ``spec`` dict a store recorded."""
    if isinstance(ref, dict):
        if ref.get("kind") == "student":
            from ..model.student import StudentEncoder

            return StudentEncoder.load(ref.get("path"), n_windows=int(ref.get("n_windows", 16)),
                                       peak=float(ref.get("peak", 0.95)))
        if ref.get("kind") == "musicnn":
            from ..model.musicnn import MusicnnEncoder

            # a spec without "peak" was written before the level was normalised: the recorded level, as then;
            # without "pool", before the mean alone became the track vector: mean and spread, as then
            return MusicnnEncoder.load(ref["variant"], n_windows=int(ref.get("n_windows", 16)),
                                       peak=float(ref.get("peak", 0.0)), pool=str(ref.get("pool", "mean+std")))
        raise ModelError(f"unknown encoder kind {ref.get('kind')!r}")
    if ref == "student" or str(ref).endswith(".npz"):
        from ..model.student import StudentEncoder

        return StudentEncoder.load(None if ref == "student" else ref)
    if is_builtin(ref):
        from ..model.musicnn import MusicnnEncoder

        return MusicnnEncoder.load(BUILTIN[ref])
    if Path(ref).is_file() and read_sidecar(ref).get("kind") == "head":
        from ..model.head import HeadEncoder

        return HeadEncoder.load(ref, backbone=load_encoder(read_sidecar(ref)["backbone"]))
    return KerasEncoder.load(ref)
