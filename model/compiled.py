"""The default encoder in a form that loads fast: its OpenVINO model, saved once, read without TensorFlow.

Building the musicnn encoder means importing TensorFlow and Keras (about 3 s), rebuilding the network,
reading the TF1 checkpoint and converting the Keras model to OpenVINO (about 1.5 s): fine once per indexing
run, far too slow for one query about an outside file. The first process that converts the model saves the
converted graph (OpenVINO IR: an ``.xml`` and a ``.bin``) with what the query side needs beside it (front
end, output order, how windows are summarised) in a cache keyed by the encoder fingerprint and the
OpenVINO version; later processes read and compile it with OpenVINO alone. OpenVINO's own compiled-blob cache
(``CACHE_DIR``) sits in the same folder, so the second compile of the same model is an import.

The cache lives in ``$SOUNDALIKE_CACHE``, else ``$XDG_CACHE_HOME/soundalike``, else ``~/.cache/soundalike``.
It is only a cache: anything missing, unreadable or made by another version is rebuilt from the package's
weights, and a cache that cannot be written is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path


FORMAT = "soundalike-compiled-encoder"
VERSION = 1
ENV = "SOUNDALIKE_CACHE"


def cache_root() -> Path:
    """Where compiled encoders are kept."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "soundalike"


def _folder(fingerprint: str, ov_version: str) -> Path:
    safe = "".join(c for c in ov_version if c.isalnum() or c in ".-_")
    return cache_root() / "encoders" / f"{fingerprint[:32]}-openvino-{safe}"


def save(encoder, ov_model, order: list[int]) -> Path | None:
    """Keep ``ov_model`` (the converted graph of the musicnn ``encoder``, whose Keras output ``i`` is the
    graph's output ``order[i]``) in the cache, with what loading it needs. Returns the folder, or None when
    the cache cannot be written (nothing else fails)."""
    from ..model.runtime import import_openvino

    ov = import_openvino()
    folder = _folder(encoder.fingerprint, ov.__version__)
    if (folder / "meta.json").is_file():
        return folder
    meta = {"format": FORMAT, "version": VERSION, "name": encoder.name, "fingerprint": encoder.fingerprint,
            "frontend": encoder.frontend.to_dict(), "dim": int(encoder.dim),
            "window_dim": int(encoder.window_dim), "variant": getattr(encoder, "variant", None),
            "spec": encoder.spec(), "order": [int(i) for i in order],
            "min_windows_for_spread": int(encoder.MIN_WINDOWS_FOR_SPREAD)}
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".part-", dir=folder.parent))
        try:
            ov.save_model(ov_model, str(tmp / "model.xml"), compress_to_fp16=False)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            try:
                os.rename(tmp, folder)  # whole or not at all; another process may have won the race
            except OSError:
                if not (folder / "meta.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        return None
    return folder


def read_alias(key: str) -> str | None:
    """The fingerprint recorded for an encoder identified by ``key`` (see :func:`write_alias`), or None."""
    try:
        return (cache_root() / "encoders" / "aliases" / key).read_text().strip() or None
    except OSError:
        return None


def write_alias(key: str, fingerprint: str) -> None:
    """Record that the encoder identified by ``key`` (a hash of what it is built from, computed without
    TensorFlow) has ``fingerprint``: a later process finds its compiled model without building it."""
    folder = cache_root() / "encoders" / "aliases"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}"
        tmp.write_text(fingerprint)
        os.replace(tmp, folder / key)
    except OSError:
        pass


def load(fingerprint: str, route: str | None = None):
    """The cached model of ``fingerprint`` for this OpenVINO, compiled for ``route`` (``auto``: bf16 where the
    CPU has it, else float32), with what the encoder computed from its weights: ``(meta, compiled model)``, or
    None (no OpenVINO, not cached, unreadable, or TensorFlow asked for). ``MusicnnEncoder.cached`` makes the
    encoder of it."""
    from ..model.runtime import RuntimeChoiceError, requested

    try:
        route = requested(route)
    except RuntimeChoiceError:
        return None
    if route == "tensorflow":
        return None
    try:
        from ..model.runtime import import_openvino

        ov = import_openvino()
    except ImportError:
        return None
    folder = _folder(fingerprint, ov.__version__)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION or meta.get("fingerprint") != fingerprint:
            return None
        return _from_cache(folder, meta, route)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        # damaged (a folder appears whole, by rename, so this is the disk or a hand): the next process that
        # compiles the model writes it again
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _from_cache(folder: Path, meta: dict, route: str):
    """``(meta, the model compiled from the cache)``: the same window features, tag scores and track vectors as
    the model built from the package's weights on the same route, without TensorFlow."""
    from ..model.runtime import compile_openvino, precision_for

    if (meta.get("spec") or {}).get("kind", "musicnn") != "musicnn":
        return None  # the student is built from its arrays without TensorFlow (model.student): never cached
    model = compile_openvino(str(folder / "model.xml"), meta["order"], precision_for(route),
                             cache_dir=str(folder / "blobs"))
    return meta, model
