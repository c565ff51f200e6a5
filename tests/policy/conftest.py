"""Real ELF files for the policy tests: a tiny versioned library and a program using it,
compiled here for both instruction sets (gcc-multilib), plus a static program."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

LIB_C = """\
#include <stdio.h>
int tiny_hello(void) { return puts("tiny"); }
"""
MAIN_C = """\
int tiny_hello(void);
int main(void) { return tiny_hello(); }
"""
VERSION_SCRIPT = "TINY_1.0 { global: tiny_hello; local: *; };\n"


@dataclass(frozen=True)
class Elves:
    lib: Path  # libtiny.so.1.0, soname libtiny.so.1, defines TINY_1.0
    prog: Path  # links libtiny and libc
    debug_prog: Path  # the same, with DWARF
    static: Path  # statically linked


def _gcc(*argv: str, cwd: Path) -> None:
    subprocess.run(["gcc", *argv], cwd=cwd, check=True, capture_output=True, text=True)


def build(dest: Path, flag: str) -> Elves:
    dest.mkdir(parents=True)
    (dest / "tiny.c").write_text(LIB_C)
    (dest / "main.c").write_text(MAIN_C)
    (dest / "tiny.map").write_text(VERSION_SCRIPT)
    _gcc(flag, "-shared", "-fPIC", "-O2", "-Wl,-soname,libtiny.so.1", "-Wl,--version-script=tiny.map",
         "-o", "libtiny.so.1.0", "tiny.c", cwd=dest)
    (dest / "libtiny.so").symlink_to("libtiny.so.1.0")
    _gcc(flag, "-O2", "-o", "prog", "main.c", "-L.", "-ltiny", cwd=dest)
    _gcc(flag, "-g", "-O0", "-o", "prog-debug", "main.c", "-L.", "-ltiny", cwd=dest)
    (dest / "static.c").write_text("int main(void) { return 0; }\n")
    static = "static"
    if flag == "-m64":
        _gcc(flag, "-static", "-o", static, "static.c", cwd=dest)
    return Elves(dest / "libtiny.so.1.0", dest / "prog", dest / "prog-debug", dest / static)


@pytest.fixture(scope="session")
def elves64(tmp_path_factory) -> Elves:
    return build(tmp_path_factory.mktemp("elf") / "64", "-m64")


@pytest.fixture(scope="session")
def elves32(tmp_path_factory) -> Elves:
    return build(tmp_path_factory.mktemp("elf") / "32", "-m32")
