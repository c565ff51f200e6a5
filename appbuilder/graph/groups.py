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

from appbuilder.core.errors import AppbuildError, RecipeError, RepositoryError
from appbuilder.core.fileio import sha256_file
from appbuilder.core.settings import Settings
from appbuilder.graph.closure import NAMED, Closure, ClosureResolver, Reason, Root
from appbuilder.recipe.group import GroupRecipe
from appbuilder.recipe.loader import load_group
from appbuilder.repository import index
from appbuilder.repository.repo import GroupBuild, Repository
from appbuilder.repository.trove import COMPONENT, GROUP, Trove
from appbuilder.repository.versions import NVF, Flavor, TroveSpec


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
    group: Trove
    new: bool
    closure: Closure
    recipe: GroupRecipe
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(name, revision, flavor, reason) of every member, in name order."""
        return [(n.name, n.version.revision, str(n.flavor), str(r))
                for n, r in sorted(self.closure.members.items(), key=lambda kv: kv[0].name)]


def resolve_group(settings: Settings, repo: Repository, name: str, arch: str, *, _stack: tuple[str, ...] = ()) -> GroupResult:
    """Resolve ``groups/NAME.py`` for *arch* and commit its group trove."""
    if name in _stack:
        raise RecipeError(f"group cycle: {' -> '.join([*_stack, name])}")
    gf = load_group(settings.groups_dir, name)
    from appbuilder.core.arch import get_arch

    recipe = gf.instantiate(get_arch(arch))
    contents = recipe.contents

    roots: list[Root] = []
    for sub, where in contents.subgroups:
        try:
            sub_result = resolve_group(settings, repo, sub, arch, _stack=(*_stack, name))
        except AppbuildError as exc:
            raise type(exc)(f"{where}: in nested group {sub}: {exc}") from None
        roots.append(Root(sub_result.group.nvf))
    for item in contents.items:
        try:
            nvf = find_item(repo, item.spec, arch)
        except RepositoryError as exc:
            raise ResolutionError(f"{item.where}: add({item.spec}): {exc}") from None
        roots.append(Root(nvf, item.components))

    resolver = ClosureResolver(
        repo, arch,
        components=recipe.defaultComponents,
        removed=set(contents.removed),
        replaced=dict(contents.replaced),
        auto_resolve=recipe.autoResolve,
    )
    closure = resolver.resolve(roots)

    warnings: list[str] = [str(c) for c in closure.choices]
    if closure.unresolved:
        lines = [f"{u.requirement} needed by {' -> '.join((name, *u.chain))}: nothing in the repository "
                 f"provides it" + (f" ({u.hint})" if u.hint else "") for u in closure.unresolved]
        if recipe.depCheck:
            raise ResolutionError(f"{name} ({arch}) cannot be resolved:\n  " + "\n  ".join(lines))
        warnings += [f"unresolved (depCheck is off): {line}" for line in lines]
    if recipe.checkPathConflicts:
        conflicts = path_conflicts(repo, list(closure.members), contents.allowed_conflicts)
        if conflicts:
            raise ResolutionError(f"{name} ({arch}) has path conflicts:\n  " + "\n  ".join(map(str, conflicts)))

    members = sorted(closure.members)
    src = sha256_file(gf.path)
    digest = hashlib.sha256()
    for part in (f"group {name}", f"source {src}", f"arch {arch}", *(f"member {m}" for m in members)):
        digest.update(part.encode() + b"\n")
    group, new = repo.commit_group(GroupBuild(
        name=name,
        upstream=recipe.version,
        flavor=Flavor(arch),
        source_hash=src,
        input_hash=digest.hexdigest(),
        members=members,
        info={
            "recipe": gf.path.name,
            "image_group": recipe.imageGroup,
            "named": [str(r.nvf) for r in roots],
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
        },
    ))
    return GroupResult(group, new, closure, recipe, warnings)


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


def find_item(repo: Repository, spec: TroveSpec, arch: str) -> NVF:
    """The trove a group item names; a name with ``*``, ``?`` or ``[`` is a pattern, and
    the most recently committed trove of a matching name wins (``linux-image-*-amd64``)."""
    if not any(c in spec.name for c in "*?["):
        return repo.find_one(spec, arch=arch)
    names = [n for n in repo.names() if ":" not in n and fnmatch.fnmatchcase(n, spec.name)]
    found = [n for name in names for n in repo.find(TroveSpec(name, spec.version, spec.flavor), arch=arch)]
    found = [n for n in found if repo.get(n, with_files=False).kind != GROUP]
    if not found:
        raise RepositoryError(f"no trove for {arch} has a name matching {spec.name!r}")
    return max(found, key=lambda n: index.trove_id(repo.db, n))


def path_conflicts(repo: Repository, members: list[NVF], allowed: list[str]) -> list[PathConflict]:
    """Paths that two members hold with different contents, types, modes or owners."""
    ids = {index.trove_id(repo.db, n): n for n in members}
    ids.pop(None, None)
    if not ids:
        return []
    allow = [re.compile(p) for p in allowed]
    placeholders = ",".join("?" * len(ids))
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


__all__ = ["resolve_group", "GroupResult", "ResolutionError", "PathConflict", "path_conflicts",
           "staged_troves", "find_group", "NAMED", "Reason"]
