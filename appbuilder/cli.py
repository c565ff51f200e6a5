"""The ``appbuild`` command line: argument parsing and wiring, nothing else.

    appbuild cook recipes/NAME [--arch x86_64|x86|all] [--force] [-j N]
    appbuild query [NAME]
    appbuild show NAME[=VERSION] [--files] [--deps]
    appbuild explain [ACTION]
    appbuild graph --build [--format dot|graphml] [-o FILE]
    appbuild gc
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from appbuilder import __version__
from appbuilder.arch import ARCHES, DEFAULT_ARCH, get_arch
from appbuilder.errors import AppbuildError
from appbuilder.settings import Settings, load_settings
from appbuilder.ui import Console


def _arches(value: str) -> list:
    if value == "all":
        return list(ARCHES.values())
    return [get_arch(v) for v in value.split(",")]


def _open_repo(settings: Settings):
    from appbuilder.repository.repo import Repository

    return Repository(settings.repository, settings.label)


# ---------------------------------------------------------------- commands


def cmd_cook(args, settings: Settings, ui: Console) -> int:
    from appbuilder.build.batch import cook_all, summary_error
    from appbuilder.build.cook import Cooker, CookOptions
    from appbuilder.recipe.loader import find_recipes

    recipes = [r for path in args.paths for r in find_recipes(path)]
    repo = _open_repo(settings)
    cooker = Cooker(settings, repo)
    make_jobs = max(1, (os.cpu_count() or 2))
    echo = ui.build_output if args.verbose else None

    def options(arch):
        return CookOptions(arch=arch, force=args.force, make_jobs=make_jobs, keep_work=args.keep_work, echo=echo)

    def report(res):
        if res.skipped:
            ui.info(f"{res.name} ({res.arch}) is up to date: {res.nvf}")
        else:
            ui.success(f"cooked {res.nvf} in {res.seconds:.1f} s  [{', '.join(c.split(':')[1] for c in res.components)}]")
            for m in res.missing_build_requires:
                ui.warn(f"{res.name}: {m}")

    result = cook_all(cooker, recipes, _arches(args.arch), jobs=args.jobs, options=options, report=report,
                      report_failure=lambda who, err: ui.error(err))
    error = summary_error(result)
    if error:
        raise error
    return 0


def cmd_query(args, settings: Settings, ui: Console) -> int:
    from appbuilder.repository.display import query_lines

    lines = query_lines(_open_repo(settings), args.name)
    if not lines:
        ui.note(f"no troves named {args.name}" if args.name else "the repository is empty")
        return 1 if args.name else 0
    for line in lines:
        ui.out(line)
    return 0


def cmd_show(args, settings: Settings, ui: Console) -> int:
    from appbuilder.repository.display import show_lines

    from appbuilder.repository.versions import TroveSpec

    repo = _open_repo(settings)
    spec = TroveSpec.parse(args.spec)
    # without an explicit flavor, prefer the default architecture's build
    arch = args.arch or (DEFAULT_ARCH if spec.flavor is None and repo.find(spec, arch=DEFAULT_ARCH) else None)
    nvf = repo.find_one(spec, arch=arch)
    for line in show_lines(repo, nvf, files=args.files, deps=args.deps):
        ui.out(line)
    return 0


def cmd_explain(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.recipe.explain import explain, list_actions

    ui.out(explain(args.action) if args.action else list_actions())
    return 0


def cmd_graph(args, settings: Settings, ui: Console) -> int:
    from appbuilder.graph.buildorder import build_graph, build_order, export
    from appbuilder.recipe.loader import find_recipes

    if not args.build:
        raise AppbuildError("say which graph: --build (the build order of recipes/)")
    graph = build_graph(find_recipes(args.recipes or settings.recipes_dir))
    order = build_order(graph)
    out = Path(args.output or f"build-order.{args.format}")
    export(graph, out, args.format)
    ui.info(f"build order: {' -> '.join(order)}")
    ui.success(f"wrote {out} ({graph.number_of_nodes()} recipes, {graph.number_of_edges()} edges)")
    return 0


def cmd_gc(args, settings: Settings, ui: Console) -> int:
    count, size = _open_repo(settings).gc(grace_seconds=args.grace)
    ui.success(f"removed {count} unreferenced objects ({size} bytes)")
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appbuild", description="Build versioned packages and appliance images from recipes.")
    p.add_argument("--version", action="version", version=f"appbuild {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("cook", help="build recipes into versioned packages")
    c.add_argument("paths", nargs="+", help="recipes/NAME, or recipes/ for all")
    c.add_argument("--arch", default=DEFAULT_ARCH, help=f"x86_64, x86 or all (default {DEFAULT_ARCH})")
    c.add_argument("--force", action="store_true", help="rebuild even if nothing changed (bumps the build count)")
    c.add_argument("-j", "--jobs", type=int, default=1, help="cook up to N recipes at once")
    c.add_argument("-v", "--verbose", action="store_true", help="show the build output")
    c.add_argument("--keep-work", action="store_true", help="keep the work directory (for debugging)")
    c.set_defaults(func=cmd_cook)

    q = sub.add_parser("query", help="list troves, or the versions of one")
    q.add_argument("name", nargs="?")
    q.set_defaults(func=cmd_query)

    s = sub.add_parser("show", help="show one trove")
    s.add_argument("spec", help="NAME[=VERSION][[is: ARCH]]")
    s.add_argument("--files", action="store_true", help="list files")
    s.add_argument("--deps", action="store_true", help="list provides and requires")
    s.add_argument("--arch", help="prefer this architecture")
    s.set_defaults(func=cmd_show)

    e = sub.add_parser("explain", help="document a recipe action or policy")
    e.add_argument("action", nargs="?")
    e.set_defaults(func=cmd_explain, no_workspace=True)

    g = sub.add_parser("graph", help="export a dependency graph")
    g.add_argument("--build", action="store_true", help="the build order of the recipes")
    g.add_argument("--recipes", help="recipes directory (default: the workspace's recipes/)")
    g.add_argument("--format", choices=("dot", "graphml"), default="dot")
    g.add_argument("-o", "--output")
    g.set_defaults(func=cmd_graph)

    gc = sub.add_parser("gc", help="delete stored contents no trove references")
    gc.add_argument("--grace", type=float, default=3600, help="keep objects younger than this many seconds")
    gc.set_defaults(func=cmd_gc)
    return p


def main(argv: list[str] | None = None) -> int:
    ui = Console()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        settings = None if getattr(args, "no_workspace", False) else load_settings()
        return args.func(args, settings, ui)
    except AppbuildError as exc:
        ui.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        ui.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
