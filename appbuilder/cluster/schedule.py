"""The coordinator: cooks and image builds as Dask tasks, in build order.

**Cooks.** The work is the graph of :mod:`appbuilder.cook.batch` ((recipe, arch) nodes,
build requirements as edges, :mod:`appbuilder.graph.buildorder`). A node becomes a task
once every build requirement it has is *committed here*: a dependent must see its
requirement in the repository its worker reads, so after each commit the coordinator
brings the export up to date (incremental: only new objects and a new snapshot are
written) before it submits what the commit made ready. Everything ready is submitted at
once; the scheduler runs as many as there are worker threads. Before a task is made,
the coordinator computes the cook's input hash itself: a cook the repository already
holds is reported as up to date and never sent (so a run started again after the
coordinator was killed skips what was committed).

Each answer is committed as it arrives (:func:`commit_changeset`: hashes, consistency,
the worker's signature when keys are trusted, one transaction). A refused changeset, a
changeset that does not hold the cook asked for, or a failed build is reported; what
depends on it is not attempted, everything independent still is. A worker lost in the
middle of a task (killed, its machine gone) makes the scheduler run the task again
elsewhere; an exception in a task (a fetch that broke off) is retried ``cluster.retries``
times.

**Images.** Each (format, arch) is a task: the group is resolved here (the version is
committed and exported), a worker rebuilds that version from its pins into a scratch
image store and answers the files; each file's sha256 is checked against the answer's
manifest, the files are written into the image store under temporary names and renamed,
and the manifest is merged as a local build records it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import networkx as nx

from appbuilder.cluster.connect import Cluster, ClusterError
from appbuilder.cluster.worker import COOK_SETTINGS, CookReply, CookTask, FileData, ImageReply, ImageTask, files_of
from appbuilder.cook.batch import BatchResult, work_graph
from appbuilder.cook.cook import Cooker, CookResult
from appbuilder.core.arch import Arch
from appbuilder.core.errors import AppbuildError, Interrupted
from appbuilder.core.settings import Settings
from appbuilder.recipe.library import library_files
from appbuilder.recipe.loader import RecipeFile
from appbuilder.repository import index
from appbuilder.repository.repo import Repository
from appbuilder.repository.versions import NVF


# ------------------------------------------------------------------ the export the workers read


class Export:
    """The repository's export (``repository.export_to``) and the URL the workers read it at:
    ``cluster.repository`` (then this process exports after each commit), or else
    :class:`appbuilder.repository.serve.RepositoryServer` (what ``appbuild repo serve`` runs)
    in a process of its own (:mod:`appbuilder.repository.serve_process`) while the run lasts,
    on ``cluster.serve``."""

    def __init__(self, settings: Settings, repo: Repository, cluster: Cluster):
        from appbuilder.repository.keys import signer_from

        self.settings = settings
        self.repo = repo
        self.signer = signer_from(settings)
        dest = str(settings.get("repository.export_to"))
        self.dest = dest if "://" in dest else str(_place(settings, dest))
        self.server = None
        self._mark = None  # nothing exported yet by this process
        self._last = None  # this process's last export (its snapshot: the base of the next delta)
        self._url = settings.get("cluster.repository")
        if not self._url:
            if "://" in self.dest:
                raise ClusterError(f"the repository is exported to {self.dest}: set cluster.repository to the URL "
                                   "the workers read it from")
            self._serve(Path(self.dest), cluster)

    def _serve(self, root: Path, cluster: Cluster) -> None:
        from appbuilder.repository.serve_process import ServerProcess

        wanted = self.settings.get("cluster.serve")
        host, _, port = (wanted or "").partition(":")
        try:
            port_number = int(port or 0)
        except ValueError:
            raise ClusterError(f"cluster.serve: {wanted!r} is not HOST or HOST:PORT") from None
        root.mkdir(parents=True, exist_ok=True)
        # a process of its own (serve_process.py): its exports and the workers' fetches do not
        # take this process's interpreter lock from the scheduling; its first export runs while
        # this process connects to the cluster and plans the work. It exports when this says so
        # (update), not on every request of a worker: a snapshot made for each task would make
        # every worker read the whole index again for each cook; and a tree this coordinator (or
        # an earlier run) exported from the very same index state is not read again
        # (skip_unchanged): the run starts at once
        key = self.settings.get("repository.signing_key")
        self.server = ServerProcess(self.repo.path, self.repo.label, root,
                                    bind=host or _local_address(cluster.address), port=port_number,
                                    signing_key=_place(self.settings, key) if key else None, skip_unchanged=True)
        self._mark = index.state(self.repo.db)

    @property
    def url(self) -> str:
        """The URL the workers read the export at."""
        return self.server.url if self.server is not None else self._url

    def update(self) -> None:
        """Write what changed in the repository since the last export (nothing when nothing did);
        the server's first export (started with it) is waited for."""
        if self.server is not None:
            self.server.ready()
        mark = index.state(self.repo.db)  # changes with every commit
        if mark and mark == self._mark:
            return
        if self.server is not None:
            self.server.refresh(force=True)
        else:
            from appbuilder.repository.export import export_repository

            self._last = export_repository(self.repo, self.dest, signer=self.signer, previous=self._last,
                                           endpoint_url=self.settings.get("publish.endpoint_url"),
                                           skip_unchanged=True)
        self._mark = mark

    @property
    def trusted(self) -> bytes | None:
        """The public key the workers must find the snapshot signed with."""
        return self.signer.public_pem() if self.signer else None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


def _place(settings: Settings, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else settings.workspace / path


def _local_address(scheduler: str) -> str:
    """The address of this machine the scheduler's network reaches it at: the source
    address the system's routing table picks for the scheduler (a UDP socket's
    ``connect`` sends nothing), as Dask's own ``get_ip`` finds it. Done here with the
    standard library: Dask is still being imported on another thread then
    (:class:`appbuilder.cluster.connect.PendingCluster`) and its modules would wait for it."""
    parts = urlsplit(scheduler)
    host = parts.hostname or "127.0.0.1"
    if host in ("localhost", "127.0.0.1", "::1"):
        return "127.0.0.1"
    try:
        port = parts.port or 8786
    except ValueError:
        port = 8786
    for target in (host, "192.0.2.1"):  # no route to the scheduler: the default route's address
        try:
            family = socket.AF_INET6 if ":" in target else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((target, port))
                return sock.getsockname()[0]
        except OSError:
            continue
    try:  # no route at all: the address this machine's name has (Dask's choice too)
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


# ------------------------------------------------------------------ what a task carries


def recipe_place(settings: Settings, rf: RecipeFile) -> str:
    """Where the recipe's directory goes in a worker's workspace: where it is in this one
    (``recipes/NAME``), or ``recipes/NAME`` for one outside the workspace."""
    directory = rf.directory.resolve()
    workspace = settings.workspace.resolve()
    if directory.is_relative_to(workspace):
        return directory.relative_to(workspace).as_posix()
    return f"recipes/{directory.name}"


def task_files(settings: Settings, rf: RecipeFile) -> list[FileData]:
    """The recipe's directory, the recipe library files it loads and the source keys, relative
    to the workspace (a recipe directory may hold much more than recipe.py)."""
    paths = [rf.directory, *library_files(rf.path)]
    keys = _place(settings, settings.get("cook.source_keys"))
    if keys.is_dir() and keys.resolve().is_relative_to(settings.workspace.resolve()):
        paths.append(keys)
    return files_of(settings.workspace, paths, place={rf.directory: recipe_place(settings, rf)})


def task_values(settings: Settings) -> dict:
    values = {k: settings.get(k) for k in COOK_SETTINGS}
    keys = _place(settings, settings.get("cook.source_keys"))
    if not keys.resolve().is_relative_to(settings.workspace.resolve()):
        values["cook.source_keys"] = "keys/upstream"  # keys outside the workspace are not sent
    return values


# ------------------------------------------------------------------ cooks


def cook_on_cluster(settings: Settings, repo: Repository, cluster: Cluster, recipes: list[RecipeFile],
                    arches: list[Arch], *, force: bool = False, report: Callable[[CookResult], None] = lambda r: None,
                    say: Callable[[str], None] = lambda m: None, export: Export | None = None,
                    task: Callable = None) -> BatchResult:
    """Cook *recipes* for *arches* on the cluster, in build order (see the module docstring).

    *task* is the function the workers run (default :func:`appbuilder.cluster.worker.cook_task`)."""
    from appbuilder.cluster.worker import cook_task
    from appbuilder.repository.changeset import commit_changeset
    from appbuilder.repository.keys import trusted_from

    task = task or cook_task
    own_export = export is None
    export = export or Export(settings, repo, cluster)  # its first export runs while the work is planned
    work = work_graph(recipes, arches)
    by_name = {r.name: r for r in recipes}
    trusted = trusted_from(settings)
    cooker = Cooker(settings, repo, warn=say)
    try:
        toolchain = str(cooker.toolchain().group)  # resolved here once (committed before the first task)
    except AppbuildError:
        cluster.wait()  # an unreachable cluster is the first thing to say
        raise
    values = task_values(settings)
    retries = settings.get("cluster.retries")
    result = BatchResult()
    done: set = set()
    blocked: set = set()
    running: dict = {}  # future -> (node, input hash)
    files: dict[str, list[FileData]] = {}

    def label(node) -> str:
        return f"{node[0]} ({node[1]})"

    def fail(node, why: str) -> None:
        blocked.add(node)
        result.failed[label(node)] = why
        for d in nx.descendants(work, node):
            if d not in blocked:
                blocked.add(d)
                result.not_attempted[label(d)] = f"{label(node)} failed"

    def ready() -> list:
        busy = {n for n, _ in running.values()}
        return sorted(n for n in work.nodes if n not in done and n not in blocked and n not in busy
                      and all(p in done for p in work.predecessors(n)))

    def submit(queue) -> int:
        """Submit every ready node (skipping what is committed); how many were submitted."""
        sent = 0
        while True:
            nodes = ready()
            if not nodes:
                return sent
            for node in nodes:
                rf, arch = by_name[node[0]], work.nodes[node]["arch"]
                try:
                    _, in_hash, _ = cooker.input_hash(rf, arch)
                except AppbuildError as exc:
                    fail(node, str(exc))
                    continue
                have = None if force else repo.by_input(in_hash)
                if have:
                    done.add(node)
                    res = CookResult(rf.name, arch.name, have, skipped=True)
                    result.cooked.append(res)
                    report(res)
                    continue
                if rf.name not in files:
                    files[rf.name] = task_files(settings, rf)
                if not sent:  # the workers read what is committed now (the toolchain resolved above)
                    export.update()
                job = CookTask(recipe=recipe_place(settings, rf), name=rf.name, arch=arch.name, files=files[rf.name], repository=export.url,
                               values=values, toolchain=toolchain, input_hash=in_hash, force=force,
                               make_jobs=0, trusted=export.trusted, attrs=dict(rf.attrs))
                fut = cluster.client.submit(task, job, key=f"cook-{rf.name}-{arch.name}-{in_hash[:16]}-{time.time_ns()}",
                                            pure=False, retries=retries)
                running[fut] = (node, in_hash)
                queue.add(fut)
                sent += 1
            # nodes skipped as committed may have made others ready: loop

    try:
        client = cluster.client  # (a connection still being made is waited for)
        from distributed import as_completed  # imported by now: importing it sooner would wait for it

        queue = as_completed(loop=client.loop)
        submit(queue)
        for fut in queue:
            node, in_hash = running.pop(fut)
            try:
                reply: CookReply = fut.result()
            except Exception as exc:  # the task itself broke (after its retries), or its workers kept dying
                fail(node, f"the cluster could not run the cook: {type(exc).__name__}: {exc}")
                continue
            if reply.error:
                fail(node, reply.error)
                continue
            if not reply.skipped:
                try:
                    committed = commit_changeset(repo, reply.changeset, trusted=trusted)
                except AppbuildError as exc:
                    say(f"{label(node)}: the changeset from {reply.worker} was refused: {exc}")
                    fail(node, f"the changeset from worker {reply.worker} was refused: {exc}")
                    continue
                theirs = {str(n) for n in committed}
            nvf = repo.by_input(in_hash)
            if nvf is None:
                fail(node, f"the answer of worker {reply.worker} does not hold the cook asked for "
                           f"(inputs {in_hash[:16]}): it names {', '.join(reply.troves) or 'nothing'}")
                continue
            done.add(node)
            res = CookResult(node[0], node[1], nvf, skipped=reply.skipped, seconds=reply.seconds,
                             missing_build_requires=reply.missing_build_requires, warnings=reply.warnings,
                             components=reply.components)
            result.cooked.append(res)
            report(res)
            if not reply.skipped:
                say(f"  {node[0]} ({node[1]}) on {reply.worker}: build {reply.build_seconds:.2f} s, "
                    f"task {reply.seconds:.2f} s, changeset {len(reply.changeset) / 1e6:.2f} MB"
                    + (f" ({len(theirs)} troves)" if len(theirs) > 1 else ""))
            if any(s not in done and s not in blocked for s in work.successors(node)):
                export.update()  # dependents must see this commit
            submit(queue)
    except KeyboardInterrupt:
        cluster.client.cancel(list(running))
        raise Interrupted("interrupted: the cluster's running cooks were cancelled; what was committed stays, "
                          "nothing unfinished was") from None
    finally:
        if own_export:
            export.close()
    return result


def bring_up_to_date(settings: Settings, repo: Repository, cluster: Cluster, arches: list[Arch], progress, *,
                     recipes: list[RecipeFile] | None = None, force: bool = False, export: Export | None = None):
    """:func:`appbuilder.cook.uptodate.bring_up_to_date` with the cooks on *cluster*: import
    what is missing (here), cook what changed (there)."""
    from appbuilder.cook.uptodate import UpToDate, failure_summary, import_missing
    from appbuilder.recipe.loader import RECIPE_FILE, find_recipes

    own_export = export is None
    export = export or Export(settings, repo, cluster)  # its first export runs while this goes on
    try:
        # an unreachable cluster is said before anything is imported
        imported = import_missing(settings, repo, progress, before=cluster.wait)
        if recipes is None:
            has_any = any(settings.recipes_dir.glob(f"*/{RECIPE_FILE}"))
            recipes = find_recipes(settings.recipes_dir) if has_any else []
        cooks = cook_on_cluster(settings, repo, cluster, recipes, arches, force=force, report=progress.cooked,
                                say=progress.say, export=export)
    finally:
        if own_export:
            export.close()
    error = failure_summary(cooks)
    if error:
        raise error
    return UpToDate(imported, cooks)


# ------------------------------------------------------------------ images


@dataclass
class PlacedImages:
    """Images a worker built, now in the image store."""

    group: str
    arch: str
    directory: Path
    files: dict[str, list[Path]]
    worker: str
    seconds: float
    manifest: object = None


def build_on_cluster(settings: Settings, repo: Repository, cluster: Cluster, group: str, arches: list[str],
                     formats: str, *, version: str | None = None, size: int | None = None, jobs: int = 2,
                     force: bool = False, boot: str = "disk", say: Callable[[str], None] = print,
                     export: Export | None = None) -> list[PlacedImages]:
    """Build each (format, arch) of *group* as a task (the group resolved here first, unless
    *version* pins one); the answers go into the image store as they arrive."""
    from distributed import as_completed

    from appbuilder.cluster.worker import image_task
    from appbuilder.cook.topdown import resolve_topdown
    from appbuilder.formats.specs import resolve_formats
    from appbuilder.graph.groups import find_group
    from appbuilder.store.images import ImageStore

    store = ImageStore(settings.images)
    own_export = export is None
    export = export or Export(settings, repo, cluster)
    values = task_values(settings)
    extra = files_of(settings.workspace, [settings.formats_dir]) if settings.formats_dir.is_dir() else []
    retries = settings.get("cluster.retries")
    futures = {}
    try:
        tasks = []
        for arch in arches:
            specs = resolve_formats(formats, arch, settings.formats_dir)  # bad names fail before any work
            if version is None:
                trove = resolve_topdown(settings, repo, group, arch, say=lambda m: say(f"[{arch}] {m}")).group
            else:
                trove = repo.get(find_group(repo, group, arch, version), with_files=False)
            revision = trove.version.revision
            directory = store.directory(group, revision, arch, network=boot == "network")
            basename = f"{trove.name}-{revision}-{arch}" + ("-network" if boot == "network" else "")
            for batch in _by_outputs(specs, basename):  # formats writing the same file (raw, ami) go together
                store.check_free(directory, [n for spec in batch for n in spec.outputs(basename)], force=force)
                tasks.append(ImageTask(group=group, arch=arch, revision=revision,
                                       formats=",".join(spec.name for spec in batch), repository="", values=values,
                                       files=extra, size=size, jobs=jobs, boot=boot, trusted=export.trusted))
        export.update()
        queue = as_completed(loop=cluster.client.loop)
        for t in tasks:
            t = ImageTask(**{**t.__dict__, "repository": export.url})
            fut = cluster.client.submit(image_task, t, key=f"image-{group}-{t.arch}-{t.formats}-{time.time_ns()}",
                                        pure=False, retries=retries)
            futures[fut] = t
            queue.add(fut)
            say(f"[{t.arch}] {t.formats}: sent to the cluster")
        placed, failed = [], []
        for fut in queue:
            t = futures.pop(fut)
            try:
                reply: ImageReply = fut.result()
            except Exception as exc:
                failed.append(f"{t.formats} ({t.arch}): the cluster could not run the build: {type(exc).__name__}: {exc}")
                continue
            if reply.error:
                failed.append(f"{t.formats} ({t.arch}) on {reply.worker}: {reply.error}")
                continue
            try:
                placed.append(place_images(settings, repo, store, reply, t, force=force))
            except AppbuildError as exc:
                failed.append(f"{t.formats} ({t.arch}) from {reply.worker}: {exc}")
                continue
            say(f"[{t.arch}] {t.formats}: built on {reply.worker} in {reply.seconds:.1f} s")
        if failed:
            raise AppbuildError(f"{len(failed)} image build(s) failed on the cluster:\n  " + "\n  ".join(failed))
        return placed
    except KeyboardInterrupt:
        cluster.client.cancel(list(futures))
        raise Interrupted(f"interrupted while building {group} on the cluster; no image was written") from None
    finally:
        if own_export:
            export.close()


def _by_outputs(specs: list, basename: str) -> list[list]:
    """*specs* one per task, except formats that write a common file, which share one."""
    batches: list[tuple[set, list]] = []
    for spec in specs:
        outputs = set(spec.outputs(basename))
        for names, batch in batches:
            if names & outputs:
                names |= outputs
                batch.append(spec)
                break
        else:
            batches.append((outputs, [spec]))
    return [batch for _, batch in batches]


def place_images(settings: Settings, repo: Repository, store, reply: ImageReply, task: ImageTask, *,
                 force: bool) -> PlacedImages:
    """Check a worker's image files against the sha256 its manifest records, write them into
    the image store (temporary names, then renamed) and merge the manifest."""
    import hashlib
    import shutil

    from appbuilder.graph.groups import staged_troves
    from appbuilder.store import manifest as mf
    from appbuilder.store import provenance

    try:
        manifest = mf.Manifest.from_dict(reply.manifest)
    except Exception as exc:  # hostile input: anything malformed is a refusal
        raise AppbuildError(f"the answer's manifest cannot be read: {type(exc).__name__}: {exc}") from None
    parts = Path(reply.directory).parts
    if len(parts) != 3 or any(p in ("", ".", "..") or "/" in p for p in parts) or parts[0] != task.group \
            or parts[1] != task.revision or not parts[2].startswith(task.arch):
        raise AppbuildError(f"the answer names the store directory {reply.directory!r}, not one of "
                            f"{task.group}={task.revision} ({task.arch})")
    if manifest.trove.split("=")[0] != task.group or manifest.arch != task.arch:
        raise AppbuildError(f"the answer's manifest is of {manifest.trove} ({manifest.arch}), not {task.group} "
                            f"({task.arch})")
    wanted = list(dict.fromkeys([n for paths in manifest.formats.values() for n in paths]
                                + list(manifest.sboms or [])))  # raw and ami share a file
    for name in wanted:
        if "/" in name or name.startswith(".") or name not in reply.files:
            raise AppbuildError(f"the answer lacks {name!r}, which its manifest names")
        record = manifest.files.get(name) or {}
        got = hashlib.sha256(reply.files[name]).hexdigest()
        if record.get("sha256") != got or record.get("size") != len(reply.files[name]):
            raise AppbuildError(f"{name}: {got[:16]} ({len(reply.files[name])} bytes) received, the manifest "
                                f"records {str(record.get('sha256'))[:16]} ({record.get('size')} bytes): refused")
    directory = settings.images / Path(*parts)
    recorded = store.manifest(task.group, task.revision, task.arch)
    if recorded is not None and recorded.trove == manifest.trove:
        bad = mf.mismatches(recorded, {n: manifest.files[n] for n in wanted})
        if bad:
            raise AppbuildError(f"{manifest.trove} did not rebuild to the bytes recorded in {directory}; nothing was "
                                "written:\n  " + "\n  ".join(bad))
    group = repo.get(NVF.parse(manifest.trove), with_files=False)
    resolved = provenance.materials(settings, repo, group, staged_troves(repo, group))
    scratch = store.scratch()
    try:
        paths = []
        for name in wanted:
            path = scratch / name
            path.write_bytes(reply.files[name])
            paths.append(path)
        sboms = set(manifest.sboms or [])
        placed = store.commit([p for p in paths if p.name not in sboms], directory, force=force)
        placed += store.commit([p for p in paths if p.name in sboms], directory, force=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    by_name = {p.name: p for p in placed}
    merged = store.record(directory, manifest, [f"== built on {reply.worker}", *reply.log], documents=lambda m: {
        m.provenance: provenance.render(provenance.statement(m, resolved, size=task.size))} if m.provenance else {})
    files = {fmt: [by_name[n] for n in names] for fmt, names in manifest.formats.items()}
    return PlacedImages(task.group, task.arch, directory, files, reply.worker, reply.seconds, merged)

