"""The raw disk (appbuilder.assemble.disk): partition sizes, the MBR written in Python, the
partition images copied in sparse. Read back with sfdisk, file, mtools, e2fsck, blkid."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from appbuilder.assemble import bootloader, disk, ext4
from appbuilder.assemble.meta import ImageMeta
from appbuilder.assemble.rootfs import ImageEntry, StagedRoot
from appbuilder.core.errors import AppbuildError
from tests.assemble.helpers import EPOCH, MIB, UUID, run

SYSLINUX_MBR = bootloader.SYSLINUX_MBR


def meta_for(layout: disk.DiskLayout, version: str = "cernvm@cvm:2/1.0-1-1", arch: str = "x86_64") -> ImageMeta:
    return ImageMeta("group-test", version, arch, layout.total, EPOCH)


def patterned(path: Path, size: int, marks: dict[int, bytes]) -> Path:
    """A sparse file of *size* bytes holding *marks* (offset -> bytes) and holes elsewhere."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in marks.items():
            f.seek(offset)
            f.write(data)
    return path


def write_small_disk(work: Path, version: str = "cernvm@cvm:2/1.0-1-1", arch: str = "x86_64"):
    """An 8 MiB disk: a 2 MiB boot partition, a 5 MiB root; partition images with marks."""
    work.mkdir(parents=True, exist_ok=True)
    layout = disk.plan_layout(2 * MIB, 3 * MIB, 8 * MIB)
    boot = patterned(work / "boot.img", layout.boot.size, {0: b"BOOT-START", layout.boot.size - 8: b"BOOT-END"})
    root = patterned(work / "root.img", layout.root.size, {0: b"ROOT-START", 4 * MIB: b"ROOT@4MiB" * 100})
    meta = meta_for(layout, version, arch)
    record = disk.mbr(layout, signature=meta.derived_u32("mbr"), boot_code=SYSLINUX_MBR.read_bytes()[:440])
    raw = work / "disk.raw"
    disk.write_disk(raw, layout, boot_image=boot, root_image=root, master_boot_record=record)
    return raw, layout, meta


def sfdisk_json(raw: Path) -> dict:
    return json.loads(run("sfdisk", "--json", raw).stdout)["partitiontable"]


# ------------------------------------------------------------------ sizes


def test_sizes_are_whole_mib_from_1_mib_with_root_headroom():
    layout = disk.plan_layout(1, 5 * MIB + 1)
    assert layout.boot == disk.Partition(MIB, MIB, 0x0E, bootable=True)
    assert layout.root.start == 2 * MIB and layout.root.type_code == 0x83 and not layout.root.bootable
    assert layout.root.size == 6 * MIB + disk.ROOT_HEADROOM  # 5 MiB + 1 byte rounds up to 6 MiB
    assert layout.root.start + layout.root.size == layout.total
    for part in (layout.boot, layout.root):
        assert part.start % MIB == 0 and part.size % MIB == 0
        assert part.first_lba == part.start // 512 and part.sectors == part.size // 512


def test_a_requested_size_gives_the_root_what_is_left():
    layout = disk.plan_layout(3 * MIB + 1, 10 * MIB, 100 * MIB - 5)
    assert (layout.total, layout.boot.size, layout.root.start, layout.root.size) == (
        100 * MIB, 4 * MIB, 5 * MIB, 95 * MIB)


def test_a_requested_size_too_small_is_refused_with_what_is_needed():
    with pytest.raises(AppbuildError) as err:
        disk.plan_layout(32 * MIB, 100 * MIB, 64 * MIB)
    assert "an image of 64 MiB is too small" in str(err.value)
    assert "at least 133 MiB (boot partition 32 MiB, root file system 100 MiB)" in str(err.value)
    disk.plan_layout(32 * MIB, 100 * MIB, 133 * MIB)  # exactly enough is enough


# ------------------------------------------------------------------ the MBR


def test_sfdisk_reads_the_partition_table(tmp_path):
    raw, layout, meta = write_small_disk(tmp_path)
    table = sfdisk_json(raw)
    assert table["label"] == "dos" and table["unit"] == "sectors"
    assert table["id"] == f"0x{meta.derived_u32('mbr'):08x}"
    boot, root = table["partitions"]
    assert (boot["start"], boot["size"], boot["type"], boot.get("bootable")) == (2048, 4096, "e", True)
    assert (root["start"], root["size"], root["type"], root.get("bootable", False)) == (6144, 10240, "83", False)
    assert root["start"] + root["size"] == layout.total // 512
    assert len(table["partitions"]) == 2
    run("sfdisk", "--verify", raw)  # no overlaps, nothing past the end


def test_the_record_holds_syslinux_code_the_signature_and_0x55aa(tmp_path):
    raw, _, meta = write_small_disk(tmp_path)
    record = raw.read_bytes()[:512]
    assert len(SYSLINUX_MBR.read_bytes()) <= 440
    assert record[:440].rstrip(b"\0") == SYSLINUX_MBR.read_bytes().rstrip(b"\0")
    assert struct.unpack_from("<I", record, 440)[0] == meta.derived_u32("mbr")
    assert record[444:446] == b"\0\0"
    assert record[446 + 32: 510] == bytes(32)  # entries 3 and 4 are empty
    assert record[510:] == b"\x55\xaa"
    assert record[446] == 0x80 and record[446 + 16] == 0x00  # only the boot partition is active


def test_file_decodes_the_chs_addresses(tmp_path):
    raw, _, _ = write_small_disk(tmp_path)
    out = run("file", raw).stdout
    # with 255 heads and 63 sectors a track, LBA 2048 is C/H/S 0/32/33, 6143 is 0/97/33, 16383 is 1/5/4
    assert ("partition 1 : ID=0xe, active, start-CHS (0x0,32,33), end-CHS (0x0,97,33), "
            "startsector 2048, 4096 sectors") in out, out
    assert "partition 2 : ID=0x83, start-CHS (0x0,97,34), end-CHS (0x1,5,4), startsector 6144, 10240 sectors" in out, out


def test_chs_past_cylinder_1023_is_clamped(tmp_path):
    """A 20 GiB disk: the root partition ends far past what CHS can address."""
    layout = disk.plan_layout(32 * MIB, 1, 20 << 30)
    record = disk.mbr(layout, signature=0x12345678, boot_code=b"")
    entry = record[462:478]
    assert entry[1:4] == bytes((52, 49, 4))  # LBA 67584 (33 MiB): head 52, sector 49, cylinder 4
    assert entry[5:8] == b"\xfe\xff\xff"
    raw = tmp_path / "big.raw"
    with open(raw, "wb") as f:
        f.truncate(layout.total)
        f.write(record)
    assert "ID=0x83, start-CHS (0x4,52,49), end-CHS (0x3ff,254,63)" in run("file", raw).stdout
    parts = sfdisk_json(raw)["partitions"]
    assert parts[1]["start"] + parts[1]["size"] == (20 << 30) // 512


def test_partition_images_land_at_their_offsets_and_holes_stay(tmp_path):
    raw, layout, _ = write_small_disk(tmp_path)
    data = raw.read_bytes()
    assert len(data) == layout.total == 8 * MIB
    assert data[layout.boot.start: layout.boot.start + layout.boot.size] == (tmp_path / "boot.img").read_bytes()
    assert data[layout.root.start: layout.root.start + layout.root.size] == (tmp_path / "root.img").read_bytes()
    assert data[512: layout.boot.start] == bytes(layout.boot.start - 512)
    assert raw.stat().st_blocks * 512 < 1 * MIB  # 8 MiB of disk, a few blocks written


def test_same_metadata_same_bytes_other_version_other_signature(tmp_path):
    def digest(raw: Path) -> str:
        return hashlib.sha256(raw.read_bytes()).hexdigest()

    first, _, meta = write_small_disk(tmp_path / "a")
    again, _, _ = write_small_disk(tmp_path / "b")
    assert digest(first) == digest(again)
    later, _, later_meta = write_small_disk(tmp_path / "c", version="cernvm@cvm:2/1.0-1-2")
    other_arch, _, x86_meta = write_small_disk(tmp_path / "d", arch="x86")
    signatures = {meta.derived_u32("mbr"), later_meta.derived_u32("mbr"), x86_meta.derived_u32("mbr")}
    assert len(signatures) == 3
    for other in (later, other_arch):  # only the signature differs
        a, b = first.read_bytes(), other.read_bytes()
        assert (a[:440], a[444:]) == (b[:440], b[444:]) and a[440:444] != b[440:444]
    assert sfdisk_json(later)["id"] == f"0x{later_meta.derived_u32('mbr'):08x}"


def test_a_partition_image_of_the_wrong_size_is_refused(tmp_path):
    layout = disk.plan_layout(2 * MIB, 3 * MIB, 8 * MIB)
    boot = patterned(tmp_path / "boot.img", layout.boot.size + 512, {})
    root = patterned(tmp_path / "root.img", layout.root.size, {})
    with pytest.raises(AppbuildError, match=r"boot.img is 2097664 bytes, its partition 2097152"):
        disk.write_disk(tmp_path / "d.raw", layout, boot_image=boot, root_image=root,
                        master_boot_record=disk.mbr(layout, signature=1, boot_code=b""))


def test_boot_code_longer_than_440_bytes_is_refused():
    layout = disk.plan_layout(MIB, MIB)
    with pytest.raises(AppbuildError, match="441 bytes; at most 440 fit"):
        disk.mbr(layout, signature=0, boot_code=bytes(441))


def test_a_disk_of_real_partitions_reads_back(tmp_path):
    """The real boot and root file systems in a disk: mtools and blkid find them at the
    offsets sfdisk reports; the FAT's hidden sectors are its partition's first sector."""
    files = {"syslinux.cfg": tmp_path / "syslinux.cfg"}
    files["syslinux.cfg"].write_text("DEFAULT appliance\n")
    staged = StagedRoot(tmp_path / "stage")
    staged.directory.mkdir()
    (staged.directory / "hello").write_text("hello\n")
    staged.add(ImageEntry("/", "dir", 0o755, mtime=EPOCH))
    staged.add(ImageEntry("/hello", "file", 0o644, mtime=EPOCH))
    layout = disk.plan_layout(bootloader.MIN_BOOT_BYTES, 4 * MIB, 40 * MIB)
    meta = meta_for(layout)
    boot_img, root_img = tmp_path / "boot.fat", tmp_path / "root.ext4"
    bootloader.make_boot_partition(files, boot_img, layout.boot.size, volume_id=meta.derived_u32("bootfs"),
                                   hidden_sectors=layout.boot.first_lba, source_date_epoch=EPOCH)
    ext4.make_ext4(staged, root_img, layout.root.size, uuid=UUID, label="root", source_date_epoch=EPOCH)
    raw = tmp_path / "disk.raw"
    disk.write_disk(raw, layout, boot_image=boot_img, root_image=root_img,
                    master_boot_record=disk.mbr(layout, signature=meta.derived_u32("mbr"),
                                                boot_code=SYSLINUX_MBR.read_bytes()[:440]))
    boot, root = sfdisk_json(raw)["partitions"]
    boot_at, root_at = boot["start"] * 512, root["start"] * 512
    assert "syslinux cfg" in run("mdir", "-i", f"{raw}@@{boot_at}", "::/").stdout
    assert "hidden sectors: 2048" in run("minfo", "-i", f"{raw}@@{boot_at}", "::").stdout
    fat = run("blkid", "-p", "-o", "export", "-O", boot_at, raw).stdout.splitlines()
    assert f"UUID={bootloader.fat_volume_uuid(meta.derived_u32('bootfs'))}" in fat and "TYPE=vfat" in fat
    root_fs = run("blkid", "-p", "-o", "export", "-O", root_at, raw).stdout.splitlines()
    assert f"UUID={UUID}" in root_fs and "TYPE=ext4" in root_fs and "LABEL=root" in root_fs
    with open(raw, "rb") as f:
        f.seek(root_at)
        (tmp_path / "root.again").write_bytes(f.read(root["size"] * 512))
    run("e2fsck", "-fn", tmp_path / "root.again")
    assert run("debugfs", "-R", "cat /hello", tmp_path / "root.again").stdout == "hello\n"
