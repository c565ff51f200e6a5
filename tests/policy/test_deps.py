"""Dependency discovery from real files: ELF sonames, loaders, symbol versions, #! lines."""

from __future__ import annotations

import os
import shutil

import pytest

from appbuilder.policy.deps import (
    PARALLEL_ABOVE,
    drop_self_provided,
    elf_dependencies,
    scan_file,
    scan_files,
    script_interpreter,
)
from appbuilder.policy.elf import read_elf_file
from appbuilder.repository.deps import Dependency, file_dep

D = Dependency.parse


def test_32_bit_library_provides_its_soname_with_versions(elves32):
    deps = scan_file(str(elves32.lib), False)
    assert deps.elf == "ELF32 x86"
    assert deps.provides == {D("soname: ELF32/libtiny.so.1(TINY_1.0 x86)")}
    (libc,) = [r for r in deps.requires if r.name == "ELF32/libc.so.6"]
    assert "x86" in libc.flags and any(f.startswith("GLIBC_2.") for f in libc.flags)
    assert not any(r.cls == "file" for r in deps.requires)  # a library has no interpreter


def test_32_bit_program_requires_library_loader_and_versions(elves32):
    deps = scan_file(str(elves32.prog), True)
    assert deps.elf == "ELF32 x86" and deps.provides == set()
    assert D("soname: ELF32/libtiny.so.1(TINY_1.0 x86)") in deps.requires
    assert D("soname: ELF32/ld-linux.so.2(x86)") in deps.requires
    assert D("file: /lib/ld-linux.so.2") in deps.requires
    assert all(not r.name.startswith("ELF64/") for r in deps.requires)


def test_64_bit_program_and_the_other_class_never_satisfies(elves64, elves32):
    prog = scan_file(str(elves64.prog), True)
    assert prog.elf == "ELF64 x86_64"
    lib64 = scan_file(str(elves64.lib), False).provides
    lib32 = scan_file(str(elves32.lib), False).provides
    (need,) = [r for r in prog.requires if "libtiny" in r.name]
    assert any(need.satisfied_by(p) for p in lib64)
    assert not any(need.satisfied_by(p) for p in lib32)
    (need32,) = [r for r in scan_file(str(elves32.prog), True).requires if "libtiny" in r.name]
    assert not any(need32.satisfied_by(p) for p in lib64)


def test_host_ls(tmp_path):
    deps = scan_file("/usr/bin/ls", True)
    assert deps.elf == "ELF64 x86_64"
    assert D("file: /lib64/ld-linux-x86-64.so.2") in deps.requires
    assert D("soname: ELF64/ld-linux-x86-64.so.2(x86_64)") in deps.requires
    assert any(r.name == "ELF64/libc.so.6" and "x86_64" in r.flags for r in deps.requires)
    # the same from elf_dependencies directly
    assert elf_dependencies(read_elf_file("/usr/bin/ls")).requires == deps.requires


def test_static_program_requires_nothing(elves64):
    deps = scan_file(str(elves64.static), True)
    assert deps.elf == "ELF64 x86_64" and deps.requires == set() and deps.provides == set()


@pytest.mark.parametrize("head, interp", [
    (b"#!/bin/sh\necho\n", "/bin/sh"),
    (b"#! /bin/bash -e\n", "/bin/bash"),
    (b"#!/usr/bin/env python3\n", "/usr/bin/env"),
    (b"#!/usr/bin/perl", "/usr/bin/perl"),
    (b"#!bash\n", None),   # not absolute
    (b"#!\n", None),
    (b"#!   \n", None),
    (b"echo no shebang\n", None),
    (b"", None),
])
def test_script_interpreter(head, interp):
    assert script_interpreter(head) == interp


def test_scan_file_on_scripts(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\nexec true\n")
    os.chmod(script, 0o755)
    assert scan_file(str(script), True).requires == {file_dep("/bin/sh")}
    assert scan_file(str(script), True).elf is None
    # a #! file that is not executable is data: no requirement
    assert scan_file(str(script), False) is None
    text = tmp_path / "README"
    text.write_text("just text\n")
    assert scan_file(str(text), True) is None
    assert scan_file(str(tmp_path / "missing"), True) is None


def test_scan_files_in_parallel_matches_serial(tmp_path, elves64, elves32):
    items = []
    for i in range(PARALLEL_ABOVE + 20):
        kind = i % 4
        if kind == 0:
            p = tmp_path / f"s{i}"
            p.write_text(f"#!/bin/sh{i % 3}\n")
            items.append((str(p), True))
        elif kind == 1:
            items.append((str(elves64.prog), True))
        elif kind == 2:
            items.append((str(elves32.lib), False))
        else:
            p = tmp_path / f"d{i}"
            p.write_text("data")
            items.append((str(p), False))
    serial = scan_files(items, jobs=1)
    parallel = scan_files(items, jobs=2)
    assert parallel == serial
    assert serial[0].requires == {file_dep("/bin/sh0")} and serial[3] is None


def test_drop_self_provided():
    requires = {D("soname: ELF64/libtiny.so.1(TINY_1.0 x86_64)"), D("soname: ELF64/libc.so.6(x86_64)"),
                D("file: /usr/bin/helper"), D("file: /bin/sh"), D("soname: ELF64/libz.so.1(ZLIB_2 x86_64)")}
    provides = {D("soname: ELF64/libtiny.so.1(TINY_1.0 TINY_1.1 x86_64)"), D("soname: ELF64/libz.so.1(ZLIB_1 x86_64)")}
    left = drop_self_provided(requires, provides, {"/usr/bin/helper"})
    # libz is provided, but without the symbol version asked for: still required
    assert left == {D("soname: ELF64/libc.so.6(x86_64)"), D("file: /bin/sh"),
                    D("soname: ELF64/libz.so.1(ZLIB_2 x86_64)")}


def test_drop_self_provided_per_class():
    requires = {D("file: /usr/bin/held"), D("file: /usr/bin/declared"), D("file: /usr/bin/elsewhere"),
                D("trove: other:lib"), D("rpm: perl(Carp)"), D("rpm: perl"), D("abi: ELF64(SysV x86_64)")}
    provides = {D("file: /usr/bin/declared"), D("rpm: perl(Carp)"), D("abi: ELF64(SysV x86_64)")}
    left = drop_self_provided(requires, provides, {"/usr/bin/held", "/usr/lib/other:lib"})
    # a path is met by holding it or by a provision (r.Provides('file: ...')); the rest by provisions
    assert left == {D("file: /usr/bin/elsewhere"), D("trove: other:lib"), D("rpm: perl")}


def test_scan_a_copy_of_a_library_under_another_name(tmp_path, elves64):
    copy = tmp_path / "renamed.so"
    shutil.copy(elves64.lib, copy)
    # what a file provides comes from its DT_SONAME, not its file name
    assert scan_file(str(copy), False).provides == {D("soname: ELF64/libtiny.so.1(TINY_1.0 x86_64)")}
