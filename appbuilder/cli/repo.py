"""``appbuild repo export | serve | keygen``: the repository shared over HTTP."""

from __future__ import annotations

import sys
from pathlib import Path

from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import Settings, add_flags
from appbuilder.core.ui import Console


def _dest(settings: Settings) -> str:
    dest = str(settings.get("repository.export_to"))
    if "://" in dest or Path(dest).is_absolute():
        return dest
    return str(settings.workspace / dest)


def cmd_repo_export(args, settings: Settings, ui: Console) -> int:
    from appbuilder.cli.common import open_repo
    from appbuilder.repository.export import export_repository
    from appbuilder.repository.keys import signer_from

    settings = settings.with_flags(args)
    result = export_repository(open_repo(settings), _dest(settings), signer=signer_from(settings),
                               endpoint_url=args.endpoint_url, jobs=args.jobs)
    ui.success(result.summary())
    return 0


def cmd_repo_serve(args, settings: Settings, ui: Console) -> int:
    from appbuilder.cli.common import open_repo
    from appbuilder.repository.keys import signer_from
    from appbuilder.repository.serve import RepositoryServer

    tree = Path(args.dir) if args.dir else Path(_dest(settings))
    if str(tree).startswith("s3://"):
        raise AppbuildError(f"repository.export_to is {tree}: `repo serve` serves a directory; give one with --dir "
                            f"(or let the bucket serve the tree)")
    server = RepositoryServer(open_repo(settings), tree, bind=args.bind, port=args.port,
                              signer=signer_from(settings), log=args.verbose)
    try:
        server.ready()
    except BaseException:
        server.close()
        raise
    ui.out(f"{server.last.summary()}")
    ui.out(f"serving the repository at {server.url} (kept current; Ctrl-C to stop)")
    sys.stdout.flush()
    server.serve_forever()
    return 0


def cmd_repo_keygen(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.repository.keys import generate

    private, public, key_id = generate(Path(args.output), args.name, force=args.force)
    ui.success(f"key {key_id}: {private} (private: repository.signing_key where snapshots or changesets are "
               f"signed), {public} (public: repository.trusted_keys of the readers)")
    return 0


def register(sub) -> None:
    """Add this area's subcommands to the ``appbuild`` parser."""
    r = sub.add_parser("repo", help="share the repository: export it as a static tree, serve it over HTTP",
                       description="The repository as a static tree (objects by hash and a signed, versioned index "
                                   "snapshot) that cluster workers and other machines read over HTTP.")
    rs = r.add_subparsers(dest="repo_command", metavar="export|serve|keygen", required=True)

    e = rs.add_parser("export", help="write (or bring up to date) the repository's static tree: DIR or s3://...")
    add_flags(e, "repo export")  # --to
    e.add_argument("--endpoint-url", metavar="URL", help="S3-compatible endpoint (default: AWS, or AWS_ENDPOINT_URL)")
    e.add_argument("-j", "--jobs", type=int, default=4, help="copy or upload N objects at once (default 4)")
    e.set_defaults(func=cmd_repo_export)

    s = rs.add_parser("serve", help="serve the repository over HTTP (exporting first, and again when it changes)")
    s.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8700, help="port (default 8700; 0 picks a free one)")
    s.add_argument("--dir", help="the export tree to keep and serve (default: repository.export_to)")
    s.add_argument("-v", "--verbose", action="store_true", help="log every request")
    s.set_defaults(func=cmd_repo_serve)

    k = rs.add_parser("keygen", help="make an Ed25519 key pair that signs snapshots and changesets")
    k.add_argument("-o", "--output", default="keys", help="directory for NAME.key and NAME.pub (default keys)")
    k.add_argument("--name", default="repository", help="file name of the pair (default repository)")
    k.add_argument("--force", action="store_true", help="replace an existing pair")
    k.set_defaults(func=cmd_repo_keygen, no_workspace=True)
