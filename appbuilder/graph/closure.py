"""Dependency closure: start from some troves, add a provider for every unmet requirement.

Used to stage a cook's build requirements, and by group resolution. Packages expand
into their components (by default all but ``:debuginfo``; a group chooses which);
each added trove records the **reason** it is there: named by the caller, a component
of a named package, the provider of one requirement of another member, or (a group
resolved top-down, :mod:`appbuilder.graph.upstream`) brought in from an upstream index,
with the relation as upstream wrote it and the index it came from. An unmet
requirement with no provider is reported with the chain of troves that led to it.

How a provider is chosen when several troves offer the same thing: a trove already in
the closure wins; otherwise one from a package the caller named, then one on the
requiring trove's label (a group with a search path: the first label of the path that
has one, and only labels of the path), then the newest (last committed) version, then
the name that sorts first. When candidates of different names were available the choice
is recorded, so ambiguity is never silent.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from appbuilder.repository.deps import Dependency, ProvisionIndex
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import GROUP, Trove
from appbuilder.repository.versions import NVF, TroveSpec

NAMED, COMPONENT, REQUIREMENT, SUBGROUP = "named", "component", "requirement", "subgroup"
UPSTREAM = "upstream"  # brought in from an upstream distribution's index (graph/upstream.py)


@dataclass(frozen=True)
class Reason:
    kind: str  # NAMED, COMPONENT, REQUIREMENT, SUBGROUP or UPSTREAM
    required_by: NVF | None = None
    requirement: Dependency | None = None
    relation: str = ""  # UPSTREAM: why, as upstream wrote it ("systemd-sysv Pre-Depends: systemd (>= 252)")
    index: str = ""  # UPSTREAM: the index it was found in ("debian bookworm/main amd64 Packages")

    def __str__(self) -> str:
        if self.kind == NAMED:
            return "named"
        if self.kind == UPSTREAM:
            return f"{self.relation} [{self.index}]" if self.index else self.relation
        if self.kind == COMPONENT:
            return f"component of {self.required_by.name}"
        if self.kind == SUBGROUP:
            return f"member of {self.required_by.name}"
        return f"{self.required_by.name} requires {self.requirement}"


@dataclass(frozen=True)
class Unresolved:
    requirement: Dependency
    chain: tuple[str, ...]  # names from a named trove down to the one that needs it
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.requirement} needed by {' -> '.join(self.chain)}: nothing in the repository provides it"
        return text + (f" ({self.hint})" if self.hint else "")


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

    def chain(self, nvf: NVF) -> tuple[str, ...]:
        chain = [nvf]
        while (reason := self.members.get(chain[-1])) and reason.required_by is not None:
            chain.append(reason.required_by)
        return tuple(n.name for n in reversed(chain))


@dataclass(frozen=True)
class Root:
    """A trove the caller names, with the components of it to take (None: the default)."""

    nvf: NVF
    components: tuple[str, ...] | None = None
    reason: Reason = Reason(NAMED)


class ClosureResolver:
    """Computes closures over one repository for one architecture.

    *components*: which components of a named package to take (None: all but
    *exclude_components*). *removed*: trove or package names never to add.
    *replaced*: name → the spec to use instead whenever that trove is needed.
    *auto_resolve*: add providers for unmet requirements (otherwise only report them).
    *removed_components*: components of every package never to add (``devel``).
    *search_path*: labels providers come from, in order of preference (empty: any label).
    *find*: how a replacement spec is looked up (default: the newest matching trove).
    """

    def __init__(self, repo: Repository, arch: str, *, components: tuple[str, ...] | None = None,
                 exclude_components: tuple[str, ...] = ("debuginfo",), removed: set[str] = frozenset(),
                 replaced: dict[str, TroveSpec] | None = None, auto_resolve: bool = True,
                 removed_components: set[str] = frozenset(), search_path: list[str] = (),
                 find: Callable[[TroveSpec], NVF] | None = None):
        self.repo = repo
        self.arch = arch
        self.components = components
        self.exclude = set(exclude_components)
        self.removed = set(removed)
        self.removed_components = set(removed_components)
        self.replaced = replaced or {}
        self.auto_resolve = auto_resolve
        self.search_path = list(search_path)
        self.find = find or (lambda spec: self.repo.find_one(spec, arch=self.arch))
        self.named_packages: set[str] = set()

    def is_removed(self, name: str) -> bool:
        if ":" in name and name.split(":", 1)[1] in self.removed_components:
            return True
        return name in self.removed or name.split(":", 1)[0] in self.removed

    def wanted_component(self, component: str, only: tuple[str, ...] | None) -> bool:
        if only is not None:
            return component in only
        if self.components is not None:
            return component in self.components
        return component not in self.exclude

    def resolve(self, roots: list[Root | NVF], *, extra_provides: set[Dependency] = frozenset(),
                requires: list[tuple[Dependency, NVF]] = ()) -> Closure:
        """The closure of *roots*; *requires* are requirements of the caller itself (a
        group's ``Requires``), each with the NVF that names the caller in reasons."""
        roots = [r if isinstance(r, Root) else Root(r) for r in roots]
        self.named_packages = {r.nvf.package for r in roots if r.reason.kind != UPSTREAM}
        closure = Closure()
        names: dict[str, NVF] = {}
        # what the closure holds, by what its troves provide, their names, the paths they hold
        provided: ProvisionIndex[NVF] = ProvisionIndex(
            by_name=lambda name: [names[name]] if name in names else [],
            by_owner=lambda path: [o for o in self.repo.owners(path) if o in closure.members],
        )
        queue: deque[NVF] = deque()

        def add(nvf: NVF, reason: Reason, only: tuple[str, ...] | None = None) -> None:
            if nvf in closure.members or self.is_removed(nvf.name):
                return
            trove = self.repo.get(nvf, with_files=False)
            closure.members[nvf] = reason
            closure.troves[nvf] = trove
            names.setdefault(nvf.name, nvf)
            provided.update(trove.provides, nvf)
            for member in trove.members:
                if trove.kind == GROUP:
                    add(member, Reason(SUBGROUP, nvf))
                    continue
                comp = member.name.split(":", 1)[1] if ":" in member.name else ""
                if self.wanted_component(comp, only):
                    add(member, Reason(COMPONENT, nvf))
            queue.append(nvf)

        def meet(req: Dependency, nvf: NVF, chain: tuple[str, ...]) -> None:
            if not req.kind.resolved_by_closure or self._met(req, provided, extra_provides):
                return
            provider = self._choose(req, nvf, closure) if self.auto_resolve else None
            if provider is None:
                closure.unresolved.append(Unresolved(req, chain, self._hint(req)))
                return
            closure.requirement_edges.append((nvf, provider, req))
            add(provider, Reason(REQUIREMENT, nvf, req))

        for root in roots:
            add(self._replacement(root.nvf.name) or root.nvf, root.reason, root.components)
        pending = list(requires)
        while queue or pending:
            while queue:
                nvf = queue.popleft()
                for req in sorted(closure.troves[nvf].requires):
                    meet(req, nvf, closure.chain(nvf))
            if pending:  # the caller's own requirements, once the rest is in
                for req, by in pending:
                    meet(req, by, (by.name,))
                pending = []
        return closure

    @staticmethod
    def _met(req: Dependency, provided: ProvisionIndex[NVF], extra: set[Dependency]) -> bool:
        """Whether a trove in the closure, or one of the *extra* provisions, meets *req*."""
        return bool(req.kind.find(provided, req)) or any(req.satisfied_by(p) for p in extra)

    def candidates(self, req: Dependency) -> list[NVF]:
        """Troves for this architecture that meet *req*, oldest first (on the search path)."""
        return [n for n in req.kind.candidates(self.repo, req, self.arch) if not self.is_removed(n.name)
                and (not self.search_path or n.version.label in self.search_path)]

    def _replacement(self, name: str) -> NVF | None:
        for key in (name, name.split(":", 1)[0]):
            spec = self.replaced.get(key)
            if spec is not None:
                target = name if key != name else spec.name
                return self.find(TroveSpec(target, spec.version, spec.flavor))
        return None

    def _choose(self, req: Dependency, required_by: NVF, closure: Closure) -> NVF | None:
        found = self.candidates(req)
        if not found:
            return None
        newest: dict[str, NVF] = {}
        for n in found:  # oldest first, so later versions replace earlier ones
            newest[n.name] = n
        label = required_by.version.label
        order = {n: i for i, n in enumerate(found)}

        path = {lbl: i for i, lbl in enumerate(self.search_path)}

        def rank(n: NVF):
            where = path[n.version.label] if path else n.version.label != label
            return (n.package not in self.named_packages, where, -order[n], n.name)

        ranked = sorted(newest.values(), key=rank)
        chosen = ranked[0]
        replacement = self._replacement(chosen.name)
        if replacement is not None:
            chosen = replacement
        if len(newest) > 1:
            runner_up = ranked[1]
            if (chosen.package in self.named_packages) != (runner_up.package in self.named_packages):
                rule = "its package is named in the group"
            elif path and chosen.version.label != runner_up.version.label:
                rule = f"first on the search path ({chosen.version.label})"
            elif not path and (chosen.version.label == label) != (runner_up.version.label == label):
                rule = f"same label as {required_by.name} ({label})"
            elif order[chosen] != order[runner_up]:
                rule = "the newest"
            else:
                rule = "first by name"
            closure.choices.append(Choice(req, required_by, chosen, tuple(sorted(newest)), rule))
        return chosen

    def _hint(self, req: Dependency) -> str:
        """Why nothing matched, when something almost did."""
        if not self.auto_resolve:
            return "autoResolve is off"
        named = req.kind.trove_named(req)
        if named is not None and self.is_removed(named):
            return f"the group removes {named}"
        hint = req.kind.mismatch_hint(req, self.repo)  # e.g. a library of the other ELF class
        if hint:
            return hint
        near = req.kind.candidates(self.repo, req)  # for any architecture
        if near:
            removed = [n for n in near if self.is_removed(n.name)]
            if removed:
                return f"{removed[-1].name} provides it but the group removes it"
            return f"{near[-1].name} provides it, but only for {near[-1].flavor or 'no arch'}"
        return req.kind.partial_hint(req, self.repo)  # e.g. a library without some symbol version
