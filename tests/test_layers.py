"""The code shows the pipeline: a folder per stage, each importing only the stages before
it (``appbuilder.LAYERS``), and no two modules importing each other (also lazily)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import appbuilder

PACKAGE = Path(appbuilder.__file__).resolve().parent


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The appbuilder modules *path* imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "appbuilder":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "appbuilder")
    return {m for m in found if m in known}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_is_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(appbuilder.LAYERS)
    assert not [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]  # nothing loose at the top


def test_no_stage_imports_a_later_one():
    known = modules()
    rank = {name: i for i, name in enumerate(appbuilder.LAYERS)}
    upward = []
    for module, path in sorted(known.items()):
        here = layer(module)
        for target in imports(path, known):
            there = layer(target)
            if here and there and rank[there] > rank[here]:
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_no_import_circles():
    known = modules()
    graph = nx.DiGraph()
    for module, path in known.items():
        graph.add_edges_from((module, t) for t in imports(path, known) if t != module)
    assert list(nx.simple_cycles(graph)) == []


def test_every_module_imports():
    import importlib

    for module in sorted(modules()):
        importlib.import_module(module)
