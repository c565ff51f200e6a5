"""Top-down resolution against upstream distributions: what to import, and why.

A group with ``resolveSources`` (see :mod:`appbuilder.recipe.group`) is resolved as
usual first (:class:`~appbuilder.graph.closure.ClosureResolver` over the repository);
:class:`UpstreamResolver` then plans which packages of the configured upstream indexes
(:mod:`appbuilder.upstream.index`: Debian archives, rpm-md repositories) to bring in for
what the repository lacks:

* **what the group names** but the repository does not hold (``r.add('systemd-sysv')``);
* **unmet typed requirements** of members: ``soname:`` (the index's library owners),
  ``file:`` (its file lists, ``/bin/sh`` and ``/usr/bin/sh`` alike), ``trove:`` and
  ``deb:`` (package names, then ``Provides``), ``rpm:`` (capabilities, or paths);
* with ``upstreamRelations``, the **upstream relations** of capsule members and of every
  package picked: Debian ``Pre-Depends`` and ``Depends`` with their versions and
  alternatives, RPM ``Requires`` including rich dependencies (``and``, ``or``, ``if``,
  ``unless``, ``else``, ``with``, ``without``). ``Recommends`` and ``Suggests`` are never
  followed. A member's relations count only when a source of its kind is searched
  (a Debian kernel capsule's ``Depends`` mean nothing to a group resolving against an
  rpm-md repository alone);
* with ``upstreamBase = 'essential'``, Debian's **Essential** set (which no package
  depends on, because apt assumes it), and with ``mergedUsr`` also ``usr-is-merged``, as
  debootstrap adds to a merged-/usr base (so ``usrmerge | usr-is-merged`` needs no
  ``usrmerge`` and its perl).

A relation already met by a member or an earlier pick adds nothing. Otherwise its
providers are ranked, and the rule that decided is recorded whenever there was more
than one (``appbuild resolve --upstream`` prints it; the group trove keeps it):

1. already in the group (the closure or the plan) and satisfying;
2. named by the group;
3. the first satisfiable Debian alternative (apt's rule: ``a | b`` takes ``b`` only when
   ``a`` cannot be had); likewise the first satisfiable argument of an RPM ``or``;
4. already a trove in the repository (the same version: nothing to import);
5. the source's priority (``sources:``, lower first);
6. Debian's ``Priority`` (required, important, standard, optional, extra);
7. the newest version;
8. for a soname, the package Debian policy names after it (``libsystemd.so.0``:
   ``libsystemd0``, not ``libelogind0``, which ships a library of that soname too);
9. the name that sorts first.

For a package relation, a real package of that name comes before the packages that
``Provide`` the name, as in apt (``libsystemd0`` itself, not ``libelogind0``, for
``Depends: libsystemd0``).

Plain relations are settled before alternatives and conditions, so an alternative
another package needs outright is used rather than a first alternative nobody else
wants. Conflicts and Breaks among the members and picks are reported after
selection (naming both packages); there is no backtracking. A requirement nothing
provides is reported with the chain that led to it and every index searched
(:class:`UpstreamUnresolved`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from appbuilder.core.errors import AppbuildError
from appbuilder.graph.closure import Closure
from appbuilder.repository.deps import (
    DEB,
    FILE,
    RPM,
    SONAME,
    TROVE,
    Dependency,
    ProvisionIndex,
)
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import COMPONENT
from appbuilder.repository.versions import NVF
from appbuilder.upstream.relations import (
    AnyOf,
    Atom,
    Relation,
    RelationError,
    Rich,
    compare,
    parse_deb,
    parse_rpm,
)

MERGED_USR_PACKAGE = "usr-is-merged"
DEBIAN_PRIORITIES = ("required", "important", "standard", "optional", "extra")
RULES = (
    "already in the group",
    "named by the group",
    "first satisfiable alternative",
    "already in the repository",
    "source priority",
    "Debian Priority",
    "the newest",
    "named after the soname",
    "first by name",
)


class UpstreamError(AppbuildError):
    """Top-down resolution failed: a requirement no index provides, or conflicting picks."""


@dataclass(frozen=True)
class Pick:
    """One upstream package the plan brings in."""

    package: object  # IndexPackage (appbuilder.upstream.index)
    reason: str  # "systemd-sysv Pre-Depends: systemd (>= 252) [debian bookworm/main amd64 Packages]"
    rule: str = ""  # why this provider among several ("" when it was the only one)
    relation: str = ""  # the reason without the index
    index: str = ""  # "debian bookworm/main amd64 Packages"
    chain: tuple[str, ...] = ()  # group -> ... -> this package
    in_repository: bool = False  # the very version is a trove already: nothing to import

    def __str__(self) -> str:
        p = self.package
        return f"{p.name} {p.version} ({p.arch}): {self.reason}" + (f"; rule: {self.rule}" if self.rule else "")


@dataclass(frozen=True)
class UpstreamUnresolved:
    text: str  # the requirement as written
    chain: tuple[str, ...]  # group -> ... -> the package needing it
    searched: tuple[str, ...]  # "the repository", then index.describe() of every source
    hint: str = ""

    def __str__(self) -> str:
        text = (f"{self.text} needed by {' -> '.join(self.chain)}: no provider in "
                f"{', '.join(self.searched)}")
        return text + (f" ({self.hint})" if self.hint else "")


@dataclass
class UpstreamPlan:
    picks: list[Pick] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    unresolved: list[UpstreamUnresolved] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    # typed requirements of the closure that members meet by the indexes' reckoning (a
    # path under the other side of merged /usr): "file: /usr/bin/sh: dash holds it"
    met: dict[str, str] = field(default_factory=dict)

    def to_import(self) -> list[Pick]:
        return [p for p in self.picks if not p.in_repository]


@dataclass(frozen=True)
class _Need:
    """One relation to satisfy, with where it came from."""

    rel: object  # Relation, or a typed Dependency
    requirer: str  # package name (or the group)
    field: str  # "Depends", "Pre-Depends", "Requires", "requires", "named", "Essential"
    chain: tuple[str, ...]
    scheme: str = ""  # "deb", "rpm", or "" (a typed dependency or a name: any index)

    def text(self) -> str:
        return str(self.rel)

    def describe(self) -> str:
        if self.field == "named":
            return f"named by {self.requirer}"
        if self.field == "Essential":
            return "Essential: yes (upstreamBase 'essential')"
        if self.field == "merged-usr":
            return "mergedUsr: the root is merged /usr (debootstrap's base adds usr-is-merged too)"
        if self.field == "requires":  # a typed dependency, as the closure words it
            return f"{self.requirer} requires {self.rel}"
        return f"{self.requirer} {self.field}: {self.rel}"


@dataclass
class _Cand:
    package: object  # IndexPackage
    index: object  # UpstreamIndex
    alternative: int = 0
    policy_name: str = ""  # for a soname: the package name Debian policy gives its library


class UpstreamResolver:
    """Plans the upstream packages a group needs (see the module docstring).

    *indexes*: the group's ``resolveSources`` opened for its architecture (any order:
    they are ranked by priority). *relations*: follow upstream relations
    (``upstreamRelations``). *base*: ``'essential'`` or ``''`` (``upstreamBase``).
    """

    def __init__(self, indexes: list, *, relations: bool, base: str = ""):
        self.indexes = sorted(indexes, key=lambda i: (i.priority, i.source))
        self.relations = relations
        self.base = base
        self.searched = ("the repository", *(i.describe() for i in self.indexes))

    # ------------------------------------------------------------------ the plan

    def plan(self, closure: Closure, repo: Repository, group_names: set[str], *,
             wanted: Iterable[tuple[str, str]] = (), group: str = "the group",
             removed: Iterable[str] = (), merged_usr: bool = False) -> UpstreamPlan:
        """What to bring in for *closure* (the group resolved over the repository).

        *group_names*: the package names the group names (ranking rule 2). *wanted*:
        (name, where) of what the group names but the repository lacks. *group*: the
        group's name, the start of every chain. *removed*: names the group removes
        (never picked). *merged_usr*: the image has merged /usr, so a member's ``/bin/sh``
        meets ``file: /usr/bin/sh`` (and the other way round).
        """
        run = _Run(self, closure, repo, set(group_names), group)
        run.removed = {r.split(":", 1)[0] for r in removed}
        run.merged_usr = merged_usr
        return run.go(list(wanted))

    def origins(self, closure: Closure, repo: Repository, picked: Iterable[str]) -> dict[str, dict]:
        """Where the closure members that came from an upstream index, but that no pick of
        the last pass names (the repository held them by then), came from: their index
        (the first by priority listing that very version) and why the closure has them.
        So a group records the origin of every upstream member however many rounds its
        import took, and a later resolve over the same repository records the same."""
        picked = set(picked)
        found: dict[str, dict] = {}
        for nvf, reason in sorted(closure.members.items(), key=lambda item: str(item[0])):
            name = nvf.name.split(":", 1)[0]
            if name in picked or name in found:
                continue
            trove = repo.get(nvf, with_files=False)
            scheme = (trove.info or {}).get("capsule")
            listed = [p for index in self.indexes if index.kind == scheme
                      for p in index.by_name(name) if p.version == nvf.version.upstream]
            if listed:  # named as a pick names its index
                found[name] = {"version": nvf.version.upstream, "index": f"{listed[0].source} {listed[0].origin}",
                               "reason": str(reason)}
        return found


class _Run:
    """One planning pass: the state of what is installed (closure members and picks)."""

    def __init__(self, resolver: UpstreamResolver, closure: Closure, repo: Repository, group_names: set[str],
                 group: str):
        self.r = resolver
        self.closure = closure
        self.repo = repo
        self.group_names = group_names
        self.group = group
        self.plan = UpstreamPlan()
        # what is installed: real names -> [(scheme, version, origin)], provides -> [(Atom, provider name)]
        self.names: dict[str, list[tuple[str, str]]] = {}
        self.provides: dict[str, list[tuple[Atom, str]]] = {}
        self.picked: dict[str, Pick] = {}  # by package name
        self.chains: dict[str, tuple[str, ...]] = {}
        self.typed: ProvisionIndex[str] = ProvisionIndex()
        self.plain: deque[_Need] = deque()
        self.deferred: deque[_Need] = deque()
        self.conditional: list[_Need] = []
        self._repo_versions: dict[str, set[str]] = {}
        self._cand_cache: dict[tuple, list[_Cand]] = {}
        self.removed: set[str] = set()
        self.merged_usr = False
        arch = {i.arch for i in resolver.indexes}
        self.arch = next(iter(arch)) if len(arch) == 1 else None

    # ---------------------------------------------------------------- installed set

    def _install_trove(self, nvf: NVF, trove) -> None:
        name = trove.package
        info = trove.info or {}
        scheme = info.get("capsule", "")
        self.names.setdefault(name, [])
        if (scheme, trove.version.upstream) not in self.names[name]:
            self.names[name].append((scheme, trove.version.upstream))
        self.typed.update(trove.provides, name)
        for dep in trove.provides:
            if dep.kind is DEB:
                self._provide(Atom("deb", dep.name), name)
        for text in info.get("upstream_provides") or []:
            try:
                rels = parse_deb(text) if scheme == "deb" else [parse_rpm(text)] if scheme == "rpm" else []
            except RelationError:
                continue
            for rel in rels:
                if isinstance(rel, Atom):
                    self._provide(rel, name)

    def _provide(self, atom: Atom, who: str) -> None:
        self.provides.setdefault(atom.name, []).append((atom, who))

    def _install_pick(self, pick: Pick) -> None:
        pkg = pick.package
        self.picked[pkg.name] = pick
        self.plan.picks.append(pick)
        self.names.setdefault(pkg.name, []).append((pkg.kind, pkg.version))
        self.chains[pkg.name] = pick.chain
        for prov in pkg.provides:
            self._provide(prov, pkg.name)
        if self.r.relations:
            pre, dep = ("Pre-Depends", "Depends") if pkg.kind == "deb" else ("Requires(pre)", "Requires")
            for rel in pkg.pre_depends:
                self._queue(_Need(rel, pkg.name, pre, pick.chain, pkg.kind))
            for rel in pkg.depends:
                self._queue(_Need(rel, pkg.name, dep, pick.chain, pkg.kind))

    def satisfiers(self, atom: Atom) -> set[str]:
        """Names of installed packages meeting *atom*."""
        found = set()
        for scheme, version in self.names.get(atom.name, ()):
            if not atom.op or (scheme in ("deb", "rpm") and atom.scheme == scheme and atom.allows(version)):
                found.add(atom.name)
        for prov, who in self.provides.get(atom.name, ()):
            if atom.matches(prov) if prov.scheme == atom.scheme else not atom.op:
                found.add(who)
        if atom.scheme == "rpm" and not found:
            found |= self._typed_satisfiers(atom)
        return found

    def _typed_satisfiers(self, atom: Atom) -> set[str]:
        """An RPM soname or path met by what members provide or hold (cooked troves and
        Debian capsules included)."""
        from appbuilder.upstream.depmap import map_rpm

        dep = map_rpm(atom.name, required=True, arch=None)
        if dep is None:
            return set()
        if dep.kind is FILE:
            return self._path_owners(dep.name)
        if dep.kind is SONAME:
            return set(self.typed.by_provides(dep))
        return set()

    def _library_file(self, dep: Dependency) -> str:
        """For a soname requirement with no symbol versions: a member holding a file of that
        name in a library directory of its ELF class ('' when none does)."""
        from appbuilder.core.arch import ARCHES

        machines = {a for a in ARCHES if a in dep.flags}
        if dep.flags - machines or len(machines) != 1:
            return ""
        arch = ARCHES[next(iter(machines))]
        lib = SONAME.library(dep)
        extra = ("/lib64", "/usr/lib64") if arch.elf == "ELF64" else ()
        # the members first, in every directory; the indexes' file lists only when none holds it
        for owners_of in (self._member_owners, self._pick_owners):
            for d in (*arch.multiarch_libdirs, "/lib", "/usr/lib", *extra):
                owners = owners_of(f"{d}/{lib}")
                if owners:
                    return f"{', '.join(sorted(owners))} holds {d}/{lib}"
        return ""

    def _path_owners(self, path: str) -> set[str]:
        return self._member_owners(path) or self._pick_owners(path)

    def _member_owners(self, path: str) -> set[str]:
        """The members of the closure holding *path* (merged /usr aliases too)."""
        found = set()
        for p in _usr_aliases(path):
            found |= {n.package for n in self.repo.owners(p) if n in self.closure.members}
        return found

    def _pick_owners(self, path: str) -> set[str]:
        """The picks holding *path*, by the indexes' file lists."""
        found = set()
        for idx in self.r.indexes:
            found |= {p.name for p in idx.by_file(path) if p.name in self.picked}
        return found

    def holds(self, rel) -> bool:
        if isinstance(rel, Atom):
            return bool(self.satisfiers(rel))
        if isinstance(rel, AnyOf):
            return any(self.satisfiers(a) for a in rel.atoms)
        op, args = rel.op, rel.args
        if op == "and":
            return all(self.holds(a) for a in args)
        if op == "or":
            return any(self.holds(a) for a in args)
        if op == "with":
            return bool(self._rich_satisfiers(args[0]) & self._rich_satisfiers(args[1]))
        if op == "without":
            return bool(self._rich_satisfiers(args[0]) - self._rich_satisfiers(args[1]))
        cond = self.holds(args[1])
        if op == "unless":
            cond = not cond
        if cond:
            return self.holds(args[0])
        return self.holds(args[2]) if len(args) == 3 else True

    def _rich_satisfiers(self, rel) -> set[str]:
        if isinstance(rel, Atom):
            return self.satisfiers(rel)
        if isinstance(rel, AnyOf):
            return set().union(*(self.satisfiers(a) for a in rel.atoms))
        if rel.op == "or":
            return set().union(*(self._rich_satisfiers(a) for a in rel.args))
        if rel.op in ("and", "with"):
            sets = [self._rich_satisfiers(a) for a in rel.args]
            return set.intersection(*sets) if sets else set()
        return set()

    # ---------------------------------------------------------------- candidates

    def _indexes(self, scheme: str) -> list:
        return [i for i in self.r.indexes if not scheme or i.kind == scheme]

    def candidates(self, atom: Atom, alternative: int = 0) -> list[_Cand]:
        key = (atom, alternative)
        if key in self._cand_cache:
            return self._cand_cache[key]
        found: list[_Cand] = []
        virtual: list[_Cand] = []
        for idx in self._indexes(atom.scheme):
            if atom.scheme == "rpm" and atom.name.startswith("/"):
                found += [_Cand(p, idx, alternative) for p in idx.by_file(atom.name)]
                continue
            found += [_Cand(p, idx, alternative) for p in idx.by_name(atom.name) if atom.allows(p.version)]
            for p, prov in idx.by_virtual(atom.name):
                if atom.matches(prov):
                    virtual.append(_Cand(p, idx, alternative))
        # apt's rule: a real package of that name, when one satisfies, before what Provides it
        found = found or virtual
        self._cand_cache[key] = found
        return found

    def typed_candidates(self, dep: Dependency) -> list[_Cand]:
        found: list[_Cand] = []
        for idx in self.r.indexes:
            if dep.kind is SONAME:
                elf = SONAME.elf_class(dep)
                if elf:
                    lib = SONAME.library(dep)
                    found += [_Cand(p, idx, 0, policy_name(lib)) for p in idx.by_soname(elf, lib)]
            elif dep.kind is FILE:
                found += [_Cand(p, idx) for p in idx.by_file(dep.name)]
            elif dep.kind in (TROVE, DEB) or (dep.kind is RPM and not dep.name.startswith("/")):
                name = dep.name.split(":", 1)[0] if dep.kind is TROVE else dep.name
                found += [_Cand(p, idx) for p in idx.by_name(name)]
                found += [_Cand(p, idx) for p, _ in idx.by_virtual(name)]
            elif dep.kind is RPM:
                found += [_Cand(p, idx) for p in idx.by_file(dep.name)]
        return found

    def in_repository(self, pkg) -> bool:
        versions = self._repo_versions.get(pkg.name)
        if versions is None:
            versions = {n.version.upstream for n in self.repo.versions(pkg.name, arch=self.arch)}
            self._repo_versions[pkg.name] = versions
        return pkg.version in versions

    def _usable(self, cands: list[_Cand]) -> tuple[list[_Cand], str]:
        """Candidates that do not clash with a member of another version; the newest per
        (source, name); and a hint when a clash removed them all."""
        best: dict[tuple[str, str], _Cand] = {}
        clash = ""
        for c in cands:
            p = c.package
            if p.name in self.removed:
                clash = clash or f"the group removes {p.name}"
                continue
            have = self.names.get(p.name)
            if have and all(v != p.version for _, v in have):
                clash = clash or f"the group has {p.name} {have[0][1]}, not a version that satisfies it"
                continue
            key = (p.source, p.name)
            old = best.get(key)
            if old is None or c.alternative < old.alternative or (
                    c.alternative == old.alternative and self._newer(p, old.package)):
                best[key] = c
        return list(best.values()), clash

    def _newer(self, a, b) -> bool:
        if self.in_repository(a) != self.in_repository(b):
            return self.in_repository(a)
        return compare(a.kind, a.version, b.version) > 0

    def rank(self, c: _Cand) -> tuple:
        p = c.package
        prio = DEBIAN_PRIORITIES.index(p.priority) if p.priority in DEBIAN_PRIORITIES else len(DEBIAN_PRIORITIES)
        return (0, 0 if p.name in self.group_names else 1, c.alternative, 0 if self.in_repository(p) else 1,
                c.index.priority, prio, 0, 0 if p.name == c.policy_name else 1, p.name)

    def choose(self, cands: list[_Cand], need: _Need) -> tuple[_Cand, str]:
        ranked = sorted(cands, key=self.rank)
        chosen = ranked[0]
        if len(ranked) == 1:
            return chosen, ""
        runner = ranked[1]
        a, b = self.rank(chosen), self.rank(runner)
        i = next((k for k in range(len(a)) if a[k] != b[k]), len(a) - 1)
        pa, pb = chosen.package, runner.package
        if i == 1:
            rule = f"named by {self.group}"
        elif i == 2:
            rule = f"first satisfiable alternative of {need.requirer}'s {need.field}"
        elif i == 3:
            rule = f"already in the repository ({pa.name} {pa.version})"
        elif i == 4:
            rule = f"source priority {pa.source}({chosen.index.priority}) < {pb.source}({runner.index.priority})"
        elif i == 5:
            rule = f"Debian Priority {pa.priority or '-'} before {pb.priority or '-'}"
        elif i == 7:
            rule = f"named after the soname (Debian policy 8.1: {pa.name})"
        else:
            rule = "first by name"
        names = sorted({f"{c.package.name}" + (f" [{c.package.source}]" if len(self.r.indexes) > 1 else "")
                        for c in ranked})
        self.plan.choices.append(f"{need.text()} (for {need.requirer}) has {len(names)} providers "
                                 f"({', '.join(names)}); chose {pa.name}: rule: {rule}")
        return chosen, rule

    # ---------------------------------------------------------------- satisfying needs

    def _queue(self, need: _Need) -> None:
        if isinstance(need.rel, (AnyOf, Rich)):
            self.deferred.append(need)
        else:
            self.plain.append(need)

    def pick(self, cand: _Cand, need: _Need, rule: str) -> None:
        p = cand.package
        if p.name in self.picked or p.name in self.names:
            return
        index = f"{p.source} {p.origin}"
        relation = need.describe()
        chain = (*need.chain, p.name)
        self._install_pick(Pick(p, f"{relation} [{index}]", rule, relation, index, chain, self.in_repository(p)))

    def unresolved(self, need: _Need, hint: str = "") -> None:
        self.plan.unresolved.append(UpstreamUnresolved(need.text(), need.chain, self.r.searched, hint))

    def satisfy(self, need: _Need) -> None:
        rel = need.rel
        if isinstance(rel, Dependency):
            return self._typed(need)
        if isinstance(rel, Rich):
            return self._rich(need)
        if self.holds(rel):
            return
        if isinstance(rel, Atom):
            usable, clash = self._usable(self.candidates(rel))
            if not usable:
                return self.unresolved(need, clash)
            cand, rule = self.choose(usable, need)
            return self.pick(cand, need, rule)
        if isinstance(rel, AnyOf):
            cands, clashes = [], []
            for i, alt in enumerate(rel.atoms):
                usable, clash = self._usable(self.candidates(alt, i))
                cands += usable
                clashes.append(clash)
            if not cands:
                return self.unresolved(need, next((c for c in clashes if c), ""))
            cand, rule = self.choose(cands, need)
            return self.pick(cand, need, rule)

    def _typed(self, need: _Need) -> None:
        dep: Dependency = need.rel
        # met by a member without the index's help (its Contents may not have been read)
        if dep.kind is FILE and self.merged_usr:
            owners = {o for o in self._path_owners(dep.name) if o not in self.picked}
            if owners:  # the other name of a member's path under merged /usr
                self.plan.met[str(dep)] = f"{', '.join(sorted(owners))} holds it under merged /usr"
                return
        if dep.kind is SONAME:
            held = self._library_file(dep)
            if held:  # a library without that soname in its header (klibc's loader, named by PT_INTERP)
                self.plan.met[str(dep)] = held
                return
        cands = self.typed_candidates(dep)
        installed = sorted({c.package.name for c in cands if c.package.name in self.names})
        if installed:
            name = installed[0]
            if name in self.picked:
                return  # it comes with a pick: the next round checks it
            owners = self._path_owners(dep.name) if dep.kind is FILE else set()
            if owners and self.merged_usr:  # the other name of a member's path under merged /usr
                self.plan.met[str(dep)] = f"{', '.join(sorted(owners))} holds it under merged /usr"
                return
            if owners:
                return self.unresolved(need, f"{', '.join(sorted(owners))} holds it under the other name of merged "
                                             f"/usr, which the group does not have (mergedUsr)")
            held = self._library_file(dep) if dep.kind is SONAME else ""
            if held:  # a library without that soname in its header (klibc's loader, named by PT_INTERP)
                self.plan.met[str(dep)] = held
                return
            what = " with every symbol version asked for" if dep.kind is SONAME else ""
            return self.unresolved(need, f"{name} is in the group but does not provide it{what}")
        usable, clash = self._usable(cands)
        if not usable:
            return self.unresolved(need, clash)
        cand, rule = self.choose(usable, need)
        self.pick(cand, need, rule)

    def _rich(self, need: _Need) -> None:
        rel: Rich = need.rel
        op, args = rel.op, rel.args
        sub = lambda r: _Need(r, need.requirer, need.field, need.chain, need.scheme)
        if op == "and":
            for a in args:
                self.satisfy(sub(a))
        elif op == "or":
            if self.holds(rel):
                return
            for i, a in enumerate(args):
                if self._can(a):
                    if i:
                        self.plan.choices.append(f"{rel} (for {need.requirer}): {args[0]} cannot be had; "
                                                 f"took {a}: rule: first satisfiable alternative of a rich 'or'")
                    return self.satisfy(sub(a))
            self.unresolved(need)
        elif op in ("if", "unless"):
            cond = self.holds(args[1])
            if op == "unless":
                cond = not cond
            if cond:
                self.satisfy(sub(args[0]))
            elif len(args) == 3:
                self.satisfy(sub(args[2]))
            else:
                self.conditional.append(need)  # the condition may come true with a later pick
        elif op in ("with", "without"):
            if self.holds(rel):
                return
            first = args[0]
            atoms = [first] if isinstance(first, Atom) else list(getattr(first, "atoms", ()))
            cands = [c for a in atoms for c in self.candidates(a)]
            keep = []
            for c in cands:
                has = self._package_meets(c.package, args[1])
                if has == (op == "with"):
                    keep.append(c)
            usable, clash = self._usable(keep)
            if not usable:
                return self.unresolved(need, clash)
            cand, rule = self.choose(usable, need)
            self.pick(cand, need, rule)

    def _package_meets(self, pkg, rel) -> bool:
        """Whether one index package by itself meets *rel* (for ``with``/``without``)."""
        own = Atom(pkg.kind, pkg.name, "=", pkg.version)
        provided = [own, *pkg.provides]

        def meets(r) -> bool:
            if isinstance(r, Atom):
                return any(r.matches(p) for p in provided)
            if isinstance(r, AnyOf):
                return any(meets(a) for a in r.atoms)
            if r.op in ("and", "with"):
                return all(meets(a) for a in r.args)
            if r.op == "or":
                return any(meets(a) for a in r.args)
            return False

        return meets(rel)

    def _can(self, rel) -> bool:
        """Whether *rel* holds or some index could make it hold."""
        if self.holds(rel):
            return True
        if isinstance(rel, Atom):
            return bool(self._usable(self.candidates(rel))[0])
        if isinstance(rel, AnyOf):
            return any(self._can(a) for a in rel.atoms)
        if rel.op == "and":
            return all(self._can(a) for a in rel.args)
        if rel.op == "or":
            return any(self._can(a) for a in rel.args)
        return self._can(rel.args[0])

    # ---------------------------------------------------------------- the run

    def go(self, wanted: list[tuple[str, str]]) -> UpstreamPlan:
        closure = self.closure
        for nvf, trove in closure.troves.items():
            self._install_trove(nvf, trove)
        for name, _where in wanted:
            atom = Atom(self.r.indexes[0].kind if self.r.indexes else "deb", name.split(":", 1)[0])
            self.plain.append(_Need(atom, self.group, "named", (self.group,), ""))
        if self.r.base == "essential":
            for idx in self._indexes("deb"):
                for p in sorted(idx.essential(), key=lambda p: p.name):
                    if p.name not in self.names:
                        self.plain.append(_Need(Atom("deb", p.name), self.group, "Essential", (self.group,), "deb"))
                # a merged-/usr root says so, as debootstrap's does: init-system-helpers'
                # "usrmerge | usr-is-merged" is then met without usrmerge (and perl)
                if self.merged_usr and idx.by_name(MERGED_USR_PACKAGE) and MERGED_USR_PACKAGE not in self.names:
                    self.plain.append(_Need(Atom("deb", MERGED_USR_PACKAGE), self.group, "merged-usr", (self.group,),
                                            "deb"))
        for u in closure.unresolved:
            self.plain.append(_Need(u.requirement, u.chain[-1] if u.chain else self.group,
                                    "requires", (self.group, *u.chain), ""))
        if self.r.relations:
            for nvf in sorted(closure.troves, key=lambda n: n.name):
                trove = closure.troves[nvf]
                if trove.kind == COMPONENT:
                    self._member_relations(nvf, trove)
        self._drain()
        self._conflicts()
        return self.plan

    def _member_relations(self, nvf: NVF, trove) -> None:
        info = trove.info or {}
        scheme = info.get("capsule")
        if scheme not in ("deb", "rpm") or not self._indexes(scheme):
            return  # Debian relations mean something only against a Debian source (likewise RPM)
        chain = (self.group, *self.closure.chain(nvf))
        chain = (*chain[:-1], trove.package)
        pre = list(info.get("upstream_pre_depends") or [])
        for text in info.get("upstream_requires") or []:
            if scheme == "deb":
                field_name = "Pre-Depends" if text in pre else "Depends"
                if text in pre:
                    pre.remove(text)
                try:
                    rels = parse_deb(text)
                except RelationError as exc:
                    self.plan.unresolved.append(UpstreamUnresolved(text, chain, self.r.searched, str(exc)))
                    continue
            else:
                if text.startswith(("rpmlib(", "config(")):
                    continue
                field_name = "Requires"
                try:
                    rels = [parse_rpm(text)]
                except RelationError as exc:
                    self.plan.unresolved.append(UpstreamUnresolved(text, chain, self.r.searched, str(exc)))
                    continue
            for rel in rels:
                self._queue(_Need(rel, trove.package, field_name, chain, scheme))

    def _drain(self) -> None:
        while True:
            while self.plain or self.deferred:
                need = self.plain.popleft() if self.plain else self.deferred.popleft()
                self.satisfy(need)
            waiting, self.conditional = self.conditional, []
            for need in waiting:
                self.satisfy(need)  # puts it back when the condition is still false
            if not (self.plain or self.deferred) and len(self.conditional) >= len(waiting):
                return

    def _conflicts(self) -> None:
        checks: list[tuple[str, str, Relation]] = []
        for pick in self.plan.picks:
            for rel in pick.package.conflicts:
                checks.append((pick.package.name, pick.package.version, rel))
        for trove in self.closure.troves.values():
            info = trove.info or {}
            if trove.kind != COMPONENT or info.get("capsule") not in ("deb", "rpm") or not self._indexes(info["capsule"]):
                continue
            for text in info.get("upstream_conflicts") or []:
                try:
                    rels = parse_deb(text) if info["capsule"] == "deb" else [parse_rpm(text)]
                except RelationError:
                    continue
                checks += [(trove.package, trove.version.upstream, r) for r in rels]
        seen = set()
        for who, version, rel in checks:
            for atom in ([rel] if isinstance(rel, Atom) else list(getattr(rel, "atoms", ()))):
                for other in sorted(self.satisfiers(atom) - {who}):
                    have = self.names.get(other, [("", "?")])[0][1]
                    text = f"{who} {version} conflicts with {atom} (Conflicts/Breaks), but {other} {have} is in the group"
                    if text not in seen:
                        seen.add(text)
                        self.plan.conflicts.append(text)


def policy_name(soname: str) -> str:
    """The package name Debian policy (8.1) gives the library *soname*: ``libsystemd.so.0``
    -> ``libsystemd0``, ``libfoo-1.2.so`` -> ``libfoo1.2``, ``libssl.so.3`` -> ``libssl3``;
    a name ending in a digit takes a hyphen (``libgdbm_compat.so.4``: ``libgdbm-compat4``)."""
    name, sep, version = soname.partition(".so.")
    if not sep:
        if soname.endswith(".so") and "-" in soname:
            name, _, version = soname[:-3].rpartition("-")
        else:
            return ""
    name = name.lower().replace("_", "-")
    return f"{name}-{version}" if name[-1:].isdigit() else f"{name}{version}"


def _usr_aliases(path: str) -> list[str]:
    """*path* and its other name under merged /usr (``/bin/sh`` and ``/usr/bin/sh``)."""
    for top in ("/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/"):
        if path.startswith(top):
            return [path, "/usr" + path]
        if path.startswith("/usr" + top):
            return [path, path[4:]]
    return [path]


def unresolved_error(group: str, arch: str, plan: UpstreamPlan) -> UpstreamError:
    """The one-line error for a plan with unmet requirements."""
    items = plan.unresolved
    more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
    return UpstreamError(f"{group} ({arch}) cannot be resolved top-down: " + "; ".join(map(str, items[:3])) + more)


def conflicts_error(group: str, arch: str, plan: UpstreamPlan) -> UpstreamError:
    items = plan.conflicts
    more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
    return UpstreamError(f"{group} ({arch}): the upstream packages conflict: " + "; ".join(items[:3]) + more)
