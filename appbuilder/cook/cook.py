"""Cooking: build one recipe for one architecture and commit the result.

1. Load the recipe for the architecture (``setup(r)`` records actions).
2. Resolve its build requirements in the repository, and compute the input hash over
   the recipe and its sources, the build requirements' versions and the toolchain
   group's pin: when a package with that input hash exists, the cook is skipped.
3. Make (or reuse) the build root: the toolchain group's closure with the closure of
   the build requirements over it (:mod:`appbuilder.cook.buildroot`).
4. In a fresh work directory, run the source actions, then the build actions; build
   commands run in the sandbox (:mod:`appbuilder.core.sandbox`) with the build root as
   ``/``, the work tree at ``/build`` and the recipe's sources read-only under
   ``/sources``; file actions work beneath the work tree on the host.
5. Run the policies over the install root (components, dependencies, ...).
6. Store file contents and the build log in the content store, then commit the
   package in one transaction, which gives it its version.

A failing build commits nothing: the log is kept under the logs directory and its
tail is part of the error; when the build needed a command or file that is not in the
build root, the error says which and what to add to ``buildRequires``. Ctrl-C, SIGTERM
or the time limit kill the build and discard the work directory; directories left by
a cook that was killed outright are swept by the next one.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shlex
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from appbuilder.cook import archive, rpmsource, sourcesig
from appbuilder.cook.buildroot import BuildRoots, plan_root
from appbuilder.cook.inputs import code_digest, input_hash, recipe_files, source_hash
from appbuilder.cook.missing import Missing, explain_missing, missing_in_log
from appbuilder.cook.recipetext import recipe_texts
from appbuilder.cook.toolchain import Toolchain, resolve_toolchain
from appbuilder.core.arch import Arch
from appbuilder.core.errors import (
    AppbuildError,
    BuildFailed,
    Interrupted,
    RepositoryError,
)
from appbuilder.core.fileio import hold_lock, lock_is_free, remove_tree, sha256_file
from appbuilder.core.sandbox import Bind, Sandbox, build_env
from appbuilder.core.settings import Settings
from appbuilder.graph.closure import ClosureResolver
from appbuilder.policy.pipeline import run_policies
from appbuilder.recipe.actions import BUILD, SOURCE, Action
from appbuilder.recipe.base import PackageRecipe
from appbuilder.recipe.flavor import cook_flags, with_flags
from appbuilder.recipe.loader import RecipeFile
from appbuilder.repository.deps import Dependency
from appbuilder.repository.repo import PackageBuild, Repository
from appbuilder.repository.trove import COMPONENT, Trove
from appbuilder.repository.versions import NVF, Flavor
from appbuilder.upstream.debsrc import DebianSources
from appbuilder.upstream.lookaside import GUESS_SUFFIXES, Lookaside

LOG_TAIL_LINES = 25
# where the cook's directories appear inside the sandbox
BUILD_TOP = "/build"
SOURCES_TOP = "/sources"


@dataclass
class CookOptions:
    arch: Arch
    force: bool = False  # rebuild even when the inputs are unchanged (bumps the build count)
    make_jobs: int = 2
    keep_work: bool = False
    echo: Callable[[str], None] | None = None  # build output, line by line (verbose mode)
    trial: bool = False  # a trial build (what else is missing?): stop after the build actions, commit nothing


@dataclass
class CookResult:
    name: str
    arch: str
    nvf: NVF
    skipped: bool
    seconds: float = 0.0
    missing_build_requires: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the policies could not do (by path)
    components: list[str] = field(default_factory=list)


def portable_where(where: str, recipe_dir: Path, workspace: Path) -> str:
    """*where* (``/abs/path/recipe.py:7``) as the build log records it: the same on every
    machine, so a cook's log (and so its trove) does not depend on where the workspace is.
    A recipe directory's files are named from the directory's own name (``hello/recipe.py:7``),
    recipe library files from the workspace; anything else stays as it is."""
    path, sep, line = where.rpartition(":")
    if not sep or not line.isdigit():
        return where
    file = Path(path)
    for top, prefix in ((recipe_dir, recipe_dir.name), (workspace, "")):
        try:
            rel = file.relative_to(top)
        except ValueError:
            continue
        return f"{Path(prefix, rel).as_posix()}:{line}"
    return where


class BuildContext:
    """What actions see while they run (see ``appbuilder.recipe.actions.ActionContext``).

    ``srcdir``, ``builddir`` and ``destdir`` are host paths (file actions work beneath
    them on the host); build commands see the same tree at ``/build``, the recipe's own
    files at ``/sources/recipe`` and each fetched source at ``/sources/SHA256/``.
    """

    def __init__(self, recipe: PackageRecipe, recipe_dir: Path, tree: Path, arch: Arch, *,
                 sandbox: Sandbox, env: dict[str, str], log, lookaside: Lookaside, debian: DebianSources,
                 echo: Callable[[str], None] | None, unpack_limit: int | None = None,
                 source_keys: Path | None = None):
        self.macros = recipe.macros
        self.arch = arch
        self.recipe_dir = recipe_dir
        self.tree = tree
        self.srcdir = tree / "src"
        self.builddir = self.srcdir / recipe.main_dir
        self.destdir = tree / "destdir"
        self.sandbox = sandbox
        self.env = env
        self.logf = log
        self.lookaside = lookaside
        self.debian = debian
        self.echo = echo
        self.timeout = getattr(recipe, "buildTimeout", None)
        self.unpack_limit = unpack_limit
        self.current: Action | None = None
        # source actions (see appbuilder.recipe.source_actions): the OpenPGP keys keyid= checks
        # against, and whether the first archive may still name the main directory
        self.source_keys = source_keys
        self.main_dir_known = recipe.main_dir != f"{recipe.name}-{recipe.version}"
        self.macros.maindir = recipe.main_dir
        self._recipe = recipe

    def log(self, text: str) -> None:
        self.logf.write((text + "\n").encode())
        self.logf.flush()
        if self.echo:
            self.echo(text)

    def inside(self, path: Path | str) -> str:
        """Where the host *path* (in the work tree, the recipe directory or the lookaside
        cache) appears to build commands; fetched sources are bound on first use."""
        path = Path(path)
        for top, inside in ((self.tree, BUILD_TOP), (self.recipe_dir, f"{SOURCES_TOP}/recipe")):
            if path == top or top in path.parents:
                return inside + ("/" + path.relative_to(top).as_posix() if path != top else "")
        root = self.lookaside.root
        if root in path.parents:
            entry = path.relative_to(root).parts  # ab/SHA256/name...
            if len(entry) >= 3:
                inside = f"{SOURCES_TOP}/{entry[1]}"
                self.sandbox.bind(root / entry[0] / entry[1], inside)
                return inside + "/" + "/".join(entry[2:])
        raise BuildFailed(f"{self._where()}: {path} is not something a build command can see")

    def run(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.log(f"+ {shlex.join(argv)}")
        if not cwd.is_dir():
            raise BuildFailed(f"{self._where()}: directory {self.inside(cwd)} does not exist (is mainDir right?)")
        echo = (lambda line: self.echo(line.decode(errors="replace").rstrip("\n"))) if self.echo else None
        rc = self.sandbox.run(argv, cwd=self.inside(cwd), env={**self.env, **(env or {})}, log=self.logf,
                              echo=echo, timeout=self.timeout)
        if rc != 0:
            raise BuildFailed(f"{self._where()}: {shlex.join(argv)} exited with status {rc}")

    def objcopy(self, commands: list[list[str]]) -> None:
        """Run the build root's objcopy over the install root (one sandboxed command)."""
        script = "\n".join(shlex.join(["objcopy", *c]) for c in commands)
        self.run(["/bin/sh", "-ec", script], cwd=self.destdir)

    def _where(self) -> str:
        if self.current is None:
            return "build"
        return f"{self.current.where}: {type(self.current).__name__}"

    def fetch(self, url: str, sha256: str | None, mirrors: Sequence[str] = (), *, guess: str | None = None) -> Path:
        self.log(f"fetch {url}" + (f" (trying {guess}.{{{','.join(GUESS_SUFFIXES)}}})" if guess else ""))
        return self.lookaside.fetch(url, sha256, mirrors, guess=guess)

    def signature(self, signed: Path, sha256: str, keyid: str, *, urls: Sequence[str] = (),
                  local: Sequence[Path] = ()) -> Path:
        """Check that the detached signature of *signed* (the first of the *local* files
        that exists, else fetched from the first of *urls* that has one) is good and made
        by the key *keyid*, one of the workspace's source keys; returns the signature."""
        self.log(f"check the signature of {signed.name} by key {keyid}")
        return sourcesig.check(signed, sha256, keyid, keys_dir=self.source_keys, urls=urls, local=local,
                               lookaside=self.lookaside)

    def rpm_member(self, rpm_path: Path, member: str) -> Path:
        """The file *member* taken out of the RPM *rpm_path*, kept in the lookaside cache."""
        self.log(f"take {member} out of {rpm_path.name}")
        base = posixpath.basename(member)
        if base in ("", ".", "..") or "\0" in member:
            raise BuildFailed(f"{self._where()}: {member!r} does not name a file in an RPM")
        self.lookaside.tmp.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=self.lookaside.tmp, prefix="rpm-"))
        try:
            out = rpmsource.extract_member(rpm_path, member, scratch / base)
            return self.lookaside.add(out, sha256_file(out), out.name, move=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def set_main_dir(self, name: str) -> None:
        """The main build directory is *name* (beneath the source directory) from now on."""
        self._recipe.main_dir = name
        self.builddir = self.srcdir / name
        self.macros.maindir = name
        self.macros.builddir = f"{BUILD_TOP}/src/{name}"
        self.main_dir_known = True

    def debian_source(self, package: str, version: str, sha256: str) -> Path:
        self.log(f"debian source {package}={version}")
        return self.debian.fetch(package, version, sha256)

    def unpack(self, archive_path: Path, dest: Path) -> None:
        self.log(f"unpack {archive_path.name} into {self.inside(dest)}")
        archive.unpack(archive_path, dest, lambda argv, cwd: self.run(argv, cwd=cwd), inside=self.inside,
                       limit=self.unpack_limit)


class Cooker:
    """Cooks recipes into one repository."""

    def __init__(self, settings: Settings, repo: Repository, *, warn: Callable[[str], None] | None = None):
        self.settings = settings
        self.repo = repo
        self.lookaside = Lookaside(settings.lookaside, settings.mirrors, warn=warn)
        self.debian = DebianSources(settings.cache, self.lookaside)
        self.roots = BuildRoots(settings.cache, repo.store)
        self.source_date_epoch = settings.get("source_date_epoch")
        self.command_timeout = settings.get("cook.command_timeout")
        self.unpack_limit = settings.get("cook.max_unpacked_size")
        # the use flags of every cook (conary's defaults, use:, cook.flavor): recipe/flavor.py
        self.use, self.local_use = cook_flags(settings.get("use"), settings.get("cook.flavor"))
        self.source_keys = settings.workspace / settings.get("cook.source_keys")
        # set when the user interrupts: running cooks stop before their next step and commit nothing
        self.cancelled = threading.Event()
        self._toolchain: Toolchain | None = None
        self._toolchain_lock = threading.Lock()
        self.work_root = settings.cache / "work"
        sweep_work_dirs(self.work_root)

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise Interrupted("interrupted: this cook was stopped and nothing was committed")

    # ------------------------------------------------------------ planning

    def toolchain(self) -> Toolchain:
        """The toolchain group, resolved once per Cooker."""
        with self._toolchain_lock:
            if self._toolchain is None:
                self._toolchain = resolve_toolchain(self.settings, self.repo)
            return self._toolchain

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
        base = input_hash(src, arch.name, reqs, str(self.toolchain().group))
        return src, with_flags(base, self.use, self.local_for(rf)), reqs

    def local_for(self, rf: RecipeFile) -> dict[str, bool]:
        """The values of *rf*'s own flags (``Flags.NAME``) the cook's flavor sets (``NAME.FLAG``)."""
        return {k.split(".", 1)[1]: v for k, v in self.local_use.items() if k.split(".", 1)[0] == rf.name}

    # ------------------------------------------------------------ cooking

    def cook(self, rf: RecipeFile, opts: CookOptions) -> CookResult:
        start = time.monotonic()
        arch = opts.arch
        src_hash, in_hash, reqs = self.input_hash(rf, arch)
        if not opts.force:
            done = self.repo.by_input(in_hash)
            if done:
                return CookResult(rf.name, arch.name, done, skipped=True)
        recipe = rf.instantiate(arch, jobs=opts.make_jobs, use=self.use, local=self.local_for(rf))
        self.work_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=self.work_root, prefix=f"{rf.name}-{arch.name}-"))
        lock = hold_lock(work)
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
            if opts.keep_work:
                (work / ".keep").touch()
            else:
                remove_tree(work)
            os.close(lock)

    def _cook_in(self, rf: RecipeFile, recipe: PackageRecipe, arch: Arch, work: Path, log,
                 reqs: list[NVF], src_hash: str, in_hash: str, opts: CookOptions) -> CookResult:
        tree = work / "tree"
        (tree / "src").mkdir(parents=True)
        (tree / "destdir").mkdir()

        def note(text: str) -> None:
            log.write((text + "\n").encode())

        toolchain = self.toolchain()
        note(f"toolchain {toolchain.group}")
        closure = self._build_requirement_closure(reqs, arch, toolchain)
        # what a cook may link without a warning: what it declared, with what that needs
        declared = set().union(*(t.provides for t in closure))
        have = {t.nvf for t in toolchain.troves}
        plan = plan_root([toolchain.troves, [t for t in closure if t.nvf not in have]], toolchain.links)
        for line in plan.replaced:
            note(f"build root: {line}")

        recipe.macros.sysroot = ""
        recipe.macros.builddir = f"{BUILD_TOP}/src/{recipe.main_dir}"
        recipe.macros.destdir = f"{BUILD_TOP}/destdir"
        env = build_env(extra=search_paths(recipe, arch), source_date_epoch=self.source_date_epoch)
        with self.build_root(plan, note) as root:
            binds = [*self.root_binds(), Bind(tree, BUILD_TOP, writable=True), Bind(rf.directory, f"{SOURCES_TOP}/recipe")]
            sandbox = Sandbox(root, binds, timeout=self.command_timeout, holders=[SOURCES_TOP])
            ctx = BuildContext(recipe, rf.directory, tree, arch, sandbox=sandbox, env=env, log=log,
                               lookaside=self.lookaside, debian=self.debian, echo=opts.echo,
                               unpack_limit=self.unpack_limit, source_keys=self.source_keys)
            ctx.log(f"cooking {rf.name} {recipe.version} for {arch.name} (inputs {in_hash[:16]}) "
                    f"in build root {plan.key[:16]}")
            try:
                for action in recipe.actions_of(SOURCE):
                    self._run_action(ctx, action)
                ctx.builddir.mkdir(parents=True, exist_ok=True)
                for action in recipe.actions_of(BUILD):
                    self._run_action(ctx, action)
            except BuildFailed as exc:
                log.flush()
                if opts.trial:
                    raise
                hint = explain_missing(log.name, self.repo, arch, rf, recipe.macros.libdir,
                                       retry=lambda extra: self._trial(rf, arch, reqs, src_hash, in_hash, extra, opts))
                if hint:
                    exc.args = (f"{exc}\n{hint}",)
                raise
            if opts.trial:
                return None
            ctx.log("running policies")
            result = run_policies(recipe, ctx.destdir, declared=declared, suggest=self._suggest,
                                  jobs=opts.make_jobs, objcopy=ctx.objcopy, inside=recipe.macros.destdir)

        for m in [*result.missing_build_requires, *result.warnings]:
            ctx.log(f"warning: {m}")
        for digest, host in result.contents.items():
            self.repo.store.put_file(host, digest)
        log.flush()
        log_blob = self.repo.store.put_file(work / "build.log")
        self._check_cancelled()
        # one recipe may make several packages (r.PackageSpec): the others are committed first,
        # each with an input hash of its own, the last one (the recipe's own) with the cook's
        packages = result.packages
        names = sorted(packages, key=lambda p: (p == rf.name, p))
        for name in names[:-1]:
            self.repo.commit_package(PackageBuild(
                name=name, upstream=recipe.version, flavor=Flavor(arch.name, getattr(recipe, "used_flags", ())),
                source_hash=src_hash, components=packages[name], rebuild=opts.force,
                input_hash=hashlib.sha256(f"{in_hash} package {name}".encode()).hexdigest(), build_log=log_blob,
                info={"recipe": rf.path.parent.name, "made_with": rf.name, "build_requires": [str(n) for n in reqs],
                      "toolchain": str(toolchain.group), "build_root": plan.key, "cook_code": code_digest(),
                      "recipe_files": recipe_files(rf.directory),
                      **({"license": rf.attrs["license"]} if rf.attrs.get("license") else {})}))
        package = self.repo.commit_package(PackageBuild(
            name=names[-1],
            upstream=recipe.version,
            flavor=Flavor(arch.name, getattr(recipe, "used_flags", ())),  # with the use flags it read
            source_hash=src_hash,
            input_hash=in_hash,
            components=packages[names[-1]],
            info={
                "recipe": rf.path.parent.name,
                "build_requires": [str(n) for n in reqs],
                "toolchain": str(toolchain.group),
                "build_root": plan.key,
                "cook_code": code_digest(),
                "missing_build_requires": [str(m) for m in result.missing_build_requires],
                "policy_warnings": result.warnings,
                # what the SBOM names as its upstream source and license
                "sources": [a.upstream_record(recipe.macros, rf.directory) for a in recipe.actions_of(SOURCE)
                            if hasattr(a, "upstream_record")],
                **({"license": rf.attrs["license"]} if rf.attrs.get("license") else {}),
                # the recipe directory's files (recipe.py and its own sources), for the provenance
                "recipe_files": recipe_files(rf.directory),
                "recipe_text": recipe_texts(rf.directory),  # for `appbuild diff recipes/NAME`
            },
            rebuild=opts.force,
            build_log=log_blob,  # kept beside the package: its bytes are the same wherever it is cooked
        ))
        return CookResult(rf.name, arch.name, package.nvf, skipped=False,
                          missing_build_requires=[str(m) for m in result.missing_build_requires],
                          warnings=result.warnings,
                          components=[c.name for c in result.components])

    def _trial(self, rf: RecipeFile, arch: Arch, reqs: list[NVF], src_hash: str, in_hash: str, extra: list[str],
               opts: CookOptions) -> list[Missing] | None:
        """Build *rf* again with the *extra* build requirements, in a scratch work directory,
        up to the end of its build actions; commit nothing. None when it got through, else
        what it missed (see :mod:`appbuilder.cook.missing`)."""
        self._check_cancelled()
        try:
            more = [self.repo.find_one(spec, arch=arch.name) for spec in extra]
        except RepositoryError:
            return []
        recipe = rf.instantiate(arch, jobs=opts.make_jobs, use=self.use, local=self.local_for(rf))
        work = Path(tempfile.mkdtemp(dir=self.work_root, prefix=f"{rf.name}-{arch.name}-trial-"))
        lock = hold_lock(work)
        try:
            with open(work / "build.log", "wb") as log:
                try:
                    self._cook_in(rf, recipe, arch, work, log, [*reqs, *more], src_hash, in_hash,
                                  replace(opts, trial=True, echo=None))
                except Interrupted:
                    raise
                except AppbuildError:
                    log.flush()
                    return missing_in_log(log.name, arch, recipe.macros.libdir)
            return None
        finally:
            remove_tree(work)
            os.close(lock)

    def build_root(self, plan, log: Callable[[str], None]):
        """A context manager giving the root directory of *plan* for one cook."""
        return self.roots.use(plan, log=log)

    def root_binds(self) -> list[Bind]:
        """What the build root needs bound into it (nothing: it is complete)."""
        return []

    def _run_action(self, ctx: BuildContext, action: Action) -> None:
        self._check_cancelled()
        ctx.current = action
        ctx.log(f"== {portable_where(action.where, ctx.recipe_dir, self.settings.workspace)}: {action.describe()}")
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

    def _build_requirement_closure(self, reqs: list[NVF], arch: Arch, toolchain: Toolchain) -> list[Trove]:
        """The components of the build requirements and of what they need (with their
        files); requirements the toolchain meets are met by it, as in the build root."""
        if not reqs:
            return []
        closure = ClosureResolver(self.repo, arch.name).resolve(reqs, extra_provides=toolchain.provides)
        return [t for t in (self.repo.get(n) for n in closure.members) if t.kind == COMPONENT]

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


def sweep_work_dirs(work_root: Path) -> None:
    """Remove work directories that cooks killed outright left behind (their lock is free);
    those kept with ``--keep-work`` stay."""
    if not work_root.is_dir():
        return
    for d in work_root.iterdir():
        if d.is_dir() and not (d / ".keep").exists() and lock_is_free(d):
            remove_tree(d)


def search_paths(recipe: PackageRecipe, arch: Arch) -> dict[str, str]:
    """Where the compiler and pkg-config look, beyond their defaults, in the build root.

    Cooked libraries install into ``%(libdir)s`` (``/usr/lib64`` on x86_64, EL's
    layout), which Debian's compiler does not search by itself; pkg-config looks only
    at the target architecture's directories, so an x86 cook never finds x86_64 ``.pc``
    files. No LD_LIBRARY_PATH: the build root's programs run on its own libraries.
    """
    libdir = recipe.macros.libdir
    pkgdirs = [libdir, *arch.multiarch_libdirs[1:], "/usr/lib", "/usr/share"]
    env = {"PKG_CONFIG_LIBDIR": ":".join(dict.fromkeys(f"{d}/pkgconfig" for d in pkgdirs))}
    if libdir not in ("/usr/lib", "/lib", *arch.multiarch_libdirs):
        env["LIBRARY_PATH"] = libdir
    return env
