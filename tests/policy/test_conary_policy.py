"""conary's packaging policy on a conary-style recipe, cooked for x86_64 and x86: several
packages from one recipe (PackageSpec), conary's components (:devellib, :locale, :supdoc,
...), RemoveNonPackageFiles, NormalizeManPages and NormalizeInfoPages by default, and
conary's Requires/Provides shorthands, checked in the repository."""

from __future__ import annotations

import gzip
import textwrap

import pytest

from appbuilder.cli.common import open_repo
from appbuilder.core.arch import get_arch
from appbuilder.core.errors import RecipeError
from appbuilder.policy.destdir import compress
from appbuilder.recipe.policy_actions import PackageSpec, Provides, Requires
from appbuilder.repository.deps import Dependency
from tests.conftest import component, run_appbuild

RECIPE = r'''
class ConaryTool(PackageRecipe):
    name = 'conarytool'
    version = '1.0'

    def setup(r):
        r.addSource('ct.c')
        r.addSource('main.c')
        r.Run('%(cc)s %(cflags)s -fPIC -c ct.c -o ct.o')
        r.Run('%(cc)s %(ldflags)s -shared -Wl,-soname,libct.so.1 -o libct.so.1.0 ct.o')
        r.Run('ar rcs libct.a ct.o')
        r.Run('%(cc)s %(cflags)s %(ldflags)s -o ct main.c -L. -l:libct.so.1.0')
        r.Install('libct.so.1.0', '%(libdir)s/')
        r.Symlink('libct.so.1.0', '%(libdir)s/libct.so.1')
        r.Symlink('libct.so.1', '%(libdir)s/libct.so')
        r.Install('libct.a', '%(libdir)s/')
        r.Install('ct', '%(bindir)s/')
        r.Create('%(libdir)s/libct.la', contents='# a libtool archive\n')
        r.Create('%(libdir)s/pkgconfig/ct.pc', contents='Name: ct\n')
        r.Create('%(includedir)s/ct.h', contents='int ct(void);\n')
        r.Create('%(datadir)s/locale/de/LC_MESSAGES/ct.mo', contents='x\n')
        r.Create('%(thisdocdir)s/README', contents='read me\n')
        r.Create('%(thisdocdir)s/example.sh', contents='#!/usr/bin/perl\n', mode=0o755)
        r.Create('%(datadir)s/ct/words', contents='alpha\nbeta\n')
        r.Create('%(datadir)s/ct/stale.orig', contents='old\n')
        r.Create('%(datadir)s/ct/keep.orig', contents='kept\n')
        r.Create('/tmp/scratch', contents='tmp\n')
        r.RemoveNonPackageFiles(exceptions=r'%(datadir)s/ct/keep\.orig')

        # man and info pages, as a Makefile would leave them
        r.Create('%(mandir)s/man1/ct.1', contents='.TH CT 1\nct lives in %(destdir)s%(bindir)s/ct\n')
        r.Create('%(mandir)s/man1/ct-alias.1', contents='.\\" an alias\n.so man1/ct.1\n')
        r.Symlink('ct.1', '%(mandir)s/man1/ct-link.1')
        r.Create('%(mandir)s/man3/ct.3', contents='.TH CT 3\n')
        r.Run('printf "info text\\n" | gzip -9 > ct.info.gz')
        r.Install('ct.info.gz', '%(infodir)s/')
        r.Create('%(infodir)s/dir', contents='the index\n')

        # a second package from this recipe
        r.Create('%(bindir)s/ct-server', contents='#!/bin/bash\necho serving\n', mode=0o755)
        r.Create('%(sysconfdir)s/ct-server.conf', contents='port=1\n')
        r.PackageSpec('conarytool-server', '%(bindir)s/ct-server', '%(sysconfdir)s/ct-server\.conf')
        r.ComponentSpec('conarytool-server:data', '%(datadir)s/ct/words')

        # conary's requirement forms
        r.Requires('busybox:runtime', '%(bindir)s/ct-server')
        r.Requires('/bin/sh', '%(bindir)s/ct$')
        r.Requires('soname: libplugin.so', '%(bindir)s/ct$')
        r.Requires(exceptDeps=('%(bindir)s/ct-server', 'file: /bin/bash'))
        r.Provides('file', '%(datadir)s/ct/words')
'''

CT_C = "int ct(void) { return 42; }\n"
MAIN_C = "int ct(void);\nint main(void) { return ct() == 42 ? 0 : 1; }\n"


@pytest.fixture(scope="module")
def cooked(tmp_path_factory, toolchain_repo, shared_cache):
    from tests.conftest import make_settings, new_workspace, seed_repository

    root = tmp_path_factory.mktemp("conary-policy")
    ws = new_workspace(root)
    d = ws / "recipes" / "conarytool"
    d.mkdir()
    (d / "recipe.py").write_text(textwrap.dedent(RECIPE))
    (d / "ct.c").write_text(CT_C)
    (d / "main.c").write_text(MAIN_C)
    s = seed_repository(make_settings(root, workspace=ws, cache=shared_cache), toolchain_repo)
    out = run_appbuild(s, "cook", "recipes/conarytool", "--arch", "all", "-j", "2")
    return s, out


def files_of(repo, name: str, arch: str) -> dict[str, tuple[str, object]]:
    pkg = repo.get(repo.find_one(name, arch=arch))
    return {f.path: (c.name, f) for m in pkg.members for c in [repo.get(m)] for f in c.files}


@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_packages_and_conary_components(cooked, arch):
    s, _ = cooked
    repo = open_repo(s)
    lib = get_arch(arch).lib
    main = files_of(repo, "conarytool", arch)
    comp = {path: c for path, (c, _f) in main.items()}
    assert comp[f"/usr/{lib}/libct.so.1.0"] == "conarytool:lib"
    assert comp[f"/usr/{lib}/libct.so"] == "conarytool:devellib"  # the link-time symlink
    assert comp[f"/usr/{lib}/libct.a"] == "conarytool:devellib"
    assert comp[f"/usr/{lib}/pkgconfig/ct.pc"] == "conarytool:devellib"
    assert comp["/usr/include/ct.h"] == "conarytool:devel"
    assert comp["/usr/share/locale/de/LC_MESSAGES/ct.mo"] == "conarytool:locale"
    assert comp["/usr/share/doc/conarytool-1.0/README"] == "conarytool:supdoc"
    assert comp["/usr/share/man/man1/ct.1.gz"] == "conarytool:doc"
    assert comp["/usr/share/man/man3/ct.3.gz"] == "conarytool:devel"
    assert comp["/usr/bin/ct"] == "conarytool:runtime"
    # the second package: its own components, and what ComponentSpec('pkg:comp') sent it
    server = files_of(repo, "conarytool-server", arch)
    assert {p: c for p, (c, _f) in server.items()} == {
        "/usr/bin/ct-server": "conarytool-server:runtime",
        "/etc/ct-server.conf": "conarytool-server:config",
        "/usr/share/ct/words": "conarytool-server:data",
    }
    assert not {"/usr/bin/ct-server", "/etc/ct-server.conf", "/usr/share/ct/words"} & set(main)
    devel = component(repo, "conarytool:devel", arch)
    assert {str(d) for d in devel.requires} >= {"trove: conarytool:devellib", "trove: conarytool:lib"}
    devellib = component(repo, "conarytool:devellib", arch)
    assert "trove: conarytool:lib" in {str(d) for d in devellib.requires}
    # both packages come from the same cook of the same recipe: the same version
    assert repo.find_one("conarytool", arch=arch).version == repo.find_one("conarytool-server", arch=arch).version


@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_files_that_are_not_packaged_are_removed(cooked, arch):
    s, _ = cooked
    paths = set(files_of(open_repo(s), "conarytool", arch))
    lib = get_arch(arch).lib
    assert f"/usr/{lib}/libct.la" not in paths
    assert "/usr/share/ct/stale.orig" not in paths and "/tmp/scratch" not in paths
    assert "/usr/share/ct/keep.orig" in paths  # exceptions= keeps it
    assert "/usr/share/info/dir" not in paths


@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_man_and_info_pages_are_normalized(cooked, arch):
    s, _ = cooked
    repo = open_repo(s)
    files = files_of(repo, "conarytool", arch)
    page = files["/usr/share/man/man1/ct.1.gz"][1]
    assert page.mode == 0o644
    data = repo.store.read(page.sha256)
    # gzip -n -9: no name, no time stamp; the build's install root is gone from the text
    assert data == compress(b".TH CT 1\nct lives in /usr/bin/ct\n")
    assert data[4:8] == b"\0\0\0\0"
    assert files["/usr/share/man/man1/ct-alias.1.gz"][1].target == "ct.1.gz"  # the .so page
    assert files["/usr/share/man/man1/ct-link.1.gz"][1].target == "ct.1.gz"
    assert "/usr/share/man/man1/ct.1" not in files and "/usr/share/man/man1/ct-link.1" not in files
    info = files["/usr/share/info/ct.info.gz"][1]
    info_data = repo.store.read(info.sha256)
    assert gzip.decompress(info_data) == b"info text\n" and info_data == compress(b"info text\n")


@pytest.mark.parametrize("arch, elf", [("x86_64", "ELF64"), ("x86", "ELF32")])
def test_conary_requires_and_provides_forms(cooked, arch, elf):
    s, _ = cooked
    repo = open_repo(s)
    runtime = {str(d) for d in component(repo, "conarytool:runtime", arch).requires}
    assert "file: /bin/sh" in runtime
    assert f"soname: {elf}/libplugin.so({arch})" in runtime  # the requiring file's ELF class and machine
    assert "file: /usr/bin/perl" not in runtime  # scripts below %(docdir)s require nothing
    server = {str(d) for d in component(repo, "conarytool-server:runtime", arch).requires}
    assert "trove: busybox:runtime" in server
    assert "file: /bin/bash" not in server  # exceptDeps
    data = component(repo, "conarytool-server:data", arch)
    assert Dependency.parse("file: /usr/share/ct/words") in data.provides


def test_bad_policy_arguments_are_recipe_errors():
    with pytest.raises(RecipeError, match="cannot tell what 'nonsense' requires"):
        Requires("nonsense", "/usr/bin/x")
    with pytest.raises(RecipeError, match="capability flags"):
        Requires("foo:runtime(ssl)", "/usr/bin/x")
    with pytest.raises(RecipeError, match="exceptDeps must be"):
        Requires(exceptDeps=42)
    with pytest.raises(RecipeError, match="bad package name"):
        PackageSpec("Bad Name", "/x")
    with pytest.raises(RecipeError, match="may be provided by hand"):
        Provides("trove: foo:runtime", "/x")
    with pytest.raises(RecipeError, match="bad path pattern"):
        PackageSpec("ok", "/x(")
