"""File actions on real trees: what they do, and that a symlink planted in the install
root, the build directory or the recipe directory never leads them outside.

Every attack plants a symlink to a canary directory outside (absolute, and relative
climbing out with '..'), runs the action through a small real ActionContext, expects a
RecipeError naming the action, the path and the link, and checks the canary is byte-,
mode- and tree-identical afterwards. Each runs with openat2 and with the fallback walk.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from appbuilder.core.arch import get_arch
from appbuilder.core.errors import RecipeError
from appbuilder.recipe.build_actions import (
    Create,
    Install,
    MakeDirs,
    Move,
    Remove,
    Replace,
    SetModes,
    Symlink,
)
from appbuilder.recipe.macros import default_macros
from appbuilder.recipe.source_actions import addArchive, addSource
from tests.recipe.planted import CANARY_TEXT, canary, resolver, snapshot, untouched  # noqa: F401  (fixtures)


class FileActionContext:
    """What file actions use of the cook: macros, the trees, the log."""

    def __init__(self, top: Path):
        self.arch = get_arch("x86_64")
        self.macros = default_macros(self.arch, name="tool", version="1.0")
        self.recipe_dir = top / "recipe"
        self.srcdir = top / "work" / "src"
        self.builddir = self.srcdir / "tool-1.0"
        self.destdir = top / "work" / "destdir"
        for d in (self.recipe_dir, self.builddir, self.destdir):
            d.mkdir(parents=True)
        self.macros.builddir = str(self.builddir)
        self.macros.destdir = str(self.destdir)
        self.lines: list[str] = []

    def log(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
def ctx(tmp_path) -> FileActionContext:
    return FileActionContext(tmp_path)


def put(top: Path, path: str, data: bytes = b"x\n", mode: int = 0o644) -> Path:
    p = top / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, mode)
    return p


def mode_of(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def plant(at: Path, canary: Path, how: str) -> None:
    """Make *at* a symlink to the canary: absolute, or relative climbing out with '..'."""
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(canary if how == "absolute" else os.path.relpath(canary, at.parent))


def refused(action, ctx, message: str) -> str:
    with pytest.raises(RecipeError) as exc:
        action.do(ctx)
    text = str(exc.value)
    assert text.startswith(message), text
    assert "refusing to follow it" in text
    return text


HOW = pytest.mark.parametrize("how", ["absolute", "climbing"])
SHARE_OUT = "/usr/share is a symlink leading outside the install root"


# ------------------------------------------------------------------ attacks through destdir


@HOW
def test_remove_through_a_planted_directory_link(ctx, untouched, resolver, how):
    plant(ctx.destdir / "usr/share", untouched, how)
    refused(Remove("%(datadir)s/info", recursive=True), ctx, f"Remove: /usr/share/info: {SHARE_OUT}")
    refused(Remove("%(datadir)s/sub", recursive=True), ctx, f"Remove: /usr/share/sub: {SHARE_OUT}")
    refused(Remove("%(datadir)s/*"), ctx, f"Remove: /usr/share/*: {SHARE_OUT}")
    assert (ctx.destdir / "usr/share").is_symlink()


@HOW
def test_setmodes_through_a_planted_link(ctx, untouched, resolver, how):
    plant(ctx.destdir / "usr/share", untouched, how)
    refused(SetModes("%(datadir)s/file", mode=0o4777), ctx, f"SetModes: /usr/share/file: {SHARE_OUT}")
    plant(ctx.destdir / "usr/bin/ping", untouched / "file", how)   # the file itself is the link
    refused(SetModes("%(bindir)s/ping", mode=0o4777), ctx,
            "SetModes: /usr/bin/ping: /usr/bin/ping is a symlink leading outside the install root")
    refused(SetModes("%(bindir)s/*", mode=0o4777), ctx, "SetModes: /usr/bin/ping: /usr/bin/ping is a symlink")


@HOW
def test_create_through_planted_links(ctx, untouched, resolver, how):
    plant(ctx.destdir / "usr/share", untouched, how)
    refused(Create("%(datadir)s/file", contents="owned\n"), ctx, f"Create: /usr/share/file: {SHARE_OUT}")
    refused(Create("%(datadir)s/new/x", contents="owned\n"), ctx, f"Create: /usr/share/new/x: {SHARE_OUT}")
    plant(ctx.destdir / "etc/hostname", untouched / "file", how)
    refused(Create("%(sysconfdir)s/hostname", contents="owned\n"), ctx,
            "Create: /etc/hostname: /etc/hostname is a symlink leading outside the install root")


@HOW
def test_install_into_a_planted_destination(ctx, untouched, resolver, how):
    put(ctx.builddir, "file", b"payload\n")
    plant(ctx.destdir / "usr/share", untouched, how)
    refused(Install("file", "%(datadir)s/file"), ctx, f"Install: /usr/share/file: {SHARE_OUT}")
    refused(Install("file", "%(datadir)s/sub/"), ctx, f"Install: /usr/share/sub/file: {SHARE_OUT}")


@HOW
def test_install_from_a_planted_build_directory_link(ctx, untouched, resolver, how):
    plant(ctx.builddir / "docs", untouched, how)
    refused(Install("docs/file", "%(thisdocdir)s/"), ctx,
            "Install: docs/file: docs is a symlink leading outside the build directory")
    refused(Install("docs/*", "%(thisdocdir)s/"), ctx,
            "Install: docs/*: docs is a symlink leading outside the build directory")
    assert not (ctx.destdir / "usr").exists()


@HOW
def test_install_of_a_planted_file_link_copies_the_link_not_the_host_file(ctx, untouched, resolver, how):
    plant(ctx.builddir / "secret", untouched / "file", how)
    plant(ctx.builddir / "tree/escape", untouched, how)
    put(ctx.builddir, "tree/ok", b"ok\n")
    Install("secret", "%(sysconfdir)s/secret").do(ctx)
    Install("tree", "/opt/").do(ctx)
    assert (ctx.destdir / "etc/secret").is_symlink()
    assert os.readlink(ctx.destdir / "etc/secret") == os.readlink(ctx.builddir / "secret")
    assert (ctx.destdir / "opt/tree/escape").is_symlink() and (ctx.destdir / "opt/tree/ok").read_bytes() == b"ok\n"
    assert CANARY_TEXT not in [p.read_bytes() for p in ctx.destdir.rglob("*") if p.is_file() and not p.is_symlink()]


@HOW
def test_move_through_planted_links(ctx, untouched, resolver, how):
    put(ctx.destdir, "/usr/bin/tool")
    plant(ctx.destdir / "usr/share", untouched, how)
    refused(Move("%(datadir)s/file", "/stolen"), ctx, f"Move: /usr/share/file: {SHARE_OUT}")
    refused(Move("%(bindir)s/tool", "%(datadir)s/tool"), ctx, f"Move: /usr/share/tool: {SHARE_OUT}")
    assert (ctx.destdir / "usr/bin/tool").exists() and not (ctx.destdir / "stolen").exists()


@HOW
def test_symlink_and_makedirs_through_planted_links(ctx, untouched, resolver, how):
    plant(ctx.destdir / "usr/share", untouched, how)
    refused(Symlink("/bin/busybox", "%(datadir)s/link"), ctx, f"Symlink: /usr/share/link: {SHARE_OUT}")
    refused(Symlink("busybox", "%(datadir)s/sub/"), ctx, f"Symlink: /usr/share/sub/busybox: {SHARE_OUT}")
    refused(MakeDirs("%(datadir)s/new", mode=0o777), ctx, f"MakeDirs: /usr/share/new: {SHARE_OUT}")
    refused(MakeDirs("%(datadir)s", mode=0o777), ctx, f"MakeDirs: /usr/share: {SHARE_OUT}")
    refused(MakeDirs("%(datadir)s/sub", mode=0o777), ctx, f"MakeDirs: /usr/share/sub: {SHARE_OUT}")


@HOW
def test_replace_through_planted_links(ctx, untouched, resolver, how):
    plant(ctx.destdir / "usr/share", untouched, how)
    refused(Replace("host", "owned", "%(datadir)s/file"), ctx, f"Replace: /usr/share/file: {SHARE_OUT}")
    plant(ctx.builddir / ".config", untouched / "file", how)
    refused(Replace("host", "owned", ".config"), ctx,
            "Replace: .config: .config is a symlink leading outside the build directory")
    plant(ctx.builddir / "src", untouched, how)
    refused(Replace("host", "owned", "src/file"), ctx,
            "Replace: src/file: src is a symlink leading outside the build directory")


@HOW
def test_a_build_directory_replaced_by_a_link(ctx, untouched, resolver, how):
    put(ctx.recipe_dir, "main.c")
    ctx.builddir.rmdir()
    plant(ctx.builddir, untouched, how)
    refused(Install("file", "/file"), ctx,
            "Install: tool-1.0: tool-1.0 is a symlink leading outside the source directory")
    refused(Replace("host", "owned", "file"), ctx, "Replace: tool-1.0: tool-1.0 is a symlink")
    refused(addSource("main.c", dest="x/"), ctx, "addSource: tool-1.0: tool-1.0 is a symlink")


@HOW
def test_source_actions_through_planted_links(ctx, untouched, resolver, how):
    put(ctx.recipe_dir, "main.c", b"int main(void) { return 0; }\n")
    put(ctx.recipe_dir, "tool.tar", b"not read: refused before unpacking")
    plant(ctx.builddir / "include", untouched, how)
    refused(addSource("main.c", dest="include/"), ctx,
            "addSource: include/main.c: include is a symlink leading outside the build directory")
    refused(addSource("main.c", dest="include/sub/x.c", macros=True), ctx, "addSource: include/sub/x.c: include is")
    refused(addArchive("tool.tar", dir="tool-1.0/include/extra"), ctx,
            "addArchive: tool-1.0/include/extra: tool-1.0/include is a symlink")
    plant(ctx.recipe_dir / "shadow", untouched / "file", how)
    refused(addSource("shadow"), ctx, "source shadow: shadow is a symlink leading outside the recipe directory")
    assert not (ctx.builddir / "shadow").exists()


# ------------------------------------------------------------------ ordinary work


def test_remove_globs_directories_and_links(ctx, canary, untouched, resolver):
    for name in ("libtool.la", "libx.la", "libx.so.1"):
        put(ctx.destdir, f"/usr/lib64/{name}")
    put(ctx.destdir, "/usr/share/info/tool.info")
    (ctx.destdir / "usr/share/doclink").symlink_to(canary)   # a link to remove, never to follow
    Remove("%(libdir)s/*.la").do(ctx)
    assert sorted(p.name for p in (ctx.destdir / "usr/lib64").iterdir()) == ["libx.so.1"]
    with pytest.raises(RecipeError, match="is a directory; pass recursive=True"):
        Remove("%(infodir)s").do(ctx)
    Remove("%(infodir)s", "%(datadir)s/doclink", "/not/there", recursive=True).do(ctx)
    assert sorted(p.name for p in (ctx.destdir / "usr/share").iterdir()) == []


def test_install_files_globs_and_directories(ctx, resolver):
    put(ctx.builddir, "tool", b"\x7fELF...", 0o755)
    put(ctx.builddir, "docs/a.txt", b"a")
    put(ctx.builddir, "docs/b.txt", b"b", 0o600)
    put(ctx.builddir, "docs/skip.md", b"m")
    put(ctx.builddir, "share/tool/data/x", b"x", 0o640)
    os.chmod(ctx.builddir / "share/tool/data", 0o750)
    (ctx.builddir / "share/tool/current").symlink_to("data")
    Install("tool", "%(bindir)s/tool").do(ctx)
    Install("docs/*.txt", "%(thisdocdir)s/").do(ctx)
    Install("docs/a.txt", "%(sysconfdir)s/only/", mode=0o600).do(ctx)
    Install("share/tool", "%(datadir)s/").do(ctx)
    d = ctx.destdir
    assert (d / "usr/bin/tool").read_bytes() == b"\x7fELF..." and mode_of(d / "usr/bin/tool") == 0o755
    doc = d / "usr/share/doc/tool-1.0"
    assert sorted(p.name for p in doc.iterdir()) == ["a.txt", "b.txt"]
    assert mode_of(doc / "a.txt") == mode_of(doc / "b.txt") == 0o644
    assert mode_of(d / "etc/only/a.txt") == 0o600
    assert snapshot(d / "usr/share/tool") == {
        ".": ("dir", 0o755), "data": ("dir", 0o750), "data/x": ("file", 0o640, b"x"), "current": ("link", "data")}
    with pytest.raises(RecipeError, match="nothing matches 'nope'"):
        Install("nope", "/x").do(ctx)
    with pytest.raises(RecipeError, match="/usr/bin is a directory; end dest with '/'"):
        Install("tool", "%(bindir)s").do(ctx)


def test_install_follows_links_that_stay_inside(ctx, resolver):
    (ctx.destdir / "usr/lib").mkdir(parents=True)
    (ctx.destdir / "lib").symlink_to("usr/lib")
    put(ctx.builddir, "libx.so.1", b"lib")
    (ctx.builddir / "objs").symlink_to(".")
    Install("objs/libx.so.1", "/lib/").do(ctx)
    assert (ctx.destdir / "usr/lib/libx.so.1").read_bytes() == b"lib"


def test_move_symlink_makedirs_create(ctx, resolver):
    put(ctx.destdir, "/usr/bin/tool", b"t", 0o755)
    Move("%(bindir)s/tool", "%(sbindir)s/tool").do(ctx)
    assert (ctx.destdir / "usr/sbin/tool").read_bytes() == b"t" and not (ctx.destdir / "usr/bin/tool").exists()
    with pytest.raises(RecipeError, match="does not exist"):
        Move("%(bindir)s/tool", "/x").do(ctx)
    Symlink("busybox", "%(essentialbindir)s/sh").do(ctx)
    Symlink("ash", "%(essentialbindir)s/sh").do(ctx)          # replaces the existing link
    Symlink("/bin/busybox", "/sbin/").do(ctx)
    assert os.readlink(ctx.destdir / "bin/sh") == "ash"
    assert os.readlink(ctx.destdir / "sbin/busybox") == "/bin/busybox"
    MakeDirs("/tmp", "/var/tmp", mode=0o1777).do(ctx)
    assert mode_of(ctx.destdir / "var/tmp") == 0o1777 and mode_of(ctx.destdir / "tmp") == 0o1777
    Create("%(sysconfdir)s/issue", contents="%(name)s %(version)s\n").do(ctx)
    Create("/sbin/init", contents="%(name)s", mode=0o755, macros=False).do(ctx)
    assert (ctx.destdir / "etc/issue").read_text() == "tool 1.0\n"
    assert (ctx.destdir / "sbin/init").read_text() == "%(name)s" and mode_of(ctx.destdir / "sbin/init") == 0o755
    Create("%(sysconfdir)s/issue", contents="short").do(ctx)                # overwritten, not appended to
    assert (ctx.destdir / "etc/issue").read_text() == "short"


def test_replace_in_the_build_directory_and_in_destdir(ctx, resolver):
    put(ctx.builddir, ".config", b"CONFIG_STATIC=n\nCONFIG_X=y\n")
    put(ctx.destdir, "/etc/tool.conf", b"prefix=@PREFIX@\n", 0o600)
    (ctx.destdir / "etc/tool.link").symlink_to("tool.conf")
    Replace(r"^CONFIG_STATIC=.*", "CONFIG_STATIC=y", ".config").do(ctx)
    Replace("@PREFIX@", "%(prefix)s", "/etc/tool.link").do(ctx)     # an in-root link is followed
    assert (ctx.builddir / ".config").read_text() == "CONFIG_STATIC=y\nCONFIG_X=y\n"
    assert (ctx.destdir / "etc/tool.conf").read_text() == "prefix=/usr\n"
    assert mode_of(ctx.destdir / "etc/tool.conf") == 0o600
    with pytest.raises(RecipeError, match="matches nothing in .config"):
        Replace("absent", "x", ".config").do(ctx)
    Replace("absent", "x", ".config", allowNoChange=True).do(ctx)
    with pytest.raises(RecipeError, match="must not contain '..'"):
        Replace("x", "y", "../other").do(ctx)


def test_setmodes_setuid_on_files_inside(ctx, resolver):
    put(ctx.destdir, "/usr/bin/ping", b"p", 0o755)
    put(ctx.destdir, "/usr/bin/su", b"s", 0o755)
    (ctx.destdir / "usr/bin/ping6").symlink_to("ping")
    SetModes("%(bindir)s/ping", mode=0o4755).do(ctx)
    assert mode_of(ctx.destdir / "usr/bin/ping") == 0o4755
    SetModes("%(bindir)s/s*", "%(bindir)s/ping6", mode=0o4711).do(ctx)   # a link inside: its target
    assert mode_of(ctx.destdir / "usr/bin/su") == mode_of(ctx.destdir / "usr/bin/ping") == 0o4711
    assert (ctx.destdir / "usr/bin/ping6").is_symlink()
    with pytest.raises(RecipeError, match="nothing matches"):
        SetModes("/nope/*", mode=0o755).do(ctx)


def test_add_source_into_the_build_directory(ctx, resolver):
    put(ctx.recipe_dir, "init.sh", b"echo %(name)s\n")
    (ctx.recipe_dir / "alias.sh").symlink_to("init.sh")      # a link beside the recipe, staying there
    ctx.builddir.rmdir()                                         # sources come before the build directory
    addSource("init.sh", mode=0o755).do(ctx)
    addSource("alias.sh", dest="sub/", macros=True).do(ctx)
    assert (ctx.builddir / "init.sh").read_bytes() == b"echo %(name)s\n" and mode_of(ctx.builddir / "init.sh") == 0o755
    assert (ctx.builddir / "sub/alias.sh").read_text() == "echo tool\n"
