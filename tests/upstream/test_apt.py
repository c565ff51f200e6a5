"""The private apt shared by Debian source and binary imports: the machine's sources,
none of its state."""

from __future__ import annotations

import textwrap

from appbuilder.upstream import debsrc
from appbuilder.upstream.apt import AptEntry, PrivateApt, sources_text, system_entries


def test_machine_sources_are_read_in_both_formats(tmp_path):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text("deb [signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n"
                                      "# deb http://commented.example/debian bookworm main\n")
    (apt / "sources.list.d" / "x.sources").write_text(textwrap.dedent("""\
        Types: deb deb-src
        URIs: http://deb.example/debian
        Suites: bookworm bookworm-updates
        Components: main

        Types: deb
        Enabled: no
        URIs: http://off.example/debian
        Suites: bookworm
        Components: main
        """))
    entries = system_entries(apt)
    assert entries == [
        AptEntry(("http://mirror.example/debian",), ("bookworm",), ("main", "contrib"), "/k.gpg"),
        AptEntry(("http://deb.example/debian",), ("bookworm", "bookworm-updates"), ("main",), None),
    ]
    text = sources_text(entries, "deb")
    assert "Types: deb\nURIs: http://mirror.example/debian" in text and "Signed-By: /k.gpg" in text
    assert debsrc.deb_src_sources(entries).count("Types: deb-src") == 2  # debsrc uses the shared module


def test_private_state_and_foreign_architectures(tmp_path):
    apt = PrivateApt(tmp_path / "state", kind="deb", architectures=("amd64", "i386"), status="private")
    opts = " ".join(apt.options())
    assert f"Dir::State={tmp_path / 'state' / 'state'}" in opts
    assert f"Dir::Etc::SourceList={tmp_path / 'state' / 'sources.list'}" in opts
    assert f"Dir::State::status={tmp_path / 'state' / 'status'}" in opts  # not the machine's dpkg status
    assert "APT::Architectures::=amd64" in opts and "APT::Architectures::=i386" in opts
    apt.prepare()
    written = (tmp_path / "state" / "sources.list.d" / "appbuild.sources").read_text()
    assert written.startswith("Types: deb\n")
    assert (tmp_path / "state" / "status").read_text() == ""
