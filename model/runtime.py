"""Where a Keras model's inference runs: OpenVINO (bf16 or float32) or TensorFlow.

The pretrained encoder spends nearly all of an indexing run in its convolutions, so its inference goes
through OpenVINO when that is installed: the Keras model is converted in memory (about 1.5 s, once per
process) and compiled for the CPU. Routes, measured on 2 cores with batches of 128 musicnn windows (the
original TF1 graph does 41-47 windows/s; ``python benchmarks/encoder_speed.py`` prints the current figures):

- ``openvino-bf16``: bfloat16 arithmetic on CPUs with native bf16 instructions (AVX-512 BF16 or AMX), about
  2x the original graph. Outputs differ from float32 by about 1e-2 relative; the retrieval quality table
  moved by less than 0.01 (docs/speed.md).
- ``openvino-f32``: float32, exact to the original graph within 1e-4, about 1.3x.
- ``tensorflow``: the Keras model in a ``tf.function``, exact, about 1.1x.

``auto`` (the default) takes bf16 where the CPU has it, else float32 OpenVINO, else TensorFlow. The
environment variable ``SOUNDALIKE_INFERENCE`` overrides it with one of the route names.

Offline by design: OpenVINO's model converter reports usage over the network unless told otherwise, so its
telemetry module is blocked from being imported in this process before the converter loads (the converter
then uses its own no-op stub); nothing is sent and nothing is written to the home folder.
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from typing import Callable

import numpy as np

from ..errors import SoundalikeError

ROUTES = ("auto", "openvino-bf16", "openvino-f32", "tensorflow")
ENV = "SOUNDALIKE_INFERENCE"


class RuntimeChoiceError(SoundalikeError, ValueError):
    """An unknown or unavailable route was asked for."""


def requested(route: str | None = None) -> str:
    """The route asked for: ``route``, else ``$SOUNDALIKE_INFERENCE``, else ``auto``."""
    route = (route or os.environ.get(ENV) or "auto").strip().lower()
    if route not in ROUTES:
        raise RuntimeChoiceError(f"{ENV}={route!r} is not a known inference route (one of {', '.join(ROUTES)})")
    return route


def import_openvino():
    # None in sys.modules makes `import openvino_telemetry` raise ImportError: the converter falls back to its
    # bundled stub and never contacts anyone (see the module docstring).
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None
    import openvino as ov

    return ov


def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports native bf16 support on this machine."""
    try:
        ov = import_openvino()
        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        return False


class Compiled:
    """A model ready to run: ``run(x) -> list of outputs`` in the Keras model's output order, plus ``route``
    (the route name) and ``description`` (route and library version, recorded by stores)."""

    def __init__(self, run: Callable[[np.ndarray], list[np.ndarray]], route: str, description: str):
        self.run, self.route, self.description = run, route, description
        self.converted, self.order = None, None  # the OpenVINO model and its output order, when converted here

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self.run(x)


def _keras(net):
    """The Keras model ``net``, or the one the function ``net`` makes (TensorFlow is imported only then)."""
    return net() if isinstance(net, (types.FunctionType, types.MethodType)) else net


def _tensorflow(net, input_shape: tuple[int, ...]) -> Compiled:
    import tensorflow as tf

    net = _keras(net)
    # one graph for every batch size: ~15 % faster than eager calls, traced once
    fn = tf.function(lambda x: net(x, training=False), input_signature=[tf.TensorSpec([None, *input_shape], tf.float32)])

    def run(x):
        out = fn(x)
        return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]

    return Compiled(run, "tensorflow", f"tensorflow {tf.__version__} f32")


def convert(net, input_shape: tuple[int, ...]):
    """The Keras model ``net`` as an OpenVINO model, and where each Keras output is among its outputs."""
    ov = import_openvino()
    from ..model._quiet import quiet_stderr

    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras notes that the converter passes a tuple for its one input
        converted = ov.convert_model(net, input=[[-1, *input_shape]])
    # the converter does not keep the Keras output order: map by the outputs' tensor names
    position = {}
    for i, out in enumerate(converted.outputs):
        for name in out.get_names():
            position[name] = i
    return converted, [position[t.name] for t in net.outputs]


def compile_openvino(model, order: list[int], precision: str, cache_dir: str | None = None) -> Compiled:
    """Compile an OpenVINO model (or the path of a saved one) for the CPU at ``precision`` (bf16 or f32);
    outputs come back in ``order``. ``cache_dir``: where OpenVINO keeps compiled blobs for the next time."""
    ov = import_openvino()
    core = ov.Core()
    if cache_dir is not None:
        core.set_property({"CACHE_DIR": str(cache_dir)})
    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
              "CPU_DENORMALS_OPTIMIZATION": True}
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    outputs = [compiled.outputs[i] for i in order]

    def run(x):
        result = request.infer(np.ascontiguousarray(x, dtype=np.float32))
        return [np.array(result[o], dtype=np.float32) for o in outputs]  # copies: the request reuses its buffers

    return Compiled(run, f"openvino-{precision}", f"openvino {ov.__version__.split('-')[0]} {precision}")


def _openvino(net, input_shape: tuple[int, ...], precision: str, graph=None) -> Compiled:
    if graph is not None:  # built directly: nothing converted, nothing to cache
        return compile_openvino(*graph(), precision)
    converted, order = convert(_keras(net), input_shape)
    out = compile_openvino(converted, order, precision)
    out.converted, out.order = converted, order  # what a cache of the compiled encoder saves
    return out


def precision_for(route: str) -> str:
    """The OpenVINO precision of an OpenVINO route, or of ``auto`` on this CPU."""
    if route in ("openvino-bf16", "openvino-f32"):
        return route.split("-")[1]
    return "bf16" if cpu_has_bf16() else "f32"


def compile_model(net, input_shape: tuple[int, ...], route: str | None = None, *, warn=None, graph=None) -> Compiled:
    """Compile the Keras model ``net`` (inputs ``[batch, *input_shape]``; or a function that makes it, called only
    when TensorFlow runs it or the model is converted) for the requested route. ``graph``: a function that makes
    the OpenVINO model and its output order directly, used on the OpenVINO routes instead of converting ``net``.

    ``auto`` falls back quietly when OpenVINO is not installed and with a one-line warning (through ``warn``,
    else on stderr) when it is installed but fails; an explicitly requested route that cannot run raises
    RuntimeChoiceError.
    """
    route = requested(route)
    if route == "tensorflow":
        return _tensorflow(net, input_shape)
    if route in ("openvino-bf16", "openvino-f32"):
        precision = route.split("-")[1]
        if precision == "bf16" and not cpu_has_bf16():
            raise RuntimeChoiceError(f"{ENV}={route}: this CPU has no native bf16 instructions (use openvino-f32)")
        try:
            return _openvino(net, input_shape, precision, graph)
        except ImportError:
            raise RuntimeChoiceError(f"{ENV}={route}: OpenVINO is not installed (pip install openvino)") from None
    try:
        return _openvino(net, input_shape, precision_for("auto"), graph)
    except ImportError:
        return _tensorflow(net, input_shape)
    except Exception as err:  # a converter or plugin failure must not stop indexing: TensorFlow is exact
        (warn or _stderr)(f"OpenVINO unavailable ({' '.join(str(err).split())[:160]}); running the model in TensorFlow")
        return _tensorflow(net, input_shape)


def _stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
