"""The machine's Debian archives (bookworm) read whole as an upstream index: real lists,
checked against InRelease and its signature; merged-/usr lookups; tampering refused."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from appbuilder.core.fileio import sha256_file
from appbuilder.upstream.debindex import R_DEPENDS, DebianIndex
from appbuilder.upstream.gpgv import SignatureError
from appbuilder.upstream.index import IndexVerificationError
from appbuilder.upstream.lookaside import Lookaside
from appbuilder.upstream.relations import AnyOf, Atom, compare, parse_deb

ESSENTIAL_CORE = {"base-files", "base-passwd", "bash", "coreutils", "dash", "dpkg", "init-system-helpers",
                  "libc-bin", "perl-base", "tar", "util-linux"}


def open_index(cache: Path, arch: str = "x86_64", **kw) -> DebianIndex:
    return DebianIndex("debian", cache=cache, arch=arch, priority=10, lookaside=Lookaside(cache / "lookaside"), **kw)


@pytest.fixture(scope="module")
def debian(shared_cache) -> DebianIndex:
    """bookworm amd64 from the session's private apt state (updated here when it has no lists yet)."""
    return open_index(shared_cache)


def lists_copy(shared_cache: Path, target: Path) -> Path:
    """A private copy of the session's apt lists (hard links: tamper only by replacing a file)."""
    src = shared_cache / "apt-bin" / "state" / "lists"
    dst = target / "apt-bin" / "state" / "lists"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "lock":
            os.link(f, dst / f.name)
    return dst


def test_libc6_and_its_relations(debian):
    assert debian.describe().startswith("debian (bookworm/main, bookworm-updates/main")  # security: when not mid-sync
    assert debian.describe().endswith(" amd64+all Packages, Contents)")
    libc = debian.by_name("libc6")
    assert libc and all(p.arch == "amd64" and p.kind == "deb" and p.source == "debian" for p in libc)
    newest = libc[0]
    assert all(compare("deb", newest.version, p.version) >= 0 for p in libc)
    assert newest.version.startswith("2.36-9") and newest.priority == "optional"
    assert newest.origin.endswith("main amd64 Packages") and len(newest.sha256) == 64 and newest.size > 1_000_000
    assert newest.location.startswith("pool/main/g/glibc/libc6_")
    assert any(isinstance(d, Atom) and d.name == "libgcc-s1" for d in newest.depends)
    assert any(isinstance(c, Atom) and c.name == "nscd" and c.op == "<<" for c in newest.conflicts)  # Breaks

    ish = debian.by_name("init-system-helpers")[0]
    assert AnyOf((Atom("deb", "usrmerge"), Atom("deb", "usr-is-merged"))) in ish.depends
    sysv = debian.by_name("systemd-sysv")[0]
    assert [a.name for a in sysv.pre_depends] == ["systemd"]
    assert debian.by_name("no-such-package-here") == []


def test_every_relation_of_the_archive_parses_and_reads_back(debian):
    count = 0
    for record in debian._records:
        text = record[R_DEPENDS]
        if text:
            assert ", ".join(map(str, parse_deb(text))) == re.sub(r"\s+", " ", text.strip())
            count += 1
    assert count > 50_000


def test_virtual_names(debian):
    providers = {p.name: a for p, a in debian.by_virtual("linux-initramfs-tool")}
    assert {"initramfs-tools", "dracut"} <= set(providers)
    merged = {p.name for p, _ in debian.by_virtual("usr-is-merged")}
    assert "usrmerge" in merged


def test_libsystemd_has_two_owners_under_merged_usr(debian):
    """libsystemd0 ships /usr/lib/x86_64-linux-gnu/libsystemd.so.0, elogind's libelogind0
    /lib/x86_64-linux-gnu/libsystemd.so.0: under merged /usr one path with two claims."""
    owners = {p.name for p in debian.by_soname("ELF64", "libsystemd.so.0")}
    assert {"libsystemd0", "libelogind0"} <= owners
    assert {p.name for p in debian.by_file("/lib/x86_64-linux-gnu/libsystemd.so.0")} == owners
    assert {p.name for p in debian.by_file("/usr/lib/x86_64-linux-gnu/libsystemd.so.0")} == owners
    assert {p.name for p in debian.by_soname("ELF64", "libc.so.6")} == {"libc6"}
    assert debian.by_soname("ELF32", "libc.so.6")[0].name == "libc6-i386"  # amd64's /lib32


def test_merged_usr_aliases_for_programs(debian):
    assert {p.name for p in debian.by_file("/bin/sh")} == {"dash"}
    assert {p.name for p in debian.by_file("/usr/bin/sh")} == {"dash"}
    assert {p.name for p in debian.by_file("/usr/bin/perl")} == {"perl-base"}
    assert {p.name for p in debian.by_file("/bin/perl")} == {"perl-base"}
    assert "debconf" in {p.name for p in debian.by_file("/usr/bin/debconf-set-selections")}  # Contents-all
    assert debian.by_file("/usr/bin/no-such-program") == []


def test_essential_set(debian):
    essential = debian.essential()
    names = {p.name for p in essential}
    assert ESSENTIAL_CORE <= names and 20 <= len(names) <= 30
    assert all(p.essential for p in essential)
    for p in essential:  # the newest of each name
        assert all(compare("deb", p.version, q.version) >= 0 for q in debian.by_name(p.name))


def test_i386_index(shared_cache, debian):
    x86 = open_index(shared_cache, "x86")
    libc = x86.by_name("libc6")[0]
    assert libc.arch == "i386" and "i386+all Packages" in x86.describe()
    assert {p.name for p in x86.by_soname("ELF32", "libc.so.6")} >= {"libc6"}
    assert {p.name for p in x86.by_file("/bin/sh")} == {"dash"}


def test_warm_load_uses_the_cache(shared_cache, debian):
    debian.by_file("/usr/bin/sh")  # its Contents read (on a thread): the whole index is cached then
    again = open_index(shared_cache)
    assert again.cache_key == debian.cache_key
    assert (shared_cache / "upstream" / f"{debian.cache_key}.cache").is_file()
    assert (shared_cache / "upstream" / f"{debian.cache_key}.cache").read_bytes()[:1] == b"M"  # plain data: marshal
    assert again.by_name("dash") == debian.by_name("dash")


def test_contents_is_read_at_the_first_question_about_a_file(tmp_path, shared_cache, debian):
    cache_dir = tmp_path / "upstream"
    index = open_index(shared_cache, cache_dir=cache_dir)

    def cached() -> list[str]:
        return sorted(p.read_text() for p in cache_dir.glob("*.of"))
    assert cached() == ["deb-debian-amd64"]  # the Packages lists only: names and relations need no more
    assert index.by_name("dash") and index.by_virtual("awk")
    assert cached() == ["deb-debian-amd64"]
    assert {p.name for p in index.by_file("/usr/bin/sh")} == {"dash"}
    assert "files-debian-amd64" in cached() and any(c.startswith("contents-debian-") for c in cached())
    again = open_index(shared_cache, cache_dir=cache_dir)  # both parts from the cache now
    assert {p.name for p in again.by_soname("ELF64", "libc.so.6")} == {p.name for p in index.by_soname("ELF64", "libc.so.6")}


def test_fetch_downloads_verified_and_caches(tmp_path, debian, shared_cache):
    pkg = debian.by_name("base-passwd")[0]
    path, = debian.fetch([pkg], tmp_path / "debs")
    assert path.parent == tmp_path / "debs" and path.name.startswith("base-passwd_")
    assert sha256_file(path) == pkg.sha256 and path.stat().st_size == pkg.size
    cached, _ = debian.lookaside.lookup(pkg.sha256)
    assert cached is not None
    assert debian.fetch([pkg]) == [cached]  # second time: from the lookaside cache, no download


def test_fetch_each_hands_on_each_file_once_as_it_is_there(tmp_path, debian, shared_cache):
    wanted = [debian.by_name(n)[0] for n in ("hostname", "debianutils", "sed", "hostname")]  # one twice
    fresh = open_index(shared_cache, cache_dir=shared_cache / "upstream")
    fresh.lookaside = Lookaside(tmp_path / "lookaside")  # nothing kept yet: all from one apt-get download
    got = list(fresh.fetch_each(wanted))
    assert sorted(i for i, _ in got) == [0, 1, 2, 3]
    for i, path in got:
        assert sha256_file(path) == wanted[i].sha256 and path.stat().st_size == wanted[i].size
        assert path.is_relative_to(tmp_path / "lookaside")
    assert not list((tmp_path / "lookaside").rglob("apt-download-*"))  # the download's folder is gone
    # apt keeps its binary cache beside the private lists (even where the machine turns it off)
    assert (shared_cache / "apt-bin" / "cache" / "pkgcache.bin").is_file()


def test_tampered_list_is_refused(tmp_path, shared_cache, debian):
    lists = lists_copy(shared_cache, tmp_path / "cache")
    target = next(lists.glob("*bookworm-updates_main_binary-amd64_Packages*"))
    data = subprocess.run(["lz4", "-dc", str(target)], capture_output=True, check=True).stdout
    changed = re.sub(rb"(?m)^Version: (\S+)", rb"Version: 99:\1", data, count=1)
    assert changed != data
    target.unlink()
    subprocess.run(["lz4", "-q", "-z", "-", str(target)], input=changed, check=True, capture_output=True)
    with pytest.raises(IndexVerificationError) as err:  # the good lists' parsed cache does not hide it
        open_index(tmp_path / "cache", cache_dir=shared_cache / "upstream")
    message = str(err.value)
    assert message.startswith(f"{target}: sha256 ") and "does not match InRelease (main/binary-amd64/Packages)" in message
    assert "\n" not in message


def test_bad_inrelease_signature_is_refused(tmp_path, shared_cache, debian, test_keys):
    lists = lists_copy(shared_cache, tmp_path / "cache")
    inrelease = next(lists.glob("*_bookworm-updates_InRelease"))
    text = inrelease.read_bytes()
    inrelease.unlink()
    inrelease.write_bytes(text.replace(b"Suite: ", b"Suite: x", 1))
    with pytest.raises(SignatureError) as err:
        open_index(tmp_path / "cache")
    assert str(err.value).startswith(f"{inrelease}: bad or untrusted signature") and "\n" not in str(err.value)

    # the real file, but checked against a key that did not sign it
    other = tmp_path / "other"
    lists_copy(shared_cache, other)
    with pytest.raises(SignatureError, match="bad or untrusted signature"):
        open_index(other, keyrings=[test_keys.trusted])


def test_tampered_contents_is_refused(tmp_path, shared_cache, debian):
    lists = lists_copy(shared_cache, tmp_path / "cache")
    target = next(lists.glob("*bookworm-updates_main_Contents-all*"))
    data = subprocess.run(["lz4", "-dc", str(target)], capture_output=True, check=True).stdout
    target.unlink()
    evil = b"usr/bin/sh                                              shells/evil\n" + data
    subprocess.run(["lz4", "-q", "-z", "-", str(target)], input=evil, check=True, capture_output=True)
    index = open_index(tmp_path / "cache", cache_dir=shared_cache / "upstream")  # Packages: good
    with pytest.raises(IndexVerificationError) as err:  # Contents, read on a thread: refused when first asked
        index.by_file("/usr/bin/sh")
    assert str(err.value).startswith(f"{target}: sha256 ") and "InRelease (main/Contents-all)" in str(err.value)
    with pytest.raises(IndexVerificationError):  # and on every question after
        index.by_soname("ELF64", "libc.so.6")
    assert index.by_name("dash")  # what Packages says still answers
