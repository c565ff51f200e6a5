"""Publish a directory tree as a new revision of a repository (``appbuild fs publish``).

1. Read the current manifest and catalog of ``OUT/NAME``, if there are any: the new
   revision is the old one plus one, and a file whose path, size and modification
   time (to the nanosecond) are unchanged keeps its content hash without being
   read again (what makes republishing a large tree after a small change cheap;
   ``rehash=True`` reads everything).
2. Walk the tree in name order, assigning inode numbers parents first. Each file's
   content is compressed and hashed (in parallel); an object that is not in
   ``data/`` yet is written there (temporary name, then rename).
3. Write the catalog of the tree as an object, then the signed manifest naming it:
   last, and atomically. Until then clients keep seeing the previous revision.

One publisher at a time: ``OUT/NAME/.publish.lock`` is held (``flock``) throughout.
Objects of older revisions stay, so clients that still use an older catalog keep
working; nothing is deleted.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import write_atomic
from appbuilder.fs import catalog as catalog_mod
from appbuilder.fs import keys
from appbuilder.fs import manifest as manifest_mod
from appbuilder.fs.catalog import ROOT_INODE, Catalog, CatalogError, Entry
from appbuilder.fs.manifest import MANIFEST_NAME, Manifest, ManifestError
from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectError, ObjectStore, put_file

REPO_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-_")


class PublishError(AppbuildError):
    """The tree cannot be published (bad input, unreadable file, bad repository name)."""


@dataclass
class PublishReport:
    repository: str
    revision: int
    catalog: str
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    unchanged: int = 0  # files whose hash was taken from the previous catalog
    objects_written: int = 0
    objects_present: int = 0  # objects that were already there
    bytes_written: int = 0  # objects + catalog + manifest written by this publish
    bytes_referenced: int = 0  # compressed size of everything the new catalog references
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # special files not published

    def summary(self) -> str:
        return (f"{self.repository} revision {self.revision}: {self.files} files, {self.directories} directories, "
                f"{self.symlinks} symlinks; {self.objects_written} new objects, {self.objects_present} already "
                f"there, {self.unchanged} files unchanged; {self.bytes_written} bytes written "
                f"in {self.seconds:.2f} s")


def check_repository_name(name: str) -> None:
    if not name or not set(name) <= REPO_NAME_CHARS or name[0] in ".-" or ".." in name:
        raise PublishError(f"bad repository name {name!r}: lower-case letters, digits, '.', '-' and '_' "
                           f"(like sft.cern.ch)")


def _previous(repo_dir: Path, store: ObjectStore) -> tuple[int, dict[str, Entry]]:
    """(revision, entries by path) of what is published now; (0, {}) for a new repository."""
    path = repo_dir / MANIFEST_NAME
    if not path.exists():
        return 0, {}
    try:
        current = manifest_mod.parse(path.read_bytes()).manifest
    except ManifestError as exc:
        raise PublishError(f"{path}: {exc}; move it away to start the repository afresh") from None
    try:
        old = Catalog(store.get(current.catalog, CATALOG_SUFFIX))
    except (ObjectError, CatalogError):
        return current.revision, {}  # every file is read again; the catalog is rewritten
    try:
        return current.revision, old.walk()
    finally:
        old.close()


def _name(entry: os.DirEntry) -> str:
    try:
        entry.name.encode("utf-8")
    except UnicodeEncodeError:
        raise PublishError(f"{os.fsdecode(entry.path)!r}: file names must be UTF-8") from None
    return entry.name


def scan_tree(source: Path) -> tuple[list[Entry], dict[int, Path], list[str]]:
    """Catalog entries of *source* (inodes parents first), host paths of files, skipped paths."""
    try:
        st = source.stat()
    except OSError as exc:
        raise PublishError(f"cannot publish {source}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise PublishError(f"{source} is not a directory")
    entries = [Entry(ROOT_INODE, 0, "", st.st_mode, 0, int(st.st_mtime), st.st_mtime_ns, nlink=2)]
    hosts: dict[int, Path] = {}
    skipped: list[str] = []
    pending = deque([(ROOT_INODE, source, "")])  # breadth first: a directory's inode precedes its children's
    while pending:
        parent, directory, rel = pending.popleft()
        try:
            children = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise PublishError(f"cannot list {directory}: {exc.strerror}") from None
        for child in children:
            name = _name(child)
            path = f"{rel}/{name}"
            try:
                cst = child.stat(follow_symlinks=False)
                target = os.readlink(child.path) if stat.S_ISLNK(cst.st_mode) else None
            except OSError as exc:
                raise PublishError(f"cannot read {child.path}: {exc.strerror} (did it change while publishing?)") from None
            inode = len(entries) + 1
            if stat.S_ISDIR(cst.st_mode):
                entries.append(Entry(inode, parent, name, cst.st_mode, 0, int(cst.st_mtime), cst.st_mtime_ns, nlink=2))
                entries[parent - 1].nlink += 1
                pending.append((inode, Path(child.path), path))
            elif stat.S_ISLNK(cst.st_mode):
                entries.append(Entry(inode, parent, name, stat.S_IFLNK | 0o777, len(os.fsencode(target)),
                                     int(cst.st_mtime), cst.st_mtime_ns, symlink=target))
            elif stat.S_ISREG(cst.st_mode):
                entries.append(Entry(inode, parent, name, cst.st_mode, cst.st_size, int(cst.st_mtime), cst.st_mtime_ns))
                hosts[inode] = Path(child.path)
            else:
                skipped.append(path)
    return entries, hosts, skipped


def publish(source: Path, repository: str, out: Path, private_key: Path, *, rehash: bool = False,
            ttl: int = manifest_mod.DEFAULT_TTL, jobs: int | None = None,
            progress: Callable[[str], None] = lambda msg: None) -> PublishReport:
    """Publish *source* as the next revision of *repository* under ``out/repository``."""
    start = time.monotonic()
    check_repository_name(repository)
    private = keys.load_private(private_key)
    repo_dir = Path(out) / repository
    repo_dir.mkdir(parents=True, exist_ok=True)
    with open(repo_dir / ".publish.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PublishError(f"another publish of {repository} is running (it holds {lock.name})") from None
        report = _publish_locked(Path(source), repository, repo_dir, private, rehash=rehash, ttl=ttl,
                                 jobs=jobs or min(8, os.cpu_count() or 2), progress=progress)
    report.seconds = time.monotonic() - start
    return report


def _publish_locked(source: Path, repository: str, repo_dir: Path, private, *, rehash: bool, ttl: int, jobs: int,
                    progress: Callable[[str], None]) -> PublishReport:
    store = ObjectStore(repo_dir)
    old_revision, old = _previous(repo_dir, store)
    entries, hosts, skipped = scan_tree(source)
    report = PublishReport(repository, old_revision + 1, "", skipped=skipped)
    paths = _paths(entries)

    todo: list[Entry] = []
    for e in entries:
        if e.is_dir:
            report.directories += 1
        elif e.is_symlink:
            report.symlinks += 1
        elif e.is_file:
            report.files += 1
            before = old.get(paths[e.inode])
            if (not rehash and before is not None and before.is_file and before.size == e.size
                    and before.mtime_ns == e.mtime_ns and before.hash and store.exists(before.hash)):
                e.hash = before.hash
                report.unchanged += 1
            else:
                todo.append(e)
    progress(f"{len(todo)} of {report.files} files to compress and hash")

    def store_one(e: Entry):
        try:
            return e, put_file(store, hosts[e.inode])
        except OSError as exc:
            raise PublishError(f"cannot read {hosts[e.inode]}: {exc.strerror}") from None

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for e, stored in pool.map(store_one, todo):
            e.hash = stored.digest
            if stored.written:
                report.objects_written += 1
                report.bytes_written += stored.compressed_size
            else:
                report.objects_present += 1
    report.objects_present += report.unchanged
    report.bytes_referenced = sum(store.path(h).stat().st_size for h in {e.hash for e in entries if e.hash})

    data = catalog_mod.build(entries, {"repository": repository, "revision": str(report.revision),
                                       "files": str(report.files), "directories": str(report.directories)})
    stored = store.put(data, CATALOG_SUFFIX)
    report.catalog = stored.digest
    report.bytes_written += stored.compressed_size if stored.written else 0
    report.bytes_referenced += stored.compressed_size
    text = manifest_mod.render(Manifest(stored.digest, stored.compressed_size, report.revision, repository,
                                        int(time.time()), ttl), private)
    write_atomic(repo_dir / MANIFEST_NAME, text)
    report.bytes_written += len(text)
    return report


def _paths(entries: list[Entry]) -> dict[int, str]:
    paths: dict[int, str] = {}
    for e in entries:  # parents come first
        paths[e.inode] = "" if e.inode == ROOT_INODE else f"{paths[e.parent]}/{e.name}"
    return paths
