"""A store's layout: its file names, its manifest (read and checked key by key), and how files are written.

The store (``catalog.store``) is one directory whose ``manifest.json`` names every file of the current
generation; see that module for the whole picture. This module holds what every part of the store shares: the
names and limits, the errors, the atomic write (temporary name, fsync, rename, fsync of the folder), and the
manifest's reading and validation, which a reader and ``soundalike verify`` both rely on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from ..errors import Unavailable
from . import neighbours

FORMAT = "soundalike-store"
VERSION = 3  # 3: the within-track whitening ("whiten", the "within" sums); 2: the compact index (transform inside
# the FAISS file); 1 is read, and rewritten by its next commit
MANIFEST = "manifest.json"
PREVIOUS = "manifest.prev.json"  # the generation before, whose files are kept: what repair falls back to
REMEDY = "; 'soundalike verify' checks the store, 'soundalike repair' rebuilds what it can"
SUFFIX = ".soundalike"
#: The library transform is refitted when the library has grown to this many times the tracks it was fitted on
#: (or with ``soundalike reindex --refit``); in between, scores do not move unless the library near a track did.
REFIT_GROWTH = 1.5
PART = ".part.parquet"  # a track table of changed rows over the base one (a checkpoint's, or a small commit's)
DELTA_FRACTION = 0.02  # a commit writes a delta (index and track table) until it changes this share of the library
SHARD_ROWS = 50_000  # vectors a shard holds at most when shards are compacted
SHARD_ROWS_WINDOWS = 2_048  # ... when they carry window features too (24 KB a track: ~50 MB a shard)
ROW_GROUP = 8_192  # rows of a track table's row group: a query reads the text of its hits' groups only
#: what a manifest's ``index`` record holds: the index file's bookkeeping (and the policy it was built under,
#: which a commit compares with the one asked for). What its build measured (recall
#: against exact search, the nprobe chosen, latency, timings) is in the infos file the record names
#: (``infos``, a JSON file beside the index, as autofaiss writes ``index_infos.json``); a store written before
#: kept them in the record, and its next commit moves them out.
INDEX_RECORD = ("file", "kind", "type", "width", "policy", "metric", "count", "generation", "shards_indexed",
                "built", "updates", "bytes", "delta", "infos")


class StoreError(Unavailable):
    """A store that cannot be opened or written; the message names the path and the remedy."""


class EncoderMismatch(StoreError):
    pass


class StoreLocked(StoreError):
    pass


# ------------------------------------------------------------------------------------------------ helpers


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write) -> None:
    """``write(file_object)`` to a temporary name beside ``path``, fsync, rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:160] + "..." if len(text) > 160 else text


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def own_leftover(p: Path) -> bool:
    """A file a store creation that was killed before its first commit may have left behind."""
    return p.name in (".lock", "encoder", "vectors", PREVIOUS) or p.name.startswith(
        ("tracks.g", "transform.g", "within.g", "."))


def is_store(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the store at ``path``, checked key by key: anything malformed is a one-line StoreError."""
    path = Path(path)
    mf = path / MANIFEST
    try:
        manifest = json.loads(mf.read_text())
    except FileNotFoundError:
        if (path / PREVIOUS).is_file():
            raise StoreError(f"{mf}: missing{REMEDY}") from None
        raise StoreError(f"{path}: not a soundalike store (no {MANIFEST}); create one with 'soundalike index'") from None
    except NotADirectoryError:
        raise StoreError(f"{path}: not a soundalike store (not a folder)") from None
    except (OSError, ValueError, RecursionError) as err:
        raise StoreError(f"{mf}: unreadable manifest ({short(err)}){REMEDY}") from None
    return check_manifest(manifest, mf)


def is_count(v, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_name(v) -> bool:
    """A file name inside the store: relative, no '..', no NUL."""
    return (isinstance(v, str) and 0 < len(v) < 512 and not v.startswith(("/", "\\")) and "\x00" not in v
            and ".." not in v.replace("\\", "/").split("/"))


def check_manifest(m, mf: Path) -> dict:
    """``m`` if it is a well-formed manifest of a store this version reads, else a one-line StoreError."""
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise StoreError(f"{mf}: not a soundalike store manifest")
    if is_count(m.get("version"), 1) and m["version"] > VERSION:
        raise StoreError(f"{mf}: written by a newer soundalike (store format {m['version']}, this one reads {VERSION})")

    def bad(what: str) -> StoreError:
        return StoreError(f"{mf}: malformed manifest ({what}){REMEDY}")

    for key in ("version", "generation", "next_id", "next_shard"):
        if not is_count(m.get(key), 1 if key == "version" else 0):
            raise bad(f"{key!r} must be a non-negative integer, not {_short_repr(m.get(key))}")
    enc = m.get("encoder")
    if not isinstance(enc, dict):
        raise bad("'encoder' must be an object")
    if not (isinstance(enc.get("name"), str) and isinstance(enc.get("fingerprint"), str) and is_count(enc.get("dim"), 1)):
        raise bad("'encoder' needs a name, a fingerprint and a positive dim")
    if enc.get("model") is not None and not _is_name(enc["model"]):
        raise bad("'encoder.model' must be a file inside the store")
    if enc.get("spec") is not None and not isinstance(enc["spec"], dict):
        raise bad("'encoder.spec' must be an object")
    if enc.get("transform") not in (None, "none", "standardize", "whiten"):
        raise bad(f"unknown library transform {_short_repr(enc.get('transform'))}")
    if not isinstance(enc.get("runtimes", []), list) or not isinstance(enc.get("labels") or [], list):
        raise bad("'encoder.runtimes' and 'encoder.labels' must be lists")
    files = m.get("files")
    if not isinstance(files, dict) or not all(
        _is_name(k) and isinstance(v, dict) and is_count(v.get("size")) and isinstance(v.get("sha256"), str)
        for k, v in files.items()
    ):
        raise bad("'files' must map file names to their size and sha256")
    for key in ("tracks", "shards"):
        if not isinstance(m.get(key), list) or not all(_is_name(n) for n in m[key]):
            raise bad(f"{key!r} must be a list of file names")
    for key in ("index", "transform", "index_template", "within"):
        part = m.get(key)
        if part is None:
            continue
        if not isinstance(part, dict) or not _is_name(part.get("file")):
            raise bad(f"{key!r} must be null or an object naming its file")
        counters = {"index": ("generation", "shards_indexed", "built", "updates"), "transform": ("fitted_on",),
                    "index_template": ("generation",), "within": ("generation", "tracks")}[key]
        for c in counters:
            if (c in part or c == "generation") and not is_count(part.get(c)):
                raise bad(f"'{key}.{c}' must be a non-negative integer")
    maps = m.get("path_maps")
    if maps is not None and not (isinstance(maps, dict) and all(_is_name(k) and _is_name(v) for k, v in maps.items())):
        raise bad("'path_maps' must be an object of track tables and the files of their path maps")
    if m.get("tracks_removed") is not None and not _is_name(m["tracks_removed"]):
        raise bad("'tracks_removed' must be null or a file inside the store")
    if (m.get("index") or {}).get("infos") is not None and not _is_name(m["index"]["infos"]):
        raise bad("'index.infos' must be null or a file inside the store")
    delta = (m.get("index") or {}).get("delta")
    if delta is not None and not (isinstance(delta, dict) and _is_name(delta.get("file")) and _is_name(delta.get("hidden"))):
        raise bad("'index.delta' must be null or an object naming its file and its hidden list")
    win = m.get("windows")
    if win is not None and not (isinstance(win, dict) and _is_name(win.get("file")) and _is_name(win.get("template"))
                                and (win.get("lists") is None or _is_name(win["lists"]))
                                and is_count(win.get("dim"), 1) and is_count(win.get("shards_indexed"))
                                and (win.get("delta") is None or (isinstance(win["delta"], dict) and _is_name(win["delta"].get("file"))))):
        raise bad("'windows' must be null or an object naming its index, template, width and shards indexed")
    unlisted = [n for n in listed(m) if n not in files]
    if unlisted:
        raise bad(f"{_short_repr(unlisted[0])} has no size and checksum under 'files'")
    if not isinstance(m.get("counts", {}), dict):
        raise bad("'counts' must be an object")
    return m


def listed(m: dict) -> list[str]:
    """Every file a (checked) manifest's generation references, besides the encoder's."""
    out = [*m["tracks"], *m["shards"],
           *(m[k]["file"] for k in ("index", "transform", "index_template", "within") if m.get(k))]
    if m.get("tracks_removed"):
        out.append(m["tracks_removed"])
    maps = m.get("path_maps") or {}
    out += [maps[n] for n in m["tracks"] if n in maps]
    delta = (m.get("index") or {}).get("delta")
    if delta:
        out += [delta["file"], delta["hidden"]]
    if (m.get("index") or {}).get("infos"):
        out.append(m["index"]["infos"])
    if neighbours.record_ok(m.get("neighbours")):
        out.append(m["neighbours"]["file"])
    w = m.get("windows") or {}
    out += [w[k] for k in ("file", "template", "lists") if w.get(k)]
    if w.get("delta"):
        out.append(w["delta"]["file"])
    return out


def infos_name(index_file: str) -> str:
    """The name of the infos file beside an index file (``tracks.g000007.faiss`` -> ``tracks.g000007.infos.json``)."""
    return index_file.rsplit(".", 1)[0] + ".infos.json"


def _short_repr(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
