"""Recipe macros: recursive expansion, self-reference, errors, architecture values."""

from __future__ import annotations

import pytest

from appbuilder.core.arch import get_arch
from appbuilder.core.errors import RecipeError
from appbuilder.recipe.macros import Macros, default_macros


def test_recursive_expansion():
    m = Macros({"prefix": "/usr", "exec_prefix": "%(prefix)s", "bindir": "%(exec_prefix)s/bin"})
    assert m.bindir == "/usr/bin" and m["bindir"] == "/usr/bin"
    m.prefix = "/opt/x"  # expansion is late: dependants follow
    assert m.bindir == "/opt/x/bin"
    assert m.expand("%(bindir)s/tool and %(prefix)s") == "/opt/x/bin/tool and /opt/x"
    assert "bindir" in m and "nothing" not in m
    assert m.keys() == ["bindir", "exec_prefix", "prefix"]


def test_self_reference_with_plus_equals():
    m = Macros({"optflags": "-O2", "cflags": "%(optflags)s -g"})
    m.cflags += " -fPIC"
    assert m.cflags == "-O2 -g -fPIC"


def test_self_reference_in_the_new_definition_keeps_later_changes_visible():
    m = Macros({"optflags": "-O2", "cflags": "%(optflags)s -g"})
    m.cflags = "%(cflags)s -x"
    m["cflags"] = "-y %(cflags)s"
    assert m.cflags == "-y -O2 -g -x"
    m.optflags = "-Os"  # the old definition was spliced in unexpanded
    assert m.cflags == "-y -Os -g -x"


def test_self_reference_of_a_new_macro_is_empty():
    m = Macros()
    m.extra = "%(extra)s-a"
    assert m.extra == "-a"


def test_reference_cycle_is_an_error():
    m = Macros({"a": "%(b)s", "b": "%(c)s", "c": "%(a)s"})
    with pytest.raises(RecipeError, match=r"macro %\(a\)s refers to itself through a -> b -> c"):
        m.a


def test_unknown_macro_with_suggestion():
    m = default_macros(get_arch("x86_64"), name="n", version="1")
    with pytest.raises(RecipeError, match=r"unknown macro %\(bindri\)s \(did you mean %\(bindir\)s\?\)"):
        m.expand("%(bindri)s/x")
    with pytest.raises(RecipeError, match=r"unknown macro %\(zzzzzz\)s$"):
        m["zzzzzz"]
    m.broken = "%(libdri)s/x"
    with pytest.raises(RecipeError, match=r"unknown macro %\(libdri\)s \(did you mean %\(libdir\)s\?\)"):
        m.broken


def test_double_percent_is_a_literal_percent():
    m = Macros({"name": "pkg"})
    assert m.expand("100%% of %(name)s") == "100% of pkg"
    assert m.expand("%%(name)s") == "%(name)s"
    assert m.expand("date +%%Y-%%m") == "date +%Y-%m"
    assert m.expand("a single % stays") == "a single % stays"


def test_private_attributes_are_not_macros():
    m = Macros({"a": "1"})
    with pytest.raises(AttributeError):
        m._secret


def test_copy_is_independent():
    m = Macros({"a": "1"})
    c = m.copy()
    c.a = "2"
    assert m.a == "1" and c.a == "2"


def test_arch_macros_differ_for_x86_and_x86_64(x86_64, x86):
    m64 = default_macros(x86_64, name="hello", version="1.0", jobs=3)
    m32 = default_macros(x86, name="hello", version="1.0")
    assert m64.lib == "lib64" and m64.libdir == "/usr/lib64" and m64.essentiallibdir == "/lib64"
    assert m32.lib == "lib" and m32.libdir == "/usr/lib" and m32.essentiallibdir == "/lib"
    assert m64.archflags == "-m64"
    assert "-m32" in m32.archflags.split()
    assert m64.cflags.split()[-1] == "-m64" and "-m32" in m32.cflags.split()
    assert m64.ldflags == m64.archflags and m32.ldflags == m32.archflags
    assert m64.target.startswith("x86_64-") and m32.target.startswith("i686-")
    assert m64.build == m64.host == m64.target
    assert m64.dynamiclinker == "/lib64/ld-linux-x86-64.so.2" and m32.dynamiclinker == "/lib/ld-linux.so.2"
    assert (m64.elfclass, m32.elfclass) == ("64", "32")
    assert (m64.debianarch, m32.debianarch) == ("amd64", "i386")
    assert (m64.arch, m32.arch) == ("x86_64", "x86")
    assert m64.parallelmflags == "-j3"
    assert m64.thisdocdir == "/usr/share/doc/hello-1.0"
    # every default expands without error on both
    for m in (m64, m32):
        for key in m.keys():
            m[key]


def test_recipe_macros_follow_the_arch(tmp_path, x86_64, x86):
    from appbuilder.recipe.base import PackageRecipe

    class Pkg(PackageRecipe):
        name = "pkg"
        version = "2.1"

        def setup(r):
            r.macros.cflags += " -fPIC"

    r64, r32 = Pkg(x86_64), Pkg(x86)
    r64.setup()
    r32.setup()
    assert r64.macros.cflags.endswith("-m64 -fPIC") and r32.macros.cflags.endswith("-fPIC")
    assert "-m32" in r32.macros.cflags and "-m32" not in r64.macros.cflags
    assert r64.macros.expand("%(libdir)s/%(name)s-%(version)s") == "/usr/lib64/pkg-2.1"
    assert r32.macros.expand("%(libdir)s/%(name)s-%(version)s") == "/usr/lib/pkg-2.1"
