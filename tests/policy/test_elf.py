"""read_elf on real binaries: the host's own 64-bit programs and libraries, and 32-bit
ones compiled here with gcc -m32."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from appbuilder.policy.elf import is_elf, read_elf, read_elf_file


def host_libc() -> Path:
    out = subprocess.run(["ldd", "/usr/bin/ls"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("libc.so.6 =>"):
            return Path(line.split("=>")[1].split()[0])
    raise AssertionError(out)


def test_host_ls_64_bit():
    info = read_elf_file("/usr/bin/ls")
    assert info.elf_class == 64 and info.machine == "EM_X86_64"
    assert info.type in ("ET_DYN", "ET_EXEC")
    assert info.interp == "/lib64/ld-linux-x86-64.so.2"
    assert "libc.so.6" in info.needed
    assert any(v.startswith("GLIBC_2.") for v in info.needed_versions["libc.so.6"])
    assert info.soname is None and info.is_dynamic and not info.is_shared_library
    # what readelf says it needs, read independently
    dyn = subprocess.run(["readelf", "-d", "/usr/bin/ls"], capture_output=True, text=True, check=True).stdout
    assert sorted(info.needed) == sorted(line.split("[")[1].split("]")[0] for line in dyn.splitlines() if "(NEEDED)" in line)


def test_host_libc_defines_symbol_versions():
    info = read_elf_file(str(host_libc()))
    assert info.soname == "libc.so.6" and info.is_shared_library
    assert {"GLIBC_2.2.5", "GLIBC_2.34"} <= info.defined_versions
    assert "libc.so.6" not in info.defined_versions  # the VER_FLG_BASE entry is the file's own name


def test_32_bit_library(elves32):
    info = read_elf_file(str(elves32.lib))
    assert info.elf_class == 32 and info.machine == "EM_386" and info.type == "ET_DYN"
    assert info.soname == "libtiny.so.1"
    assert info.defined_versions == {"TINY_1.0"}
    assert info.needed == ["libc.so.6"]
    assert any(v.startswith("GLIBC_2.") for v in info.needed_versions["libc.so.6"])
    assert info.interp is None and info.is_shared_library


def test_32_bit_program(elves32):
    info = read_elf_file(str(elves32.prog))
    assert info.elf_class == 32 and info.machine == "EM_386"
    assert info.interp == "/lib/ld-linux.so.2"
    assert set(info.needed) == {"libtiny.so.1", "libc.so.6"}
    assert info.needed_versions["libtiny.so.1"] == {"TINY_1.0"}
    assert not info.is_shared_library and info.soname is None


def test_64_bit_library_and_program(elves64):
    lib = read_elf_file(str(elves64.lib))
    assert (lib.elf_class, lib.machine, lib.soname) == (64, "EM_X86_64", "libtiny.so.1")
    assert lib.defined_versions == {"TINY_1.0"}
    prog = read_elf_file(str(elves64.prog))
    assert prog.interp == "/lib64/ld-linux-x86-64.so.2"
    assert prog.needed_versions["libtiny.so.1"] == {"TINY_1.0"}


def test_static_program_is_not_dynamic(elves64):
    info = read_elf_file(str(elves64.static))
    assert info.elf_class == 64 and info.type == "ET_EXEC"
    assert info.interp is None and info.needed == [] and not info.is_dynamic


def test_debug_info_and_symtab(elves64, tmp_path):
    assert read_elf_file(str(elves64.debug_prog)).has_debug
    assert not read_elf_file(str(elves64.prog)).has_debug
    assert read_elf_file(str(elves64.prog)).has_symtab
    stripped = tmp_path / "stripped"
    shutil.copy(elves64.debug_prog, stripped)
    subprocess.run(["strip", str(stripped)], check=True)
    info = read_elf_file(str(stripped))
    assert not info.has_debug and not info.has_symtab
    assert info.needed_versions["libtiny.so.1"] == {"TINY_1.0"}  # dynamic data survives stripping


def test_runpath(tmp_path, elves64):
    out = tmp_path / "prog-rpath"
    src = elves64.prog.parent / "main.c"
    subprocess.run(["gcc", "-o", str(out), str(src), f"-L{elves64.lib.parent}", "-ltiny",
                    "-Wl,-rpath,/opt/tiny/lib:$ORIGIN/../lib"], check=True, capture_output=True)
    assert read_elf_file(str(out)).runpath == ["/opt/tiny/lib", "$ORIGIN/../lib"]


def test_not_elf_and_damaged_elf(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    assert read_elf_file(str(script)) is None
    assert not is_elf(b"#!/b") and is_elf(b"\x7fELF\x02\x01")
    truncated = tmp_path / "truncated"
    truncated.write_bytes(Path("/usr/bin/ls").read_bytes()[:100])
    assert read_elf_file(str(truncated)) is None
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x7fELF" + bytes(range(256)) * 4)
    assert read_elf_file(str(garbage)) is None
    with open(script, "rb") as f:
        assert read_elf(f) is None


def test_a_relocatable_object_is_known_from_its_header(tmp_path):
    """Kernel modules and .o files (ET_REL) have no dynamic section: the first 20 bytes say
    what the full parse says (class, machine), for both classes; anything else is not one."""
    from appbuilder.policy.elf import relocatable_header

    (tmp_path / "m.c").write_text("int answer(void) { return 42; }\n")
    for bits, machine in ((64, "EM_X86_64"), (32, "EM_386")):
        obj = tmp_path / f"m{bits}.o"
        subprocess.run(["gcc", f"-m{bits}", "-c", str(tmp_path / "m.c"), "-o", str(obj)], check=True)
        head = obj.read_bytes()[:256]
        quick, full = relocatable_header(head), read_elf_file(str(obj))
        assert quick is not None and (quick.elf_class, quick.machine, quick.type) == (bits, machine, "ET_REL")
        assert (full.elf_class, full.machine, full.type) == (quick.elf_class, quick.machine, quick.type)
        assert not (full.needed or full.soname or full.interp)
    assert relocatable_header(Path(shutil.which("ls")).read_bytes()[:256]) is None  # an executable
    assert relocatable_header(b"\x7fELF") is None and relocatable_header(b"#!/bin/sh\n" * 3) is None
