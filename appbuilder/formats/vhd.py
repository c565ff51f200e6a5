"""The VHD (qemu's ``vpc``) footer: read it, and make qemu-img's output reproducible.

Every VHD ends with a 512-byte footer (a dynamic VHD also starts with a copy of it).
``qemu-img convert -O vpc`` writes the current time and a random unique id into it, so
two conversions of the same disk differ. :func:`make_reproducible` overwrites both
with values derived from the image (its ``source_date_epoch`` and a stable UUID) and
recomputes the checksum.

Footer layout (big-endian), from the Microsoft VHD specification::

    0 cookie "conectix"   8 features        12 format version   16 data offset
   24 timestamp (s since 2000-01-01 UTC)   28 creator app       32 creator version
   36 creator host OS    40 original size  48 current size     56 geometry C/H/S
   60 disk type (2 fixed, 3 dynamic, 4 differencing)             64 checksum
   68 unique id (16)     84 saved state
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from appbuilder.core.errors import AppbuildError

FOOTER_SIZE = 512
COOKIE = b"conectix"
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z as a Unix time
DISK_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}

_FMT = ">8sIIQI4sI4sQQHBBII16sB"  # up to and including saved state (85 bytes)


class VhdError(AppbuildError):
    """A file is not a VHD we can read."""


@dataclass
class Footer:
    cookie: bytes
    features: int
    version: int
    data_offset: int
    timestamp: int
    creator_app: bytes
    creator_version: int
    creator_os: bytes
    original_size: int
    current_size: int
    cylinders: int
    heads: int
    sectors: int
    disk_type: int
    checksum: int
    unique_id: uuid.UUID
    saved_state: int

    @classmethod
    def unpack(cls, raw: bytes) -> "Footer":
        if len(raw) != FOOTER_SIZE:
            raise VhdError(f"a VHD footer is {FOOTER_SIZE} bytes, not {len(raw)}")
        f = struct.unpack_from(_FMT, raw)
        return cls(*f[:15], uuid.UUID(bytes=f[15]), f[16])

    def pack(self) -> bytes:
        """The 512 footer bytes, with the checksum recomputed."""
        body = self._pack(checksum=0)
        return self._pack(checksum=checksum(body))

    def _pack(self, checksum: int) -> bytes:
        head = struct.pack(
            _FMT, self.cookie, self.features, self.version, self.data_offset, self.timestamp,
            self.creator_app, self.creator_version, self.creator_os, self.original_size, self.current_size,
            self.cylinders, self.heads, self.sectors, self.disk_type, checksum, self.unique_id.bytes,
            self.saved_state,
        )
        return head + bytes(FOOTER_SIZE - len(head))

    @property
    def kind(self) -> str:
        return DISK_TYPES.get(self.disk_type, f"type {self.disk_type}")

    @property
    def unix_time(self) -> int:
        return self.timestamp + VHD_EPOCH


def checksum(footer_without_checksum: bytes) -> int:
    """One's complement of the byte sum, as the VHD specification defines it."""
    return ~sum(footer_without_checksum) & 0xFFFFFFFF


def read_footer(path: str | os.PathLike) -> Footer:
    """The footer at the end of *path*; raises :class:`VhdError` if there is none."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < FOOTER_SIZE:
            raise VhdError(f"{path}: too small to be a VHD")
        f.seek(-FOOTER_SIZE, os.SEEK_END)
        raw = f.read(FOOTER_SIZE)
    if raw[:8] != COOKIE:
        raise VhdError(f"{path}: no VHD footer (cookie {raw[:8]!r}, expected {COOKIE!r})")
    footer = Footer.unpack(raw)
    if footer.checksum != checksum(raw[:64] + b"\0\0\0\0" + raw[68:]):
        raise VhdError(f"{path}: VHD footer checksum is wrong")
    return footer


def is_vhd(path: str | os.PathLike) -> bool:
    try:
        read_footer(path)
        return True
    except (VhdError, OSError):
        return False


def make_reproducible(path: str | os.PathLike, *, unix_time: int, unique_id: uuid.UUID) -> Footer:
    """Set timestamp and unique id in every footer copy of *path* (in place); returns the footer."""
    footer = read_footer(path)
    footer.timestamp = max(0, unix_time - VHD_EPOCH) & 0xFFFFFFFF
    footer.unique_id = unique_id
    packed = footer.pack()
    size = Path(path).stat().st_size
    with open(path, "r+b") as f:
        f.seek(size - FOOTER_SIZE)
        f.write(packed)
        if footer.disk_type != 2:  # dynamic and differencing disks start with a copy
            f.seek(0)
            head = f.read(FOOTER_SIZE)
            if head[:8] != COOKIE:
                raise VhdError(f"{path}: a {footer.kind} VHD must start with a footer copy")
            f.seek(0)
            f.write(packed)
    return Footer.unpack(packed)
