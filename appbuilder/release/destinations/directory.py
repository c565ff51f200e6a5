"""Publishing to a directory (served by nginx, or any web server): see the package's
docstring for how a release appears atomically."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from appbuilder.core.fileio import fsync_dir
from appbuilder.release.destinations.base import (
    LOCK_NAME,
    STAGING_PREFIX,
    Destination,
    DestinationError,
    ReleaseFile,
    copy_verified,
    describe_oserror,
)
from appbuilder.store.manifest import utc_now


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
