"""The boot partition: FAT with SYSLINUX, the kernel, the initramfs, ``syslinux.cfg``.

Built without root or mounts: ``mkfs.fat`` on a partition-sized file, ``mcopy``
(mtools) for the files, ``syslinux --install`` (which works through mtools too). The
volume id and every time stamp are fixed (``--invariant``, ``-i``, SOURCE_DATE_EPOCH),
so the partition is reproducible. SYSLINUX loads the kernel from FAT on both x86
and x86_64 BIOS machines; the MBR code that chains to it is syslinux's ``mbr.bin``
(see :mod:`appbuilder.assemble.disk`). The running system mounts this partition on
``/boot``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from appbuilder.core.errors import AppbuildError

SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
FAT_TYPE = 16
MIN_BOOT_BYTES = 32 << 20


def syslinux_config(*, kernel: str, initrd: str, cmdline: str, label: str) -> str:
    """A non-interactive config: boot at once, also talk on the first serial port."""
    return (
        "SERIAL 0 115200\n"
        "DEFAULT appliance\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        f"SAY Booting {label}\n"
        "LABEL appliance\n"
        f"  KERNEL /{kernel}\n"
        f"  INITRD /{initrd}\n"
        f"  APPEND {cmdline}\n"
    )


def _run(argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise AppbuildError(f"{argv[0]} failed: {(proc.stderr or proc.stdout).strip()}")


def make_boot_partition(files: dict[str, Path], image: Path, size: int, *, volume_id: int, hidden_sectors: int,
                        source_date_epoch: int, label: str = "BOOT") -> None:
    """A FAT file system of *size* bytes in *image* holding *files* (name → host path), SYSLINUX installed."""
    for tool in ("mkfs.fat", "mcopy", "syslinux"):
        if not shutil.which(tool):
            raise AppbuildError(f"{tool} is needed to make the boot partition (apt-get install dosfstools mtools syslinux)")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(source_date_epoch), "MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}
    if image.exists():
        image.unlink()
    _run(["mkfs.fat", "-C", "-F", str(FAT_TYPE), "--invariant", "-i", f"{volume_id:08x}", "-n", label,
          "-h", str(hidden_sectors), str(image), str(size // 1024)], env)
    with tempfile.TemporaryDirectory(prefix="appbuild-boot-") as tmp:
        sources = []
        for name, host in sorted(files.items()):
            copy = Path(tmp) / name
            shutil.copyfile(host, copy)
            os.utime(copy, (source_date_epoch, source_date_epoch))
            sources.append(str(copy))
        _run(["mcopy", "-m", "-i", str(image), *sources, "::/"], env)
    _run(["syslinux", "--install", str(image)], env)


def fat_volume_uuid(volume_id: int) -> str:
    """How Linux names a FAT volume id in /dev/disk/by-uuid and fstab (``ABCD-1234``)."""
    text = f"{volume_id:08X}"
    return f"{text[:4]}-{text[4:]}"
