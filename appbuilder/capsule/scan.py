"""appbuild's own dependency scan over a capsule's files, and how it compares to upstream.

The scan is the one cooked packages get (:mod:`appbuilder.policy.deps`): ELF sonames
with symbol versions, dynamic loaders, ``#!`` interpreters. It runs on the contents as
they are stored, without writing the package out.

* For **DEB** capsules the scan is what the resolver uses (Debian's control fields
  name packages, not sonames).
* For **RPM** capsules the package's own declarations are used, and the scan checks
  them: each soname one side has and the other lacks, or with other symbol versions,
  becomes a line of ``dependency_notes`` that ``appbuild show --deps`` prints.

ELF files of another instruction set than the package's (a 32-bit helper in an x86_64
package) are reported, not turned into requirements: conary only computed
dependencies for the build flavor's instruction sets too. Neither are the interpreters
of scripts in documentation directories (``/usr/share/doc``, ``/usr/share/bug``, ...):
a cooked package keeps those in its ``:doc`` component, which image groups leave out,
but a capsule is one component, and a reportbug helper must not pull bash into an
appliance. They are reported too.
"""

from __future__ import annotations

import io
import posixpath
import re
from collections import defaultdict
from dataclasses import dataclass, field

from appbuilder.capsule.payload import StoredContent
from appbuilder.core.arch import Arch
from appbuilder.policy.deps import (
    FileDeps,
    drop_self_provided,
    elf_dependencies,
    scan_file,
    script_interpreter,
)
from appbuilder.policy.elf import inspect_elf, is_elf, relocatable_header
from appbuilder.repository.deps import SONAME, Dependency, file_dep, soname

# where the dynamic loader looks for libraries (an unnamed shared object there provides its file name)
LIBRARY_DIR = re.compile(r"^/(usr/)?lib(32|64|x32)?(/[a-z0-9_]+-linux-gnu[a-z0-9_]*)?$")


@dataclass
class ScanResult:
    provides: set[Dependency] = field(default_factory=set)
    requires: set[Dependency] = field(default_factory=set)
    elf: set[str] = field(default_factory=set)
    needed_by: dict[Dependency, list[str]] = field(default_factory=lambda: defaultdict(list))
    provided_by: dict[Dependency, list[str]] = field(default_factory=lambda: defaultdict(list))
    foreign: list[str] = field(default_factory=list)  # ELF files of another instruction set
    documentation: list[str] = field(default_factory=list)  # doc files whose requirements are not used
    unreadable: list[str] = field(default_factory=list)  # ELF files too damaged to read (path and why)


# files here are read, not run: their requirements do not count
DOC_DIRS = ("/usr/share/doc/", "/usr/share/bug/", "/usr/share/man/", "/usr/share/info/", "/usr/share/lintian/")

_CACHE: dict[tuple[str, bool], FileDeps | None] = {}
_CACHE_SIZE = 8192  # files whose scan is remembered (the same library in several versions of a package)


def scan_one(content: StoredContent, executable: bool) -> FileDeps | None:
    key = (content.sha256, executable)
    if key in _CACHE:
        return _CACHE[key]
    found = _scan(content, executable)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = found
    return found


def _scan(content: StoredContent, executable: bool) -> FileDeps | None:
    if content.data is None:
        return scan_file(str(content.spool), executable) if content.spool else None
    if is_elf(content.head):
        relocatable = relocatable_header(content.head)
        if relocatable is not None:
            return elf_dependencies(relocatable)
        info, problem = inspect_elf(io.BytesIO(content.data))
        return elf_dependencies(info) if info is not None else FileDeps(problem=problem)
    if executable:
        interp = script_interpreter(content.head)
        if interp:
            return FileDeps(requires={file_dep(interp)})
    return None


def scan_contents(items: list[tuple[str, bool, StoredContent]], arch: Arch | None) -> ScanResult:
    """Scan ``(path, executable, content)`` of every regular file of one package."""
    result = ScanResult()
    paths = set()
    for path, executable, content in items:
        paths.add(path)
        found = scan_one(content, executable)
        if found is None:
            continue
        if found.problem:
            result.unreadable.append(f"{path} ({found.problem})")
            continue
        if arch is not None and found.elf and found.elf != f"{arch.elf} {arch.name}":
            result.foreign.append(f"{path} ({found.elf})")
            continue
        if path.startswith(DOC_DIRS) and found.requires:
            result.documentation.append(f"{path} ({', '.join(sorted(map(str, found.requires)))})")
            continue
        if found.elf:
            result.elf.add(found.elf)
        provides = set(found.provides)
        if found.unnamed and LIBRARY_DIR.match(posixpath.dirname(path)) and ".so" in posixpath.basename(path):
            provides.add(soname(found.unnamed[0], posixpath.basename(path), found.unnamed[1]))
        for d in provides:
            result.provides.add(d)
            result.provided_by[d].append(path)
        for d in found.requires:
            result.requires.add(d)
            result.needed_by[d].append(path)
    result.requires = drop_self_provided(result.requires, result.provides, paths)
    return result


def _by_name(deps: set[Dependency], *, skip: frozenset[str] = frozenset()) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for d in deps:
        if d.kind is SONAME and SONAME.library(d) not in skip:
            found.setdefault(d.name, set()).update(d.flags)
    return {k: frozenset(v) for k, v in found.items()}


def _who(paths: list[str]) -> str:
    if not paths:
        return ""
    more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
    return f" ({sorted(paths)[0]}{more})"


def compare_sonames(declared_provides: set[Dependency], declared_requires: set[Dependency],
                    scan: ScanResult, *, loaders: frozenset[str]) -> list[str]:
    """Notes on sonames the package declares and its ELF files disagree about.

    Dynamic loaders (*loaders*, e.g. ``ld-linux-x86-64.so.2``) are left out of the
    requirement comparison: RPM states them as ``rtld(GNU_HASH)`` or not at all.
    """
    notes: list[str] = []
    for kind, declared, scanned, where in (
        ("requires", declared_requires, scan.requires, scan.needed_by),
        ("provides", declared_provides, scan.provides, scan.provided_by),
    ):
        skip = loaders if kind == "requires" else frozenset()
        d_names, s_names = _by_name(declared, skip=skip), _by_name(scanned, skip=skip)
        paths = {d.name: where.get(d, []) for d in scanned}
        for name in sorted(set(d_names) | set(s_names)):
            if name not in d_names:
                dep = Dependency(SONAME, name, s_names[name])
                if kind == "requires":
                    notes.append(f"undeclared requirement: the ELF scan finds {dep} needed"
                                 f"{_who(paths.get(name, []))}, the package does not require it")
                else:
                    notes.append(f"undeclared provision: the ELF scan finds {dep} provided"
                                 f"{_who(paths.get(name, []))}, the package does not declare it")
            elif name not in s_names:
                dep = Dependency(SONAME, name, d_names[name])
                if kind == "requires":
                    notes.append(f"declared requirement not found by the ELF scan: {dep} (no file needs it)")
                else:
                    notes.append(f"declared provision not found by the ELF scan: {dep} (no library has that soname)")
            elif d_names[name] != s_names[name]:
                only_scan = sorted(s_names[name] - d_names[name])
                only_decl = sorted(d_names[name] - s_names[name])
                parts = []
                if only_scan:
                    parts.append(f"found by the ELF scan only: {' '.join(only_scan)}")
                if only_decl:
                    parts.append(f"declared only: {' '.join(only_decl)}")
                notes.append(f"{name} ({kind}): symbol versions differ; {'; '.join(parts)}")
    return notes + foreign_note(scan)


def foreign_note(scan: ScanResult) -> list[str]:
    """Notes on files whose requirements the scan left out (other instruction set, documentation,
    ELF files it cannot read)."""
    notes = []
    if scan.unreadable:
        more = " ..." if len(scan.unreadable) > 5 else ""
        notes.append(f"ELF files that cannot be read, their dependencies unknown: {', '.join(scan.unreadable[:5])}{more}")
    if scan.foreign:
        more = " ..." if len(scan.foreign) > 5 else ""
        notes.append(f"ELF files of another instruction set, not scanned for dependencies: "
                     f"{', '.join(scan.foreign[:5])}{more}")
    if scan.documentation:
        more = " ..." if len(scan.documentation) > 5 else ""
        notes.append(f"documentation files whose requirements are not resolved: "
                     f"{', '.join(scan.documentation[:5])}{more}")
    return notes
