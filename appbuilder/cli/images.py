"""``appbuild group-NAME | inspect | upload | images | publish | rollback | serve``: images and releases."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appbuilder.cli.common import arches, open_repo
from appbuilder.core.arch import DEFAULT_ARCH
from appbuilder.core.cpus import usable_cpus
from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import Settings, add_flags
from appbuilder.core.ui import Console


def cmd_build_image(args, settings: Settings, ui: Console) -> int:
    from appbuilder.store.build import BuildRequest, build_images, parse_size

    req = BuildRequest(
        group=args.group, arches=[a.name for a in arches(args.arch)], formats=args.format,
        version=args.version, output=Path(args.output).resolve() if args.output else None, force=args.force,
        size=parse_size(args.size) if args.size else None, jobs=args.jobs, cook=not args.no_cook, boot=args.boot,
    )
    settings = settings.with_flags(args)
    repo = open_repo(settings)
    from appbuilder.cluster.connect import configured

    if configured(settings):  # --cluster: each (format, arch) a task on the cluster
        return _build_on_cluster(req, settings, repo, ui)
    for image in build_images(settings, repo, req, say=ui.info):
        ui.success(f"{image.group}: {image.directory}")
        for fmt, paths in sorted(image.files.items()):
            for path in paths:
                ui.out(f"  {fmt:12} {path.name}  ({path.stat().st_size / (1 << 20):.1f} MiB)")
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in image.seconds.items())
        ui.info(f"  kernel {image.kernel}; installed size {image.installed_size / (1 << 20):.1f} MiB; {steps}")
    return 0


def _build_on_cluster(req, settings: Settings, repo, ui: Console) -> int:
    from appbuilder.cluster import schedule
    from appbuilder.cluster.connect import connect
    from appbuilder.cook.uptodate import Progress

    if req.output is not None:
        raise AppbuildError("--output and --cluster do not go together: images built on the cluster go into the "
                            "image store (copy them from there)")
    with connect(settings) as cluster:
        ui.note(f"building on the cluster at {cluster.address} ({cluster.workers()} workers)")
        export = schedule.Export(settings, repo, cluster)
        try:
            if req.cook and req.version is None and settings.recipes_dir.is_dir():
                def report(res):
                    if not res.skipped:
                        ui.info(f"cooked {res.nvf} in {res.seconds:.1f} s")

                schedule.bring_up_to_date(settings, repo, cluster, arches(",".join(req.arches)),
                                          Progress(say=ui.info, cooked=report, warn=ui.warn), export=export)
            placed = schedule.build_on_cluster(settings, repo, cluster, req.group, req.arches, req.formats,
                                               version=req.version, size=req.size, jobs=req.jobs, force=req.force,
                                               boot=req.boot, say=ui.info, export=export)
        finally:
            export.close()
    by_directory: dict = {}
    for image in placed:  # one entry per (format, arch): shown per directory, as a local build shows them
        by_directory.setdefault(image.directory, []).append(image)
    for directory, images in by_directory.items():
        ui.success(f"{images[-1].manifest.trove}: {directory}")
        files = {fmt: paths for image in images for fmt, paths in image.files.items()}
        for fmt, paths in sorted(files.items()):
            for path in paths:
                ui.out(f"  {fmt:12} {path.name}  ({path.stat().st_size / (1 << 20):.1f} MiB)")
    return 0


def _format_names() -> str:
    """The formats ``--format`` takes: the packaged ones and the workspace's ``formats/``."""
    from appbuilder.core.settings import load_settings
    from appbuilder.formats.specs import load_formats

    try:
        return ", ".join(load_formats(load_settings().formats_dir))
    except AppbuildError:  # no workspace here, or its formats/ is broken (building says how)
        return ", ".join(load_formats())


def build_image_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appbuild group-NAME", description=(
        "Build the images of an image group: cook what changed, resolve the group (or take a pinned "
        "--version), assemble a bootable disk and write it in the requested formats."))
    p.add_argument("group", help="group-NAME (groups/group-NAME.py)")
    p.add_argument("--format", default="raw", help=f"{_format_names()}, a comma list, or all (default raw)")
    p.add_argument("--arch", default=DEFAULT_ARCH, help=f"x86_64, x86 or all (default {DEFAULT_ARCH})")
    p.add_argument("--version", help="rebuild this recorded group version from its pins")
    p.add_argument("--output", help="write into this directory instead of the image store")
    p.add_argument("--force", action="store_true", help="replace images that already exist")
    p.add_argument("--size", help="disk size (e.g. 512M, 2G); default: what the closure needs plus headroom")
    p.add_argument("-j", "--jobs", type=int, default=usable_cpus(), help="parallel conversions")
    p.add_argument("--no-cook", action="store_true", help="do not cook changed recipes first")
    p.add_argument("--boot", choices=("disk", "network"), default="disk",
                   help="disk: the OS on the image (default); network: a small image (kernel, initramfs with the "
                        "file system client, an empty data partition) that boots the group version's OS from its fs "
                        "repository (appbuild fs publish-group)")
    add_flags(p, "group")  # where a network-booting image takes its OS from
    p.set_defaults(func=cmd_build_image)
    return p


def cmd_inspect(args, settings: Settings | None, ui: Console) -> int:
    import json

    from appbuilder.verify.inspect import inspect_images, report_lines

    reports = inspect_images([Path(p) for p in args.images])
    if args.inventory:  # exactly what `appliance query` prints in the guest
        for report in reports:
            if report.inventory is None:
                if report.root is None:
                    raise AppbuildError(f"{report.path}: no appbuild root file system in it ({report.format}, "
                                        f"{len(report.partitions)} partitions): not an appbuild image")
                raise AppbuildError(f"{report.path}: no inventory in the image (built before appbuild wrote one?)")
            for line in report.inventory:
                ui.out(line)
        return 0
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
    from appbuilder.cloud.ami import endpoint_from_env, load_image, upload_ami

    endpoint = endpoint_from_env(args.region, args.endpoint, args.s3_endpoint, args.ebs_endpoint,
                                 args.access_key, args.secret_key)
    result = upload_ami(
        load_image(Path(args.image)), endpoint, bucket=args.bucket, method=args.method, key=args.key,
        name=args.name, role_name=args.role_name, create_bucket=args.create_bucket, keep_object=args.keep_object,
        timeout=args.timeout, poll=args.poll, jobs=args.jobs, progress=ui.note,
    )
    ui.out(result.image_id)
    return 0


def _destination(settings: Settings) -> str:
    dest = settings.get("publish.to")
    if not dest:
        raise AppbuildError("say where: --to DIR or s3://BUCKET/PREFIX (or publish.to in repo/config.yaml, "
                            "or APPBUILD_PUBLISH_TO)")
    return str(dest)


def cmd_images(args, settings: Settings, ui: Console) -> int:
    import json

    from appbuilder.store import catalog
    from appbuilder.store.images import ImageStore

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
    from appbuilder.release.publish import PublishRequest, parse_spec, publish
    from appbuilder.release.signing import require_signer
    from appbuilder.store.images import ImageStore

    group, version = parse_spec(args.spec)
    settings = settings.with_flags(args)
    signer = require_signer(settings, unsigned=args.unsigned)
    req = PublishRequest(
        group=group, version=version, destination=_destination(settings),
        arches=[a.name for a in arches(args.arch)] if args.arch else None,
        formats=args.format.split(",") if args.format else None, channel=args.channel,
        make_current=not args.no_current, keep=args.keep, endpoint_url=settings.get("publish.endpoint_url"),
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
    from appbuilder.release.publish import rollback

    settings = settings.with_flags(args)
    before, now = rollback(_destination(settings), args.group, args.version,
                           arches=[a.name for a in arches(args.arch)] if args.arch else None, reason=args.reason,
                           endpoint_url=settings.get("publish.endpoint_url"), lock_timeout=args.lock_timeout)
    for arch, previous in sorted(before.items()):
        if previous == now[arch]:
            ui.info(f"{args.group} ({arch}): {previous} is already current")
        else:
            ui.success(f"{args.group} ({arch}): current is now {now[arch]}"
                       + (f"; {previous} is withdrawn" if previous else ""))
    return 0


def cmd_serve(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.release.serve import serve

    root = args.root if args.root is not None else settings.get("publish.to") if settings else None
    if not root or str(root).startswith("s3://"):
        raise AppbuildError("serve a published directory: appbuild serve DIR")
    serve(Path(root), args.port, args.bind, say=lambda m: (ui.out(m), sys.stdout.flush()))
    return 0


def register(sub) -> None:
    """Add this area's subcommands to the ``appbuild`` parser."""
    ins = sub.add_parser("inspect",
                         help="list what images hold: format, partitions, filesystems, kernel, troves, inventory")
    ins.add_argument("images", nargs="+", metavar="IMAGE", help="raw, qcow2, vmdk, vhd or ova files")
    ins.add_argument("--json", action="store_true", help="print the reports as JSON")
    ins.add_argument("--inventory", action="store_true",
                     help="print only the image's inventory (packages, versions, sources, licenses), as "
                          "'appliance query' does in the guest")
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

    def destination_options(parser, command):
        add_flags(parser, command)  # the destination, its endpoint (and, for publish, the signing key)
        parser.add_argument("--lock-timeout", type=float, default=60,
                            help="seconds to wait for another publish to the destination to finish (default 60)")

    pb = sub.add_parser("publish", help="publish a recorded group version to a download server")
    pb.add_argument("spec", metavar="group-NAME=VERSION")
    destination_options(pb, "publish")
    pb.add_argument("--arch", help="x86_64, x86 or all (default: every arch recorded for the version)")
    pb.add_argument("--format", help="only these formats, a comma list (default: every format recorded)")
    pb.add_argument("--channel", choices=("release", "nightly"), default="release",
                    help="release (kept until removed by hand) or nightly (pruned by --keep)")
    pb.add_argument("--no-current", action="store_true", help="publish without making it the current release")
    pb.add_argument("--keep", type=int, help="then delete all but the newest N nightlies (never a current one)")
    pb.add_argument("--unsigned", action="store_true", help="publish without a signature")
    pb.set_defaults(func=cmd_publish)

    rb = sub.add_parser("rollback", help="make an earlier published release current again (no rebuild)")
    rb.add_argument("group", help="group-NAME")
    rb.add_argument("--to", dest="version", required=True, metavar="VERSION", help="the release to make current")
    destination_options(rb, "rollback")
    rb.add_argument("--arch", help="x86_64, x86 or all (default: every arch the release has)")
    rb.add_argument("--reason", help="why the current release is withdrawn (shown on the download page)")
    rb.set_defaults(func=cmd_rollback)

    sv = sub.add_parser("serve", help="serve a published directory over HTTP (for trying it; use nginx for real)")
    sv.add_argument("root", nargs="?", metavar="DIR", help="default: publish.to in repo/config.yaml")
    sv.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    sv.add_argument("--bind", default="127.0.0.1", help="address (default 127.0.0.1)")
    sv.set_defaults(func=cmd_serve)
