"""Debian sources without the network: the machine's apt sources (one-line and deb822)
become deb-src stanzas that apt reads; .dsc checksum lists; a warm cache needs no apt."""

from __future__ import annotations

import hashlib
import subprocess
import textwrap
from pathlib import Path

import pytest

from appbuilder.core.errors import SourceError
from appbuilder.upstream.debsrc import (
    AptEntry,
    DebianSources,
    deb_src_sources,
    parse_dsc_files,
    system_entries,
)
from appbuilder.upstream.lookaside import Lookaside

ONE_LINE = """\
# the main archive
deb http://deb.debian.org/debian bookworm main contrib non-free-firmware
deb [arch=amd64 signed-by=/usr/share/keyrings/security.gpg] http://security.debian.org/debian-security bookworm-security main
deb-src http://deb.debian.org/debian bookworm main
#deb http://commented.example/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main # trailing comment

deb http://too-short.example/debian
"""

DEB822 = """\
# deb822 sources
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src
URIs: http://src-only.example/debian
Suites: bookworm
Components: main

Types: deb deb-src
URIs: http://both.example/debian http://both-mirror.example/debian
Suites: trixie
# a comment inside a stanza
Components: main
Enabled: yes
"""


def deb822(text: str) -> list[dict[str, str]]:
    """A minimal deb822 reader (fields, continuation lines, '#' comments) for checking output."""
    stanzas: list[dict[str, str]] = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t"):
                fields[key] += "\n" + line.strip()
            else:
                key, _, value = line.partition(":")
                key = key.lower()
                fields[key] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def apt_accepts(tmp_path: Path, sources: str) -> subprocess.CompletedProcess:
    """Let the real apt read *sources* as its only source list (offline: indextargets)."""
    root = tmp_path / "apt-check"
    (root / "parts").mkdir(parents=True)
    (root / "state" / "lists" / "partial").mkdir(parents=True)
    (root / "cache").mkdir()
    (root / "sources.list").write_text("")
    (root / "parts" / "check.sources").write_text(sources)
    return subprocess.run(
        ["apt-get", "-o", f"Dir::Etc::SourceList={root / 'sources.list'}", "-o", f"Dir::Etc::SourceParts={root / 'parts'}",
         "-o", f"Dir::State={root / 'state'}", "-o", f"Dir::Cache={root / 'cache'}", "indextargets"],
        capture_output=True, text=True, timeout=60)


def apt_dir(tmp_path: Path, main: str | None = None, parts: dict[str, str] | None = None) -> Path:
    d = tmp_path / "etc-apt"
    (d / "sources.list.d").mkdir(parents=True)
    if main is not None:
        (d / "sources.list").write_text(main)
    for name, text in (parts or {}).items():
        (d / "sources.list.d" / name).write_text(text)
    return d


def test_one_line_sources(tmp_path):
    entries = system_entries(apt_dir(tmp_path, ONE_LINE))
    assert entries == [
        AptEntry(("http://deb.debian.org/debian",), ("bookworm",), ("main", "contrib", "non-free-firmware")),
        AptEntry(("http://security.debian.org/debian-security",), ("bookworm-security",), ("main",),
                 "/usr/share/keyrings/security.gpg"),
        AptEntry(("http://deb.debian.org/debian",), ("bookworm-updates",), ("main",)),
    ]


def test_deb822_sources_skip_disabled_and_source_only_stanzas(tmp_path):
    entries = system_entries(apt_dir(tmp_path, parts={"debian.sources": DEB822}))
    assert entries == [
        AptEntry(("http://deb.debian.org/debian",), ("bookworm", "bookworm-updates"), ("main", "contrib"),
                 "/usr/share/keyrings/debian-archive-keyring.gpg"),
        AptEntry(("http://both.example/debian", "http://both-mirror.example/debian"), ("trixie",), ("main",)),
    ]


def test_both_formats_together_in_file_name_order(tmp_path):
    d = apt_dir(tmp_path, "deb http://main.example/debian bookworm main\n", {
        "b.sources": "Types: deb\nURIs: http://b.example/debian\nSuites: bookworm\nComponents: main\n",
        "a.list": "deb http://a.example/debian bookworm main\n",
        "c.list.save": "deb http://ignored.example/debian bookworm main\n",
        "d.sources.disabled": "Types: deb\nURIs: http://ignored.example\nSuites: x\nComponents: main\n",
    })
    assert [e.uris[0] for e in system_entries(d)] == [
        "http://main.example/debian", "http://a.example/debian", "http://b.example/debian"]


def test_no_apt_sources_at_all(tmp_path):
    assert system_entries(tmp_path / "nothing") == []
    assert system_entries(apt_dir(tmp_path, "")) == []


def test_deb_src_stanzas_parse_back(tmp_path):
    entries = system_entries(apt_dir(tmp_path, ONE_LINE, {"debian.sources": DEB822}))
    text = deb_src_sources(entries)
    stanzas = deb822(text)
    assert len(stanzas) == len(entries) == 5
    for st, e in zip(stanzas, entries):
        assert st["types"] == "deb-src"
        assert tuple(st["uris"].split()) == e.uris
        assert tuple(st["suites"].split()) == e.suites
        assert tuple(st["components"].split()) == e.components
        assert st.get("signed-by") == e.signed_by
    assert text.splitlines()[:4] == [
        "Types: deb-src", "URIs: http://deb.debian.org/debian", "Suites: bookworm",
        "Components: main contrib non-free-firmware"]
    proc = apt_accepts(tmp_path, text)
    assert proc.returncode == 0, proc.stderr


def test_inline_signing_key_survives_into_the_deb_src_stanza(tmp_path):
    """deb822 allows the key itself as a multi-line Signed-By field."""
    key = textwrap.dedent("""\
        Types: deb
        URIs: http://vendor.example/debian
        Suites: stable
        Components: main
        Signed-By:
         -----BEGIN PGP PUBLIC KEY BLOCK-----
         .
         mQINBGPLqJQBEAC5aRt3e4QIjJpJZ0m8rlh0mFRrLH3gZ9YrWKn6t8M2Zkq5uG1x
         =AbCd
         -----END PGP PUBLIC KEY BLOCK-----
        """)
    entries = system_entries(apt_dir(tmp_path, parts={"vendor.sources": key}))
    assert len(entries) == 1 and "BEGIN PGP PUBLIC KEY BLOCK" in entries[0].signed_by
    text = deb_src_sources(entries)
    (stanza,) = deb822(text)
    assert stanza["signed-by"] == entries[0].signed_by
    assert stanza["types"] == "deb-src" and stanza["uris"] == "http://vendor.example/debian"
    proc = apt_accepts(tmp_path, text)  # apt itself must be able to read what we wrote
    assert proc.returncode == 0, proc.stderr


DSC = """\
-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

Format: 3.0 (quilt)
Source: hello
Binary: hello
Architecture: any
Version: 2.10-3
Checksums-Sha1:
 f7bebf6f9c62a2295e889f66e05ce9bfaed9ace3 725946 hello_2.10.orig.tar.gz
 a7bc9d4c4d8d9f2b1d8c1e7f5bfd9b2f1c3d2e1a 12688 hello_2.10-3.debian.tar.xz
Checksums-Sha256:
 31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b 725946 hello_2.10.orig.tar.gz
 5e7a0b1e3a3b2d8c4c9b0e7c5b8e1f0d2c3b4a5968778695a4b3c2d1e0f9a8b7 12688 hello_2.10-3.debian.tar.xz
Files:
 6cd0ffea3884a4e79330338dcc2987d6 725946 hello_2.10.orig.tar.gz
 e0ea4b8c4ed2b0cd9e2c7b2d3f8d63c3 12688 hello_2.10-3.debian.tar.xz

-----BEGIN PGP SIGNATURE-----

iQIzBAEBCgAdFiEE...
-----END PGP SIGNATURE-----
"""


def test_parse_dsc_files_reads_only_the_sha256_field():
    assert parse_dsc_files(DSC) == {
        "hello_2.10.orig.tar.gz": "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b",
        "hello_2.10-3.debian.tar.xz": "5e7a0b1e3a3b2d8c4c9b0e7c5b8e1f0d2c3b4a5968778695a4b3c2d1e0f9a8b7",
    }


def test_parse_dsc_files_stops_at_the_next_field_and_without_the_field():
    text = ("Source: x\nChecksums-Sha256:\n " + "a" * 64 + " 10 x_1.tar.gz\n"
            "Files:\n 0123 10 other.tar.gz\n")
    assert parse_dsc_files(text) == {"x_1.tar.gz": "a" * 64}
    assert parse_dsc_files("Source: x\nFiles:\n 0123 10 x.tar.gz\n") == {}


def test_no_deb_entries_is_a_clear_error_before_any_apt_run(tmp_path):
    d = apt_dir(tmp_path, "deb-src http://deb.debian.org/debian bookworm main\n")
    cache = tmp_path / "cache"
    ds = DebianSources(cache, Lookaside(cache / "lookaside"), apt_dir=d)
    with pytest.raises(SourceError, match="no enabled 'deb' entries"):
        ds.fetch("hello", "2.10-3", "0" * 64)
    assert not (cache / "lookaside").exists() or not any((cache / "lookaside").rglob("*.dsc"))


def cached_source_package(lookaside: Lookaside) -> tuple[str, Path, dict[str, bytes]]:
    """A source package put into the lookaside cache as a fetch leaves it: a .dsc whose
    Checksums-Sha256 lists the files beside it; returns (pin, entry, listed files)."""
    files = {"hello_2.10.orig.tar.gz": b"upstream tarball bytes\n" * 100,
             "hello_2.10-3.debian.tar.xz": b"debian packaging bytes\n" * 10}
    sums = "".join(f" {hashlib.sha256(d).hexdigest()} {len(d)} {n}\n" for n, d in files.items())
    dsc = f"Format: 3.0 (quilt)\nSource: hello\nVersion: 2.10-3\nChecksums-Sha256:\n{sums}Files:\n 0 0 x\n".encode()
    digest = hashlib.sha256(dsc).hexdigest()
    entry = lookaside.entry_dir(digest)
    entry.mkdir(parents=True)
    (entry / "hello_2.10-3.dsc").write_bytes(dsc)
    for name, data in files.items():
        (entry / name).write_bytes(data)
    return digest, entry, files


def test_a_cached_source_package_needs_no_apt(tmp_path):
    cache = tmp_path / "cache"
    lookaside = Lookaside(cache / "lookaside")
    digest, entry, _ = cached_source_package(lookaside)
    # an apt dir with no sources: anything but the cache would fail
    ds = DebianSources(cache, lookaside, apt_dir=tmp_path / "no-apt")
    assert ds.fetch("hello", "2.10-3", digest.upper()) == entry / "hello_2.10-3.dsc"
    with pytest.raises(SourceError, match="no enabled 'deb' entries"):
        ds.fetch("hello", "2.10-3", "0" * 64)


def _tamper_listed(entry: Path) -> str:
    path = entry / "hello_2.10.orig.tar.gz"
    path.write_bytes(path.read_bytes().replace(b"upstream", b"backdoor", 1))
    return "checksum mismatch for hello_2.10.orig.tar.gz (listed in hello_2.10-3.dsc)"


def _tamper_dsc(entry: Path) -> str:
    path = entry / "hello_2.10-3.dsc"
    path.write_bytes(path.read_bytes().replace(b"Version: 2.10-3", b"Version: 2.10-4"))
    return "checksum mismatch for hello_2.10-3.dsc: expected sha256"


def _remove_listed(entry: Path) -> str:
    (entry / "hello_2.10-3.debian.tar.xz").unlink()
    return "hello_2.10-3.debian.tar.xz (listed in hello_2.10-3.dsc) is missing"


@pytest.mark.parametrize("tamper", [_tamper_listed, _tamper_dsc, _remove_listed])
def test_a_damaged_cached_source_package_is_dropped_and_fetched_again(tmp_path, tamper):
    cache = tmp_path / "cache"
    warnings: list[str] = []
    lookaside = Lookaside(cache / "lookaside", warn=warnings.append)
    digest, entry, _ = cached_source_package(lookaside)
    problem = tamper(entry)
    # fetching again goes to apt; with no apt sources here, that fails: the error says both
    ds = DebianSources(cache, lookaside, apt_dir=tmp_path / "no-apt")
    with pytest.raises(SourceError) as exc:
        ds.fetch("hello", "2.10-3", digest)
    msg = str(exc.value)
    assert msg.startswith("the cached copy of Debian source package hello=2.10-3 was damaged (")
    assert problem in msg and "and removed; fetching it again failed:" in msg
    assert "no enabled 'deb' entries" in msg
    (warning,) = warnings
    assert f"lookaside cache entry {entry} is damaged: {problem}" in warning
    assert not entry.exists()  # the damaged files are never used
