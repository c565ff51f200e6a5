"""What an ELF file says about its dependencies, read with pyelftools.

pyelftools is pure Python, well kept, and reads both ELF classes on any host, so an
x86_64 machine scans i686 binaries exactly like native ones. Only the parts that
matter for dependencies are read: the header, ``PT_INTERP``, the dynamic section
(``DT_SONAME``, ``DT_NEEDED``, ``DT_RUNPATH``) and the GNU symbol version sections.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from elftools.elf.dynamic import DynamicSection, DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_E_MACHINE
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

ELF_MAGIC = b"\x7fELF"


@dataclass
class ElfInfo:
    elf_class: int  # 32 or 64
    machine: str  # e_machine, e.g. "EM_X86_64"
    type: str  # "ET_EXEC", "ET_DYN", "ET_REL", ...
    interp: str | None = None
    soname: str | None = None
    needed: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)
    needed_versions: dict[str, set[str]] = field(default_factory=dict)  # soname -> versions
    defined_versions: set[str] = field(default_factory=set)
    has_debug: bool = False
    has_symtab: bool = False

    @property
    def is_dynamic(self) -> bool:
        return bool(self.interp or self.needed or self.soname)

    @property
    def is_shared_library(self) -> bool:
        # a library may also carry an interpreter and run (libc.so.6 does): the soname decides
        return self.type == "ET_DYN" and self.soname is not None


def is_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


_MACHINES = {number: name for name, number in ENUM_E_MACHINE.items() if isinstance(number, int)}


def relocatable_header(head: bytes) -> ElfInfo | None:
    """The ElfInfo of a relocatable object (``ET_REL``: a kernel module, a ``.o``) from its
    first 20 bytes, or None for any other ELF file. Such an object has no program headers and
    no dynamic section, so its header says all the dependency scan needs; thousands of
    kernel modules are not parsed in full."""
    if len(head) < 20 or not is_elf(head) or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    order = "<" if head[5] == 1 else ">"
    e_type, e_machine = struct.unpack(order + "HH", head[16:20])
    if e_type != 1:
        return None
    return ElfInfo(32 if head[4] == 1 else 64, _MACHINES.get(e_machine, f"EM_{e_machine}"), "ET_REL")


def read_elf(stream: BinaryIO) -> ElfInfo | None:
    """Parse an ELF file; None when it is not ELF or too damaged to read."""
    return inspect_elf(stream)[0]


def inspect_elf(stream: BinaryIO) -> tuple[ElfInfo | None, str | None]:
    """(what the ELF file says, None) or (None, why it cannot be read)."""
    try:
        elf = ELFFile(stream)
        info = ElfInfo(elf.elfclass, elf.header.e_machine, elf.header.e_type)
        dynamic = None
        for seg in elf.iter_segments():
            ptype = seg.header.p_type
            if ptype == "PT_INTERP":
                info.interp = seg.get_interp_name()
            elif ptype == "PT_DYNAMIC" and isinstance(seg, DynamicSegment):
                dynamic = seg
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                dynamic = section  # the section form resolves strings most reliably
            elif isinstance(section, GNUVerNeedSection):
                for verneed, auxes in section.iter_versions():
                    info.needed_versions.setdefault(verneed.name, set()).update(a.name for a in auxes)
            elif isinstance(section, GNUVerDefSection):
                for verdef, auxes in section.iter_versions():
                    if verdef["vd_flags"] & 0x1:  # VER_FLG_BASE: the file's own name
                        continue
                    first = next(iter(auxes), None)
                    if first is not None:
                        info.defined_versions.add(first.name)
            elif section.name.startswith(".debug_info") or section.name == ".zdebug_info":
                info.has_debug = True
            elif section.name == ".symtab":
                info.has_symtab = True
        if dynamic is not None:
            for tag in dynamic.iter_tags():
                kind = tag.entry.d_tag
                if kind == "DT_NEEDED":
                    info.needed.append(tag.needed)
                elif kind == "DT_SONAME":
                    info.soname = tag.soname
                elif kind == "DT_RUNPATH":
                    info.runpath += tag.runpath.split(":")
                elif kind == "DT_RPATH":
                    info.runpath += tag.rpath.split(":")
        return info, None
    except Exception as exc:  # pyelftools raises assorted errors on truncated or damaged files
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def read_elf_file(path: str) -> ElfInfo | None:
    return inspect_elf_file(path)[0]


def inspect_elf_file(path: str) -> tuple[ElfInfo | None, str | None]:
    """:func:`inspect_elf` of the file at *path*; (None, None) when it is not ELF at all."""
    with open(path, "rb") as f:
        if not is_elf(f.read(4)):
            return None, None
        f.seek(0)
        return inspect_elf(f)
