"""Publish a directory tree as a new revision of a repository (``appbuild fs publish``).

1. Read the current manifest, catalog and tag list of ``OUT/NAME``, if there are any.
   A file whose path, size and modification time (to the nanosecond) are unchanged
   keeps its content hash without being read again (what makes republishing a large
   tree after a small change cheap; ``rehash=True`` reads everything).
2. Walk the tree in name order, assigning inode numbers parents first. Files,
   directories, symlinks, FIFOs and devices are published with their owners; sockets
   are not. *Image metadata* (``metadata=``: path -> type, mode, uid, gid, mtime, rdev,
   as the image would have them) overrides what the host tree says, and adds the
   device nodes that exist only in the image. Each file's content is compressed and
   hashed (in parallel); an object that is not in ``data/`` yet is written there.
3. If the tree is the one published already (same paths, types, modes, owners, times,
   contents), nothing changes: republishing is a no-op, and with a new ``--tag`` only
   the tag is added (to the current revision). A tag already naming another tree is
   refused: tags are immutable.
4. Otherwise write the catalog of the tree as an object, then the tag list (with the
   new tag, if one was given), then the signed manifest naming the catalog: each
   atomically, the manifest last. Until then clients keep seeing the previous revision.

Manifest and tag list expire after ``valid_days`` (30); :func:`resign` signs the
current revision again with a new time and expiry (run it from cron). One publisher
at a time: ``OUT/NAME/.publish.lock`` is held (``flock``) by publish, resign and
garbage collection (:mod:`appbuilder.fs.gc`). Objects of older revisions stay until
``appbuild fs gc``, which keeps every tagged revision.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from appbuilder.core.cpus import usable_cpus
from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import write_atomic
from appbuilder.fs import catalog as catalog_mod
from appbuilder.fs import keys
from appbuilder.fs import manifest as manifest_mod
from appbuilder.fs import tags as tags_mod
from appbuilder.fs.catalog import ROOT_INODE, Catalog, CatalogError, Entry
from appbuilder.fs.manifest import MANIFEST_NAME, Manifest, ManifestError, utc
from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectError, ObjectStore, put_file
from appbuilder.fs.tags import TAGS_NAME, Tag, TagList, TagListError

REPO_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-_")
LOCK_NAME = ".publish.lock"
TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "char": stat.S_IFCHR,
             "block": stat.S_IFBLK, "fifo": stat.S_IFIFO}


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
    specials: int = 0  # devices and FIFOs
    unchanged: int = 0  # files whose hash was taken from the previous catalog
    objects_written: int = 0
    objects_present: int = 0  # objects that were already there
    bytes_written: int = 0  # objects + catalog + tag list + manifest written by this publish
    bytes_referenced: int = 0  # compressed size of everything the new catalog references
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # special files not published (sockets)
    unlisted: list[str] = field(default_factory=list)  # with image metadata: paths it does not name
    tag: str | None = None
    already_published: bool = False  # the tree is revision `revision` already: no new revision
    tag_added: bool = False  # `tag` was added to the tag list
    completed: bool = False  # an interrupted publish of this tree and tag was finished (manifest written)
    expires: int = 0  # of the manifest / tag list written (0: none written)

    def summary(self) -> str:
        tagged = f" (tag {self.tag})" if self.tag else ""
        if self.already_published and not self.tag_added:
            restored = f"; {self.objects_written} missing objects restored" if self.objects_written else ""
            return (f"{self.repository}: this tree is revision {self.revision}{tagged} already; "
                    f"no new revision{restored}, {self.bytes_written} bytes written in {self.seconds:.2f} s")
        if self.already_published:
            return (f"{self.repository} revision {self.revision}: the tree is unchanged, no new revision; tagged "
                    f"{self.tag} (tag list signed until {utc(self.expires)}); {self.bytes_written} bytes written "
                    f"in {self.seconds:.2f} s")
        if self.completed:
            return (f"{self.repository} revision {self.revision}{tagged}: finished an interrupted publish of this "
                    f"tree (manifest signed until {utc(self.expires)})")
        specials = f", {self.specials} devices and FIFOs" if self.specials else ""
        tag = f"; tagged {self.tag}" if self.tag_added else ""
        return (f"{self.repository} revision {self.revision}: {self.files} files, {self.directories} directories, "
                f"{self.symlinks} symlinks{specials}; {self.objects_written} new objects, {self.objects_present} "
                f"already there, {self.unchanged} files unchanged; {self.bytes_written} bytes written in "
                f"{self.seconds:.2f} s{tag}; signed until {utc(self.expires)}")


def check_repository_name(name: str) -> None:
    if not name or not set(name) <= REPO_NAME_CHARS or name[0] in ".-" or ".." in name:
        raise PublishError(f"bad repository name {name!r}: lower-case letters, digits, '.', '-' and '_' "
                           f"(like sft.cern.ch)")


@contextmanager
def repository_lock(repo_dir: Path, repository: str, *, create: bool = False) -> Iterator[None]:
    """Hold ``OUT/NAME/.publish.lock``: one publish, resign or gc of a repository at a time."""
    if create:
        repo_dir.mkdir(parents=True, exist_ok=True)
    elif not (repo_dir / MANIFEST_NAME).is_file():
        raise PublishError(f"no repository {repository} in {repo_dir.parent} (no {repo_dir / MANIFEST_NAME}; "
                           f"'appbuild fs publish' makes one)")
    with open(repo_dir / LOCK_NAME, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PublishError(f"another publish, resign or gc of {repository} is running "
                               f"(it holds {lock.name})") from None
        yield


@dataclass
class Published:
    """What a repository directory holds now."""

    manifest: Manifest | None = None
    entries: dict[str, Entry] = field(default_factory=dict)  # of the current catalog ({}: unreadable)
    schema: str | None = None  # of the current catalog
    taglist: TagList | None = None

    @property
    def last_revision(self) -> int:
        """The highest revision number used so far (manifest, tag list, tags)."""
        numbers = [0]
        if self.manifest:
            numbers.append(self.manifest.revision)
        if self.taglist:
            numbers += [self.taglist.revision, *(t.revision for t in self.taglist.tags)]
        return max(numbers)


def read_manifest(repo_dir: Path) -> Manifest | None:
    path = repo_dir / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return manifest_mod.parse(path.read_bytes()).manifest
    except ManifestError as exc:
        raise PublishError(f"{path}: {exc}; move it away to start the repository afresh") from None


def read_taglist(repo_dir: Path, repository: str, trusted: list | None = None, *,
                 refusal: str = "not signing it again (after a change of key: 'appbuild fs resign --trust OLD.pub' "
                                "first)") -> TagList | None:
    """The tag list of *repo_dir* (None: there is none); with *trusted* keys, its signature is checked
    (not its expiry: the publisher may extend an expired list). A bad one is refused, saying *refusal*."""
    path = repo_dir / TAGS_NAME
    if not path.exists():
        return None
    data = path.read_bytes()
    try:
        if trusted is None:
            taglist = tags_mod.parse(data)
        else:
            taglist = tags_mod.verify(data, trusted, repository, check_expires=False)
    except TagListError as exc:
        raise PublishError(f"{path}: {exc}; {refusal}") from None
    if taglist.repository != repository:
        raise PublishError(f"{path} is the tag list of {taglist.repository}, not of {repository}; {refusal}")
    return taglist


def _published(repo_dir: Path, store: ObjectStore, repository: str, trusted: list) -> Published:
    state = Published(read_manifest(repo_dir), taglist=read_taglist(repo_dir, repository, trusted))
    if state.manifest is None:
        return state
    try:
        old = Catalog(store.get(state.manifest.catalog, CATALOG_SUFFIX))
    except (ObjectError, CatalogError):
        return state  # every file is read again; the catalog is rewritten
    try:
        state.entries, state.schema = old.walk(), old.schema
    finally:
        old.close()
    return state


def revision_tree(store: ObjectStore, catalog: str, what: str, *, error: type = PublishError,
                  consequence: str = "") -> dict[str, Entry]:
    """The entries (by path) of the revision whose root catalog is *catalog*; *what* names it in
    the error (*error*) raised when that catalog is missing or damaged."""
    try:
        cat = Catalog(store.get(catalog, CATALOG_SUFFIX))
    except (ObjectError, CatalogError) as exc:
        raise error(f"the catalog of {what} is unusable ({exc}){consequence}; run 'appbuild fs check'") from None
    try:
        return cat.walk()
    finally:
        cat.close()


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
    entries = [Entry(ROOT_INODE, 0, "", st.st_mode, 0, int(st.st_mtime), st.st_mtime_ns, nlink=2, uid=st.st_uid,
                     gid=st.st_gid)]
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
            owner = {"uid": cst.st_uid, "gid": cst.st_gid}
            if stat.S_ISDIR(cst.st_mode):
                entries.append(Entry(inode, parent, name, cst.st_mode, 0, int(cst.st_mtime), cst.st_mtime_ns, nlink=2,
                                     **owner))
                entries[parent - 1].nlink += 1
                pending.append((inode, Path(child.path), path))
            elif stat.S_ISLNK(cst.st_mode):
                entries.append(Entry(inode, parent, name, stat.S_IFLNK | 0o777, len(os.fsencode(target)),
                                     int(cst.st_mtime), cst.st_mtime_ns, symlink=target, **owner))
            elif stat.S_ISREG(cst.st_mode):
                entries.append(Entry(inode, parent, name, cst.st_mode, cst.st_size, int(cst.st_mtime), cst.st_mtime_ns,
                                     **owner))
                hosts[inode] = Path(child.path)
            elif stat.S_ISFIFO(cst.st_mode) or stat.S_ISCHR(cst.st_mode) or stat.S_ISBLK(cst.st_mode):
                rdev = cst.st_rdev if not stat.S_ISFIFO(cst.st_mode) else 0
                entries.append(Entry(inode, parent, name, cst.st_mode, 0, int(cst.st_mtime), cst.st_mtime_ns,
                                     rdev=rdev, **owner))
            else:
                skipped.append(path)
    return entries, hosts, skipped


def _kind(e: Entry) -> str:
    return next(kind for kind, bits in TYPE_BITS.items() if stat.S_IFMT(e.mode) == bits)


def _image_path(key: str) -> str:
    """A metadata key (``/``, ``/etc/passwd``) as a catalog path (``''``, ``/etc/passwd``)."""
    parts = key.split("/") if isinstance(key, str) else []
    if len(parts) < 2 or parts[0] != "" or any(p in (".", "..") for p in parts) or "" in parts[1:-1]:
        raise PublishError(f"image metadata names {key!r}: paths must be absolute, like /etc/passwd")
    names = [p for p in parts if p]
    return "/" + "/".join(names) if names else ""


def _meta(path: str, md: Any) -> tuple[str, int, int, int, int, int]:
    try:
        kind, mode, uid, gid, mtime, rdev = (md.type, md.mode, md.uid, md.gid, md.mtime, md.rdev)
    except AttributeError as exc:
        raise PublishError(f"image metadata of {path or '/'} has no {exc.name!r} (type, mode, uid, gid, mtime "
                           f"and rdev are needed)") from None
    if kind not in TYPE_BITS:
        raise PublishError(f"image metadata of {path or '/'}: unknown type {kind!r} (one of {', '.join(TYPE_BITS)})")
    for what, value in (("mode", mode), ("uid", uid), ("gid", gid), ("mtime", mtime), ("rdev", rdev)):
        if not isinstance(value, int) or value < 0:
            raise PublishError(f"image metadata of {path or '/'}: {what} {value!r} is not a whole number >= 0")
    return kind, mode, uid, gid, mtime, rdev


def apply_metadata(entries: list[Entry], metadata: Mapping[str, Any], source: Path) -> list[str]:
    """Give *entries* the image's types, modes, owners, times and device numbers from *metadata*
    (path -> an object with ``type``, ``mode``, ``uid``, ``gid``, ``mtime``, ``rdev``) and add the
    devices and FIFOs that exist only there; returns the paths *metadata* does not name (they keep
    their host mode and time, and are owned by root)."""
    paths = _paths(entries)
    by_path = {paths[e.inode]: e for e in entries}
    wanted = {}
    for key, md in metadata.items():
        path = _image_path(key)
        wanted[path] = _meta(path, md)
    unlisted: list[str] = []
    for path, e in by_path.items():
        if path not in wanted:
            unlisted.append(path or "/")
            e.uid = e.gid = 0
            continue
        kind, mode, uid, gid, mtime, rdev = wanted[path]
        if kind != _kind(e):
            raise PublishError(f"{path or '/'} is a {kind} in the image metadata but a {_kind(e)} in {source}")
        if kind != "symlink":
            e.mode = TYPE_BITS[kind] | stat.S_IMODE(mode)
        e.uid, e.gid, e.mtime = uid, gid, mtime
        e.rdev = rdev if kind in ("char", "block") else 0
    for path, (kind, mode, uid, gid, mtime, rdev) in sorted(wanted.items()):
        if path in by_path:
            continue
        if kind not in ("char", "block", "fifo"):
            raise PublishError(f"{path} is a {kind} in the image metadata but is not in {source}")
        parent_path, name = path.rsplit("/", 1)
        parent = by_path.get(parent_path)
        if parent is None or not parent.is_dir:
            raise PublishError(f"{path} (a {kind} in the image metadata) needs the directory {parent_path or '/'}, "
                               f"which is not in {source}")
        e = Entry(len(entries) + 1, parent.inode, name, TYPE_BITS[kind] | stat.S_IMODE(mode), 0, mtime,
                  mtime * 1_000_000_000, uid=uid, gid=gid, rdev=rdev if kind != "fifo" else 0)
        entries.append(e)
        by_path[path] = e
    return sorted(unlisted)


def same_tree(entries: list[Entry], other: dict[str, Entry]) -> bool:
    """Whether *entries* and *other* (a catalog's entries by path) show a client the same tree."""
    return first_difference(entries, other) is None


def first_difference(entries: list[Entry], other: dict[str, Entry]) -> str | None:
    """The first path (in name order) where *entries* and *other* differ, and how; None: they do not."""
    paths = _paths(entries)
    mine = {paths[e.inode]: e for e in entries}
    for path in sorted(mine.keys() | other.keys()):
        a, b = mine.get(path), other.get(path)
        if a is None or b is None:
            return f"{path or '/'} is {'new' if b is None else 'gone'}"
        if not a.same_as(b):
            what = [name for name in ("mode", "uid", "gid", "rdev", "size", "mtime", "hash", "symlink", "nlink")
                    if getattr(a, name) != getattr(b, name)]
            return f"{path or '/'}: {', '.join('content' if w == 'hash' else w for w in what)}"
    return None


def publish(source: Path, repository: str, out: Path, private_key: Path, *, rehash: bool = False,
            ttl: int = manifest_mod.DEFAULT_TTL, jobs: int | None = None,
            progress: Callable[[str], None] = lambda msg: None, metadata: Mapping[str, Any] | None = None,
            tag: str | None = None, valid_days: int = manifest_mod.DEFAULT_VALID_DAYS) -> PublishReport:
    """Publish *source* as the next revision of *repository* under ``out/repository`` (nothing new
    if it is published already); *metadata*: the image's view of each path (see :func:`apply_metadata`);
    *tag*: name the revision in the tag list; *valid_days*: how long manifest and tag list are good for."""
    start = time.monotonic()
    check_repository_name(repository)
    if tag is not None:
        tags_mod.check_tag_name(tag)
    manifest_mod.expiry(0, valid_days)  # refuse a bad validity before anything is read
    private = keys.load_private(private_key)
    repo_dir = Path(out) / repository
    with repository_lock(repo_dir, repository, create=True):
        report = _publish_locked(Path(source), repository, repo_dir, private, rehash=rehash, ttl=ttl,
                                 jobs=jobs or min(8, usable_cpus()), progress=progress, metadata=metadata,
                                 tag=tag, valid_days=valid_days)
    report.seconds = time.monotonic() - start
    return report


def _publish_locked(source: Path, repository: str, repo_dir: Path, private, *, rehash: bool, ttl: int, jobs: int,
                    progress: Callable[[str], None], metadata: Mapping[str, Any] | None, tag: str | None,
                    valid_days: int) -> PublishReport:
    store = ObjectStore(repo_dir)
    state = _published(repo_dir, store, repository, [private.public_key()])
    entries, hosts, skipped = scan_tree(source)
    unlisted = apply_metadata(entries, metadata, source) if metadata is not None else []
    report = PublishReport(repository, state.last_revision + 1, "", skipped=skipped, unlisted=unlisted, tag=tag)
    paths = _paths(entries)

    todo: list[Entry] = []
    for e in entries:
        if e.is_dir:
            report.directories += 1
        elif e.is_symlink:
            report.symlinks += 1
        elif e.is_file:
            report.files += 1
            before = state.entries.get(paths[e.inode])
            if (not rehash and before is not None and before.is_file and before.size == e.size
                    and before.mtime_ns == e.mtime_ns and before.hash and store.exists(before.hash)):
                e.hash = before.hash
                report.unchanged += 1
            else:
                todo.append(e)
        else:
            report.specials += 1
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

    now = int(time.time())
    expires = manifest_mod.expiry(now, valid_days)
    current = state.manifest
    same_as_current = (current is not None and state.schema == str(catalog_mod.SCHEMA_VERSION)
                       and same_tree(entries, state.entries))
    taglist = state.taglist or TagList(repository, 0, now, expires)
    old_tag = taglist.get(tag) if tag is not None else None

    if old_tag is not None and not (same_as_current and old_tag.catalog == current.catalog):
        difference = first_difference(entries, revision_tree(
            store, old_tag.catalog, f"tag {old_tag.name} (revision {old_tag.revision})"))
        if difference is not None:
            raise PublishError(f"tag {tag} of {repository} is revision {old_tag.revision} (catalog "
                               f"{old_tag.catalog[:16]}..., tagged {utc(old_tag.timestamp)}) and this tree differs "
                               f"from it ({difference}); tags are immutable: publish this tree under a new tag")
        report.revision, report.catalog, report.already_published = old_tag.revision, old_tag.catalog, True
        if old_tag.revision == state.last_revision and (current is None or old_tag.revision > current.revision):
            # the newest tag is newer than the manifest: its publish was interrupted after the tag list; finish it
            report.completed, report.already_published, report.expires = True, False, expires
            _write_manifest(repo_dir, Manifest(old_tag.catalog, old_tag.catalog_size, old_tag.revision, repository,
                                               now, ttl, expires), private, report)
        return report
    if same_as_current:
        report.revision, report.catalog, report.already_published = current.revision, current.catalog, True
        if tag is not None and old_tag is None:
            tagged = taglist.with_tag(Tag(tag, current.revision, current.catalog, current.catalog_size, now))
            report.tag_added, report.expires = True, expires
            _write_taglist(repo_dir, replace(tagged, revision=max(taglist.revision, current.revision),
                                             timestamp=now, expires=expires), private, report)
        return report

    revision = report.revision
    data = catalog_mod.build(entries, {"repository": repository, "revision": str(revision),
                                       "files": str(report.files), "directories": str(report.directories)})
    stored = store.put(data, CATALOG_SUFFIX)
    report.catalog = stored.digest
    report.bytes_written += stored.compressed_size if stored.written else 0
    report.bytes_referenced += stored.compressed_size
    if tag is not None:
        taglist = taglist.with_tag(Tag(tag, revision, stored.digest, stored.compressed_size, now))
        report.tag_added = True
    report.expires = expires
    _write_taglist(repo_dir, replace(taglist, revision=revision, timestamp=now, expires=expires), private, report)
    _write_manifest(repo_dir, Manifest(stored.digest, stored.compressed_size, revision, repository, now, ttl, expires),
                    private, report)
    return report


def _write_taglist(repo_dir: Path, taglist: TagList, private, report: PublishReport | None = None) -> None:
    text = tags_mod.render(taglist, private)
    write_atomic(repo_dir / TAGS_NAME, text)
    if report is not None:
        report.bytes_written += len(text)


def _write_manifest(repo_dir: Path, manifest: Manifest, private, report: PublishReport | None = None) -> None:
    text = manifest_mod.render(manifest, private)
    write_atomic(repo_dir / MANIFEST_NAME, text)
    if report is not None:
        report.bytes_written += len(text)


def _paths(entries: list[Entry]) -> dict[int, str]:
    paths: dict[int, str] = {}
    for e in entries:  # parents come first
        paths[e.inode] = "" if e.inode == ROOT_INODE else f"{paths[e.parent]}/{e.name}"
    return paths


@dataclass
class ResignReport:
    repository: str
    revision: int
    catalog: str
    tags: int
    timestamp: int
    expires: int
    key_id: str

    def summary(self) -> str:
        return (f"{self.repository} revision {self.revision} re-signed with key {self.key_id}: manifest and tag list "
                f"({self.tags} tags) valid until {utc(self.expires)}")


def resign(repository: str, out: Path, private_key: Path, *, valid_days: int = manifest_mod.DEFAULT_VALID_DAYS,
           trust: list[Path] = ()) -> ResignReport:
    """Sign the current manifest and tag list of ``out/repository`` again: the same revision, catalog
    and tags, a new signing time and expiry (what a publisher runs from cron so that clients never
    see an expired manifest). Both must verify with the key (or one of the *trust* public keys,
    after a key change) and the catalogs they name must be intact; the tag list, then the manifest,
    are replaced atomically."""
    check_repository_name(repository)
    manifest_mod.expiry(0, valid_days)
    private = keys.load_private(private_key)
    trusted = [private.public_key(), *(keys.load_public(p) for p in trust)]
    repo_dir = Path(out) / repository
    store = ObjectStore(repo_dir)
    with repository_lock(repo_dir, repository):
        path = repo_dir / MANIFEST_NAME
        try:
            current = manifest_mod.verify(path.read_bytes(), trusted, repository, check_expires=False)
        except ManifestError as exc:
            raise PublishError(f"{path}: {exc}; refusing to re-sign it") from None
        taglist = read_taglist(repo_dir, repository, trusted)
        named = [(f"revision {current.revision}", current.catalog)]
        named += [(f"tag {t.name} (revision {t.revision})", t.catalog) for t in (taglist.tags if taglist else ())]
        for what, digest in named:
            try:
                Catalog(store.get(digest, CATALOG_SUFFIX)).close()
            except (ObjectError, CatalogError) as exc:
                raise PublishError(f"the catalog of {what} is unusable ({exc}); refusing to re-sign: "
                                   f"run 'appbuild fs check'") from None
        now = int(time.time())
        expires = manifest_mod.expiry(now, valid_days)
        taglist = taglist or TagList(repository, current.revision, now, expires)
        _write_taglist(repo_dir, replace(taglist, timestamp=now, expires=expires), private)
        _write_manifest(repo_dir, replace(current, timestamp=now, expires=expires), private)
    return ResignReport(repository, current.revision, current.catalog, len(taglist.tags), now, expires,
                        keys.key_id(private.public_key()))
