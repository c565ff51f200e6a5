"""Files: writing them so that readers see the old contents or the new, never a mix;
hashing them.

Every place that replaces a file others may read at any moment (manifests, release
indexes, reports, a published repository's manifest) writes a temporary file beside it,
flushes it to disk, renames it over the old one and flushes the directory: a crash or
kill at any point leaves one complete version.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from appbuilder.core.background import finish_soon


def fsync_dir(directory: Path) -> None:
    """Make a rename in *directory* durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Replace *path* with *data* atomically (and durably, unless *durable* is False: a
    cache's file, which a crash may leave empty but never half-written under its name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
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


def verify_file(path: Path | str, sha256: str, *, what: str) -> None:
    """Refuse *path* unless its content has the pinned *sha256* (``what`` names it)."""
    from appbuilder.core.errors import ChecksumMismatch

    actual = sha256_file(path)
    if actual != sha256.lower():
        raise ChecksumMismatch(what, sha256.lower(), actual)


def remove_tree(path: Path | str) -> None:
    """Remove a directory tree, also one whose directories a build left unreadable or
    unwritable (mode 000); a tree already gone is fine."""
    path = str(path)
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        _open_up(path)
        for dirpath, dirnames, _ in os.walk(path):  # top-down: each directory opened before it is entered
            for d in dirnames:
                _open_up(os.path.join(dirpath, d))
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)


def remove_tree_soon(path: Path | str) -> None:
    """Start removing a tree no longer needed on a thread of its own (deleting tens of thousands
    of staged files takes seconds the build goes on meanwhile); the command waits for it at its
    end (:func:`appbuilder.core.background.wait_until_finished`)."""
    finish_soon(remove_tree, path, name="appbuild-remove")


def _open_up(directory: str) -> None:
    if os.path.islink(directory):
        return
    try:
        if os.stat(directory).st_mode & 0o700 != 0o700:
            os.chmod(directory, 0o700)
    except OSError:
        pass


def hold_lock(directory: Path) -> int:
    """Lock *directory* (its ``.lock`` file) for as long as the returned descriptor is open:
    until the holder closes it or dies, by whatever signal (see :func:`lock_is_free`)."""
    fd = os.open(Path(directory) / ".lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def lock_is_free(directory: Path) -> bool:
    """Whether nobody holds *directory*'s lock: its owner finished or was killed."""
    try:
        fd = os.open(Path(directory) / ".lock", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
