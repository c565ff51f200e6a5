"""VMDK sparse extents: read the header and make qemu-img's descriptor reproducible.

``monolithicSparse`` and ``streamOptimized`` VMDKs are one file: a 512-byte sparse
extent header, then the text descriptor (at ``descriptorOffset``, ``descriptorSize``
sectors, NUL-padded), then grain tables and grains. qemu-img writes a random content id
(``CID=``) into the descriptor and names the extent after the file it was writing to
(here a temporary name). :func:`make_reproducible` rewrites the descriptor in place with
a CID derived from the image and the file's final name; nothing else in qemu's output
varies between runs.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

from appbuilder.core.errors import AppbuildError

SECTOR = 512
MAGIC = b"KDMV"
_HEADER = "<4sIIQQQQIQQQB4sH"  # through compressAlgorithm (79 bytes)


class VmdkError(AppbuildError):
    """A file is not a sparse VMDK we can read."""


@dataclass(frozen=True)
class SparseHeader:
    version: int
    flags: int
    capacity: int  # sectors
    grain_size: int  # sectors
    descriptor_offset: int  # sectors
    descriptor_size: int  # sectors
    num_gtes_per_gt: int
    rgd_offset: int
    gd_offset: int
    overhead: int
    compress_algorithm: int

    @property
    def compressed(self) -> bool:
        return self.compress_algorithm == 1

    @property
    def virtual_size(self) -> int:
        return self.capacity * SECTOR


def read_header(path: str | os.PathLike) -> SparseHeader:
    with open(path, "rb") as f:
        raw = f.read(SECTOR)
    if len(raw) < struct.calcsize(_HEADER) or raw[:4] != MAGIC:
        raise VmdkError(f"{path}: not a sparse VMDK (no KDMV header)")
    (_, version, flags, capacity, grain, desc_off, desc_size, gtes, rgd, gd, overhead, _unclean, _eol,
     compress) = struct.unpack_from(_HEADER, raw)
    return SparseHeader(version, flags, capacity, grain, desc_off, desc_size, gtes, rgd, gd, overhead, compress)


def read_descriptor(path: str | os.PathLike) -> str:
    """The embedded text descriptor of a sparse VMDK."""
    header = read_header(path)
    if not header.descriptor_offset:
        raise VmdkError(f"{path}: the VMDK has no embedded descriptor")
    with open(path, "rb") as f:
        f.seek(header.descriptor_offset * SECTOR)
        region = f.read(header.descriptor_size * SECTOR)
    return region.split(b"\0", 1)[0].decode("utf-8")


def descriptor_value(text: str, key: str) -> str | None:
    m = re.search(rf"^{re.escape(key)}\s*=\s*\"?([^\"\n]*)\"?\s*$", text, re.M)
    return m.group(1) if m else None


def make_reproducible(path: str | os.PathLike, *, cid: int, extent_name: str) -> str:
    """Rewrite the descriptor of *path* in place: fixed CID, extent named *extent_name*.

    Returns the new descriptor text. The descriptor region keeps its size; the text
    is NUL-padded as qemu-img and VMware write it.
    """
    if '"' in extent_name or "\n" in extent_name:
        raise VmdkError(f"a VMDK extent cannot be named {extent_name!r}")
    header = read_header(path)
    text = read_descriptor(path)
    text, n_cid = re.subn(r"^CID=[0-9a-fA-F]+$", f"CID={cid & 0xFFFFFFFF:08x}", text, count=1, flags=re.M)
    text, n_ext = re.subn(r'^(RW|RDONLY|NOACCESS) (\d+) (SPARSE) "[^"]*"', rf'\1 \2 \3 "{extent_name}"',
                          text, count=1, flags=re.M)
    if n_cid != 1 or n_ext != 1:
        raise VmdkError(f"{path}: unexpected VMDK descriptor (no CID or no SPARSE extent line):\n{text}")
    data = text.encode("utf-8")
    room = header.descriptor_size * SECTOR
    if len(data) >= room:
        raise VmdkError(f"{path}: the descriptor does not fit its {room}-byte region")
    with open(path, "r+b") as f:
        f.seek(header.descriptor_offset * SECTOR)
        f.write(data + bytes(room - len(data)))
    return text
