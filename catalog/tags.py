"""Reading tags with mutagen: title, artist, album, genre, duration. Missing tags fall back to the file name."""

from __future__ import annotations

import os
import re

_ID3_NUMERIC = re.compile(r"^\((\d+)\)\s*(.*)$")


def normalise_genre(value: str | None) -> str | None:
    """Canonical genre text: lower case, single spaces, ``_``/``-`` between words kept as ``-``.

    ``"Hip_Hop "`` -> ``"hip-hop"``, ``"  Rock "`` -> ``"rock"``, ``""`` -> ``None``.
    """
    if value is None:
        return None
    text = str(value).strip()
    m = _ID3_NUMERIC.match(text)
    if m:  # ID3v1 style "(17)Rock" or "(17)"
        text = m.group(2) or _id3_genre_name(int(m.group(1))) or ""
    text = re.sub(r"\s+", " ", text.replace("_", "-")).strip().lower()
    text = re.sub(r"\s*-\s*", "-", text)
    return text or None


def _id3_genre_name(number: int) -> str | None:
    try:
        from mutagen._constants import GENRES
    except ImportError:  # pragma: no cover - mutagen internals moved
        return None
    return GENRES[number] if 0 <= number < len(GENRES) else None


def _first(tags, *keys) -> str | None:
    """The first non-empty value under the first key that has one (of several values, the first)."""
    if tags is None:
        return None
    for key in keys:
        try:
            value = tags.get(key)
        except (KeyError, ValueError):
            continue
        if value:
            if isinstance(value, (list, tuple)):
                value = value[0]
            # APEv2 (WavPack, Monkey's Audio) keeps several values in one string, separated by NUL
            text = next((t.strip() for t in str(value).split("\x00") if t.strip()), "")
            if text:
                return text
    return None


_ID3_FRAMES = {"title": "TIT2", "artist": "TPE1", "albumartist": "TPE2", "album": "TALB", "genre": "TCON"}
#: ASF (WMA) attribute names; mutagen has no easy interface for them
_ASF_KEYS = {"title": "Title", "artist": "Author", "albumartist": "WM/AlbumArtist", "album": "WM/AlbumTitle",
             "genre": "WM/Genre"}


def _easy(tags):
    """Tags that mutagen's easy interface does not cover, as an easy-style mapping: plain ID3 (WAV, AIFF) and
    ASF (WMA). MP3, MP4/M4A, FLAC, Ogg (Vorbis, Opus, FLAC) and APEv2 already answer to the easy keys."""
    try:
        from mutagen.asf import ASFTags
        from mutagen.id3 import ID3
    except ImportError:  # pragma: no cover
        return tags
    if isinstance(tags, ASFTags):
        return {key: [str(v) for v in tags[name]] for key, name in _ASF_KEYS.items() if name in tags}
    if not isinstance(tags, ID3):
        return tags
    out = {}
    for key, frame_id in _ID3_FRAMES.items():
        frame = tags.get(frame_id)
        if frame is not None:
            out[key] = frame.genres if frame_id == "TCON" else [str(t) for t in frame.text]
    return out


def read_tags(path: str | os.PathLike) -> dict:
    """``{title, artist, album, genre, duration_s}`` of one file; missing values are ``None`` (title falls
    back to the file name). Never raises: unreadable tags just leave the fields empty."""
    path = os.fspath(path)
    out = {"title": None, "artist": None, "album": None, "genre": None, "duration_s": None}
    try:
        import mutagen

        f = mutagen.File(path, easy=True)
    except Exception:
        f = None
    if f is not None:
        tags = _easy(f.tags)
        out["title"] = _first(tags, "title")
        out["artist"] = _first(tags, "artist", "albumartist")
        out["album"] = _first(tags, "album")
        out["genre"] = normalise_genre(_first(tags, "genre"))
        length = getattr(getattr(f, "info", None), "length", None)
        if length and length > 0:
            out["duration_s"] = float(length)
    if not out["title"]:
        out["title"] = os.path.splitext(os.path.basename(path))[0]
    return out


#: image files beside the music that players take for the album's cover, in the order they are preferred
COVER_FILES = ("cover", "folder", "front", "album", "albumart")
_IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
                ".gif": "image/gif"}


def _sniff(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"GIF8":
        return "image/gif"
    return "application/octet-stream"


def embedded_picture(path: str | os.PathLike) -> bytes | None:
    """The front cover embedded in an audio file (FLAC and Vorbis picture blocks, ID3 APIC frames, MP4
    ``covr``), else its first picture; None when it has none or cannot be read."""
    try:
        import mutagen

        f = mutagen.File(os.fspath(path))
    except Exception:
        return None
    if f is None:
        return None
    pictures = list(getattr(f, "pictures", None) or [])  # FLAC
    tags = getattr(f, "tags", None)
    try:
        if tags is not None and hasattr(tags, "getall"):  # ID3
            pictures += tags.getall("APIC")
        elif tags is not None:
            for raw in tags.get("metadata_block_picture", []) or []:  # Ogg Vorbis and Opus
                import base64

                from mutagen.flac import Picture

                pictures.append(Picture(base64.b64decode(raw)))
            covers = tags.get("covr") or []  # MP4
            if covers:
                return bytes(covers[0])
    except Exception:
        return None
    if not pictures:
        return None
    front = [p for p in pictures if getattr(p, "type", None) == 3]
    return bytes((front or pictures)[0].data)


def cover_art(path: str | os.PathLike) -> tuple[bytes, str] | None:
    """A track's cover as (bytes, MIME type): embedded in the file, else an image beside it (``cover.jpg``,
    ``folder.png``, ...); None when there is neither."""
    data = embedded_picture(path)
    if data:
        return data, _sniff(data)
    folder = os.path.dirname(os.fspath(path))
    try:
        names = {n.lower(): n for n in os.listdir(folder)}
    except OSError:
        return None
    for stem in COVER_FILES:
        for ext, mime in _IMAGE_TYPES.items():
            name = names.get(stem + ext)
            if name:
                try:
                    with open(os.path.join(folder, name), "rb") as fh:
                        return fh.read(), mime
                except OSError:
                    continue
    return None
