"""The repository index: an SQLite database of troves, their files and dependencies.

Every change to the index happens inside one ``BEGIN IMMEDIATE`` transaction, so a
commit is all-or-nothing (SQLite's journal survives kill -9 and power loss) and two
writers at once queue up instead of interleaving. Readers use WAL mode and never
block writers.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
"""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=300, isolation_level=None)
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
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One all-or-nothing change; concurrent writers wait for each other."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def flavor_key(flavor: Flavor) -> str:
    return flavor.arch or ""


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
    return NVF(name, Version(label, upstream, sc, bc), Flavor(flavor or None))


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
        NVF(n, Version.parse(v), Flavor(f or None))
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
