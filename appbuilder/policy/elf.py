"""What an ELF file says about its dependencies.

Only the parts that matter for dependencies are read (:mod:`appbuilder.policy.elfread`, a
reader of our own with :mod:`struct`): the header, ``PT_INTERP``, the dynamic entries
(``DT_SONAME``, ``DT_NEEDED``, ``DT_RUNPATH``) and the GNU symbol version sections, of both
ELF classes, so an x86_64 machine scans i686 binaries exactly like native ones. The names
of machines and file types are pyelftools' tables.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from elftools.elf.enums import ENUM_E_MACHINE, ENUM_E_TYPE

from appbuilder.policy.elfread import DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, read_structure

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
_TYPES = {number: name for name, number in ENUM_E_TYPE.items() if isinstance(number, int)}


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
        raw = read_structure(stream)
    except Exception as exc:  # a damaged file: Damaged, struct.error, or what its stream raised
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    info = ElfInfo(raw.elf_class, _MACHINES.get(raw.machine, f"EM_{raw.machine}"),
                   _TYPES.get(raw.type, f"ET_{raw.type}"), interp=raw.interp,
                   needed_versions=raw.needed_versions, defined_versions=raw.defined_versions,
                   has_debug=any(n.startswith(".debug_info") or n == ".zdebug_info" for n in raw.section_names),
                   has_symtab=".symtab" in raw.section_names)
    for tag, text in raw.dynamic:
        if tag == DT_NEEDED:
            info.needed.append(text)
        elif tag == DT_SONAME:
            info.soname = text
        elif tag in (DT_RUNPATH, DT_RPATH):
            info.runpath += text.split(":")
    return info, None


def read_elf_file(path: str) -> ElfInfo | None:
    return inspect_elf_file(path)[0]


def inspect_elf_file(path: str) -> tuple[ElfInfo | None, str | None]:
    """:func:`inspect_elf` of the file at *path*; (None, None) when it is not ELF at all."""
    with open(path, "rb") as f:
        if not is_elf(f.read(4)):
            return None, None
        f.seek(0)
        return inspect_elf(f)
