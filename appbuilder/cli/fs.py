"""``appbuild fs | context``: CernVM-FS-style repositories and contextualization drives."""

from __future__ import annotations

from pathlib import Path

from appbuilder.core.settings import Settings
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


def register(sub) -> None:
    """Add this area's subcommands to the ``appbuild`` parser."""
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
