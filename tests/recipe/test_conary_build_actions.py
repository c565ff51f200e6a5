"""conary's build actions in conary-style recipes, cooked for x86_64 and x86 through the real
command line: Environment, ManualConfigure, MakePathsInstall, Doc, Copy, Desktopfile,
Symlink of many targets, positional SetModes; CMake and PythonSetup with cmake and
Python's setuptools imported from Debian; the results checked in the repository."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from appbuilder.cli.common import open_repo
from appbuilder.core.arch import get_arch
from appbuilder.core.errors import RecipeError
from appbuilder.recipe.build_actions import SetModes, Symlink
from appbuilder.recipe.install_actions import Copy, desktop_entry
from tests.conftest import component, make_settings, new_workspace, run_appbuild, seed_repository

CONARYBUILD = r'''
class ConaryBuild(PackageRecipe):
    name = 'conarybuild'
    version = '2.0'

    def setup(r):
        r.addSource('configure', mode=0o755)
        for f in ('Makefile', 'cb.1', 'README', 'NEWS', 'cb.desktop'):
            r.addSource(f)
        r.addSource('index.html', dest='html/')
        r.Environment('CB_GREETING', 'hello from %(name)s')
        r.ManualConfigure('--with-greeting=yes')
        r.Make()
        r.MakePathsInstall()
        r.Doc('README', 'html/')
        r.Doc('NEWS', dir='notes')
        r.Copy('%(bindir)s/cb', '%(bindir)s/cb-copy')
        r.Copy('greeting.txt', 'README', '%(datadir)s/cb/copied/', mode=0o600)
        r.Desktopfile('cb.desktop', category='Utility')
        r.Symlink('%(bindir)s/cb', '%(bindir)s/cb-copy', '%(libexecdir)s/cb/')
        r.Symlink('%(bindir)s/cb*', '%(datadir)s/cb/bin/')
        r.SetModes('%(bindir)s/cb', '%(bindir)s/cb-copy', 0o4755)
        r.SetModes('%(datadir)s/cb/greeting.txt', 640)
'''

CONFIGURE = "#!/bin/sh\necho \"CONFIG_ARGS=$*\" > config.mk\n"
MAKEFILE = """\
include config.mk
all: cb greeting.txt
cb:
\tprintf '#!/bin/sh\\necho "configured with: %s"\\n' "$(CONFIG_ARGS)" > cb
greeting.txt:
\techo "$$CB_GREETING" > greeting.txt
install:
\tmkdir -p $(bindir) $(mandir)/man1 $(datadir)/cb
\tinstall -m 0755 cb $(bindir)/cb
\tinstall -m 0644 greeting.txt $(datadir)/cb/greeting.txt
\tinstall -m 0644 cb.1 $(mandir)/man1/cb.1
"""
DESKTOP = "[Desktop Entry]\nType=Application\nName=CB\nExec=cb\nCategories=System;\n"

CMAKEHELLO = r'''
class CMakeHello(PackageRecipe):
    name = 'cmakehello'
    version = '1.0'
    # Debian's cmake and its modules (the closure follows libraries, not Debian's Depends)
    buildRequires = ['cmake', 'cmake-data']

    def setup(r):
        for f in ('CMakeLists.txt', 'hello.c', 'greet.c'):
            r.addSource(f)
        r.CMake(objDir='build')
        r.Make(dir='build')
        r.MakeInstall(dir='build')
'''
CMAKELISTS = """\
cmake_minimum_required(VERSION 3.13)
project(cmhello C)
include(GNUInstallDirs)
add_library(greet SHARED greet.c)
set_target_properties(greet PROPERTIES VERSION 1.0 SOVERSION 1)
add_executable(cmhello hello.c)
target_link_libraries(cmhello greet)
install(TARGETS cmhello greet RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
"""
GREET_C = "#include <stdio.h>\nvoid greet(const char *w) { printf(\"hello, %s\\n\", w); }\n"
HELLO_C = "void greet(const char *w);\nint main(void) { greet(\"cmake\"); return 0; }\n"

PYHELLO = r'''
class PyHello(PackageRecipe):
    name = 'pyhello'
    version = '0.3'
    buildRequires = ['python3-minimal', 'python3.11-minimal', 'libpython3.11-minimal', 'libpython3.11-stdlib',
                     'python3-setuptools', 'python3-pkg-resources', 'python3-distutils', 'python3-lib2to3']

    def setup(r):
        r.addSource('setup.py')
        r.addSource('__init__.py', dest='pyhello/')
        r.PythonSetup()
'''
SETUP_PY = """\
from setuptools import setup
setup(name='pyhello', version='0.3', packages=['pyhello'])
"""

# Debian's cmake and python3-setuptools with everything they need (apt-cache depends
# --recurse); packages of every architecture ("all") are imported once, the others for
# amd64 and i386 (an x86 cook's build requirements are x86 packages)
ARCH_ALL = ("cmake-data init-system-helpers libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl "
            "perl-modules-5.36 usr-is-merged libtirpc-common mailcap media-types mime-support python3-distutils "
            "python3-lib2to3 python3-pkg-resources python3-setuptools readline-common").split()
ARCH_ANY = ("cmake dpkg gcc-12-base libacl1 libarchive13 libbrotli1 libbz2-1.0 libc6 libcap2 libcom-err2 libcrypt1 "
            "libcurl4 libdb5.3 libelogind0 libexpat1 libffi8 libgcc-s1 libgcrypt20 libgdbm-compat4 libgdbm6 libgmp10 "
            "libgnutls30 libgpg-error0 libgssapi-krb5-2 libhogweed6 libicu72 libidn2-0 libjsoncpp25 libk5crypto3 "
            "libkeyutils1 libkrb5-3 libkrb5support0 libldap-2.5-0 liblz4-1 liblzma5 libmd0 libncursesw6 libnettle8 "
            "libnghttp2-14 libp11-kit0 libpcre2-8-0 libperl5.36 libproc2-0 libpsl5 librhash0 librtmp1 libsasl2-2 "
            "libsasl2-modules-db libselinux1 libssh2-1 libssl3 libstdc++6 libsystemd0 libtasn1-6 libtinfo6 "
            "libunistring2 libuv1 libxml2 libzstd1 perl perl-base procps tar zlib1g install-info libnsl2 "
            "libpython3-stdlib libpython3.11-minimal libpython3.11-stdlib libreadline8 libsqlite3-0 libtirpc3 "
            "libuuid1 python3 python3-minimal python3.11 python3.11-minimal").split()


def write(d, files: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(textwrap.dedent(text) if name == "recipe.py" else text)


@pytest.fixture(scope="module")
def conarybuild(tmp_path_factory, toolchain_repo, shared_cache):
    root = tmp_path_factory.mktemp("conary-build")
    ws = new_workspace(root)
    write(ws / "recipes/conarybuild", {"recipe.py": CONARYBUILD, "configure": CONFIGURE, "Makefile": MAKEFILE,
                                        "cb.1": ".TH CB 1\n", "README": "read me\n", "NEWS": "news\n",
                                        "cb.desktop": DESKTOP, "index.html": "<html></html>\n"})
    (ws / "recipes/conarybuild/configure").chmod(0o755)
    s = seed_repository(make_settings(root, workspace=ws, cache=shared_cache), toolchain_repo)
    run_appbuild(s, "cook", "recipes/conarybuild", "--arch", "all", "-j", "2")
    return s


def files_of(repo, name: str, arch: str) -> dict:
    pkg = repo.get(repo.find_one(name, arch=arch))
    return {f.path: (c.name, f) for m in pkg.members for c in [repo.get(m)] for f in c.files}


@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_conary_file_and_command_actions(conarybuild, arch):
    repo = open_repo(conarybuild)
    files = files_of(repo, "conarybuild", arch)
    read = lambda path: repo.store.read(files[path][1].sha256).decode()  # noqa: E731
    # ManualConfigure: only the recipe's arguments; Environment reached make; MakePathsInstall
    assert 'echo "configured with: --with-greeting=yes"' in read("/usr/bin/cb")
    assert read("/usr/share/cb/greeting.txt") == "hello from conarybuild\n"
    assert "/usr/share/man/man1/cb.1.gz" in files
    # Doc: files and directories into %(thisdocdir)s, in :supdoc
    doc = "/usr/share/doc/conarybuild-2.0"
    for path in (f"{doc}/README", f"{doc}/html/index.html", f"{doc}/notes/NEWS"):
        assert files[path][0] == "conarybuild:supdoc" and files[path][1].mode == 0o644, path
    # Copy keeps modes, or sets mode=
    assert read("/usr/bin/cb-copy") == read("/usr/bin/cb")
    assert files["/usr/share/cb/copied/greeting.txt"][1].mode == 0o600
    assert files["/usr/share/cb/copied/README"][1].mode == 0o600
    # Desktopfile: checked, category added, vendor prefix
    desktop = read("/usr/share/applications/net-cb.desktop")
    assert "Categories=System;Utility;" in desktop and "Exec=cb" in desktop
    assert files["/usr/share/applications/net-cb.desktop"][1].mode == 0o644
    # Symlink of several targets into a directory, and of a glob
    assert files["/usr/libexec/cb/cb"][1].target == "/usr/bin/cb"
    assert files["/usr/libexec/cb/cb-copy"][1].target == "/usr/bin/cb-copy"
    assert {p: f.target for p, (_c, f) in files.items() if p.startswith("/usr/share/cb/bin/")} == {
        "/usr/share/cb/bin/cb": "/usr/bin/cb", "/usr/share/cb/bin/cb-copy": "/usr/bin/cb-copy"}
    # SetModes: the mode as the last positional argument; 640 (decimal) corrected to 0o640
    assert files["/usr/bin/cb"][1].mode == 0o4755 and files["/usr/bin/cb-copy"][1].mode == 0o4755
    assert files["/usr/share/cb/greeting.txt"][1].mode == 0o640


def test_the_decimal_mode_warning_is_in_the_build_log(conarybuild):
    repo = open_repo(conarybuild)
    pkg = repo.get(repo.find_one("conarybuild", arch="x86_64"), with_files=False)
    log = repo.store.read(repo.build_log(pkg.nvf)).decode()
    assert "SetModes: odd mode 640 (decimal), using 0640: write 0o640" in log


@pytest.fixture(scope="module")
def tools(tmp_path_factory, toolchain_repo, shared_cache):
    """cmakehello and pyhello cooked for both architectures, with Debian's cmake and
    setuptools imported."""
    root = tmp_path_factory.mktemp("conary-tools")
    ws = new_workspace(root)
    write(ws / "recipes/cmakehello", {"recipe.py": CMAKEHELLO, "CMakeLists.txt": CMAKELISTS, "greet.c": GREET_C,
                                       "hello.c": HELLO_C})
    write(ws / "recipes/pyhello", {"recipe.py": PYHELLO, "setup.py": SETUP_PY,
                                    "__init__.py": "def hello():\n    return 'hello'\n"})
    s = seed_repository(make_settings(root, workspace=ws, cache=shared_cache), toolchain_repo)
    run_appbuild(s, "import", "deb", *ARCH_ALL, *ARCH_ANY, *(f"{p}:i386" for p in ARCH_ANY), timeout=3600)
    run_appbuild(s, "cook", "recipes/", "--arch", "all", "-j", "2")
    return s


@pytest.mark.parametrize("arch, elf", [("x86_64", "ELF64"), ("x86", "ELF32")])
def test_cmake_builds_and_installs_into_the_conary_directories(tools, arch, elf, tmp_path):
    repo = open_repo(tools)
    lib = get_arch(arch).lib
    files = files_of(repo, "cmakehello", arch)
    assert files["/usr/bin/cmhello"][0] == "cmakehello:runtime"
    assert files[f"/usr/{lib}/libgreet.so.1.0"][0] == "cmakehello:lib"
    assert files[f"/usr/{lib}/libgreet.so"][0] == "cmakehello:devellib"
    runtime = {str(d) for d in component(repo, "cmakehello:runtime", arch).requires}
    assert f"soname: {elf}/libgreet.so.1({arch})" in runtime
    program = tmp_path / "cmhello"
    program.write_bytes(repo.store.read(files["/usr/bin/cmhello"][1].sha256))
    kind = subprocess.run(["file", "-b", str(program)], capture_output=True, text=True).stdout
    assert ("32-bit" if arch == "x86" else "64-bit") in kind


@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_python_setup_installs_into_the_python_component(tools, arch):
    repo = open_repo(tools)
    lib = get_arch(arch).lib
    files = files_of(repo, "pyhello", arch)
    init = f"/usr/{lib}/python3.11/site-packages/pyhello/__init__.py"
    assert files[init][0] == "pyhello:python"
    assert repo.store.read(files[init][1].sha256) == b"def hello():\n    return 'hello'\n"
    assert not any(p.endswith(".egg") for p in files)  # setuptools without an egg


def test_bad_arguments_are_recipe_errors():
    with pytest.raises(RecipeError, match="give the mode last"):
        SetModes("/usr/bin/a", "/usr/bin/b")
    with pytest.raises(RecipeError, match="several targets need a directory"):
        Symlink("a", "b", "/usr/bin/c")
    with pytest.raises(RecipeError, match="several sources need a directory"):
        Copy("a", "b", "/usr/share/c")
    with pytest.raises(RecipeError, match="has no Name= key"):
        desktop_entry(b"[Desktop Entry]\nType=Application\nExec=x\n", "x.desktop", None)
    with pytest.raises(RecipeError, match="first group must be"):
        desktop_entry(b"[Other]\nName=x\n", "x.desktop", None)
