"""Saved playlists: extended M3U files in the store's ``playlists/`` folder, one a playlist.

A file is what any player reads (``#EXTM3U``, ``#PLAYLIST:`` with its name, ``#EXTINF`` and the absolute path
of each track), plus a ``#SOUNDALIKE-ID:`` line before each path naming the track's id in the store, which
players skip. Files are written whole under a temporary name and renamed; a playlist's id is its file name.
They live beside the store's generations, not inside them: a commit neither reads nor removes them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

from .layout import atomic_write

FOLDER = "playlists"
SUFFIX = ".m3u8"
ID_LINE = "#SOUNDALIKE-ID:"


@dataclasses.dataclass
class Saved:
    id: str  # the file's name without its suffix
    name: str
    entries: list[tuple[int | None, str]]  # (track id, path); the id is None where the file has none
    changed: float


def folder(store: str | os.PathLike) -> Path:
    return Path(store) / FOLDER


def _slug(name: str) -> str:
    text = re.sub(r"[^\w.-]+", "-", name.strip(), flags=re.UNICODE).strip("-.")[:60]
    return text or "playlist"


def read(path: Path) -> Saved:
    """One playlist file (an M3U file written by another program reads too: its paths, no ids)."""
    name, entries, track = path.stem, [], None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith("#PLAYLIST:"):
            name = line[len("#PLAYLIST:"):].strip() or name
        elif line.startswith(ID_LINE):
            try:
                track = int(line[len(ID_LINE):])
            except ValueError:
                track = None
        elif line and not line.startswith("#"):
            entries.append((track, line if os.path.isabs(line) else str(path.parent / line)))
            track = None
    return Saved(path.stem, name, entries, path.stat().st_mtime)


def listing(store: str | os.PathLike) -> list[Saved]:
    """Every saved playlist, by name (files that cannot be read are left out)."""
    out = []
    for p in sorted(folder(store).glob("*" + SUFFIX)):
        try:
            out.append(read(p))
        except OSError:
            continue
    return sorted(out, key=lambda s: (s.name.casefold(), s.id))


def get(store: str | os.PathLike, playlist_id: str) -> Saved | None:
    if not re.fullmatch(r"[\w.-]{1,80}", playlist_id or "", flags=re.UNICODE) or playlist_id.startswith("."):
        return None
    p = folder(store) / (playlist_id + SUFFIX)
    try:
        return read(p)
    except OSError:
        return None


def save(store: str | os.PathLike, name: str, tracks, *, playlist_id: str | None = None) -> Saved:
    """Write a playlist of ``tracks`` (hits: ``id``, ``path``, ``title``, ``artist``, ``duration_s``) named
    ``name``: over the playlist ``playlist_id``, else as a new file named after it."""
    d = folder(store)
    d.mkdir(exist_ok=True)
    if playlist_id is None:
        base = _slug(name)
        playlist_id, n = base, 1
        while (d / (playlist_id + SUFFIX)).exists():
            n += 1
            playlist_id = f"{base}-{n}"
    lines = ["#EXTM3U", f"#PLAYLIST:{' '.join(name.split())}"]
    for h in tracks:
        shown = " - ".join(x for x in (h.artist, h.title) if x) or os.path.basename(h.path)
        lines += [f"#EXTINF:{int(round(h.duration_s or -1))},{' '.join(shown.split())}", f"{ID_LINE}{int(h.id)}", h.path]
    text = ("\n".join(lines) + "\n").encode("utf-8")
    p = d / (playlist_id + SUFFIX)
    atomic_write(p, lambda f: f.write(text))
    return Saved(playlist_id, name, [(int(h.id), h.path) for h in tracks], time.time())


def delete(store: str | os.PathLike, playlist_id: str) -> bool:
    saved = get(store, playlist_id)
    if saved is None:
        return False
    (folder(store) / (playlist_id + SUFFIX)).unlink(missing_ok=True)
    return True
