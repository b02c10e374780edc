"""The distilled student as an encoder: musicnn's window features at a fraction of the arithmetic.

``model.distill`` trains a small CNN to reproduce the default encoder's window features (both musicnn
networks: the mean-pooled mid-end and penultimate layer of each, 1906 a window) from the same log-mel windows.
Its weights (``weights/student.npz`` in this package, with a ``.json`` sidecar saying what it was trained on)
ship in the wheel. As an encoder it is a drop-in for the teacher: the same front end, the same 1906 window
features (the teacher's scale), the same track vector (their mean), store transform, CSLS ranking and excerpt
columns, and tag scores from its MSD penultimate features through the MSD network's own last layer.

Loading needs no TensorFlow on the OpenVINO routes: the network is built as an OpenVINO graph straight from the
``.npz`` arrays (:func:`openvino_model`; built and compiled in about 0.2 s), each batch norm folded in.
The Keras model (:attr:`StudentEncoder.net`) is the same network for the ``tensorflow`` route and for training.
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


#: Keras's batch-norm epsilon, which the student was trained with
BN_EPSILON = 1e-3


def openvino_model(arrays: dict[str, np.ndarray], meta: dict):
    """The student of ``arrays`` (and its sidecar ``meta``) as an OpenVINO model: log-mel ``[b, 187, 96]`` ->
    tag scores ``[b, 50]`` and the teacher's window features ``[b, out_dim]``, computed as the Keras network of
    ``model.distill.build_student`` computes them (float32, within 1e-4), without TensorFlow or a converter."""
    from ..model.distill import band_count, pools
    from ..model.runtime import import_openvino

    ov = import_openvino()
    import openvino.opset13 as op

    w = iter([arrays[f"w{i:03d}"].astype(np.float32) for i in range(sum(k[0] == "w" and k[1:].isdigit() for k in arrays))])

    def norm():
        gamma, beta, mean, var = next(w), next(w), next(w), next(w)
        scale = gamma / np.sqrt(var + BN_EPSILON)
        return scale, beta - mean * scale

    def const(a):
        return op.constant(np.ascontiguousarray(a, dtype=np.float32))

    widths, bands = list(meta["widths"]), band_count(meta.get("bands", 0))
    inp = op.parameter([-1, FRAMES, N_MELS], np.float32, name="logmel")
    scale, shift = norm()  # the input's batch norm: one scale and shift
    x = op.unsqueeze(op.add(op.multiply(inp, const(scale)), const(shift)), op.constant(np.array([1], np.int64)))  # [b, 1, t, mel]
    for width, pool in zip(widths, pools(bands)):
        kernel = next(w)  # [3, 3, in, out]
        scale, shift = norm()
        kernel = np.transpose(kernel * scale, (3, 2, 0, 1))  # [out, in, 3, 3], the norm's scale folded in
        x = op.convolution(x, const(kernel), [1, 1], [1, 1], [1, 1], [1, 1])
        x = op.relu(op.add(x, const(shift.reshape(1, width, 1, 1))))
        if pool:
            x = op.max_pool(x, list(pool), [1, 1], [0, 0], [0, 0], list(pool), auto_pad="valid").output(0)
    if bands:  # [b, c, t, f] -> [b, t, f * c], as Keras flattens (frequency, channel)
        x = op.reshape(op.transpose(x, op.constant(np.array([0, 2, 3, 1], np.int64))),
                       op.constant(np.array([0, 0, -1], np.int64)), special_zero=True)
    else:  # the maximum over frequency: [b, t, c]
        x = op.transpose(op.reduce_max(x, op.constant(np.array([3], np.int64))), op.constant(np.array([0, 2, 1], np.int64)))
    time = op.constant(np.array([1], np.int64))
    x = op.concat([op.reduce_mean(x, time), op.reduce_max(x, time)], axis=1)
    kernel = next(w)
    scale, shift = norm()
    x = op.relu(op.add(op.matmul(x, const(kernel * scale), False, False), const(shift)))
    kernel, bias = next(w), next(w)
    mean, std = arrays["target_mean"].astype(np.float32), arrays["target_std"].astype(np.float32)
    # the teacher's scale folded into the last layer: (x @ k + b) * std + mean
    feats = op.add(op.matmul(x, const(kernel * std), False, False), const(bias * std + mean), name="features")
    pen = op.slice(feats, op.constant(np.array([MSD_PENULTIMATE.start], np.int64)),
                   op.constant(np.array([MSD_PENULTIMATE.stop], np.int64)), op.constant(np.array([1], np.int64)),
                   op.constant(np.array([1], np.int64)))
    tags = op.sigmoid(op.add(op.matmul(pen, const(arrays["tag_kernel"]), False, False), const(arrays["tag_bias"])),
                      name="tags")
    return ov.Model([tags.output(0), feats.output(0)], [inp], NAME)


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
        """The student (its model is compiled on first use: see :meth:`_model`)."""
        return cls(path, n_windows=n_windows, peak=peak, runtime_route=runtime_route)

    def _model(self):
        """The compiled model: on an OpenVINO route the graph of :func:`openvino_model` (no TensorFlow, nothing
        cached: building and compiling it takes about 0.2 s), else the Keras model in TensorFlow."""
        if self._compiled is None:
            from ..model.runtime import compile_model

            self._compiled = compile_model(lambda: self.net, (FRAMES, N_MELS), self._route, warn=self._warn,
                                           graph=lambda: (openvino_model(self.arrays, self.meta), [0, 1]))
        return self._compiled

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
                             bands=self.meta.get("bands", 0))
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
