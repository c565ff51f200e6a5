"""Files: writing them so that readers see the old contents or the new, never a mix;
hashing them.

Every place that replaces a file others may read at any moment (manifests, release
indexes, reports, a published repository's manifest) writes a temporary file beside it,
flushes it to disk, renames it over the old one and flushes the directory: a crash or
kill at any point leaves one complete version.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename in *directory* durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace *path* with *data* atomically (and durably)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def sha256_file(path: Path | str, stop=None, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the file at *path*, read in *chunk*-sized blocks; *stop* (a
    ``threading.Event``) aborts between blocks with :class:`InterruptedError`."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            if stop is not None and stop.is_set():
                raise InterruptedError(f"stopped while hashing {Path(path).name}")
            h.update(block)
    return h.hexdigest()
