"""The root file system (appbuilder.assemble.ext4): the debugfs script that gives every path
its owner, mode, times and device number, and the ext4 image made with ``mke2fs -d`` plus that
script, read back with debugfs, dumpe2fs and e2fsck."""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from appbuilder.assemble import ext4
from appbuilder.assemble.rootfs import ImageEntry, StagedRoot
from appbuilder.core.errors import AppbuildError
from tests.assemble.helpers import EPOCH, MIB, UUID, debugfs_stat, run

SETUID_MTIME = 1_600_000_000
LOG_MTIME = 1_650_000_000


def small_tree(directory: Path, *, backwards: bool = False) -> StagedRoot:
    """A staged tree as stage_root leaves it: files, links and FIFOs on the host, devices
    only as entries, every owner and time only in the entries (*backwards*: the host
    files made in another order, so they get other inode numbers and directory order)."""
    d = directory
    subs = ["usr/bin", "srv", "dev", "run", "var/log"]
    steps = [
        lambda: (d / "usr/bin/su").write_bytes(b"#!/bin/sh\nexec id\n"),
        lambda: ((d / "srv/data").write_bytes(b"data\n" * 1000), os.link(d / "srv/data", d / "srv/data.again")),
        lambda: os.symlink("su", d / "usr/bin/sh2"),
        lambda: os.mkfifo(d / "run/initctl"),
    ]
    for sub in reversed(subs) if backwards else subs:
        (d / sub).mkdir(parents=True, exist_ok=True)
    for step in reversed(steps) if backwards else steps:
        step()
    staged = StagedRoot(d)
    for e in [
        ImageEntry("/", "dir", 0o755, mtime=EPOCH),
        ImageEntry("/dev", "dir", 0o755, mtime=EPOCH),
        ImageEntry("/dev/null", "char", 0o666, mtime=EPOCH, rdev=os.makedev(1, 3)),
        ImageEntry("/dev/nvme0n1", "block", 0o660, gid=6, mtime=EPOCH, rdev=os.makedev(259, 300)),
        ImageEntry("/run", "dir", 0o755, mtime=EPOCH),
        ImageEntry("/run/initctl", "fifo", 0o600, mtime=EPOCH),
        ImageEntry("/srv", "dir", 0o755, mtime=EPOCH),
        ImageEntry("/srv/data", "file", 0o640, uid=1000, gid=100, mtime=EPOCH),
        ImageEntry("/srv/data.again", "file", 0o640, uid=1000, gid=100, mtime=EPOCH),
        ImageEntry("/usr", "dir", 0o755, mtime=EPOCH),
        ImageEntry("/usr/bin", "dir", 0o755, mtime=EPOCH),
        ImageEntry("/usr/bin/sh2", "symlink", 0o777, mtime=EPOCH),
        ImageEntry("/usr/bin/su", "file", 0o4755, mtime=SETUID_MTIME),
        ImageEntry("/var", "dir", 0o755, mtime=EPOCH),
        ImageEntry("/var/log", "dir", 0o2775, gid=4, mtime=LOG_MTIME),
    ]:
        staged.add(e)
    return staged


def build(tmp: Path, size: int = 16 * MIB, uuid: str = UUID, epoch: int = EPOCH) -> Path:
    staged = small_tree(tmp / "stage")
    image = tmp / "root.ext4"
    ext4.make_ext4(staged, image, size, uuid=uuid, label="root", source_date_epoch=epoch)
    return image


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ the debugfs script


def test_the_fixup_script_line_by_line(tmp_path):
    def block(path, mode, uid=0, gid=0, mtime=EPOCH):
        return [f'sif "{path}" mode {mode}', f'sif "{path}" uid {uid}', f'sif "{path}" gid {gid}',
                *(f'sif "{path}" {t} @{mtime}' for t in ("mtime", "atime", "ctime", "crtime"))]

    script = ext4.fixup_script(small_tree(tmp_path).entries)
    expected = [
        *block("/", "040755"),
        *block("/dev", "040755"),
        'cd "/dev"', 'mknod "null" c 1 3', "cd /", *block("/dev/null", "020666"),
        'cd "/dev"', 'mknod "nvme0n1" b 259 300', "cd /", *block("/dev/nvme0n1", "060660", gid=6),
        *block("/run", "040755"),
        *block("/run/initctl", "010600"),
        *block("/srv", "040755"),
        *block("/srv/data", "0100640", 1000, 100),
        *block("/srv/data.again", "0100640", 1000, 100),
        *block("/usr", "040755"),
        *block("/usr/bin", "040755"),
        *block("/usr/bin/sh2", "0120777"),
        *block("/usr/bin/su", "0104755", mtime=SETUID_MTIME),
        *block("/var", "040755"),
        *block("/var/log", "042775", gid=4, mtime=LOG_MTIME),
    ]
    assert script == "\n".join(expected) + "\n"


def test_the_script_is_in_path_order_whatever_the_entry_order(tmp_path):
    entries = small_tree(tmp_path).entries
    shuffled = dict(random.Random(7).sample(sorted(entries.items()), len(entries)))
    assert ext4.fixup_script(shuffled) == ext4.fixup_script(entries)


@pytest.mark.parametrize("name", ['/etc/a"b', "/etc/a\nb"])
def test_a_name_debugfs_cannot_take_is_refused(name):
    with pytest.raises(AppbuildError, match="cannot write path .* into the image"):
        ext4.fixup_script({name: ImageEntry(name, "file", 0o644)})


def test_names_with_spaces_quotes_and_backslashes_get_their_modes(tmp_path):
    names = ["/opt/a b/c d", "/opt/it's", "/opt/x\\y", "/opt/#not a comment", "/opt/ünïcode"]
    staged = StagedRoot(tmp_path / "stage")
    staged.add(ImageEntry("/", "dir", 0o755))
    staged.add(ImageEntry("/opt", "dir", 0o755))
    staged.add(ImageEntry("/opt/a b", "dir", 0o700))
    (tmp_path / "stage/opt/a b").mkdir(parents=True)
    for i, name in enumerate(names):
        (tmp_path / "stage" / name.lstrip("/")).write_text(name)
        staged.add(ImageEntry(name, "file", 0o600 + i, uid=10 + i))
    staged.add(ImageEntry("/opt/a b/tty 0", "char", 0o620, gid=5, rdev=os.makedev(4, 0)))
    image = tmp_path / "root.ext4"
    ext4.make_ext4(staged, image, 8 * MIB, uuid=UUID, label="root", source_date_epoch=EPOCH)
    for i, name in enumerate(names):
        inode = debugfs_stat(image, name)
        assert (inode.mode, inode.uid) == (0o600 + i, 10 + i), name
    tty = debugfs_stat(image, "/opt/a b/tty 0")
    assert (tty.type, tty.mode, tty.gid, tty.device) == ("character special", 0o620, 5, (4, 0))
    assert debugfs_stat(image, "/opt/a b").mode == 0o700
    # the fixup names inodes by number (no path lookups): every such name is found
    inodes = ext4.inode_numbers(image, staged.entries, dict(os.environ))
    assert set(inodes) == {e.path for e in staged.entries.values()} | {"/lost+found"}  # the device too
    for path, number in inodes.items():
        shown = run("debugfs", "-R", f"stat <{number}>", image).stdout
        assert f"Inode: {number} " in shown, path
    assert len(set(inodes.values())) == len(inodes)


# ------------------------------------------------------------------ the file system


def test_owners_modes_times_and_devices_in_the_image(tmp_path):
    image = build(tmp_path)
    run("e2fsck", "-fn", image)

    def check(path, kind, mode, uid=0, gid=0, mtime=EPOCH):
        inode = debugfs_stat(image, path)
        assert (inode.type, inode.mode, inode.uid, inode.gid) == (kind, mode, uid, gid), path
        assert inode.times == {t: (mtime, 0) for t in ("ctime", "atime", "mtime", "crtime")}, path
        return inode

    check("/", "directory", 0o755)
    su = check("/usr/bin/su", "regular", 0o4755, mtime=SETUID_MTIME)
    assert su.links == 1
    data = check("/srv/data", "regular", 0o640, 1000, 100)
    again = check("/srv/data.again", "regular", 0o640, 1000, 100)
    assert data.ino == again.ino and data.links == 2  # a hard link stays one inode
    assert check("/usr/bin/sh2", "symlink", 0o777).link == "su"
    assert check("/dev/null", "character special", 0o666).device == (1, 3)
    assert check("/dev/nvme0n1", "block special", 0o660, gid=6).device == (259, 300)
    check("/run/initctl", "FIFO", 0o600)
    check("/var/log", "directory", 0o2775, gid=4, mtime=LOG_MTIME)
    assert run("debugfs", "-R", "cat /srv/data", image).stdout == "data\n" * 1000


def test_uuid_hash_seed_label_and_superblock_times_come_from_the_inputs(tmp_path):
    image = build(tmp_path, epoch=EPOCH)
    head = run("dumpe2fs", "-h", image).stdout
    fields = dict(re.findall(r"^([^:\n]+):\s+(.*)$", head, re.M))
    assert fields["Filesystem UUID"] == UUID and fields["Directory Hash Seed"] == UUID
    assert fields["Filesystem volume name"] == "root"
    when = "Tue Nov 14 22:13:20 2023"  # EPOCH in UTC (TOOL_ENV sets TZ=UTC)
    assert (fields["Filesystem created"], fields["Last write time"], fields["Last checked"]) == (when, when, when)
    assert fields["Block size"] == "4096" and fields["Inode size"] == "256"
    assert {"has_journal", "extent", "dir_index"} <= set(fields["Filesystem features"].split())


def test_the_same_inputs_give_the_same_bytes(tmp_path):
    """Two stagings made in different orders (the second on tmpfs, when there is one, where
    a directory lists its names newest first), with different host times on every file and
    directory: the same image. Another UUID or epoch: another image."""

    def stage(directory: Path, backwards: bool) -> StagedRoot:
        staged = small_tree(directory, backwards=backwards)
        (directory / "srv/many").mkdir()
        staged.add(ImageEntry("/srv/many", "dir", 0o755, mtime=EPOCH))
        for n in sorted(range(40), reverse=backwards):
            (directory / f"srv/many/f{n:02d}").write_text(str(n))
            staged.add(ImageEntry(f"/srv/many/f{n:02d}", "file", 0o644, mtime=EPOCH))
        return staged

    first_staged = stage(tmp_path / "a", False)
    first = tmp_path / "a.ext4"
    ext4.make_ext4(first_staged, first, 16 * MIB, uuid=UUID, label="root", source_date_epoch=EPOCH)
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path) as other:
        staged = stage(Path(other) / "stage", True)
        for path in Path(other).rglob("*"):
            if not path.is_symlink():
                ns = random.Random(str(path)).randrange(10**18)
                os.utime(path, ns=(ns, ns))
        if run("stat", "-f", "-c", "%T", other).stdout.strip() == "tmpfs":
            assert os.listdir(Path(other) / "stage/srv/many") != os.listdir(tmp_path / "a/srv/many")
        second = tmp_path / "b.ext4"
        ext4.make_ext4(staged, second, 16 * MIB, uuid=UUID, label="root", source_date_epoch=EPOCH)
    assert sha256(first) == sha256(second)
    other_uuid = build(tmp_path / "c", uuid="0e5b1f3c-2a4d-4e6f-8a9b-0c1d2e3f4a5b")
    other_epoch = build(tmp_path / "d", epoch=EPOCH + 1)
    assert len({sha256(first), sha256(other_uuid), sha256(other_epoch)}) == 3


def test_a_path_debugfs_cannot_find_is_an_error_naming_it(tmp_path):
    staged = small_tree(tmp_path / "stage")
    staged.add(ImageEntry("/etc/missing", "file", 0o644))
    with pytest.raises(AppbuildError, match=r"(?s)debugfs could not apply owners and modes:.*/etc/missing"):
        ext4.make_ext4(staged, tmp_path / "root.ext4", 16 * MIB, uuid=UUID, label="root", source_date_epoch=EPOCH)


def test_a_file_system_too_small_for_the_tree_is_a_clear_error(tmp_path):
    staged = small_tree(tmp_path / "stage")
    (tmp_path / "stage/srv/big").write_bytes(os.urandom(6 * MIB))
    staged.add(ImageEntry("/srv/big", "file", 0o644))
    with pytest.raises(AppbuildError, match="the root file system of 8 MiB is too small for the closure"):
        ext4.make_ext4(staged, tmp_path / "root.ext4", 8 * MIB, uuid=UUID, label="root", source_date_epoch=EPOCH)


def test_needed_bytes_counts_whole_blocks_of_files_and_a_block_per_directory(tmp_path):
    staged = small_tree(tmp_path)
    # su (18 bytes) and the two names of data (5000 bytes) take a 4 KiB block or two each; 8 directories
    assert ext4.needed_bytes(staged) == (1 + 2 + 2) * 4096 + 8 * 4096


@pytest.mark.parametrize("mib", [4, 8, 64, 512, 1536, 4096])
def test_journal_bytes_is_the_journal_mke2fs_makes(tmp_path, mib):
    image = tmp_path / "j.img"
    with open(image, "wb") as f:
        f.truncate(mib * MIB)
    run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-i", "16384", "-I", "256", "-E", "lazy_itable_init=1", image,
        env={**os.environ, "E2FSPROGS_FAKE_TIME": str(EPOCH)})
    m = re.search(r"Total journal size:\s+(\d+)([kMG])", run("dumpe2fs", "-h", image).stdout)
    made = int(m.group(1)) << {"k": 10, "M": 20, "G": 30}[m.group(2)] if m else 0
    assert ext4.journal_bytes(mib * MIB) == made


# ------------------------------------------------------------------ without root


UNPRIVILEGED = textwrap.dedent("""
    import sys
    from pathlib import Path
    from appbuilder.assemble import ext4
    from appbuilder.assemble.accounts import Accounts
    from appbuilder.assemble.rootfs import stage_root
    from appbuilder.repository.store import ContentStore
    from appbuilder.repository.trove import FileEntry, Trove
    from appbuilder.repository.versions import Flavor, Version

    EPOCH, UUID = int(sys.argv[2]), sys.argv[3]

    def trove(name, *files):
        return Trove(name, Version.parse("cernvm@cvm:2/1.0-1-1"), Flavor("x86_64"), files=list(files))

    work = Path(sys.argv[1])
    store = ContentStore(work / "store")
    sha = store.put_bytes(b"#!/bin/sh\\n")
    t = trove("sudo:runtime", FileEntry("/usr/bin/sudo", "file", 0o4111, size=10, sha256=sha),
              FileEntry("/etc/gshadow", "file", 0o000, size=10, sha256=sha))
    staged = stage_root(store, [t], work / "root", accounts=Accounts([], {"root"}, {"root"}), source_date_epoch=EPOCH)
    ext4.make_ext4(staged, work / "root.ext4", 8 << 20, uuid=UUID, label="root", source_date_epoch=EPOCH)
    print("built")
""")


def test_an_unprivileged_user_builds_a_root_with_files_its_owner_cannot_read(as_user):
    """The build runs without root: staging and mke2fs -d as a plain user, with modes such as
    sudo's 04111 (RPM) or 0000 that no plain user can read on the host."""
    work = as_user.home("appbuild-ext4-")
    try:
        argv = ["/usr/bin/python3", "-c", f"import sys; sys.path.insert(0, {str(as_user.runtime)!r})\n" + UNPRIVILEGED,
                str(work), str(EPOCH), UUID]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        if as_user.user:
            argv = ["runuser", "-u", as_user.user, "--", *argv]
        proc = subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "built" in proc.stdout, proc.stderr[-2000:]
        image = work / "root.ext4"
        assert debugfs_stat(image, "/usr/bin/sudo").mode == 0o4111
        assert debugfs_stat(image, "/etc/gshadow").mode == 0
    finally:
        subprocess.run(["rm", "-rf", str(work)])
