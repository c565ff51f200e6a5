"""appbuild inspect: libguestfs reads every format (one appliance launch for them all)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appbuilder.verify.inspect import (
    MANIFEST,
    inspect_images,
    mbr_partitions,
    report_lines,
    version_offset,
)
from tests.disks import BOOT_VOLID, ROOT_UUID, TROVES, make_disk

pytest.importorskip("guestfs", reason="needs Debian's python3-guestfs")

MIB = 1 << 20
FORMATS = {  # format -> (qemu format, detail)
    "raw": ("raw", "raw"),
    "qcow2": ("qcow2", "qcow2 compat 1.1, zlib compression"),
    "vmdk": ("vmdk", "vmdk monolithicSparse"),
    "vhd": ("vpc", "vhd fixed"),
    "vhd-dynamic": ("vpc", "vhd dynamic"),
    "ova": ("vmdk", "ova: vmdk streamOptimized"),
}


@pytest.fixture(scope="module")
def reports(converted):
    images = {fmt: converted[fmt][0] for fmt in FORMATS}
    return dict(zip(images, inspect_images(list(images.values()))))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_inspect_lists_everything(reports, meta, fmt):
    r = reports[fmt]
    qemu_fmt, detail = FORMATS[fmt]
    assert r.format == qemu_fmt and r.detail.startswith(detail)
    assert r.virtual_size == meta.disk_size
    assert r.partition_table == "msdos"
    assert [(p.number, p.start, p.size, p.type, p.bootable) for p in r.partitions] == [
        (1, 1 * MIB, 16 * MIB, "0x0e", True), (2, 17 * MIB, 47 * MIB, "0x83", False)]
    fs = {f.type: f for f in r.filesystems}
    assert set(fs) == {"vfat", "ext4"}
    assert (fs["ext4"].label, fs["ext4"].uuid, fs["ext4"].mountpoint) == ("root", ROOT_UUID, "/")
    assert (fs["vfat"].label, fs["vfat"].uuid, fs["vfat"].mountpoint) == ("BOOT", f"{BOOT_VOLID[:4]}-{BOOT_VOLID[4:]}", "/boot")
    assert 30 * MIB < fs["ext4"].size <= 47 * MIB and fs["ext4"].used > 0
    # the kernel on the /boot partition and the one in the root's /boot, both seen as /boot/...
    assert sorted((k.device, k.path) for k in r.kernels) == [
        (fs["vfat"].device, "/boot/vmlinuz-6.1.0-test"), (fs["ext4"].device, "/boot/vmlinuz-6.1.0-test")]
    assert any(b.kind == "initramfs" for b in r.boot_files)
    assert r.troves == TROVES and r.root == fs["ext4"].device
    if fmt == "ova":
        assert [m.rsplit(".", 1)[1] for m in r.ova_members] == ["ovf", "mf", "vmdk"]
    text = "\n".join(report_lines(r))
    assert "vmlinuz-6.1.0-test" in text and TROVES[0] in text and "bootable" in text


def test_kernel_version_from_a_real_bzimage(reports):
    versions = {k.version for k in reports["raw"].kernels}
    if not any(Path("/boot").glob("vmlinuz-*")):
        pytest.skip("no kernel on this machine: the test disk holds filler bytes")
    assert len(versions) == 1 and next(iter(versions))[0].isdigit(), versions


def test_cli_json_and_an_image_without_manifest(converted, tmp_path):
    """`appbuild inspect --json` through the real command line; a disk without a manifest says so."""
    bare = make_disk(tmp_path / "bare.raw", tmp_path / "scratch", size_mib=40, troves=None)
    appbuild = str(Path(sys.executable).with_name("appbuild"))
    proc = subprocess.run([appbuild, "inspect", "--json", str(bare), str(converted["vhd"][0])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    bare_report, vhd_report = json.loads(proc.stdout)
    assert bare_report["troves"] is None and bare_report["format"] == "raw"
    assert vhd_report["format"] == "vpc" and vhd_report["troves"] == TROVES
    from appbuilder.verify.inspect import ImageReport
    report = ImageReport(**{**bare_report, "partitions": [], "filesystems": [], "boot_files": []})
    assert f"no {MANIFEST}" in "\n".join(report_lines(report))


def test_cli_errors():
    appbuild = str(Path(sys.executable).with_name("appbuild"))
    proc = subprocess.run([appbuild, "inspect", "/nonexistent.qcow2"], capture_output=True, text=True)
    assert proc.returncode == 1 and "no image at /nonexistent.qcow2" in proc.stderr


def test_inventory_of_something_that_is_not_an_appbuild_image(tmp_path):
    text = tmp_path / "SHA256SUMS"
    text.write_text("not a disk\n")
    appbuild = str(Path(sys.executable).with_name("appbuild"))
    proc = subprocess.run([appbuild, "inspect", "--inventory", str(text)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no appbuild root file system in it (raw, 0 partitions): not an appbuild image" in proc.stderr


def test_mbr_parser():
    sector = bytearray(512)
    sector[510:512] = b"\x55\xaa"
    sector[446:462] = bytes([0x80, 0, 0, 0, 0x0C, 0, 0, 0]) + (2048).to_bytes(4, "little") + (4096).to_bytes(4, "little")
    assert mbr_partitions(bytes(sector)) == [(1, 2048 * 512, 4096 * 512, 0x0C, True)]
    sector[446 + 4] = 0xEE  # a protective MBR: GPT, left to parted
    assert mbr_partitions(bytes(sector)) is None
    assert mbr_partitions(bytes(512)) is None
    head = bytearray(1024)
    head[0x202:0x206] = b"HdrS"
    head[0x20E:0x210] = (0x100).to_bytes(2, "little")
    assert version_offset(bytes(head)) == 0x300
