"""Growing the root at first boot (recipes/appliance-grow, run by appliance-init's rcS).

On the host, the cooked program (the bytes the image holds, with the C library of its
runtime closure) does its partition step on disk image files: the appliance's disk made
larger, and layouts it must leave alone, made with sfdisk; util-linux's sfdisk reads the
result back. In the guest, the session appliance's x86_64 raw disk, enlarged to 2 GiB, is
booted twice without -snapshot: the first boot grows the partition and the ext4 online
and says so on the console, a script on a config drive reports the kernel's and df's
figures and powers off; the second boot only says it was done, and growing again by
hand changes nothing. The script also grows a second disk's ext4 partition mounted on
/mnt/data ('appliance-grow MOUNTPOINT', what a network-booted appliance does with its data
partition). e2fsck and dumpe2fs check the grown file systems afterwards."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from appbuilder.assemble.disk import _chs
from appbuilder.context.drive import make_config_drive
from appbuilder.verify.boot import BOOT_MARKER, BootOptions
from tests.guest import RunningGuest

pytestmark = pytest.mark.slow

MIB = 1 << 20
SECTOR = 512
GROWN = 2 << 30  # the disk the guest test boots
STATE = "/var/lib/appliance-grow/done"


LOADERS = {  # arch: the dynamic loader and library directories of the runtime closure
    "x86_64": ("lib64/ld-linux-x86-64.so.2", ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")),
    "x86": ("lib/ld-linux.so.2", ("lib/i386-linux-gnu", "usr/lib/i386-linux-gnu")),
}


def cooked_tool(appliance, root: Path, arch: str) -> list[str]:
    """argv of /sbin/appliance-grow as the appliance's build cooked it for *arch*, run through
    its runtime closure's own dynamic loader."""
    from appbuilder.graph.closure import ClosureResolver
    from appbuilder.repository.checkout import materialize
    from appbuilder.repository.repo import Repository
    from appbuilder.repository.versions import TroveSpec

    s = appliance.settings
    repo = Repository(s.repository, s.label)
    try:
        nvf = repo.find_one(TroveSpec("appliance-grow:runtime"), arch=arch)
        closure = ClosureResolver(repo, arch).resolve([nvf])
        materialize(repo.store, [repo.get(n) for n in closure.members], root)
    finally:
        repo.close()
    loader, libs = LOADERS[arch]
    return [str(root / loader), "--library-path", ":".join(str(root / d) for d in libs),
            str(root / "sbin/appliance-grow")]


@pytest.fixture(scope="session")
def grow_tool(appliance, tmp_path_factory) -> list[str]:
    return cooked_tool(appliance, tmp_path_factory.mktemp("appliance-grow-x86_64"), "x86_64")


def run(tool: list[str], *args) -> subprocess.CompletedProcess:
    return subprocess.run([*tool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


def appliance_raw(appliance, arch: str = "x86_64") -> Path:
    return next(p for p in appliance.files[(arch, "raw")] if p.name.endswith(".raw"))


def sparse_copy(src: Path, dest: Path, size: int | None = None) -> Path:
    subprocess.run(["cp", "--sparse=always", str(src), str(dest)], check=True)
    if size is not None:
        subprocess.run(["truncate", "-s", str(size), str(dest)], check=True)
    return dest


def sfdisk_dump(image: Path) -> dict:
    """The partition table as util-linux's sfdisk reads it (partitions without their node names)."""
    out = subprocess.run(["sfdisk", "--json", str(image)], check=True, capture_output=True, text=True).stdout
    table = json.loads(out)["partitiontable"]
    for part in table["partitions"]:
        del part["node"]
    return table


def first_sector(image: Path) -> bytes:
    with open(image, "rb") as f:
        return f.read(SECTOR)


def digest(image: Path) -> str:
    return hashlib.sha256(image.read_bytes()).hexdigest()


# ------------------------------------------------------------------ on the host: the partition step


@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_the_appliance_disk_made_larger_gets_its_root_to_the_end_once(appliance, tmp_path, arch):
    grow_tool = cooked_tool(appliance, tmp_path / "tool", arch)  # the 32-bit build too
    disk = sparse_copy(appliance_raw(appliance, arch), tmp_path / "disk.raw")
    before = sfdisk_dump(disk)
    boot, root = before["partitions"]
    assert run(grow_tool, "--image", disk).stdout.startswith(
        f"grow: {disk}: nothing to grow: partition 2 {root['size'] * SECTOR // MIB} MiB (already at the end of the disk)")

    subprocess.run(["truncate", "-s", str(GROWN), str(disk)], check=True)
    original = first_sector(disk)
    new_size = GROWN // SECTOR - root["start"]
    planned = run(grow_tool, "--image", disk)
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout == (f"grow: {disk}: partition 2 {root['size'] * SECTOR // MIB} MiB -> {new_size * SECTOR // MIB} "
                              f"MiB (sectors {root['start']}-{GROWN // SECTOR - 1}) [not written: no --write]\n")
    assert first_sector(disk) == original  # a plan writes nothing

    done = run(grow_tool, "--image", disk, "--write")
    assert done.returncode == 0 and "[not written" not in done.stdout, done
    after = sfdisk_dump(disk)
    assert after["partitions"][0] == boot and after["id"] == before["id"]
    assert after["partitions"][1] == {**root, "size": new_size}  # same start and type, to the end of the disk
    mbr = first_sector(disk)
    entry = mbr[446 + 16: 446 + 32]
    assert entry[5:8] == _chs(root["start"] + new_size - 1)  # the end's CHS as appbuild writes them
    changed = [i for i in range(SECTOR) if mbr[i] != original[i]]
    assert changed and all(446 + 16 + 5 <= i < 446 + 16 + 8 or 446 + 16 + 12 <= i < 446 + 32 for i in changed)
    # idempotent: again, nothing changes
    again = run(grow_tool, "--image", disk, "--write")
    assert again.returncode == 0 and "nothing to grow" in again.stdout and "already at the end of the disk" in again.stdout
    assert first_sector(disk) == mbr


def test_past_2_tib_the_partition_ends_where_an_mbr_can_address(grow_tool, appliance, tmp_path):
    disk = sparse_copy(appliance_raw(appliance), tmp_path / "disk.raw", 3 << 40)
    start = sfdisk_dump(disk)["partitions"][1]["start"]
    done = run(grow_tool, "--image", disk, "--write")
    assert done.returncode == 0, done
    assert f"(sectors {start}-{(1 << 32) - 1})" in done.stdout
    assert "grow: the disk is 3072 GiB; an MBR partition ends at 2 TiB: the rest stays unused" in done.stdout
    assert sfdisk_dump(disk)["partitions"][1]["size"] == (1 << 32) - start
    assert _chs((1 << 32) - 1) == first_sector(disk)[446 + 16 + 5: 446 + 16 + 8] == b"\xfe\xff\xff"


LAYOUTS = {
    # name: (sfdisk script, partition, what the refusal says)
    "gpt": ("label: gpt\nstart=2048, size=20480, type=L\n", 1, "the disk has a GUID partition table"),
    "extended": (("label: dos\nstart=2048, size=20480, type=83\nstart=22528, size=40960, type=5\n"
                  "start=24576, size=8192, type=83\n"), 1, "partition 2 is an extended partition (type 0x05)"),
    "not-last": ("label: dos\nstart=40960, size=20480, type=83\nstart=2048, size=20480, type=83\n", 2,
                 "partition 1 (from sector 40960) lies after the root partition"),
    "not-linux": ("label: dos\nstart=2048, size=20480, type=7\n", 1, "partition 1 has type 0x07, not Linux (0x83)"),
    "empty": ("label: dos\nstart=2048, size=20480, type=83\n", 3, "MBR entry 3 is empty"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_layout_it_does_not_understand_is_left_alone(grow_tool, tmp_path, layout):
    script, partition, reason = LAYOUTS[layout]
    disk = tmp_path / "disk.raw"
    subprocess.run(["truncate", "-s", str(64 * MIB), str(disk)], check=True)
    subprocess.run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(disk)], input=script, text=True,
                   check=True, capture_output=True)
    subprocess.run(["truncate", "-s", str(256 * MIB), str(disk)], check=True)  # room to grow into
    untouched = digest(disk)
    proc = run(grow_tool, "--image", disk, "--partition", partition, "--write")
    assert proc.returncode == 1, proc
    assert proc.stdout.startswith(f"grow: {disk}: partition {partition} not grown: {reason}"), proc.stdout
    assert digest(disk) == untouched


def test_bad_arguments_and_a_disk_without_an_mbr(grow_tool, tmp_path):
    blank = tmp_path / "blank.raw"
    subprocess.run(["truncate", "-s", str(8 * MIB), str(blank)], check=True)
    proc = run(grow_tool, "--image", blank)
    assert proc.returncode == 1 and "not grown: the disk has no MBR (no 55 AA signature)" in proc.stdout
    proc = run(grow_tool, "--image", blank, "--partition", "5")
    assert proc.returncode == 2 and proc.stderr == "appliance-grow: --partition takes 1 to 4 (a primary partition), not 5\n"
    proc = run(grow_tool, "--image", tmp_path / "missing.raw")
    assert proc.returncode == 1 and "cannot open" in proc.stderr and "No such file or directory" in proc.stderr
    assert run(grow_tool, "--bogus").returncode == 2


def test_a_mount_point_must_be_a_directory_that_is_there(grow_tool, tmp_path):
    # (never a real directory of this host: it would grow the host's own file system)
    missing = run(grow_tool, "--force", tmp_path / "missing")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == f"appliance-grow: cannot look at {tmp_path}/missing: No such file or directory\n"
    (tmp_path / "file").write_text("")
    not_dir = run(grow_tool, "--force", tmp_path / "file")
    assert not_dir.returncode == 1 and not_dir.stderr == f"appliance-grow: {tmp_path}/file is not a directory\n"
    usage = "usage: appliance-grow [--force] [MOUNTPOINT]\n       appliance-grow --image FILE [--partition N] [--write]\n"
    for args in (["/a", "/b"], ["--image", tmp_path / "file", "/mnt"], ["--partition", "1", "/mnt"]):
        proc = run(grow_tool, *args)
        assert proc.returncode == 2 and proc.stderr == usage, args


# ------------------------------------------------------------------ in the guest

CHECK_SCRIPT = """#!/bin/sh
# run as root by cernvm-context at the end of each boot
echo "CHECK sectors $(cat /sys/class/block/vda2/size) $(cat /sys/class/block/vda/size)"
echo "CHECK df $(df -Pk / | tail -n 1)"
echo "CHECK state $(cat /var/lib/appliance-grow/done 2>&1)"
echo "CHECK again $(/sbin/appliance-grow --force 2>&1)"
# a second disk's partition, mounted elsewhere: the state file says the boot's growing was done
data=$(findfs LABEL=grow-data)
mkdir -p /mnt/data && mount -t ext4 "$data" /mnt/data
echo "CHECK data-done $(/sbin/appliance-grow /mnt/data 2>&1)"
echo "CHECK data-grow $(/sbin/appliance-grow --force /mnt/data 2>&1)"
echo "CHECK data-sectors $data $(cat /sys/class/block/${data#/dev/}/size) $(df -Pk /mnt/data | tail -n 1)"
umount /mnt/data
echo "CHECK end"
poweroff
"""


DATA_START, DATA_SECTORS, DATA_DISK = 2048, 32768, 256 * MIB  # a 16 MiB partition on a 256 MiB disk


def data_disk(path: Path) -> Path:
    """A disk whose one partition holds a 16 MiB ext4 labelled grow-data, with room after it."""
    subprocess.run(["truncate", "-s", str(DATA_START * SECTOR + DATA_SECTORS * SECTOR), str(path)], check=True)
    subprocess.run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(path)], check=True,
                   input=f"label: dos\nstart={DATA_START}, size={DATA_SECTORS}, type=83\n", text=True)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "grow-data", "-E",
                    f"offset={DATA_START * SECTOR}", str(path), str(DATA_SECTORS * SECTOR // 4096)], check=True)
    subprocess.run(["truncate", "-s", str(DATA_DISK), str(path)], check=True)
    return path


def test_the_root_grows_at_first_boot_and_only_then(appliance, tmp_path):
    raw = appliance_raw(appliance)
    root = sfdisk_dump(raw)["partitions"][1]
    disk = sparse_copy(raw, tmp_path / "disk.raw", GROWN)
    data = data_disk(tmp_path / "data.raw")
    data_new = DATA_DISK // SECTOR - DATA_START
    old_mib, new_sectors = root["size"] * SECTOR // MIB, GROWN // SECTOR - root["start"]
    new_mib = new_sectors * SECTOR // MIB
    (tmp_path / "user-data").write_text("[cernvm]\ncontextualization_command = root:/media/context/check.sh\n")
    (tmp_path / "check.sh").write_text(CHECK_SCRIPT)
    (tmp_path / "check.sh").chmod(0o755)
    drive = make_config_drive(tmp_path / "user-data", tmp_path / "ctx.iso", extra=[tmp_path / "check.sh"])
    opts = BootOptions(arch="x86_64", drive_format="raw", timeout=120, snapshot=False,
                       extra_drives=[(drive.path, "raw", "virtio")],
                       extra_args=["-drive", f"file={data},format=raw,if=virtio"])

    def boot() -> tuple[str, dict[str, str]]:
        with RunningGuest(disk, opts) as guest:
            grow = guest.wait_for("grow: ")
            guest.wait_for(BOOT_MARKER)
            checks = {}
            for name in ("sectors", "df", "state", "again", "data-done", "data-grow", "data-sectors", "end"):
                checks[name] = guest.wait_for(f"CHECK {name}").split(f"CHECK {name}", 1)[1].strip()
            guest.wait_for("reboot: Power down", timeout=60)  # the script powers off: unmounted cleanly
            assert guest.proc.wait(timeout=30) == 0
            return grow, checks

    first, checks = boot()
    m = re.fullmatch(rf"grow: root partition /dev/vda2 {old_mib} MiB -> {new_mib} MiB, file system {old_mib} MiB -> "
                     rf"{new_mib} MiB; df: (\d+) MiB, (\d+) MiB available, in (\d+\.\d\d) s", first)
    assert m, first
    df_mib, seconds = int(m.group(1)), float(m.group(3))
    assert new_mib - 64 < df_mib <= new_mib and seconds < 5
    assert checks["sectors"] == f"{new_sectors} {GROWN // SECTOR}"  # what the kernel uses now
    fields = checks["df"].split()  # Filesystem 1024-blocks Used Available Capacity Mounted-on
    assert fields[0] == "/dev/vda2" and fields[5] == "/" and int(fields[1]) // 1024 == df_mib
    assert checks["state"] == first
    nothing = (f"grow: nothing to grow: root partition /dev/vda2 {new_mib} MiB (already at the end of the disk), "
               f"file system {new_mib} MiB (fills the partition)")
    assert checks["again"].startswith(nothing)
    # the data disk: the state file is the same; --force grows the partition holding /mnt/data
    assert checks["data-done"] == f"grow: done at first boot ({STATE}): nothing to do"
    data_mib = data_new * SECTOR // MIB
    m = re.fullmatch(rf"grow: partition /dev/vdc1 of /mnt/data 16 MiB -> {data_mib} MiB, file system 16 MiB -> "
                     rf"{data_mib} MiB; df: (\d+) MiB, (\d+) MiB available, in (\d+\.\d\d) s", checks["data-grow"])
    assert m, checks["data-grow"]
    data_grown = checks["data-grow"]
    fields = checks["data-sectors"].split()  # device, sectors, then df's line
    assert fields[:2] == ["/dev/vdc1", str(data_new)] and fields[2] == "/dev/vdc1" and fields[7] == "/mnt/data"
    assert int(fields[3]) // 1024 == int(m.group(1)) > data_mib - 32

    second, checks = boot()
    assert second == f"grow: done at first boot ({STATE}): nothing to do"
    assert checks["sectors"] == f"{new_sectors} {GROWN // SECTOR}"
    # the last run that changed something wrote the state file: the data partition's
    assert checks["state"] == data_grown and checks["again"].startswith(nothing)
    assert checks["data-grow"].startswith(
        f"grow: nothing to grow: partition /dev/vdc1 of /mnt/data {data_mib} MiB (already at the end of the disk), "
        f"file system {data_mib} MiB (fills the partition)")

    # the host's e2fsprogs on the disk the guest left: a clean ext4 filling the partition
    assert sfdisk_dump(disk)["partitions"][1] == {**root, "size": new_sectors}
    fs = f"{disk}?offset={root['start'] * SECTOR}"
    fsck = subprocess.run(["e2fsck", "-fn", fs], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0 and "Fix?" not in fsck.stdout, fsck.stdout + fsck.stderr
    header = subprocess.run(["dumpe2fs", "-h", fs], capture_output=True, text=True, check=True).stdout
    assert int(re.search(r"^Block count:\s+(\d+)", header, re.MULTILINE).group(1)) == new_sectors * SECTOR // 4096
    assert "needs_recovery" not in header
    assert sfdisk_dump(data)["partitions"] == [{"start": DATA_START, "size": data_new, "type": "83"}]
    fs = f"{data}?offset={DATA_START * SECTOR}"
    fsck = subprocess.run(["e2fsck", "-fn", fs], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0 and "Fix?" not in fsck.stdout, fsck.stdout + fsck.stderr
    header = subprocess.run(["dumpe2fs", "-h", fs], capture_output=True, text=True, check=True).stdout
    assert int(re.search(r"^Block count:\s+(\d+)", header, re.MULTILINE).group(1)) == data_new * SECTOR // 4096
