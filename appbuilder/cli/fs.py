"""``appbuild fs | context``: CernVM-FS-style repositories and contextualization drives."""

from __future__ import annotations

from pathlib import Path

from appbuilder.core.arch import DEFAULT_ARCH
from appbuilder.core.settings import Settings, add_flags
from appbuilder.core.ui import Console


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
                     jobs=args.jobs, progress=ui.note, tag=args.tag, valid_days=args.valid_days)
    for path in report.skipped:
        ui.warn(f"not published (a socket): {path}")
    ui.success(report.summary())
    return 0


def cmd_fs_publish_group(args, settings: Settings, ui: Console) -> int:
    from appbuilder.cli.common import arches, open_repo
    from appbuilder.fs.group import publish_group

    settings = settings.with_flags(args)
    group, _, version = args.group.partition("=")
    repo = open_repo(settings)
    for arch in arches(args.arch):
        done = publish_group(settings, repo, group, arch.name, Path(args.to), version=version or None,
                             key=Path(args.key) if args.key else None, valid_days=args.valid_days, progress=ui.note)
        ui.success(f"{done.group} -> {Path(args.to) / done.repository} tag {done.tag}: {done.report.summary()}")
    return 0


def cmd_fs_resign(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.fs.publish import resign

    key = Path(args.key) if args.key else Path(args.keys) / f"{args.repo}.key"
    report = resign(args.repo, Path(args.to), key, valid_days=args.valid_days, trust=[Path(p) for p in args.trust])
    ui.success(report.summary())
    return 0


def cmd_fs_tags(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.core.errors import AppbuildError
    from appbuilder.fs import keys
    from appbuilder.fs import tags as tags_mod
    from appbuilder.fs.manifest import utc

    path = Path(args.to) / args.repo / tags_mod.TAGS_NAME
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AppbuildError(f"no tag list {path}: {exc.strerror} ('appbuild fs publish' writes one)") from None
    if args.pub:
        taglist = tags_mod.verify(data, [keys.load_public(Path(p)) for p in args.pub], args.repo)
        trust = f"signature good (key {taglist.key_id})"
    else:
        taglist = tags_mod.parse(data)
        trust = f"key {taglist.key_id}, signature not checked (--pub checks it)"
    ui.info(f"# {taglist.repository}: tag list revision {taglist.revision}, signed {utc(taglist.timestamp)}, "
            f"expires {utc(taglist.expires)}; {trust}")
    if not taglist.tags:
        ui.info("# no tags")
        return 0
    width = max(len("NAME"), *(len(t.name) for t in taglist.tags))
    ui.out(f"{'NAME':{width}}  {'REVISION':>8}  {'CATALOG':64}  TAGGED")
    for t in taglist.tags:
        ui.out(f"{t.name:{width}}  {t.revision:>8}  {t.catalog}  {utc(t.timestamp)}")
    return 0


def cmd_fs_gc(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.fs.gc import gc

    report = gc(args.repo, Path(args.to), dry_run=args.dry_run)
    for path in report.unknown:
        ui.warn(f"left alone (not an object): {path}")
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
               f"{len(report.tags.tags)} tags; revisions {', '.join(map(str, report.revisions))} checked, "
               f"{report.objects} objects; signatures, expiry and hashes good")
    return 0


def cmd_context_make(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.context.drive import make_config_drive

    drive = make_config_drive(Path(args.user_data), Path(args.output), extra=[Path(p) for p in args.add],
                              fmt=args.format, label=args.label)
    for problem in drive.problems:
        ui.warn(f"{args.user_data}: {problem} (the appliance will report and skip it)")
    ui.success(f"wrote {drive.path} ({drive.format}, label {drive.label}, {drive.size} bytes): {', '.join(drive.files)}")
    return 0


def register(sub) -> None:
    """Add this area's subcommands to the ``appbuild`` parser."""
    fs = sub.add_parser("fs", help="CernVM-FS-style repositories: keys, publishing, tags, checks")
    fsc = fs.add_subparsers(dest="fs_command", metavar="keygen|publish|publish-group|resign|tags|gc|check", required=True)
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
    fp.add_argument("--tag", metavar="NAME", help="name the revision in the tag list (a tag never changes)")
    fp.add_argument("--valid-days", type=int, default=30, metavar="N",
                    help="days until manifest and tag list expire (default 30; 'appbuild fs resign' renews them)")
    fp.set_defaults(func=cmd_fs_publish, no_workspace=True)
    fpg = fsc.add_parser("publish-group", help="publish a group version's OS (its image's root tree) as a tagged "
                                               "revision, for network-booting images")
    fpg.add_argument("group", metavar="group-NAME[=VERSION]", help="the image group (default: its newest version)")
    fpg.add_argument("--to", required=True, metavar="OUT", help="the static HTTP tree; OUT/NAME is the repository")
    fpg.add_argument("--arch", default=DEFAULT_ARCH, help=f"x86_64, x86 or all (default {DEFAULT_ARCH})")
    fpg.add_argument("--key", metavar="FILE", help="the repository's private key (default: the os.keys directory's "
                                                   "NAME.key)")
    fpg.add_argument("--valid-days", type=int, default=30, metavar="N",
                     help="days until the manifest and tag list expire (default 30)")
    add_flags(fpg, "publish-group")  # --repo, --keys
    fpg.set_defaults(func=cmd_fs_publish_group)
    fr = fsc.add_parser("resign", help="sign the current revision and the tag list again, with a new expiry")
    fr.add_argument("--repo", required=True, metavar="NAME", help="the repository (e.g. sft.cern.ch)")
    fr.add_argument("--to", required=True, metavar="OUT", help="the static HTTP tree; OUT/NAME is the repository")
    fr.add_argument("--key", metavar="FILE", help="the repository's private key (default: KEYS/NAME.key)")
    fr.add_argument("--keys", metavar="DIR", default="/etc/cvmfs/keys",
                    help="where NAME.key is kept (default /etc/cvmfs/keys)")
    fr.add_argument("--valid-days", type=int, default=30, metavar="N", help="days until they expire (default 30)")
    fr.add_argument("--trust", nargs="+", default=[], metavar="FILE",
                    help="public keys whose signatures are accepted too (the old key, after a change of key)")
    fr.set_defaults(func=cmd_fs_resign, no_workspace=True)
    ft = fsc.add_parser("tags", help="list a repository's tags (name, revision, catalog, time)")
    ft.add_argument("--repo", required=True, metavar="NAME", help="the repository (e.g. sft.cern.ch)")
    ft.add_argument("--to", required=True, metavar="OUT", help="the static HTTP tree; OUT/NAME is the repository")
    ft.add_argument("--pub", nargs="+", metavar="FILE", help="check the signature and expiry with these public keys")
    ft.set_defaults(func=cmd_fs_tags, no_workspace=True)
    fg = fsc.add_parser("gc", help="delete objects that neither the current nor a tagged revision needs")
    fg.add_argument("--repo", required=True, metavar="NAME", help="the repository (e.g. sft.cern.ch)")
    fg.add_argument("--to", required=True, metavar="OUT", help="the static HTTP tree; OUT/NAME is the repository")
    fg.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    fg.set_defaults(func=cmd_fs_gc, no_workspace=True)
    fch = fsc.add_parser("check", help="verify a published repository (every tagged revision too) as a client would")
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
