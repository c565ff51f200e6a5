"""The toolchain group: which troves every build root starts from.

The workspace names it in ``repo/config.yaml`` (``toolchain: group-toolchain``, the
default) and keeps its recipe in ``groups/``. It is resolved like any group, for the
build machine's instruction set (x86_64; x86 cooks use its ``-m32`` parts), and its
group trove pins every member: the cook's input hash takes that version instead of
anything of the host, and every cooked trove records it (``appbuild show``).

A toolchain group may declare ``links`` (path -> target): the links Debian's
maintainer scripts would make with update-alternatives (``/usr/bin/cc -> gcc``), which
the package archives do not carry; they are made in every build root.
"""

from __future__ import annotations

import functools

from appbuilder.core.arch import BUILD_ARCH
from appbuilder.core.errors import AppbuildError, BuildFailed
from appbuilder.core.settings import Settings
from appbuilder.repository.deps import Dependency
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import COMPONENT, Trove
from appbuilder.repository.versions import NVF


class Toolchain:
    """The resolved toolchain group: its pin, and (loaded when a build root is made) its
    components with their files and what they provide."""

    def __init__(self, repo: Repository, group: NVF, members: list[NVF], links: dict[str, str]):
        self.repo = repo
        self.group = group
        self.members = members
        self.links = links

    @functools.cached_property
    def troves(self) -> list[Trove]:
        return [t for t in (self.repo.get(n) for n in self.members) if t.kind == COMPONENT]

    @functools.cached_property
    def provides(self) -> set[Dependency]:
        return set().union(*(t.provides for t in self.troves))

    def __str__(self) -> str:
        return str(self.group)


def resolve_toolchain(settings: Settings, repo: Repository) -> Toolchain:
    """Resolve the workspace's toolchain group (a no-op when nothing changed) and load it."""
    from appbuilder.graph.groups import resolve_group

    name = settings.get("toolchain")
    recipe = settings.groups_dir / f"{name}.py"
    if not recipe.is_file():
        raise BuildFailed(
            f"no build root: cooks run in a root made from the toolchain group {name}, and this workspace has no "
            f"{recipe} (set 'toolchain:' in repo/config.yaml to another group)"
        )
    try:
        result = resolve_group(settings, repo, name, BUILD_ARCH)
    except AppbuildError as exc:
        raise BuildFailed(
            f"the toolchain group {name} cannot be resolved, so there is no build root to cook in:\n{exc}\n"
            f"(its packages come from the Debian archive: run 'appbuild import upstream')"
        ) from None
    return Toolchain(repo, result.group.nvf, list(result.group.members), dict(result.group.info.get("links") or {}))
