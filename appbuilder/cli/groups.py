"""``appbuild resolve | graph``: groups resolved into pins, and dependency graphs."""

from __future__ import annotations

from pathlib import Path

from appbuilder.cli.common import arches, open_repo
from appbuilder.core.arch import DEFAULT_ARCH, get_arch
from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import Settings
from appbuilder.core.ui import Console


def cmd_resolve(args, settings: Settings, ui: Console) -> int:
    from appbuilder.graph.groups import resolve_group

    repo = open_repo(settings)
    for arch in arches(args.arch):
        result = resolve_group(settings, repo, args.group, arch.name)
        rows = result.rows()
        width = max(len(r[0]) for r in rows) if rows else 10
        ui.out(f"{'MEMBER':{width}}  {'REVISION':14}  {'FLAVOR':11}  REASON")
        for name, revision, flavor, reason in rows:
            ui.out(f"{name:{width}}  {revision:14}  {flavor:11}  {reason}")
        for warning in result.warnings:
            ui.warn(warning)
        state = "new version" if result.new else "unchanged: the same closure as before"
        ui.success(f"{result.group.nvf}  ({len(rows)} members; {state})")
    return 0


def cmd_graph(args, settings: Settings, ui: Console) -> int:
    from appbuilder.graph.buildorder import build_graph, build_order, export
    from appbuilder.recipe.loader import find_recipes

    if args.group:
        return _graph_group(args, settings, ui)
    if not args.build:
        raise AppbuildError("say which graph: a group (appbuild graph group-NAME) or --build (the recipes' build order)")
    graph = build_graph(find_recipes(args.recipes or settings.recipes_dir))
    order = build_order(graph)
    fmt = args.format or "dot"
    if fmt not in ("dot", "graphml"):
        raise AppbuildError(f"the build order exports as dot or graphml, not {fmt!r}")
    out = Path(args.output or f"build-order.{fmt}")
    export(graph, out, fmt)
    ui.info(f"build order: {' -> '.join(order)}")
    ui.success(f"wrote {out} ({graph.number_of_nodes()} recipes, {graph.number_of_edges()} edges)")
    return 0


def _graph_group(args, settings: Settings, ui: Console) -> int:
    from appbuilder.graph.export import FORMATS, export_graph, runtime_graph
    from appbuilder.graph.groups import find_group

    repo = open_repo(settings)
    arch = get_arch(args.arch or DEFAULT_ARCH).name
    group = repo.get(find_group(repo, args.group, arch, args.version), with_files=False)
    graph = runtime_graph(repo, group)
    formats = FORMATS if args.format in (None, "all") else tuple(args.format.split(","))
    base = Path(args.output or f"{args.group}-{arch}")
    for path in export_graph(graph, base, formats):
        ui.success(f"wrote {path}")
    ui.info(f"{group.nvf}: {graph.number_of_nodes()} packages, {graph.number_of_edges()} dependency edges")
    return 0


def register(sub) -> None:
    """Add this area's subcommands to the ``appbuild`` parser."""
    r = sub.add_parser("resolve", help="resolve a group into exact pins and record it")
    r.add_argument("group", help="group-NAME (groups/group-NAME.py)")
    r.add_argument("--arch", default=DEFAULT_ARCH, help=f"x86_64, x86 or all (default {DEFAULT_ARCH})")
    r.set_defaults(func=cmd_resolve)

    g = sub.add_parser("graph", help="export a dependency graph (a group's runtime graph, or the build order)")
    g.add_argument("group", nargs="?", help="group-NAME: its runtime dependency graph")
    g.add_argument("--arch", help=f"the group's architecture (default {DEFAULT_ARCH})")
    g.add_argument("--version", help="a recorded group version (default: the newest)")
    g.add_argument("--build", action="store_true", help="the build order of the recipes")
    g.add_argument("--recipes", help="recipes directory (default: the workspace's recipes/)")
    g.add_argument("--format", default=None,
                   help="dot, graphml, svg, png, a comma list, or all (default: all for a group, dot for --build)")
    g.add_argument("-o", "--output", help="output file (--build) or base name without extension (group)")
    g.set_defaults(func=cmd_graph)
