"""Resolving paths beneath a root with real directories and real symlinks: absolute
links, links climbing out with '..', chains, links that stay inside; with openat2 and
with the fallback walk, which must agree."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from appbuilder.core import beneath
from appbuilder.core.beneath import Beneath, copy
from appbuilder.core.errors import BuildFailed, RecipeError
from tests.recipe.planted import CANARY_TEXT, canary, resolver, snapshot, untouched  # noqa: F401  (fixtures)


@pytest.fixture
def root(tmp_path, canary) -> Path:
    """root/ with a/b/file, and links: in-root ones (relative, chained, to a directory),
    and ones leading out (absolute, climbing, chained, looping)."""
    r = tmp_path / "root"
    (r / "a" / "b").mkdir(parents=True)
    (r / "a" / "b" / "file").write_bytes(b"inside\n")
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "usr" / "lib64").symlink_to("lib")              # a directory inside: fine
    (r / "lib").symlink_to("usr/lib")
    (r / "in1").symlink_to("in2")                          # chain staying inside
    (r / "in2").symlink_to("a/b")
    (r / "a" / "b" / "back").symlink_to("../../a")         # '..' that stays inside
    (r / "abs").symlink_to(canary)                         # absolute
    (r / "a" / "up").symlink_to("../../canary")            # climbs out
    (r / "out1").symlink_to("out2")                        # chain leading out at its end
    (r / "out2").symlink_to("a/up")
    (r / "loop1").symlink_to("loop2")
    (r / "loop2").symlink_to("loop1")
    (r / "dangling").symlink_to("a/new")                   # dangling, inside
    (r / "dangling-abs").symlink_to(canary / "new")        # dangling, outside
    return r


def where(fd: int) -> Path:
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    finally:
        os.close(fd)


def test_the_real_openat2_is_used_when_the_kernel_has_it(root, monkeypatch):
    calls = []
    real = beneath._openat2
    monkeypatch.setattr(beneath, "_openat2", lambda *a: calls.append(a) or real(*a))
    walked = []
    monkeypatch.setattr(Beneath, "_walk", lambda self, *a: walked.append(a))
    with Beneath(root) as tree:
        try:
            assert where(tree.open("in1/file")) == root / "a/b/file"
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                pytest.skip("this kernel has no openat2")
            raise
    assert calls and not walked


def test_links_that_stay_inside_are_followed(root, resolver):
    with Beneath(root) as tree:
        assert where(tree.open("in1/file")) == root / "a/b/file"
        assert where(tree.open("usr/lib64", os.O_PATH)) == root / "usr/lib"
        assert where(tree.open("lib", os.O_PATH)) == root / "usr/lib"
        assert where(tree.open("a/b/back/b/file")) == root / "a/b/file"
        assert where(tree.open("a/../a/b", os.O_PATH)) == root / "a/b"
        assert tree.read_bytes("in1/back/b/file") == b"inside\n"
        # the last component is not followed when asked so
        assert stat.S_ISLNK(os.fstat(fd := tree.open("in1", os.O_PATH, follow=False)).st_mode)
        os.close(fd)


@pytest.mark.parametrize("path, link, target", [
    ("abs/file", "abs", "canary"),            # absolute link
    ("abs", "abs", "canary"),                 # ... as the last component
    ("a/up/file", "a/up", "../../canary"),    # '..' climbing out
    ("out1/file", "a/up", "../../canary"),    # a chain: the link that climbs out is named
    ("dangling-abs", "dangling-abs", "canary"),
])
def test_links_leading_outside_are_refused_naming_the_link(root, canary, untouched, resolver, path, link, target):
    with Beneath(root, label="install root", absolute=True) as tree:
        with pytest.raises(RecipeError) as exc:
            os.close(tree.open(path, os.O_RDONLY))
    message = str(exc.value)
    assert message.startswith(f"/{path}: /{link} is a symlink leading outside the install root")
    assert "refusing to follow it" in message and target in message


def test_both_ways_agree_on_every_message(root, canary, monkeypatch):
    def messages():
        out = []
        with Beneath(root, absolute=True) as tree:
            for path in ("abs/file", "a/up/x", "out1", "loop1", "a/b/file/x", "none/x"):
                try:
                    os.close(tree.open(path))
                    out.append("ok")
                except (RecipeError, OSError) as exc:
                    out.append((type(exc).__name__, str(exc)))
        return out

    kernel = messages()

    def no_openat2(*args):
        raise OSError(errno.ENOSYS, "no openat2")

    monkeypatch.setattr(beneath, "_openat2", no_openat2)
    assert messages() == kernel
    assert kernel[3][0] == "OSError" and "Too many levels of symbolic links" in kernel[3][1]
    assert kernel[4][0] == "NotADirectoryError" and kernel[5][0] == "FileNotFoundError"


def test_a_recipe_path_climbing_out_is_refused(root, resolver):
    with Beneath(root, label="build directory") as tree, pytest.raises(RecipeError, match="leads outside"):
        tree.open("a/../../canary/file")


def test_creating_through_links(root, canary, untouched, resolver):
    with Beneath(root, absolute=True) as tree:
        tree.write_bytes("dangling", b"new\n", 0o600)           # follows a dangling link inside
        assert (root / "a/new").read_bytes() == b"new\n"
        assert stat.S_IMODE((root / "a/new").stat().st_mode) == 0o600
        tree.mkdirs("lib/x/y", 0o700)                           # parents through a link inside
        assert stat.S_IMODE((root / "usr/lib/x/y").stat().st_mode) == 0o700
        for attempt in (lambda: tree.write_bytes("dangling-abs", b"x"), lambda: tree.mkdirs("abs/made"),
                        lambda: tree.write_bytes("a/up/file", b"x"), lambda: tree.symlink("x", "abs/l")):
            with pytest.raises(RecipeError, match="leading outside"):
                attempt()


def test_changing_operations_never_act_through_a_link(root, canary, untouched, resolver):
    (root / "a/b/planted").symlink_to(canary / "file")
    (root / "a/b/dirlink").symlink_to(canary)
    with Beneath(root, error=BuildFailed) as tree:
        with pytest.raises(BuildFailed, match="symlink has no mode"):
            tree.chmod("a/b/planted", 0o4777, follow=False)
        with pytest.raises(BuildFailed, match="leading outside"):
            tree.chmod("a/b/planted", 0o4777)
        with pytest.raises(BuildFailed, match="is a symlink, not a directory"):
            tree.rmtree("a/b/dirlink")
        tree.unlink("a/b/planted")                             # the link goes, not its target
        tree.rename("a/b/dirlink", "moved/dirlink")            # the link moves, not its target
        assert os.readlink(root / "moved/dirlink") == str(canary)
        tree.rmtree("moved")                                   # links inside are removed, not followed
        tree.symlink("/etc/passwd", "a/b/file")                # replaces a file; target text verbatim
        assert os.readlink(root / "a/b/file") == "/etc/passwd"
    assert not (root / "moved").exists()


def test_glob_lists_through_fds_and_refuses_links_out(root, canary, untouched, resolver, monkeypatch):
    import glob

    monkeypatch.setattr(glob, "glob", lambda *a, **k: pytest.fail("glob.glob on a host path"))
    (root / "a/b/.hidden").write_bytes(b"")
    (root / "a/b/x.la").write_bytes(b"")
    with Beneath(root, absolute=True) as tree:
        assert tree.glob("/a/b/*") == ["/a/b/back", "/a/b/file", "/a/b/x.la"]
        assert tree.glob("/a/b/.*") == ["/a/b/.hidden"]
        assert tree.glob("/usr/lib*") == ["/usr/lib", "/usr/lib64"]
        assert tree.glob("/in1/*.la") == ["/in1/x.la"]
        assert tree.glob("/a/b/file") == ["/a/b/file"] and tree.glob("/a/b/none") == []
        assert tree.glob("/dangling-abs") == ["/dangling-abs"]    # the link itself exists
        with pytest.raises(RecipeError, match="/abs is a symlink leading outside"):
            tree.glob("/abs/*")
        with pytest.raises(RecipeError, match="/a/up is a symlink leading outside"):
            tree.glob("/a/*/file")


def test_walk_lists_links_and_never_enters_them(root):
    with Beneath(root, absolute=True) as tree:
        seen = {}
        for path, fd, st, entries in tree.walk():
            seen[path] = [e.name for e in entries]
            if path == "/":
                entries[:] = [e for e in entries if e.name != "usr"]   # pruned: not entered
    assert set(seen) == {"/", "/a", "/a/b"}
    assert "abs" in seen["/"] and "up" in seen["/a"]


def test_copy_between_trees_copies_links_as_links(tmp_path, canary, untouched, resolver):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "tree" / "sub").mkdir(parents=True)
    (src / "tree" / "run").write_bytes(b"#!/bin/sh\n")
    os.chmod(src / "tree" / "run", 0o750)
    (src / "tree" / "sub" / "data").write_bytes(b"data")
    (src / "tree" / "secret").symlink_to(canary / "file")
    (src / "tree" / "outside").symlink_to(canary)
    os.chmod(src / "tree" / "sub", 0o700)
    dest.mkdir()
    with Beneath(src) as s, Beneath(dest, absolute=True) as d:
        copy(s, "tree", d, "/opt/tree")
        copy(s, "tree/secret", d, "/opt/secret")
    got = snapshot(dest / "opt")
    assert got["tree/secret"] == ("link", str(canary / "file")) == got["secret"]
    assert got["tree/outside"] == ("link", str(canary))
    assert got["tree/run"] == ("file", 0o750, b"#!/bin/sh\n")
    assert got["tree/sub"] == ("dir", 0o700) and got["tree/sub/data"][2] == b"data"
    assert not any(p.read_bytes() == CANARY_TEXT for p in dest.rglob("*") if p.is_file() and not p.is_symlink())


def test_a_sub_tree_is_opened_beneath(tmp_path, canary, untouched, resolver):
    top = tmp_path / "src"
    top.mkdir()
    (top / "main").symlink_to(canary)
    with Beneath(top, label="source directory") as tree:
        with pytest.raises(RecipeError, match="main is a symlink leading outside the source directory"):
            tree.sub("main", label="build directory")
        with tree.sub("fresh", label="build directory", create=True) as build:
            build.write_bytes("x", b"x")
    assert (top / "fresh" / "x").read_bytes() == b"x"
