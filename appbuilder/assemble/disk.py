"""The raw disk: an MBR written in Python, a FAT boot partition and an ext4 root.

Layout (BIOS boot on x86 and x86_64)::

    0        MBR: syslinux mbr.bin code, disk signature, two partition entries
    1 MiB    partition 1, bootable, FAT16 (type 0x0E): SYSLINUX, kernel, initramfs
    ...      partition 2, Linux (type 0x83): the ext4 root file system

Sizes are computed from what goes in plus headroom, in whole MiB; a size the user asks
for is checked against what the closure needs. Partition images are copied in with
their holes kept, so the raw disk stays sparse.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from appbuilder.core.errors import AppbuildError

MIB = 1 << 20
SECTOR = 512
FIRST_PARTITION = 1 * MIB
ROOT_HEADROOM = 64 * MIB
BOOT_TYPE, LINUX_TYPE = 0x0E, 0x83


@dataclass(frozen=True)
class Partition:
    start: int  # bytes
    size: int  # bytes
    type_code: int
    bootable: bool = False

    @property
    def first_lba(self) -> int:
        return self.start // SECTOR

    @property
    def sectors(self) -> int:
        return self.size // SECTOR


@dataclass(frozen=True)
class DiskLayout:
    total: int
    boot: Partition
    root: Partition


def round_mib(n: int) -> int:
    return -(-n // MIB) * MIB


def plan_layout(boot_bytes: int, root_bytes: int, requested_total: int | None = None) -> DiskLayout:
    """Partition sizes for what must fit; the root gets whatever a requested size leaves."""
    boot_size = round_mib(boot_bytes)
    root_min = round_mib(root_bytes)
    needed = FIRST_PARTITION + boot_size + root_min
    if requested_total is None:
        total = needed + round_mib(ROOT_HEADROOM)
    else:
        total = round_mib(requested_total)
        if total < needed:
            raise AppbuildError(
                f"an image of {requested_total / MIB:.0f} MiB is too small for this closure: it needs at least "
                f"{needed // MIB} MiB (boot partition {boot_size // MIB} MiB, root file system {root_min // MIB} MiB)"
            )
    boot = Partition(FIRST_PARTITION, boot_size, BOOT_TYPE, bootable=True)
    root = Partition(boot.start + boot.size, total - boot.start - boot.size, LINUX_TYPE)
    return DiskLayout(total, boot, root)


def _chs(lba: int) -> bytes:
    """CHS address with 255 heads and 63 sectors per track; clamped past cylinder 1023."""
    heads, sectors = 255, 63
    cylinder = lba // (heads * sectors)
    if cylinder > 1023:
        return bytes((0xFE, 0xFF, 0xFF))
    head = (lba // sectors) % heads
    sector = lba % sectors + 1
    return bytes((head, sector | ((cylinder >> 2) & 0xC0), cylinder & 0xFF))


def mbr(layout: DiskLayout, *, signature: int, boot_code: bytes) -> bytes:
    """The 512-byte master boot record."""
    if len(boot_code) > 440:
        raise AppbuildError(f"MBR boot code is {len(boot_code)} bytes; at most 440 fit")
    sector = bytearray(SECTOR)
    sector[: len(boot_code)] = boot_code
    struct.pack_into("<I", sector, 440, signature)
    for i, part in enumerate((layout.boot, layout.root)):
        entry = (bytes((0x80 if part.bootable else 0,)) + _chs(part.first_lba) + bytes((part.type_code,))
                 + _chs(part.first_lba + part.sectors - 1) + struct.pack("<II", part.first_lba, part.sectors))
        sector[446 + 16 * i: 446 + 16 * (i + 1)] = entry
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def copy_sparse(src: Path, dst_fd: int, offset: int) -> None:
    """Copy *src* into the open file at *offset*, skipping its holes."""
    with open(src, "rb") as f:
        fd = f.fileno()
        end = os.fstat(fd).st_size
        pos = 0
        while pos < end:
            try:
                pos = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                break
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
            while pos < hole:
                pos += _copy_range(fd, dst_fd, hole - pos, pos, offset + pos)


def _copy_range(src: int, dst: int, count: int, at: int, to: int) -> int:
    """Copy up to *count* bytes from *src* at *at* to *dst* at *to* (in the kernel when it
    can: no round trip through this process); how many were copied."""
    try:
        done = os.copy_file_range(src, dst, min(count, 64 * MIB), at, to)
        if done > 0:
            return done
    except OSError:  # not supported between these files
        pass
    chunk = os.pread(src, min(count, 4 * MIB), at)
    if not chunk:
        raise AppbuildError("a partition image ended while it was copied into the disk")
    os.pwrite(dst, chunk, to)
    return len(chunk)


def write_disk(path: Path, layout: DiskLayout, *, boot_image: Path, root_image: Path, master_boot_record: bytes) -> None:
    """Assemble the raw disk file from the MBR and the two partition images."""
    for part, image in ((layout.boot, boot_image), (layout.root, root_image)):
        if image.stat().st_size != part.size:
            raise AppbuildError(f"{image.name} is {image.stat().st_size} bytes, its partition {part.size}")
    with open(path, "wb") as out:
        out.truncate(layout.total)
        fd = out.fileno()
        os.pwrite(fd, master_boot_record, 0)
        copy_sparse(boot_image, fd, layout.boot.start)
        copy_sparse(root_image, fd, layout.root.start)
