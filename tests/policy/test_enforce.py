"""EnforceSonameBuildRequirements: linked libraries must come from declared build requirements."""

from __future__ import annotations

import pytest

from appbuilder.policy.enforce import (
    TOOLCHAIN_SONAMES,
    MissingBuildRequirement,
    check_soname_build_requirements,
)
from appbuilder.repository.deps import Dependency

D = Dependency.parse


def test_toolchain_sonames_are_ignored():
    requires = {D(f"soname: ELF64/{s}(x86_64)"): ["/usr/bin/p"] for s in (
        "libc.so.6", "ld-linux-x86-64.so.2", "libm.so.6", "libpthread.so.0", "libdl.so.2", "libgcc_s.so.1",
        "libstdc++.so.6", "libnss_files.so.2", "libatomic.so.1", "libresolv.so.2")}
    requires[D("soname: ELF32/ld-linux.so.2(x86)")] = ["/usr/bin/p32"]
    assert check_soname_build_requirements(requires, set()) == []


@pytest.mark.parametrize("soname", ["libcrypto.so.3", "libmagic.so.1", "libcurl.so.4", "libcap.so.2",
                                    "libz.so.1", "libcrypt-extra.so.1", "libc.so.6.bak"])
def test_look_alike_sonames_are_not_toolchain(soname):
    assert not TOOLCHAIN_SONAMES.match(soname)
    missing = check_soname_build_requirements({D(f"soname: ELF64/{soname}(x86_64)"): ["/usr/bin/p"]}, set())
    assert [m.requirement.name for m in missing] == [f"ELF64/{soname}"]


def test_declared_provisions_cover_requirements_with_flags():
    req = D("soname: ELF64/libz.so.1(ZLIB_1.2.9 x86_64)")
    assert check_soname_build_requirements({req: ["/usr/bin/p"]},
                                           {D("soname: ELF64/libz.so.1(ZLIB_1.2.9 ZLIB_1.2.3 x86_64)")}) == []
    # a 32-bit zlib does not cover a 64-bit program; nor does one lacking the symbol version
    for declared in (D("soname: ELF32/libz.so.1(ZLIB_1.2.9 x86)"), D("soname: ELF64/libz.so.1(x86_64)")):
        (m,) = check_soname_build_requirements({req: ["/usr/bin/p"]}, {declared})
        assert m.requirement == req


def test_only_soname_requirements_are_checked():
    requires = {D("file: /bin/sh"): ["/usr/bin/s"], D("trove: other:runtime"): ["/x"],
                D("soname: ELF64/libfoo.so.1(x86_64)"): ["/usr/bin/p"]}
    assert [m.requirement.cls for m in check_soname_build_requirements(requires, set())] == ["soname"]


def test_exceptions_are_regexes_over_the_soname():
    requires = {D("soname: ELF64/libfoo.so.1(x86_64)"): ["/a"], D("soname: ELF64/libbar.so.2(x86_64)"): ["/b"],
                D("soname: ELF32/libfoo.so.1(x86)"): ["/c"]}
    missing = check_soname_build_requirements(requires, set(), exceptions=(r"^libfoo\.so",))
    assert [m.requirement.name for m in missing] == ["ELF64/libbar.so.2"]


def test_report_names_files_and_suggestion():
    req = D("soname: ELF64/libz.so.1(x86_64)")
    files = ["/usr/bin/d", "/usr/bin/a", "/usr/bin/c", "/usr/bin/b"]
    (m,) = check_soname_build_requirements({req: files}, set(), suggest=lambda dep: "zlib:devel")
    assert isinstance(m, MissingBuildRequirement)
    assert m.needed_by == sorted(files) and m.suggestion == "zlib:devel"
    assert str(m) == ("soname: ELF64/libz.so.1(x86_64) (needed by /usr/bin/a, /usr/bin/b, /usr/bin/c ...) "
                      "is not provided by a declared build requirement; add 'zlib:devel' to buildRequires")
    (m,) = check_soname_build_requirements({req: ["/usr/bin/p"]}, set())
    assert str(m).endswith("(needed by /usr/bin/p) is not provided by a declared build requirement; "
                           "no trove in the repository provides it (import or cook one, then add it to buildRequires)")


def test_suggest_is_asked_with_the_requirement():
    asked = []
    reqs = {D("soname: ELF64/liba.so.1(x86_64)"): ["/x"], D("soname: ELF64/libb.so.1(x86_64)"): ["/y"]}
    missing = check_soname_build_requirements(reqs, set(), suggest=lambda d: asked.append(d) or None)
    assert sorted(asked) == sorted(reqs) and [m.suggestion for m in missing] == [None, None]
    assert [m.requirement.name for m in missing] == ["ELF64/liba.so.1", "ELF64/libb.so.1"]  # sorted
