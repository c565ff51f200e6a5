"""Policies on an install root a hostile build left: names that are not UTF-8 or hold
control characters, sockets, and symlinks planted to lead the strip policy (which
writes debug files and runs objcopy) or the file walk outside."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from appbuilder.core.errors import BuildFailed
from appbuilder.policy.files import FileRules, escape_path, walk_install_root
from appbuilder.policy.strip import strip_tree
from tests.recipe.planted import canary, resolver, snapshot, untouched  # noqa: F401  (fixtures)


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "destdir"
    (r / "usr/share").mkdir(parents=True)
    (r / "usr/share/good").write_bytes(b"fine\n")
    return r


def bad(root: Path, rel: bytes, data: bytes = b"x") -> None:
    with open(os.fsencode(root) + b"/" + rel, "wb") as f:
        f.write(data)


# ------------------------------------------------------------------ names and types


def test_escape_path():
    assert escape_path("/usr/share/bad" + os.fsdecode(b"\xff") + "\nname") == "/usr/share/bad\\xff\\nname"
    assert escape_path("/a\tb\x1bc\\d\x7f\x85") == "/a\\tb\\x1bc\\\\d\\x7f\\x85"
    assert escape_path("/usr/share/café") == "/usr/share/café"


def test_a_name_neither_utf8_nor_one_line_fails_the_build_escaped(root):
    bad(root, b"usr/share/bad\xff\nname")
    with pytest.raises(BuildFailed) as exc:
        walk_install_root(root, FileRules())
    message = str(exc.value)
    assert "/usr/share/bad\\xff\\nname: the file name is not valid UTF-8" in message
    assert "\n  " in message and "bad\xff" not in message and "name\n" not in message


def test_a_newline_or_control_character_fails_the_build(root):
    bad(root, b"usr/share/two\nlines")
    bad(root, b"usr/share/esc\x1b[31m")
    (root / "usr/share/dir\tname").mkdir()
    (root / "usr/share/dir\tname/inside").write_bytes(b"")      # reported once, through its directory
    with pytest.raises(BuildFailed) as exc:
        walk_install_root(root, FileRules())
    lines = str(exc.value).splitlines()[1:]
    assert lines == ["  /usr/share/dir\\tname: the file name holds a control character",
                     "  /usr/share/esc\\x1b[31m: the file name holds a control character",
                     "  /usr/share/two\\nlines: the file name holds a control character"]


def test_a_symlink_target_with_a_newline_fails_the_build(root):
    (root / "usr/share/link").symlink_to("a\nb")
    with pytest.raises(BuildFailed, match=r"/usr/share/link: the symlink target a\\nb holds a control character"):
        walk_install_root(root, FileRules())


def test_a_socket_fails_the_build_with_its_path(root, monkeypatch):
    monkeypatch.chdir(root / "usr/share")                   # socket paths are short
    with socket.socket(socket.AF_UNIX) as s:
        s.bind("control.sock")
        with pytest.raises(BuildFailed, match=r"/usr/share/control\.sock: is a socket; only files, directories"):
            walk_install_root(root, FileRules())


def test_names_that_are_fine(root):
    (root / "usr/share/café – ünïcode").write_bytes(b"")
    (root / "usr/share/with space").write_bytes(b"")
    paths = [f.entry.path for f in walk_install_root(root, FileRules())]
    assert paths == ["/usr/share/café – ünïcode", "/usr/share/good", "/usr/share/with space"]


def test_the_walk_never_reads_through_links(root, untouched, resolver):
    (root / "usr/share/doc").symlink_to(untouched)
    (root / "usr/share/secret").symlink_to(untouched / "file")
    found = {f.entry.path: f.entry for f in walk_install_root(root, FileRules())}
    assert set(found) == {"/usr/share/doc", "/usr/share/good", "/usr/share/secret"}
    assert (found["/usr/share/doc"].type, found["/usr/share/doc"].target) == ("symlink", str(untouched))
    assert found["/usr/share/secret"].sha256 is None


# ------------------------------------------------------------------ strip


@pytest.fixture
def debug_prog(elves64) -> Path:
    return elves64.debug_prog


def install(root: Path, src: Path, path: str, mode: int = 0o755) -> Path:
    dest = root / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    os.chmod(dest, mode)
    return dest


def readelf(*argv: str) -> str:
    out = subprocess.run(["readelf", *argv], capture_output=True, check=True).stdout
    return out.decode(errors="replace")  # string dumps show binary bytes (the CRC of a debug link)


def host_objcopy(commands: list[list[str]]) -> None:
    """Run the planned objcopy command lines here (a cook runs them in its sandbox)."""
    for c in commands:
        subprocess.run(["objcopy", *c], check=True, capture_output=True)


def sections(path: Path) -> str:
    return readelf("-S", "-W", str(path))


def test_strip_splits_debug_information(root, debug_prog, resolver):
    prog = install(root, debug_prog, "/usr/bin/prog", 0o4755)
    written = strip_tree(root, "/usr/lib/debug", objcopy=host_objcopy)
    assert written == ["/usr/lib/debug/usr/bin/prog.debug"]
    debug = root / "usr/lib/debug/usr/bin/prog.debug"
    assert ".debug_info" in sections(debug) and stat.S_IMODE(debug.stat().st_mode) == 0o644
    assert ".debug_info" not in sections(prog) and ".gnu_debuglink" in sections(prog)
    assert stat.S_IMODE(prog.stat().st_mode) == 0o4755
    assert "prog.debug" in readelf("--string-dump=.gnu_debuglink", str(prog))


@pytest.mark.parametrize("how", ["absolute", "climbing"])
def test_strip_refuses_a_planted_debug_directory(root, debug_prog, untouched, resolver, how):
    install(root, debug_prog, "/usr/bin/prog")
    at = root / "usr/lib/debug"
    at.parent.mkdir(parents=True)
    at.symlink_to(untouched if how == "absolute" else os.path.relpath(untouched, at.parent))
    with pytest.raises(BuildFailed) as exc:
        strip_tree(root, "/usr/lib/debug", objcopy=host_objcopy)
    assert str(exc.value).startswith("/usr/lib/debug/usr/bin/prog.debug: /usr/lib/debug is a symlink leading "
                                     "outside the install root")


def test_strip_replaces_a_planted_debug_file_link_and_leaves_linked_directories(root, debug_prog, canary, resolver):
    install(root, debug_prog, "/usr/bin/prog")
    install(canary, debug_prog, "/sub/prog")                   # an unstripped program outside ...
    (root / "usr/libexec").symlink_to(canary / "sub")          # ... reached only through a link
    planted = root / "usr/lib/debug/usr/bin/prog.debug"
    planted.parent.mkdir(parents=True)
    planted.symlink_to(canary / "file")                        # objcopy must not write through it
    before = snapshot(canary)
    assert strip_tree(root, "/usr/lib/debug", objcopy=host_objcopy) == ["/usr/lib/debug/usr/bin/prog.debug"]
    assert not planted.is_symlink() and ".debug_info" in sections(planted)
    assert snapshot(canary) == before
