"""Build order across recipes: edges from buildRequires, a deterministic order, cycles
named the way users read them, and exports that graph tools read back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import networkx as nx
import pytest

from appbuilder.core.errors import DependencyCycle
from appbuilder.graph.buildorder import (
    build_graph,
    build_order,
    check_acyclic,
    export,
    to_dot,
)
from appbuilder.recipe.loader import find_recipes


def recipes(root: Path, needs: dict[str, list[str]]):
    """Write one recipe per name with the given buildRequires; load them all."""
    for name, reqs in needs.items():
        d = root / name
        d.mkdir(parents=True)
        (d / "recipe.py").write_text(
            f"class R(PackageRecipe):\n    name = {name!r}\n    version = '1'\n    buildRequires = {reqs!r}\n\n"
            f"    def setup(r):\n        r.Create('/usr/share/{name}', contents='x')\n")
    return find_recipes(root)


NEEDS = {
    "app": ["libhello:devel", "zlib=1.3[is: x86_64]", "external:devel"],
    "libhello": ["zlib:devel"],
    "zlib": [],
    "beta": ["external-only:devel"],
    "tool": ["app:runtime", "libhello"],
}


def test_build_graph_edges_and_attributes(tmp_path):
    graph = build_graph(recipes(tmp_path, NEEDS))
    assert set(graph.nodes) == set(NEEDS)  # external requirements are not nodes
    assert set(graph.edges) == {("libhello", "app"), ("zlib", "app"), ("zlib", "libhello"),
                                ("app", "tool"), ("libhello", "tool")}
    assert graph.edges["zlib", "app"]["requirement"] == "zlib=1.3[is: x86_64]"
    assert graph.nodes["app"]["recipe"] == str(tmp_path.resolve() / "app" / "recipe.py")


def test_build_order_is_topological_and_alphabetical_among_equals(tmp_path):
    graph = build_graph(recipes(tmp_path, NEEDS))
    order = build_order(graph)
    assert sorted(order) == sorted(NEEDS)
    for a, b in graph.edges:
        assert order.index(a) < order.index(b), (a, b)
    assert order == ["beta", "zlib", "libhello", "app", "tool"]
    assert build_order(build_graph(recipes(tmp_path / "again", NEEDS))) == order  # deterministic


@pytest.mark.parametrize("needs, cycle", [
    ({"alpha": ["beta:devel"], "beta": ["gamma:devel"], "gamma": ["alpha:devel"]}, "alpha -> beta -> gamma -> alpha"),
    # the same cycle entered elsewhere, with a recipe outside it needing one inside
    ({"z": ["x:devel"], "x": ["y:lib"], "y": ["w"], "w": ["x"], "a": ["z:devel"]}, "w -> x -> y -> w"),
    ({"one": ["two:devel"], "two": ["one:runtime"], "zero": []}, "one -> two -> one"),
])
def test_cycle_is_named_in_needs_order(tmp_path, needs, cycle):
    graph = build_graph(recipes(tmp_path, needs))
    with pytest.raises(DependencyCycle) as exc:
        check_acyclic(graph)
    assert str(exc.value) == f"build requirement cycle: {cycle} (each needs the next to be cooked first)"
    # each step of the message really is a requirement
    names = cycle.split(" -> ")
    for needer, needed in zip(names, names[1:]):
        assert any(spec.split(":")[0].split("=")[0] == needed for spec in needs[needer])
    with pytest.raises(DependencyCycle):
        build_order(graph)


def test_recipe_requiring_itself(tmp_path):
    with pytest.raises(DependencyCycle, match="self -> self \\(it requires itself\\)"):
        build_graph(recipes(tmp_path, {"self": ["self:devel"]}))


def dot_json(text: str) -> dict:
    proc = subprocess.run(["dot", "-Tjson0"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_dot_export_is_read_back_by_graphviz(tmp_path):
    graph = build_graph(recipes(tmp_path / "r", NEEDS))
    out = tmp_path / "order.dot"
    export(graph, out, "dot")
    data = dot_json(out.read_text())
    names = {o["_gvid"]: o["name"] for o in data["objects"]}
    assert set(names.values()) == set(graph.nodes)
    edges = {(names[e["tail"]], names[e["head"]]): e.get("label") for e in data["edges"]}
    assert set(edges) == set(graph.edges)
    for (a, b), label in edges.items():
        assert label == graph.edges[a, b]["requirement"]


def test_dot_quotes_awkward_text():
    graph = nx.DiGraph()
    graph.add_node('we"ird name', label='say "hi"\nthere')
    graph.add_edge('we"ird name', "b", requirement='b[is: x86]')
    data = dot_json(to_dot(graph, name='my "graph"'))
    assert data["name"] == 'my "graph"'
    assert {o["name"] for o in data["objects"]} == {'we"ird name', "b"}
    assert data["edges"][0]["label"] == "b[is: x86]"


def test_graphml_export_is_read_back_by_networkx(tmp_path):
    graph = build_graph(recipes(tmp_path / "r", NEEDS))
    out = tmp_path / "order.graphml"
    export(graph, out, "graphml")
    back = nx.read_graphml(out)
    assert set(back.nodes) == set(graph.nodes) and set(back.edges) == set(graph.edges)
    assert back.is_directed()
    for node in graph.nodes:
        assert back.nodes[node]["recipe"] == graph.nodes[node]["recipe"]
    for a, b in graph.edges:
        assert back.edges[a, b]["requirement"] == graph.edges[a, b]["requirement"]
    assert build_order(back) == build_order(graph)


def test_unknown_export_format(tmp_path):
    with pytest.raises(ValueError, match="unknown graph format 'svgz'"):
        export(nx.DiGraph(), tmp_path / "x", "svgz")
