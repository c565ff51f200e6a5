"""A repository read from an exported tree (export.py) over HTTP, fetching objects on demand.

``open_remote("http://coordinator:8700/", cache)`` reads ``snapshot.json``, checks its
signature against the trusted keys (``repository.trusted_keys``; without any, unsigned
pointers are accepted and only the hashes are checked), downloads the snapshot it names,
checks its sha256 and rebuilds an index from it under ``cache/snapshots/<sha256>.sqlite``
(kept: the next open of the same snapshot costs one small request). When the pointer
names a delta from a snapshot whose index is in the cache, only the delta is fetched
(checked against the sha256 the signed pointer gives) and applied to a copy of that
index: after a commit, a worker reads what the commit added, not the whole index. The result is a
:class:`Repository` like a local one; its content store fetches an object the first time
something reads it (``objects/ab/<sha256>.zst``), checks that it decompresses to content
hashing to its name, and keeps it under ``cache/objects`` (written to a temporary name,
renamed into place). So a worker fetches only the objects its builds read.

What a worker commits (its own cooks) goes into that local index and store and stays
local (:meth:`RemoteRepository.local_commits` lists it): the coordinator learns of it
through a changeset (changeset.py). A newer snapshot opened later starts from the
coordinator's index again. With ``scratch=DIR`` the index is a private copy in ``DIR``,
so one task's commits are not seen by the others sharing the cache. Indexes of old
snapshots stay in ``cache/snapshots`` (small); remove them when no reader runs.

Everything read is hostile until checked: a tampered object, a snapshot whose hash
differs from the pointer's, a bad signature or a pointer older than one already
accepted from the same URL (a replay) is a :class:`RemoteRefused` naming the URL.
Transient failures (connection refused or reset, timeouts, HTTP 5xx) are retried a few
times with a growing pause; a missing file (404) is not.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from appbuilder.core.errors import RepositoryError
from appbuilder.core.fileio import write_atomic
from appbuilder.repository import index
from appbuilder.repository import snapshot as snap
from appbuilder.repository.export import FORMAT, POINTER, object_rel
from appbuilder.repository.keys import SignatureRefused, TrustedKeys, check_document
from appbuilder.repository.repo import Repository
from appbuilder.repository.store import ContentStore, DamagedObject, VerifiedReader, is_digest
from appbuilder.repository.trove import GROUP, PACKAGE
from appbuilder.repository.versions import NVF

RETRIES = 4
TIMEOUT = 60
STATE = "remote.json"


class RemoteError(RepositoryError):
    """The exported repository cannot be reached or read."""


class RemoteRefused(RepositoryError):
    """What the exported repository sent fails verification (hash, signature, serial)."""


class Source:
    """Reads files of an exported tree: ``http(s)://...`` or a local directory (``file://`` or a path)."""

    def __init__(self, url: str):
        text = str(url)
        self.http = text.startswith(("http://", "https://"))
        if self.http:
            self.base = text.rstrip("/") + "/"
        elif "://" in text and not text.startswith("file://"):
            raise RemoteError(f"cannot read a repository from {text}: give http(s)://..., file://... or a directory")
        else:
            self.base = text.removeprefix("file://")
        self.url = text.rstrip("/")

    def where(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def fetch(self, rel: str, out, *, limit: int | None = None) -> int:
        """Write the file *rel* into the open binary file *out*; returns its size.

        Raises :class:`RemoteError` (``missing`` set when the file does not exist)."""
        if not self.http:
            try:
                with open(Path(self.base) / rel, "rb") as f:
                    return _copy(f, out, limit, self.where(rel))
            except FileNotFoundError:
                raise _missing(self.where(rel)) from None
            except OSError as exc:
                raise RemoteError(f"cannot read {self.where(rel)}: {exc.strerror or exc}") from None
        pause = 0.2
        for attempt in range(RETRIES + 1):
            out.seek(0)
            out.truncate()
            try:
                with urllib.request.urlopen(self.base + rel, timeout=TIMEOUT) as resp:
                    return _copy(resp, out, limit, self.where(rel))
            except urllib.error.HTTPError as exc:
                if exc.code in (404, 410):
                    raise _missing(self.where(rel)) from None
                if exc.code < 500 or attempt == RETRIES:
                    raise RemoteError(f"{self.where(rel)}: the server answered HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
                # refused, reset, timed out, or the answer cut short (IncompleteRead): try again
                if attempt == RETRIES:
                    reason = getattr(exc, "reason", None) or exc
                    raise RemoteError(f"cannot fetch {self.where(rel)}: {reason} (tried {RETRIES + 1} times)") from None
            time.sleep(pause)
            pause *= 2
        raise AssertionError("unreachable")

    def get(self, rel: str, *, limit: int) -> bytes:
        import io

        buf = io.BytesIO()
        self.fetch(rel, buf, limit=limit)
        return buf.getvalue()


def _missing(where: str) -> RemoteError:
    error = RemoteError(f"{where} does not exist (is this an exported appbuild repository? "
                        f"`appbuild repo export` or `appbuild repo serve` makes one)")
    error.missing = True
    return error


def _copy(src, out, limit: int | None, where: str) -> int:
    size = 0
    while chunk := src.read(1 << 20):
        size += len(chunk)
        if limit is not None and size > limit:
            raise RemoteRefused(f"{where} is larger than the {limit} bytes expected: refused")
        out.write(chunk)
    return size


class RemoteStore(ContentStore):
    """A content store that fetches an object it lacks from the exported tree, verified."""

    def __init__(self, root: Path, source: Source):
        super().__init__(root)
        self.source = source
        self.fetched = 0  # objects fetched by this instance
        self.fetched_bytes = 0
        self._lock = threading.Lock()

    def open(self, digest: str) -> VerifiedReader:
        if not self.has(digest):
            self.fetch(digest)
        return super().open(digest)

    def fetch(self, digest: str) -> None:
        """Download one object into the cache, refusing it unless it is the content *digest* names."""
        if not is_digest(digest):
            raise RemoteRefused(f"bad object name {digest!r}")
        rel = object_rel(digest)
        final = self.path_of(digest)
        final.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="fetch-")
        try:
            with os.fdopen(fd, "w+b") as out:
                size = self.source.fetch(rel, out)
                out.flush()
                out.seek(0)
                try:
                    with VerifiedReader(digest, Path(tmp), open(tmp, "rb")) as check:
                        while check.read(1 << 20):
                            pass
                except DamagedObject as exc:
                    raise RemoteRefused(f"object {digest} from {self.source.where(rel)} is damaged or was "
                                        f"tampered with ({exc.problem}): refused") from None
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            self.fetched += 1
            self.fetched_bytes += size


class RemoteRepository(Repository):
    """A repository whose index is a verified snapshot and whose store fetches on demand."""

    def __init__(self, cache: Path, label: str, index_path: Path, source: Source, pointer: dict, *,
                 private: bool = False, publishing: threading.Thread | None = None):
        self.index_path = Path(index_path)
        self.private = private  # a task's own copy of the index, thrown away with its scratch directory
        self._publishing = publishing  # the cached snapshot index this copy was made with, being synced
        self.source = source
        self.pointer = pointer
        super().__init__(cache, label)
        self.store = RemoteStore(self.path, source)

    @property
    def db(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # a private copy is written by this task alone and thrown away after it: nothing
            # it commits is synced (nor turned into a write-ahead log) on the way
            conn = self._local.conn = index.connect(self.index_path, private=self.private)
            self._connections.append(conn)
        return conn

    @property
    def url(self) -> str:
        return self.source.url

    @property
    def serial(self) -> int:
        return self.pointer["serial"]

    def close(self) -> None:
        """Close the index; the cached snapshot index made with it is on disk when this returns."""
        super().close()
        if self._publishing is not None:
            self._publishing.join()
            self._publishing = None

    def local_commits(self) -> list[NVF]:
        """Packages and groups committed here since the snapshot was loaded (this worker's own
        cooks: what a changeset carries to the coordinator), in commit order."""
        first = int(self.db.execute("SELECT value FROM meta WHERE key='snapshot_troves'").fetchone()[0])
        rows = self.db.execute(f"SELECT {index.NVF_COLUMNS} FROM troves WHERE id > ? AND kind IN (?, ?) ORDER BY id",
                               (first, PACKAGE, GROUP))
        return [index.row_nvf(r) for r in rows]

    def remote_contents(self) -> set[str]:
        """Every object the exported tree holds (what the snapshot's troves name)."""
        return {d for (d,) in self.db.execute("SELECT sha256 FROM snapshot_contents")}

    def remote_holds(self, digests: set[str]) -> set[str]:
        """Those of *digests* the exported tree holds (looked up one by one: a changeset's
        few objects against the tens of thousands a snapshot names)."""
        return {d for d in digests
                if self.db.execute("SELECT 1 FROM snapshot_contents WHERE sha256 = ?", (d,)).fetchone()}


def read_pointer(source: Source, trusted: TrustedKeys | None) -> dict:
    """The export's ``snapshot.json``, checked (shape and signature)."""
    where = source.where(POINTER)
    data = source.get(POINTER, limit=1 << 20)
    try:
        doc = json.loads(data)
    except ValueError:
        raise RemoteRefused(f"{where} is not JSON: refused") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RemoteRefused(f"{where} is not an appbuild export pointer (format {FORMAT}): refused")
    ok = (isinstance(doc.get("serial"), int) and isinstance(doc.get("size"), int) and doc["size"] >= 0
          and isinstance(doc.get("label"), str) and isinstance(doc.get("sha256"), str)
          and doc.get("snapshot") == f"snapshots/{doc.get('sha256')}.json.zst")
    if not ok:
        raise RemoteRefused(f"{where} lacks a serial, label, size or snapshot name: refused")
    try:
        check_document(doc, trusted, what=where)
    except SignatureRefused as exc:
        raise RemoteRefused(str(exc)) from None
    return doc


def open_remote(url: str, cache: Path | str, *, trusted: TrustedKeys | None = None,
                scratch: Path | str | None = None) -> RemoteRepository:
    """The repository exported at *url* (see the module text), cached under *cache*.

    With *scratch* (a directory), the index is a private copy in ``scratch/index.sqlite``:
    what is committed through this repository is seen by it alone (one task's cooks), while
    fetched objects are still shared through *cache*."""
    source = Source(url)
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    pointer = read_pointer(source, trusted)
    _check_serial(cache, source, pointer)
    digest = pointer["sha256"]
    index_path = cache / "snapshots" / f"{digest}.sqlite"
    private = Path(scratch) / "index.sqlite" if scratch is not None else None
    if private is not None:
        private.parent.mkdir(parents=True, exist_ok=True)
    made = None
    if not index_path.exists():
        # with a private copy, the cached index is synced on a thread, and the serial then
        # remembered (its own sync would wait behind the index's)
        building = {"private_copy": private, "then": lambda: _remember(cache, source, pointer)} if private else {}
        made = _index_from_delta(source, pointer, cache, index_path, building) \
            or _build_index(source, pointer, index_path, building)
    if made is None or made.publishing is None:
        _remember(cache, source, pointer)
    if private is not None:
        if made is None:
            _copy_index(index_path, private)
        return RemoteRepository(cache, pointer["label"], private, source, pointer, private=True,
                                publishing=made.publishing if made else None)
    return RemoteRepository(cache, pointer["label"], index_path, source, pointer)


def _copy_index(src: Path, dest: Path) -> None:
    """A private copy of the built snapshot index, consistent while others write: the file
    copied whole while a read transaction holds SQLite's shared lock (no writer can commit
    meanwhile; a rollback journal left by a killed writer is rolled back by that read
    first), or SQLite's page-by-page backup for an index in WAL mode, whose committed
    pages may still be in its log."""
    import shutil
    import sqlite3

    for old in (dest, Path(f"{dest}-wal"), Path(f"{dest}-shm"), Path(f"{dest}-journal")):
        old.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(src, isolation_level=None)) as a:
        if a.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            a.execute("BEGIN")
            a.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the shared lock, held until ROLLBACK
            try:
                shutil.copyfile(src, dest)
            finally:
                a.execute("ROLLBACK")
            return
        with contextlib.closing(sqlite3.connect(dest)) as b:
            a.backup(b)


def _build_index(source: Source, pointer: dict, index_path: Path, building: dict) -> "_new_index":
    """Make the pointer's snapshot index from the whole snapshot (*building*: options of
    :class:`_new_index`)."""
    rel = pointer["snapshot"]
    body = _fetch_checked(source, rel, pointer["size"], pointer["sha256"], "snapshot")
    doc = snap.parse(body, what=source.where(rel))
    with _new_index(index_path, **building) as new:
        snap.load(doc, new.db)
        _finish_index(new.db, snap.referenced(doc), source, pointer)
        new.done = True
    return new


def _index_from_delta(source: Source, pointer: dict, cache: Path, index_path: Path,
                      building: dict) -> "_new_index | None":
    """Make the pointer's snapshot index from the index of its delta's base, if the cache
    holds that (*building*: options of :class:`_new_index`); None when there is no delta to
    use (then the whole snapshot is loaded)."""
    delta = pointer.get("delta")
    if not isinstance(delta, dict):
        return None
    base, rel = delta.get("base"), delta.get("snapshot")
    if (not is_digest(base) or rel != f"snapshots/{pointer['sha256']}.from-{base}.json.zst"
            or not isinstance(delta.get("size"), int) or not isinstance(delta.get("sha256"), str)):
        return None
    base_index = cache / "snapshots" / f"{base}.sqlite"
    if not base_index.exists():
        return None
    body = _fetch_checked(source, rel, delta["size"], delta["sha256"], "delta")
    doc = snap.parse_delta(body, what=source.where(rel))
    if doc["base"] != base:
        raise RemoteRefused(f"{source.where(rel)} is a delta from {doc['base']}, not from {base} as its pointer "
                            f"says: refused")
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{base_index}?mode=ro", uri=True)) as conn:
            conn.execute("SELECT 1 FROM snapshot_contents LIMIT 1").fetchall()
    except sqlite3.Error:
        return None  # not an index this module built (or an older one): load the whole snapshot
    with _new_index(index_path, copy_of=base_index, **building) as new:
        try:
            snap.apply_delta(doc, new.db)
        except snap.BadSnapshot:
            return None  # the base index is not the delta's base after all
        _finish_index(new.db, snap.referenced(doc), source, pointer)  # the base's contents are in the copy
        new.done = True
    return new


def _fetch_checked(source: Source, rel: str, size: int, digest: str, what: str) -> bytes:
    """A snapshot or delta, uncompressed, refused unless it hashes to *digest*."""
    where = source.where(rel)
    data = source.get(rel, limit=max(size + (1 << 20), 1 << 20))
    body = snap.decompress(data, what=where, limit=size)
    actual = hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise RemoteRefused(f"{what} {where} hashes to {actual}, not to the {digest} its pointer names: "
                            f"it is damaged or was tampered with; refused")
    return body


class _new_index:
    """A new index (``db``, a private connection: :func:`index.connect`) in a temporary file
    beside *index_path*, empty or a copy of *copy_of*; when the block ends with ``done``
    set it is closed, synced and renamed into place (one with its rollback journal on
    disk, as a snapshot index is kept and copied); a block that failed or gave up
    leaves nothing.

    With *private_copy*, a reader's private copy is made of it first, and the sync and
    rename run on a thread of their own (``publishing``; join it before leaving), then
    *then*: the sync of a large index takes tens of milliseconds, which the reader's work
    then covers. Until it is renamed into place other readers build it again themselves."""

    def __init__(self, index_path: Path, *, copy_of: Path | None = None, private_copy: Path | None = None,
                 then: Callable[[], None] | None = None):
        self.final = index_path
        index_path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = index_path.with_name(f".{index_path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        self.copy_of = copy_of
        self.private_copy = private_copy
        self.publishing: threading.Thread | None = None
        self.then = then  # run by that thread once it published (or failed to)
        self.done = False
        self.db = None

    def _leftovers(self) -> list[Path]:
        return [self.tmp, Path(f"{self.tmp}-wal"), Path(f"{self.tmp}-shm"), Path(f"{self.tmp}-journal")]

    def __enter__(self) -> "_new_index":
        for leftover in self._leftovers():
            leftover.unlink(missing_ok=True)
        try:
            if self.copy_of is not None:
                _copy_index(self.copy_of, self.tmp)
            self.db = index.connect(self.tmp, private=True)
        except BaseException:
            for leftover in self._leftovers():
                leftover.unlink(missing_ok=True)
            raise
        return self

    def __exit__(self, kind, exc, tb) -> None:
        later = False
        try:
            self.db.close()
            if kind is None and self.done:
                if self.private_copy is not None:
                    _copy_index(self.tmp, self.private_copy)
                    self.publishing = threading.Thread(target=self._publish_quietly, name="index-publish",
                                                       daemon=True)
                    self.publishing.start()
                    later = True
                else:
                    self._publish()
        finally:
            if not later:
                self._clean()

    def _publish(self) -> None:
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.tmp, self.final)

    def _publish_quietly(self) -> None:
        """Publish on a thread: a failure leaves the index unpublished (the next reader builds it)."""
        try:
            self._publish()
        except OSError:
            pass
        finally:
            self._clean()
        if self.then is not None:
            try:
                self.then()
            except OSError:  # a full disk: said by what next writes there
                pass

    def _clean(self) -> None:
        for leftover in self._leftovers():
            leftover.unlink(missing_ok=True)


def _finish_index(db, contents: set[str], source: Source, pointer: dict) -> None:
    """Record in the index being built what the snapshot names (*contents*, added to those
    of the base it was copied from; table ``snapshot_contents``) and where it came from."""
    with index.write_transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS snapshot_contents (sha256 TEXT PRIMARY KEY) WITHOUT ROWID")
        db.executemany("INSERT OR IGNORE INTO snapshot_contents VALUES (?)", ((d,) for d in sorted(contents)))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('snapshot_troves', ?)",
                   (str(db.execute("SELECT COALESCE(MAX(id), 0) FROM troves").fetchone()[0]),))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('snapshot_source', ?)",
                   (json.dumps({"url": source.url, "serial": pointer["serial"], "sha256": pointer["sha256"]}),))


def _state(cache: Path) -> dict:
    try:
        state = json.loads((cache / STATE).read_text())
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def _state_key(source: Source, pointer: dict) -> str:
    """Serials are remembered per URL and export tree (the pointer's signed ``tree``)."""
    tree = pointer.get("tree")
    return f"{source.url}#{tree}" if isinstance(tree, str) and tree else source.url


def _check_serial(cache: Path, source: Source, pointer: dict) -> None:
    seen = _state(cache).get(_state_key(source, pointer))
    if not isinstance(seen, dict):
        return
    if pointer["serial"] < seen.get("serial", 0):
        raise RemoteRefused(f"{source.where(POINTER)} names snapshot {pointer['serial']}, older than snapshot "
                            f"{seen['serial']} already read from there (a replayed or rolled-back export): refused")
    if pointer["serial"] == seen.get("serial") and pointer["sha256"] != seen.get("sha256"):
        raise RemoteRefused(f"{source.where(POINTER)} names another snapshot under serial {pointer['serial']} than "
                            f"the one read before: refused")


def _remember(cache: Path, source: Source, pointer: dict) -> None:
    state = _state(cache)
    key = _state_key(source, pointer)
    seen = state.get(key)
    if isinstance(seen, dict) and seen.get("serial", 0) >= pointer["serial"]:
        return
    state[key] = {"serial": pointer["serial"], "sha256": pointer["sha256"]}
    write_atomic(cache / STATE, json.dumps(state, indent=1, sort_keys=True).encode())
