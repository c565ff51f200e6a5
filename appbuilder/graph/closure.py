"""Dependency closure: start from some troves, add a provider for every unmet requirement.

Used to stage a cook's build requirements, and by group resolution. Packages expand
into their components (except ``:debuginfo`` unless asked); each added trove records
the **reason** it is there: named by the caller, a component of a named package, or
the provider of one requirement of another member. An unmet requirement with no
provider is reported with the chain of troves that led to it.

How a provider is chosen when several troves offer the same thing: a trove already in
the closure wins; otherwise one on the requiring trove's label, then the newest (last
committed) version, then the name that sorts first. When candidates of different names
were available the choice is recorded, so ambiguity is never silent.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from appbuilder.repository.deps import Dependency
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import PACKAGE, Trove
from appbuilder.repository.versions import NVF

NAMED, COMPONENT, REQUIREMENT = "named", "component", "requirement"

# dependency classes the closure does not resolve: the installer itself satisfies them
IGNORED_CLASSES = frozenset({"rpmlib", "abi"})


@dataclass(frozen=True)
class Reason:
    kind: str  # NAMED, COMPONENT or REQUIREMENT
    required_by: NVF | None = None
    requirement: Dependency | None = None

    def __str__(self) -> str:
        if self.kind == NAMED:
            return "named in the group"
        if self.kind == COMPONENT:
            return f"component of {self.required_by.name}"
        return f"provides {self.requirement} for {self.required_by.name}"


@dataclass(frozen=True)
class Unresolved:
    requirement: Dependency
    chain: tuple[NVF, ...]  # from a named trove down to the one that needs it

    def __str__(self) -> str:
        path = " -> ".join(n.name for n in self.chain)
        return f"{self.requirement} needed by {path}: nothing in the repository provides it"


@dataclass(frozen=True)
class Choice:
    requirement: Dependency
    required_by: NVF
    chosen: NVF
    candidates: tuple[str, ...]
    rule: str

    def __str__(self) -> str:
        return (f"{self.requirement} (for {self.required_by.name}) has {len(self.candidates)} providers "
                f"({', '.join(self.candidates)}); chose {self.chosen.name}: {self.rule}")


@dataclass
class Closure:
    members: dict[NVF, Reason] = field(default_factory=dict)
    troves: dict[NVF, Trove] = field(default_factory=dict)
    unresolved: list[Unresolved] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)
    requirement_edges: list[tuple[NVF, NVF, Dependency]] = field(default_factory=list)

    def chain(self, nvf: NVF) -> tuple[NVF, ...]:
        chain = [nvf]
        while (reason := self.members.get(chain[-1])) and reason.required_by is not None:
            chain.append(reason.required_by)
        return tuple(reversed(chain))


class ClosureResolver:
    """Computes closures over one repository for one architecture."""

    def __init__(self, repo: Repository, arch: str, *, exclude_components: tuple[str, ...] = ("debuginfo",)):
        self.repo = repo
        self.arch = arch
        self.exclude = set(exclude_components)

    def resolve(self, roots: list[NVF], *, extra_provides: set[Dependency] = frozenset()) -> Closure:
        closure = Closure()
        provided: dict[tuple[str, str], list[tuple[frozenset, NVF]]] = {}
        names: dict[str, NVF] = {}
        queue: deque[NVF] = deque()

        def add(nvf: NVF, reason: Reason) -> None:
            if nvf in closure.members:
                return
            trove = self.repo.get(nvf, with_files=False)
            closure.members[nvf] = reason
            closure.troves[nvf] = trove
            names.setdefault(nvf.name, nvf)
            for p in trove.provides:
                provided.setdefault((p.cls, p.name), []).append((p.flags, nvf))
            if trove.kind == PACKAGE or trove.members:
                for member in trove.members:
                    comp = member.name.split(":", 1)[1] if ":" in member.name else ""
                    if comp not in self.exclude:
                        add(member, Reason(COMPONENT, nvf))
            queue.append(nvf)

        for root in roots:
            add(root, Reason(NAMED))
        while queue:
            nvf = queue.popleft()
            for req in sorted(closure.troves[nvf].requires):
                if req.cls in IGNORED_CLASSES or self._met(req, provided, names, closure, extra_provides):
                    continue
                provider = self._choose(req, nvf, closure)
                if provider is None:
                    closure.unresolved.append(Unresolved(req, closure.chain(nvf)))
                    continue
                closure.requirement_edges.append((nvf, provider, req))
                add(provider, Reason(REQUIREMENT, nvf, req))
        return closure

    def _met(self, req: Dependency, provided, names, closure: Closure, extra: set[Dependency]) -> bool:
        if req.cls == "trove":
            return req.name in names
        if req.cls == "file":
            return any(o in closure.members for o in self.repo.owners(req.name)) or any(
                req.satisfied_by(p) for p in extra)
        for flags, _ in provided.get((req.cls, req.name), ()):
            if req.flags <= flags:
                return True
        return any(req.satisfied_by(p) for p in extra)

    def candidates(self, req: Dependency) -> list[NVF]:
        if req.cls == "trove":
            latest = self.repo.latest(req.name, arch=self.arch)
            return [latest] if latest else []
        found = self.repo.owners(req.name) if req.cls == "file" else self.repo.providers(req)
        return [n for n in found if n.flavor.installable_on(self.arch)]

    def _choose(self, req: Dependency, required_by: NVF, closure: Closure) -> NVF | None:
        found = self.candidates(req)
        if not found:
            return None
        # newest version of each name
        newest: dict[str, NVF] = {}
        for n in found:  # oldest first, so later ones replace earlier ones
            newest[n.name] = n
        label = required_by.version.label
        ranked = sorted(
            newest.values(),
            key=lambda n: (n.version.label != label, -found.index(n), n.name),
        )
        chosen = ranked[0]
        if len(newest) > 1:
            rule = "same label as the requiring trove" if chosen.version.label == label and any(
                n.version.label != label for n in newest.values()) else "newest, then first by name"
            closure.choices.append(Choice(req, required_by, chosen, tuple(sorted(newest)), rule))
        return chosen
