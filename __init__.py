"""soundalike: music search by sound.

Installed, the repository's top-level folders are this package's subpackages: ``soundalike.model`` (audio to
numbers), ``soundalike.catalog`` (scanning, tags, the store), ``soundalike.indexer`` (the batch pipeline),
``soundalike.search`` (query time) and ``soundalike.cli`` (the command line).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("soundalike")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled copy
    __version__ = "0+unknown"
