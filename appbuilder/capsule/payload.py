"""The checks every member of an upstream package's payload passes before it is kept.

A package is refused as a whole (nothing of it is committed) when a member

* has a path that is not inside the root: ``..`` components, or empty after
  normalisation (``./`` itself is skipped, it is the root);
* is a hard link naming a path outside the root;
* is a symbolic link whose relative target climbs above the root
  (``/usr/bin/x -> ../../../etc/passwd`` from ``/usr/bin``); absolute targets are
  fine, they resolve inside the image;
* lies below a symbolic link of the same package (``/opt/link -> /etc`` and then
  ``/opt/link/passwd``): writing it would write through the link;
* appears twice.

File contents are kept in memory up to :data:`SPOOL_LIMIT` bytes, larger ones in a
temporary file; either way they are hashed and stored in the content store directly,
never written out at their package path.
"""

from __future__ import annotations

import hashlib
import posixpath
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from appbuilder.core.errors import UnsafeArchive
from appbuilder.repository.store import ContentStore

SPOOL_LIMIT = 32 << 20
HEAD = 256  # bytes kept for the dependency scan's look at a file's start


def member_path(raw: str, *, package: str) -> str | None:
    """The absolute, normalised path of a payload member; None for the root itself."""
    text = raw
    if text.startswith("./"):
        text = text[1:]
    elif text == ".":
        return None
    if not text.startswith("/"):
        text = "/" + text
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{package}: payload member {raw!r} escapes the root ('..' in its path)")
    if not parts:
        return None
    return "/" + "/".join(parts)


def check_symlink(path: str, target: str, *, package: str) -> None:
    """Refuse a relative symlink target that climbs above the root."""
    if not target:
        raise UnsafeArchive(f"{package}: symbolic link {path} has an empty target")
    if target.startswith("/"):
        return
    depth = len(posixpath.dirname(path).strip("/").split("/")) if posixpath.dirname(path) != "/" else 0
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise UnsafeArchive(
                    f"{package}: symbolic link {path} -> {target} points outside the root"
                )
        elif part not in ("", "."):
            depth += 1


@dataclass
class PathChecker:
    """Checks members one by one as a payload is read (see the module docstring)."""

    package: str
    seen: set[str] = field(default_factory=set)
    symlinks: set[str] = field(default_factory=set)

    def add(self, path: str, kind: str, target: str | None = None) -> None:
        if path in self.seen:
            raise UnsafeArchive(f"{self.package}: payload member {path} appears twice")
        parent = posixpath.dirname(path)
        while parent not in ("/", ""):
            if parent in self.symlinks:
                raise UnsafeArchive(
                    f"{self.package}: payload member {path} lies below the symbolic link {parent}"
                )
            parent = posixpath.dirname(parent)
        self.seen.add(path)
        if kind == "symlink":
            check_symlink(path, target or "", package=self.package)
            self.symlinks.add(path)
        elif kind == "hardlink" and target not in self.seen:
            raise UnsafeArchive(
                f"{self.package}: hard link {path} names {target!r}, which is not an earlier member"
            )

    def finish(self) -> None:
        """A directory packaged after a symlink of the same path is caught by ``add``; a
        symlink packaged after files below it is caught here."""
        for link in self.symlinks:
            prefix = link + "/"
            for p in self.seen:
                if p.startswith(prefix):
                    raise UnsafeArchive(f"{self.package}: payload member {p} lies below the symbolic link {link}")


@dataclass
class StoredContent:
    sha256: str
    size: int
    head: bytes  # the first bytes, for the dependency scan
    data: bytes | None  # the whole content when small (ELF files are parsed from it)
    spool: Path | None = None  # a temporary file holding large content

    def hexdigest(self, algo: str) -> str:
        """The content's digest with *algo* (md5, sha1, ...), as packages record them."""
        if algo == "sha256":
            return self.sha256
        h = hashlib.new(algo)
        if self.data is not None:
            h.update(self.data)
        else:
            with open(self.spool, "rb") as src:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
        return h.hexdigest()


class ContentWriter:
    """Puts member contents into the content store, hashing them on the way.

    With *threads*, objects are written by a small pool of threads while the payload
    is read on: on many disks creating each object's file costs more than hashing and
    compressing it. :meth:`wait` must return before a commit names the contents. With
    *sha1*, the SHA-1 of each content is found on the way too (``sha1s``: sha256 -> SHA-1,
    for :mod:`appbuilder.repository.sha1s`).
    """

    PENDING_LIMIT = 256 << 20  # bytes queued for writing before put() waits

    def __init__(self, store: ContentStore, *, threads: int = 0, sha1: bool = False):
        self.store = store
        self.stored_bytes = 0
        self.sha1s: dict[str, str] | None = {} if sha1 else None
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="store") if threads else None
        self._pending: deque[tuple[Future, int]] = deque()
        self._pending_bytes = 0
        self._queued: set[str] = set()

    def put(self, data: bytes) -> StoredContent:
        digest = hashlib.sha256(data).hexdigest()
        self.stored_bytes += len(data)
        if self.sha1s is not None and digest not in self.sha1s:
            self.sha1s[digest] = hashlib.sha1(data).hexdigest()
        if digest not in self._queued and not self.store.has(digest):
            if self._pool is None:
                self.store.put_bytes(data, digest=digest)
            else:
                self._queued.add(digest)
                self._pending.append((self._pool.submit(self.store.put_bytes, data, digest=digest), len(data)))
                self._pending_bytes += len(data)
                while self._pending_bytes > self.PENDING_LIMIT:
                    self._finish_one()
        return StoredContent(digest, len(data), data[:HEAD], data)

    def _finish_one(self) -> None:
        future, size = self._pending.popleft()
        self._pending_bytes -= size
        future.result()

    def wait(self) -> None:
        """Every queued object is in the store (or the first write error is raised)."""
        error = None
        while self._pending:
            try:
                self._finish_one()
            except Exception as exc:  # finish the others, then report the first
                error = error or exc
        if error is not None:
            raise error

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()

    def put_stream(self, read, size_hint: int = 0) -> StoredContent:
        """Store what ``read(n)`` returns until it returns b''."""
        if size_hint and size_hint <= SPOOL_LIMIT:
            chunks = []
            while chunk := read(1 << 20):
                chunks.append(chunk)
            return self.put(b"".join(chunks))
        self.store.tmp.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.NamedTemporaryFile(dir=self.store.tmp, prefix="capsule-", delete=False)
        h = hashlib.sha256()
        h1 = hashlib.sha1() if self.sha1s is not None else None
        size = 0
        head = b""
        with tmp:
            while chunk := read(1 << 20):
                if len(head) < HEAD:
                    head += chunk[:HEAD - len(head)]
                h.update(chunk)
                if h1 is not None:
                    h1.update(chunk)
                tmp.write(chunk)
                size += len(chunk)
        digest = self.store.put_file(tmp.name, h.hexdigest())
        if h1 is not None:
            self.sha1s[digest] = h1.hexdigest()
        self.stored_bytes += size
        return StoredContent(digest, size, head, None, Path(tmp.name))

    @staticmethod
    def release(content: StoredContent) -> None:
        if content.spool is not None:
            content.spool.unlink(missing_ok=True)
            content.spool = None
