"""Typed dependencies: parse, format, and which provision satisfies which requirement;
the dependency classes as objects (registry, text, matching, where providers are found)."""

from __future__ import annotations

import pickle
import sqlite3

import pytest

from appbuilder.core.errors import RepositoryError
from appbuilder.repository import depclasses
from appbuilder.repository.deps import (
    ABI,
    DEB,
    DEP_CLASSES,
    FILE,
    GROUPINFO,
    PYTHON,
    RPM,
    RPMLIB,
    SONAME,
    TROVE,
    USERINFO,
    Dependency,
    ProvisionIndex,
    dep_class,
    file_dep,
    soname,
    trove_dep,
)
from appbuilder.repository.repo import ComponentContents, PackageBuild, Repository
from appbuilder.repository.trove import FileEntry
from appbuilder.repository.versions import Flavor


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


# ------------------------------------------------------------------ the class registry


def test_registry_holds_exactly_the_stored_class_names():
    # the index stores these names in its cls columns: the set and spellings never change
    assert list(DEP_CLASSES) == ["soname", "file", "trove", "abi", "rpmlib", "rpm", "deb", "python", "userinfo",
                                 "groupinfo"]
    objects = (SONAME, FILE, TROVE, ABI, RPMLIB, RPM, DEB, PYTHON, USERINFO, GROUPINFO)
    assert [c.name for c in objects] == list(DEP_CLASSES)
    assert all(DEP_CLASSES[c.name] is c and dep_class(c.name) is c and str(c) == c.name for c in objects)
    with pytest.raises(RepositoryError, match="unknown dependency class 'shlib'"):
        dep_class("shlib")


def test_each_dependency_knows_its_class_object():
    for name, kind in DEP_CLASSES.items():
        d = Dependency.parse(f"{name}: x")
        assert d.kind is kind and d.cls == name
    # the class object is accepted where the name is, and the stored field stays the name
    d = Dependency(SONAME, "ELF64/libz.so.1", {"x86_64"})
    assert d.cls == "soname" and d.kind is SONAME
    assert d == Dependency("soname", "ELF64/libz.so.1", {"x86_64"}) and hash(d) == hash(Dependency.parse(str(d)))


def test_class_objects_survive_pickling_as_the_registry_objects():
    # the policy scan returns dependencies from worker processes
    d = Dependency.parse("soname: ELF64/libz.so.1(x86_64)")
    back = pickle.loads(pickle.dumps(d))
    assert back == d and back.kind is SONAME
    assert pickle.loads(pickle.dumps(FILE)) is FILE


def test_only_rpmlib_and_abi_are_left_to_the_installer():
    assert {n for n, c in DEP_CLASSES.items() if not c.resolved_by_closure} == {"rpmlib", "abi"}


def test_the_docstring_table_comes_from_the_registry():
    from appbuilder.repository import deps

    table = depclasses.class_table()
    assert table in deps.__doc__ and "{classes}" not in deps.__doc__
    rows = [line for line in table.splitlines() if line.startswith("``")]
    assert [r.split("``")[1] for r in rows] == list(DEP_CLASSES)
    for c in DEP_CLASSES.values():
        assert f"``{c.example}``" in table  # an example is never cut across lines
        assert ("met by the installer" in table.split(f"``{c.name}``", 1)[1].split("\n``", 1)[0]) == \
            (not c.resolved_by_closure)


# ------------------------------------------------------------------ text: every class, parentheses


@pytest.mark.parametrize("text, name, flags", [
    ("soname: ELF64/libc.so.6(GLIBC_2.34 x86_64)", "ELF64/libc.so.6", {"GLIBC_2.34", "x86_64"}),
    ("soname: ELF32/ld-linux.so.2(x86)", "ELF32/ld-linux.so.2", {"x86"}),
    ("soname: ELF64/libstdc++.so.6(CXXABI_1.3 GLIBCXX_3.4 x86_64)", "ELF64/libstdc++.so.6",
     {"CXXABI_1.3", "GLIBCXX_3.4", "x86_64"}),
    ("file: /bin/sh", "/bin/sh", set()),
    ("file: /usr/lib/odd(dir)/x", "/usr/lib/odd(dir)/x", set()),
    ("file: /opt/a(b)", "/opt/a(b)", set()),
    ("trove: busybox:runtime", "busybox:runtime", set()),
    ("abi: ELF64(SysV x86_64)", "ELF64", {"SysV", "x86_64"}),
    ("rpmlib: PayloadIsZstd", "PayloadIsZstd", set()),
    ("rpmlib: CompressedFileNames", "CompressedFileNames", set()),
    ("rpm: bash", "bash", set()),
    ("rpm: perl(Foo::Bar)", "perl(Foo::Bar)", set()),
    ("rpm: pkgconfig(zlib)", "pkgconfig(zlib)", set()),
    ("rpm: libc.so.6(GLIBC_2.34)(64bit)", "libc.so.6(GLIBC_2.34)(64bit)", set()),
    ("rpm: libhello(x86-64)", "libhello(x86-64)", set()),
    ("rpm: config(bash)", "config(bash)", set()),
    ("rpm: font(:lang=en)", "font(:lang=en)", set()),
    ("rpm: python3.11dist(requests)", "python3.11dist(requests)", set()),
    ("rpm: ()", "()", set()),
    ("deb: zlib1g", "zlib1g", set()),
    ("python: json", "json", set()),
    ("python: xml.etree(3.11)", "xml.etree", {"3.11"}),
    ("userinfo: daemon", "daemon", set()),
    ("groupinfo: wheel", "wheel", set()),
])
def test_every_class_reads_and_writes_back(text, name, flags):
    d = Dependency.parse(text)
    assert (d.name, set(d.flags)) == (name, flags)
    assert str(d) == text  # written exactly as read (flags here are in sorted order)
    assert Dependency.parse(str(d)) == d


@pytest.mark.parametrize("dep", [
    Dependency("rpm", "perl(Foo::Bar)"),
    Dependency("rpm", "libc.so.6(GLIBC_2.34)(64bit)"),
    Dependency("rpm", "weird)name("),
    Dependency("file", "/a(b)(c)"),
    Dependency("abi", "odd(name)"),  # classes with flags, names with parentheses
    Dependency("abi", "odd(name)", {"SysV"}),
    Dependency("abi", "unbalanced(", {"x86"}),
    Dependency("abi", "closing)"),
    Dependency("python", "(x)"),
    Dependency("soname", "ELF64/lib(x).so", {"x86_64"}),
    Dependency("soname", "ELF64/lib(x).so"),
])
def test_names_with_parentheses_round_trip(dep):
    assert Dependency.parse(str(dep)) == dep
    assert Dependency.parse(f"  {dep}  ") == dep


def test_a_name_with_parentheses_keeps_its_empty_flag_group_only_when_it_has_flags():
    assert str(Dependency("abi", "odd(name)")) == "abi: odd(name)()"
    assert str(Dependency("rpm", "perl(Foo)")) == "rpm: perl(Foo)"  # no flags to tell apart
    # a requirement on perl is not met by perl(Foo), and the other way round
    assert Dependency.parse("rpm: perl(Foo)") != Dependency.parse("rpm: perl")


@pytest.mark.parametrize("text", [
    "soname: ELF64/libc.so.6(GLIBC_2.2.5 GLIBC_2.34 x86_64)",
    "soname: ELF32/libc.so.6(x86)",
    "soname: ELF64/libhello.so.1",
    "soname: ELF64/libhello.so.1(LIBHELLO_1.0 x86_64)",
])
def test_soname_text_is_unchanged(text):
    d = Dependency.parse(text)
    assert str(d) == text
    assert "(" not in d.name


def test_unknown_class_message_is_unchanged():
    with pytest.raises(RepositoryError, match=r"^unknown dependency class 'nosuchclass' in nosuchclass: foo\(a b\)$"):
        Dependency.parse("nosuchclass: foo(b a)")
    with pytest.raises(RepositoryError, match=r"^unknown dependency class 'shlib' in shlib: x$"):
        Dependency("shlib", "x")


def test_flags_only_where_the_class_has_them():
    for name, kind in DEP_CLASSES.items():
        if kind.has_flags:
            assert Dependency(name, "x", {"f"}).flags == {"f"}
        else:
            with pytest.raises(RepositoryError, match="have no flags"):
                Dependency(name, "x", {"f"})
    for bad in ("", "a b", "a(", "b)", "\t"):  # a flag the text and the index could not carry back
        with pytest.raises(RepositoryError, match="bad dependency flag"):
            Dependency("soname", "ELF64/x.so", {"x86_64", bad})


def test_the_index_stores_and_reads_back_every_class(tmp_path):
    deps = {
        Dependency.parse("rpm: perl(Foo::Bar)"),
        Dependency.parse("rpm: libc.so.6(GLIBC_2.34)(64bit)"),
        Dependency.parse("rpm: pkgconfig(zlib)"),
        Dependency.parse("soname: ELF64/libz.so.1(ZLIB_1.2 x86_64)"),
        Dependency.parse("abi: ELF64(SysV x86_64)"),
        Dependency("abi", "odd(name)"),
        Dependency.parse("file: /opt/a(b)"),
        Dependency.parse("deb: zlib1g"),
        Dependency.parse("python: xml.etree(3.11)"),
        Dependency.parse("userinfo: daemon"),
        Dependency.parse("groupinfo: wheel"),
    }
    requires = {Dependency.parse("rpmlib: PayloadIsZstd"), Dependency.parse("trove: other:runtime"),
                Dependency.parse("rpm: perl(Carp)")}
    repo = Repository(tmp_path / "repo", "cernvm@cvm:2")
    try:
        data = b"x"
        entry = FileEntry(path="/opt/a(b)", type="file", mode=0o644, size=1, sha256=repo.store.put_bytes(data))
        pkg = repo.commit_package(PackageBuild("p", "1", Flavor("x86_64"), "src", [
            ComponentContents("p:runtime", files=[entry], provides=deps, requires=requires)]))
        nvf = next(n for n in pkg.members if n.name == "p:runtime")
        got = repo.get(nvf)
        assert got.provides == deps and got.requires == requires
        assert {str(d) for d in got.provides} == {str(d) for d in deps}
        # looked up by exactly what a requirement says
        assert repo.providers(Dependency.parse("rpm: perl(Foo::Bar)")) == [nvf]
        assert repo.providers(Dependency.parse("rpm: perl")) == []
        assert repo.providers(Dependency.parse("soname: ELF64/libz.so.1(x86_64)")) == [nvf]
        assert repo.providers(Dependency.parse("soname: ELF64/libz.so.1(ZLIB_9 x86_64)")) == []
    finally:
        repo.close()
    # the rows hold the class name, the whole name and the flags, as before
    with sqlite3.connect(tmp_path / "repo" / "index.sqlite") as db:
        rows = set(db.execute("SELECT cls, name, flags FROM provides"))
    assert ("rpm", "perl(Foo::Bar)", "") in rows
    assert ("rpm", "libc.so.6(GLIBC_2.34)(64bit)", "") in rows
    assert ("soname", "ELF64/libz.so.1", "ZLIB_1.2 x86_64") in rows
    assert ("abi", "ELF64", "SysV x86_64") in rows and ("abi", "odd(name)", "") in rows
    assert ("python", "xml.etree", "3.11") in rows


# ------------------------------------------------------------------ matching, per class


@pytest.mark.parametrize("req, provision, meets", [
    ("soname: ELF64/libc.so.6(GLIBC_2.2.5 x86_64)", "soname: ELF64/libc.so.6(GLIBC_2.2.5 GLIBC_2.34 x86_64)", True),
    ("soname: ELF64/libc.so.6(GLIBC_2.99 x86_64)", "soname: ELF64/libc.so.6(GLIBC_2.2.5 x86_64)", False),
    ("soname: ELF64/libc.so.6", "soname: ELF32/libc.so.6(x86 x86_64)", False),
    ("soname: ELF64/libc.so.6(x86_64)", "soname: ELF64/libc.so.6(x86)", False),
    ("file: /bin/sh", "file: /bin/sh", True),
    ("file: /bin/sh", "file: /bin/sh2", False),
    ("trove: a:runtime", "trove: a:runtime", True),
    ("trove: a:runtime", "trove: a:lib", False),
    ("abi: ELF64(SysV)", "abi: ELF64(SysV x86_64)", True),
    ("abi: ELF64(SysV x86)", "abi: ELF64(SysV x86_64)", False),
    ("rpmlib: PayloadIsZstd", "rpmlib: PayloadIsZstd", True),
    ("rpm: perl(Foo::Bar)", "rpm: perl(Foo::Bar)", True),
    ("rpm: perl", "rpm: perl(Foo::Bar)", False),
    ("rpm: perl(Foo::Bar)", "rpm: perl", False),
    ("rpm: bash", "deb: bash", False),
    ("deb: libz1", "deb: libz1", True),
    ("python: json", "python: json(3.11)", True),
    ("python: json(3.12)", "python: json(3.11)", False),
    ("userinfo: daemon", "userinfo: daemon", True),
    ("userinfo: daemon", "groupinfo: daemon", False),
    ("groupinfo: wheel", "groupinfo: wheel", True),
])
def test_matching_per_class(req, provision, meets):
    r, p = Dependency.parse(req), Dependency.parse(provision)
    assert r.satisfied_by(p) is meets
    assert r.kind.satisfies(r, p) is meets


def test_where_each_class_finds_its_providers():
    index = ProvisionIndex(by_name=lambda name: [f"named {name}"], by_owner=lambda path: [f"holds {path}"])
    index.update([Dependency.parse("soname: ELF64/libz.so.1(ZLIB_1.2 x86_64)"), Dependency.parse("rpm: perl(Carp)"),
                  Dependency.parse("file: /bin/sh"), Dependency.parse("trove: t:runtime")], "provider")
    find = lambda text: (d := Dependency.parse(text)).kind.find(index, d)
    assert find("trove: t:runtime") == ["named t:runtime"]  # by name, never by a provision
    assert find("file: /bin/sh") == ["holds /bin/sh"]  # by the paths held
    assert find("soname: ELF64/libz.so.1(x86_64)") == ["provider"]  # the others by what is provided
    assert find("soname: ELF64/libz.so.1(ZLIB_9 x86_64)") == []
    assert find("rpm: perl(Carp)") == ["provider"] and find("rpm: perl") == []
    assert find("abi: ELF64") == [] and ProvisionIndex().by_name("x") == ProvisionIndex().by_owner("/x") == []
