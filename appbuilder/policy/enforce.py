"""Check that what a package links against was declared as a build requirement.

conary's ``EnforceSonameBuildRequirements``: a soname a new package requires must be
provided by a package in ``buildRequires``, or by the toolchain's own runtime (the C
library, the dynamic loader, libgcc and libstdc++, which every C and C++ build links).
Otherwise the build worked by accident (it found the library on the build host) and
would break elsewhere; the report names the library, the files that need it, and the
trove in the repository that provides it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from appbuilder.repository.deps import SONAME, Dependency

# libraries of the toolchain itself: glibc, the dynamic loaders, the GCC runtime
TOOLCHAIN_SONAMES = re.compile(
    r"^(ld-linux(-x86-64)?\.so\.2|lib(c|m|dl|rt|pthread|util|resolv|crypt|anl|nsl|BrokenLocale|"
    r"mvec|thread_db|nss_[a-z]+|memusage|pcprofile)\.so(\.\d+)*|libgcc_s\.so\.1|libstdc\+\+\.so\.6|"
    r"libatomic\.so\.1|libgomp\.so\.1|libquadmath\.so\.0)$"
)


@dataclass
class MissingBuildRequirement:
    requirement: Dependency
    needed_by: list[str]
    suggestion: str | None  # a trove that provides it, if the repository has one

    def __str__(self) -> str:
        files = ", ".join(self.needed_by[:3]) + (" ..." if len(self.needed_by) > 3 else "")
        hint = f"; add '{self.suggestion}' to buildRequires" if self.suggestion else \
            "; no trove in the repository provides it (import or cook one, then add it to buildRequires)"
        return f"{self.requirement} (needed by {files}) is not provided by a declared build requirement{hint}"


def check_soname_build_requirements(
    requires: dict[Dependency, list[str]],
    declared: set[Dependency],
    *,
    exceptions: tuple[str, ...] = (),
    suggest: Callable[[Dependency], str | None] = lambda dep: None,
) -> list[MissingBuildRequirement]:
    """Soname requirements (→ files needing them) not covered by *declared* provisions."""
    skip = [re.compile(p) for p in exceptions]
    missing = []
    for req, files in sorted(requires.items()):
        if req.kind is not SONAME:
            continue
        soname = SONAME.library(req)
        if TOOLCHAIN_SONAMES.match(soname) or any(r.search(soname) for r in skip):
            continue
        if any(req.satisfied_by(p) for p in declared):
            continue
        missing.append(MissingBuildRequirement(req, sorted(files), suggest(req)))
    return missing
