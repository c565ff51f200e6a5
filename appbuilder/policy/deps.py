"""Automatic dependency discovery: what each file provides and requires.

* **ELF shared libraries** with a ``DT_SONAME`` provide
  ``soname: ELF64/libfoo.so.1(x86_64 VERS_1 ...)``: the ELF class and the machine
  are part of the name and flags, so a 32-bit library never satisfies a 64-bit
  program; the flags also list the symbol versions the library defines.
* **ELF executables and libraries** require every ``DT_NEEDED`` soname, with the
  symbol versions they use from it, and, when they have an interpreter, the dynamic
  loader (``soname: ELF64/ld-linux-x86-64.so.2(x86_64)`` and ``file:`` its path).
  Statically linked programs require nothing.
* **Scripts** (executable, starting with ``#!``) require ``file: /their/interpreter``.
* A requirement that the same component satisfies itself is dropped.
"""

from __future__ import annotations

import posixpath
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable

from appbuilder.core.arch import arch_for_elf_machine
from appbuilder.policy.elf import ElfInfo, inspect_elf_file, is_elf
from appbuilder.repository.deps import Dependency, ProvisionIndex, file_dep, soname

# below this many candidate files one process is faster than a pool
PARALLEL_ABOVE = 400


@dataclass
class FileDeps:
    provides: set[Dependency] = field(default_factory=set)
    requires: set[Dependency] = field(default_factory=set)
    elf: str | None = None  # "ELF64 x86_64" for ELF files
    problem: str | None = None  # why an ELF file could not be read (its dependencies are unknown)
    unnamed: tuple[str, str] | None = None  # (ELF class, machine) of a shared object without DT_SONAME


def elf_dependencies(info: ElfInfo) -> FileDeps:
    arch = arch_for_elf_machine(info.machine)
    machine = arch.name if arch else info.machine.removeprefix("EM_").lower()
    elf = f"ELF{info.elf_class}"
    deps = FileDeps(elf=f"{elf} {machine}")
    if info.soname and info.type == "ET_DYN":
        deps.provides.add(soname(elf, info.soname, machine, info.defined_versions))
    elif info.type == "ET_DYN" and not info.interp:
        # a shared object without a soname (klibc's, the loader of its programs): the
        # loader finds it by file name, so its file name is what it provides
        deps.unnamed = (elf, machine)
    for lib in info.needed:
        deps.requires.add(soname(elf, lib, machine, info.needed_versions.get(lib, ())))
    if info.interp:
        deps.requires.add(soname(elf, posixpath.basename(info.interp), machine))
        deps.requires.add(file_dep(info.interp))
    return deps


def script_interpreter(head: bytes) -> str | None:
    """The absolute interpreter path of a ``#!`` line, if any."""
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].strip()
    if not line:
        return None
    interp = line.split()[0].decode("utf-8", "replace")
    return interp if interp.startswith("/") else None


def scan_file(host_path: str, executable: bool) -> FileDeps | None:
    """Dependencies of one regular file on the build host, or None if it has none."""
    try:
        with open(host_path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if is_elf(head):
        info, problem = inspect_elf_file(host_path)
        return elf_dependencies(info) if info is not None else FileDeps(problem=problem)
    if executable:
        interp = script_interpreter(head)
        if interp:
            return FileDeps(requires={file_dep(interp)})
    return None


def _scan_one(item: tuple[str, bool]) -> FileDeps | None:
    return scan_file(*item)


def scan_files(items: Iterable[tuple[str, bool]], *, jobs: int = 1) -> list[FileDeps | None]:
    """:func:`scan_file` over ``(host path, executable)`` pairs, on *jobs* processes."""
    items = list(items)
    if jobs > 1 and len(items) > PARALLEL_ABOVE:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(_scan_one, items, chunksize=64))
    return [scan_file(p, x) for p, x in items]


def drop_self_provided(requires: set[Dependency], provides: set[Dependency], paths: set[str]) -> set[Dependency]:
    """Requirements that *provides* and *paths* (the same component) do not satisfy."""
    own: ProvisionIndex[object] = ProvisionIndex(by_owner=lambda path: [path] if path in paths else [])
    for p in provides:
        own.add(p, p)
    # met the way its class is met (a path by holding it), or by a provision of its own
    return {req for req in requires if not (req.kind.find(own, req) or own.by_provides(req))}
