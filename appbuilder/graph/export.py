"""Export a group's runtime dependency graph: dot, graphml, and pictures (SVG, PNG).

Nodes are the packages (and capsules) of the group, labelled with their revision and
the components that are in; an edge ``hello -> libhello`` means some component of
hello requires something a component of libhello provides, and lists those
requirements. Pictures are drawn by Graphviz's ``dot``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import networkx as nx

from appbuilder.core.errors import AppbuildError
from appbuilder.graph.buildorder import to_dot
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

    provides: dict[tuple[str, str], list[tuple[frozenset, Trove]]] = {}
    for t in troves:
        for p in t.provides:
            provides.setdefault((p.cls, p.name), []).append((p.flags, t))
    by_name = {t.name: t for t in troves}
    edges: dict[tuple[str, str], list[str]] = {}
    for t in troves:
        for req in sorted(t.requires):
            if req.cls == "trove":
                targets = [by_name[req.name]] if req.name in by_name else []
            elif req.cls == "file":
                targets = [members[o] for o in repo.owners(req.name) if o in members]  # only components hold files
            else:
                targets = [p for flags, p in provides.get((req.cls, req.name), []) if req.flags <= flags]
            if targets and targets[0].package != t.package:
                edges.setdefault((t.package, targets[0].package), []).append(str(req))
    for (a, b), reqs in sorted(edges.items()):
        label = reqs[0] + (f" (+{len(reqs) - 1} more)" if len(reqs) > 1 else "")
        graph.add_edge(a, b, requirements="; ".join(reqs), label=label)
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
