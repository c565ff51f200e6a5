"""OVA packages: a deterministic ustar archive of an OVF descriptor, manifest and disk.

The OVF 1.0 specification wants the ``.ovf`` descriptor as the first member of the tar,
then (if present) the ``.mf`` manifest, then the files in the order the descriptor
references them. :func:`write_ova` writes exactly the members it is given, in that
order, with owner 0:0 and no user or group names, mode 0644, and every mtime set to
the image's ``source_date_epoch``, so the same inputs give the same bytes.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable

from appbuilder.core.errors import AppbuildError

COPY_CHUNK = 1 << 20


class OvaError(AppbuildError):
    """A file is not an OVA we can read."""


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_ova(dest: Path, members: Iterable[tuple[str, Path]], *, mtime: int, stop=None) -> None:
    """Write the tar *dest* holding each (member name, source file) in the given order.

    *stop* (a threading.Event) aborts the copy between chunks.
    """
    with open(dest, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, src in members:
            if "/" in name or len(name.encode()) > 100:
                raise OvaError(f"OVA member name {name!r} must be a plain name of at most 100 bytes")
            size = src.stat().st_size
            tar.addfile(_tarinfo(name, size, mtime), _StoppableReader(src, stop))


class _StoppableReader:
    """A file reader for tarfile.addfile that gives up when *stop* is set."""

    def __init__(self, path: Path, stop) -> None:
        self.path = path
        self.stop = stop
        self.f = open(path, "rb")

    def read(self, n: int = -1) -> bytes:
        if self.stop is not None and self.stop.is_set():
            self.f.close()
            raise InterruptedError(f"stopped while packing {self.path.name}")
        data = self.f.read(n)
        if not data:
            self.f.close()
        return data


def members(path: Path) -> list[tarfile.TarInfo]:
    try:
        with tarfile.open(path, mode="r:") as tar:
            return tar.getmembers()
    except tarfile.TarError as exc:
        raise OvaError(f"{path}: not a valid OVA (tar): {exc}") from None


def extract_disk(path: Path, dest_dir: Path) -> Path:
    """Extract the (first) ``.vmdk`` of the OVA *path* into *dest_dir*; its path.

    What a boot test or `appbuild inspect` needs: the disk inside, as a file qemu opens
    with ``format=vmdk``.
    """
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                if info.isfile() and info.name.lower().endswith(".vmdk"):
                    target = Path(dest_dir) / Path(info.name).name
                    with tar.extractfile(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, COPY_CHUNK)
                    return target
    except tarfile.TarError as exc:
        raise OvaError(f"{path}: not a valid OVA (tar): {exc}") from None
    raise OvaError(f"{path}: the OVA holds no .vmdk disk")


def temp_extract_dir(parent: Path | None = None) -> Path:
    return Path(tempfile.mkdtemp(prefix="appbuild-ova-", dir=parent))
