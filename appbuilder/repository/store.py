"""The content store: file contents by sha256, zstd-compressed, each stored once.

Layout: ``objects/ab/abcdef....zst`` where the name is the sha256 of the
*uncompressed* content. An object is written to a temporary file in the same
directory tree and renamed into place, so a reader never sees a half-written object
and an interrupted write leaves only a ``tmp/`` file that the next ``sweep`` removes.
Objects nobody references (a cook killed before its index commit) are invisible: only
the index says what exists, and ``Repository.gc`` deletes them.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

import zstandard

from appbuilder.errors import RepositoryError
from appbuilder.fileio import sha256_file

CHUNK = 1 << 20
LEVEL = 3
# objects at least this big are compressed with every core
THREADED_ABOVE = 8 << 20


class ContentStore:
    """sha256 → compressed blob, deduplicated."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.written = 0  # compressed bytes written by this instance (for reports)

    def path_of(self, digest: str) -> Path:
        return self.objects / digest[:2] / f"{digest}.zst"

    def has(self, digest: str) -> bool:
        return self.path_of(digest).exists()

    def put_file(self, path: Path | str, digest: str | None = None) -> str:
        """Store the content of *path*; returns its sha256. Cheap when already stored."""
        digest = digest or sha256_file(path)
        if not self.has(digest):
            size = os.path.getsize(path)
            with open(path, "rb") as src:
                self._write(digest, src, size)
        return digest

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.has(digest):
            self._write(digest, io.BytesIO(data), len(data))
        return digest

    def _write(self, digest: str, src: BinaryIO, size: int) -> None:
        final = self.path_of(digest)
        final.parent.mkdir(exist_ok=True)
        params = {"level": LEVEL, "write_content_size": True}
        if size >= THREADED_ABOVE:
            params["threads"] = -1
        cctx = zstandard.ZstdCompressor(**params)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="obj-")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                with cctx.stream_writer(out, size=size, closefd=False) as writer:
                    while chunk := src.read(CHUNK):
                        h.update(chunk)
                        writer.write(chunk)
                self.written += out.tell()
            if h.hexdigest() != digest:
                raise RepositoryError(
                    f"content changed while it was stored (expected {digest}, read {h.hexdigest()})"
                )
            os.replace(tmp_name, final)
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
            raise

    def open(self, digest: str) -> BinaryIO:
        """A stream of the uncompressed content."""
        try:
            raw = open(self.path_of(digest), "rb")
        except FileNotFoundError:
            raise RepositoryError(f"content {digest} is missing from the store {self.root}") from None
        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def copy_to(self, digest: str, dest: Path | str, *, verify: bool = False) -> None:
        """Write the content to *dest* (which must not be a symlink)."""
        h = hashlib.sha256() if verify else None
        with self.open(digest) as src, open(dest, "wb") as out:
            while chunk := src.read(CHUNK):
                if h:
                    h.update(chunk)
                out.write(chunk)
        if h and h.hexdigest() != digest:
            raise RepositoryError(f"stored content {digest} is corrupt (reads as {h.hexdigest()})")

    def iter_digests(self) -> Iterator[str]:
        for sub in self.objects.iterdir():
            for obj in sub.iterdir():
                if obj.name.endswith(".zst"):
                    yield obj.name[:-4]

    def remove(self, digest: str) -> int:
        path = self.path_of(digest)
        size = path.stat().st_size
        path.unlink()
        return size

    def sweep_tmp(self, older_than: float) -> None:
        """Remove temporary files of interrupted writes last touched before *older_than*."""
        for leftover in self.tmp.iterdir():
            if leftover.stat().st_mtime < older_than:
                leftover.unlink(missing_ok=True)

    def sync(self) -> None:
        """Flush written objects to disk before the index that names them commits."""
        fd = os.open(self.objects, os.O_RDONLY)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)
