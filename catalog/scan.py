"""Walking a library folder: audio files only, hidden entries skipped, no symlink loop followed twice."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

#: Extensions treated as audio (decoded by soundfile or PyAV in ``model.audio``).
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc", ".w64", ".rf64", ".caf",
        ".m4a", ".mp4", ".aac", ".opus", ".wma", ".webm", ".mka", ".alac", ".ac3", ".ape", ".wv",
    }
)


@dataclasses.dataclass(frozen=True)
class FileEntry:
    path: str  # absolute, as reached from the root (symlinks not resolved)
    size: int
    mtime: float


@dataclasses.dataclass
class ScanProblem:
    path: str
    reason: str


def is_audio_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def scan(root: str | os.PathLike, problems: list[ScanProblem] | None = None) -> Iterator[FileEntry]:
    """Yield every audio file under ``root``, in a stable (sorted) order.

    Symlinked folders are followed once: a folder already visited (same device and inode) is skipped, which
    breaks loops. Hidden files and folders (leading dot) are skipped. What cannot be reached (a folder that
    cannot be read, a symbolic link whose target is gone, e.g. an unmounted drive) is reported in ``problems``
    and the walk goes on: the caller must not take what is under such a path as deleted.
    """
    root = os.path.abspath(os.fspath(root))
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as err:
            _note(problems, folder, err)
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            _note(problems, folder, err)
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir(follow_symlinks=True):
                    subdirs.append(e.path)
                elif is_audio_name(e.name) and e.is_file(follow_symlinks=True):
                    st = e.stat(follow_symlinks=True)
                    yield FileEntry(path=e.path, size=st.st_size, mtime=st.st_mtime)
                elif e.is_symlink() and not os.path.exists(e.path):
                    if problems is not None:
                        problems.append(ScanProblem(e.path, "symbolic link to a missing target (not mounted?)"))
            except OSError as err:
                _note(problems, e.path, err)
        stack.extend(reversed(subdirs))


HASH_SPAN = 1 << 16  # bytes read from each end of a file for its content hash


def content_hash(path: str) -> str | None:
    """A fingerprint of a file's bytes that a move or rename keeps: BLAKE2b of its size, its first and its
    last 64 KiB (two short reads, not the whole file: audio files that share both ends and the size are the
    same file). None when the file cannot be read."""
    import hashlib

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            h = hashlib.blake2b(size.to_bytes(8, "little"), digest_size=16)
            h.update(f.read(HASH_SPAN))
            if size > HASH_SPAN:
                f.seek(max(HASH_SPAN, size - HASH_SPAN))
                h.update(f.read(HASH_SPAN))
    except OSError:
        return None
    return h.hexdigest()


def under(path: str, prefixes) -> bool:
    """Whether ``path`` is one of ``prefixes`` or inside one of them."""
    return any(path == p or path.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes)


def _note(problems, path, err: OSError) -> None:
    if problems is not None:
        problems.append(ScanProblem(path, err.strerror or str(err)))
