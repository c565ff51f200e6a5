"""Which packages of an rpm-md repository to import.

Without ``--only``: every binary package of the wanted architectures, every version
the repository carries (oldest first, so the newest becomes the newest trove).

With ``--only NAME[.ARCH]...``: the newest build of each named package and its
dependency closure inside the repository, as dnf would install it:

* a requirement is met by a package of the repository that provides it (RPM's own
  provides, mapped as in :mod:`~appbuilder.upstream.depmap`), or for a path, owns it
  (primary.xml lists the files in /etc and bin/ directories; filelists.xml is read
  when that is not enough); among several, the requiring package's architecture is
  preferred, then noarch, then x86_64, then the others (multilib), then the name that
  sorts first;
* or by a trove already in appbuild's repository (cooked or imported earlier), so an
  overlay repository can be imported on top of its base;
* ``rpmlib(...)`` requirements are the installer's business and ignored.

A requirement nothing meets is an error naming the chain of packages that led to it,
and nothing is imported (``--allow-missing`` turns it into a warning).
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

import rpm

from appbuilder.upstream.depmap import map_rpm, merge_sonames
from appbuilder.capsule.model import CapsuleError
from appbuilder.upstream.rpmmd import RepoPackage, RpmMdRepository
from appbuilder.core.arch import DEFAULT_ARCH, Arch, get_arch
from appbuilder.core.errors import AppbuildError
from appbuilder.repository.deps import Dependency, ProvisionIndex, file_dep


def package_arch(pkg: RepoPackage) -> Arch | None:
    """The appbuild architecture of a package; None for noarch; raises for others."""
    if pkg.arch == "noarch":
        return None
    return get_arch(pkg.arch)


def supported(pkg: RepoPackage) -> bool:
    if pkg.arch in ("src", "nosrc"):
        return False
    try:
        package_arch(pkg)
    except AppbuildError:
        return False
    return True


def evr_order(packages: Iterable[RepoPackage]) -> list[RepoPackage]:
    """Sorted by name and arch, each name's versions oldest first (rpm's version order)."""
    def cmp(a: RepoPackage, b: RepoPackage) -> int:
        if (a.name, a.arch) != (b.name, b.arch):
            return -1 if (a.name, a.arch) < (b.name, b.arch) else 1
        return rpm.labelCompare(a.evr, b.evr)

    return sorted(packages, key=functools.cmp_to_key(cmp))


@dataclass(frozen=True)
class Missing:
    requirement: str
    chain: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.requirement} needed by {' -> '.join(self.chain)}"


class Selection:
    def __init__(self, repo: RpmMdRepository, arches: set[str | None],
                 external: Callable[[Dependency, Arch | None], bool] = lambda d, a: False):
        """*arches*: appbuild architecture names to import, None standing for noarch."""
        self.repo = repo
        self.arches = arches
        self.external = external
        self.candidates = [p for p in repo.packages if supported(p) and _arch_name(p) in arches]
        self.missing: list[Missing] = []

    def everything(self) -> list[RepoPackage]:
        return evr_order(self.candidates)

    def only(self, names: list[str]) -> list[RepoPackage]:
        newest: dict[tuple[str, str], RepoPackage] = {}
        for p in evr_order(self.candidates):
            newest[(p.name, p.arch)] = p
        pool = list(newest.values())
        owners: dict[str, list[RepoPackage]] = {}
        for p in pool:
            for f in p.files:
                owners.setdefault(f, []).append(p)

        def holders(path: str) -> list[RepoPackage]:
            found = list(owners.get(path, []))
            if not found:
                lists = self.repo.filelists()
                found = [p for p in pool if path in lists.get(p.nevra, ())]
            return found

        provided = _packages(holders)
        for p in pool:
            provided.update(_provisions(p), p)

        chosen: dict[str, tuple[RepoPackage, str | None]] = {}  # nevra -> (package, required by)
        queue: deque[RepoPackage] = deque()
        for spec in names:
            roots = [p for p in pool if p.name == spec or f"{p.name}.{p.arch}" == spec]
            if not roots:
                known = sorted({p.name for p in self.repo.packages if p.name.startswith(spec[:3])})[:8]
                hint = f" (similar: {', '.join(known)})" if known else ""
                raise CapsuleError(f"--only {spec}: no such package in {self.repo.location} for the "
                                   f"architectures asked{hint}")
            for p in roots:
                if p.nevra not in chosen:
                    chosen[p.nevra] = (p, None)
                    queue.append(p)

        while queue:
            pkg = queue.popleft()
            arch = package_arch(pkg)
            # what the package meets itself: its provisions (one per soname, all its symbol versions), its paths
            own = _packages(lambda path, pkg=pkg: [pkg] if path in pkg.files else [])
            own.update(merge_sonames(_provisions(pkg)), pkg)
            for entry in pkg.requires:
                dep = map_rpm(entry.name, required=True, arch=arch)
                if dep is None or not dep.kind.resolved_by_closure:  # rpmlib(...): the installer's
                    continue
                if dep.kind.find(own, dep):
                    continue
                found = dep.kind.find(provided, dep)
                if not found:
                    missing = Missing(str(entry), self._chain(chosen, pkg))
                    if missing not in self.missing and not self.external(dep, arch):
                        self.missing.append(missing)
                    continue
                if any(p.nevra in chosen for p in found):
                    continue
                best = sorted(found, key=lambda p: (p.arch != pkg.arch, p.arch != "noarch",
                                                    _arch_name(p) != DEFAULT_ARCH, p.name))[0]
                chosen[best.nevra] = (best, pkg.nevra)
                queue.append(best)
        return evr_order(p for p, _ in chosen.values())

    @staticmethod
    def _chain(chosen, pkg: RepoPackage) -> tuple[str, ...]:
        chain = [pkg.nevra]
        while (parent := chosen[chain[-1]][1]) is not None:
            chain.append(parent)
        return tuple(reversed(chain))


def _provisions(pkg: RepoPackage) -> list[Dependency]:
    """A package's RPM provides that have an appbuild form."""
    arch = package_arch(pkg)
    return [d for d in (map_rpm(e.name, required=False, arch=arch) for e in pkg.provides) if d is not None]


def _packages(holders: Callable[[str], list[RepoPackage]]) -> ProvisionIndex[RepoPackage]:
    """Packages by what they provide; a path is met by *holders(path)*, then by the packages
    that provide the path (RPM lets a package provide a path it does not hold)."""
    index: ProvisionIndex[RepoPackage] = ProvisionIndex(
        by_owner=lambda path: holders(path) + index.by_provides(file_dep(path)))
    return index


def _arch_name(pkg: RepoPackage) -> str | None:
    arch = package_arch(pkg)
    return arch.name if arch else None
