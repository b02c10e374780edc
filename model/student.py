"""The distilled student as an encoder: musicnn's window features at a fraction of the arithmetic.

``model.distill`` trains a small CNN to reproduce the default encoder's window features (both musicnn
networks: the mean-pooled mid-end and penultimate layer of each, 1906 a window) from the same log-mel windows.
Its weights (``weights/student.npz`` in this package, with a ``.json`` sidecar saying what it was trained on)
ship in the wheel. As an encoder it is a drop-in for the teacher: the same front end, the same 1906 window
features (the teacher's scale), the same track vector (their mean), store transform, CSLS ranking and excerpt
columns, and tag scores from its MSD penultimate features through the MSD network's own last layer.

Loading needs no TensorFlow once the model has been compiled on this machine: the fingerprint is a hash of the
``.npz`` arrays, and ``model.compiled`` keeps the converted OpenVINO model under it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..model.encoder import ModelError, fingerprint
from ..model.musicnn import (DEFAULT_VARIANT, FRAMES, LEVEL_PEAK, MSD_LABELS, N_MELS, MusicnnEncoder, frontend)

NAME = "student"
#: the student shipped in the package
SHIPPED = Path(__file__).with_name("weights") / "student.npz"
#: where the MSD network's penultimate features sit among the teacher's window features
MSD_PENULTIMATE = slice(1506, 1706)


def read(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays of a student ``.npz`` and its sidecar; a ModelError names the file and the reason."""
    path = Path(path)
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(path.with_suffix(".json").read_text())
    except FileNotFoundError as err:
        raise ModelError(f"{err.filename}: student file missing (reinstall soundalike)") from None
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: unreadable student ({' '.join(str(err).split())[:160]})") from None
    if meta.get("format") != "soundalike-student":
        raise ModelError(f"{path}: not a soundalike student")
    return arrays, meta


class StudentEncoder(MusicnnEncoder):
    """The distilled student (see the module docstring): the teacher's interface, the student's model."""

    def __init__(self, path: str | Path | None = None, *, n_windows: int = 16, peak: float = LEVEL_PEAK,
                 runtime_route: str | None = None, warn=None):
        from ..model.runtime import requested

        requested(runtime_route)
        self.path = Path(path) if path else SHIPPED
        self.arrays, self.meta = read(self.path)
        self.variant = DEFAULT_VARIANT  # the teacher: its tag names and genre tags
        self.name = NAME
        self.pool = "mean"
        self.labels = list(MSD_LABELS)
        self.frontend = frontend(n_windows, peak)
        self.window_dim = self.dim = int(self.meta["out_dim"])
        self.fingerprint = fingerprint(f"{NAME}/mean", self.frontend, [self.arrays[k] for k in sorted(self.arrays)])
        self._route, self._warn, self._net, self._compiled = runtime_route, warn, None, None

    @classmethod
    def load(cls, path: str | Path | None = None, *, n_windows: int = 16, peak: float = LEVEL_PEAK,
             runtime_route: str | None = None) -> "StudentEncoder":
        """The student, its model compiled from this machine's cache when there (no TensorFlow), else built."""
        enc = cls(path, n_windows=n_windows, peak=peak, runtime_route=runtime_route)
        from ..model import compiled

        compiled.load(enc.fingerprint, runtime_route, into=enc)  # (the weights are read and hashed once)
        return enc

    @property
    def net(self):
        """The Keras model (TensorFlow is imported here): log-mel ``(187, 96)`` -> tag scores, window features."""
        if self._net is None:
            self._net = self._build()
        return self._net

    @net.setter
    def net(self, value):
        self._net = value

    def _build(self):
        from ..model._quiet import import_keras
        from ..model.distill import build_student

        keras = import_keras()
        L, ops = keras.layers, keras.ops
        core = build_student(self.window_dim, widths=tuple(self.meta["widths"]), embedding=int(self.meta["embedding"]),
                             bands=bool(self.meta.get("bands", False)))
        weights = [self.arrays[f"w{i:03d}"].astype(np.float32) for i in range(len(core.weights))]
        core.set_weights(weights)
        mean, std = self.arrays["target_mean"], self.arrays["target_std"]
        inp = keras.Input((FRAMES, N_MELS), name="logmel")
        feats = L.Lambda(lambda z: z * ops.convert_to_tensor(std) + ops.convert_to_tensor(mean), name="teacher_scale")(core(inp))
        pen = L.Lambda(lambda f: f[:, MSD_PENULTIMATE], name="msd_penultimate")(feats)
        tags = L.Dense(len(self.labels), activation="sigmoid", name="tags")
        taggram = tags(pen)
        tags.set_weights([self.arrays["tag_kernel"], self.arrays["tag_bias"]])
        return keras.Model(inp, [taggram, feats], name=NAME)

    def _outputs(self, out) -> tuple[np.ndarray, np.ndarray]:
        taggram, feats = out
        return np.asarray(feats, np.float32), np.asarray(taggram, np.float32)

    #: windows a model call takes: the student's activations are small, and OpenVINO runs it fastest in batches
    #: of 16-32 on 2 cores
    MODEL_BATCH = 32

    def spec(self) -> dict:
        spec = {"kind": NAME, "n_windows": self.frontend.n_windows, "peak": self.frontend.peak, "pool": "mean"}
        if self.path != SHIPPED:
            spec["path"] = str(self.path)
        return spec

    @classmethod
    def from_compiled(cls, meta: dict, compiled) -> "StudentEncoder":
        spec = meta.get("spec") or {}
        enc = cls(spec.get("path"), n_windows=int(spec.get("n_windows", 16)), peak=float(spec.get("peak", LEVEL_PEAK)))
        if enc.fingerprint != meta["fingerprint"]:
            raise ValueError("the cached student is not the installed one")
        enc._route, enc._compiled = compiled.route, compiled
        return enc
