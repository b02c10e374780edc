"""The default encoder in 8-bit integers: post-training quantisation with OpenVINO's NNCF.

The float model is converted to OpenVINO (as for the bf16 and f32 routes) and NNCF inserts 8-bit quantisers on
the weights (per output channel, from the weights themselves) and on the activations (per tensor, from the
ranges seen on calibration windows). The calibration windows must be real music: a few windows from each of
many tracks, decoded and turned into log-mel exactly as indexing does. Nothing is downloaded.

NNCF is an optional dependency (``pip install nncf``); it is needed only to make the quantised model.
"""

from __future__ import annotations

import sys

import numpy as np

#: windows taken from each calibration track, and the most tracks used
WINDOWS_PER_TRACK = 4
MAX_TRACKS = 128


def calibration_windows(encoder, paths: list[str], *, windows_per_track: int = WINDOWS_PER_TRACK,
                        max_tracks: int = MAX_TRACKS, seed: int = 0) -> np.ndarray:
    """Log-mel windows ``[n, frames, mels]`` (the network's layout) from up to ``max_tracks`` of ``paths``."""
    from soundalike.model.pipeline import extract_many

    rng = np.random.default_rng(seed)
    chosen = list(paths) if len(paths) <= max_tracks else [paths[i] for i in rng.choice(len(paths), max_tracks, replace=False)]
    out = []
    for ex in extract_many(chosen, encoder.frontend):
        if ex.error or ex.features is None:
            continue
        f = ex.features
        take = np.unique(np.linspace(0, len(f) - 1, min(windows_per_track, len(f))).round().astype(int))
        out.append(np.transpose(f[take], (0, 2, 1)))
    if not out:
        raise ValueError("no calibration window could be decoded")
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


def quantize_model(net, input_shape: tuple[int, ...], windows: np.ndarray, *, batch: int = 16):
    """The Keras model ``net`` as an 8-bit OpenVINO model calibrated on ``windows``, and its output order."""
    try:
        import nncf
    except ImportError:
        raise ImportError("8-bit quantisation needs NNCF: pip install nncf") from None
    from soundalike.model._quiet import quiet_stderr
    from soundalike.model.runtime import convert

    converted, order = convert(net, input_shape)
    batches = [windows[i : i + batch] for i in range(0, len(windows), batch)]
    with quiet_stderr():
        quantized = nncf.quantize(converted, nncf.Dataset(batches), subset_size=len(batches),
                                  preset=nncf.QuantizationPreset.PERFORMANCE)
    return quantized, order


def quantize_encoder(encoder, paths: list[str], *, log=None):
    """A compiled 8-bit model of a musicnn ``encoder`` (``model.runtime.Compiled``), calibrated on ``paths``."""
    from soundalike.model.musicnn import FRAMES, N_MELS
    from soundalike.model.runtime import compile_openvino, precision_for

    windows = calibration_windows(encoder, paths)
    (log or (lambda m: print(m, file=sys.stderr)))(f"calibrating the 8-bit encoder on {len(windows)} windows")
    quantized, order = quantize_model(encoder.net, (FRAMES, N_MELS), windows)
    compiled = compile_openvino(quantized, order, precision_for("auto"))
    compiled.route = "openvino-int8"
    compiled.description = compiled.description.rsplit(" ", 1)[0] + " int8"
    return compiled
