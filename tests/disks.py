"""Small test disks made without root: an MBR, a FAT /boot and an ext4 root.

The layout is the one appbuild's assembly produces (smaller): partition 1 is a FAT16
/boot holding a kernel, initramfs and syslinux.cfg (bootable flag set), partition 2 an
ext4 root filesystem holding /boot/vmlinuz-*, /etc/fstab and the trove manifest
/var/lib/appbuild/manifest.json. Built with sfdisk on the image file, mkfs.fat + mcopy
on a partition-sized file, and mke2fs -d writing straight into the image at the
partition's offset.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
from pathlib import Path

from appbuilder.assemble.meta import ImageMeta

MIB = 1 << 20
EPOCH = 1700000000
VERSION = "cernvm@cvm:2/1.0-1-1"
ROOT_UUID = "6f1b3c0e-8d0b-4a8e-9a5e-2f64d1c0a001"
BOOT_VOLID = "A1B2C3D4"
TROVES = [
    "bash=cernvm@cvm:2/5.2.15-1-1[is: x86_64]",
    "kernel=cernvm@cvm:2/6.1.0-1-1[is: x86_64]",
    "cvmfs=cernvm@cvm:2/2.11.2-1-1[is: x86_64]",
]
KERNEL_VERSION = "6.1.0-test"


def _run(*argv, **kw):
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, **kw)


def kernel_bytes() -> bytes:
    """A real bzImage if this machine has a readable one (its header has a version), else filler."""
    for path in sorted(glob.glob("/boot/vmlinuz-*")):
        try:
            return Path(path).read_bytes()
        except OSError:
            continue
    return b"MZ not a real kernel\n" * 4096


def make_disk(path: Path, work: Path, *, size_mib: int = 64, boot_mib: int = 16, data_dir: Path | None = None,
              troves: list[str] | None = TROVES, epoch: int = 1700000000) -> Path:
    """Write the test disk to *path* (scratch files go to *work*); returns *path*."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "E2FSPROGS_FAKE_TIME": str(epoch)}
    kernel = work / f"vmlinuz-{KERNEL_VERSION}"
    kernel.write_bytes(kernel_bytes())
    initrd = work / f"initrd.img-{KERNEL_VERSION}"
    initrd.write_bytes(b"070701" + bytes(4096))
    cfg = work / "syslinux.cfg"
    cfg.write_text(f"DEFAULT linux\nLABEL linux\n  KERNEL /vmlinuz-{KERNEL_VERSION}\n"
                   f"  APPEND root=UUID={ROOT_UUID} console=ttyS0\n  INITRD /initrd.img-{KERNEL_VERSION}\n")

    with open(path, "wb") as f:
        f.truncate(size_mib * MIB)
    boot_start, root_start = 1, 1 + boot_mib
    table = (f"label: dos\nlabel-id: 0x12345678\nunit: sectors\n"
             f"start={boot_start * 2048}, size={boot_mib * 2048}, type=e, bootable\n"
             f"start={root_start * 2048}, type=83\n")
    _run("sfdisk", "--no-reread", "--no-tell-kernel", path, input=table.encode())

    fat = work / "boot.fat"
    fat.unlink(missing_ok=True)
    _run("mkfs.fat", "-C", "-F", "16", "-n", "BOOT", "-i", BOOT_VOLID, fat, boot_mib * 1024, env=env)
    for src in (kernel, initrd, cfg):
        _run("mcopy", "-i", fat, "-m", src, f"::{src.name}", env=env)
    with open(fat, "rb") as src, open(path, "r+b") as dst:
        dst.seek(boot_start * MIB)
        while block := src.read(MIB):
            dst.write(block)

    root = work / "root"
    (root / "boot").mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    (root / "boot" / kernel.name).write_bytes(kernel.read_bytes())
    (root / "etc" / "fstab").write_text(f"UUID={ROOT_UUID} / ext4 defaults 0 1\n"
                                        f"UUID={BOOT_VOLID[:4]}-{BOOT_VOLID[4:]} /boot vfat defaults 0 2\n")
    (root / "etc" / "os-release").write_text('NAME="appbuild test"\nID=appbuild-test\n')
    if troves is not None:
        mdir = root / "var" / "lib" / "appbuild"
        mdir.mkdir(parents=True, exist_ok=True)
        (mdir / "manifest.json").write_text(json.dumps({"troves": troves}, indent=1))
    if data_dir is not None:
        _run("cp", "-a", data_dir, root / "data")
    root_kib = (size_mib - root_start) * 1024
    _run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "root", "-U", ROOT_UUID,
         "-E", f"offset={root_start * MIB},root_owner=0:0,hash_seed={ROOT_UUID}", "-d", root, path, f"{root_kib}k",
         env=env)
    return path


def image_meta(raw: Path, arch: str = "x86_64", group: str = "group-test") -> ImageMeta:
    """What a format conversion knows of the test disk *raw*."""
    return ImageMeta(group=group, version=VERSION, arch=arch, disk_size=raw.stat().st_size, source_date_epoch=EPOCH)
