"""What runs on a Dask worker: one cook, or one image build, from the repository over HTTP.

A task carries everything the coordinator knows that the worker needs (the recipe's
files as bytes, the settings that shape a cook, the pin of the toolchain group, the
input hash the coordinator computed) and the URL of the repository's export. The
worker shares nothing else with the coordinator: it writes the recipe into a scratch
workspace of its own, opens the repository over HTTP (:func:`open_remote`: objects are
fetched when a build root or a source needs them and cached in the worker's directory),
cooks there, and answers with a changeset (:func:`make_changeset`: the new troves and
the objects the export lacks), which the coordinator verifies and commits.

A build that fails is an answer too (:class:`CookReply` with ``error``), not an
exception: Dask retries exceptions (a lost worker, a fetch that broke off), and a
failing build would only fail again.

The worker keeps its caches (objects read over HTTP, build roots, the lookaside cache of
sources) under ``APPBUILD_WORKER_DIR`` if set, else the Dask worker's local directory,
in ``appbuild/``; each task's workspace is a scratch directory there, removed afterwards
(:func:`task_workspace`), and recipes' kept answers are in its ``cache/``.
A worker signs its changesets with the key ``APPBUILD_REPO_SIGNING_KEY`` names on the
worker's machine, if any.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import shutil
import socket
import stat
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

from appbuilder.core.cpus import usable_cpus
from appbuilder.core.errors import AppbuildError

WORKER_DIR_ENV = "APPBUILD_WORKER_DIR"
# settings a cook reads (the others stay at their defaults on the worker)
COOK_SETTINGS = ("label", "source_date_epoch", "toolchain", "mirrors", "cook.command_timeout", "cook.flavor", "use",
                 "cook.max_unpacked_size", "cook.source_keys", "scripts.timeout", "sources", "os.repository",
                 "os.servers", "os.proxy", "os.data_size")


@dataclass(frozen=True)
class FileData:
    """One file of a workspace, carried in a task: its path (relative, POSIX), mode and bytes,
    or the target of a symbolic link."""

    path: str
    data: bytes = b""
    mode: int = 0o644
    link: str | None = None


def files_of(workspace: Path, paths: list[Path], *, place: dict[Path, str] | None = None) -> list[FileData]:
    """The files under *paths* (files or directories) as :class:`FileData`, named by their path
    in *workspace*; *place* names where a path outside the workspace goes (its relative name)."""
    out: dict[str, FileData] = {}
    workspace = workspace.resolve()
    for given in paths:
        top = Path(given).resolve()
        if top.is_relative_to(workspace):
            prefix = top.relative_to(workspace)
        elif place and Path(given) in place:
            prefix = Path(place[Path(given)])
        else:
            raise AppbuildError(f"{given} is outside the workspace {workspace}: a task cannot carry it")
        walk = [top] if not top.is_dir() else sorted(
            p for p in top.rglob("*") if "__pycache__" not in p.parts and not p.name.endswith(".pyc"))
        for p in walk:
            if p.is_dir() and not p.is_symlink():
                continue
            rel = (prefix / p.relative_to(top)).as_posix() if p != top else prefix.as_posix()
            if p.is_symlink():
                out[rel] = FileData(rel, link=os.readlink(p))
            elif p.is_file():
                out[rel] = FileData(rel, p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
            else:  # never read: a FIFO would wait forever
                raise AppbuildError(f"{p} is neither a file, a directory nor a symbolic link (a FIFO, device or "
                                    f"socket): a task cannot carry it")
    return list(out.values())


def write_files(root: Path, files: list[FileData]) -> None:
    """Recreate *files* beneath *root*, refusing paths that lead outside it."""
    for f in files:
        rel = PurePosixPath(f.path)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise AppbuildError(f"a task names the file {f.path!r}, which is not a relative path inside its workspace")
        target = root.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.link is not None:
            target.symlink_to(f.link)
        else:
            target.write_bytes(f.data)
            target.chmod(f.mode & 0o7777)


@dataclass(frozen=True)
class CookTask:
    """One cook for a worker (picklable; no path of the coordinator in it)."""

    recipe: str  # the recipe's directory, relative to the workspace ("recipes/hello")
    name: str
    arch: str
    files: list[FileData]  # the recipe directory, the library files it loads, the source keys
    repository: str  # URL of the repository's export
    values: dict  # settings (key -> value), COOK_SETTINGS
    toolchain: str  # the toolchain group's NVF, as the coordinator resolved it
    input_hash: str  # what the coordinator computed; the worker must agree
    force: bool = False
    make_jobs: int = 0  # 0: the worker's cores
    trusted: bytes | None = None  # the public key (PEM) the export's snapshot must be signed with
    attrs: dict | None = None  # what the recipe's class says, as the coordinator read it (saves reading it again)


@dataclass
class CookReply:
    """A worker's answer: a changeset, or why the build failed."""

    name: str
    arch: str
    worker: str
    nvf: str = ""
    skipped: bool = False  # the export held the cook already
    changeset: bytes = b""
    troves: list[str] = field(default_factory=list)
    seconds: float = 0.0  # the whole task
    build_seconds: float = 0.0  # the cook alone
    components: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing_build_requires: list[str] = field(default_factory=list)
    error: str | None = None


def worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return socket.gethostname()


def worker_home() -> Path:
    """Where this worker keeps its caches (see the module docstring)."""
    env = os.environ.get(WORKER_DIR_ENV)
    if env:
        top = Path(env)
    else:
        try:
            from distributed import get_worker

            top = Path(get_worker().local_directory)
        except (ImportError, ValueError):
            top = Path(tempfile.gettempdir()) / f"appbuild-worker-{os.getuid()}"
    home = top / "appbuild"
    home.mkdir(parents=True, exist_ok=True)
    return home


def _settings(workspace: Path, home: Path, values: dict):
    from appbuilder.core.settings import Settings

    # the logs of failed cooks stay on the worker (home/logs): the error names the file there
    return Settings(workspace=workspace, repository=workspace / "repo" / "data", cache=home / "cache",
                    logs=home / "logs", images=workspace / "images", values=dict(values))


def _trusted(trusted: bytes | None, scratch: Path):
    if not trusted:
        return None
    from appbuilder.repository.keys import TrustedKeys

    path = scratch / "coordinator.pub"
    path.write_bytes(trusted)
    return TrustedKeys.load([path])


def _signer():
    from appbuilder.core.settings import from_environment
    from appbuilder.repository.keys import Signer

    path = from_environment("repository.signing_key")
    return Signer.load(path) if path else None


def open_repository(url: str, home: Path, trusted: bytes | None, scratch: Path):
    """The repository of the export at *url*, its objects cached in the worker's home, its
    index a private copy in *scratch*: what this task commits stays out of the cached
    snapshot other tasks of this worker open."""
    from appbuilder.repository.remote import open_remote

    return open_remote(url, home / "remote", trusted=_trusted(trusted, scratch), scratch=scratch)


def _in_scratch(work, task, reply, prefix: str):
    """Run ``work(task, settings, repo, reply)`` in a scratch workspace of the worker's home
    holding the task's files, with the repository of the task's export (closed afterwards);
    the workspace is removed afterwards. A build's failure becomes the reply's error (not an
    exception, which Dask would retry); the reply's seconds are the task's."""
    from appbuilder.recipe.answers import kept_in

    start = time.monotonic()
    home = worker_home()
    with task_workspace(home / "tasks", prefix) as workspace:
        try:
            write_files(workspace, task.files)
            (workspace / "repo").mkdir(exist_ok=True)
            settings = _settings(workspace, home, task.values)
            repo = open_repository(task.repository, home, task.trusted, workspace)
            try:
                with kept_in(settings.cache):  # answers of reading recipes, as the coordinator keeps them
                    work(task, settings, repo, reply)
            finally:
                repo.close()
        except AppbuildError as exc:
            reply.error = str(exc)
    reply.seconds = time.monotonic() - start
    return reply


@contextmanager
def task_workspace(tasks: Path, prefix: str) -> Iterator[Path]:
    """A scratch workspace for one task, removed afterwards: ``tasks/PREFIX N``, the first N
    no running task holds (each holds the lock file beside its directory; a task killed
    midway lets go of it, and the next one clears what it left). One recipe's tasks thus
    cook at the same path, one after the other, and the answers of reading the recipe,
    which name its path, are kept between them (:mod:`appbuilder.recipe.answers`)."""
    tasks.mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        with open(tasks / f"{prefix}{n}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a running task's
            workspace = tasks / f"{prefix}{n}"
            shutil.rmtree(workspace, ignore_errors=True)
            workspace.mkdir()
            try:
                yield workspace
            finally:
                shutil.rmtree(workspace, ignore_errors=True)
            return


def cook_task(task: CookTask) -> CookReply:
    """Cook *task* in a scratch workspace; a changeset, or the build's failure, as the answer."""
    return _in_scratch(_cook, task, CookReply(task.name, task.arch, worker_name()), f"{task.name}-{task.arch}-")


def _cook(task: CookTask, settings, repo, reply: CookReply) -> None:
    from appbuilder.cook.cook import Cooker, CookOptions
    from appbuilder.cook.toolchain import Toolchain
    from appbuilder.core.arch import get_arch
    from appbuilder.recipe.loader import RECIPE_FILE, RecipeFile, load_recipe
    from appbuilder.repository.changeset import make_changeset
    from appbuilder.repository.versions import NVF

    pin = NVF.parse(task.toolchain)
    group = repo.get(pin, with_files=False)

    class WorkerCooker(Cooker):
        """Cooks with the toolchain the coordinator resolved (no group recipe here)."""

        def toolchain(self):
            return Toolchain(repo, group.nvf, list(group.members), dict(group.info.get("links") or {}))

    cooker = WorkerCooker(settings, repo)
    path = settings.workspace / task.recipe / RECIPE_FILE
    rf = RecipeFile(path, dict(task.attrs)) if task.attrs else load_recipe(path)
    arch = get_arch(task.arch)
    _, in_hash, _ = cooker.input_hash(rf, arch)
    if in_hash != task.input_hash:
        raise AppbuildError(f"{task.name} ({task.arch}): the worker {reply.worker} computes the input hash "
                            f"{in_hash[:16]}, the coordinator {task.input_hash[:16]}: is the same appbuild "
                            "installed on both?")
    t = time.monotonic()
    jobs = task.make_jobs or usable_cpus()
    result = cooker.cook(rf, CookOptions(arch=arch, force=task.force, make_jobs=jobs))
    reply.build_seconds = time.monotonic() - t
    reply.nvf = str(result.nvf)
    if result.skipped:
        reply.skipped = True
        return
    # the cook's packages: its own, and those its r.PackageSpec made (recorded "made_with"),
    # among what this task committed to its private index
    made = [n for n in repo.local_commits()
            if n == result.nvf or repo.get(n, with_files=False).info.get("made_with") == rf.name]
    made = sorted(made, key=lambda n: (n != result.nvf, str(n)))
    reply.troves = [str(n) for n in made]
    reply.changeset = _bytes(make_changeset(repo, made, signer=_signer(), rebuild=task.force))
    reply.components = result.components
    reply.warnings = result.warnings
    reply.missing_build_requires = result.missing_build_requires


def _bytes(changeset) -> bytes:
    """make_changeset answers bytes or the path of a file holding them."""
    if isinstance(changeset, (bytes, bytearray)):
        return bytes(changeset)
    return Path(changeset).read_bytes()


# ------------------------------------------------------------------ image builds


@dataclass(frozen=True)
class ImageTask:
    """One image build (a group version's formats for one architecture) for a worker."""

    group: str
    arch: str
    revision: str  # the group version the coordinator resolved (the worker rebuilds it from its pins)
    formats: str  # comma list
    repository: str
    values: dict
    files: list[FileData]  # the workspace's formats/ (if any)
    size: int | None = None
    jobs: int = 2
    boot: str = "disk"
    trusted: bytes | None = None


@dataclass
class ImageReply:
    group: str
    arch: str
    worker: str
    directory: str = ""  # the image store's directory name parts: GROUP/REVISION/ARCH[-network]
    files: dict[str, bytes] = field(default_factory=dict)  # every file of the store directory
    sha256: dict[str, str] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def image_task(task: ImageTask) -> ImageReply:
    """Build *task*'s images into a scratch image store; answer its files with their sha256."""
    return _in_scratch(_build, task, ImageReply(task.group, task.arch, worker_name()), f"{task.group}-{task.arch}-")


def _build(task: ImageTask, settings, repo, reply: ImageReply) -> None:
    from appbuilder.store import manifest as mf
    from appbuilder.store.build import BuildRequest, build_images

    lines: list[str] = []
    built = build_images(settings, repo, BuildRequest(
        group=task.group, arches=[task.arch], formats=task.formats, version=task.revision, size=task.size,
        jobs=task.jobs, cook=False, boot=task.boot), say=lines.append)
    directory = built[0].directory
    reply.directory = directory.relative_to(settings.images).as_posix()
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            data = path.read_bytes()
            reply.files[path.name] = data
            reply.sha256[path.name] = hashlib.sha256(data).hexdigest()
    recorded = mf.load(directory)
    if recorded is None:
        raise AppbuildError(f"the build recorded no {mf.MANIFEST} in {directory}")
    reply.manifest = recorded.to_dict()
    reply.log = lines
