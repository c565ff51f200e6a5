"""The ``appbuild`` command line: argument parsing and wiring, nothing else.

    appbuild cook recipes/NAME [--arch x86_64|x86|all] [--force] [-j N]
    appbuild query [NAME]
    appbuild show NAME[=VERSION] [--files] [--deps]
    appbuild explain [ACTION]
    appbuild graph --build [--format dot|graphml] [-o FILE]
    appbuild gc
    appbuild inspect IMAGE... [--json]
    appbuild upload ami IMAGE_DIR_OR_MANIFEST [--endpoint URL] [--bucket B] --region R [--method import|ebs-direct]
    appbuild import rpm FILE.rpm... | --repo PATH-OR-URL [--only NAME...] [--arch A] [--label L]
    appbuild import deb PKG[:ARCH]... | FILE.deb... [--label L]
    appbuild group-NAME --format F[,F...]|all --arch x86_64|x86|all [--version V]
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


def cmd_resolve(args, settings: Settings, ui: Console) -> int:
    from appbuilder.graph.groups import resolve_group

    repo = _open_repo(settings)
    for arch in _arches(args.arch):
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

    repo = _open_repo(settings)
    arch = get_arch(args.arch or DEFAULT_ARCH).name
    group = repo.get(find_group(repo, args.group, arch, args.version), with_files=False)
    graph = runtime_graph(repo, group)
    formats = FORMATS if args.format in (None, "all") else tuple(args.format.split(","))
    base = Path(args.output or f"{args.group}-{arch}")
    for path in export_graph(graph, base, formats):
        ui.success(f"wrote {path}")
    ui.info(f"{group.nvf}: {graph.number_of_nodes()} packages, {graph.number_of_edges()} dependency edges")
    return 0


def cmd_gc(args, settings: Settings, ui: Console) -> int:
    count, size = _open_repo(settings).gc(grace_seconds=args.grace)
    ui.success(f"removed {count} unreferenced objects ({size} bytes)")
    return 0


def cmd_inspect(args, settings: Settings | None, ui: Console) -> int:
    import json

    from appbuilder.images.inspect import inspect_images, report_lines

    reports = inspect_images([Path(p) for p in args.images])
    if args.json:
        ui.out(json.dumps([r.to_dict() for r in reports], indent=2))
        return 0
    for i, report in enumerate(reports):
        if i:
            ui.out("")
        for line in report_lines(report):
            ui.out(line)
    return 0


def cmd_upload_ami(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.images.ami import endpoint_from_env, load_image, upload_ami

    endpoint = endpoint_from_env(args.region, args.endpoint, args.s3_endpoint, args.ebs_endpoint,
                                 args.access_key, args.secret_key)
    result = upload_ami(
        load_image(Path(args.image)), endpoint, bucket=args.bucket, method=args.method, key=args.key,
        name=args.name, role_name=args.role_name, create_bucket=args.create_bucket, keep_object=args.keep_object,
        timeout=args.timeout, poll=args.poll, jobs=args.jobs, progress=ui.note,
    )
    ui.out(result.image_id)
    return 0


def cmd_import(args, settings: Settings, ui: Console) -> int:
    from appbuilder.capsule.importer import UNCHANGED, import_command

    results = import_command(
        settings, _open_repo(settings), args.kind, args.packages, repo_location=getattr(args, "repo", None),
        only=getattr(args, "only", None), arch=getattr(args, "arch", None), label=args.label,
        allow_missing=getattr(args, "allow_missing", False), with_depends=getattr(args, "with_depends", False),
        warn=ui.warn,
    )
    for result in results:
        (ui.info if result.status == UNCHANGED else ui.success)(str(result))
    return 0


def cmd_import_upstream(args, settings: Settings, ui: Console) -> int:
    from appbuilder.capsule.importer import UNCHANGED, import_upstream

    results = import_upstream(settings, _open_repo(settings), warn=ui.warn)
    for result in results:
        (ui.info if result.status == UNCHANGED else ui.success)(str(result))
    new = sum(r.status != UNCHANGED for r in results)
    ui.note(f"{len(results)} upstream packages: {new} imported, {len(results) - new} already current")
    return 0


def cmd_build_image(args, settings: Settings, ui: Console) -> int:
    from appbuilder.images.build import BuildRequest, build_images, parse_size

    req = BuildRequest(
        group=args.group, arches=[a.name for a in _arches(args.arch)], formats=args.format,
        version=args.version, output=Path(args.output).resolve() if args.output else None, force=args.force,
        size=parse_size(args.size) if args.size else None, jobs=args.jobs, cook=not args.no_cook,
    )
    repo = _open_repo(settings)
    for image in build_images(settings, repo, req, say=ui.info):
        ui.success(f"{image.group}: {image.directory}")
        for fmt, paths in sorted(image.files.items()):
            for path in paths:
                ui.out(f"  {fmt:12} {path.name}  ({path.stat().st_size / (1 << 20):.1f} MiB)")
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in image.seconds.items())
        ui.info(f"  kernel {image.kernel}; installed size {image.installed_size / (1 << 20):.1f} MiB; {steps}")
    return 0


def build_image_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appbuild group-NAME", description=(
        "Build the images of an image group: cook what changed, resolve the group (or take a pinned "
        "--version), assemble a bootable disk and write it in the requested formats."))
    p.add_argument("group", help="group-NAME (groups/group-NAME.py)")
    p.add_argument("--format", default="raw", help="raw, qcow2, vmdk, vmdk-esx, ova, vhd, vhd-dynamic, ami, "
                   "a comma list, or all (default raw)")
    p.add_argument("--arch", default=DEFAULT_ARCH, help=f"x86_64, x86 or all (default {DEFAULT_ARCH})")
    p.add_argument("--version", help="rebuild this recorded group version from its pins")
    p.add_argument("--output", help="write into this directory instead of the image store")
    p.add_argument("--force", action="store_true", help="replace images that already exist")
    p.add_argument("--size", help="disk size (e.g. 512M, 2G); default: what the closure needs plus headroom")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2, help="parallel conversions")
    p.add_argument("--no-cook", action="store_true", help="do not cook changed recipes first")
    p.set_defaults(func=cmd_build_image)
    return p


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

    im = sub.add_parser("import", help="import upstream binary packages (RPM, DEB) as capsules")
    kinds = im.add_subparsers(dest="kind", metavar="rpm|deb|upstream", required=True)
    ir = kinds.add_parser("rpm", help="RPM files, or an rpm-md repository (--repo)")
    ir.add_argument("packages", nargs="*", metavar="FILE.rpm")
    ir.add_argument("--repo", help="an rpm-md repository: a directory or an http(s)/mirror:// URL")
    ir.add_argument("--only", nargs="+", metavar="NAME[.ARCH]", help="these packages and their dependency closure")
    ir.add_argument("--arch", help="with --repo: x86_64, x86, a comma list or all (default all, plus noarch)")
    ir.add_argument("--allow-missing", action="store_true", help="import an --only closure with unmet requirements")
    ir.add_argument("--label", help="the label to import to (default: rpm.label in repo/config.yaml, or the repository's)")
    ir.set_defaults(func=cmd_import)
    idb = kinds.add_parser("deb", help="Debian packages by name (through the machine's apt), or .deb files")
    idb.add_argument("packages", nargs="+", metavar="PKG[:ARCH]|FILE.deb")
    idb.add_argument("--with-depends", action="store_true",
                     help="also import the named packages' direct dependencies (for metapackages such as "
                          "linux-image-amd64)")
    idb.add_argument("--label", help="the label to import to (default: deb.label in repo/config.yaml, or the repository's)")
    idb.set_defaults(func=cmd_import)
    iu = kinds.add_parser("upstream", help="everything repo/config.yaml lists under 'upstream:' (no-op when current)")
    iu.set_defaults(func=cmd_import_upstream)

    gc = sub.add_parser("gc", help="delete stored contents no trove references")
    gc.add_argument("--grace", type=float, default=3600, help="keep objects younger than this many seconds")
    gc.set_defaults(func=cmd_gc)

    ins = sub.add_parser("inspect", help="list what images hold: format, partitions, filesystems, kernel, troves")
    ins.add_argument("images", nargs="+", metavar="IMAGE", help="raw, qcow2, vmdk, vhd or ova files")
    ins.add_argument("--json", action="store_true", help="print the reports as JSON")
    ins.set_defaults(func=cmd_inspect, no_workspace=True)

    up = sub.add_parser("upload", help="upload an image to a cloud")
    targets = up.add_subparsers(dest="target", metavar="ami", required=True)
    ua = targets.add_parser("ami", help="register an ami image with EC2 (S3 + ImportSnapshot, or EBS direct)")
    ua.add_argument("image", metavar="IMAGE_DIR_OR_MANIFEST", help="directory holding NAME.ami.json, or that file")
    ua.add_argument("--endpoint", help="EC2 endpoint URL (default: AWS's for the region)")
    ua.add_argument("--s3-endpoint", help="S3 endpoint URL (default: --endpoint)")
    ua.add_argument("--ebs-endpoint", help="EBS direct API endpoint URL (default: --endpoint)")
    ua.add_argument("--region", help="region (default: AWS_REGION)")
    ua.add_argument("--bucket", help="S3 bucket the disk is uploaded to for ImportSnapshot")
    ua.add_argument("--create-bucket", action="store_true", help="create the bucket if it does not exist")
    ua.add_argument("--key", help="S3 key (default appbuild/NAME.raw)")
    ua.add_argument("--access-key", help="access key id (default: AWS_ACCESS_KEY_ID)")
    ua.add_argument("--secret-key", help="secret access key (default: AWS_SECRET_ACCESS_KEY)")
    ua.add_argument("--method", choices=("import", "ebs-direct"), default="import",
                    help="import: S3 upload + ImportSnapshot (default); ebs-direct: EBS direct APIs, no S3")
    ua.add_argument("--name", help="AMI name (default: the image's NAME)")
    ua.add_argument("--role-name", help="IAM role ImportSnapshot uses (default: the service's, vmimport)")
    ua.add_argument("--keep-object", action="store_true", help="keep the uploaded disk in S3")
    ua.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the snapshot (default 3600)")
    ua.add_argument("--poll", type=float, default=10, help="seconds between status checks (default 10)")
    ua.add_argument("-j", "--jobs", type=int, default=8, help="parallel part/block uploads (default 8)")
    ua.set_defaults(func=cmd_upload_ami, no_workspace=True)
    return p


def main(argv: list[str] | None = None) -> int:
    ui = Console()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_image_parser() if argv and argv[0].startswith("group-") else build_parser()
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
