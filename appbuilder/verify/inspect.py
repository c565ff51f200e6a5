"""``appbuild inspect IMAGE...``: what an image holds, read through libguestfs.

For each image: its format (probed with ``qemu-img info``; a fixed VHD, which qemu-img
probes as raw, is recognised by its footer and opened as ``vpc``; an ``.ova`` is a tar
whose ``.vmdk`` member is extracted to a temporary directory and inspected), the
virtual size, the partition table and partitions, the filesystems (type, label, UUID,
size), the kernels and initramfs images under ``/boot`` (a separate /boot partition
counts: its top level is what the system sees under /boot), the troves listed in
``/var/lib/appbuild/manifest.json`` of the root filesystem, and the image's inventory
(``/usr/share/appbuild/inventory.txt``: one line per package with its version, upstream
source and license; what ``appliance query`` prints in the guest, ``--inventory`` prints
it alone).

All images of one call share one libguestfs appliance (one launch costs about 12 s
under TCG): each is added read-only as one more drive. libguestfs runs with the
``direct`` backend and TCG unless ``LIBGUESTFS_BACKEND``/``LIBGUESTFS_BACKEND_SETTINGS``
say otherwise (nested KVM is not to be relied on).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appbuilder.assemble.sbom import INVENTORY_PATH
from appbuilder.core.errors import AppbuildError
from appbuilder.core.ui import human_size
from appbuilder.formats import ova as ova_mod
from appbuilder.formats import qemu, vhd

MANIFEST = "/var/lib/appbuild/manifest.json"
KERNEL_RE = re.compile(r"^(vmlinuz|vmlinux|bzImage|kernel)([-.].*)?$")
INITRD_RE = re.compile(r"^(initrd|initramfs)([-.].*)?$")
MOUNTABLE = ("ext2", "ext3", "ext4", "vfat", "msdos", "xfs", "btrfs", "iso9660", "squashfs", "erofs")


class InspectError(AppbuildError):
    """An image cannot be opened or read."""


@dataclass
class Partition:
    number: int
    start: int  # bytes
    size: int  # bytes
    type: str  # MBR id (0x83) or GPT type GUID
    bootable: bool
    device: str


@dataclass
class Filesystem:
    device: str
    type: str
    label: str
    uuid: str
    size: int  # bytes of the filesystem (statvfs), or of the device if it cannot be mounted
    used: int | None = None
    mountpoint: str | None = None  # from the root filesystem's /etc/fstab


@dataclass
class BootFile:
    kind: str  # kernel or initramfs
    path: str  # as the running system sees it (/boot/...)
    device: str
    size: int
    version: str | None = None  # kernel version, from its header


@dataclass
class ImageReport:
    path: str
    format: str  # qemu format name: raw, qcow2, vmdk, vpc
    detail: str  # subformat and the like: "vhd fixed", "vmdk streamOptimized in an OVA"
    virtual_size: int
    file_size: int
    partition_table: str | None = None
    partitions: list[Partition] = field(default_factory=list)
    filesystems: list[Filesystem] = field(default_factory=list)
    boot_files: list[BootFile] = field(default_factory=list)
    root: str | None = None  # device of the root filesystem (holding the trove manifest)
    troves: list[str] | None = None  # None: no manifest found
    manifest_error: str | None = None
    inventory: list[str] | None = None  # the lines of INVENTORY_PATH; None: the image has none
    ova_members: list[str] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def kernels(self) -> list[BootFile]:
        return [b for b in self.boot_files if b.kind == "kernel"]


# ---------------------------------------------------------------- probing


@dataclass
class _Drive:
    path: Path  # what the user named
    disk: Path  # what libguestfs opens (the extracted vmdk for an OVA)
    report: ImageReport


def probe(path: Path, extract_dir: Path | None = None) -> _Drive:
    """Find the format of *path*; an OVA's disk is extracted into *extract_dir*."""
    path = Path(path)
    if not path.is_file():
        raise InspectError(f"no image at {path}")
    size = path.stat().st_size
    data = qemu.info(path)
    fmt = data.get("format")
    if fmt == "raw" and vhd.is_vhd(path):
        footer = vhd.read_footer(path)
        data = qemu.info(path, "vpc")
        return _Drive(path, path, ImageReport(str(path), "vpc", f"vhd {footer.kind}", data["virtual-size"], size))
    if fmt == "raw" and _is_tar(path):
        if extract_dir is None:
            raise InspectError(f"{path} is an OVA; it needs a directory to extract its disk to")
        members = [m.name for m in ova_mod.members(path)]
        disk = ova_mod.extract_disk(path, extract_dir)
        inner = qemu.info(disk)
        sub = inner.get("format-specific", {}).get("data", {}).get("create-type", "")
        report = ImageReport(str(path), inner["format"], f"ova: {inner['format']} {sub} {disk.name}".strip(),
                             inner["virtual-size"], size, ova_members=members)
        return _Drive(path, disk, report)
    if fmt not in ("raw", "qcow2", "vmdk", "vpc", "vhdx", "vdi"):
        raise InspectError(f"{path}: unsupported image format {fmt!r}")
    detail = fmt
    specific = data.get("format-specific", {}).get("data", {})
    if fmt == "vmdk":
        detail = f"vmdk {specific.get('create-type', '')}".strip()
    elif fmt == "qcow2":
        detail = f"qcow2 compat {specific.get('compat', '?')}, {specific.get('compression-type', 'zlib')} compression"
    elif fmt == "vpc":
        detail = f"vhd {vhd.read_footer(path).kind}" if vhd.is_vhd(path) else "vhd"
    return _Drive(path, path, ImageReport(str(path), fmt, detail, data["virtual-size"], size))


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


# ---------------------------------------------------------------- inspecting


def inspect_images(paths: list[Path], *, tmp_dir: Path | None = None) -> list[ImageReport]:
    """Inspect every image in *paths* in one libguestfs appliance; one report each."""
    import guestfs  # Debian's python3-guestfs; imported here so the rest works without it

    extract_dir = ova_mod.temp_extract_dir(tmp_dir)
    try:
        drives = [probe(Path(p), extract_dir) for p in paths]
        g = guestfs.GuestFS(python_return_dict=True)
        try:
            _configure(g)
            for d in drives:
                g.add_drive_opts(str(d.disk), readonly=True, format=d.report.format)
            try:
                g.launch()
            except RuntimeError as exc:
                raise InspectError(f"libguestfs could not start its appliance: {exc}") from None
            devices = g.list_devices()
            partitions = g.list_partitions()
            for d, device in zip(drives, devices):
                _inspect_device(g, device, d.report, partitions)
            g.shutdown()
        finally:
            g.close()
        return [d.report for d in drives]
    finally:
        shutil.rmtree(extract_dir, ignore_errors=True)


def _configure(g) -> None:
    if "LIBGUESTFS_BACKEND" not in os.environ:
        g.set_backend("direct")
    if "LIBGUESTFS_BACKEND_SETTINGS" not in os.environ:
        g.set_backend_settings(["force_tcg"])
    g.set_program("appbuild")


def _inspect_device(g, device: str, report: ImageReport, partitions: list[str]) -> None:
    """Fill *report* from the drive *device* (``/dev/sdX``); *partitions* are all of the appliance's."""
    mine = [p for p in partitions if re.fullmatch(re.escape(device) + r"p?\d+", p)]
    _partitions(g, device, report)
    fstab = ""
    for dev in mine or [device]:
        fstype = _try(g.vfs_type, dev) or ""
        if fstype in ("", "swap", "unknown"):
            continue
        fs = Filesystem(dev, fstype, _try(g.vfs_label, dev) or "", _try(g.vfs_uuid, dev) or "",
                        g.blockdev_getsize64(dev))
        report.filesystems.append(fs)
        if fstype not in MOUNTABLE:
            continue
        try:
            g.mount_ro(dev, "/")
        except RuntimeError:
            continue  # e.g. a filesystem the appliance's kernel cannot mount
        try:
            st = g.statvfs("/")
            fs.size = st["blocks"] * st["frsize"]
            fs.used = (st["blocks"] - st["bfree"]) * st["frsize"]
            if g.is_file(MANIFEST):
                report.root = dev
                fs.mountpoint = "/"
                _read_manifest(g, report)
                if g.is_file(INVENTORY_PATH):
                    report.inventory = g.cat(INVENTORY_PATH).splitlines()
                fstab = g.cat("/etc/fstab") if g.is_file("/etc/fstab") else ""
                _boot_files(g, dev, "/boot", report)
            else:  # perhaps a separate /boot: its top level is what the system sees in /boot
                _boot_files(g, dev, "/", report, seen_as="/boot")
                _boot_files(g, dev, "/boot", report)
        finally:
            g.umount_all()
    _apply_fstab(report, fstab)  # once every filesystem's UUID and label are known


def _partitions(g, device: str, report: ImageReport) -> None:
    """The partition table: parsed from the MBR directly (fast), else asked of parted (GPT)."""
    mbr = g.pread_device(device, 512, 0)
    entries = mbr_partitions(mbr)
    if entries is not None:
        report.partition_table = "msdos"
        report.partitions = [Partition(n, start, size, f"0x{ptype:02x}", boot, f"{device}{n}")
                             for n, start, size, ptype, boot in entries]
        return
    report.partition_table = _try(g.part_get_parttype, device)
    if not report.partition_table:
        return  # a bare filesystem, or nothing
    for p in g.part_list(device):
        n = p["part_num"]
        if report.partition_table == "msdos":
            ptype = f"0x{int(g.part_get_mbr_id(device, n)):02x}"
        else:
            ptype = g.part_get_gpt_type(device, n)
        report.partitions.append(Partition(n, p["part_start"], p["part_size"], ptype,
                                           bool(g.part_get_bootable(device, n)), f"{device}{n}"))


def mbr_partitions(sector: bytes) -> list[tuple[int, int, int, int, bool]] | None:
    """(number, start bytes, size bytes, type, bootable) of the primary MBR partitions.

    None when this is not a plain MBR: no 0x55AA signature, a protective MBR (GPT), or
    an extended partition (whose logical partitions only parted lists).
    """
    if len(sector) < 512 or sector[510:512] != b"\x55\xaa":
        return None
    out = []
    for i in range(4):
        e = sector[446 + 16 * i: 446 + 16 * (i + 1)]
        status, ptype = e[0], e[4]
        start, count = struct.unpack_from("<II", e, 8)
        if ptype == 0 or count == 0:
            continue
        if ptype in (0xEE, 0x05, 0x0F, 0x85) or status not in (0x00, 0x80):
            return None
        out.append((i + 1, start * 512, count * 512, ptype, status == 0x80))
    return out or None



def _try(fn, *args):
    try:
        return fn(*args)
    except RuntimeError:
        return None


def _read_manifest(g, report: ImageReport) -> None:
    try:
        data = json.loads(g.cat(MANIFEST))
        troves = data["troves"]
        if not isinstance(troves, list) or not all(isinstance(t, str) for t in troves):
            raise ValueError('"troves" must be a list of name=version[flavor] strings')
        report.troves = troves
    except (ValueError, KeyError, TypeError) as exc:
        report.manifest_error = f"{MANIFEST} is not a valid trove manifest: {exc}"


def _boot_files(g, device: str, directory: str, report: ImageReport, seen_as: str | None = None) -> None:
    """Kernels and initramfs images in *directory* (shown as under *seen_as*)."""
    if not g.is_dir(directory):
        return
    shown = seen_as or directory
    for name in sorted(g.ls(directory)):
        path = f"{directory.rstrip('/')}/{name}"
        kind = "kernel" if KERNEL_RE.match(name) else "initramfs" if INITRD_RE.match(name) else None
        if kind is None or not g.is_file(path):
            continue
        version = _kernel_version(g, path) if kind == "kernel" else None
        shown_path = f"{shown.rstrip('/')}/{name}"
        if any(b.device == device and b.path == shown_path for b in report.boot_files):
            continue
        report.boot_files.append(BootFile(kind, shown_path, device, g.filesize(path), version))


def version_offset(head: bytes) -> int | None:
    """Where an x86 bzImage keeps its version string, from its setup header (first 1 KiB).

    The header has the magic ``HdrS`` at 0x202; its ``kernel_version`` field (0x20e)
    points at a NUL-terminated string, relative to 0x200.
    """
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        return None
    pointer = struct.unpack_from("<H", head, 0x20E)[0]
    return pointer + 0x200 if pointer else None


def _kernel_version(g, path: str) -> str | None:
    offset = version_offset(g.pread(path, 1024, 0))
    if offset is not None:
        text = g.pread(path, 256, offset).split(b"\0", 1)[0].decode("ascii", "replace").split()
        if text:
            return text[0]
    m = re.search(r"version (\S+)", _try(g.file, path) or "")  # not a bzImage: ask file(1)
    return m.group(1) if m else None


def _apply_fstab(report: ImageReport, fstab: str) -> None:
    """Mount points of the other filesystems, from the root filesystem's /etc/fstab."""
    for line in fstab.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0].startswith("#"):
            continue
        spec, mountpoint = fields[0], fields[1]
        for fs in report.filesystems:
            if (spec == f"UUID={fs.uuid}" and fs.uuid) or (spec == f"LABEL={fs.label}" and fs.label):
                fs.mountpoint = mountpoint


# ---------------------------------------------------------------- output


def _size(n: int | None) -> str:
    return "-" if n is None else human_size(n)


def report_lines(report: ImageReport) -> list[str]:
    """A report as the plain text ``appbuild inspect`` prints."""
    lines = [
        f"image:        {report.path}",
        f"format:       {report.detail}",
        f"virtual size: {_size(report.virtual_size)} ({report.virtual_size} bytes); file {_size(report.file_size)}",
    ]
    if report.ova_members is not None:
        lines.append(f"ova members:  {', '.join(report.ova_members)}")
    lines.append(f"partitions:   {report.partition_table or 'none'}")
    for p in report.partitions:
        boot = "  bootable" if p.bootable else ""
        lines.append(f"  {p.number}  start {p.start:>12}  size {_size(p.size):>10}  type {p.type}{boot}")
    lines.append("filesystems:")
    if not report.filesystems:
        lines.append("  none found")
    for fs in report.filesystems:
        where = f"  on {fs.mountpoint}" if fs.mountpoint else ""
        used = f", {_size(fs.used)} used" if fs.used is not None else ""
        lines.append(f"  {fs.device}  {fs.type}  label {fs.label or '-'}  uuid {fs.uuid or '-'}  "
                     f"{_size(fs.size)}{used}{where}")
    lines.append("kernels:")
    if not report.boot_files:
        lines.append("  none found under /boot")
    for b in report.boot_files:
        version = f"  version {b.version}" if b.version else ""
        lines.append(f"  {b.kind:9}  {b.path}  ({b.device}, {_size(b.size)}){version}")
    if report.troves is not None:
        lines.append(f"troves:       {len(report.troves)} installed (from {MANIFEST} on {report.root})")
        lines += [f"  {t}" for t in report.troves]
    elif report.manifest_error:
        lines.append(f"troves:       {report.manifest_error}")
    else:
        lines.append(f"troves:       unknown: no {MANIFEST} on any filesystem (not an appbuild image?)")
    if report.inventory is not None:
        lines.append(f"inventory:    from {INVENTORY_PATH} on {report.root}")
        lines += [f"  {line}" for line in report.inventory]
    elif report.root:
        lines.append(f"inventory:    none ({INVENTORY_PATH} is not in the image)")
    return lines
