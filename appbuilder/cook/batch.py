"""Cook many recipes: in build order, independent ones in parallel.

The work is a graph of (recipe, architecture) nodes with the build-requirement edges
of :mod:`appbuilder.graph.buildorder`. Up to ``jobs`` cooks run at once; a cook
starts when everything it needs is cooked. When a cook fails, what depends on it is
not attempted, everything independent still is, and the failures are reported
together at the end. Ctrl-C stops every running build and commits nothing further.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

import networkx as nx

from appbuilder.cook.cook import Cooker, CookOptions, CookResult
from appbuilder.core.arch import Arch
from appbuilder.core.errors import AppbuildError, Interrupted
from appbuilder.core.sandbox import Sandbox
from appbuilder.graph.buildorder import build_graph, check_acyclic
from appbuilder.recipe.loader import RecipeFile


@dataclass
class BatchResult:
    cooked: list[CookResult] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # "name (arch)" -> error
    not_attempted: dict[str, str] = field(default_factory=dict)  # "name (arch)" -> because of


def work_graph(recipes: list[RecipeFile], arches: list[Arch]) -> nx.DiGraph:
    """The cooks to do: a ``(recipe name, arch name)`` node (attribute ``arch``) per recipe and
    architecture, an edge from each build requirement to what needs it; a cycle is an error."""
    graph = build_graph(recipes)
    check_acyclic(graph)
    work = nx.DiGraph()
    for arch in arches:
        for name in graph.nodes:
            work.add_node((name, arch.name), arch=arch)
        work.add_edges_from(((a, arch.name), (b, arch.name)) for a, b in graph.edges)
    return work


def cook_all(
    cooker: Cooker,
    recipes: list[RecipeFile],
    arches: list[Arch],
    *,
    jobs: int,
    options: Callable[[Arch], CookOptions],
    report: Callable[[CookResult], None] = lambda r: None,
) -> BatchResult:
    work = work_graph(recipes, arches)
    by_name = {r.name: r for r in recipes}

    result = BatchResult()
    done: set = set()
    blocked: set = set()
    running: dict[Future, tuple[str, str]] = {}

    def label(node) -> str:
        return f"{node[0]} ({node[1]})"

    def ready() -> list:
        return sorted(
            n for n in work.nodes
            if n not in done and n not in blocked and n not in running.values()
            and all(p in done for p in work.predecessors(n))
        )

    def block_descendants(node, because: str) -> None:
        for d in nx.descendants(work, node):
            if d not in blocked:
                blocked.add(d)
                result.not_attempted[label(d)] = because

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            while True:
                for node in ready():
                    if len(running) >= max(1, jobs):
                        break
                    arch = work.nodes[node]["arch"]
                    running[pool.submit(cooker.cook, by_name[node[0]], options(arch))] = node
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    node = running.pop(fut)
                    try:
                        res = fut.result()
                    except Interrupted:
                        raise
                    except AppbuildError as exc:
                        blocked.add(node)
                        result.failed[label(node)] = str(exc)
                        block_descendants(node, f"{label(node)} failed")
                        continue
                    done.add(node)
                    result.cooked.append(res)
                    report(res)
        except KeyboardInterrupt:
            cooker.cancelled.set()
            Sandbox.kill_all()
            for fut in running:
                fut.cancel()
            raise Interrupted("interrupted: running builds were stopped; nothing unfinished was committed") from None
    return result
