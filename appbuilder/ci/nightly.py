"""The nightly pipeline: ``ci/nightly`` runs ``python -m appbuilder.ci.nightly``.

Stages, each timed, each allowed to fail without hiding what the others found:

1. **import**: ``appbuild import upstream`` (new upstream kernels and packages; a no-op
   when nothing changed);
2. **cook**: every recipe whose inputs changed, for every arch of the matrix;
3. **build**: each group × arch is resolved; the formats the image store does not hold
   yet for the resolved version are built (an unchanged closure is the same version, so
   nothing is rebuilt);
4. **boot**: every image of every format boots under QEMU (TCG) until the appliance
   prints ``APPLIANCE-BOOT-OK GROUP VERSION ARCH``, within ``boot_timeout`` seconds;
5. **publish**: a group version whose images all passed for an arch is published as
   the new ``nightly`` and becomes current for that arch; one with any failure is not
   published, so the last good release stays current;
6. **prune**: all but the newest ``keep`` nightlies of each group are deleted (never a
   current one);
7. **report**: ``report.json`` and ``report.html`` with every stage's time and status
   and every image's result, and the boot console of each image beside them.

The exit status is 0 when everything passed, 1 when anything failed (a CI job goes red,
while what did pass was still published). The matrix and destination come from a
YAML file (``ci/nightly.yaml``) and can be overridden on the command line::

    groups: [group-cernvm]
    arches: [x86_64, x86]
    formats: all                 # or a list: [qcow2, vmdk, ova]
    to: /srv/appbuild/releases   # or s3://bucket/prefix (with endpoint_url:)
    keep: 7                      # nightlies kept on the server
    boot_timeout: 180            # seconds per boot under TCG
    import: true                 # run `import upstream` first
    report: null                 # directory for the report (default repo/logs/nightly/STAMP)
    unsigned: false              # signing key: publish.key in repo/config.yaml, or APPBUILD_SIGNING_KEY
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import write_atomic
from appbuilder.core.settings import Settings, add_flags, load_settings
from appbuilder.store.manifest import builder_identity, utc_now

DEFAULTS = {"groups": [], "arches": ["x86_64", "x86"], "formats": "all", "to": None, "endpoint_url": None,
            "keep": 7, "boot_timeout": 180.0, "import": True, "report": None, "unsigned": False, "jobs": 2,
            "key": None, "gpg_home": None}


@dataclass
class Stage:
    name: str
    status: str = "skipped"  # ok | failed | skipped
    seconds: float = 0.0
    detail: str = ""


@dataclass
class ImageResult:
    group: str
    arch: str
    format: str
    version: str = ""  # the revision, when resolved
    files: list[str] = field(default_factory=list)
    build: str = "not run"  # built | reused | failed
    build_seconds: float = 0.0
    boot: str = "not run"  # passed | failed | skipped
    boot_seconds: float = 0.0
    console: str = ""  # the boot console log, relative to the report
    publish: str = "not run"  # published | unchanged | not published | failed
    error: str = ""  # why it failed
    note: str = ""  # anything else worth saying


@dataclass
class Report:
    started: str
    finished: str = ""
    status: str = "running"
    seconds: float = 0.0
    host: str = field(default_factory=platform.node)
    builder: dict = field(default_factory=builder_identity)
    config: dict = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    images: list[ImageResult] = field(default_factory=list)
    current: dict[str, dict[str, str]] = field(default_factory=dict)  # group -> arch -> version, after

    def to_dict(self) -> dict:
        return asdict(self)


def load_config(path: Path | None, overrides: dict) -> dict:
    cfg = dict(DEFAULTS)
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise AppbuildError(f"{path}: cannot read the nightly configuration: {exc}") from None
        unknown = set(data) - set(DEFAULTS)
        if unknown:
            raise AppbuildError(f"{path}: unknown keys {sorted(unknown)}; valid: {', '.join(sorted(DEFAULTS))}")
        cfg.update(data)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("groups", "arches"):
        if isinstance(cfg[key], str):
            cfg[key] = [x for x in cfg[key].split(",") if x]
    if not cfg["groups"]:
        raise AppbuildError("the nightly builds no group: list groups: in the configuration or pass --groups")
    return cfg


class Nightly:
    def __init__(self, settings: Settings, cfg: dict, report_dir: Path, say: Callable[[str], None] = print):
        from appbuilder.repository.repo import Repository
        from appbuilder.store.images import ImageStore

        self.settings = settings
        self.cfg = cfg
        self.dir = report_dir
        self.say = say
        self.repo = Repository(settings.repository, settings.label)
        self.store = ImageStore(settings.images)
        self.report = Report(utc_now(), config={k: v for k, v in cfg.items() if k not in ("key", "gpg_home")})
        self.t0 = time.monotonic()
        self.cluster = self.export = None  # set by run() when settings name a cluster (--cluster)

    # ------------------------------------------------------------ driving

    def stage(self, name: str, fn: Callable[[], tuple[str, int]], *, skip: str | None = None) -> Stage:
        """Run one stage: *fn* returns (what it did, how many things failed)."""
        st = Stage(name)
        self.report.stages.append(st)
        if skip:
            st.detail = skip
            self.say(f"== {name}: skipped ({skip})")
            return st
        self.say(f"== {name}")
        t = time.monotonic()
        try:
            st.detail, failures = fn()
            st.status = "failed" if failures else "ok"
        except AppbuildError as exc:
            st.status, st.detail = "failed", str(exc)
            self.say(f"{name} failed: {exc}")
        except Exception as exc:  # a bug in appbuild: the report still says which stage and where
            st.status = "failed"
            st.detail = f"unexpected {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-6)}"
            self.say(f"{name} failed unexpectedly: {type(exc).__name__}: {exc}")
        st.seconds = round(time.monotonic() - t, 2)
        self.say(f"== {name}: {st.status} in {st.seconds:.1f} s" + (f" ({st.detail})" if st.detail else ""))
        return st

    def run(self, signer) -> Report:
        """Every stage in order; the report is written whatever happens (also on Ctrl-C,
        with the status ``interrupted``)."""
        cfg = self.cfg
        interrupted = False
        from appbuilder.cluster.connect import configured

        if configured(self.settings):
            from appbuilder.cluster.connect import connect
            from appbuilder.cluster.schedule import Export

            self.cluster = connect(self.settings)
            self.say(f"cooking and building on the cluster at {self.cluster.address}")
            self.export = Export(self.settings, self.repo, self.cluster)
        try:
            has_upstream = bool(self.settings.get("upstream"))
            self.stage("import", self._import, skip=None if cfg["import"] and has_upstream else
                       ("turned off" if not cfg["import"] else "repo/config.yaml lists no upstream packages"))
            self.stage("cook", self._cook, skip=None if self.settings.recipes_dir.is_dir() else "no recipes/")
            self.stage("build", self._build)
            self.stage("boot", self._boot)
            dest = cfg["to"]
            self.stage("publish", lambda: self._publish(signer), skip=None if dest else "no destination (to:)")
            self.stage("prune", self._prune, skip=None if dest and cfg["keep"] is not None else
                       "no destination or keep")
            self._current()
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if self.cluster is not None:
                self.export.close()
                self.cluster.close()
            self._finish(interrupted)
        return self.report

    def _finish(self, interrupted: bool) -> None:
        failed = any(s.status == "failed" for s in self.report.stages) or any(
            i.build == "failed" or i.boot == "failed" or i.publish == "failed" for i in self.report.images)
        self.report.status = "interrupted" if interrupted else "failed" if failed else "passed"
        t = time.monotonic()
        self.report.stages.append(Stage("report", "ok"))
        self.report.finished = utc_now()
        self.report.seconds = round(time.monotonic() - self.t0, 2)
        self.report.stages[-1].seconds = round(time.monotonic() - t, 2)
        write_report(self.dir, self.report)

    # ------------------------------------------------------------ stages

    def _import(self) -> tuple[str, int]:
        from appbuilder.capsule.importer import UNCHANGED
        from appbuilder.cook.uptodate import Progress, import_all

        results = import_all(self.settings, self.repo, Progress(say=self.say, warn=lambda m: self.say(f"warning: {m}")))
        new = [r for r in results if r.status != UNCHANGED]
        return f"{len(results)} upstream packages, {len(new)} imported", 0

    def _cook(self) -> tuple[str, int]:
        from appbuilder.cook.uptodate import Progress, cook_changed, failure_summary
        from appbuilder.core.arch import get_arch

        cooked: list[str] = []

        def report(res) -> None:
            if not res.skipped:
                cooked.append(str(res.nvf))
                self.say(f"cooked {res.nvf} in {res.seconds:.1f} s")

        arches = [get_arch(a) for a in self.cfg["arches"]]
        if self.cluster is not None:  # --cluster: each cook a task on the cluster's workers
            from appbuilder.cluster.schedule import cook_on_cluster
            from appbuilder.recipe.loader import RECIPE_FILE, find_recipes

            recipes = find_recipes(self.settings.recipes_dir) if any(
                self.settings.recipes_dir.glob(f"*/{RECIPE_FILE}")) else []
            result = cook_on_cluster(self.settings, self.repo, self.cluster, recipes, arches, report=report,
                                     say=self.say, export=self.export)
        else:
            result = cook_changed(self.settings, self.repo, arches, Progress(say=self.say, cooked=report),
                                  jobs=self.cfg["jobs"])
        error = failure_summary(result)
        if error:
            raise error
        return f"{len(cooked)} cooked" + (f": {', '.join(cooked)}" if cooked else " (everything was current)"), 0

    def _build(self) -> tuple[str, int]:
        from appbuilder.formats.specs import resolve_formats
        from appbuilder.cook.topdown import resolve_topdown
        from appbuilder.store.build import BuildRequest, build_images

        built = reused = failed = 0
        for group in self.cfg["groups"]:
            for arch in self.cfg["arches"]:
                t = time.monotonic()
                try:
                    specs = resolve_formats(self.cfg["formats"], arch, self.settings.formats_dir)
                except AppbuildError as exc:
                    self.report.images.append(ImageResult(group, arch, "?", build="failed", error=str(exc)))
                    failed += 1
                    continue
                results = [ImageResult(group, arch, s.name) for s in specs]
                self.report.images += results
                try:
                    revision = resolve_topdown(self.settings, self.repo, group, arch,
                                               say=self.say).group.version.revision
                    for r in results:
                        r.version = revision
                    recorded = self.store.manifest(group, revision, arch)
                    missing = [s.name for s in specs if recorded is None or s.name not in recorded.formats]
                    if missing:
                        self.say(f"building {group}={revision} ({arch}): {', '.join(missing)}")
                        if self.cluster is not None:  # each format a task on the cluster's workers
                            from appbuilder.cluster.schedule import build_on_cluster

                            build_on_cluster(self.settings, self.repo, self.cluster, group, [arch],
                                             ",".join(missing), version=revision, jobs=self.cfg["jobs"],
                                             say=lambda m: self.say(f"  {m}"), export=self.export)
                        else:
                            build_images(self.settings, self.repo, BuildRequest(
                                group=group, arches=[arch], formats=",".join(missing), version=revision,
                                jobs=self.cfg["jobs"], cook=False), say=lambda m: self.say(f"  {m}"))
                        recorded = self.store.manifest(group, revision, arch)
                    else:
                        self.say(f"{group}={revision} ({arch}) is already in the image store")
                    seconds = round(time.monotonic() - t, 2)
                    for r in results:
                        r.build = "built" if r.format in missing else "reused"
                        r.build_seconds = seconds if r.format in missing else 0.0
                        r.files = list(recorded.formats[r.format])
                    built += len(missing)
                    reused += len(specs) - len(missing)
                except AppbuildError as exc:
                    self.say(f"{group} ({arch}) failed to build: {exc}")
                    for r in results:
                        r.build, r.error = "failed", str(exc)
                    failed += len(results)
        return f"{built} built, {reused} already in the store, {failed} failed", failed

    def _published(self, group: str):
        from appbuilder.release.publish import published

        if not self.cfg["to"]:
            return None
        try:
            return published(self.cfg["to"], group, endpoint_url=self.cfg["endpoint_url"])
        except AppbuildError as exc:
            self.say(f"cannot read the release index of {group}: {exc}")
            return None

    def _boot(self) -> tuple[str, int]:
        from appbuilder.formats.specs import boot_drive, get_format
        from appbuilder.store.images import TMP_PREFIX
        from appbuilder.verify.boot import BOOT_MARKER, BootOptions, boot_until

        passed = failed = skipped = 0
        (self.dir / "boot").mkdir(parents=True, exist_ok=True)
        indexes = {g: self._published(g) for g in self.cfg["groups"]}
        for r in self.report.images:
            if r.build not in ("built", "reused"):
                continue
            index = indexes.get(r.group)
            known = index.get(r.version) if index else None
            if known and r.arch in known.arches:
                r.boot = "skipped"
                r.note = f"already published{' and withdrawn' if known.arches[r.arch].withdrawn else ''}"
                skipped += 1
                continue
            directory = self.store.directory(r.group, r.version, r.arch)
            with tempfile.TemporaryDirectory(prefix=f"{TMP_PREFIX}boot-", dir=self.settings.images) as scratch:
                fmt = get_format(r.format, self.settings.formats_dir)
                disk, drive = boot_drive(fmt, [directory / n for n in r.files], Path(scratch))
                self.say(f"booting {disk.name} ({r.arch}, {drive})")
                result = boot_until(disk, BootOptions(arch=r.arch, drive_format=drive, timeout=self.cfg["boot_timeout"],
                                                       accel=self.settings.get("qemu.accel")))
            log = Path("boot") / f"{r.group}-{r.version}-{r.arch}-{r.format}.log"
            (self.dir / log).write_text(result.console)
            r.console, r.boot_seconds = str(log), round(result.seconds, 2)
            version = self.store.manifest(r.group, r.version, r.arch).version
            expected = f"{BOOT_MARKER} {r.group} {version} {r.arch}"
            if result.found and result.line.endswith(expected):
                r.boot = "passed"
                passed += 1
            else:
                r.boot = "failed"
                if result.found:
                    r.error = f"booted the wrong image: {result.line!r}"
                elif result.seconds < self.cfg["boot_timeout"]:
                    r.error = f"the machine stopped after {result.seconds:.0f} s without printing '{expected}'"
                else:
                    r.error = f"no '{expected}' on the console within {self.cfg['boot_timeout']:.0f} s"
                failed += 1
            self.say(f"  {r.boot} in {result.seconds:.1f} s" + (f": {r.error}" if r.boot == "failed" else ""))
        return f"{passed} passed, {failed} failed, {skipped} already published", failed

    def _publish(self, signer) -> tuple[str, int]:
        from appbuilder.release.publish import PublishRequest, publish

        done = []
        failures = 0
        by_version: dict[tuple[str, str], dict[str, list[ImageResult]]] = {}
        for r in self.report.images:
            if r.version:
                by_version.setdefault((r.group, r.version), {}).setdefault(r.arch, []).append(r)
        for (group, version), arches in by_version.items():
            good = [a for a, rs in arches.items() if all(x.boot == "passed" for x in rs)]
            for a, rs in arches.items():
                if a not in good:
                    for x in rs:
                        x.publish = "unchanged" if x.boot == "skipped" else "not published"
            if not good:
                continue
            formats = sorted({x.format for a in good for x in arches[a]})
            try:
                result = publish(self.store, PublishRequest(
                    group=group, version=version, destination=self.cfg["to"], arches=good, formats=formats,
                    channel="nightly", make_current=True, endpoint_url=self.cfg["endpoint_url"]),
                    signer, say=self.say)
                for a in good:
                    for x in arches[a]:
                        x.publish = "published" if a in result.published else "unchanged"
                done.append(f"{group}={version} ({', '.join(good)})")
            except AppbuildError as exc:
                self.say(f"publishing {group}={version} failed: {exc}")
                failures += 1
                for a in good:
                    for x in arches[a]:
                        x.publish, x.error = "failed", str(exc)
        return (f"published {', '.join(done)}" if done else "nothing new passed"), failures

    def _prune(self) -> tuple[str, int]:
        from appbuilder.release.publish import prune

        pruned = []
        for group in self.cfg["groups"]:
            index = self._published(group)
            if index is None or not index.releases:
                continue
            pruned += [f"{group}={v}" for v in prune(self.cfg["to"], group, int(self.cfg["keep"]),
                                                     endpoint_url=self.cfg["endpoint_url"], say=self.say)]
        return (f"pruned {', '.join(pruned)}" if pruned else
                f"nothing beyond the newest {self.cfg['keep']} nightlies"), 0

    def _current(self) -> None:
        for group in self.cfg["groups"]:
            index = self._published(group)
            self.report.current[group] = dict(index.current) if index else {}


def write_report(directory: Path, report: Report) -> None:
    """``report.json`` and ``report.html`` in *directory* (each written atomically)."""
    from appbuilder.release.index import render

    directory.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    write_atomic(directory / "report.json", (json.dumps(data, indent=2) + "\n").encode())
    page = render("nightly-report.html.j2", search=(Path(__file__).resolve().parent / "templates",), report=data)
    write_atomic(directory / "report.html", page.encode())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ci/nightly", description=(
        "Import upstream updates, cook what changed, build every format x arch of each group, boot-test, "
        "publish what passed as the new nightly, prune, report."))
    p.add_argument("--config", help="YAML file (default: ci/nightly.yaml of the workspace, if there)")
    p.add_argument("--groups", help="comma list of groups (overrides the configuration)")
    p.add_argument("--arches", help="comma list of arches")
    p.add_argument("--formats", help="comma list of formats, or all")
    p.add_argument("--to", help="destination: a directory or s3://BUCKET/PREFIX")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint")
    p.add_argument("--keep", type=int, help="nightlies to keep on the server")
    p.add_argument("--boot-timeout", type=float, help="seconds per boot test")
    p.add_argument("--report", help="directory for report.json and report.html")
    p.add_argument("--no-import", action="store_true", help="do not import upstream updates")
    p.add_argument("--unsigned", action="store_true", help="publish without signing")
    add_flags(p, "nightly")  # --cluster
    args = p.parse_args(argv)
    from appbuilder.core.ui import Console

    ui = Console()
    try:
        settings = load_settings().with_flags(args)
        config = Path(args.config) if args.config else settings.workspace / "ci" / "nightly.yaml"
        cfg = load_config(config if args.config or config.is_file() else None, {
            "groups": args.groups, "arches": args.arches, "formats": args.formats, "to": args.to,
            "endpoint_url": args.endpoint_url, "keep": args.keep, "boot_timeout": args.boot_timeout,
            "report": args.report, "import": False if args.no_import else None,
            "unsigned": True if args.unsigned else None})
        from appbuilder.release.signing import require_signer

        keys = settings.with_overrides({"publish.key": cfg["key"], "publish.gpg_home": cfg["gpg_home"]},
                                       where=str(config))
        signer = require_signer(keys, unsigned=bool(cfg["unsigned"])) if cfg["to"] else None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        report_dir = Path(cfg["report"]) if cfg["report"] else settings.logs / "nightly" / stamp
        report = Nightly(settings, cfg, report_dir, say=ui.out).run(signer)
    except AppbuildError as exc:
        ui.error(str(exc))
        return exc.exit_code
    (ui.success if report.status == "passed" else ui.error)(
        f"nightly {report.status} in {report.seconds:.0f} s; report: {report_dir / 'report.html'}")
    return 0 if report.status == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
