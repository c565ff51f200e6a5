"""Staging the root file system (appbuilder.assemble.rootfs): members' files written into a
directory, what the host cannot hold (owners, devices, times) kept as entries, /boot set
aside, generated files last."""

from __future__ import annotations

import os
import stat
import time

import pytest

from appbuilder.assemble.accounts import Accounts
from appbuilder.assemble.rootfs import GeneratedFile, owners_and_groups, stage_root
from appbuilder.core.errors import AppbuildError
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry
from tests.assemble.helpers import EPOCH, trove

OLD, FUTURE = EPOCH - 86400, EPOCH + 86400


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "store")


def put(store, data: bytes, path: str, mode: int = 0o644, **kw) -> FileEntry:
    return FileEntry(path, "file", mode, size=len(data), sha256=store.put_bytes(data), **kw)


def members(store):
    return [
        trove("util:runtime",
              put(store, b"#!/bin/sh\nexec id\n", "/usr/bin/su", 0o4755, mtime=OLD),
              FileEntry("/usr/bin/su-again", "hardlink", 0o4755, target="/usr/bin/su"),
              FileEntry("/usr/bin/sh2", "symlink", 0o777, target="su"),
              put(store, b"log\n", "/var/log/util.log", 0o640, owner="daemon", group="adm", mtime=FUTURE),
              FileEntry("/var/log", "dir", 0o2775, group="adm", mtime=OLD)),
        trove("dev:runtime",
              FileEntry("/dev/null", "char", 0o666, rdev=os.makedev(1, 3)),
              FileEntry("/dev/sda", "block", 0o660, group="disk", rdev=os.makedev(8, 0)),
              FileEntry("/run/initctl", "fifo", 0o600)),
        trove("kernel:runtime",
              put(store, b"bzImage", "/boot/vmlinuz-6.1"),
              put(store, b"CONFIG_X=y\n", "/boot/config-6.1"),
              FileEntry("/boot/vmlinuz", "symlink", 0o777, target="vmlinuz-6.1"),
              put(store, b"ko", "/lib/modules/6.1/kernel/fs/fuse.ko")),
    ]


def accounts_for(troves):
    owners, groups = owners_and_groups(troves)
    return Accounts([], owners, groups)


def test_members_are_staged_on_the_host_and_as_entries(tmp_path, store):
    troves = members(store)
    accounts = accounts_for(troves)
    staged = stage_root(store, troves, tmp_path / "root", accounts=accounts, source_date_epoch=EPOCH)
    root = tmp_path / "root"
    assert (root / "usr/bin/su").read_bytes() == b"#!/bin/sh\nexec id\n"
    assert os.stat(root / "usr/bin/su").st_ino == os.stat(root / "usr/bin/su-again").st_ino
    assert os.readlink(root / "usr/bin/sh2") == "su"
    assert stat.S_ISFIFO(os.lstat(root / "run/initctl").st_mode)
    assert not os.path.lexists(root / "dev/null") and not os.path.lexists(root / "dev/sda")  # only inside the image
    assert (root / "dev").is_dir()

    e = staged.entries
    assert (e["/usr/bin/su"].type, e["/usr/bin/su"].mode, e["/usr/bin/su"].mtime) == ("file", 0o4755, OLD)
    assert e["/usr/bin/su-again"].type == "file"  # a hard link is the same file
    assert (e["/usr/bin/sh2"].type, e["/usr/bin/sh2"].mode) == ("symlink", 0o777)
    log = e["/var/log/util.log"]
    assert (log.uid, log.gid) == (accounts.uid("daemon"), accounts.gid("adm")) and log.uid >= 100
    assert (e["/dev/null"].type, e["/dev/null"].rdev) == ("char", os.makedev(1, 3))
    assert (e["/dev/sda"].type, e["/dev/sda"].gid, e["/dev/sda"].rdev) == ("block", accounts.gid("disk"), os.makedev(8, 0))
    assert (e["/var/log"].type, e["/var/log"].mode, e["/var/log"].gid) == ("dir", 0o2775, accounts.gid("adm"))
    for parent in ("/", "/usr", "/usr/bin", "/var", "/dev", "/run", "/lib/modules/6.1/kernel/fs"):
        assert (e[parent].type, e[parent].mode, e[parent].uid, e[parent].mtime) == ("dir", 0o755, 0, EPOCH)
    assert staged.installed_size == len(b"#!/bin/sh\nexec id\n") + len(b"log\n") + len(b"ko")


def test_times_are_clamped_to_source_date_epoch(tmp_path, store):
    staged = stage_root(store, members(store), tmp_path / "root", accounts=accounts_for(members(store)),
                        source_date_epoch=EPOCH)
    e = staged.entries
    assert e["/usr/bin/su"].mtime == OLD  # older stays
    assert e["/var/log/util.log"].mtime == EPOCH  # newer is clamped
    assert e["/usr/bin/sh2"].mtime == EPOCH  # none given: the epoch
    assert max(x.mtime for x in e.values()) == EPOCH


def test_boot_files_go_to_the_boot_partition_and_modules_can_be_skipped(tmp_path, store):
    troves = members(store)
    staged = stage_root(store, troves, tmp_path / "root", accounts=accounts_for(troves), source_date_epoch=EPOCH,
                        skip={"/lib/modules/6.1/kernel/fs/fuse.ko"})
    assert sorted(staged.boot_files) == ["/boot/config-6.1", "/boot/vmlinuz-6.1"]  # files only, not the link
    assert not any(p.startswith("/boot/") for p in staged.entries)
    assert not (tmp_path / "root" / "boot").exists()
    assert "/lib/modules/6.1/kernel/fs/fuse.ko" not in staged.entries
    assert not (tmp_path / "root/lib/modules/6.1/kernel/fs/fuse.ko").exists()
    assert staged.installed_size == len(b"#!/bin/sh\nexec id\n") + len(b"log\n")


def test_generated_files_come_last_and_win(tmp_path, store):
    """A member's /etc/os-release symlink and /etc/passwd give way to the generated files;
    the symlink's target is left as it was."""
    base = trove("base-files:runtime",
                 put(store, b"NAME=Debian\n", "/usr/lib/os-release"),
                 FileEntry("/etc/os-release", "symlink", 0o777, target="../usr/lib/os-release"),
                 put(store, b"someone:x:5:5::/:/bin/false\n", "/etc/passwd", 0o600, owner="someone"))
    generated = [GeneratedFile("/etc/os-release", b'NAME="group-test"\n'),
                 GeneratedFile("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
                 GeneratedFile("/etc/shadow", b"root:!:19000:0:99999:7:::\n", 0o600),
                 GeneratedFile("/var/lib/appbuild/manifest.json", b"{}\n")]
    staged = stage_root(store, [base], tmp_path / "root", accounts=accounts_for([base]), source_date_epoch=EPOCH,
                        generated=generated)
    root = tmp_path / "root"
    assert not (root / "etc/os-release").is_symlink()
    assert (root / "etc/os-release").read_bytes() == b'NAME="group-test"\n'
    assert (root / "usr/lib/os-release").read_bytes() == b"NAME=Debian\n"
    assert (root / "etc/passwd").read_bytes() == b"root:x:0:0:root:/root:/bin/sh\n"
    e = staged.entries
    assert (e["/etc/os-release"].type, e["/etc/os-release"].mode, e["/etc/os-release"].uid) == ("file", 0o644, 0)
    assert (e["/etc/passwd"].mode, e["/etc/passwd"].uid, e["/etc/shadow"].mode) == (0o644, 0, 0o600)
    assert e["/var/lib/appbuild"].type == "dir" and e["/var/lib/appbuild/manifest.json"].mtime == EPOCH


def test_owners_and_groups_of_a_closure(store):
    assert owners_and_groups(members(store)) == ({"root", "daemon"}, {"root", "adm", "disk"})


def test_a_path_leading_out_through_a_symlink_is_refused(tmp_path, store):
    outside = tmp_path / "outside"
    outside.mkdir()
    t = trove("evil:runtime", FileEntry("/evil", "symlink", 0o777, target=str(outside)),
              put(store, b"planted\n", "/evil/planted"))
    with pytest.raises(AppbuildError, match="/evil/planted would be staged outside the image root"):
        stage_root(store, [t], tmp_path / "root", accounts=accounts_for([t]), source_date_epoch=EPOCH)
    assert list(outside.iterdir()) == []


def test_dot_dot_in_a_path_is_refused(tmp_path, store):
    t = trove("evil:runtime", put(store, b"x", "/usr/../../x"))
    with pytest.raises(AppbuildError, match=r"refusing to stage '/usr/\.\."):  # its parent /usr/.. already
        stage_root(store, [t], tmp_path / "root", accounts=accounts_for([t]), source_date_epoch=EPOCH)
    assert not (tmp_path / "x").exists()


def test_a_hard_link_to_a_file_not_in_the_image_is_refused(tmp_path, store):
    t = trove("x:runtime", FileEntry("/bin/a", "hardlink", 0o755, target="/bin/missing"))
    with pytest.raises(AppbuildError, match="/bin/a is a hard link to /bin/missing, which is not in the image"):
        stage_root(store, [t], tmp_path / "root", accounts=accounts_for([t]), source_date_epoch=EPOCH)


def test_a_directory_in_one_member_and_a_file_in_a_later_one_is_refused(tmp_path, store):
    troves = [trove("a:runtime", FileEntry("/opt/x", "dir", 0o755)), trove("b:runtime", put(store, b"x", "/opt/x"))]
    with pytest.raises(AppbuildError, match="/opt/x is a directory in one member and a file in another"):
        stage_root(store, troves, tmp_path / "root", accounts=accounts_for(troves), source_date_epoch=EPOCH)


@pytest.mark.parametrize("second", [FileEntry("/opt/x", "dir", 0o755), FileEntry("/opt/x/y", "dir", 0o755)],
                         ids=["the-same-path", "a-path-beneath"])
def test_a_file_in_one_member_and_a_directory_in_a_later_one_is_refused(tmp_path, store, second):
    troves = [trove("a:runtime", put(store, b"x", "/opt/x")), trove("b:runtime", second)]
    with pytest.raises(AppbuildError, match="/opt/x"):
        stage_root(store, troves, tmp_path / "root", accounts=accounts_for(troves), source_date_epoch=EPOCH)


@pytest.mark.parametrize("kind", ["a-directory-at-a-symlinks-path", "a-hard-link-to-a-symlink"])
def test_staging_never_changes_modes_outside_the_root(tmp_path, store, kind):
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    (outside / "secret").write_text("the build host's\n")
    (outside / "secret").chmod(0o600)
    if kind == "a-directory-at-a-symlinks-path":
        troves = [trove("a:runtime", FileEntry("/x", "symlink", 0o777, target=str(outside))),
                  trove("b:runtime", FileEntry("/x", "dir", 0o777))]
    else:
        troves = [trove("a:runtime", FileEntry("/a", "symlink", 0o777, target=str(outside / "secret")),
                        FileEntry("/b", "hardlink", 0o4777, target="/a"))]
    try:
        stage_root(store, troves, tmp_path / "root", accounts=accounts_for(troves), source_date_epoch=EPOCH)
    except AppbuildError:
        pass  # refusing is fine; changing the host is not
    assert stat.S_IMODE(outside.stat().st_mode) == 0o700
    assert stat.S_IMODE((outside / "secret").stat().st_mode) == 0o600


def test_staging_knows_what_it_wrote_until_the_file_changes(tmp_path, store):
    """Contents are written by several threads; each file's digest stays known (the package
    scripts' cache key then reads nothing again) only while the file is as it was written."""
    import hashlib

    many = [put(store, f"content {i}\n".encode() * (i + 1), f"/usr/share/many/{i:03}") for i in range(200)]
    troves = [*members(store), trove("many:runtime", *many),
              trove("later:runtime", put(store, b"the later member's\n", "/usr/share/many/007"))]
    staged = stage_root(store, troves, tmp_path / "root", accounts=accounts_for(troves), source_date_epoch=EPOCH,
                        generated=[GeneratedFile("/etc/hostname", b"appliance\n")])
    root = tmp_path / "root"
    assert (root / "usr/share/many/007").read_bytes() == b"the later member's\n"  # the later one won
    assert os.stat(root / "usr/bin/su").st_ino == os.stat(root / "usr/bin/su-again").st_ino
    files = [p for p, e in staged.entries.items() if e.type == "file" and (root / p.lstrip("/")).is_file()]
    assert len(files) > 200
    for path in files:
        host = root / path.lstrip("/")
        digest = staged.known_digest(path, host)
        if digest is not None:
            assert digest == hashlib.sha256(host.read_bytes()).hexdigest(), path
    assert staged.known_digest("/etc/hostname", root / "etc/hostname") == hashlib.sha256(b"appliance\n").hexdigest()
    time.sleep(0.02)  # what the scripts' runner does before untrusted code runs: the clock moves on
    host = root / "usr/share/many/100"
    host.write_bytes(host.read_bytes())  # the same bytes, written again: no longer vouched for
    assert staged.known_digest("/usr/share/many/100", host) is None
    host = root / "usr/share/many/101"
    mtime = host.stat().st_mtime_ns
    with open(host, "r+b") as f:
        f.write(b"X")
    os.utime(host, ns=(mtime, mtime))  # a writer hiding its change behind the old modification time
    assert staged.known_digest("/usr/share/many/101", host) is None
