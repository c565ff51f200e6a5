"""group-cernvm, built once per session for x86_64 and x86 in every format (the
``appliance`` fixture), checked many ways: it boots under QEMU (TCG) from every format
to the marker, a rebuild of the same group version is bit-identical (also as an
unprivileged user), the disk holds what it should, and bad requests fail clearly."""

from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest
import zstandard

from appbuilder.core.fileio import sha256_file
from appbuilder.verify.boot import BOOT_MARKER, BootOptions, boot_until
from tests.conftest import PROJECT, env_for, make_settings, new_workspace, run_appbuild, sigint_as_from_a_terminal

BOOT_TIMEOUT = 90


def expect_marker(appliance, image: Path, arch: str, drive_format: str, interface: str = "virtio") -> float:
    result = boot_until(image, BootOptions(arch=arch, drive_format=drive_format, interface=interface,
                                           timeout=BOOT_TIMEOUT))
    assert result.found, f"no {BOOT_MARKER} from {image.name} within {BOOT_TIMEOUT} s:\n{result.console[-3000:]}"
    version = f"cernvm@cvm:2/{appliance.version[arch]}"
    assert result.line.endswith(f"{BOOT_MARKER} group-cernvm {version} {arch}"), result.line
    return result.seconds


def image(appliance, arch: str, fmt: str, ending: str) -> Path:
    return next(p for p in appliance.files[(arch, fmt)] if p.name.endswith(ending))


# ------------------------------------------------------------------------- booting


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_raw_disk_boots_to_the_marker(appliance, arch):
    seconds = expect_marker(appliance, image(appliance, arch, "raw", ".raw"), arch, "raw")
    print(f"{arch} raw: marker after {seconds:.1f} s")


@pytest.mark.slow
@pytest.mark.parametrize("arch, fmt, ending, drive, interface", [
    ("x86_64", "qcow2", ".qcow2", "qcow2", "virtio"),
    ("x86", "vmdk", ".vmdk", "vmdk", "virtio"),
    ("x86_64", "vhd", "x86_64.vhd", "vpc", "virtio"),
    ("x86", "vhd-dynamic", "-dynamic.vhd", "vpc", "virtio"),
    ("x86_64", "vmdk-esx", "-disk1.vmdk", "vmdk", "virtio"),
    ("x86", "raw", ".raw", "raw", "ide"),  # the initramfs finds an IDE disk too
])
def test_every_format_boots_through_qemus_own_driver(appliance, arch, fmt, ending, drive, interface):
    expect_marker(appliance, image(appliance, arch, fmt, ending), arch, drive, interface)


@pytest.mark.slow
def test_ova_disk_boots(appliance, tmp_path):
    import tarfile

    with tarfile.open(image(appliance, "x86_64", "ova", ".ova")) as ova:
        names = ova.getnames()
        assert names[0].endswith(".ovf") and names[1].endswith(".mf") and names[2].endswith(".vmdk")
        ova.extract(names[2], tmp_path, filter="data") if hasattr(tarfile, "data_filter") else ova.extract(names[2], tmp_path)
    expect_marker(appliance, tmp_path / names[2], "x86_64", "vmdk")


# ------------------------------------------------------------------------- reproducible, rootless


@pytest.mark.slow
def test_rebuilding_the_same_version_is_bit_identical(appliance, tmp_path):
    out = tmp_path / "again"
    run_appbuild(appliance.settings, "group-cernvm", "--version", appliance.version["x86_64"], "--arch", "x86_64",
                 "--format", "raw,qcow2,vmdk,vhd,vhd-dynamic,vmdk-esx,ova", "--output", str(out))
    compared = 0
    for fmt in ("raw", "qcow2", "vmdk", "vhd", "vhd-dynamic", "vmdk-esx", "ova"):
        for original in appliance.files[("x86_64", fmt)]:
            assert sha256_file(out / original.name) == sha256_file(original), f"{original.name} differs between two builds"
            compared += 1
    assert compared >= 10


@pytest.mark.slow
def test_an_unprivileged_user_builds_the_same_bytes(appliance, as_user):
    """No root, no loop devices, no mounts: the build runs as a plain user (and gives the same
    image), from a copy of appbuild the user can read wherever the clone is."""
    s = appliance.settings
    work = as_user.home()
    try:
        repo_copy = work / "repo"
        subprocess.run(["cp", "-a", "--reflink=auto", str(s.repository), str(repo_copy)], check=True)
        ws = new_workspace(work, ["base-files"])
        shutil.copytree(PROJECT / "groups", ws / "groups", dirs_exist_ok=True)
        shutil.copy(PROJECT / "repo" / "config.yaml", ws / "repo" / "config.yaml")
        user_settings = make_settings(work, workspace=ws, cache=work / "cache")
        user_settings = type(user_settings)(**{**user_settings.__dict__, "repository": repo_copy})
        out = work / "out"
        as_user.give(work)
        as_user.appbuild(user_settings, "group-cernvm", "--version", appliance.version["x86_64"], "--no-cook",
                         "--arch", "x86_64", "--format", "raw,qcow2", "--output", str(out), timeout=600)
        for fmt, ending in (("raw", ".raw"), ("qcow2", ".qcow2")):
            mine = image(appliance, "x86_64", fmt, ending)
            theirs = out / mine.name
            if as_user.user:
                assert theirs.stat().st_uid != 0
            assert sha256_file(theirs) == sha256_file(mine)
    finally:
        subprocess.run(["rm", "-rf", str(work)])


# ------------------------------------------------------------------------- what the disk holds


def partitions(raw: Path) -> list[tuple[bool, int, int, int]]:
    """(bootable, type, first sector, sectors) of the MBR's entries."""
    mbr = raw.read_bytes()[:512]
    assert mbr[510:] == b"\x55\xaa"
    parts = []
    for i in range(4):
        entry = mbr[446 + 16 * i: 462 + 16 * i]
        lba, count = struct.unpack("<II", entry[8:16])
        if count:
            parts.append((entry[0] == 0x80, entry[4], lba, count))
    return parts


def extract(raw: Path, part, dest: Path) -> Path:
    with open(raw, "rb") as src, open(dest, "wb") as out:
        src.seek(part[2] * 512)
        remaining = part[3] * 512
        while remaining:
            chunk = src.read(min(remaining, 1 << 22))
            out.write(chunk)
            remaining -= len(chunk)
    return dest


def debugfs(fs: Path, command: str) -> str:
    return subprocess.run(["debugfs", "-R", command, str(fs)], capture_output=True, text=True).stdout


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_disk_layout_boot_partition_and_root(appliance, arch, tmp_path):
    raw = image(appliance, arch, "raw", ".raw")
    assert raw.stat().st_size % (1 << 20) == 0
    boot, root = partitions(raw)
    assert boot[0] and boot[1] == 0x0E and boot[2] == 2048 and not root[0] and root[1] == 0x83
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    listing = subprocess.run(["mdir", "-a", "-b", "-i", f"{raw}@@{boot[2] * 512}", "::/"], capture_output=True,
                             text=True, env=env).stdout
    names = {line.rsplit("/", 1)[-1].strip() for line in listing.splitlines()}
    kernel = next(n for n in names if n.startswith("vmlinuz-"))
    version = kernel[len("vmlinuz-"):]
    assert {"syslinux.cfg", "ldlinux.sys", "ldlinux.c32", f"initrd.img-{version}"} <= names
    assert not any(n.startswith("System.map") for n in names)
    cfg = subprocess.run(["mtype", "-i", f"{raw}@@{boot[2] * 512}", "::/syslinux.cfg"], capture_output=True,
                         text=True, env=env).stdout
    assert f"KERNEL /{kernel}" in cfg and "console=ttyS0" in cfg and "root=UUID=" in cfg

    fs = extract(raw, root, tmp_path / "root.ext4")
    fsck = subprocess.run(["e2fsck", "-fn", str(fs)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout
    assert f"UUID={cfg.split('root=UUID=')[1].split()[0]}" in debugfs(fs, "cat /etc/fstab")
    release = debugfs(fs, "cat /etc/appliance-release")
    assert f"GROUP=group-cernvm\nVERSION=cernvm@cvm:2/{appliance.version[arch]}\n" in release and f"ARCH={arch}" in release
    stat = debugfs(fs, "stat /bin/busybox")
    assert "User:     0   Group:     0" in stat and "Mode:  0755" in stat
    assert "Mode:  01777" in debugfs(fs, "stat /tmp") and "Mode:  0700" in debugfs(fs, "stat /root")
    assert "Mode:  0600" in debugfs(fs, "stat /etc/shadow") and "root:x:0:0:" in debugfs(fs, "cat /etc/passwd")
    manifest = debugfs(fs, "cat /var/lib/appbuild/manifest.json")
    assert '"busybox=cernvm@cvm:2/' in manifest and '"busybox:runtime=cernvm@cvm:2/' in manifest
    assert '"linux-image-' in manifest
    # only the chosen kernel modules, with an index for them
    modules = debugfs(fs, f"cat /lib/modules/{version}/modules.dep")
    kept = [line.split(":")[0] for line in modules.splitlines() if line]
    assert 10 < len(kept) < 120, kept
    assert any(k.endswith("/fuse.ko") for k in kept) and any(k.endswith("/isofs.ko") for k in kept)
    assert not any("/drivers/gpu/" in k for k in kept)


@pytest.mark.slow
def test_initramfs_holds_only_what_mounts_the_root(appliance, tmp_path):
    raw = image(appliance, "x86_64", "raw", ".raw")
    boot = partitions(raw)[0]
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    listing = subprocess.run(["mdir", "-b", "-i", f"{raw}@@{boot[2] * 512}", "::/"], capture_output=True,
                             text=True, env=env).stdout
    initrd_name = next(line.rsplit("/", 1)[-1].strip() for line in listing.splitlines() if "initrd.img-" in line)
    subprocess.run(["mcopy", "-i", f"{raw}@@{boot[2] * 512}", f"::/{initrd_name}", str(tmp_path / "initrd")],
                   check=True, env=env)
    packed = (tmp_path / "initrd").read_bytes()
    assert packed[:4] == b"\x28\xb5\x2f\xfd"  # zstd: both Debian kernels unpack it
    data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(packed)).read()
    names = []
    pos = 0
    while True:
        header = data[pos:pos + 110]
        namesize, filesize = int(header[94:102], 16), int(header[54:62], 16)
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        if name == "TRAILER!!!":
            break
        names.append(name)
        pos += (110 + namesize + 3) // 4 * 4
        pos += (filesize + 3) // 4 * 4
    modules = [n.rsplit("/", 1)[1] for n in names if n.endswith(".ko")]
    assert {"virtio_blk.ko", "ata_piix.ko", "sd_mod.ko", "ext4.ko", "jbd2.ko"} <= set(modules)
    assert "fuse.ko" not in modules and "e1000.ko" not in modules  # the root does not need them
    assert {"init", "bin/busybox", "dev/console"} <= set(names)
    # a few dozen modules, not the kernel's thousands (Debian's own initrd is ~30 MB)
    assert len(modules) < 60 and (tmp_path / "initrd").stat().st_size < 4 << 20


@pytest.mark.slow
def test_image_size_goal(appliance):
    qcow2 = image(appliance, "x86_64", "qcow2", ".qcow2")
    raw = image(appliance, "x86_64", "raw", ".raw")
    print(f"qcow2 {qcow2.stat().st_size / 2**20:.1f} MiB; raw {raw.stat().st_size / 2**20:.0f} MiB apparent, "
          f"{raw.stat().st_blocks * 512 / 2**20:.1f} MiB allocated")
    assert qcow2.stat().st_size < 40 << 20


@pytest.mark.slow
def test_inspect_lists_partitions_kernel_and_troves(appliance):
    qcow2 = image(appliance, "x86_64", "qcow2", ".qcow2")
    out = run_appbuild(appliance.settings, "inspect", str(qcow2), timeout=600).stdout
    assert "qcow2" in out and "ext4" in out and "vfat" in out
    assert "vmlinuz-" in out and "busybox:runtime=cernvm@cvm:2/" in out and "appliance-init:runtime=" in out


# ------------------------------------------------------------------------- bad requests


def test_unknown_format_and_arch_list_the_valid_ones(appliance):
    bad = run_appbuild(appliance.settings, "group-cernvm", "--format", "vmdx", "--no-cook", check=False)
    assert bad.returncode == 1
    assert "unknown format 'vmdx'; valid formats: ami, ova, qcow2, raw, vhd, vhd-dynamic, vmdk, vmdk-esx" in bad.stderr
    arch = run_appbuild(appliance.settings, "group-cernvm", "--arch", "arm64", "--no-cook", check=False)
    assert arch.returncode == 1 and "unknown architecture 'arm64'; valid ones: x86_64, x86" in arch.stderr


@pytest.mark.slow
def test_existing_images_are_replaced_only_with_force(appliance):
    raw = image(appliance, "x86_64", "raw", ".raw")
    before = raw.stat().st_mtime_ns
    proc = run_appbuild(appliance.settings, "group-cernvm", "--version", appliance.version["x86_64"], "--no-cook",
                        "--format", "raw", check=False)
    assert proc.returncode == 1 and "already holds" in proc.stderr and "--force" in proc.stderr
    assert raw.stat().st_mtime_ns == before
    run_appbuild(appliance.settings, "group-cernvm", "--version", appliance.version["x86_64"], "--no-cook",
                 "--format", "raw", "--force")
    assert raw.stat().st_mtime_ns != before


@pytest.mark.slow
def test_too_small_a_size_says_how_much_is_needed(appliance, tmp_path):
    proc = run_appbuild(appliance.settings, "group-cernvm", "--version", appliance.version["x86_64"], "--no-cook",
                        "--size", "16M", "--output", str(tmp_path), check=False)
    assert proc.returncode == 1
    assert "an image of 16 MiB is too small for this closure: it needs at least" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_a_closure_without_kernel_is_refused(appliance, tmp_path):
    ws = new_workspace(tmp_path, ["base-files", "busybox", "appliance-init"])
    (ws / "groups/group-nokernel.py").write_text(
        "class G(GroupRecipe):\n    name = 'group-nokernel'\n    version = '1.0'\n    imageGroup = True\n\n"
        "    def setup(r):\n        r.add('base-files')\n        r.add('busybox')\n        r.add('appliance-init')\n")
    s = make_settings(tmp_path, workspace=ws, cache=appliance.settings.cache)
    s = type(s)(**{**s.__dict__, "repository": appliance.settings.repository})
    proc = run_appbuild(s, "group-nokernel", "--no-cook", "--output", str(tmp_path / "out"), check=False)
    assert proc.returncode == 1 and "the closure has no kernel" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_ctrl_c_during_conversion_leaves_no_image(appliance, tmp_path):
    out = tmp_path / "out"
    argv = [str(Path(os.sys.executable).parent / "appbuild"), "group-cernvm", "--version", appliance.version["x86"],
            "--no-cook", "--arch", "x86", "--format", "all", "--output", str(out)]
    proc = subprocess.Popen(argv, env=env_for(appliance.settings), cwd=PROJECT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_from_a_terminal)
    deadline = time.monotonic() + 120
    line = ""
    while "converting" not in line and time.monotonic() < deadline:
        line = proc.stdout.readline()
    assert "converting" in line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    left = [p for p in out.rglob("*")] if out.exists() else []
    assert left == [], left
    assert not [p for p in out.parent.glob(".tmp-*")]
    assert subprocess.run(["pgrep", "-f", f"qemu-img.*{out}"], capture_output=True).stdout == b""
