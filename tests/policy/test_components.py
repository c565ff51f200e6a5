"""Which component each installed path goes to: default rules, file kinds, recipe rules first."""

from __future__ import annotations

import pytest

from appbuilder.policy.components import CATCHALL, Classifier
from appbuilder.recipe.macros import default_macros


@pytest.fixture(scope="module")
def classify64(x86_64):
    c = Classifier(default_macros(x86_64, name="pkg", version="1.0"))
    return c.component


@pytest.fixture(scope="module")
def classify32(x86):
    c = Classifier(default_macros(x86, name="pkg", version="1.0"))
    return c.component


@pytest.mark.parametrize("path, kind, executable, component", [
    ("/usr/bin/pkg", "file", True, "runtime"),
    ("/usr/sbin/pkgd", "file", True, "runtime"),
    ("/usr/bin/pkg-config", "file", True, "devel"),
    ("/usr/bin/foo-config", "symlink", False, "devel"),
    ("/usr/lib64/libpkg.so.1.0", "file", True, "lib"),
    ("/usr/lib64/libpkg.so.1", "symlink", False, "lib"),
    ("/usr/lib64/libpkg.so", "symlink", False, "devellib"),   # the link-time symlink
    ("/usr/lib64/libpkg.so", "file", False, "lib"),        # a real file named .so is a library (e.g. a plugin)
    ("/lib64/libpkg.so", "symlink", False, "devellib"),
    ("/usr/lib/x86_64-linux-gnu/libpkg.so", "symlink", False, "devellib"),
    ("/usr/lib64/libpkg.a", "file", False, "devellib"),
    ("/usr/lib64/libpkg.la", "file", False, "lib"),  # RemoveNonPackageFiles removes it first
    ("/usr/lib64/pkgconfig/pkg.pc", "file", False, "devellib"),
    ("/usr/share/pkgconfig/pkg.pc", "file", False, "devellib"),
    ("/usr/include/pkg.h", "file", False, "devel"),
    ("/usr/include/pkg/sub/x.h", "file", False, "devel"),
    ("/usr/share/aclocal/pkg.m4", "file", False, "devel"),
    ("/usr/share/man/man3/pkg_init.3", "file", False, "devel"),
    ("/usr/share/man/man2/x.2", "file", False, "devel"),
    ("/usr/share/man/man1/pkg.1", "file", False, "doc"),
    ("/usr/share/info/pkg.info", "file", False, "doc"),
    ("/usr/share/doc/pkg-1.0/README", "file", False, "supdoc"),
    ("/usr/share/locale/de/LC_MESSAGES/pkg.mo", "file", False, "locale"),
    ("/usr/share/gnome/help/pkg/de/index.html", "file", False, "locale"),
    ("/usr/share/gnome/help/pkg/C/index.html", "file", False, "runtime"),
    ("/usr/lib64/python3.11/site-packages/pkg/__init__.py", "file", False, "python"),
    ("/usr/lib/perl5/vendor_perl/Pkg.pm", "file", False, "perl"),
    ("/var/conary/tests/pkg-1.0/run", "file", True, "test"),
    ("/opt/pkg/lib/helper", "file", True, "lib"),
    ("/usr/lib64/pkg", "dir", False, "runtime"),  # a directory is never :lib
    ("/usr/share/gtk-doc/html/pkg/index.html", "file", False, "doc"),
    ("/etc/pkg.conf", "file", False, "config"),
    ("/etc/pkg/sub/x.conf", "file", False, "config"),
    ("/etc/init.d/pkgd", "file", True, "runtime"),        # executables under /etc are not config
    ("/etc/pkg.d", "dir", False, "runtime"),
    ("/etc/alternatives/pkg", "symlink", False, "runtime"),
    ("/usr/lib/debug/usr/bin/pkg.debug", "file", False, "debuginfo"),
    ("/usr/lib/debug/.build-id/ab/cdef.debug", "symlink", False, "debuginfo"),
    ("/usr/src/debug/pkg-1.0/main.c", "file", False, "debuginfo"),
    ("/usr/lib64/pkg/plugin.so", "file", True, "lib"),
    ("/usr/libexec/pkg/helper", "file", True, "runtime"),
    ("/usr/share/pkg/data.txt", "file", False, "data"),
    ("/var/lib/pkg", "dir", False, "runtime"),
    ("/opt/pkg/bin/tool", "file", True, CATCHALL),
])
def test_default_rules_x86_64(classify64, path, kind, executable, component):
    assert classify64(path, kind, executable) == component


@pytest.mark.parametrize("path, kind, component", [
    ("/usr/lib/libpkg.so.1", "symlink", "lib"),
    ("/usr/lib/libpkg.so", "symlink", "devellib"),
    ("/usr/lib/i386-linux-gnu/libpkg.so", "symlink", "devellib"),
    ("/usr/lib/i386-linux-gnu/libpkg.a", "file", "devellib"),
    ("/usr/lib/libpkg.so.1.0", "file", "lib"),
    ("/usr/lib32/libpkg.so", "symlink", "devellib"),
])
def test_default_rules_x86(classify32, path, kind, component):
    assert classify32(path, kind, False) == component


def test_recipe_component_spec_wins(x86_64):
    macros = default_macros(x86_64, name="pkg", version="1.0")
    c = Classifier(macros, [
        ("runtime", ("%(libdir)s/appliance/.*",)),
        ("devel", ("/usr/share/pkg/templates/.*", "/usr/bin/pkg-gen")),
        ("extras", ("/etc/pkg/extra\\.conf",)),
    ])
    assert c.component("/usr/lib64/appliance/helper.so", "file", True) == "runtime"
    assert c.component("/usr/share/pkg/templates/a.tmpl", "file", False) == "devel"
    assert c.component("/usr/bin/pkg-gen", "file", True) == "devel"
    assert c.component("/etc/pkg/extra.conf", "file", False) == "extras"
    # recipe patterns are whole-path matches, and other paths keep the defaults
    assert c.component("/usr/bin/pkg-gen2", "file", True) == "runtime"
    assert c.component("/usr/lib64/libpkg.so.1", "file", True) == "lib"
    assert c.component("/etc/pkg/other.conf", "file", False) == "config"


def test_patterns_follow_the_macros(x86_64):
    macros = default_macros(x86_64, name="pkg", version="1.0")
    macros.prefix = "/opt/pkg"
    c = Classifier(macros)
    assert c.component("/opt/pkg/include/pkg.h", "file", False) == "devel"
    assert c.component("/opt/pkg/share/man/man1/pkg.1", "file", False) == "doc"
    assert c.component("/usr/include/pkg.h", "file", False) == "devel"  # conary: any .h below an include/
    assert c.component("/usr/include/pkg.txt", "file", False) == "runtime"
