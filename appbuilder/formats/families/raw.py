"""The raw family: the assembled disk itself, copied."""

from __future__ import annotations

from appbuilder.formats import qemu
from appbuilder.formats.families.base import DiskJob, Format


class Raw(Format, family="raw"):
    """The assembled disk, byte for byte: an MBR-partitioned disk with a FAT /boot
    (SYSLINUX) and an ext4 root, BIOS-bootable. It is copied sparse (``cp
    --sparse=always``, a reflink where the file system can), so its holes stay holes.

    Nothing in it varies between builds, so there is nothing to fix up; the check is
    that the copy has the raw disk's size. Its sha256 is the raw disk's, computed while
    the other formats convert (what a descriptor such as the AMI manifest needs).
    Boot tests attach it as ``format=raw``. ``dd`` it to a disk, or boot it in QEMU.
    """

    DRIVE_FORMATS = ("raw",)
    copies_raw = True

    def make_disk(self, job: DiskJob) -> None:
        job.runner.run(["cp", "--reflink=auto", "--sparse=always", job.raw, job.dest],
                       what=f"copying {job.raw.name}")

    def verify(self, job: DiskJob) -> None:
        size = job.dest.stat().st_size
        if size != job.meta.disk_size:
            raise qemu.ConversionError(f"{job.name}: copy is {size} bytes, expected {job.meta.disk_size}")
