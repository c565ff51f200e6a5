"""RPM and Debian dependency forms mapped onto appbuild's classes, and the member checks."""

from __future__ import annotations

import pytest

from appbuilder.upstream.depmap import (
    RPMSENSE_RPMLIB,
    RpmDep,
    deb_names,
    deb_provides,
    map_rpm,
    map_rpm_deps,
)
from appbuilder.capsule.payload import PathChecker, check_symlink, member_path
from appbuilder.capsule.scan import ScanResult, compare_sonames
from appbuilder.core.arch import get_arch
from appbuilder.core.errors import UnsafeArchive
from appbuilder.repository.deps import Dependency, soname

X64, X86 = get_arch("x86_64"), get_arch("x86")
D = Dependency.parse


@pytest.mark.parametrize("rpm_name, expected", [
    ("libc.so.6()(64bit)", "soname: ELF64/libc.so.6(x86_64)"),
    ("libc.so.6(GLIBC_2.14)(64bit)", "soname: ELF64/libc.so.6(GLIBC_2.14 x86_64)"),
    ("libc.so.6", "soname: ELF32/libc.so.6(x86)"),
    ("libc.so.6(GLIBC_2.1.3)", "soname: ELF32/libc.so.6(GLIBC_2.1.3 x86)"),
    ("ld-linux-x86-64.so.2()(64bit)", "soname: ELF64/ld-linux-x86-64.so.2(x86_64)"),
    ("libstdc++.so.6(CXXABI_1.3)(64bit)", "soname: ELF64/libstdc++.so.6(CXXABI_1.3 x86_64)"),
    ("libnss3.so", "soname: ELF32/libnss3.so(x86)"),
    ("/bin/sh", "file: /bin/sh"),
    ("rpmlib(PayloadIsZstd)", "rpmlib: PayloadIsZstd"),
    ("bash", "rpm: bash"),
])
def test_rpm_forms(rpm_name, expected):
    assert str(map_rpm(rpm_name, required=True, arch=X64)) == expected


def test_rpm_capabilities_with_parentheses_keep_their_whole_name():
    # perl(Foo) is not "perl with a flag": a requirement on perl must not be met by perl(Foo)
    assert map_rpm("perl(Foo::Bar)", required=True, arch=None) == Dependency("rpm", "perl(Foo::Bar)")
    assert not Dependency("rpm", "perl").satisfied_by(Dependency("rpm", "perl(Foo::Bar)"))


@pytest.mark.parametrize("rpm_name", [
    "perl(Foo::Bar)", "pkgconfig(zlib)", "libhello(x86-64)", "config(bash)", "font(:lang=en)",
    "python3.11dist(requests)", "libc.so.6(GLIBC_2.34)(64bit)(extra)", "mimehandler(text/plain)",
])
def test_rpm_capabilities_read_back_from_their_text(rpm_name):
    dep = map_rpm(rpm_name, required=True, arch=X64)
    assert dep == Dependency("rpm", rpm_name) and str(dep) == f"rpm: {rpm_name}"
    assert D(str(dep)) == dep


def test_rpmlib_features_without_the_rpmlib_prefix_read_back():
    deps, _ = map_rpm_deps([RpmDep("config(bash)", RPMSENSE_RPMLIB), RpmDep("rpmlib(PayloadIsZstd)", RPMSENSE_RPMLIB)],
                           required=True, arch=X64)
    assert deps == {Dependency("rpmlib", "config(bash)"), Dependency("rpmlib", "PayloadIsZstd")}
    assert {D(str(d)) for d in deps} == deps
    assert not any(d.kind.resolved_by_closure for d in deps)


def test_rtld_is_the_loader_of_the_package_architecture():
    assert map_rpm("rtld(GNU_HASH)", required=True, arch=X64) == D("soname: ELF64/ld-linux-x86-64.so.2(x86_64)")
    assert map_rpm("rtld(GNU_HASH)", required=True, arch=X86) == D("soname: ELF32/ld-linux.so.2(x86)")
    assert map_rpm("rtld(GNU_HASH)", required=True, arch=None) == Dependency("rpm", "rtld(GNU_HASH)")
    assert map_rpm("rtld(GNU_HASH)", required=False, arch=X64) == Dependency("rpm", "rtld(GNU_HASH)")


def test_sonames_merge_into_the_form_the_elf_scan_writes():
    provides, unmapped = map_rpm_deps([RpmDep("libhello.so.1()(64bit)"), RpmDep("libhello.so.1(LIBHELLO_1.0)(64bit)"),
                                       RpmDep("libhello", 8, "1.0-1"), RpmDep("(a or b)")], required=False, arch=X64)
    cooked = soname("ELF64", "libhello.so.1", "x86_64", ["LIBHELLO_1.0"])  # what a cooked libhello provides
    assert cooked in provides and Dependency("rpm", "libhello") in provides
    assert unmapped == ["(a or b)"]  # rich dependencies stay text
    requires, _ = map_rpm_deps([RpmDep("libhello.so.1()(64bit)"), RpmDep("libhello.so.1(LIBHELLO_1.0)(64bit)")],
                               required=True, arch=X64)
    (req,) = requires
    assert req.satisfied_by(cooked)  # an RPM program is met by a cooked library
    assert cooked.satisfied_by(next(p for p in provides if p.cls == "soname"))  # and the reverse


def test_debian_relations():
    assert deb_names("libz1, foo (= 1.0), bar:any | baz") == ["libz1", "foo", "bar", "baz"]
    assert deb_provides("zlib1g", "libz1") == {D("deb: zlib1g"), D("deb: libz1")}


def test_soname_notes():
    scan = ScanResult(requires={soname("ELF64", "libhello.so.1", "x86_64", ["LIBHELLO_1.0"]),
                                soname("ELF64", "ld-linux-x86-64.so.2", "x86_64")})
    scan.needed_by[next(iter(d for d in scan.requires if "hello" in d.name))].append("/usr/bin/greeter")
    notes = compare_sonames(set(), {soname("ELF64", "libmissing.so.2", "x86_64")}, scan,
                            loaders=frozenset({"ld-linux-x86-64.so.2"}))
    assert len(notes) == 2  # the loader is not compared
    assert "libhello.so.1" in notes[0] and "(/usr/bin/greeter)" in notes[0]
    assert "libmissing.so.2" in notes[1] and "no file needs it" in notes[1]


@pytest.mark.parametrize("raw, path", [("./usr/bin/x", "/usr/bin/x"), ("/etc/x", "/etc/x"), ("usr//lib/./y", "/usr/lib/y"),
                                       ("./", None), (".", None)])
def test_member_paths(raw, path):
    assert member_path(raw, package="p") == path


@pytest.mark.parametrize("raw", ["../etc/passwd", "./usr/../../x", "usr/lib/../../../x"])
def test_member_paths_escaping(raw):
    with pytest.raises(UnsafeArchive, match="escapes the root"):
        member_path(raw, package="p")


def test_symlinks():
    check_symlink("/usr/lib/debug/.build-id/ab/cd", "../../../../../usr/bin/x", package="p")  # ends at / then down
    check_symlink("/usr/bin/sh", "/bin/busybox", package="p")  # absolute: resolves inside the image
    with pytest.raises(UnsafeArchive, match="outside the root"):
        check_symlink("/usr/share/l", "../../../etc/passwd", package="p")
    checker = PathChecker("p")
    checker.add("/opt/link", "symlink", "/etc")
    with pytest.raises(UnsafeArchive, match="below the symbolic link"):
        checker.add("/opt/link/passwd", "file")
    late = PathChecker("p")
    late.add("/opt/dir/file", "file")
    late.add("/opt/dir", "symlink", "/etc")
    with pytest.raises(UnsafeArchive, match="below the symbolic link"):
        late.finish()
    with pytest.raises(UnsafeArchive, match="twice"):
        late.add("/opt/dir/file", "file")
