"""What every release destination does, and what they share: errors, the lock file name,
the file records, verified copies (see the package's docstring for the tree they keep)."""


from __future__ import annotations

import errno
import hashlib
import itertools
import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from appbuilder.core.errors import AppbuildError

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
