"""The catalog: the whole tree of one revision in one SQLite database.

One row per directory entry; the row id is the inode number the client hands to the
kernel (1 is the root), so a lookup is one indexed query on ``(parent, name)`` and a
directory listing one range scan of that index::

    CREATE TABLE catalog (
        inode    INTEGER PRIMARY KEY,  -- 1: the root directory (parent 0, name '')
        parent   INTEGER NOT NULL,     -- inode of the directory holding it
        name     TEXT NOT NULL,        -- one path component, UTF-8
        mode     INTEGER NOT NULL,     -- st_mode: file type and permission bits
        size     INTEGER NOT NULL,     -- files: bytes uncompressed; symlinks: target length; else 0
        mtime    INTEGER NOT NULL,     -- seconds since the epoch
        mtime_ns INTEGER NOT NULL,     -- the host file's time in nanoseconds, for the publisher's
                                       -- change detection only (image metadata may set mtime)
        hash     TEXT,                 -- regular files: the content object's hash
        symlink  TEXT,                 -- symbolic links: the target, as is
        nlink    INTEGER NOT NULL,     -- directories: 2 + subdirectories; otherwise 1
        uid      INTEGER NOT NULL DEFAULT 0,  -- owner
        gid      INTEGER NOT NULL DEFAULT 0,  -- group
        rdev     INTEGER NOT NULL DEFAULT 0   -- devices: the Linux dev_t, os.makedev(major, minor)
    );
    CREATE UNIQUE INDEX catalog_parent_name ON catalog (parent, name);
    CREATE TABLE properties (key TEXT PRIMARY KEY, value TEXT NOT NULL);

``properties`` holds ``schema`` (2), ``repository``, ``revision`` and counts. Hard
links are published as separate files (their content is one object). Character and
block devices and FIFOs are published (mode with their type bits, ``rdev`` for
devices, size 0, no hash); sockets are not. Schema 1 catalogs (no ``uid``, ``gid``,
``rdev``: read as 0) are still read. The catalog is stored as an object with the
suffix ``C`` and named by the manifest and the tag list.
"""

from __future__ import annotations

import sqlite3
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from appbuilder.core.errors import AppbuildError

SCHEMA_VERSION = 2
READABLE_SCHEMAS = ("1", "2")
ROOT_INODE = 1

SCHEMA = """
CREATE TABLE catalog (
    inode INTEGER PRIMARY KEY,
    parent INTEGER NOT NULL,
    name TEXT NOT NULL,
    mode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,
    symlink TEXT,
    nlink INTEGER NOT NULL,
    uid INTEGER NOT NULL DEFAULT 0,
    gid INTEGER NOT NULL DEFAULT 0,
    rdev INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX catalog_parent_name ON catalog (parent, name);
CREATE TABLE properties (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

COLUMNS = "inode, parent, name, mode, size, mtime, mtime_ns, hash, symlink, nlink, uid, gid, rdev"
COLUMNS_V1 = "inode, parent, name, mode, size, mtime, mtime_ns, hash, symlink, nlink, 0, 0, 0"


class CatalogError(AppbuildError):
    """A catalog is not a valid SQLite database of this schema."""


@dataclass
class Entry:
    inode: int
    parent: int
    name: str
    mode: int
    size: int
    mtime: int
    mtime_ns: int
    hash: str | None = None
    symlink: str | None = None
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    rdev: int = 0

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    @property
    def is_device(self) -> bool:
        return stat.S_ISCHR(self.mode) or stat.S_ISBLK(self.mode)

    def same_as(self, other: Entry) -> bool:
        """Whether *other* shows the same thing to a client (type, mode, size, time, content or
        target, owners, device number, links); inode numbers and ``mtime_ns`` do not count."""
        return ((self.mode, self.size, self.mtime, self.hash, self.symlink, self.nlink, self.uid, self.gid,
                 self.rdev) == (other.mode, other.size, other.mtime, other.hash, other.symlink, other.nlink,
                                other.uid, other.gid, other.rdev))


def build(entries: list[Entry], properties: dict[str, str]) -> bytes:
    """The catalog database holding *entries* (inodes assigned by the caller), as bytes."""
    with tempfile.TemporaryDirectory(prefix="appbuild-catalog-") as tmp:
        path = Path(tmp) / "catalog.db"
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.executescript(SCHEMA)
            db.executemany(f"INSERT INTO catalog ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           [(e.inode, e.parent, e.name, e.mode, e.size, e.mtime, e.mtime_ns, e.hash, e.symlink,
                             e.nlink, e.uid, e.gid, e.rdev) for e in entries])
            props = {"schema": str(SCHEMA_VERSION), **properties}
            db.executemany("INSERT INTO properties (key, value) VALUES (?, ?)", sorted(props.items()))
            db.commit()
            db.execute("VACUUM")
        finally:
            db.close()
        return path.read_bytes()


class Catalog:
    """A catalog read from its bytes (in memory), for the publisher and for checks."""

    def __init__(self, data: bytes):
        if not data.startswith(b"SQLite format 3\x00"):
            raise CatalogError("the catalog is not an SQLite database")
        self.db = sqlite3.connect(":memory:")
        try:
            self.db.deserialize(data)
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise CatalogError(f"the catalog database is damaged ({check})")
            self.properties = dict(self.db.execute("SELECT key, value FROM properties"))
            self.schema = self.properties.get("schema")
            if self.schema not in READABLE_SCHEMAS:
                raise CatalogError(f"catalog schema {self.schema!r} is not one this publisher reads "
                                   f"({', '.join(READABLE_SCHEMAS)})")
            self._columns = COLUMNS if self.schema == str(SCHEMA_VERSION) else COLUMNS_V1
            self.db.execute(f"SELECT {self._columns} FROM catalog LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"the catalog is not a valid catalog database ({exc})") from None

    def _rows(self, query: str, args=()) -> list[Entry]:
        return [Entry(*row) for row in self.db.execute(f"SELECT {self._columns} FROM catalog {query}", args)]

    def get(self, inode: int) -> Entry | None:
        rows = self._rows("WHERE inode = ?", (inode,))
        return rows[0] if rows else None

    def lookup(self, path: str) -> Entry | None:
        """The entry at *path* (``/a/b``, relative to the repository root), symlinks not followed."""
        entry = self.get(ROOT_INODE)
        for part in [p for p in path.split("/") if p]:
            if entry is None or not entry.is_dir:
                return None
            rows = self._rows("WHERE parent = ? AND name = ?", (entry.inode, part))
            entry = rows[0] if rows else None
        return entry

    def listdir(self, inode: int) -> list[Entry]:
        return self._rows("WHERE parent = ? AND inode != ? ORDER BY name", (inode, ROOT_INODE))

    def walk(self) -> dict[str, Entry]:
        """Every entry by its path (``''`` is the root)."""
        rows = self._rows("ORDER BY inode")
        paths: dict[int, str] = {}
        out: dict[str, Entry] = {}
        for e in rows:
            path = "" if e.inode == ROOT_INODE else f"{paths[e.parent]}/{e.name}"
            paths[e.inode] = path
            out[path] = e
        return out

    def close(self) -> None:
        self.db.close()
