"""The initramfs: a static busybox, the modules that mount the root, and our ``/init``.

It holds only what the kernel needs to reach the root file system: the disk and file
system drivers chosen by :mod:`appbuilder.assemble.kernel` (virtio, IDE/SATA/SCSI,
ext4, with their dependencies), loaded in dependency order, then the root found by
UUID, mounted read-only and switched to. The archive is a ``newc`` cpio written here
(sorted, fixed times, owner 0), compressed with zstd when the kernel can unpack it
(``CONFIG_RD_ZSTD``: smaller than gzip -9, twenty times faster to make, and faster to
unpack under emulation) and with gzip otherwise, without a time stamp, so it is
reproducible.
"""

from __future__ import annotations

import gzip
import io
import lzma
from dataclasses import dataclass

import zstandard

from appbuilder.core.errors import AppbuildError

INIT_SCRIPT = r"""#!/bin/sh
# appbuild initramfs: load disk and file system drivers, find the root, switch to it.
bb=/bin/busybox
fail() {
    echo "appbuild initramfs: $*; starting an emergency shell" > /dev/console
    exec $bb sh < /dev/console > /dev/console 2>&1
}
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
for module in $($bb cat /etc/initramfs-modules); do
    $bb insmod "$module" 2>/dev/null
done
root= fstype=ext4 flags=ro
for arg in $($bb cat /proc/cmdline); do
    case "$arg" in
        root=*) root="${arg#root=}" ;;
        rootfstype=*) fstype="${arg#rootfstype=}" ;;
        rw) flags=rw ;;
    esac
done
[ -n "$root" ] || fail "no root= on the kernel command line"
device=
tries=0
while [ -z "$device" ] && [ $tries -lt 200 ]; do
    case "$root" in
        UUID=*|LABEL=*) device=$($bb findfs "$root" 2>/dev/null) ;;
        *) [ -b "$root" ] && device="$root" ;;
    esac
    [ -n "$device" ] || { $bb sleep 0.05; tries=$((tries + 1)); }
done
[ -n "$device" ] || fail "root file system $root not found"
$bb mount -t "$fstype" -o "$flags" "$device" /newroot || fail "cannot mount $device on /newroot"
# /sbin/init may be a link, absolute (systemd-sysv's -> /lib/systemd/systemd): follow it inside /newroot
init=/sbin/init hops=0
while [ -L "/newroot$init" ] && [ $hops -lt 16 ]; do
    target=$($bb readlink "/newroot$init")
    case "$target" in /*) init="$target" ;; *) init="$($bb dirname "$init")/$target" ;; esac
    hops=$((hops + 1))
done
[ -x "/newroot$init" ] || fail "the root file system has no /sbin/init"
$bb mount --move /dev /newroot/dev 2>/dev/null || $bb umount /dev
$bb umount /sys /proc
exec $bb switch_root /newroot /sbin/init
"""


@dataclass(frozen=True)
class CpioEntry:
    path: str  # without leading slash, "." for the root
    mode: int  # full st_mode
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def _header(ino: int, entry: CpioEntry, mtime: int) -> bytes:
    name = entry.path.encode() + b"\0"
    fields = (ino, entry.mode, 0, 0, 1, mtime, len(entry.data), 0, 0, entry.rdev[0], entry.rdev[1], len(name), 0)
    head = b"070701" + b"".join(f"{v:08X}".encode() for v in fields) + name
    return head + b"\0" * (-len(head) % 4)


def cpio_newc(entries: list[CpioEntry], mtime: int) -> bytes:
    """A newc cpio archive of *entries* (in path order), times set to *mtime*."""
    out = io.BytesIO()
    for ino, entry in enumerate(sorted(entries, key=lambda e: e.path), start=1):
        out.write(_header(ino, entry, mtime))
        out.write(entry.data)
        out.write(b"\0" * (-len(entry.data) % 4))
    out.write(_header(0, CpioEntry("TRAILER!!!", 0), 0))
    return out.getvalue()


ZSTD_LEVEL = 9


def compression_for(kernel_config: str, *, smallest: bool = False) -> str:
    """``zstd`` if the kernel's config says it unpacks zstd initramfs images, else ``gzip``;
    with *smallest*, ``xz`` where the kernel unpacks it (an eighth smaller than zstd's
    strongest level, and slower to make and unpack: for images downloaded many times)."""
    config = "\n" + kernel_config
    if smallest and "\nCONFIG_RD_XZ=y" in config:
        return "xz"
    return "zstd" if "\nCONFIG_RD_ZSTD=y" in config else "gzip"


def build_initramfs(*, busybox: bytes, modules: list[tuple[str, bytes]], mtime: int,
                    compression: str = "gzip", init: str = INIT_SCRIPT, extra: list[CpioEntry] = (),
                    level: int = ZSTD_LEVEL) -> bytes:
    """The compressed initramfs; *modules* are (in-image path, content) in load order; *extra*
    entries (files, symlinks, devices) are added, with the directories they need."""
    if not busybox.startswith(b"\x7fELF"):
        raise AppbuildError("the initramfs needs a busybox binary and the one found is not ELF")
    entries = [CpioEntry(d, 0o040755) for d in ("bin", "dev", "etc", "newroot", "proc", "sys", "lib")]
    entries += [
        CpioEntry("dev/console", 0o020600, rdev=(5, 1)),
        CpioEntry("dev/null", 0o020666, rdev=(1, 3)),
        CpioEntry("bin/busybox", 0o100755, busybox),
        CpioEntry("bin/sh", 0o120777, b"busybox"),
        CpioEntry("init", 0o100755, init.encode()),
        CpioEntry("etc/initramfs-modules", 0o100644, "".join(f"{p}\n" for p, _ in modules).encode()),
    ]
    entries += [CpioEntry(path.lstrip("/"), 0o100644, data) for path, data in modules]
    taken = {e.path for e in entries}
    entries += [e for e in extra if e.path not in taken]
    dirs: set[str] = set()
    for entry in entries:
        parts = entry.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    have = {e.path for e in entries}
    entries += [CpioEntry(d, 0o040755) for d in sorted(dirs) if d not in have]
    raw = cpio_newc(entries, mtime)
    if compression == "xz":  # the kernel's XZ decoder checks CRC32 at most
        return lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                             preset=9 | lzma.PRESET_EXTREME)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=level).compress(raw)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    return buf.getvalue()
