"""The package's shape: no import cycle between its modules (lazy imports inside functions count too), and no
private name of one module imported by another. Read from the installed package's sources with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import soundalike

ROOT = Path(soundalike.__file__).resolve().parent


def modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        rel = p.relative_to(ROOT).with_suffix("").parts
        if rel[0] in ("tests", "benchmarks", "docs") or "web" in rel:
            continue
        name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        out[name] = p
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(module imported, name imported, line) for every relative import in ``path``, at any depth."""
    out = []
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "":
        package = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{target}.{alias.name}".lstrip(".")
                if sub in known:  # ``from . import excerpts``: the module itself
                    out.append((sub, "", node.lineno))
                else:
                    out.append((target.lstrip("."), alias.name, node.lineno))
    return out


MODULES = modules()


def test_the_package_is_read():
    assert {"cli", "errors", "catalog.store", "model.registry", "search.searcher"} <= set(MODULES)


def test_no_private_name_is_imported_from_another_module():
    found = [f"{name}:{line} imports {target}.{what}" for name, path in MODULES.items()
             for target, what, line in imports(name, path, MODULES)
             if what.startswith("_") and not what.startswith("__") and target != name]
    assert not found, found


def test_no_import_cycle():
    graph = {name: {t for t, _, _ in imports(name, path, MODULES) if t in MODULES and t != name}
             for name, path in MODULES.items()}
    # a cycle is a module reachable from itself: depth-first search with colours
    colour, cycles = {}, []

    def visit(node, trail):
        colour[node] = "grey"
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == "grey":
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in colour:
                visit(nxt, trail + [nxt])
        colour[node] = "black"

    for name in sorted(graph):
        if name not in colour:
            visit(name, [name])
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_no_function_is_longer_than_80_lines():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, long
