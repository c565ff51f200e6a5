"""SHA-1s of stored contents, kept by sha256 between commands.

An image's SBOMs name each file by its SHA-1 (SPDX requires it); the content store
knows contents by sha256 only. Reading every file of an image back to hash it again
is the slow part of an inventory, so the SHA-1s found are kept in an sqlite file of
the workspace's cache (``repo/cache/sha1.sqlite``): importing a package records
those of its files while their bytes are in memory anyway, and an inventory records
what it had to read. A file that cannot be read, or a row that is not a SHA-1, is
ignored (the content is read again); it is a cache, the content store stays the truth.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

FILE_NAME = "sha1.sqlite"  # in the workspace's cache directory (settings.cache)
_SHA1 = re.compile(r"[0-9a-f]{40}")


def cache_file(cache_dir: Path) -> Path:
    """The SHA-1 cache of the cache directory *cache_dir*."""
    return Path(cache_dir) / FILE_NAME


def load(path: Path | None) -> dict[str, str]:
    """sha256 -> SHA-1 of every valid row of the cache at *path* (empty when there is none)."""
    if path is None:
        return {}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db, db:
            _create(db)
            return {a: b for a, b in db.execute("SELECT sha256, sha1 FROM sha1")
                    if isinstance(a, str) and isinstance(b, str) and _SHA1.fullmatch(b)}
    except (sqlite3.Error, OSError):
        return {}


def keep(path: Path | None, found: dict[str, str]) -> None:
    """Add *found* (sha256 -> SHA-1) to the cache at *path*, in one transaction (a cache
    that cannot be written is left alone: the next inventory reads the contents)."""
    if path is None or not found:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db, db:
            _create(db)
            db.executemany("INSERT OR REPLACE INTO sha1 VALUES (?, ?)", sorted(found.items()))
    except (sqlite3.Error, OSError):
        pass


def _create(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS sha1 (sha256 TEXT PRIMARY KEY, sha1 TEXT NOT NULL)")
