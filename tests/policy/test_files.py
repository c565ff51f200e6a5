"""From an install root to file entries: types, modes, hard links, which directories
are kept, owners and configuration files."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from appbuilder.policy.files import FileRules, walk_install_root


def make(root: Path, path: str, data: bytes = b"", mode: int = 0o644) -> Path:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, mode)
    return p


def mkdir(root: Path, path: str, mode: int = 0o755) -> Path:
    p = root / path.lstrip("/")
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, mode)
    return p


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "destdir"
    r.mkdir()
    tool = make(r, "/usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
    os.link(tool, r / "usr/bin/tool-b")
    os.link(tool, r / "usr/bin/a-tool")  # sorts first: it carries the content
    make(r, "/usr/bin/setuid", b"x", 0o4755)
    make(r, "/etc/tool.conf", b"key=1\n", 0o644)
    make(r, "/etc/init.d/tool", b"#!/bin/sh\n", 0o755)
    make(r, "/var/lib/tool/settings.ini", b"[s]\n", 0o600)
    make(r, "/usr/share/doc/tool/README", b"readme\n")
    (r / "usr/lib64").mkdir(parents=True)
    make(r, "/usr/lib64/libtool.so.1.0", b"\x7fELF fake", 0o755)
    (r / "usr/lib64/libtool.so.1").symlink_to("libtool.so.1.0")
    (r / "lib64").symlink_to("usr/lib64")  # a symlink to a directory is an entry, not walked
    mkdir(r, "/var/empty")
    mkdir(r, "/var/spool/tool", 0o1777)
    make(r, "/var/spool/tool/.keep", b"")
    mkdir(r, "/var/lib/cvmfs")
    make(r, "/var/lib/cvmfs/data", b"d")
    os.mkfifo(r / "var/lib/tool/fifo", 0o600)
    mkdir(r, "/usr/share/empty-but-0700", 0o700)
    for d in ("usr", "usr/bin", "usr/share", "usr/share/doc", "usr/share/doc/tool", "etc", "etc/init.d", "var",
              "var/lib", "var/lib/tool", "var/spool", "usr/lib64"):
        os.chmod(r / d, 0o755)
    return r


RULES = FileRules(
    ownership=(("cvmfs", "cvmfs", re.compile("/var/lib/cvmfs(/.*)?")),
               ("tool", "daemon", re.compile("/var/lib/tool/.*"))),
    config=(re.compile("/var/lib/tool/settings\\.ini"),),
)


def by_path(found):
    return {f.entry.path: f for f in found}


def test_entries_types_modes_and_contents(root):
    found = walk_install_root(root, RULES)
    paths = [f.entry.path for f in found]
    assert paths == sorted(paths)
    e = by_path(found)
    tool = e["/usr/bin/a-tool"].entry
    assert (tool.type, tool.mode, tool.size) == ("file", 0o755, len(b"#!/bin/sh\necho tool\n"))
    assert tool.sha256 == hashlib.sha256(b"#!/bin/sh\necho tool\n").hexdigest()
    assert e["/usr/bin/a-tool"].executable and not e["/etc/tool.conf"].executable
    assert e["/usr/bin/setuid"].entry.mode == 0o4755
    link = e["/usr/lib64/libtool.so.1"].entry
    assert (link.type, link.target, link.sha256) == ("symlink", "libtool.so.1.0", None)
    assert e["/lib64"].entry.type == "symlink" and e["/lib64"].entry.target == "usr/lib64"
    assert not any(p.startswith("/lib64/") for p in paths)
    assert e["/var/lib/tool/fifo"].entry.type == "fifo"
    assert e["/usr/bin/a-tool"].host_path == root / "usr/bin/a-tool"


def test_hard_links_become_hardlink_entries_to_the_first_path(root):
    e = by_path(walk_install_root(root, RULES))
    first = e["/usr/bin/a-tool"].entry
    for other in ("/usr/bin/tool", "/usr/bin/tool-b"):
        link = e[other].entry
        assert link.type == "hardlink" and link.target == "/usr/bin/a-tool"
        assert link.size == 0 and link.sha256 == first.sha256 and link.mode == 0o755
    assert sum(1 for f in e.values() if f.entry.type == "file" and f.entry.sha256 == first.sha256) == 1


def test_which_directories_are_kept(root):
    e = by_path(walk_install_root(root, RULES))
    dirs = {p: f.entry for p, f in e.items() if f.entry.type == "dir"}
    assert dirs["/var/empty"].mode == 0o755                 # empty
    assert dirs["/var/spool/tool"].mode == 0o1777           # not 0755
    assert dirs["/usr/share/empty-but-0700"].mode == 0o700
    assert (dirs["/var/lib/cvmfs"].owner, dirs["/var/lib/cvmfs"].group) == ("cvmfs", "cvmfs")  # another owner
    # plain parents of files are not packaged
    for plain in ("/usr", "/usr/bin", "/etc", "/usr/share/doc/tool", "/var/lib/tool", "/usr/lib64"):
        assert plain not in dirs
    assert set(dirs) == {"/var/empty", "/var/spool/tool", "/usr/share/empty-but-0700", "/var/lib/cvmfs"}


def test_ownership_and_config_rules(root):
    e = by_path(walk_install_root(root, RULES))
    assert (e["/var/lib/cvmfs/data"].entry.owner, e["/var/lib/cvmfs/data"].entry.group) == ("cvmfs", "cvmfs")
    assert (e["/var/lib/tool/settings.ini"].entry.owner, e["/var/lib/tool/settings.ini"].entry.group) == \
        ("tool", "daemon")
    assert (e["/usr/bin/a-tool"].entry.owner, e["/usr/bin/a-tool"].entry.group) == ("root", "root")
    config = {p for p, f in e.items() if f.entry.config}
    # plain files under /etc, plus what r.Config names; never executables or links
    assert config == {"/etc/tool.conf", "/var/lib/tool/settings.ini"}
    assert not e["/etc/init.d/tool"].entry.config


def test_rules_alone():
    rules = FileRules(config=(re.compile("/opt/x\\.ini"),), sysconfdir="/etc/")
    assert rules.is_config("/etc/a", "file", False)
    assert not rules.is_config("/etc/a", "file", True)
    assert not rules.is_config("/etc/a", "symlink", False)
    assert not rules.is_config("/etcetera/a", "file", False)
    assert rules.is_config("/opt/x.ini", "file", True)  # named explicitly
    assert rules.owner_of("/anything") == ("root", "root")


def test_empty_root(tmp_path):
    assert walk_install_root(tmp_path, FileRules()) == []
