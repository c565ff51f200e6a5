"""The initramfs (appbuilder.assemble.initramfs): a static busybox, the root's drivers in load
order, our /init; a newc cpio, zstd or gzip. Built from a real static busybox and this
machine's kernel modules, read back with zstd/gzip, cpio and busybox itself."""

from __future__ import annotations

import gzip
import hashlib
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from appbuilder.assemble import initramfs
from appbuilder.assemble import kernel as kernel_mod
from appbuilder.core.errors import AppbuildError
from appbuilder.repository.store import ContentStore
from tests.assemble.helpers import EPOCH, cpio_listing, kernel_troves, newc_members, run

WANTED = ["ext4", "virtio_blk"]
DECOYS = ["fuse", "isofs"]
FIXED = {"bin", "bin/busybox", "bin/sh", "dev", "dev/console", "dev/null", "etc", "etc/initramfs-modules", "init",
         "lib", "newroot", "proc", "sys"}


@dataclass
class Inputs:
    busybox: bytes
    modules: list[tuple[str, bytes]]  # (path in the image, content), in load order
    order: list[str]  # module names, in load order
    host: object

    def build(self, **kw) -> bytes:
        return initramfs.build_initramfs(busybox=self.busybox, modules=self.modules, **{"mtime": EPOCH, **kw})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, busybox, host_modules) -> Inputs:
    """The closure of ext4 and virtio_blk in a kernel package of this machine's modules
    (with two modules nobody asks for), and a static busybox (read only by the tests)."""
    store = ContentStore(tmp_path_factory.mktemp("kernel") / "store")
    troves = kernel_troves(store, host_modules, sorted(host_modules.hard_closure(WANTED)) + DECOYS)
    kern = kernel_mod.find_kernel(troves, store)
    order = kern.closure(WANTED)
    modules = [(kern.modules[m].path, store.read(kern.modules[m].sha256)) for m in order]
    return Inputs(busybox.read_bytes(), modules, order, host_modules)


def unpacked(data: bytes, tmp_path: Path, compression: str = "zstd") -> bytes:
    """The cpio archive inside, decompressed by the real tool."""
    packed = tmp_path / f"initrd.{compression}"
    packed.write_bytes(data)
    tool = ["zstd", "-dc"] if compression == "zstd" else ["gzip", "-dc"]
    proc = subprocess.run([*tool, str(packed)], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def member(raw: bytes, name: str, tmp_path: Path) -> bytes:
    """One member's content, extracted by cpio."""
    proc = subprocess.run(["cpio", "-i", "--quiet", "--to-stdout", name], input=raw, capture_output=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_archive_holds_init_busybox_devices_and_exactly_the_closure(inputs, tmp_path):
    data = inputs.build(compression="zstd")
    (tmp_path / "initrd").write_bytes(data)
    assert run("file", "-b", tmp_path / "initrd").stdout.startswith("Zstandard compressed data")
    raw = unpacked(data, tmp_path)
    (tmp_path / "initrd.cpio").write_bytes(raw)
    assert run("file", "-b", tmp_path / "initrd.cpio").stdout.startswith("ASCII cpio archive (SVR4 with no CRC)")
    listing = cpio_listing(raw)

    module_paths = {p.lstrip("/") for p, _ in inputs.modules}
    parents = {str(parent) for p in module_paths for parent in PurePosixPath(p).parents if str(parent) != "."}
    assert set(listing) == FIXED | module_paths | parents
    kos = {PurePosixPath(p).name.removesuffix(".ko").replace("-", "_") for p in listing if p.endswith(".ko")}
    assert kos == inputs.host.hard_closure(WANTED) and not kos & set(DECOYS)

    def mode_owner(name):
        return listing[name][0], listing[name][2], listing[name][3]

    assert mode_owner("init") == ("-rwxr-xr-x", "0", "0")
    assert mode_owner("bin/busybox") == ("-rwxr-xr-x", "0", "0")
    assert listing["bin/sh"][0] == "lrwxrwxrwx" and listing["bin/sh"][-2:] == ["->", "busybox"]
    assert listing["dev/console"][:6] == ["crw-------", "1", "0", "0", "5,", "1"]
    assert listing["dev/null"][:6] == ["crw-rw-rw-", "1", "0", "0", "1,", "3"]
    assert mode_owner("etc/initramfs-modules") == ("-rw-r--r--", "0", "0")
    for name in module_paths:
        assert mode_owner(name) == ("-rw-r--r--", "0", "0")
    for name in parents | {"bin", "dev", "etc", "lib", "newroot", "proc", "sys"}:
        assert mode_owner(name) == ("drwxr-xr-x", "0", "0")


def test_every_header_has_the_fixed_time_owner_root_and_its_own_inode(inputs, tmp_path):
    raw = unpacked(inputs.build(compression="zstd"), tmp_path)
    members = newc_members(raw)
    names = [m.name for m in members]
    assert names == sorted(names) == list(cpio_listing(raw))  # path order, as cpio reads it
    assert len(set(names)) == len(names)
    assert {(m.mtime, m.uid, m.gid, m.nlink) for m in members} == {(EPOCH, 0, 0, 1)}
    inodes = [m.ino for m in members]
    assert 0 not in inodes and len(set(inodes)) == len(inodes)
    for m in members:
        if stat.S_ISREG(m.mode):
            assert (m.rdev, len(m.data) > 0) == ((0, 0), True)


def test_init_loads_the_modules_in_dependency_order(inputs, tmp_path, busybox):
    raw = unpacked(inputs.build(compression="zstd"), tmp_path)
    init = member(raw, "init", tmp_path)
    assert init == initramfs.INIT_SCRIPT.encode() and init.startswith(b"#!/bin/sh\n")
    script = tmp_path / "init"
    script.write_bytes(init)
    run(busybox, "sh", "-n", script)  # busybox's shell parses it
    listed = member(raw, "etc/initramfs-modules", tmp_path).decode().splitlines()
    assert listed == [path for path, _ in inputs.modules]
    names = set(cpio_listing(raw))
    loaded: list[str] = []
    for path in listed:
        assert path.startswith("/") and path.lstrip("/") in names  # insmod finds it
        name = PurePosixPath(path).name.removesuffix(".ko").replace("-", "_")
        assert set(inputs.host.depends(name)) <= set(loaded), f"{name} before {inputs.host.depends(name)}"
        loaded.append(name)
    assert set(loaded) == inputs.host.hard_closure(WANTED)


def test_busybox_is_the_one_given_and_has_every_applet_init_calls(inputs, tmp_path):
    raw = unpacked(inputs.build(compression="zstd"), tmp_path)
    copy = tmp_path / "busybox"
    copy.write_bytes(member(raw, "bin/busybox", tmp_path))
    assert copy.read_bytes() == inputs.busybox
    copy.chmod(0o755)
    applets = set(run(copy, "--list").stdout.split())
    called = set(re.findall(r"\$bb (\w+)", initramfs.INIT_SCRIPT))
    assert {"mount", "insmod", "findfs", "switch_root", "umount", "cat", "sleep", "sh"} <= called
    assert called | {"sh"} <= applets, f"missing applets: {sorted(called - applets)}"


def test_modules_are_the_kernel_packages_bytes(inputs, tmp_path):
    raw = unpacked(inputs.build(compression="zstd"), tmp_path)
    for path, _ in inputs.modules:
        assert hashlib.sha256(member(raw, path.lstrip("/"), tmp_path)).digest() == \
            hashlib.sha256(Path(path).read_bytes()).digest(), path


def test_the_same_inputs_give_the_same_bytes(inputs, tmp_path):
    first = inputs.build(compression="zstd")
    assert inputs.build(compression="zstd") == first
    assert inputs.build(compression="zstd", mtime=EPOCH + 1) != first
    no_modules = Inputs(inputs.busybox, [], [], inputs.host)  # gzip -9 is slow: a smaller archive
    assert no_modules.build(compression="gzip") == no_modules.build(compression="gzip")
    reordered = Inputs(inputs.busybox, list(reversed(inputs.modules)), inputs.order, inputs.host)
    assert reordered.build(compression="zstd") != inputs.build(compression="zstd")  # load order is content


def test_gzip_carries_no_time_stamp_and_the_same_archive(inputs, tmp_path):
    small = Inputs(inputs.busybox, inputs.modules[:1], inputs.order[:1], inputs.host)  # gzip -9 is slow
    gz = small.build(compression="gzip")
    assert gz[:3] == b"\x1f\x8b\x08" and gz[3] & 0x08 == 0  # no file name
    assert gz[4:8] == b"\0\0\0\0"  # MTIME 0
    (tmp_path / "initrd.gz").write_bytes(gz)
    assert "last modified" not in run("file", tmp_path / "initrd.gz").stdout
    assert gzip.decompress(gz) == unpacked(gz, tmp_path, "gzip") == unpacked(small.build(compression="zstd"), tmp_path)


def test_compression_follows_the_kernel_config(host_modules):
    assert initramfs.compression_for("CONFIG_RD_GZIP=y\nCONFIG_RD_ZSTD=y\n") == "zstd"
    assert initramfs.compression_for("CONFIG_RD_ZSTD=y\n") == "zstd"
    assert initramfs.compression_for("CONFIG_RD_GZIP=y\n# CONFIG_RD_ZSTD is not set\n") == "gzip"
    assert initramfs.compression_for("CONFIG_RD_ZSTD=m\nXCONFIG_RD_ZSTD=y\n") == "gzip"
    config = Path(f"/boot/config-{host_modules.version}")
    if config.is_file():
        expected = "zstd" if "CONFIG_RD_ZSTD=y" in config.read_text().splitlines() else "gzip"
        assert initramfs.compression_for(config.read_text()) == expected


def test_a_busybox_that_is_not_elf_is_refused():
    with pytest.raises(AppbuildError, match="needs a busybox binary and the one found is not ELF"):
        initramfs.build_initramfs(busybox=b"#!/bin/sh\n", modules=[], mtime=EPOCH)


def test_without_modules_only_the_fixed_members(busybox, tmp_path):
    raw = unpacked(initramfs.build_initramfs(busybox=busybox.read_bytes(), modules=[], mtime=EPOCH,
                                             compression="zstd"), tmp_path)
    assert set(cpio_listing(raw)) == FIXED
    assert member(raw, "etc/initramfs-modules", tmp_path) == b""
