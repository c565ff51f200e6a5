"""Where releases are published: a directory (this module), or S3-compatible object
storage (``s3dest.py``).

``open_destination("DIR")`` or ``open_destination("s3://bucket/prefix", endpoint_url=...)``.
Both keep the same tree, so a directory served by nginx and a bucket behind a CDN look
the same to a downloader::

    index.html                        every group and its current releases
    signing-key.asc                   the public key SHA256SUMS are signed with
    GROUP/releases.json, index.html   the group's release index (release_index.py)
    GROUP/VERSION/ARCH/               images, manifest.json, SHA256SUMS, SHA256SUMS.asc

What makes publishing atomic for a reader:

* **directory**: a release is written into ``GROUP/.tmp-publish-*`` on the same file
  system, each file copied, checked against its sha256 and fsynced, and appears by one
  ``rename`` (the whole ``VERSION`` directory, or ``ARCH`` into an existing one); index
  files are replaced by rename. A failure (ENOSPC, EROFS, a bad checksum) removes the
  temporary directory and leaves the destination as it was.
* **S3**: objects become visible only complete (a PUT or a completed multipart upload);
  a release is named by nothing until the index, written last, names it. The feed is
  written with ``If-Match``/``If-None-Match`` on the ETag read under the lock, so an
  index changed meanwhile is never overwritten. On failure the objects uploaded so far
  are deleted.

Two publishers are serialised by a lock: ``flock`` on ``.appbuild-publish.lock`` for a
directory; for S3 an object ``.appbuild-publish.lock`` created with ``If-None-Match: *``
(a conditional PUT: AWS S3 since 2024, MinIO, Ceph RGW, moto). A lock object older than
its time-to-live (default an hour) is taken over with ``If-Match`` on its ETag; stores
without conditional writes cannot give this guarantee (publish from one place only).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import os
import shutil
import socket
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from appbuilder.errors import AppbuildError
from appbuilder.fileio import fsync_dir
from appbuilder.images.manifest import utc_now

LOCK_NAME = ".appbuild-publish.lock"
STAGING_PREFIX = ".tmp-publish-"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
_CHUNK = 4 << 20
_ZEROS = bytes(_CHUNK)


class DestinationError(AppbuildError):
    """The destination cannot be written (full, read-only, unreachable, locked).

    *partial* is true only when index files were already replaced: then the release trees
    they may name must stay (they are complete; publishing again finishes the job)."""

    def __init__(self, message: str, *, partial: bool = False):
        super().__init__(message)
        self.partial = partial


class ChecksumError(AppbuildError):
    """A file to publish no longer has the sha256 its manifest records."""


@dataclass
class ReleaseFile:
    """One file of a release: copied from *source*, or written from *data*."""

    name: str
    sha256: str
    size: int
    source: Path | None = None
    data: bytes | None = None


def content_type(name: str) -> str:
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".html"):
        return "text/html; charset=utf-8"
    if name.endswith(".asc"):
        return "application/pgp-signature"
    if name == "SHA256SUMS" or name.endswith((".log", ".txt")):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def describe_oserror(where: str, exc: OSError) -> str:
    reason = {
        errno.ENOSPC: "is full (no space left on device)",
        errno.EDQUOT: "is over its disk quota",
        errno.EROFS: "is read-only",
        errno.EACCES: "is not writable (permission denied)",
        errno.EPERM: "is not writable (operation not permitted)",
    }.get(exc.errno, f"cannot be written ({exc.strerror or exc})")
    return f"{where} {reason}; nothing was changed there"


class Destination(ABC):
    """The operations publishing needs; see the module docstring for what each guarantees."""

    url: str

    @abstractmethod
    def lock(self, timeout: float) -> Iterator[None]: ...

    @abstractmethod
    def read(self, rel: str) -> bytes | None: ...

    @abstractmethod
    def write_index(self, items: list[tuple[str, bytes]], *, guard: str | None = None) -> None:
        """Write small files in order, each atomically; *guard* is the feed read under the lock
        (S3 writes it conditionally). On failure raises DestinationError, with *partial* set
        if some of them were already replaced."""

    @abstractmethod
    def place(self, group: str, version: str, arches: dict[str, list[ReleaseFile]]) -> list[str]:
        """Write the release trees ``GROUP/VERSION/ARCH/``; returns what to remove to undo it."""

    @abstractmethod
    def undo(self, placed: list[str]) -> None: ...

    @abstractmethod
    def remove(self, group: str, version: str) -> None:
        """Delete a release tree (after the index stopped naming it)."""

    @abstractmethod
    def groups(self) -> list[str]:
        """Groups that have a release index here."""


# ---------------------------------------------------------------- a directory


def copy_verified(source: Path, target: Path, sha256: str, size: int) -> None:
    """Copy *source* to a new file *target* in one pass, hashing what is copied (in a second
    thread, overlapping the writes); runs of zeros become holes (as ``cp --sparse=auto``).
    Raises ChecksumError if the bytes are not *sha256*."""
    actual = source.stat().st_size
    if actual != size:
        raise ChecksumError(f"{source} has {actual} bytes, but its manifest records {size}")
    h = hashlib.sha256()
    buffers = [bytearray(_CHUNK), bytearray(_CHUNK)]
    with open(source, "rb") as src, open(target, "xb") as dst, ThreadPoolExecutor(1) as hasher:
        hashing = None
        for i in itertools.count():
            chunk = buffers[i % 2]  # the other buffer may still be being hashed
            n = src.readinto(chunk)
            if not n:
                break
            view = memoryview(chunk)[:n]
            if hashing is not None:
                hashing.result()
            hashing = hasher.submit(h.update, view)  # hashlib releases the GIL on large buffers
            if n == _CHUNK and view == _ZEROS:
                dst.seek(n, os.SEEK_CUR)
            else:
                dst.write(view)
        if hashing is not None:
            hashing.result()
        dst.truncate(dst.tell())
        dst.flush()
        os.fsync(dst.fileno())
    if h.hexdigest() != sha256:
        raise ChecksumError(f"{source} no longer matches its recorded checksum: the manifest records sha256 "
                            f"{sha256}, the file has {h.hexdigest()}")


class DirectoryDestination(Destination):
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.url = str(self.root)

    def _fail(self, exc: OSError) -> DestinationError:
        return DestinationError(describe_oserror(str(self.root), exc))

    @contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            f = open(self.root / LOCK_NAME, "a+")
        except OSError as exc:
            if exc.errno == errno.EROFS and (self.root / LOCK_NAME).exists():
                f = open(self.root / LOCK_NAME)  # read-only: lock anyway, fail at the first write
            else:
                raise self._fail(exc) from None
        with f:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        f.seek(0)
                        holder = f.read().strip() or "another process"
                        raise DestinationError(f"another publish to {self.root} is running ({holder}); nothing "
                                               f"was changed. Try again when it has finished.") from None
                    time.sleep(0.2)
            try:
                try:
                    f.seek(0)
                    f.truncate()
                    f.write(f"pid {os.getpid()} on {socket.gethostname()} since {utc_now()}\n")
                    f.flush()
                except OSError:
                    pass  # read-only: the holder note is only a courtesy
                self._sweep()
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _sweep(self) -> None:
        """Remove what publishes that were killed left behind (we hold the lock): staging
        directories and index files that were never renamed into place."""
        for staging in self.root.glob(f"*/{STAGING_PREFIX}*"):
            shutil.rmtree(staging, ignore_errors=True)
        for pattern in (".*.tmp", "*/.*.tmp"):
            for leftover in self.root.glob(pattern):
                leftover.unlink(missing_ok=True)

    def read(self, rel: str) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            return None

    def write_index(self, items: list[tuple[str, bytes]], *, guard: str | None = None) -> None:
        """All files are written and fsynced under temporary names first (a full disk fails
        here, with nothing changed), then renamed into place one after the other."""
        staged: list[tuple[Path, Path]] = []
        try:
            for rel, data in items:
                path = self.root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                staged.append((Path(name), path))
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(name, 0o644)
        except OSError as exc:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise self._fail(exc) from None
        try:
            for i, (tmp, path) in enumerate(staged):
                os.replace(tmp, path)
            for directory in {path.parent for _, path in staged}:
                fsync_dir(directory)
        except OSError as exc:
            for tmp, _ in staged[i:]:
                tmp.unlink(missing_ok=True)
            raise DestinationError(describe_oserror(str(self.root), exc).replace(
                "nothing was changed there", "its index is partly updated; publish again"), partial=i > 0) from None

    def place(self, group: str, version: str, arches: dict[str, list[ReleaseFile]]) -> list[str]:
        gdir = self.root / group
        vdir = gdir / version
        staging = None
        new_group = not gdir.exists()
        done = False
        try:
            gdir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=gdir))
            os.chmod(staging, 0o755)
            for arch, files in arches.items():
                if (vdir / arch).exists():
                    raise DestinationError(f"{vdir / arch} exists, but the release index does not list it (left "
                                           f"by a publish that was killed?); remove it and publish again")
                adir = staging / arch
                adir.mkdir(mode=0o755)
                for f in files:
                    target = adir / f.name
                    if f.source is not None:
                        copy_verified(f.source, target, f.sha256, f.size)
                    else:
                        with open(target, "xb") as out:
                            out.write(f.data)
                            out.flush()
                            os.fsync(out.fileno())
                    os.chmod(target, 0o644)
                fsync_dir(adir)
            fsync_dir(staging)
            placed = []
            if not vdir.exists():
                os.rename(staging, vdir)
                placed.append(f"{group}/{version}")
                staging = None
            else:
                for arch in arches:
                    os.rename(staging / arch, vdir / arch)
                    placed.append(f"{group}/{version}/{arch}")
                fsync_dir(vdir)
            fsync_dir(gdir)
            done = True
            return placed
        except OSError as exc:
            raise self._fail(exc) from None
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            if new_group and not done:
                shutil.rmtree(gdir, ignore_errors=True)

    def undo(self, placed: list[str]) -> None:
        for rel in placed:
            shutil.rmtree(self.root / rel, ignore_errors=True)
            for parent in (self.root / rel).parents:  # a group directory made for this release
                if parent == self.root:
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break

    def remove(self, group: str, version: str) -> None:
        target = self.root / group / version
        if target.exists():
            # rename first, so a half-deleted tree is never visible under its name
            doomed = target.with_name(f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
            os.rename(target, doomed)
            shutil.rmtree(doomed, ignore_errors=True)

    def groups(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if (d / "releases.json").is_file())


def open_destination(where: str | Path, *, endpoint_url: str | None = None, region: str | None = None) -> Destination:
    """A destination from what a user typed: ``s3://bucket/prefix`` or a directory."""
    text = str(where)
    if text.startswith("s3://"):
        from appbuilder.images.s3dest import S3Destination

        return S3Destination(text, endpoint_url=endpoint_url, region=region)
    if "://" in text:
        raise DestinationError(f"cannot publish to {text}: give a directory or s3://BUCKET/PREFIX")
    return DirectoryDestination(Path(text))
