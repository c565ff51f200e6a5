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
    appbuild images [group-NAME] | show group-NAME=VERSION | diff [group-NAME=]V1 [group-NAME=]V2
    appbuild publish group-NAME=VERSION --to DIR|s3://BUCKET/PREFIX [--channel release|nightly] [--keep N]
    appbuild rollback group-NAME --to VERSION [--dest DIR|s3://...] [--arch A]
    appbuild serve [DIR] [--port P]
    appbuild fs keygen --repo NAME -o DIR | publish DIR --repo NAME --to OUT [--key FILE] | check OUT/NAME --pub FILE
    appbuild context make USER-DATA.ini -o CTX.iso|CTX.img [--add FILE...]
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


def _destination(args, settings: Settings) -> str:
    dest = args.dest or os.environ.get("APPBUILD_PUBLISH_TO") or (settings.config.get("publish") or {}).get("to")
    if not dest:
        raise AppbuildError("say where: --to DIR or s3://BUCKET/PREFIX (or publish.to in repo/config.yaml, "
                            "or APPBUILD_PUBLISH_TO)")
    return str(dest)


def _endpoint(args, settings: Settings) -> str | None:
    return args.endpoint_url or (settings.config.get("publish") or {}).get("endpoint_url")


def cmd_images(args, settings: Settings, ui: Console) -> int:
    import json

    from appbuilder.images import catalog
    from appbuilder.images.store import ImageStore

    store = ImageStore(settings.images)
    if args.images_command == "show":
        group, _, version = args.spec.partition("=")
        if not version:
            raise AppbuildError(f"name a version: group-NAME=VERSION (got {args.spec!r})")
        if args.json:
            ui.out(json.dumps([e.manifest.to_dict() for e in store.find(group, version, args.arch)], indent=2))
            return 0
        lines = catalog.show_lines(store, group, version, args.arch, members=not args.no_members)
    elif args.images_command == "diff":
        lines = catalog.diff_lines(store, args.old, args.new, args.arch)
    else:
        if args.json:
            ui.out(json.dumps([{"group": e.group, "version": e.revision, "arch": e.arch, "directory": str(e.directory),
                                "manifest": e.manifest.to_dict() if e.manifest else None}
                               for e in store.entries(args.group)], indent=2))
            return 0
        lines = catalog.list_lines(store, args.group)
    for line in lines:
        ui.out(line)
    return 0


def cmd_publish(args, settings: Settings, ui: Console) -> int:
    from appbuilder.images.publish import PublishRequest, parse_spec, publish
    from appbuilder.images.sign import require_signer
    from appbuilder.images.store import ImageStore

    group, version = parse_spec(args.spec)
    signer = require_signer(settings.config, key=args.key, gpg_home=args.gpg_home, unsigned=args.unsigned)
    req = PublishRequest(
        group=group, version=version, destination=_destination(args, settings),
        arches=[a.name for a in _arches(args.arch)] if args.arch else None,
        formats=args.format.split(",") if args.format else None, channel=args.channel,
        make_current=not args.no_current, keep=args.keep, endpoint_url=_endpoint(args, settings),
        lock_timeout=args.lock_timeout,
    )
    result = publish(ImageStore(settings.images), req, signer, say=ui.info)
    for arch in result.published:
        ui.success(f"published {group}={result.version} ({arch}) at {result.destination}/{group}/{result.version}/{arch}")
    for arch in result.unchanged:
        ui.info(f"{group}={result.version} ({arch}) was already published there with these files")
    ui.out(f"current: {', '.join(f'{a} {v}' for a, v in sorted(result.current.items())) or 'none'}")
    return 0


def cmd_rollback(args, settings: Settings, ui: Console) -> int:
    from appbuilder.images.publish import rollback

    before, now = rollback(_destination(args, settings), args.group, args.version,
                           arches=[a.name for a in _arches(args.arch)] if args.arch else None, reason=args.reason,
                           endpoint_url=_endpoint(args, settings), lock_timeout=args.lock_timeout)
    for arch, previous in sorted(before.items()):
        if previous == now[arch]:
            ui.info(f"{args.group} ({arch}): {previous} is already current")
        else:
            ui.success(f"{args.group} ({arch}): current is now {now[arch]}"
                       + (f"; {previous} is withdrawn" if previous else ""))
    return 0


def cmd_serve(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.images.serve import serve

    root = args.root
    if root is None:
        root = os.environ.get("APPBUILD_PUBLISH_TO") or (((settings.config if settings else {}).get("publish")
                                                           or {}).get("to"))
    if not root or str(root).startswith("s3://"):
        raise AppbuildError("serve a published directory: appbuild serve DIR")
    serve(Path(root), args.port, args.bind, say=lambda m: (ui.out(m), sys.stdout.flush()))
    return 0


def cmd_fs_keygen(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.fs.keys import generate

    pair = generate(args.repo, Path(args.output), force=args.force)
    ui.success(f"key {pair.key_id} for {args.repo}: {pair.private_path} (private: keep it where you publish), "
               f"{pair.public_path} (public: /etc/cvmfs/keys/{args.repo}.pub on the clients)")
    return 0


def cmd_fs_publish(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.fs.publish import publish

    key = Path(args.key) if args.key else Path(args.keys) / f"{args.repo}.key"
    report = publish(Path(args.source), args.repo, Path(args.to), key, rehash=args.rehash, ttl=args.ttl,
                     jobs=args.jobs, progress=ui.note)
    for path in report.skipped:
        ui.warn(f"not published (not a file, directory or symlink): {path}")
    ui.success(report.summary())
    return 0


def cmd_fs_check(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.fs.check import check

    report = check(Path(args.repository), [Path(p) for p in args.pub], contents=not args.quick)
    for problem in report.problems:
        ui.error(problem)
    if not report.ok:
        return 1
    ui.success(f"{report.manifest.repository} revision {report.manifest.revision}: {report.files} files, "
               f"{report.objects} objects, signature and hashes good")
    return 0


def cmd_context_make(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.context.drive import make_config_drive

    drive = make_config_drive(Path(args.user_data), Path(args.output), extra=[Path(p) for p in args.add],
                              fmt=args.format, label=args.label)
    for problem in drive.problems:
        ui.warn(f"{args.user_data}: {problem} (the appliance will report and skip it)")
    ui.success(f"wrote {drive.path} ({drive.format}, label {drive.label}, {drive.size} bytes): {', '.join(drive.files)}")
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

    ims = sub.add_parser("images", help="the image store: versions, one version, two versions compared",
                         description="appbuild images [group-NAME] | show group-NAME=VERSION | diff V1 V2")
    views = ims.add_subparsers(dest="images_command", metavar="list|show|diff")
    il = views.add_parser("list", help="every recorded version, newest first (the default)")
    il.add_argument("group", nargs="?", help="only this group")
    il.add_argument("--json", action="store_true", help="print the manifests as JSON")
    ish = views.add_parser("show", help="one recorded version: files, checksums, pins, builder, log")
    ish.add_argument("spec", metavar="group-NAME=VERSION")
    ish.add_argument("--arch", help="only this architecture")
    ish.add_argument("--json", action="store_true", help="print the manifests as JSON")
    ish.add_argument("--no-members", action="store_true", help="leave out the member pins")
    idf = views.add_parser("diff", help="which packages changed between two recorded versions")
    idf.add_argument("old", metavar="[group-NAME=]V1")
    idf.add_argument("new", metavar="[group-NAME=]V2")
    idf.add_argument("--arch", help="only this architecture (default: every one both have)")
    ims.set_defaults(func=cmd_images, images_command="list", group=None, json=False)

    def destination_options(parser, flags):
        parser.add_argument(*flags, dest="dest", metavar="DEST",
                            help="a directory, or s3://BUCKET/PREFIX (default: publish.to in repo/config.yaml)")
        parser.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS, or AWS_ENDPOINT_URL)")
        parser.add_argument("--lock-timeout", type=float, default=60,
                            help="seconds to wait for another publish to the destination to finish (default 60)")

    pb = sub.add_parser("publish", help="publish a recorded group version to a download server")
    pb.add_argument("spec", metavar="group-NAME=VERSION")
    destination_options(pb, ("--to", "--dest"))
    pb.add_argument("--arch", help="x86_64, x86 or all (default: every arch recorded for the version)")
    pb.add_argument("--format", help="only these formats, a comma list (default: every format recorded)")
    pb.add_argument("--channel", choices=("release", "nightly"), default="release",
                    help="release (kept until removed by hand) or nightly (pruned by --keep)")
    pb.add_argument("--no-current", action="store_true", help="publish without making it the current release")
    pb.add_argument("--keep", type=int, help="then delete all but the newest N nightlies (never a current one)")
    pb.add_argument("--key", help="OpenPGP key to sign SHA256SUMS with (default: publish.key, APPBUILD_SIGNING_KEY)")
    pb.add_argument("--gpg-home", help="GNUPGHOME holding the key (default: publish.gpg_home, APPBUILD_GPG_HOME)")
    pb.add_argument("--unsigned", action="store_true", help="publish without a signature")
    pb.set_defaults(func=cmd_publish)

    rb = sub.add_parser("rollback", help="make an earlier published release current again (no rebuild)")
    rb.add_argument("group", help="group-NAME")
    rb.add_argument("--to", dest="version", required=True, metavar="VERSION", help="the release to make current")
    destination_options(rb, ("--dest",))
    rb.add_argument("--arch", help="x86_64, x86 or all (default: every arch the release has)")
    rb.add_argument("--reason", help="why the current release is withdrawn (shown on the download page)")
    rb.set_defaults(func=cmd_rollback)

    sv = sub.add_parser("serve", help="serve a published directory over HTTP (for trying it; use nginx for real)")
    sv.add_argument("root", nargs="?", metavar="DIR", help="default: publish.to in repo/config.yaml")
    sv.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    sv.add_argument("--bind", default="127.0.0.1", help="address (default 127.0.0.1)")
    sv.set_defaults(func=cmd_serve)
    fs = sub.add_parser("fs", help="CernVM-FS-style repositories: keys, publishing, checks")
    fsc = fs.add_subparsers(dest="fs_command", metavar="keygen|publish|check", required=True)
    fk = fsc.add_parser("keygen", help="make a repository's Ed25519 key pair (NAME.key, NAME.pub)")
    fk.add_argument("--repo", required=True, metavar="NAME", help="the repository (e.g. sft.cern.ch)")
    fk.add_argument("-o", "--output", required=True, metavar="DIR", help="where NAME.key and NAME.pub go")
    fk.add_argument("--force", action="store_true", help="replace an existing key pair")
    fk.set_defaults(func=cmd_fs_keygen, no_workspace=True)
    fp = fsc.add_parser("publish", help="publish a directory tree as the next revision of a repository")
    fp.add_argument("source", metavar="DIR", help="the tree to publish")
    fp.add_argument("--repo", required=True, metavar="NAME", help="the repository (e.g. sft.cern.ch)")
    fp.add_argument("--to", required=True, metavar="OUT", help="the static HTTP tree; OUT/NAME is the repository")
    fp.add_argument("--key", metavar="FILE", help="the repository's private key (default: KEYS/NAME.key)")
    fp.add_argument("--keys", metavar="DIR", default="/etc/cvmfs/keys",
                    help="where NAME.key is kept (default /etc/cvmfs/keys, as on a CernVM-FS server)")
    fp.add_argument("--rehash", action="store_true", help="read every file again, even those that look unchanged")
    fp.add_argument("--ttl", type=int, default=240, help="seconds clients may keep the manifest (default 240)")
    fp.add_argument("-j", "--jobs", type=int, help="files compressed at once (default: the CPUs, up to 8)")
    fp.set_defaults(func=cmd_fs_publish, no_workspace=True)
    fch = fsc.add_parser("check", help="verify a published repository as a client would")
    fch.add_argument("repository", metavar="OUT/NAME", help="the repository directory")
    fch.add_argument("--pub", nargs="+", required=True, metavar="FILE", help="the public key(s) to trust")
    fch.add_argument("--quick", action="store_true", help="check that objects exist without reading them")
    fch.set_defaults(func=cmd_fs_check, no_workspace=True)

    cx = sub.add_parser("context", help="contextualization: config drives holding user data")
    cxc = cx.add_subparsers(dest="context_command", metavar="make", required=True)
    cm = cxc.add_parser("make", help="a config drive (ISO 9660 or FAT, labelled cidata) with user-data")
    cm.add_argument("user_data", metavar="USER-DATA.ini", help="EC2-style user data with a [cernvm] section")
    cm.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.iso (ISO 9660) or FILE.img (FAT)")
    cm.add_argument("--add", nargs="+", default=[], metavar="FILE", help="more files for the drive (scripts)")
    cm.add_argument("--format", choices=("iso", "fat"), help="default: from the output's suffix")
    cm.add_argument("--label", default="cidata", help="the volume label (default cidata)")
    cm.set_defaults(func=cmd_context_make, no_workspace=True)
    return p


def _images_argv(argv: list[str]) -> list[str]:
    """``appbuild images [group-NAME]`` means ``appbuild images list [group-NAME]``."""
    if argv and argv[0] == "images" and (len(argv) == 1 or argv[1] not in ("list", "show", "diff", "-h", "--help")):
        return ["images", "list", *argv[1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    ui = Console()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_image_parser() if argv and argv[0].startswith("group-") else build_parser()
    args = parser.parse_args(_images_argv(argv))
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
