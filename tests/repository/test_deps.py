"""Typed dependencies: parse, format, and which provision satisfies which requirement."""

from __future__ import annotations

import pytest

from appbuilder.core.errors import RepositoryError
from appbuilder.repository.deps import Dependency, file_dep, soname, trove_dep


@pytest.mark.parametrize("text, cls, name, flags", [
    ("soname: ELF64/libc.so.6(GLIBC_2.34 x86_64)", "soname", "ELF64/libc.so.6", {"GLIBC_2.34", "x86_64"}),
    ("soname: ELF32/libc.so.6(x86)", "soname", "ELF32/libc.so.6", {"x86"}),
    ("file: /bin/sh", "file", "/bin/sh", set()),
    ("trove: busybox:runtime", "trove", "busybox:runtime", set()),
    ("abi: ELF64(SysV x86_64)", "abi", "ELF64", {"SysV", "x86_64"}),
    ("python: json", "python", "json", set()),
    ("  file:/usr/bin/env  ", "file", "/usr/bin/env", set()),
    ("soname: ELF64/libfoo.so.1()", "soname", "ELF64/libfoo.so.1", set()),
])
def test_parse(text, cls, name, flags):
    d = Dependency.parse(text)
    assert (d.cls, d.name, set(d.flags)) == (cls, name, flags)
    assert isinstance(d.flags, frozenset)


@pytest.mark.parametrize("text", [
    "soname: ELF64/libc.so.6(x86_64 GLIBC_2.34)",
    "file: /bin/sh",
    "trove: hello:config",
    "abi: ELF32(SysV x86)",
])
def test_str_parse_round_trip_sorts_flags(text):
    d = Dependency.parse(text)
    assert Dependency.parse(str(d)) == d
    if d.flags:
        inside = str(d).split("(", 1)[1].rstrip(")").split()
        assert inside == sorted(inside)


@pytest.mark.parametrize("text", [
    "nosuchclass: foo",    # unknown class
    "soname ELF64/libc.so.6",  # no colon
    "file:",               # no name
    "FILE: /bin/sh",       # class is lower case
    "file: /a b",          # space in the name
    "",
])
def test_parse_refuses_bad_input(text):
    with pytest.raises(RepositoryError):
        Dependency.parse(text)


def test_constructor_checks_class_and_name():
    with pytest.raises(RepositoryError, match="unknown dependency class"):
        Dependency("shlib", "x")
    with pytest.raises(RepositoryError, match="bad dependency name"):
        Dependency("file", "")
    with pytest.raises(RepositoryError, match="bad dependency name"):
        Dependency("file", "/a\tb")
    assert Dependency("soname", "ELF64/x.so", ["b", "a"]).flags == frozenset({"a", "b"})


def test_satisfied_when_provision_flags_are_a_superset():
    req = Dependency.parse("soname: ELF64/libc.so.6(GLIBC_2.2.5 x86_64)")
    assert req.satisfied_by(Dependency.parse("soname: ELF64/libc.so.6(GLIBC_2.2.5 GLIBC_2.34 x86_64)"))
    assert req.satisfied_by(req)
    # the provision lacks a symbol version the requirement uses
    assert not req.satisfied_by(Dependency.parse("soname: ELF64/libc.so.6(x86_64)"))
    # fewer flags required: met by anything of the same name with more
    assert Dependency.parse("soname: ELF64/libc.so.6(x86_64)").satisfied_by(req)
    assert Dependency.parse("soname: ELF64/libc.so.6").satisfied_by(req)


def test_elf32_and_elf64_never_satisfy_each_other():
    for a, b in (("ELF64", "ELF32"), ("ELF32", "ELF64")):
        req = Dependency.parse(f"soname: {a}/libc.so.6")  # no flags at all
        prov = Dependency.parse(f"soname: {b}/libc.so.6(GLIBC_2.0 x86 x86_64)")
        assert not req.satisfied_by(prov)
    assert not soname("ELF64", "libz.so.1", "x86_64").satisfied_by(soname("ELF32", "libz.so.1", "x86"))
    assert not soname("ELF32", "libz.so.1", "x86").satisfied_by(soname("ELF64", "libz.so.1", "x86_64"))


def test_class_and_name_must_match():
    assert not Dependency.parse("file: /bin/sh").satisfied_by(Dependency.parse("trove: /bin/sh"))
    assert not Dependency.parse("file: /bin/sh").satisfied_by(Dependency.parse("file: /bin/bash"))
    assert Dependency.parse("file: /bin/sh").satisfied_by(file_dep("/bin/sh"))


def test_helpers():
    assert str(soname("ELF64", "libhello.so.1", "x86_64", ["LIBHELLO_1.0"])) == \
        "soname: ELF64/libhello.so.1(LIBHELLO_1.0 x86_64)"
    assert str(file_dep("/bin/sh")) == "file: /bin/sh"
    assert str(trove_dep("hello:lib")) == "trove: hello:lib"
    assert soname("ELF64", "x.so", "x86_64").flags_text == "x86_64"


def test_hashable_and_ordered():
    a = Dependency.parse("soname: ELF64/libc.so.6(x86_64 GLIBC_2.34)")
    b = Dependency.parse("soname: ELF64/libc.so.6(GLIBC_2.34 x86_64)")
    assert a == b and len({a, b}) == 1
    deps = [Dependency.parse("trove: b"), Dependency.parse("file: /z"), Dependency.parse("file: /a")]
    assert [str(d) for d in sorted(deps)] == ["file: /a", "file: /z", "trove: b"]
