"""The repository index: an SQLite database of troves, their files and dependencies.

Every change to the index happens inside one ``BEGIN IMMEDIATE`` transaction, so a
commit is all-or-nothing (SQLite's journal survives kill -9 and power loss) and two
writers at once queue up instead of interleaving. Readers use WAL mode and never
block writers.

Every connection is an :class:`IndexConnection`: an SQLite error that means the file
is damaged (a truncated or overwritten ``index.sqlite``), cannot be read or written,
or stayed locked by another writer past the timeout becomes one clear
:class:`IndexProblem` naming the file and what to do, on opening and on any later
query, instead of a ``sqlite3`` traceback.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from appbuilder.core.errors import RepositoryError
from appbuilder.repository.deps import Dependency
from appbuilder.repository.trove import FileEntry, Trove
from appbuilder.repository.versions import NVF, Flavor, Version

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS troves (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    upstream TEXT NOT NULL,
    source_count INTEGER NOT NULL,
    build_count INTEGER NOT NULL,
    flavor TEXT NOT NULL,
    kind TEXT NOT NULL,
    info TEXT NOT NULL,
    committed_at REAL NOT NULL,
    UNIQUE (name, label, upstream, source_count, build_count, flavor)
);
CREATE INDEX IF NOT EXISTS troves_by_name ON troves (name, flavor);
CREATE TABLE IF NOT EXISTS files (
    trove_id INTEGER NOT NULL REFERENCES troves (id),
    path TEXT NOT NULL,
    type TEXT NOT NULL,
    mode INTEGER NOT NULL,
    owner TEXT NOT NULL,
    grp TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,
    target TEXT,
    config INTEGER NOT NULL,
    rdev INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    PRIMARY KEY (trove_id, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_path ON files (path);
CREATE INDEX IF NOT EXISTS files_by_content ON files (sha256);
CREATE TABLE IF NOT EXISTS provides (
    trove_id INTEGER NOT NULL REFERENCES troves (id),
    cls TEXT NOT NULL, name TEXT NOT NULL, flags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS provides_by_dep ON provides (cls, name);
CREATE INDEX IF NOT EXISTS provides_by_trove ON provides (trove_id);
CREATE TABLE IF NOT EXISTS requires (
    trove_id INTEGER NOT NULL REFERENCES troves (id),
    cls TEXT NOT NULL, name TEXT NOT NULL, flags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requires_by_trove ON requires (trove_id);
CREATE TABLE IF NOT EXISTS members (
    parent_id INTEGER NOT NULL REFERENCES troves (id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    flavor TEXT NOT NULL,
    PRIMARY KEY (parent_id, position)
);
CREATE TABLE IF NOT EXISTS source_revisions (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    upstream TEXT NOT NULL,
    source_count INTEGER NOT NULL,
    source_hash TEXT NOT NULL,
    PRIMARY KEY (name, label, upstream, source_count)
);
CREATE TABLE IF NOT EXISTS inputs (
    input_hash TEXT PRIMARY KEY,
    trove_id INTEGER NOT NULL REFERENCES troves (id)
);
CREATE TABLE IF NOT EXISTS build_logs (
    trove_id INTEGER PRIMARY KEY REFERENCES troves (id),
    sha256 TEXT NOT NULL
);
"""


BUSY_TIMEOUT = 300  # seconds a writer waits for another one

# SQLite's primary result codes (the low byte of an extended code)
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


class IndexProblem(RepositoryError):
    """The repository index cannot be used (damaged, locked, unreadable, ...)."""

    def __init__(self, path: Path, message: str, detail: str = ""):
        super().__init__(message)
        self.path = Path(path)
        self.detail = detail or message  # SQLite's own words


class DamagedIndex(IndexProblem):
    """``index.sqlite`` is not a sound SQLite database (truncated, overwritten, ...)."""


class IndexBusy(IndexProblem):
    """Another process kept the index locked for longer than the timeout."""


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    text = str(exc).lower()  # Pythons without error codes on exceptions
    if "malformed" in text or "not a database" in text:
        return _CORRUPT
    if "locked" in text or "busy" in text:
        return _BUSY
    return None


def index_problem(exc: sqlite3.Error, path: Path) -> IndexProblem | None:
    """The user's view of an SQLite error on the index at *path*; None for errors that are
    appbuild's own bugs (bad SQL, broken constraints), which keep their traceback."""
    path = Path(path)
    code = _primary_code(exc)
    if code in (_CORRUPT, _NOTADB):
        return DamagedIndex(path, (
            f"the repository index {path} is damaged ({exc}).\n"
            f"  The content store beside it ({path.parent / 'objects'}) is kept apart from the index; "
            f"this damage does not touch it.\n  Restore {path.name} from a backup of the repository (with "
            f"no appbuild running, and without the -wal and -shm files beside it); `appbuild verify` checks the "
            f"index and every stored object."
        ), str(exc))
    if code in (_BUSY, _LOCKED):
        return IndexBusy(path, (
            f"the repository index {path} is locked ({exc}): another appbuild has been writing to it for more "
            f"than {BUSY_TIMEOUT} s; let it finish (or stop it) and try again"
        ), str(exc))
    messages = {
        _IOERR: f"the repository index {path} cannot be read or written ({exc}): the disk or file system holding "
                f"it reported an error; check it (dmesg), then run `appbuild verify`",
        _FULL: f"the repository index {path} cannot grow ({exc}): its disk is full",
        _READONLY: f"the repository index {path} cannot be written ({exc}): check its permissions and those of "
                   f"its directory",
        _CANTOPEN: f"the repository index {path} cannot be opened ({exc}): check that its directory exists and "
                   f"that you may write to it",
    }
    return IndexProblem(path, messages[code], str(exc)) if code in messages else None


def _translate(exc: sqlite3.Error, path: Path) -> BaseException:
    return index_problem(exc, path) or exc


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """SQLite's errors about a damaged, locked or unreachable index, as :class:`IndexProblem`."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise _translate(exc, path) from exc


class IndexCursor(sqlite3.Cursor):
    """A cursor whose damaged-index errors, also while rows are fetched, are :class:`IndexProblem`.
    (Each method catches them itself: a context manager around every row fetched took as
    long as the fetch, and groups and toolchains read tens of thousands of rows.)"""

    def _problem(self, exc: sqlite3.DatabaseError) -> BaseException:
        return _translate(exc, self.connection.path)

    def execute(self, sql, parameters=()):
        try:
            return super().execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            raise self._problem(exc) from exc

    def executemany(self, sql, seq_of_parameters):
        try:
            return super().executemany(sql, seq_of_parameters)
        except sqlite3.DatabaseError as exc:
            raise self._problem(exc) from exc

    def executescript(self, sql_script):
        try:
            return super().executescript(sql_script)
        except sqlite3.DatabaseError as exc:
            raise self._problem(exc) from exc

    def fetchone(self):
        try:
            return super().fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._problem(exc) from exc

    def fetchmany(self, size=None):
        try:
            return super().fetchmany(self.arraysize if size is None else size)
        except sqlite3.DatabaseError as exc:
            raise self._problem(exc) from exc

    def fetchall(self):
        try:
            return super().fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._problem(exc) from exc

    def __next__(self):
        try:
            return super().__next__()
        except sqlite3.DatabaseError as exc:
            raise self._problem(exc) from exc


class IndexConnection(sqlite3.Connection):
    """A connection to ``index.sqlite`` that reports a damaged or locked index clearly."""

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        self.path = Path(database)
        self.thread = threading.current_thread()  # the one that uses it (see close_all)

    def cursor(self, factory=IndexCursor):
        return super().cursor(factory)

    def execute(self, sql, parameters=()):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters):
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script):
        return self.cursor().executescript(sql_script)


_open: "weakref.WeakSet[IndexConnection]" = weakref.WeakSet()  # every connection connect() made


def close_all() -> bool:
    """Close every index connection still open in this process, when the program is done:
    the last connection to close folds the write-ahead log into ``index.sqlite`` and
    removes ``index.sqlite-wal``, which a program that leaves without its interpreter's
    teardown (``appbuild``, :func:`appbuilder.cli.run`) would otherwise leave behind.
    False, closing nothing, while a thread other than the caller's that opened one still
    runs (it may be using it): the caller then leaves the normal way."""
    try:
        conns = list(_open)
    except RuntimeError:  # another thread opened one meanwhile
        return False
    me = threading.current_thread()
    if any(c.thread is not me and c.thread.is_alive() for c in conns):
        return False
    try:
        for conn in conns:
            conn.close()
    except sqlite3.Error:
        return False
    _open.clear()
    return True


def connect(path: Path, *, private: bool = False) -> IndexConnection:
    """Open (creating when new) the index at *path*; a damaged one raises :class:`IndexProblem`.

    *private*: a file that only its maker writes and that no one uses after a crash: a
    snapshot's index being built (synced and renamed into place when done), a task's
    private copy of one (thrown away after the task): its rollback journal stays in
    memory and nothing is synced on the way."""
    with _translated(Path(path)):
        # each connection stays in the thread that opened it (callers keep one per thread);
        # without the check, close_all can close them from the main thread when the program ends
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, factory=IndexConnection,
                               check_same_thread=False)
    _open.add(conn)
    try:
        if private:
            conn.execute("PRAGMA journal_mode=MEMORY")
            conn.execute("PRAGMA synchronous=OFF")
        else:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(SCHEMA)
        # write only on a new index: an INSERT, even one ignored, waits for any running writer,
        # and a reader opening the repository must not wait for a commit to finish
        if conn.execute("SELECT 1 FROM meta WHERE key='schema'").fetchone() is None:
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One all-or-nothing change; concurrent writers wait for each other. Each one that
    changed a row gives the index a new :func:`state` token in the same transaction (one
    that only read, as committing a group already there, leaves the token as it was)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = conn.total_changes
        yield conn
        if conn.total_changes != before:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('state', ?)", (uuid.uuid4().hex,))
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (a damaged page, a full disk)
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def state(conn: sqlite3.Connection) -> str:
    """A token that changes with every committed change of the index (random, so two copies of
    one index that each changed never share one); "" for an index never written to since
    tokens were kept. An export records it: an unchanged token means an unchanged index."""
    row = conn.execute("SELECT value FROM meta WHERE key='state'").fetchone()
    return row[0] if row and isinstance(row[0], str) else ""


def flavor_key(flavor: Flavor) -> str:
    """How a flavor is kept in the index: the architecture alone (or nothing) when the
    trove has no use flags, as before flags existed; else the flavor as conary writes it."""
    return str(flavor) if flavor.flags else flavor.arch or ""


def key_flavor(key: str) -> Flavor:
    """The flavor kept in the index as *key* (:func:`flavor_key`)."""
    return Flavor.parse(key) if key else Flavor(None)


def insert_trove(conn: sqlite3.Connection, trove: Trove, committed_at: float) -> int:
    v = trove.version
    cur = conn.execute(
        "INSERT INTO troves (name, label, upstream, source_count, build_count, flavor, kind,"
        " info, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            trove.name,
            v.label,
            v.upstream,
            v.source_count,
            v.build_count,
            flavor_key(trove.flavor),
            trove.kind,
            json.dumps(trove.info, sort_keys=True),
            committed_at,
        ),
    )
    tid = cur.lastrowid
    conn.executemany(
        "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (tid, f.path, f.type, f.mode, f.owner, f.group, f.size, f.sha256, f.target,
             int(f.config), f.rdev, f.mtime)
            for f in trove.files
        ],
    )
    for table, deps in (("provides", trove.provides), ("requires", trove.requires)):
        conn.executemany(
            f"INSERT INTO {table} VALUES (?, ?, ?, ?)",
            [(tid, d.cls, d.name, d.flags_text) for d in sorted(deps)],
        )
    conn.executemany(
        "INSERT INTO members VALUES (?, ?, ?, ?, ?)",
        [(tid, i, m.name, str(m.version), flavor_key(m.flavor)) for i, m in enumerate(trove.members)],
    )
    return tid


def row_nvf(row) -> NVF:
    """NVF of a ``troves`` row selected as (name, label, upstream, source_count, build_count, flavor)."""
    name, label, upstream, sc, bc, flavor = row[:6]
    return NVF(name, Version(label, upstream, sc, bc), key_flavor(flavor))


NVF_COLUMNS = "troves.name, troves.label, troves.upstream, troves.source_count, troves.build_count, troves.flavor"


def trove_id(conn: sqlite3.Connection, nvf: NVF) -> int | None:
    v = nvf.version
    row = conn.execute(
        "SELECT id FROM troves WHERE name=? AND label=? AND upstream=? AND source_count=?"
        " AND build_count=? AND flavor=?",
        (nvf.name, v.label, v.upstream, v.source_count, v.build_count, flavor_key(nvf.flavor)),
    ).fetchone()
    return row[0] if row else None


def load_trove(conn: sqlite3.Connection, tid: int, *, with_files: bool = True) -> Trove:
    row = conn.execute(f"SELECT {NVF_COLUMNS}, kind, info FROM troves WHERE id=?", (tid,)).fetchone()
    nvf = row_nvf(row)
    trove = Trove(nvf.name, nvf.version, nvf.flavor, kind=row[6], info=json.loads(row[7]))
    if with_files:
        trove.files = [
            FileEntry(path=p, type=t, mode=m, owner=o, group=g, size=s, sha256=h, target=tg,
                      config=bool(c), rdev=rd, mtime=mt)
            for (p, t, m, o, g, s, h, tg, c, rd, mt) in conn.execute(
                "SELECT path, type, mode, owner, grp, size, sha256, target, config, rdev, mtime"
                " FROM files WHERE trove_id=? ORDER BY path",
                (tid,),
            )
        ]
    trove.provides = load_deps(conn, "provides", tid)
    trove.requires = load_deps(conn, "requires", tid)
    trove.members = [
        NVF(n, Version.parse(v), key_flavor(f))
        for n, v, f in conn.execute(
            "SELECT name, version, flavor FROM members WHERE parent_id=? ORDER BY position", (tid,)
        )
    ]
    return trove


def load_deps(conn: sqlite3.Connection, table: str, tid: int) -> set[Dependency]:
    return {
        Dependency(cls, name, frozenset(flags.split()))
        for cls, name, flags in conn.execute(f"SELECT cls, name, flags FROM {table} WHERE trove_id=?", (tid,))
    }


# ------------------------------------------------------------------ stored contents


BUILD_LOG = "build_log_blob"  # how a build log is named among a trove's stored contents


def info_blobs(conn: sqlite3.Connection) -> Iterator[tuple[NVF, str, str]]:
    """(trove, key, digest) for every content kept beside the files: ``*_blob`` entries of
    trove info (RPM headers, Debian control archives) and build logs (``build_log_blob``)."""
    for row in conn.execute(f"SELECT {NVF_COLUMNS}, info FROM troves ORDER BY id"):
        for key, value in json.loads(row[6]).items():
            if key.endswith("_blob") and isinstance(value, str):
                yield row_nvf(row), key, value
    for row in conn.execute(f"SELECT {NVF_COLUMNS}, build_logs.sha256 FROM build_logs"
                            " JOIN troves ON troves.id = build_logs.trove_id ORDER BY troves.id"):
        yield row_nvf(row), BUILD_LOG, row[6]


def build_log(conn: sqlite3.Connection, tid: int) -> str | None:
    """The digest of trove *tid*'s build log (kept beside it, not part of it), if it has one."""
    row = conn.execute("SELECT sha256 FROM build_logs WHERE trove_id=?", (tid,)).fetchone()
    return row[0] if row else None


def file_contents(conn: sqlite3.Connection) -> set[str]:
    """Every content digest a file entry names."""
    return {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM files WHERE sha256 IS NOT NULL")}


def referenced_contents(conn: sqlite3.Connection) -> set[str]:
    """Every content digest a trove names: file contents and ``*_blob`` info entries."""
    return file_contents(conn) | {digest for _, _, digest in info_blobs(conn)}


def content_users(conn: sqlite3.Connection, digest: str) -> list[tuple[NVF, str]]:
    """(trove, path) of every file entry whose content is *digest*, oldest trove first."""
    rows = conn.execute(
        f"SELECT {NVF_COLUMNS}, files.path FROM files JOIN troves ON troves.id = files.trove_id"
        " WHERE files.sha256=? ORDER BY troves.id, files.path",
        (digest,),
    )
    return [(row_nvf(r), r[6]) for r in rows]
