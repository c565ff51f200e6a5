"""Writing troves into a directory: every file type, modes, and no way out of it."""

from __future__ import annotations

import os
import stat

import pytest

from appbuilder.core.errors import RepositoryError
from appbuilder.repository.checkout import materialize
from appbuilder.repository.store import ContentStore, DamagedObject
from appbuilder.repository.trove import FileEntry, Trove
from appbuilder.repository.versions import Flavor, Version

VERSION = Version.parse("cernvm@cvm:2/1.0-1-1")


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "store")


def trove(name: str, files: list[FileEntry]) -> Trove:
    return Trove(name, VERSION, Flavor("x86_64"), files=files)


def regular(store: ContentStore, path: str, data: bytes, mode: int = 0o644) -> FileEntry:
    return FileEntry(path, "file", mode, size=len(data), sha256=store.put_bytes(data))


def test_materialize_writes_every_kind_of_entry_with_its_mode(store, tmp_path):
    dest = tmp_path / "root"
    exe = b"#!/bin/sh\necho hi\n"
    files = [
        regular(store, "/usr/bin/tool", exe, 0o755),
        regular(store, "/etc/tool.conf", b"key=value\n", 0o600),
        regular(store, "/usr/bin/setuid-tool", b"x", 0o4755),
        FileEntry("/usr/bin/tool-alias", "symlink", 0o777, target="tool"),
        FileEntry("/usr/bin/tool-hard", "hardlink", 0o755, sha256=store.put_bytes(exe), target="/usr/bin/tool"),
        FileEntry("/var/empty", "dir", 0o700),
        FileEntry("/var/spool/queue", "dir", 0o1777),
        FileEntry("/run/fifo", "fifo", 0o620),
        FileEntry("/dev/null", "char", 0o666, rdev=os.makedev(1, 3)),  # skipped: unprivileged
    ]
    count = materialize(store, [trove("tool:runtime", files)], dest)
    assert count == len(files) - 1

    def mode(p):
        return stat.S_IMODE(os.lstat(dest / p).st_mode)

    assert (dest / "usr/bin/tool").read_bytes() == exe and mode("usr/bin/tool") == 0o755
    assert (dest / "etc/tool.conf").read_text() == "key=value\n" and mode("etc/tool.conf") == 0o600
    assert mode("usr/bin/setuid-tool") == 0o4755
    assert os.readlink(dest / "usr/bin/tool-alias") == "tool"
    assert (dest / "usr/bin/tool-hard").stat().st_ino == (dest / "usr/bin/tool").stat().st_ino
    assert (dest / "var/empty").is_dir() and mode("var/empty") == 0o700
    assert mode("var/spool/queue") == 0o1777
    assert stat.S_ISFIFO(os.lstat(dest / "run/fifo").st_mode) and mode("run/fifo") == 0o620
    assert not (dest / "dev/null").exists()


def test_hardlink_whose_target_is_elsewhere_gets_the_content(store, tmp_path):
    data = b"shared content"
    link = FileEntry("/usr/bin/b", "hardlink", 0o750, sha256=store.put_bytes(data), target="/usr/bin/a")
    materialize(store, [trove("x:runtime", [link])], tmp_path / "root")  # /usr/bin/a is in another trove
    out = tmp_path / "root/usr/bin/b"
    assert out.read_bytes() == data and stat.S_IMODE(out.stat().st_mode) == 0o750


def test_several_troves_and_replacing_existing_entries(store, tmp_path):
    dest = tmp_path / "root"
    materialize(store, [trove("a:lib", [regular(store, "/usr/lib64/libx.so.1", b"old")]),
                        trove("a:devel", [FileEntry("/usr/lib64/libx.so", "symlink", 0o777, target="libx.so.1")])],
                dest)
    # materializing again over the same tree replaces files and links
    materialize(store, [trove("a:lib", [regular(store, "/usr/lib64/libx.so.1", b"new")]),
                        trove("a:devel", [FileEntry("/usr/lib64/libx.so", "symlink", 0o777, target="libx.so.1.0")])],
                dest)
    assert (dest / "usr/lib64/libx.so.1").read_bytes() == b"new"
    assert os.readlink(dest / "usr/lib64/libx.so") == "libx.so.1.0"


def test_symlinked_directories_inside_the_destination_are_followed(store, tmp_path):
    dest = tmp_path / "root"
    files = [
        FileEntry("/lib", "symlink", 0o777, target="usr/lib"),
        FileEntry("/usr/lib", "dir", 0o755),
        regular(store, "/lib/libfoo.so.1", b"foo"),
    ]
    materialize(store, [trove("fs:runtime", files)], dest)
    assert (dest / "usr/lib/libfoo.so.1").read_bytes() == b"foo"


@pytest.mark.parametrize("link_target", ["/outside", "../../outside", "usr/../../outside"])
def test_refuses_a_path_that_a_symlink_would_lead_outside(store, tmp_path, link_target):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "a" / "root"
    if link_target == "/outside":
        link_target = str(outside)
    files = [
        FileEntry("/data", "symlink", 0o777, target=link_target),
        regular(store, "/data/planted", b"escaped"),
    ]
    with pytest.raises(RepositoryError, match="/data/planted would be written outside"):
        materialize(store, [trove("evil:runtime", files)], dest)
    assert list(outside.iterdir()) == []


def test_refuses_a_path_through_a_chain_of_symlinks(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "root"
    files = [  # each link alone stays inside; together they lead out
        FileEntry("/z", "symlink", 0o777, target="b"),
        FileEntry("/b", "symlink", 0o777, target="a/.."),
        FileEntry("/a", "symlink", 0o777, target="../outside/sub"),
        regular(store, "/z/x/planted", b"escaped"),
    ]
    with pytest.raises(RepositoryError, match="/z/x/planted would be written outside"):
        materialize(store, [trove("evil:runtime", files)], dest)
    assert list(outside.rglob("*")) == []


def test_refuses_dot_dot(store, tmp_path):
    with pytest.raises(RepositoryError, match="'..'"):
        materialize(store, [trove("evil:runtime", [regular(store, "/usr/../../x", b"x")])], tmp_path / "root")
    assert not (tmp_path / "x").exists()


def test_a_file_replaces_a_symlink_instead_of_writing_through_it(store, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    dest = tmp_path / "root"
    materialize(store, [trove("a:runtime", [FileEntry("/etc/passwd", "symlink", 0o777, target=str(victim))]),
                        trove("b:runtime", [regular(store, "/etc/passwd", b"root:x:0:0\n")])], dest)
    assert victim.read_text() == "untouched"
    assert not (dest / "etc/passwd").is_symlink() and (dest / "etc/passwd").read_bytes() == b"root:x:0:0\n"


def test_a_directory_entry_does_not_chmod_through_a_symlink(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    os.chmod(outside, 0o755)
    dest = tmp_path / "root"
    files = [FileEntry("/data", "symlink", 0o777, target=str(outside)), FileEntry("/data", "dir", 0o777)]
    with pytest.raises(RepositoryError, match="/data would be written outside"):
        materialize(store, [trove("evil:runtime", files)], dest)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755


def test_a_hard_link_never_links_to_a_file_outside(store, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("host file")
    dest = tmp_path / "root"
    data = b"packaged content"
    files = [
        FileEntry("/a", "symlink", 0o777, target=str(victim)),
        FileEntry("/b", "hardlink", 0o644, sha256=store.put_bytes(data), target="/a"),
    ]
    materialize(store, [trove("evil:runtime", files)], dest)
    assert not (dest / "b").is_symlink()  # a hard link entry is a regular file
    assert (dest / "b").stat().st_ino != victim.stat().st_ino
    assert (dest / "b").read_bytes() == data
    assert victim.read_text() == "host file" and victim.stat().st_nlink == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_damaged_object_stops_the_checkout_and_leaves_no_damaged_file(store, tmp_path, damage):
    dest = tmp_path / "root"
    good = regular(store, "/usr/bin/good", b"fine\n")
    data = bytes(range(256)) * 4000  # compressible: a flipped byte breaks zstd's own checks too
    bad = regular(store, "/usr/lib/libbad.so.1", data)
    path = store.path_of(bad.sha256)
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0x10
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw = bytearray(b"garbage, not zstd" * 10)
    path.write_bytes(bytes(raw))
    with pytest.raises(DamagedObject, match=f"stored object {bad.sha256} is damaged") as exc:
        materialize(store, [trove("a:runtime", [good, bad])], dest)
    assert str(path) in str(exc.value)
    assert not (dest / "usr/lib/libbad.so.1").exists()
