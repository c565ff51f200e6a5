"""Content-addressed objects: compression, hashing, and where an object lives.

An object is a zlib stream (RFC 1950, as CernVM-FS stores files). Its name is the
SHA-256 of the *compressed* bytes, so anybody can check an object with ``sha256sum``
without unpacking it, and the client verifies what it downloads while the bytes
arrive. Objects live in ``data/<first two hex digits>/<other 62><suffix>``; the
suffix tells what an object is (``C`` a catalog, nothing for file contents).

Objects are written to a temporary name in their directory and renamed into place,
so a reader (or a web server) never sees half an object, and an object that is
already there is not written again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from appbuilder.core.errors import AppbuildError

HASH_ALGORITHM = "sha256"
HASH_HEX_LENGTH = 64
COMPRESSION_LEVEL = 6  # zlib's default: what CernVM-FS uses
CATALOG_SUFFIX = "C"
FILE_SUFFIX = ""


class ObjectError(AppbuildError):
    """An object is missing, or its content does not match its name."""


def compress(data: bytes) -> bytes:
    return zlib.compress(data, COMPRESSION_LEVEL)


def decompress(data: bytes, *, what: str = "object") -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error as exc:
        raise ObjectError(f"{what} is not a valid zlib stream ({exc})") from None


def content_hash(compressed: bytes) -> str:
    return hashlib.sha256(compressed).hexdigest()


def is_hash(text: str) -> bool:
    return len(text) == HASH_HEX_LENGTH and all(c in "0123456789abcdef" for c in text)


def relative_path(digest: str, suffix: str = FILE_SUFFIX) -> str:
    """``data/ab/cdef...<suffix>``: where the object *digest* lives in a repository."""
    if not is_hash(digest):
        raise ObjectError(f"not a {HASH_ALGORITHM} content hash: {digest!r}")
    return f"data/{digest[:2]}/{digest[2:]}{suffix}"


@dataclass(frozen=True)
class StoredObject:
    digest: str
    compressed_size: int
    written: bool  # False: an object of that name was already there


class ObjectStore:
    """The ``data/`` tree of one repository directory."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, digest: str, suffix: str = FILE_SUFFIX) -> Path:
        return self.root / relative_path(digest, suffix)

    def exists(self, digest: str, suffix: str = FILE_SUFFIX) -> bool:
        return self.path(digest, suffix).is_file()

    def put_compressed(self, compressed: bytes, suffix: str = FILE_SUFFIX) -> StoredObject:
        """Store already-compressed bytes under their hash (a no-op if present)."""
        digest = content_hash(compressed)
        target = self.path(digest, suffix)
        if target.is_file():
            return StoredObject(digest, len(compressed), False)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(compressed)
            os.chmod(tmp, 0o644)  # served as is by any web server
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredObject(digest, len(compressed), True)

    def put(self, data: bytes, suffix: str = FILE_SUFFIX) -> StoredObject:
        """Compress *data* and store it."""
        return self.put_compressed(compress(data), suffix)

    def get(self, digest: str, suffix: str = FILE_SUFFIX) -> bytes:
        """The uncompressed content of an object, after checking its hash."""
        path = self.path(digest, suffix)
        try:
            compressed = path.read_bytes()
        except FileNotFoundError:
            raise ObjectError(f"object {relative_path(digest, suffix)} is missing") from None
        actual = content_hash(compressed)
        if actual != digest:
            raise ObjectError(f"object {relative_path(digest, suffix)} is corrupt: its content hashes to {actual}")
        return decompress(compressed, what=f"object {relative_path(digest, suffix)}")


CHUNK = 1 << 20


def put_file(store: ObjectStore, path: Path, suffix: str = FILE_SUFFIX) -> StoredObject:
    """Compress the file at *path* into *store*, streaming (any size, bounded memory)."""
    tmp_dir = store.root / "data" / "txn"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="obj-")
    try:
        digest = hashlib.sha256()
        packer = zlib.compressobj(COMPRESSION_LEVEL)
        size = 0
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            while chunk := src.read(CHUNK):
                packed = packer.compress(chunk)
                if packed:
                    digest.update(packed)
                    out.write(packed)
                    size += len(packed)
            packed = packer.flush()
            digest.update(packed)
            out.write(packed)
            size += len(packed)
        name = digest.hexdigest()
        target = store.path(name, suffix)
        if target.is_file():
            return StoredObject(name, size, False)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        return StoredObject(name, size, True)
    finally:
        Path(tmp).unlink(missing_ok=True)
