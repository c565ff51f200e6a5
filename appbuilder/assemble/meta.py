"""What every stage after assembly knows about the image it handles.

The raw disk is the one input of every format conversion; :class:`ImageMeta` carries
the facts descriptors and reproducible identifiers are made from. Identifiers that
formats would otherwise make up at random (VMDK CID, VHD unique id, OVF ids, disk
signatures) are derived from :attr:`ImageMeta.seed` so that building the same group
version twice gives the same bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImageMeta:
    group: str  # group-cernvm
    version: str  # the group trove's full version, label/upstream-source-build
    arch: str  # appbuild arch name: x86_64 or x86
    disk_size: int  # virtual size of the raw disk in bytes (a whole number of MiB)
    source_date_epoch: int  # every timestamp written into an image or descriptor
    boot_mode: str = "legacy-bios"
    memory_mib: int = 512
    cpus: int = 1
    root_device: str = "/dev/sda1"  # what cloud registration calls the boot disk
    extra: dict = field(default_factory=dict)
    # what the image's kernel can drive (descriptors and cloud registration state it, e.g. the
    # AMI's ENA flag): the modules the image keeps and those asked for that are built in,
    # names with underscores (kernel.ModuleChoice.drivers)
    drivers: tuple[str, ...] = ()
    # options of the image's kernel config that say what it can run on (KERNEL_OPTIONS),
    # as set there: ("XEN=y", "HYPERV=m", ...)
    kernel_config: tuple[str, ...] = ()
    # "" for the classic image (the OS on its disk); "network" for one that boots its OS from an
    # fs repository (assemble/netboot.py): its file names and identifiers differ from the classic's
    variant: str = ""

    def has_driver(self, *names: str) -> bool:
        """The image keeps (or its kernel has built in) every module in *names*."""
        return all(n.replace("-", "_") in self.drivers for n in names)

    def kernel_has(self, option: str) -> bool:
        """The kernel config sets ``CONFIG_<option>`` (to y or m)."""
        return any(entry.split("=", 1)[0] == option for entry in self.kernel_config)

    @property
    def revision(self) -> str:
        """``upstream-source-build`` part of the version (what file names carry)."""
        return self.version.rsplit("/", 1)[-1]

    @property
    def basename(self) -> str:
        """File name stem of this image: ``group-cernvm-1.0-1-3-x86_64`` (``...-x86_64-network``)."""
        return f"{self.group}-{self.revision}-{self.arch}" + (f"-{self.variant}" if self.variant else "")

    @property
    def seed(self) -> bytes:
        variant = f"({self.variant})" if self.variant else ""
        return hashlib.sha256(f"{self.group}={self.version}[{self.arch}]{variant}".encode()).digest()

    def derived_uuid(self, purpose: str) -> uuid.UUID:
        """A stable UUID for one purpose ("rootfs", "vhd", "ovf-disk", ...)."""
        digest = hashlib.sha256(self.seed + purpose.encode()).digest()
        return uuid.UUID(bytes=digest[:16], version=4)

    def derived_u32(self, purpose: str) -> int:
        return int.from_bytes(hashlib.sha256(self.seed + purpose.encode()).digest()[:4], "big")
