"""Build order across recipes, from their ``buildRequires``, as a networkx graph.

Nodes are recipe names; an edge ``libhello -> hello`` means hello's build needs
libhello first. A ``buildRequires`` entry naming no recipe is an external requirement
(it must already be in the repository). A cycle is an error that names the cycle.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from appbuilder.core.errors import DependencyCycle
from appbuilder.recipe.loader import RecipeFile
from appbuilder.repository.versions import TroveSpec


def build_graph(recipes: list[RecipeFile]) -> nx.DiGraph:
    graph = nx.DiGraph()
    by_name = {r.name: r for r in recipes}
    for r in recipes:
        graph.add_node(r.name, recipe=str(r.path))
    for r in recipes:
        for spec in r.build_requires:
            package = TroveSpec.parse(spec).name.split(":", 1)[0]
            if package in by_name and package != r.name:
                graph.add_edge(package, r.name, requirement=spec)
            elif package == r.name:
                raise DependencyCycle(f"build requirement cycle: {r.name} -> {r.name} (it requires itself)")
    return graph


def check_acyclic(graph: nx.DiGraph) -> None:
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    # edges point from a requirement to what needs it; name the cycle the way users read it
    needs = [b for _, b in reversed(cycle)]
    start = needs.index(min(needs))
    needs = needs[start:] + needs[:start]
    raise DependencyCycle(
        "build requirement cycle: " + " -> ".join([*needs, needs[0]]) + " (each needs the next to be cooked first)"
    )


def build_order(graph: nx.DiGraph) -> list[str]:
    """A deterministic topological order (alphabetical among independent recipes)."""
    check_acyclic(graph)
    return list(nx.lexicographical_topological_sort(graph))


def export(graph: nx.DiGraph, path: Path, fmt: str) -> None:
    """Write the graph as ``dot`` or ``graphml``."""
    if fmt == "graphml":
        nx.write_graphml(graph, path)
    elif fmt == "dot":
        path.write_text(to_dot(graph))
    else:
        raise ValueError(f"unknown graph format {fmt!r}")


def to_dot(graph: nx.DiGraph, name: str = "appbuild") -> str:
    """Graphviz text (written by hand: networkx's dot writer needs pydot or pygraphviz)."""

    def q(text: str) -> str:
        escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'

    lines = [f"digraph {q(name)} {{", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for node, data in sorted(graph.nodes(data=True)):
        attrs = ", ".join(f"{k}={q(v)}" for k, v in sorted(data.items()) if k in ("label", "color", "tooltip"))
        lines.append(f"  {q(node)}" + (f" [{attrs}]" if attrs else "") + ";")
    for a, b, data in sorted(graph.edges(data=True)):
        label = data.get("label") or data.get("requirement")
        lines.append(f"  {q(a)} -> {q(b)}" + (f" [label={q(label)}]" if label else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"
