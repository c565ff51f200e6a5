"""``GroupRecipe``: what an appliance is for; appbuild finds everything else.

A group recipe lives in ``groups/group-NAME.py``::

    class GroupCernvm(GroupRecipe):
        name = 'group-cernvm'
        version = '1.0'
        imageGroup = True

        def setup(r):
            r.add('busybox')
            r.add('appliance-init')
            r.add('hello', components=['runtime'])
            r.remove('hello:config')
            r.addNewGroup('group-base')

``setup(r)`` runs once per architecture (``r.arch``). Resolution then starts from what
the group names and adds a provider for every unmet requirement (``autoResolve``),
fails on what stays unmet (``depCheck``) and on two members writing one path with
different contents (``checkPathConflicts``), and records the result as a group trove
with the exact version of every member.

Switches (class attributes, all on by default except ``imageGroup``):

``autoResolve``         add providers of unmet requirements from the repository
``depCheck``            fail when a requirement stays unmet (otherwise: warn)
``checkPathConflicts``  fail when two members write one path differently
``imageGroup``          the group is a complete system an image can be built from
``defaultComponents``   which components of an added package go in
``kernelModules``       (image groups) kernel modules to keep, with their dependencies
``loginUser``           (image groups) the user a key or password given at boot (metadata,
                        OVF environment, user data) is for; made at boot when one is given
                        (``LOGIN_USER`` in ``/etc/appliance-release``); root stays locked
``links``               (toolchain groups) symlinks (path -> target) made in every build
                        root, which the packages' install scripts would have made
                        (update-alternatives links such as ``/usr/bin/cc -> gcc``)
``resolveSources``      names from the ``sources:`` setting (``('debian',)``) searched, in
                        their priority order, for what the repository lacks: what the group
                        names, and providers of unmet requirements; just those packages are
                        imported as capsules and pinned like the rest (top-down resolution,
                        ``appbuild resolve group-NAME --upstream`` shows the plan first)
``upstreamRelations``   (with ``resolveSources``) the Debian ``Depends``/``Pre-Depends`` and
                        RPM ``Requires`` of capsule members count as requirements, with their
                        versions, alternatives (``a | b``: the first that can be met) and rich
                        dependencies (``(a or b)``, ``(a if b)``); ``Recommends`` never do
``upstreamBase``        (with ``resolveSources``) ``'essential'``: Debian's Essential set comes
                        in as well, as apt assumes it is always installed
``packageScripts``      maintainer scripts and RPM scriptlets run at image time, in a user
                        namespace with the staged root as ``/``
``mergedUsr``           ``/bin``, ``/sbin``, ``/lib*`` are links into ``/usr`` in the image

The last five are off by default (a group without them resolves as before) and are
recorded in the group trove's info (``resolve_sources``, ``upstream_relations``,
``upstream_base``, ``package_scripts``, ``merged_usr``) when set.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import ClassVar

from appbuilder.core.arch import Arch
from appbuilder.core.errors import RecipeError
from appbuilder.repository.versions import Flavor, TroveSpec

GROUP_NAME_RE = re.compile(r"^group-[a-z0-9][a-z0-9+._-]*$")
LOGIN_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

DEFAULT_COMPONENTS = ("runtime", "lib", "config", "data", "rpm", "deb")


@dataclass
class GroupItem:
    """One trove the group names."""

    spec: TroveSpec
    components: tuple[str, ...] | None  # None: the group's default components
    where: str


@dataclass
class GroupContents:
    """What ``setup()`` said, ready for resolution."""

    items: list[GroupItem] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)  # trove name -> where
    replaced: dict[str, TroveSpec] = field(default_factory=dict)  # name -> spec
    subgroups: list[tuple[str, str]] = field(default_factory=list)  # (group name, where)
    allowed_conflicts: list[str] = field(default_factory=list)  # path regexes


class GroupRecipe:
    """A recipe naming the troves of a group (an appliance, or part of one)."""

    name: ClassVar[str | None] = None
    version: ClassVar[str | None] = None
    autoResolve: ClassVar[bool] = True
    depCheck: ClassVar[bool] = True
    checkPathConflicts: ClassVar[bool] = True
    imageGroup: ClassVar[bool] = False
    defaultComponents: ClassVar[tuple[str, ...]] = DEFAULT_COMPONENTS
    kernelModules: ClassVar[tuple[str, ...]] = ()
    links: ClassVar[dict[str, str]] = {}
    # image settings an image group may set
    hostname: ClassVar[str] = "appliance"
    users: ClassVar[tuple[str, ...]] = ()  # "name:uid:group:gid:home:shell" beyond root
    loginUser: ClassVar[str] = ""  # the user an SSH key or password given at boot is for
    # top-down resolution against upstream distributions (see the module docstring)
    resolveSources: ClassVar[tuple[str, ...]] = ()
    upstreamRelations: ClassVar[bool] = False
    upstreamBase: ClassVar[str] = ""
    packageScripts: ClassVar[bool] = False
    mergedUsr: ClassVar[bool] = False

    def __init__(self, arch: Arch):
        self.arch = arch.name
        self.contents = GroupContents()

    def setup(self) -> None:  # pragma: no cover - every group overrides it
        raise RecipeError(f"{type(self).__name__} does not define setup(r)")

    @staticmethod
    def _where() -> str:
        frame = sys._getframe(2)
        return f"{frame.f_code.co_filename}:{frame.f_lineno}"

    def add(self, name: str, version: str | None = None, flavor: str | None = None,
            components: list[str] | tuple[str, ...] | None = None) -> None:
        """Put a package (all its default components), a component, or a capsule in the group.

        ``version`` pins a version (full, a revision, or just the upstream version);
        ``flavor`` picks an architecture (``is: x86``) other than the group's;
        ``components`` names which components of a package go in.
        """
        spec = TroveSpec(name, version, Flavor.parse(flavor) if flavor else None)
        comps = tuple(components) if components is not None else None
        if comps is not None and ":" in name:
            raise RecipeError(f"{self._where()}: add({name!r}): components= only applies to a package name")
        self.contents.items.append(GroupItem(spec, comps, self._where()))

    def remove(self, name: str) -> None:
        """Leave a trove (package or component) out, even if something pulled it in.

        With ``depCheck`` on, removing something another member requires is an error.
        """
        self.contents.removed[name] = self._where()

    def replace(self, name: str, spec: str) -> None:
        """Use another version of a trove, wherever it comes from (``'busybox=1.35.0-1-2'``)."""
        new = TroveSpec.parse(spec)
        if new.name.split(":", 1)[0] != name.split(":", 1)[0]:
            raise RecipeError(f"{self._where()}: replace({name!r}, {spec!r}) must name the same trove")
        self.contents.replaced[name] = new

    def addNewGroup(self, group: str) -> None:
        """Include another group (``groups/GROUP.py``), resolved with this one and kept as a member."""
        if not GROUP_NAME_RE.match(group):
            raise RecipeError(f"{self._where()}: addNewGroup({group!r}): group names start with 'group-'")
        self.contents.subgroups.append((group, self._where()))

    def allowPathConflicts(self, *patterns: str) -> None:
        """Allow members to write the paths matching these regular expressions differently."""
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise RecipeError(f"{self._where()}: bad path pattern {p!r}: {exc}") from None
        self.contents.allowed_conflicts.extend(patterns)


def check_group_class(cls: type, path: str) -> None:
    from appbuilder.recipe.base import check_name_and_version

    where = f"{path}: group recipe {cls.__name__}"
    check_name_and_version(cls, where, GROUP_NAME_RE, "group names look like group-NAME")
    if not path.endswith(f"{cls.name}.py"):
        raise RecipeError(f"{where}: a group named {cls.name!r} belongs in groups/{cls.name}.py")
    login = getattr(cls, "loginUser", "")
    if not isinstance(login, str) or login == "root" or login and not LOGIN_USER_RE.match(login):
        raise RecipeError(f"{where}: loginUser must be a user name other than root (lower case letters, digits, "
                          f"_ and -, at most 32), not {login!r}")
    sources = getattr(cls, "resolveSources", ())
    if isinstance(sources, str) or not isinstance(sources, (tuple, list)) or not all(
            isinstance(s, str) and s for s in sources):
        raise RecipeError(f"{where}: resolveSources must be a tuple of source names from the sources: setting "
                          f"(('debian',)), not {sources!r}")
    base = getattr(cls, "upstreamBase", "")
    if base not in ("", "essential"):
        raise RecipeError(f"{where}: upstreamBase must be '' or 'essential', not {base!r}")
    for switch in ("upstreamRelations", "packageScripts", "mergedUsr"):
        if not isinstance(getattr(cls, switch, False), bool):
            raise RecipeError(f"{where}: {switch} must be True or False, not {getattr(cls, switch)!r}")
    if (getattr(cls, "upstreamRelations", False) or base) and not sources:
        raise RecipeError(f"{where}: upstreamRelations and upstreamBase need resolveSources (('debian',))")
    links = getattr(cls, "links", {})
    if not isinstance(links, dict) or not all(
            isinstance(k, str) and k.startswith("/") and isinstance(v, str) and v for k, v in links.items()):
        raise RecipeError(f"{where}: links must map absolute paths to link targets ({{'/usr/bin/cc': 'gcc'}})")
