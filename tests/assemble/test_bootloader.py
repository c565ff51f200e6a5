"""The boot partition (appbuilder.assemble.bootloader): FAT16 with SYSLINUX, the kernel, the
initramfs and syslinux.cfg, made without root; read back with mtools, fsck.fat, blkid, file."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from appbuilder.assemble import bootloader
from tests.assemble.helpers import EPOCH, MIB, UUID, run

KVER = "6.1.0-test-amd64"
VOLUME_ID = 0xA1B2C3D4
CMDLINE = f"root=UUID={UUID} ro console=tty0 console=ttyS0,115200 quiet panic=10"


def boot_files(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    kernel = directory / f"vmlinuz-{KVER}"
    kernel.write_bytes(b"MZ" + bytes(range(256)) * 400)
    initrd = directory / f"initrd.img-{KVER}"
    initrd.write_bytes(b"\x28\xb5\x2f\xfd" + b"initramfs" * 700)
    cfg = directory / "syslinux.cfg"
    cfg.write_text(bootloader.syslinux_config(kernel=kernel.name, initrd=initrd.name, cmdline=CMDLINE,
                                              label="group-test 1.0-1-1"))
    return {p.name: p for p in (kernel, initrd, cfg)}


def make(tmp: Path, volume_id: int = VOLUME_ID, epoch: int = EPOCH, size: int = bootloader.MIN_BOOT_BYTES) -> Path:
    files = boot_files(tmp / "files")
    image = tmp / "boot.fat"
    bootloader.make_boot_partition(files, image, size, volume_id=volume_id, hidden_sectors=2048,
                                   source_date_epoch=epoch)
    return image


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_syslinux_config():
    assert bootloader.syslinux_config(kernel="vmlinuz-6.1", initrd="initrd.img-6.1", cmdline="root=UUID=x ro",
                                      label="group-cernvm 1.0-1-3") == (
        "SERIAL 0 115200\n"
        "DEFAULT appliance\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        "SAY Booting group-cernvm 1.0-1-3\n"
        "LABEL appliance\n"
        "  KERNEL /vmlinuz-6.1\n"
        "  INITRD /initrd.img-6.1\n"
        "  APPEND root=UUID=x ro\n"
    )


def test_the_partition_holds_the_files_and_syslinux(tmp_path):
    image = make(tmp_path)
    listing = run("mdir", "-a", "-b", "-i", image, "::/").stdout.split()
    assert sorted(listing) == sorted(f"::/{n}" for n in (
        f"vmlinuz-{KVER}", f"initrd.img-{KVER}", "syslinux.cfg", "ldlinux.sys", "ldlinux.c32"))
    cfg = run("mtype", "-i", image, "::/syslinux.cfg").stdout
    assert cfg == (tmp_path / "files/syslinux.cfg").read_text()
    assert f"  KERNEL /vmlinuz-{KVER}\n" in cfg and f"  INITRD /initrd.img-{KVER}\n" in cfg
    assert f"  APPEND root=UUID={UUID} ro " in cfg
    for name in (f"vmlinuz-{KVER}", f"initrd.img-{KVER}"):
        copy = tmp_path / f"copy-{name}"
        run("mcopy", "-n", "-i", image, f"::/{name}", copy)
        assert copy.read_bytes() == (tmp_path / "files" / name).read_bytes()
    attrs = run("mattrib", "-i", image, "::/ldlinux.sys").stdout
    assert "R" in attrs.split("::/")[0] and "S" in attrs.split("::/")[0]  # syslinux --install marks it so


def test_fsck_finds_it_clean_and_every_time_is_the_epoch(tmp_path):
    image = make(tmp_path)
    run("fsck.fat", "-n", image)
    lines = [line for line in run("mdir", "-a", "-i", image, "::/").stdout.splitlines() if "-" in line[:40]
             and ":" in line]
    assert len(lines) == 5
    for line in lines:  # EPOCH is 2023-11-14 22:13:20 UTC
        assert "2023-11-14  22:13" in line, line


def test_fat16_with_the_volume_id_label_and_hidden_sectors(tmp_path):
    image = make(tmp_path, size=48 * MIB)
    info = run("minfo", "-i", image, "::").stdout
    assert "hidden sectors: 2048" in info and "serial number: A1B2C3D4" in info
    assert 'disk type="FAT16   "' in info and 'banner:"SYSLINUX"' in info
    assert f"big size: {48 * MIB // 512} sectors" in info
    blkid = run("blkid", "-p", "-o", "export", image).stdout.splitlines()
    assert "TYPE=vfat" in blkid and "VERSION=FAT16" in blkid and "LABEL=BOOT" in blkid
    assert f"UUID={bootloader.fat_volume_uuid(VOLUME_ID)}" in blkid  # what fstab names it by
    assert image.stat().st_size == 48 * MIB


def test_fat_volume_uuid_is_how_linux_names_the_volume():
    assert bootloader.fat_volume_uuid(0xA1B2C3D4) == "A1B2-C3D4"
    assert bootloader.fat_volume_uuid(0x0000BEEF) == "0000-BEEF"


def test_the_same_inputs_give_the_same_bytes(tmp_path):
    first = make(tmp_path / "a")
    time.sleep(1.1)  # another second on the clock, other host times on the inputs
    for path in (tmp_path / "a" / "files").iterdir():
        os.utime(path)
    second = make(tmp_path / "b")
    assert sha256(first) == sha256(second)
    other_volume = make(tmp_path / "c", volume_id=0x01020304)
    other_epoch = make(tmp_path / "d", epoch=EPOCH + 3600)
    assert len({sha256(first), sha256(other_volume), sha256(other_epoch)}) == 3


def test_an_existing_image_is_replaced(tmp_path):
    image = tmp_path / "boot.fat"
    image.write_bytes(b"old contents" * 1000)
    files = boot_files(tmp_path / "files")
    bootloader.make_boot_partition(files, image, bootloader.MIN_BOOT_BYTES, volume_id=VOLUME_ID,
                                   hidden_sectors=2048, source_date_epoch=EPOCH)
    assert image.stat().st_size == bootloader.MIN_BOOT_BYTES
    run("fsck.fat", "-n", image)


def test_the_file_system_is_fat16_as_the_mbr_type_says(tmp_path):
    """The MBR calls the partition type 0x0E (FAT16, LBA): the file system must be FAT16."""
    image = make(tmp_path)
    assert "FAT (16 bit)" in run("file", image).stdout
    assert bootloader.FAT_TYPE == 16
