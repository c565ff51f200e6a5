"""Safe unpacking: hostile members are refused before anything is written; real
tar.gz / tar.xz / tar.zst / zip archives unpack."""

from __future__ import annotations

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard

from appbuilder.cook.archive import check_members, list_archive, unpack
from appbuilder.core.errors import UnsafeArchive


class Runner:
    """Runs the argv for real (as the sandbox would), remembering that it was called."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv, cwd):
        self.calls.append(list(argv))
        subprocess.run(list(argv), cwd=cwd, check=True)


# ----------------------------------------------------------------- building archives in the test


def tar_member(name: str, kind: str = "file", data: bytes = b"", target: str = "", mode: int = 0o644):
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = 1_700_000_000
    if kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, target
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, target
    elif kind == "char":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    elif kind == "block":
        info.type, info.devmajor, info.devminor = tarfile.BLKTYPE, 8, 0
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    else:
        info.size = len(data)
    return info, (io.BytesIO(data) if kind == "file" else None)


def make_tar(path: Path, members: list[tuple], compression: str = "gz") -> Path:
    """members: (name, kind, data or target[, mode]) tuples; compression gz, xz, bz2, zst or ''."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, *rest in members:
            payload = rest[0] if rest else b""
            mode = rest[1] if len(rest) > 1 else 0o644
            if kind in ("symlink", "hardlink"):
                info, fileobj = tar_member(name, kind, target=payload)
            else:
                info, fileobj = tar_member(name, kind, data=payload if isinstance(payload, bytes) else b"", mode=mode)
            tar.addfile(info, fileobj)
    raw = buf.getvalue()
    if compression == "gz":
        import gzip
        raw = gzip.compress(raw)
    elif compression == "xz":
        import lzma
        raw = lzma.compress(raw)
    elif compression == "bz2":
        import bz2
        raw = bz2.compress(raw)
    elif compression == "zst":
        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)
    return path


def make_zip(path: Path, members: list[tuple]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, kind, payload in members:
            info = zipfile.ZipInfo(name, date_time=(2023, 11, 14, 22, 13, 20))
            if kind == "symlink":
                info.external_attr = (0o120777 << 16)
                z.writestr(info, payload)
            elif kind == "dir":
                info.external_attr = (0o40755 << 16) | 0x10
                z.writestr(info, b"")
            else:
                info.external_attr = (0o100644 << 16)
                z.writestr(info, payload)
    return path


GOOD = [
    ("pkg-1.0", "dir"),
    ("pkg-1.0/README", "file", b"read me\n"),
    ("pkg-1.0/src", "dir"),
    ("pkg-1.0/src/main.c", "file", b"int main(void){return 0;}\n"),
    ("pkg-1.0/configure", "file", b"#!/bin/sh\necho configured\n", 0o755),
    ("pkg-1.0/README.link", "symlink", "README"),
    ("pkg-1.0/src/up", "symlink", "../README"),
    ("pkg-1.0/README.hard", "hardlink", "pkg-1.0/README"),
]


def check_good_tree(dest: Path) -> None:
    top = dest / "pkg-1.0"
    assert (top / "README").read_bytes() == b"read me\n"
    assert (top / "src/main.c").read_bytes().startswith(b"int main")
    assert (top / "configure").stat().st_mode & 0o100
    assert (top / "README.link").is_symlink() and (top / "README.link").read_bytes() == b"read me\n"
    assert (top / "src/up").resolve() == (top / "README").resolve()
    assert (top / "README.hard").stat().st_ino == (top / "README").stat().st_ino


@pytest.mark.parametrize("compression, suffix", [("gz", "tar.gz"), ("xz", "tar.xz"), ("zst", "tar.zst"),
                                                 ("bz2", "tar.bz2"), ("", "tar")])
def test_unpack_good_tar_archives(tmp_path, compression, suffix):
    archive = make_tar(tmp_path / f"pkg-1.0.{suffix}", GOOD, compression)
    dest = tmp_path / "src"
    runner = Runner()
    names = unpack(archive, dest, runner)
    assert names == [m[0] for m in GOOD]
    assert len(runner.calls) == 1 and runner.calls[0][0] == "tar" and "--no-same-owner" in runner.calls[0]
    check_good_tree(dest)
    assert sorted(p.name for p in dest.iterdir()) == ["pkg-1.0"]


def test_unpack_good_zip(tmp_path):
    archive = make_zip(tmp_path / "pkg-1.0.zip", [
        ("pkg-1.0/", "dir", b""),
        ("pkg-1.0/README", "file", b"zipped\n"),
        ("pkg-1.0/sub/deep.txt", "file", b"deep\n"),
        ("pkg-1.0/link", "symlink", b"README"),
    ])
    kind, members = list_archive(archive)
    assert kind == "zip"
    assert ("pkg-1.0/link", "symlink", "README") in members and ("pkg-1.0", "dir", None) in members
    dest = tmp_path / "src"
    runner = Runner()
    names = unpack(archive, dest, runner)
    assert runner.calls == []  # zip archives are unpacked by zipfile
    assert "pkg-1.0/sub/deep.txt" in names
    assert (dest / "pkg-1.0/README").read_bytes() == b"zipped\n"
    assert (dest / "pkg-1.0/sub/deep.txt").read_bytes() == b"deep\n"


def test_list_archive_reports_kinds(tmp_path):
    archive = make_tar(tmp_path / "a.tar.zst", [*GOOD, ("pkg-1.0/dev", "char"), ("pkg-1.0/fifo", "fifo")], "zst")
    kind, members = list_archive(archive)
    assert kind == "tar"
    got = {name: (k, t) for name, k, t in members}
    assert got["pkg-1.0/README.link"] == ("symlink", "README")
    assert got["pkg-1.0/README.hard"] == ("hardlink", "pkg-1.0/README")
    assert got["pkg-1.0"] == ("dir", None) and got["pkg-1.0/README"] == ("file", None)
    assert got["pkg-1.0/dev"] == ("device", None)


def test_not_an_archive(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not an archive at all" * 10)
    with pytest.raises(UnsafeArchive, match="junk.tar.gz: not a readable tar or zip archive"):
        unpack(junk, tmp_path / "dest", Runner())
    truncated = tmp_path / "cut.tar.zst"
    truncated.write_bytes(make_tar(tmp_path / "whole.tar.zst", GOOD, "zst").read_bytes()[:40])
    with pytest.raises(UnsafeArchive, match="not a readable"):
        unpack(truncated, tmp_path / "dest", Runner())
    assert not (tmp_path / "dest").exists()


# ----------------------------------------------------------------- hostile members

HOSTILE = {
    "absolute path": ([("/etc/evil", "file", b"x")], "has an absolute path"),
    "dot-dot member": ([("pkg/../../evil", "file", b"x")], "has a '..' component"),
    "leading dot-dot": ([("../evil", "file", b"x")], "has a '..' component"),
    "absolute symlink": ([("pkg", "dir"), ("pkg/etc", "symlink", "/etc")], "symlink to the absolute path '/etc'"),
    "symlink up and out": ([("pkg", "dir"), ("pkg/up", "symlink", "../../outside")], "points outside"),
    "symlink to parent of root": ([("up", "symlink", "..")], "points outside"),
    # each link looks harmless on its own; followed together they leave the directory
    "chain of symlinks": ([("d", "dir"), ("d/l1", "symlink", ".."), ("l2", "symlink", "d/l1/..")], "points outside"),
    "chain through three links": ([("a", "symlink", "b/c"), ("b", "symlink", "."), ("c", "symlink", "d/.."),
                                   ("d", "dir"), ("x", "symlink", "a/.."), ], "points outside"),
    "write through a link": ([("out/evil", "file", b"x"), ("out", "symlink", "..")],
                             "would be written through a symlink that points outside"),
    "symlink loop": ([("a", "symlink", "b"), ("b", "symlink", "a")], "points outside"),
    "hard link up and out": ([("h", "hardlink", "../etc/passwd")], "hard link to '../etc/passwd'"),
    "absolute hard link": ([("h", "hardlink", "/etc/passwd")], "hard link to '/etc/passwd'"),
    "hard link through a link": ([("d", "dir"), ("d/out", "symlink", "../.."), ("h", "hardlink", "d/out/x")],
                                 "points outside"),
    "character device": ([("pkg", "dir"), ("pkg/null", "char")], "is a device node"),
    "block device": ([("pkg/sda", "block")], "is a device node"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_check_members_refuses(case):
    members, message = HOSTILE[case]
    triples = [(m[0], {"char": "device", "block": "device"}.get(m[1], m[1]),
                m[2] if m[1] in ("symlink", "hardlink") else None) for m in members]
    with pytest.raises(UnsafeArchive) as exc:
        check_members("evil.tar", triples)
    assert str(exc.value).startswith("evil.tar: member ")
    if message:
        assert message in str(exc.value)


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_unpack_refuses_hostile_tar_and_writes_nothing(tmp_path, case, compression):
    members, message = HOSTILE[case]
    archive = make_tar(tmp_path / f"evil.tar.{compression}", members, compression)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "build" / "src"
    runner = Runner()
    with pytest.raises(UnsafeArchive, match=f"evil.tar.{compression}: member"):
        unpack(archive, dest, runner)
    assert runner.calls == []
    assert not dest.exists()
    assert list(outside.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == \
        sorted(["outside", f"evil.tar.{compression}"])


@pytest.mark.parametrize("members, message", [
    ([("../evil.txt", "file", b"x")], "'..' component"),
    ([("/abs.txt", "file", b"x")], "absolute path"),
    ([("pkg/", "dir", b""), ("pkg/up", "symlink", b"../../x")], "points outside"),
    ([("pkg/etc", "symlink", b"/etc")], "absolute path"),
])
def test_unpack_refuses_hostile_zip_and_writes_nothing(tmp_path, members, message):
    archive = make_zip(tmp_path / "evil.zip", members)
    dest = tmp_path / "build" / "src"
    with pytest.raises(UnsafeArchive, match=message):
        unpack(archive, dest, Runner())
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip"]


def test_harmless_links_and_dot_members_pass():
    names = check_members("ok.tar", [
        ("./pkg/", "dir", None),
        ("./pkg/a", "file", None),
        ("pkg/self", "symlink", "."),
        ("pkg/sub", "symlink", "self/../a"),
        ("pkg/deep/link", "symlink", "../../pkg/a"),
        ("pkg/h", "hardlink", "./pkg/a"),
        ("pkg/via/x", "hardlink", "pkg/self/a"),
    ])
    assert names == ["pkg", "pkg/a", "pkg/self", "pkg/sub", "pkg/deep/link", "pkg/h", "pkg/via/x"]
