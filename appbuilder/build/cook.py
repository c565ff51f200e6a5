"""Cooking: build one recipe for one architecture and commit the result.

1. Load the recipe for the architecture (``setup(r)`` records actions).
2. Resolve its build requirements in the repository, and compute the input hash:
   when a package with that input hash exists, the cook is skipped.
3. In a fresh work directory: stage the build requirements (and what they need) into
   a sysroot, run the source actions, then the build actions in the sandbox.
4. Run the policies over the install root (components, dependencies, ...).
5. Store file contents and the build log in the content store, then commit the
   package in one transaction, which gives it its version.

A failing build commits nothing: the log is kept under the logs directory and its
tail is part of the error. Ctrl-C kills the build and discards the work directory.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from appbuilder.arch import Arch
from appbuilder.build import archive
from appbuilder.build.debsrc import DebianSources
from appbuilder.build.inputs import input_hash, source_hash, toolchain_fingerprint
from appbuilder.build.lookaside import Lookaside
from appbuilder.build.sandbox import Sandbox, build_env
from appbuilder.errors import AppbuildError, BuildFailed, Interrupted, RepositoryError
from appbuilder.graph.closure import ClosureResolver
from appbuilder.policy.pipeline import run_policies
from appbuilder.recipe.actions import BUILD, SOURCE, Action
from appbuilder.recipe.base import PackageRecipe
from appbuilder.recipe.loader import RecipeFile
from appbuilder.repository.checkout import materialize
from appbuilder.repository.deps import Dependency
from appbuilder.repository.repo import PackageBuild, Repository
from appbuilder.repository.versions import NVF, Flavor
from appbuilder.settings import Settings

LOG_TAIL_LINES = 25
DEFAULT_SOURCE_DATE_EPOCH = 1_700_000_000


@dataclass
class CookOptions:
    arch: Arch
    force: bool = False  # rebuild even when the inputs are unchanged (bumps the build count)
    make_jobs: int = 2
    keep_work: bool = False
    echo: Callable[[str], None] | None = None  # build output, line by line (verbose mode)


@dataclass
class CookResult:
    name: str
    arch: str
    nvf: NVF
    skipped: bool
    seconds: float = 0.0
    missing_build_requires: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)


class BuildContext:
    """What actions see while they run (see ``appbuilder.recipe.actions.ActionContext``)."""

    def __init__(self, recipe: PackageRecipe, recipe_dir: Path, work: Path, arch: Arch, *,
                 sandbox: Sandbox, env: dict[str, str], log, lookaside: Lookaside, debian: DebianSources,
                 echo: Callable[[str], None] | None):
        self.macros = recipe.macros
        self.arch = arch
        self.recipe_dir = recipe_dir
        self.srcdir = work / "src"
        self.builddir = self.srcdir / recipe.main_dir
        self.destdir = work / "destdir"
        self.sandbox = sandbox
        self.env = env
        self.logf = log
        self.lookaside = lookaside
        self.debian = debian
        self.echo = echo
        self.current: Action | None = None

    def log(self, text: str) -> None:
        self.logf.write((text + "\n").encode())
        self.logf.flush()
        if self.echo:
            self.echo(text)

    def run(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.log(f"+ {shlex.join(argv)}")
        if not cwd.is_dir():
            raise BuildFailed(f"{self._where()}: directory {cwd} does not exist (is mainDir right?)")
        echo = (lambda line: self.echo(line.decode(errors="replace").rstrip("\n"))) if self.echo else None
        rc = self.sandbox.run(argv, cwd=cwd, env={**self.env, **(env or {})}, log=self.logf, echo=echo)
        if rc != 0:
            raise BuildFailed(f"{self._where()}: {shlex.join(argv)} exited with status {rc}")

    def _where(self) -> str:
        if self.current is None:
            return "build"
        return f"{self.current.where}: {type(self.current).__name__}"

    def fetch(self, url: str, sha256: str | None, mirrors: Sequence[str] = ()) -> Path:
        self.log(f"fetch {url}")
        return self.lookaside.fetch(url, sha256, mirrors)

    def debian_source(self, package: str, version: str, sha256: str) -> Path:
        self.log(f"debian source {package}={version}")
        return self.debian.fetch(package, version, sha256)

    def unpack(self, archive_path: Path, dest: Path) -> None:
        self.log(f"unpack {archive_path.name} into {dest}")
        archive.unpack(archive_path, dest, lambda argv, cwd: self.run(argv, cwd=cwd))


class Cooker:
    """Cooks recipes into one repository."""

    def __init__(self, settings: Settings, repo: Repository):
        self.settings = settings
        self.repo = repo
        self.lookaside = Lookaside(settings.lookaside, settings.mirrors)
        self.debian = DebianSources(settings.cache, self.lookaside)
        self.source_date_epoch = int(settings.config.get("source_date_epoch", DEFAULT_SOURCE_DATE_EPOCH))
        # set when the user interrupts: running cooks stop before their next step and commit nothing
        self.cancelled = threading.Event()

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise Interrupted("interrupted: this cook was stopped and nothing was committed")

    # ------------------------------------------------------------ planning

    def build_requirements(self, rf: RecipeFile, arch: Arch) -> list[NVF]:
        found = []
        for spec in rf.build_requires:
            try:
                found.append(self.repo.find_one(spec, arch=arch.name))
            except RepositoryError as exc:
                raise BuildFailed(
                    f"{rf.name}: build requirement {spec!r} is not in the repository for {arch.name} ({exc}); "
                    f"cook or import it first"
                ) from None
        return found

    def input_hash(self, rf: RecipeFile, arch: Arch) -> tuple[str, str, list[NVF]]:
        """(source hash, input hash, build requirements) of a recipe for *arch*."""
        reqs = self.build_requirements(rf, arch)
        src = source_hash(rf.directory)
        return src, input_hash(src, arch.name, reqs, toolchain_fingerprint()), reqs

    # ------------------------------------------------------------ cooking

    def cook(self, rf: RecipeFile, opts: CookOptions) -> CookResult:
        start = time.monotonic()
        arch = opts.arch
        src_hash, in_hash, reqs = self.input_hash(rf, arch)
        if not opts.force:
            done = self.repo.by_input(in_hash)
            if done:
                return CookResult(rf.name, arch.name, done, skipped=True)
        recipe = rf.instantiate(arch, jobs=opts.make_jobs)
        work_root = self.settings.cache / "work"
        work_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=work_root, prefix=f"{rf.name}-{arch.name}-"))
        log_path = work / "build.log"
        try:
            with open(log_path, "wb") as log:
                result = self._cook_in(rf, recipe, arch, work, log, reqs, src_hash, in_hash, opts)
            result.seconds = time.monotonic() - start
            return result
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted while cooking {rf.name} for {arch.name}; nothing was committed") from None
        except Interrupted:
            raise
        except AppbuildError as exc:
            if self.cancelled.is_set():
                raise Interrupted(f"interrupted while cooking {rf.name} for {arch.name}; nothing was committed") from None
            raise self._failure(rf, arch, exc, log_path) from None
        except OSError as exc:
            raise self._failure(rf, arch, BuildFailed(f"{type(exc).__name__}: {exc}"), log_path) from None
        finally:
            if not opts.keep_work:
                shutil.rmtree(work, ignore_errors=True)

    def _cook_in(self, rf: RecipeFile, recipe: PackageRecipe, arch: Arch, work: Path, log,
                 reqs: list[NVF], src_hash: str, in_hash: str, opts: CookOptions) -> CookResult:
        sysroot = work / "sysroot"
        declared = self._stage_build_requirements(reqs, arch, sysroot)
        recipe.macros.sysroot = str(sysroot)
        env = build_env(
            path_prefix=[str(sysroot / "usr/bin"), str(sysroot / "bin")] if declared else [],
            extra=_sysroot_env(sysroot, recipe, arch) if declared else {},
            source_date_epoch=self.source_date_epoch,
        )
        # the recipe's own files and the lookaside cache are read-only inputs of the build
        self.lookaside.root.mkdir(parents=True, exist_ok=True)
        sandbox = Sandbox([work], readonly=[rf.directory, self.lookaside.root])
        ctx = BuildContext(recipe, rf.directory, work, arch, sandbox=sandbox, env=env, log=log,
                           lookaside=self.lookaside, debian=self.debian, echo=opts.echo)
        recipe.macros.builddir = str(ctx.builddir)
        recipe.macros.destdir = str(ctx.destdir)
        ctx.srcdir.mkdir()
        ctx.destdir.mkdir()
        ctx.log(f"cooking {rf.name} {recipe.version} for {arch.name} (inputs {in_hash[:16]})")
        for action in recipe.actions_of(SOURCE):
            self._run_action(ctx, action)
        ctx.builddir.mkdir(parents=True, exist_ok=True)
        for action in recipe.actions_of(BUILD):
            self._run_action(ctx, action)

        ctx.log("running policies")
        result = run_policies(recipe, ctx.destdir, declared=declared, suggest=self._suggest, jobs=opts.make_jobs)
        for m in result.missing_build_requires:
            ctx.log(f"warning: {m}")
        for digest, host in result.contents.items():
            self.repo.store.put_file(host, digest)
        log.flush()
        log_blob = self.repo.store.put_file(work / "build.log")
        self._check_cancelled()
        package = self.repo.commit_package(PackageBuild(
            name=rf.name,
            upstream=recipe.version,
            flavor=Flavor(arch.name),
            source_hash=src_hash,
            input_hash=in_hash,
            components=result.components,
            info={
                "recipe": rf.path.parent.name,
                "build_requires": [str(n) for n in reqs],
                "build_log_blob": log_blob,
                "missing_build_requires": [str(m) for m in result.missing_build_requires],
            },
            rebuild=opts.force,
        ))
        return CookResult(rf.name, arch.name, package.nvf, skipped=False,
                          missing_build_requires=[str(m) for m in result.missing_build_requires],
                          components=[c.name for c in result.components])

    def _run_action(self, ctx: BuildContext, action: Action) -> None:
        self._check_cancelled()
        ctx.current = action
        ctx.log(f"== {action.where}: {action.describe()}")
        try:
            action.do(ctx)
        except BuildFailed:
            raise
        except AppbuildError as exc:
            if not str(exc).startswith(action.where):  # say where in the recipe it happened
                exc.args = (f"{action.where}: {exc}",)
            raise
        except OSError as exc:
            raise BuildFailed(f"{action.where}: {type(action).__name__}: {exc}") from None

    def _stage_build_requirements(self, reqs: list[NVF], arch: Arch, sysroot: Path) -> set[Dependency]:
        """Write the closure of the build requirements into *sysroot*; returns their provisions."""
        if not reqs:
            return set()
        closure = ClosureResolver(self.repo, arch.name).resolve(reqs)
        troves = [self.repo.get(n) for n in closure.members]
        materialize(self.repo.store, troves, sysroot, relative_links=True)
        return set().union(*(t.provides for t in troves))

    def _suggest(self, dep: Dependency) -> str | None:
        providers = self.repo.providers(dep)
        if not providers:
            return None
        return providers[-1].package + (":devel" if self.repo.versions(providers[-1].package + ":devel") else "")

    def _failure(self, rf: RecipeFile, arch: Arch, exc: AppbuildError, log_path: Path) -> AppbuildError:
        if not log_path.exists():
            return exc
        self.settings.logs.mkdir(parents=True, exist_ok=True)
        kept = self.settings.logs / f"{rf.name}-{arch.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        shutil.copyfile(log_path, kept)
        tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        message = (f"cooking {rf.name} for {arch.name} failed: {exc}\n"
                   f"--- last {len(tail)} lines of the build log ---\n" + "\n".join(tail) +
                   f"\n--- full log: {kept} (nothing was committed)")
        return BuildFailed(message, log_path=str(kept))


def _sysroot_env(sysroot: Path, recipe: PackageRecipe, arch: Arch) -> dict[str, str]:
    """Compiler search paths pointing into the staged build requirements.

    Only compile- and link-time paths: no LD_LIBRARY_PATH, so the host's compiler and
    shell never run on a library (a C library!) staged for the target.
    """
    libdirs = [recipe.macros.libdir, f"/{arch.lib}", *arch.multiarch_libdirs, "/usr/lib", "/lib"]
    libdirs = list(dict.fromkeys(libdirs))
    libs = ":".join(str(sysroot) + d for d in libdirs)
    pkgconfig = ":".join(str(sysroot) + d + "/pkgconfig" for d in [*libdirs, "/usr/share"])
    includes = [sysroot / "usr/include" / arch.multiarch, sysroot / "usr/include"]
    return {
        "CPATH": ":".join(map(str, includes)),
        "LIBRARY_PATH": libs,
        "PKG_CONFIG_PATH": pkgconfig,
        "PKG_CONFIG_SYSROOT_DIR": str(sysroot),
    }
