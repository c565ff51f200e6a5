"""Export a group's runtime dependency graph: dot, graphml, and pictures (SVG, PNG).

Nodes are the packages (and capsules) of the group, labelled with their revision and
the components that are in; an edge ``hello -> libhello`` means some component of
hello requires something a component of libhello provides, and lists those
requirements (``requirements``, ``label``), their classes (``classes``) and the
colour of the first one's class (``color``: sonames blue, paths green, ...).
Pictures are drawn by Graphviz's ``dot``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import networkx as nx

from appbuilder.core.errors import AppbuildError
from appbuilder.graph.buildorder import to_dot
from appbuilder.repository.deps import Dependency, ProvisionIndex
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import COMPONENT, GROUP, Trove

FORMATS = ("dot", "graphml", "svg", "png")


def runtime_graph(repo: Repository, group: Trove) -> nx.DiGraph:
    """Package-level requirement graph of a group trove's members."""
    members = {n: repo.get(n, with_files=False) for n in group.members}
    troves = [t for t in members.values() if t.kind == COMPONENT]
    graph = nx.DiGraph(name=group.name)
    for t in troves:
        if t.package not in graph:
            graph.add_node(t.package, label=f"{t.package}\n{t.version.revision}", components="", version=str(t.version),
                           flavor=str(t.flavor))
        comps = [c for c in graph.nodes[t.package]["components"].split(",") if c]
        graph.nodes[t.package]["components"] = ",".join(sorted({*comps, t.component or ""}))

    by_name = {t.name: t for t in troves}
    provided: ProvisionIndex[Trove] = ProvisionIndex(
        by_name=lambda name: [by_name[name]] if name in by_name else [],
        by_owner=lambda path: [members[o] for o in repo.owners(path) if o in members],  # only components hold files
    )
    for t in troves:
        provided.update(t.provides, t)
    edges: dict[tuple[str, str], list[Dependency]] = {}
    for t in troves:
        for req in sorted(t.requires):
            targets = req.kind.find(provided, req)
            if targets and targets[0].package != t.package:
                edges.setdefault((t.package, targets[0].package), []).append(req)
    for (a, b), reqs in sorted(edges.items()):
        label = str(reqs[0]) + (f" (+{len(reqs) - 1} more)" if len(reqs) > 1 else "")
        graph.add_edge(a, b, requirements="; ".join(map(str, reqs)), label=label,
                       classes=",".join(sorted({r.cls for r in reqs})), color=reqs[0].kind.colour)
    for sub in (n for n, t in members.items() if t.kind == GROUP):
        graph.graph.setdefault("subgroups", "")
        graph.graph["subgroups"] += str(sub) + " "
    return graph


def export_graph(graph: nx.DiGraph, out_base: Path, formats: tuple[str, ...]) -> list[Path]:
    """Write the graph in each format as ``out_base.FORMAT``; returns the files written."""
    written = []
    dot_text = to_dot(graph, graph.name or "group")
    for fmt in formats:
        path = out_base.with_name(f"{out_base.name}.{fmt}")
        if fmt == "dot":
            path.write_text(dot_text)
        elif fmt == "graphml":
            nx.write_graphml(graph, path)
        elif fmt in ("svg", "png"):
            dot = shutil.which("dot")
            if not dot:
                raise AppbuildError("drawing a picture needs Graphviz's 'dot' (apt-get install graphviz)")
            proc = subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=dot_text.encode(), capture_output=True)
            if proc.returncode != 0:
                raise AppbuildError(f"dot -T{fmt} failed: {proc.stderr.decode(errors='replace').strip()}")
        else:
            raise AppbuildError(f"unknown graph format {fmt!r}; valid ones: {', '.join(FORMATS)}")
        written.append(path)
    return written
