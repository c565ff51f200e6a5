"""appbuild's ELF reader (appbuilder.policy.elfread) against pyelftools, on the host's own
programs and libraries, and on damaged copies of them."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection, DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

from appbuilder.policy.elf import inspect_elf, is_elf

HOST_FILES = sorted({p.resolve() for pattern in ("/usr/bin/ls", "/usr/bin/python3*", "/usr/lib/x86_64-linux-gnu/lib*.so*",
                                                 "/usr/lib/i386-linux-gnu/lib*.so*", "/usr/lib32/lib*.so*",
                                                 "/usr/lib/x86_64-linux-gnu/ld-linux*", "/usr/libexec/*/*")
                     for p in Path("/").glob(pattern.lstrip("/")) if p.is_file()})
HOST_ELF = [p for p in HOST_FILES if p.stat().st_size < 64 << 20 and is_elf(p.read_bytes()[:4])][:200]


def by_pyelftools(data: bytes) -> dict:
    """What pyelftools says (the reader appbuild used before its own)."""
    elf = ELFFile(io.BytesIO(data))
    out = {"class": elf.elfclass, "machine": elf.header.e_machine, "type": elf.header.e_type, "interp": None,
           "needed": [], "soname": None, "runpath": [], "needed_versions": {}, "defined_versions": set(),
           "has_debug": False, "has_symtab": False}
    dynamic = None
    for seg in elf.iter_segments():
        if seg.header.p_type == "PT_INTERP":
            out["interp"] = seg.get_interp_name()
        elif seg.header.p_type == "PT_DYNAMIC" and isinstance(seg, DynamicSegment):
            dynamic = seg
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            dynamic = section
        elif isinstance(section, GNUVerNeedSection):
            for verneed, auxes in section.iter_versions():
                out["needed_versions"].setdefault(verneed.name, set()).update(a.name for a in auxes)
        elif isinstance(section, GNUVerDefSection):
            for verdef, auxes in section.iter_versions():
                first = next(iter(auxes), None)
                if not verdef["vd_flags"] & 0x1 and first is not None:
                    out["defined_versions"].add(first.name)
        elif section.name.startswith(".debug_info") or section.name == ".zdebug_info":
            out["has_debug"] = True
        elif section.name == ".symtab":
            out["has_symtab"] = True
    for tag in dynamic.iter_tags() if dynamic is not None else ():
        kind = tag.entry.d_tag
        if kind == "DT_NEEDED":
            out["needed"].append(tag.needed)
        elif kind == "DT_SONAME":
            out["soname"] = tag.soname
        elif kind in ("DT_RUNPATH", "DT_RPATH"):
            out["runpath"] += (tag.runpath if kind == "DT_RUNPATH" else tag.rpath).split(":")
    return out


def by_appbuild(data: bytes) -> dict:
    info, why = inspect_elf(io.BytesIO(data))
    assert info is not None, why
    return {"class": info.elf_class, "machine": info.machine, "type": info.type, "interp": info.interp,
            "needed": info.needed, "soname": info.soname, "runpath": info.runpath,
            "needed_versions": info.needed_versions, "defined_versions": info.defined_versions,
            "has_debug": info.has_debug, "has_symtab": info.has_symtab}


def test_the_host_files_read_as_pyelftools_reads_them():
    assert len(HOST_ELF) > 50
    classes = set()
    for path in HOST_ELF:
        data = path.read_bytes()
        mine = by_appbuild(data)
        assert mine == by_pyelftools(data), path
        classes.add(mine["class"])
    libc = by_appbuild(Path("/usr/lib/x86_64-linux-gnu/libc.so.6").read_bytes())
    assert libc["soname"] == "libc.so.6" and "GLIBC_2.34" in libc["defined_versions"]
    assert "GLIBC_2.34" in by_appbuild(Path("/usr/bin/ls").read_bytes())["needed_versions"]["libc.so.6"]


def test_a_file_without_section_headers_is_read_through_its_dynamic_segment():
    data = bytearray(Path("/usr/bin/ls").read_bytes())
    data[0x28:0x30] = struct.pack("<Q", 0)  # e_shoff: no section headers
    data[0x3C:0x40] = struct.pack("<HH", 0, 0)  # e_shnum, e_shstrndx
    mine = by_appbuild(bytes(data))
    assert "libc.so.6" in mine["needed"] and mine["interp"].startswith("/lib64/ld-linux")
    assert mine["needed_versions"] == {} and not mine["has_symtab"]  # those live in sections


@pytest.mark.parametrize("seed", range(4))
def test_damaged_files_are_refused_or_read_never_raise(seed):
    rng = random.Random(seed)
    originals = [p.read_bytes() for p in HOST_ELF[:40]]
    for _ in range(300):
        data = bytearray(rng.choice(originals))
        if rng.random() < 0.4:
            data = data[:rng.randrange(1, len(data) + 1)]
        for _ in range(rng.randrange(1, 12)):
            if data:
                data[rng.randrange(min(len(data), 4096) if rng.random() < 0.7 else len(data))] = rng.randrange(256)
        info, why = inspect_elf(io.BytesIO(bytes(data)))
        assert (info is None) == (why is not None)
        if info is None:
            assert why and "\n" not in why
