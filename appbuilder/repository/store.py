"""The content store: file contents by sha256, zstd-compressed, each stored once.

Layout: ``objects/ab/abcdef....zst`` where the name is the sha256 of the
*uncompressed* content. An object is written to a temporary file in the same
directory tree and renamed into place, so a reader never sees a half-written object
and an interrupted write leaves only a ``tmp/`` file that the next ``sweep`` removes.
Objects nobody references (a cook killed before its index commit) are invisible: only
the index says what exists, and ``Repository.gc`` deletes them.

Every read is verified: the content is hashed while it is decompressed and compared
with the object's name when the stream ends, so a flipped bit on disk, a truncated
object or one that is not zstd at all is reported as a :class:`DamagedObject` naming
the object file, never handed on as content. New objects also carry zstd's own frame
checksum (objects written before that still read).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Iterator

import zstandard

from appbuilder.core.errors import RepositoryError
from appbuilder.core.fileio import sha256_file

CHUNK = 1 << 20
LEVEL = 3
# objects at least this big are compressed with every core
THREADED_ABOVE = 8 << 20
# enough of an object's start to hold any zstd frame header
FRAME_HEADER_MAX = 18
# objects read in one piece (compressed, and their content) rather than streamed
SMALL_OBJECT = 1 << 20
SMALL_CONTENT = 8 << 20

_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor (one may not serve two threads at once)."""
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx

REMEDY = ("run `appbuild verify` to list every damaged object and the troves that use it, then restore "
          "those files from a backup of the repository")


_DIGEST = re.compile(r"[0-9a-f]{64}")


def is_digest(value) -> bool:
    """Whether *value* names a stored content: a sha256 in lowercase hex (what reads from a
    snapshot, a changeset or the network are checked with before they become paths)."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


class DamagedObject(RepositoryError):
    """A stored object is missing, or its bytes are not the content it is named after."""

    def __init__(self, digest: str, path: Path, problem: str):
        super().__init__(f"stored object {digest} is damaged: {problem}\n  file: {path}\n  {REMEDY}")
        self.digest = digest
        self.path = path
        self.problem = problem


class MissingObject(DamagedObject):
    """An object the caller asked for is not in the store at all."""

    def __init__(self, digest: str, path: Path, root: Path):
        RepositoryError.__init__(
            self, f"content {digest} is missing from the store {root}\n  file: {path}\n  {REMEDY}")
        self.digest = digest
        self.path = path
        self.problem = "missing"


class VerifiedReader(io.RawIOBase):
    """The uncompressed content of one object, hashed as it is read.

    Reaching the end of the stream checks the content against the object's name (and
    its length against the length the frame header announces); any damage raises
    :class:`DamagedObject`, including zstd's own decoding errors. A caller that stops
    before the end has read a prefix that was not checked (zstd still catches most
    damage on the way).
    """

    def __init__(self, digest: str, path: Path, raw: BinaryIO):
        super().__init__()
        self.digest = digest
        self.path = path
        self.size = 0  # uncompressed bytes read so far
        self.verified = False
        self._raw = raw
        self._reader = None
        self._hash = hashlib.sha256()
        self._expected_size = self._frame_size(raw)
        self._reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)

    def _frame_size(self, raw: BinaryIO) -> int | None:
        try:
            head = raw.read(FRAME_HEADER_MAX)
            raw.seek(0)
        except OSError as exc:
            raise self.damaged(f"it cannot be read ({exc.strerror or exc})") from None
        if not head:
            raise self.damaged("the object file is empty")
        try:
            size = zstandard.get_frame_parameters(head).content_size
        except zstandard.ZstdError:
            raise self.damaged("it is not zstd-compressed data") from None
        return None if size == zstandard.CONTENTSIZE_UNKNOWN else size

    def damaged(self, problem: str) -> DamagedObject:
        return DamagedObject(self.digest, self.path, problem)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed object stream")
        if size is None or size < 0:
            size = -1
        try:
            data = self._reader.read(size)
        except zstandard.ZstdError as exc:
            detail = str(exc).replace("zstd decompress error: ", "")
            raise self.damaged(f"its compressed data is damaged (zstd: {detail})") from None
        except OSError as exc:
            raise self.damaged(f"it cannot be read ({exc.strerror or exc})") from None
        if data:
            self._hash.update(data)
            self.size += len(data)
        if (size < 0 or not data) and size != 0:
            self._finish()
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _finish(self) -> None:
        """The end of the content: it must be complete and hash to the object's name."""
        if self.verified:
            return
        if self._expected_size is not None and self.size < self._expected_size:
            raise self.damaged(f"it is truncated: it holds {self.size} of {self._expected_size} bytes")
        actual = self._hash.hexdigest()
        if actual != self.digest:
            raise self.damaged(f"its content hashes to {actual}, not to its name")
        self.verified = True

    def close(self) -> None:
        if not self.closed:
            if self._reader is not None:
                self._reader.close()
            self._raw.close()
        super().close()


class ContentStore:
    """sha256 → compressed blob, deduplicated; every read verified."""

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

    def put_bytes(self, data: bytes, *, digest: str | None = None) -> str:
        """Store *data*; its sha256. *digest*: the sha256 the caller computed of these very
        (immutable) bytes, not computed again."""
        if digest is None:
            digest = hashlib.sha256(data).hexdigest()
        if not self.has(digest):
            self._write(digest, io.BytesIO(data), len(data), hashed=True)
        return digest

    def _write(self, digest: str, src: BinaryIO, size: int, *, hashed: bool = False) -> None:
        """Compress *src* into the object *digest*; unless *hashed* (bytes in memory, hashed
        by the caller), check on the way that it is that content."""
        final = self.path_of(digest)
        final.parent.mkdir(exist_ok=True)
        params = {"level": LEVEL, "write_content_size": True, "write_checksum": True}
        if size >= THREADED_ABOVE:
            params["threads"] = -1
        cctx = zstandard.ZstdCompressor(**params)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="obj-")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                with cctx.stream_writer(out, size=size, closefd=False) as writer:
                    while chunk := src.read(CHUNK):
                        if not hashed:
                            h.update(chunk)
                        writer.write(chunk)
                self.written += out.tell()
            if not hashed and h.hexdigest() != digest:
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

    def open(self, digest: str) -> VerifiedReader:
        """A stream of the uncompressed content, checked against *digest* at its end."""
        path = self.path_of(digest)
        try:
            raw = open(path, "rb")
        except FileNotFoundError:
            raise MissingObject(digest, path, self.root) from None
        except OSError as exc:
            raise DamagedObject(digest, path, f"it cannot be opened ({exc.strerror or exc})") from None
        try:
            return VerifiedReader(digest, path, raw)
        except BaseException:
            raw.close()
            raise

    def read(self, digest: str) -> bytes:
        """The whole content, verified."""
        with self.open(digest) as f:
            return f.read()

    def copy_to(self, digest: str, dest: Path | str) -> None:
        """Write the verified content to *dest* (which must not be a symlink).

        Damage is found while the content is written; *dest* is then removed and
        :class:`DamagedObject` raised, so no damaged file is ever left behind.
        """
        with self.open(digest) as src:
            try:
                with open(dest, "wb") as out:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
            except BaseException:
                Path(dest).unlink(missing_ok=True)
                raise

    def write_new(self, digest: str, dest: Path | str, mode: int) -> os.stat_result:
        """Write the verified content to the new file *dest* (made here: never an existing
        file, never through a symlink) with *mode*; returns the file's stat.

        A small object is read, decompressed and checked in one piece (most files of a
        system: the per-file cost is what counts), a large one streamed as by
        :meth:`copy_to`. Damage is found before the file is complete; *dest* is then
        removed and :class:`DamagedObject` raised."""
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                data = self._small(digest)
                if data is not None:
                    out.write(data)
                else:
                    with self.open(digest) as src:
                        while chunk := src.read(CHUNK):
                            out.write(chunk)
            os.fchmod(fd, mode)
            return os.fstat(fd)
        except BaseException:
            Path(dest).unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

    def _small(self, digest: str) -> bytes | None:
        """The verified content of *digest* when its object is small and sound; None: stream
        it (large, or any trouble decoding it: the stream reader names the damage)."""
        path = self.path_of(digest)
        try:
            with open(path, "rb") as f:
                raw = f.read(SMALL_OBJECT + 1)
        except OSError:
            return None
        try:
            size = zstandard.frame_content_size(raw)
            if len(raw) > SMALL_OBJECT or not 0 <= size <= SMALL_CONTENT:
                return None
            data = _decompressor().decompress(raw)
        except zstandard.ZstdError:
            return None
        if len(data) != size:
            return None
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise DamagedObject(digest, path, f"its content hashes to {actual}, not to its name")
        return data

    def check(self, digest: str) -> int:
        """Read the object through and verify it; returns its uncompressed size.

        Raises :class:`DamagedObject` (:class:`MissingObject` when it is not there).
        """
        with self.open(digest) as src:
            while src.read(CHUNK):
                pass
            return src.size

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
