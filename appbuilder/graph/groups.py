"""Resolve a group recipe into a group trove with exact pins, for one architecture.

Top-down, as rBuilder did: start from what the group names (and its nested groups),
let the closure add a provider for every unmet requirement, check that nothing stays
unmet (``depCheck``) and that no two members write one path differently
(``checkPathConflicts``), then record the group trove. Its version follows the usual
rules: the same recipe and the same closure give the same version; a new closure a new
build count; a changed group recipe a new source count.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from appbuilder.core.errors import AppbuildError, RecipeError, RepositoryError
from appbuilder.core.settings import Settings
from appbuilder.core.usrmerge import is_merged_dir, merged_path
from appbuilder.graph.closure import NAMED, UPSTREAM, Closure, ClosureResolver, Reason, Root
from appbuilder.graph.upstream import (
    Pick,
    UpstreamError,
    UpstreamPlan,
    UpstreamResolver,
    conflicts_error,
    unresolved_error,
)
from appbuilder.recipe.flavor import cook_flags
from appbuilder.recipe.group import ADD, ADD_COPY, SWITCHES, GroupItem, GroupRecipe
from appbuilder.recipe.library import source_digest
from appbuilder.recipe.loader import load_group
from appbuilder.repository import index
from appbuilder.repository.deps import Dependency, trove_dep
from appbuilder.repository.repo import GroupBuild, Repository
from appbuilder.repository.trove import COMPONENT, GROUP, Trove
from appbuilder.repository.versions import NVF, Flavor, TroveSpec, Version, best_match


class ResolutionError(AppbuildError):
    """The group cannot be resolved: unmet requirements or path conflicts."""


@dataclass(frozen=True)
class PathConflict:
    path: str
    troves: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.path} is written differently by {' and '.join(self.troves)}"


@dataclass
class GroupResult:
    group: Trove | None  # None: a plan only (TopDown without an importer), nothing committed
    new: bool
    closure: Closure
    recipe: GroupRecipe
    warnings: list[str] = field(default_factory=list)
    plan: UpstreamPlan | None = None  # top-down: the last plan (empty once everything is in)
    picks: list[Pick] = field(default_factory=list)  # top-down: every pick of every round
    rounds: int = 0
    optional: dict[NVF, Reason] = field(default_factory=dict)  # byDefault=False: pinned, not installed

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(name, revision, flavor, reason) of every member, in name order (then the
        byDefault=False ones)."""
        return [(n.name, n.version.revision, str(n.flavor), str(r))
                for n, r in sorted(self.closure.members.items(), key=lambda kv: kv[0].name)] + [
                (n.name, n.version.revision, str(n.flavor), f"{r} (byDefault=False: not installed)")
                for n, r in sorted(self.optional.items(), key=lambda kv: kv[0].name)]


MAX_ROUNDS = 8  # top-down: plan, import, resolve again, at most this often


@dataclass
class TopDown:
    """How groups with ``resolveSources`` reach their upstream distributions.

    *open_indexes(source_names, arch)* opens the indexes (default: the ``sources:``
    setting); *import_picks(picks, arch)* imports the picked packages and returns the
    trove of each (by ``IndexPackage.key``); without it, resolution stops at the first
    plan and commits nothing (``appbuild resolve --upstream``).
    """

    open_indexes: Callable[[tuple[str, ...], str], list] | None = None
    import_picks: Callable[[list[Pick], str], dict[str, NVF]] | None = None
    say: Callable[[str], None] = lambda text: None
    max_rounds: int = MAX_ROUNDS
    _indexes: dict = field(default_factory=dict)

    def index_of(self, source: str, arch: str):
        """The opened index of *source* for *arch*."""
        for (_, a), indexes in self._indexes.items():
            for idx in indexes:
                if a == arch and idx.source == source:
                    return idx
        raise UpstreamError(f"no index of source {source!r} is open for {arch}")

    def indexes(self, settings: Settings, sources: tuple[str, ...], arch: str) -> list:
        key = (tuple(sources), arch)
        if key not in self._indexes:
            if self.open_indexes is not None:
                self._indexes[key] = self.open_indexes(tuple(sources), arch)
            else:
                from appbuilder.upstream.index import open_sources

                self._indexes[key] = open_sources(settings, arch, names=list(sources))
        return self._indexes[key]


def resolve_group(settings: Settings, repo: Repository, name: str, arch: str, *, commit: bool = True,
                  upstream: TopDown | None = None, _stack: tuple[str, ...] = (), _part: str | None = None
                  ) -> GroupResult:
    """Resolve ``groups/NAME.py`` for *arch* and commit its group trove.

    A group with ``resolveSources`` is resolved top-down (:mod:`appbuilder.graph.upstream`):
    plan what the upstream indexes must supply, import it (*upstream*'s
    ``import_picks``), resolve again, until a round finds nothing new (at most
    ``MAX_ROUNDS``). Without an importer the first plan is returned uncommitted when it
    has anything to import. *commit* False: resolve and check, record nothing.

    Groups the recipe makes with ``createGroup`` are resolved and committed too (*_part*
    names one of them: only its items), before the recipe's own group.
    """
    gname = _part or name
    if gname in _stack:
        raise RecipeError(f"group cycle: {' -> '.join([*_stack, gname])}")
    gf = load_group(settings.groups_dir, name)
    from appbuilder.core.arch import get_arch

    recipe = gf.instantiate(get_arch(arch))
    contents = recipe.contents
    sources = tuple(recipe.resolveSources or ()) if _part is None else ()
    switches = {k: getattr(recipe, k) for k in SWITCHES}
    if _part is not None:
        switches.update(contents.created[_part]["switches"])
    items = [i for i in contents.items if i.group == _part]
    search_path = list(contents.search_path)
    prefer = Flavor(arch, tuple((f, "~" if on else "~!") for f, on in cook_flags(settings.get("use"), "")[0].items()))

    def find(spec: TroveSpec) -> NVF:
        return find_item(repo, spec, arch, search_path=search_path, prefer=prefer)

    def newest(spec: TroveSpec) -> NVF:  # replace(): the newest on the search path (any label without one)
        if search_path:
            return find(spec)
        found = repo.find(spec, arch=arch)
        return _pick(found, spec, prefer) if found else repo.find_one(spec, arch=arch)

    base_roots: list[Root] = []
    optional_groups: list[NVF] = []
    nested = [(sub, where) for sub, where in contents.subgroups if contents.subgroup_parent.get(sub) == _part]
    # groups made here that no group nests are made all the same (conary cooked every one)
    loose = [(sub, info["where"]) for sub, info in contents.created.items()
             if _part is None and not any(s == sub for s, _ in contents.subgroups)]
    for sub, where in [*nested, *loose]:
        try:
            if sub in contents.created:
                sub_result = resolve_group(settings, repo, name, arch, commit=commit, upstream=upstream,
                                           _stack=(*_stack, gname), _part=sub)
            else:
                sub_result = resolve_group(settings, repo, sub, arch, upstream=upstream, _stack=(*_stack, gname))
        except AppbuildError as exc:
            raise type(exc)(f"{where}: in nested group {sub}: {exc}") from None
        if sub_result.group is None:  # a plan only: the nested group is not in yet
            if sub in contents.created and not commit:
                continue
            return sub_result
        if (sub, where) in loose:
            continue
        if sub in contents.optional_subgroups:
            optional_groups.append(sub_result.group.nvf)
        else:
            base_roots.append(Root(sub_result.group.nvf))

    resolver = ClosureResolver(
        repo, arch,
        components=recipe.defaultComponents,
        removed=set(contents.removed),
        replaced=dict(contents.replaced),
        auto_resolve=switches["autoResolve"],
        removed_components=set(contents.removed_components),
        search_path=search_path,
        find=newest,
    )
    me = NVF(gname, Version(repo.label, recipe.version, 1, 1), Flavor(arch))  # names the group in reasons
    requires = [n for n, _, part in contents.requires if part == _part]
    group_requires: list[tuple[Dependency, NVF]] = [(trove_dep(n), me) for n in requires]
    planner = None
    if sources:
        upstream = upstream or TopDown()
        planner = UpstreamResolver(upstream.indexes(settings, sources, arch), relations=recipe.upstreamRelations,
                                   base=recipe.upstreamBase)
    extra: list[Root] = []
    picks: list[Pick] = []
    earlier: list[Pick] = []  # the picks of the passes that imported, before the last one
    choices: list[str] = []
    plan: UpstreamPlan | None = None
    rounds = pass_rounds = 0
    imported = False
    while True:
        roots = list(base_roots)
        optional_roots: list[Root] = [Root(n) for n in optional_groups]
        wanted: list[tuple[str, str]] = []
        for item in items:
            try:
                found = item_roots(repo, item, find)
            except RepositoryError as exc:
                if planner is None or item.how != ADD or any(c in item.spec.name for c in "*?["):
                    raise ResolutionError(f"{item.where}: {item.how}({item.spec}): {exc}") from None
                wanted.append((item.spec.name, item.where))
                continue
            (roots if item.by_default else optional_roots).extend(found)
        roots += extra
        closure = resolver.resolve(roots, requires=group_requires)
        if planner is None:
            break
        rounds += 1
        group_names = {item.spec.name.split(":", 1)[0] for item in items}
        plan = planner.plan(closure, repo, group_names, wanted=wanted, group=name, removed=contents.removed,
                            merged_usr=recipe.mergedUsr)
        if upstream.import_picks is None and (plan.to_import() or plan.unresolved or plan.conflicts):
            # a plan only (appbuild resolve --upstream): what would be imported, and what fails
            return GroupResult(None, False, closure, recipe, [*choices, *plan.choices], plan,
                               [*picks, *plan.picks], rounds)
        if plan.unresolved and recipe.depCheck:
            raise unresolved_error(name, arch, plan)
        if plan.conflicts:
            raise conflicts_error(name, arch, plan)
        if not plan.picks:
            if imported:
                # the pins must not depend on how many rounds it took: resolve once more from
                # what the group names, the repository now holding everything (as a later
                # resolve will), so the same repository and recipe give the same group
                earlier += picks  # their reasons stay the record of why those members came
                imported, extra, picks, choices, pass_rounds = False, [], [], [], 0
                continue
            break
        pass_rounds += 1
        if pass_rounds >= upstream.max_rounds or rounds >= 2 * upstream.max_rounds:
            raise UpstreamError(f"{name} ({arch}): top-down resolution still finds new packages after {rounds} "
                                f"rounds: {', '.join(p.package.name for p in plan.picks[:10])}")
        if upstream.import_picks is not None and plan.to_import():
            upstream.say(f"{name} ({arch}) round {rounds}: importing {len(plan.to_import())} upstream package(s)")
            troves = upstream.import_picks(plan.to_import(), arch)
            imported = True
        else:
            troves = {}
        for pick in plan.picks:
            nvf = troves.get(pick.package.key) or _in_repository(repo, pick.package, arch)
            if nvf is None:
                raise UpstreamError(f"{pick.package.name} {pick.package.version} was planned for {name} ({arch}) "
                                    f"but is not in the repository after the import")
            extra.append(Root(nvf, None, Reason(UPSTREAM, relation=pick.relation, index=pick.index)))
        picks += plan.picks
        choices += plan.choices

    warnings: list[str] = [str(c) for c in closure.choices]
    optional: dict[NVF, Reason] = {}
    if optional_roots:  # byDefault=False: resolved with what they need, pinned, not installed
        wider = resolver.resolve([*roots, *optional_roots], requires=group_requires)
        optional = {n: r for n, r in wider.members.items() if n not in closure.members}
        known = {str(u) for u in closure.unresolved}
        for u in wider.unresolved:
            if str(u) in known:
                continue
            if switches["depCheck"] and not recipe.checkOnlyByDefaultDeps:
                raise ResolutionError(f"{gname} ({arch}) cannot be resolved:\n  {u}")
            warnings.append(f"unresolved for a byDefault=False member: {u}")
    if plan is not None:
        warnings += [f"unresolved (depCheck is off): {u}" for u in plan.unresolved]
    unresolved = closure.unresolved
    met = plan.met if plan is not None else {}
    if met:
        unresolved = [u for u in unresolved if str(u.requirement) not in met]
    if unresolved:
        lines = [f"{u.requirement} needed by {' -> '.join(u.chain if u.chain[:1] == (gname,) else (gname, *u.chain))}"
                 f": nothing in the repository provides it" + (f" ({u.hint})" if u.hint else "") for u in unresolved]
        if switches["depCheck"]:
            raise ResolutionError(f"{gname} ({arch}) cannot be resolved:\n  " + "\n  ".join(lines))
        warnings += [f"unresolved (depCheck is off): {line}" for line in lines]
    if switches["checkPathConflicts"]:
        conflicts = path_conflicts(repo, list(closure.members), contents.allowed_conflicts,
                                   merged_usr=recipe.mergedUsr)
        if conflicts:
            raise ResolutionError(f"{gname} ({arch}) has path conflicts:\n  " + "\n  ".join(map(str, conflicts)))

    members = sorted(closure.members)
    if not commit:
        return GroupResult(None, False, closure, recipe, warnings, plan, picks, rounds, optional)
    src = source_digest(gf.path)  # the group file, with the superclasses it loads
    digest = hashlib.sha256()
    for part in (f"group {gname}", f"source {src}", f"arch {arch}", *(f"member {m}" for m in members),
                 *(f"optional {m}" for m in sorted(optional)), *(f"requires {n}" for n in requires)):
        digest.update(part.encode() + b"\n")
    group, new = repo.commit_group(GroupBuild(
        name=gname,
        upstream=recipe.version,
        flavor=Flavor(arch),
        source_hash=src,
        input_hash=digest.hexdigest(),
        members=members,
        requires={d for d, _ in group_requires},
        info={
            "recipe": gf.path.name,
            "image_group": recipe.imageGroup,
            "named": [str(r.nvf) for r in roots if r.reason.kind != UPSTREAM],
            "reasons": {str(n): str(r) for n, r in closure.members.items()},
            "choices": [str(c) for c in closure.choices],
            "warnings": warnings,
            "kernel_modules": list(recipe.kernelModules),
            "links": dict(sorted(recipe.links.items())),
            "hostname": recipe.hostname,
            "users": list(recipe.users),
            "login_user": recipe.loginUser,
            # every time stamp in images of this group version: derived from the pins
            "source_date_epoch": closure_epoch(repo, members, settings.get("source_date_epoch")),
            **_switches(recipe, picks, plan, choices,
                        _origins(planner, closure, repo, picks, earlier)),
            **_initramfs_busybox(repo, recipe, members, arch),
            **_conary(contents, optional, switches, recipe, _part, requires),
        },
    ))
    return GroupResult(group, new, closure, recipe, warnings, plan, picks, rounds, optional)


def _conary(contents, optional: dict[NVF, Reason], switches: dict, recipe: GroupRecipe, part: str | None,
            requires: list[str]) -> dict:
    """The group info of conary's group language, only what the recipe used (a group
    without it records what it always did)."""
    info: dict = {}
    if optional:
        info["optional"] = sorted(map(str, optional))  # byDefault=False: pinned, not installed
    if contents.search_path:
        info["search_path"] = list(contents.search_path)
    if requires:
        info["requires"] = list(requires)
    if contents.removed_components:
        info["removed_components"] = sorted(set(contents.removed_components))
    if part is not None:
        info["made_by"] = recipe.name
    changed = {k: v for k, v in switches.items() if v is not True}
    if changed:
        info["switches"] = changed
    return info


def item_roots(repo: Repository, item: GroupItem, find: Callable[[TroveSpec], NVF]) -> list[Root]:
    """The roots one group item stands for: the trove itself (``add``), everything a group
    trove names or every component of a package (``addAll``), every pin of a group trove
    (``addCopy``)."""
    nvf = find(item.spec)
    if item.how == ADD:
        return [Root(nvf, item.components)]
    trove = repo.get(nvf, with_files=False)
    if item.how == ADD_COPY:
        if trove.kind != GROUP:
            raise RepositoryError(f"{nvf} is not a group trove")
        # the exact pins: packages without their default components, each component pinned as it is
        return [Root(m, () if ":" not in m.name else None) for m in trove.members]
    if trove.kind == GROUP:  # addAll of a group: what it named and the groups it nested, resolved anew
        named = [NVF.parse(n) for n in trove.info.get("named", [])]
        subgroups = [m for m in trove.members if m.name.startswith("group-")]
        return [Root(n) for n in [*named, *subgroups]]
    return [Root(nvf, tuple(m.name.split(":", 1)[1] for m in trove.members if ":" in m.name))]


def _origins(planner: UpstreamResolver | None, closure, repo: Repository, picks: list[Pick],
             earlier: list[Pick]) -> dict[str, dict]:
    """Where the upstream members no pick of the last pass names came from: the pick of an
    earlier pass that imported them, else (a resolve over a repository that already held
    them) their index and the closure's reason."""
    if planner is None:
        return {}
    last = {p.package.name for p in picks}
    members = {n.name.split(":", 1)[0] for n in closure.members}
    found = {p.package.name: {"version": p.package.version, "index": p.index, "reason": p.relation,
                              **({"rule": p.rule} if p.rule else {})}
             for p in earlier if p.package.name in members and p.package.name not in last}
    others = planner.origins(closure, repo, last | set(found))
    return {**others, **found}


def _switches(recipe: GroupRecipe, picks: list[Pick], plan: UpstreamPlan | None, choices: list[str],
              origins: dict[str, dict]) -> dict:
    """The group info of the top-down switches, only those set (a group without them
    records what it always did)."""
    info: dict = {}
    if recipe.resolveSources:
        info["resolve_sources"] = list(recipe.resolveSources)
    if recipe.upstreamRelations:
        info["upstream_relations"] = True
    if recipe.upstreamBase:
        info["upstream_base"] = recipe.upstreamBase
    if recipe.packageScripts:
        info["package_scripts"] = True
    if recipe.mergedUsr:
        info["merged_usr"] = True
    if recipe.resolveSources:
        picked = {p.package.name: {"version": p.package.version, "index": p.index, "reason": p.relation,
                                   **({"rule": p.rule} if p.rule else {})} for p in picks}
        info["upstream"] = dict(sorted({**origins, **picked}.items()))
        info["upstream_choices"] = choices
        if plan is not None and plan.met:
            info["upstream_met"] = dict(sorted(plan.met.items()))
    return info


BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox")


def _initramfs_busybox(repo: Repository, recipe: GroupRecipe, members: list[NVF], arch: str) -> dict:
    """An image group whose members ship no busybox (a Debian or EL system) still boots
    through appbuild's initramfs, which runs a static busybox: the repository's newest
    ``busybox:runtime`` is pinned for it (``initramfs_busybox``), not staged in the root."""
    if not recipe.imageGroup:
        return {}
    for nvf in members:
        if ":" in nvf.name and any(f.path in BUSYBOX_PATHS for f in repo.get(nvf).files):
            return {}
    found = repo.versions("busybox:runtime", arch=arch)
    return {"initramfs_busybox": str(found[-1])} if found else {}


def _in_repository(repo: Repository, pkg, arch: str) -> NVF | None:
    """The trove of an index package already in the repository (the same upstream version)."""
    found = [n for n in repo.versions(pkg.name, arch=arch) if n.version.upstream == pkg.version]
    return found[-1] if found else None


def closure_epoch(repo: Repository, members: list[NVF], floor: int) -> int:
    """The SOURCE_DATE_EPOCH of images of a closure: the newest upstream file time among
    its members (capsules keep their packages' times), and never before *floor* (the
    workspace's ``source_date_epoch``, which cooked files carry). It depends on the pins
    alone, not on the clock: the same closure resolved on another day, in another
    workspace, gives the same time stamps."""
    ids = [tid for tid in (index.trove_id(repo.db, n) for n in members) if tid is not None]
    newest = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        row = repo.db.execute(f"SELECT MAX(mtime) FROM files WHERE trove_id IN ({','.join('?' * len(chunk))})",
                              chunk).fetchone()
        newest = max(newest, row[0] or 0)
    return max(int(floor), newest)


def find_item(repo: Repository, spec: TroveSpec, arch: str, *, search_path: list[str] = (),
              prefer: Flavor | None = None) -> NVF:
    """The trove a group item names; a name with ``*``, ``?`` or ``[`` is a pattern, and
    the most recently committed trove of a matching name wins (``linux-image-*-amd64``).
    A name on several labels means the one on the repository's label (what is cooked or
    imported here), before capsules a top-down group brought in on its source's label
    (Debian's ``base-files`` is not the appliance's).

    With a *search_path* (labels), the first label holding a match wins. A flavor in
    *spec* picks by conary's rules (:func:`best_match`); without one, troves of one
    version built with different use flags are told apart by *prefer* (the workspace's
    flags, as preferences)."""
    if spec.flavor is not None and spec.flavor.arch and spec.flavor.arch != arch:
        arch = spec.flavor.arch  # another architecture asked for by name (is: x86)
    if search_path and not any(c in spec.name for c in "*?["):
        for label in search_path:
            found = [n for n in repo.find(spec, arch=arch) if n.version.label == label]
            if found:
                return _pick(found, spec, prefer)
        raise RepositoryError(f"no trove matches {spec} for {arch} on the search path {', '.join(search_path)}")
    if not any(c in spec.name for c in "*?["):
        if prefer is not None and spec.flavor is None and any(n.flavor.flags for n in repo.find(spec, arch=arch)):
            return _pick(repo.find(spec, arch=arch), spec, prefer)
        found = repo.find(spec, arch=arch)
        own = [n for n in found if n.version.label == repo.label]
        if own and len(own) < len(found):
            return own[-1]
        return repo.find_one(spec, arch=arch)
    names = [n for n in repo.names() if ":" not in n and fnmatch.fnmatchcase(n, spec.name)]
    found = [n for name in names for n in repo.find(TroveSpec(name, spec.version, spec.flavor), arch=arch)]
    found = [n for n in found if repo.get(n, with_files=False).kind != GROUP]
    if not found:
        raise RepositoryError(f"no trove for {arch} has a name matching {spec.name!r}")
    return max(found, key=lambda n: index.trove_id(repo.db, n))


def _pick(found: list[NVF], spec: TroveSpec, prefer: Flavor | None) -> NVF:
    """The one of *found* (oldest first) to take: best by the flavor asked for, or by
    *prefer* when none was, else the newest."""
    if spec.flavor is not None and spec.flavor.flags:
        return best_match(found, spec.flavor) or found[-1]
    if prefer is not None and any(n.flavor.flags for n in found):
        return best_match(found, prefer) or found[-1]
    return found[-1]


def path_conflicts(repo: Repository, members: list[NVF], allowed: list[str], *,
                   merged_usr: bool = False) -> list[PathConflict]:
    """Paths that two members hold with different contents, types, modes or owners
    (*merged_usr*: ``/bin/x`` and ``/usr/bin/x`` are one path)."""
    ids = {index.trove_id(repo.db, n): n for n in members}
    ids.pop(None, None)
    if not ids:
        return []
    allow = [re.compile(p) for p in allowed]
    placeholders = ",".join("?" * len(ids))
    if merged_usr:
        rows = [(merged_path(path), *rest) for path, *rest in repo.db.execute(
            f"SELECT path, trove_id, type, mode, owner, grp, sha256, target FROM files"
            f" WHERE trove_id IN ({placeholders})", [*ids]) if not is_merged_dir(path)]
        counts = defaultdict(int)
        for row in rows:
            counts[row[0]] += 1
        rows = sorted((r for r in rows if counts[r[0]] > 1), key=lambda r: r[0])
    else:
        rows = repo.db.execute(
            f"SELECT path, trove_id, type, mode, owner, grp, sha256, target FROM files"
            f" WHERE trove_id IN ({placeholders}) AND path IN ("
            f"   SELECT path FROM files WHERE trove_id IN ({placeholders})"
            f"   GROUP BY path HAVING COUNT(*) > 1)"
            f" ORDER BY path",
            [*ids, *ids],
        ).fetchall()
    by_path: dict[str, list] = defaultdict(list)
    for path, tid, kind, *identity in rows:
        # directories may be shared freely; anything else must be the very same file
        by_path[path].append((ids[tid], (kind,) if kind == "dir" else (kind, *identity)))
    conflicts = []
    for path, entries in sorted(by_path.items()):
        if len({identity for _, identity in entries}) > 1 and not any(r.fullmatch(path) for r in allow):
            conflicts.append(PathConflict(path, tuple(sorted({str(n.name) for n, _ in entries}))))
    return conflicts


def staged_troves(repo: Repository, group: Trove) -> list[Trove]:
    """The member troves of a group that hold files (components), with their files."""
    return [t for t in (repo.get(n) for n in group.members) if t.kind == COMPONENT]


def find_group(repo: Repository, name: str, arch: str, version: str | None = None) -> NVF:
    """A recorded group trove: the newest for *arch*, or the one matching *version*."""
    found = [n for n in repo.find(TroveSpec(name, version), arch=arch)
             if repo.get(n, with_files=False).kind == GROUP]
    if not found:
        raise RepositoryError(f"no group trove {name}{'=' + version if version else ''} for {arch}; "
                              f"run 'appbuild resolve {name} --arch {arch}' first")
    return found[-1]


__all__ = ["resolve_group", "GroupResult", "ResolutionError", "TopDown", "MAX_ROUNDS", "PathConflict", "path_conflicts",
           "staged_troves", "find_group", "NAMED", "Reason"]
