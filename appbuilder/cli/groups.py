"""``appbuild resolve | graph | showcs``: groups resolved into pins, dependency graphs, group changes."""

from __future__ import annotations

from pathlib import Path

from appbuilder.cli.common import arches, open_repo
from appbuilder.core.arch import DEFAULT_ARCH, get_arch
from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import Settings
from appbuilder.core.ui import Console


def cmd_resolve(args, settings: Settings, ui: Console) -> int:
    from appbuilder.cook.topdown import resolve_topdown

    repo = open_repo(settings)
    if args.upstream:
        return _plan(args, settings, repo, ui)
    for arch in arches(args.arch):
        result = resolve_topdown(settings, repo, args.group, arch.name, say=ui.info, warn=ui.warn)
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


def _plan(args, settings: Settings, repo, ui: Console) -> int:
    """``resolve --upstream``: what top-down resolution would import, and why; nothing is imported."""
    import time

    from appbuilder.cook.topdown import plan_only
    from appbuilder.graph.upstream import conflicts_error, unresolved_error

    failed = None
    for arch in arches(args.arch):
        t = time.monotonic()
        result = plan_only(settings, repo, args.group, arch.name, say=ui.info)
        seconds = time.monotonic() - t
        if not result.recipe.resolveSources and result.plan is None:
            raise AppbuildError(f"{args.group} has no resolveSources: it resolves against the repository only "
                                f"(appbuild resolve {args.group})")
        picks = result.picks
        if picks:
            rows = [(p.package.name, p.package.version, p.package.arch, p.index,
                     "in repository" if p.in_repository else "import", p.relation, p.rule) for p in picks]
            widths = [max(len(r[i]) for r in rows) for i in range(5)]
            heads = ("PACKAGE", "VERSION", "ARCH", "INDEX", "ACTION")
            ui.out("  ".join(f"{h:{w}}" for h, w in zip(heads, widths)) + "  REASON  [RULE]")
            for row in rows:
                rule = f"  [rule: {row[6]}]" if row[6] else ""
                ui.out("  ".join(f"{c:{w}}" for c, w in zip(row[:5], widths)) + f"  {row[5]}{rule}")
        plan = result.plan
        to_import = [p for p in picks if not p.in_repository]
        size = sum(p.package.size for p in to_import)
        if plan is not None:
            for text in plan.conflicts:
                ui.warn(f"conflict: {text}")
            for u in plan.unresolved:
                ui.warn(f"unresolved: {u}")
            if plan.unresolved:
                failed = failed or unresolved_error(args.group, arch.name, plan)
            elif plan.conflicts:
                failed = failed or conflicts_error(args.group, arch.name, plan)
        if not to_import and plan is not None and not plan.unresolved:
            ui.success(f"{args.group} ({arch.name}): nothing to import; the repository holds every member "
                       f"({len(result.closure.members)} troves, {len(picks)} of them by upstream relations; "
                       f"planned in {seconds:.1f} s)")
        else:
            ui.success(f"{args.group} ({arch.name}): {len(picks)} upstream package(s), {len(to_import)} to import "
                       f"({size / 1e6:.1f} MB); planned in {seconds:.1f} s; nothing was imported")
    if failed is not None:
        raise failed
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


def cmd_showcs(args, settings: Settings, ui: Console) -> int:
    """conary's ``showcs``/``rdiff``: what one recorded group version changes against another."""
    from appbuilder.graph.changeset import changeset, group_version, parse_change

    repo = open_repo(settings)
    name, old, new = parse_change(args.change, args.from_version, args.to_version)
    arch = get_arch(args.arch or DEFAULT_ARCH).name
    new_nvf = group_version(repo, name, arch, new)
    old_nvf = group_version(repo, name, arch, old, before=None if old else new_nvf)
    for line in changeset(repo, old_nvf, new_nvf, files=args.files, diff=args.diff).lines():
        ui.out(line)
    return 0


def register(sub) -> None:
    """Add this area's subcommands to the ``appbuild`` parser."""
    r = sub.add_parser("resolve", help="resolve a group into exact pins and record it")
    r.add_argument("group", help="group-NAME (groups/group-NAME.py)")
    r.add_argument("--arch", default=DEFAULT_ARCH, help=f"x86_64, x86 or all (default {DEFAULT_ARCH})")
    r.add_argument("--upstream", action="store_true",
                   help="a group with resolveSources: print what would be imported from upstream (package, "
                        "version, index, reason, rule) and import and record nothing")
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

    cs = sub.add_parser("showcs",
                        help="what a recorded group version changes against another (conary's showcs/rdiff)",
                        description="appbuild showcs group-NAME=V1--V2, or group-NAME [--from V1] [--to V2]: members "
                                    "added, removed and changed (old -> new version). Without versions: the newest "
                                    "against the one before it.")
    cs.add_argument("change", metavar="group-NAME[=V1--V2]")
    cs.add_argument("--from", dest="from_version", metavar="V1", help="the old version (default: the one before V2)")
    cs.add_argument("--to", dest="to_version", metavar="V2", help="the new version (default: the newest)")
    cs.add_argument("--arch", help=f"the groups' architecture (default {DEFAULT_ARCH})")
    cs.add_argument("--files", action="store_true", help="also the files each changed member adds, removes, changes")
    cs.add_argument("--diff", action="store_true", help="also a unified diff of each changed text file (implies --files)")
    cs.set_defaults(func=cmd_showcs)
