"""soundalike: music search by sound.

Installed, the repository's top-level folders are this package's subpackages: ``soundalike.model`` (audio to
numbers), ``soundalike.catalog`` (scanning, tags, the store), ``soundalike.indexer`` (the batch pipeline),
``soundalike.search`` (query time) and ``soundalike.cli`` (the command line).
"""



def __getattr__(name: str):
    # the version is looked up on first use: importlib.metadata costs a cold query tens of milliseconds
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("soundalike")
        except PackageNotFoundError:  # pragma: no cover - running from an uninstalled copy
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
