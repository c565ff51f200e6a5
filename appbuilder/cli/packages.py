"""``appbuild cook | query | show | q | rq | diff | verify | explain | import | gc``: recipes, packages, capsules."""

from __future__ import annotations

import contextlib

from appbuilder.cli.common import arches, open_repo
from appbuilder.core.arch import DEFAULT_ARCH, get_arch
from appbuilder.core.settings import Settings, add_flags
from appbuilder.core.ui import Console


def cmd_cook(args, settings: Settings, ui: Console) -> int:
    from appbuilder.cluster.connect import PendingCluster, configured
    from appbuilder.cook.uptodate import Progress, bring_up_to_date
    from appbuilder.recipe.loader import find_recipes

    settings = settings.with_flags(args)  # --flavor
    # --cluster / cluster: in repo/config.yaml: each cook a task on the cluster, which this
    # connects to while the recipes are read and the toolchain is resolved
    pending = PendingCluster(settings, on_connect=lambda c: ui.note(
        f"cooking on the cluster at {c.address} ({c.workers()} workers)")) if configured(settings) else None
    try:
        recipes = [r for path in args.paths for r in find_recipes(path)]
    except BaseException:
        if pending is not None:
            with contextlib.suppress(Exception):
                pending.close()
        raise

    def report(res):
        if res.skipped:
            ui.info(f"{res.name} ({res.arch}) is up to date: {res.nvf}")
        else:
            ui.success(f"cooked {res.nvf} in {res.seconds:.2f} s  [{', '.join(c.split(':')[1] for c in res.components)}]")
            for m in [*res.missing_build_requires, *res.warnings]:
                ui.warn(f"{res.name}: {m}")

    progress = Progress(say=ui.note, cooked=report, warn=ui.warn, echo=ui.build_output if args.verbose else None)
    if pending is not None:
        from appbuilder.cluster import schedule

        with pending as cluster:
            schedule.bring_up_to_date(settings, open_repo(settings), cluster, arches(args.arch), progress,
                                      recipes=recipes, force=args.force)
        return 0
    bring_up_to_date(settings, open_repo(settings), arches(args.arch), progress, recipes=recipes, jobs=args.jobs,
                     force=args.force, keep_work=args.keep_work)
    return 0


def cmd_query(args, settings: Settings, ui: Console) -> int:
    from appbuilder.repository.display import query_lines

    lines = query_lines(open_repo(settings), args.name)
    if not lines:
        ui.note(f"no troves named {args.name}" if args.name else "the repository is empty")
        return 1 if args.name else 0
    for line in lines:
        ui.out(line)
    return 0


def cmd_show(args, settings: Settings, ui: Console) -> int:
    from appbuilder.repository.display import show_lines
    from appbuilder.repository.verify import check_trove
    from appbuilder.repository.versions import TroveSpec

    repo = open_repo(settings)
    spec = TroveSpec.parse(args.spec)
    # without an explicit flavor, prefer the default architecture's build
    arch = args.arch or (DEFAULT_ARCH if spec.flavor is None and repo.find(spec, arch=DEFAULT_ARCH) else None)
    nvf = repo.find_one(spec, arch=arch)
    check = check_trove(repo, nvf) if args.verify else None
    for line in show_lines(repo, nvf, files=args.files or args.verify, deps=args.deps, check=check):
        ui.out(line)
    return 1 if check and check.damaged else 0


def _query_view(args):
    from appbuilder.repository.conaryquery import View

    return View(info=args.info, troves=args.troves, ls=args.ls, lsl=args.lsl, deps=args.deps,
                full_versions=args.full_versions, flavors=args.flavors)


def _print_query(query, args, ui: Console, where: str) -> int:
    view = _query_view(args)
    for nvf in query.select(args.specs, args.path or [], where):
        for line in query.lines(nvf, view):
            ui.out(line)
    return 0


def cmd_rq(args, settings: Settings, ui: Console) -> int:
    """conary's ``rq``: the repository."""
    from appbuilder.repository.conaryquery import Query

    query = Query(open_repo(settings), arch=args.arch and get_arch(args.arch).name, all_versions=args.all_versions)
    return _print_query(query, args, ui, "the repository")


def cmd_q(args, settings: Settings, ui: Console) -> int:
    """conary's ``q``: the system a group version makes (see appbuilder.store.installed)."""
    from appbuilder.repository.conaryquery import Query
    from appbuilder.store.images import ImageStore
    from appbuilder.store.installed import installed_system

    repo = open_repo(settings)
    arch = args.arch and get_arch(args.arch).name
    system = installed_system(repo, ImageStore(settings.images), args.group, arch, DEFAULT_ARCH)
    ui.note(f"querying {system.group}: {system.why}")
    return _print_query(Query(repo, within=system.members), args, ui, str(system.group))


def cmd_diff(args, settings: Settings, ui: Console) -> int:
    """``cvc diff``: a recipe directory against the one its last cook was made from."""
    from appbuilder.cook.recipetext import diff_lines
    from appbuilder.core.errors import AppbuildError
    from appbuilder.recipe.loader import find_recipes

    found = find_recipes(args.recipe)
    if len(found) != 1:
        raise AppbuildError(f"appbuild diff takes one recipe (recipes/NAME); {args.recipe} holds {len(found)}")
    nvf, lines = diff_lines(open_repo(settings), found[0], args.arch and get_arch(args.arch).name)
    if not lines:
        ui.note(f"{args.recipe} is the recipe {nvf} was cooked from: no changes")
    else:
        ui.note(f"{args.recipe} (b/) against the recipe {nvf} was cooked from (a/):")
    for line in lines:
        ui.out(line)
    return 0


def _query_flags(p, arch_help: str) -> None:
    p.add_argument("specs", nargs="*", metavar="NAME[=VERSION][[FLAVOR]]", help="troves to show (default: all)")
    p.add_argument("--info", action="store_true", help="name, version, label, flavor, size, build time, source")
    p.add_argument("--troves", action="store_true", help="the troves inside (a package's components)")
    p.add_argument("--ls", action="store_true", help="the paths of the files")
    p.add_argument("--lsl", action="store_true", help="the files, as ls -l lists them")
    p.add_argument("--deps", action="store_true", help="what each provides and requires")
    p.add_argument("--path", action="append", metavar="FILE", help="the troves holding FILE (may be repeated)")
    p.add_argument("--full-versions", action="store_true", help="versions with their label")
    p.add_argument("--flavors", action="store_true", help="show each trove's flavor")
    p.add_argument("--arch", help=arch_help)


def cmd_verify(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.core.errors import AppbuildError
    from appbuilder.core.settings import load_settings
    from appbuilder.repository.verify import report_lines, summary, verify_repository

    if args.target:
        return _verify_release(args, ui)
    if args.rebuild or args.allow_unsigned or args.verify_keyring:
        raise AppbuildError("--rebuild, --keyring and --allow-unsigned check a published release: "
                            "appbuild verify RELEASE_DIR|URL")
    settings = settings or load_settings()
    report = verify_repository(settings.repository, jobs=args.jobs)
    for line in report_lines(report):
        ui.out(line)
    (ui.success if report.ok else ui.error)(summary(report))
    return 0 if report.ok else 1


def _verify_release(args, ui: Console) -> int:
    """``appbuild verify RELEASE_DIR|URL``: one line per check, exit status 1 when any fails."""
    from contextlib import nullcontext

    from appbuilder.core.errors import AppbuildError
    from appbuilder.core.settings import from_environment, load_settings
    from appbuilder.release.signing import open_keyring
    from appbuilder.verify.release import locate, rebuild_with, verify_release

    settings = None
    try:  # a downloader needs no workspace; --rebuild does (its repository holds the pins)
        settings = load_settings().with_flags(args)
    except AppbuildError:
        if args.rebuild:
            raise
    keyring = settings.get("verify.keyring") if settings else args.verify_keyring or from_environment("verify.keyring")
    sources = locate(args.target)
    failed = []
    with open_keyring(keyring) if keyring else nullcontext(None) as trusted:
        rebuild = rebuild_with(settings, say=ui.note) if args.rebuild else None
        for source in sources:
            ui.out(f"verifying {source.where}")
            report = verify_release(source, trusted, allow_unsigned=args.allow_unsigned, rebuild=rebuild,
                                    scratch_root=settings.cache if settings and settings.cache.is_dir() else None,
                                    show=lambda check: ui.out(check.line()))
            if report.ok:
                ui.success(f"{report.title or source.where}: verified")
            else:
                failed.append(report)
    for report in failed:
        ui.error(f"{report.title or 'the release'} at {report.where} failed verification: "
                 + "; ".join(f"{c.name}: {c.message}" for c in report.failed))
    return 1 if failed else 0


def cmd_explain(args, settings: Settings | None, ui: Console) -> int:
    from appbuilder.recipe.explain import explain, list_actions

    ui.out(explain(args.action) if args.action else list_actions())
    return 0


def cmd_import(args, settings: Settings, ui: Console) -> int:
    from appbuilder.capsule.importer import UNCHANGED, import_command

    results = import_command(
        settings, open_repo(settings), args.kind, args.packages, repo_location=getattr(args, "repo", None),
        only=getattr(args, "only", None), arch=getattr(args, "arch", None), label=args.label,
        allow_missing=getattr(args, "allow_missing", False), with_depends=getattr(args, "with_depends", False),
        warn=ui.warn,
    )
    for result in results:
        (ui.info if result.status == UNCHANGED else ui.success)(str(result))
    return 0


def cmd_import_upstream(args, settings: Settings, ui: Console) -> int:
    from appbuilder.capsule.importer import UNCHANGED, import_upstream

    results = import_upstream(settings, open_repo(settings), warn=ui.warn)
    for result in results:
        (ui.info if result.status == UNCHANGED else ui.success)(str(result))
    new = sum(r.status != UNCHANGED for r in results)
    ui.note(f"{len(results)} upstream packages: {new} imported, {len(results) - new} already current")
    return 0


def cmd_gc(args, settings: Settings, ui: Console) -> int:
    count, size = open_repo(settings).gc(grace_seconds=args.grace)
    ui.success(f"removed {count} unreferenced objects ({size} bytes)")
    return 0


def register(sub) -> None:
    """Add this area's subcommands to the ``appbuild`` parser."""
    c = sub.add_parser("cook", help="build recipes into versioned packages")
    c.add_argument("paths", nargs="+", help="recipes/NAME, or recipes/ for all")
    c.add_argument("--arch", default=DEFAULT_ARCH, help=f"x86_64, x86 or all (default {DEFAULT_ARCH})")
    c.add_argument("--force", action="store_true", help="rebuild even if nothing changed (bumps the build count)")
    c.add_argument("-j", "--jobs", type=int, default=1, help="cook up to N recipes at once")
    c.add_argument("-v", "--verbose", action="store_true", help="show the build output")
    c.add_argument("--keep-work", action="store_true", help="keep the work directory (for debugging)")
    add_flags(c, "cook")  # --flavor
    c.set_defaults(func=cmd_cook)

    q = sub.add_parser("query", help="list troves, or the versions of one")
    q.add_argument("name", nargs="?")
    q.set_defaults(func=cmd_query)

    s = sub.add_parser("show", help="show one trove")
    s.add_argument("spec", help="NAME[=VERSION][[is: ARCH]]")
    s.add_argument("--files", action="store_true", help="list files")
    s.add_argument("--deps", action="store_true", help="list provides and requires")
    s.add_argument("--arch", help="prefer this architecture")
    s.add_argument("--verify", action="store_true",
                   help="check every file's stored content and mark damaged ones (implies --files; exit status 1 "
                        "when any is damaged)")
    s.set_defaults(func=cmd_show)

    rq = sub.add_parser("rq", help="conary's repository query: troves, --info, --ls/--lsl, --deps, --troves, --path",
                        description="Query the repository as conary's rq did: NAME, NAME=VERSION, NAME[FLAVOR]; "
                                    "the newest version of each flavor unless --all-versions.")
    _query_flags(rq, "only troves for this architecture (x86_64 or x86)")
    rq.add_argument("--all-versions", action="store_true", help="every version, not the newest of each flavor")
    rq.set_defaults(func=cmd_rq)

    q = sub.add_parser("q", help="conary's query of the installed system: a group version's closure",
                       description="Query what a system holds, as conary's q did. The system is a group version's "
                                   "closure: --group group-NAME[=VERSION], or else the group version of the image "
                                   "built last in the image store.")
    _query_flags(q, f"the system's architecture (default: the image's, or {DEFAULT_ARCH} with --group)")
    q.add_argument("--group", metavar="group-NAME[=VERSION]",
                   help="the group version to query (default: the one of the image built last)")
    q.set_defaults(func=cmd_q, all_versions=False)

    d = sub.add_parser("diff", help="a recipe against the one its last cooked package was cooked from (cvc diff)")
    d.add_argument("recipe", metavar="recipes/NAME")
    d.add_argument("--arch", help="compare with the last cook for this architecture (default: the last cook)")
    d.set_defaults(func=cmd_diff)

    v = sub.add_parser("verify", help="check the repository (index, every stored object), or a published release",
                       description="appbuild verify: this workspace's repository. appbuild verify RELEASE_DIR|URL: "
                                   "a published release (GROUP/VERSION[/ARCH]): the signature of SHA256SUMS, every "
                                   "checksum, the SBOMs against the manifest's pins, the signed provenance; with "
                                   "--rebuild, a rebuild from the pins compared byte for byte.")
    v.add_argument("target", nargs="?", metavar="RELEASE_DIR|URL",
                   help="a published release to check (default: this workspace's repository)")
    v.add_argument("-j", "--jobs", type=int, help="check on N threads (default: every core)")
    add_flags(v, "verify")
    v.add_argument("--rebuild", action="store_true",
                   help="also rebuild the release's images from their recorded pins (in a scratch directory) and "
                        "compare the bytes")
    v.add_argument("--allow-unsigned", action="store_true",
                   help="accept a release published --unsigned (its signatures are reported as skipped)")
    v.set_defaults(func=cmd_verify, no_workspace=True)

    e = sub.add_parser("explain", help="document a recipe action or policy")
    e.add_argument("action", nargs="?")
    e.set_defaults(func=cmd_explain, no_workspace=True)
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
