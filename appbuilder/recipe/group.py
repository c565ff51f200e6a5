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

Conary's group language
-----------------------

Group recipes written for conary use these verbs, which mean here what they meant there::

    class GroupAppliance(GroupRecipe):
        name = 'group-appliance'
        version = '2.0'
        autoResolve = True

        def setup(r):
            r.setSearchPath('cernvm@cvm:2', 'cernvm@cvm:2-devel')
            r.add('busybox')
            r.add('hello', flavor='ssl')
            r.add('strace', byDefault=False)
            r.addAll('group-base')
            r.createGroup('group-tools')
            r.add('gdb', groupName='group-tools')
            r.addNewGroup('group-tools', byDefault=False)
            r.removeComponents(['devel', 'doc'])
            r.replace('busybox')
            r.Requires('appliance-init')

``add(name, version, flavor, components, byDefault, groupName)``  a trove; ``flavor``
                 picks by use flags and architecture by conary's rules (``'ssl'``,
                 ``'!ssl'``, ``'is: x86'``); ``byDefault=False``: resolved and pinned but
                 not installed (below); ``groupName``: into a group ``createGroup`` made
``addAll(name)`` every trove a group names (its ``add``s and nested groups, resolved
                 again here), or every component of a package
``addCopy(name)`` the exact pins of every member of a group trove, as they are
``createGroup(name)``  another group made by this recipe (committed as its own group
                 trove); ``addNewGroup(name)`` makes it a member of this one
``setSearchPath(*labels)`` / ``setLabelPath``  labels searched in order for what the
                 group names and for providers of requirements (the first label that has
                 a trove wins); without it, every label of the repository
``replace(name)``  the newest trove of that name on the search path, wherever the group
                 would take it from (``replace(name, spec)``: a given version)
``remove(name)``, ``removeComponents(['devel', 'doc'])``  troves, or components of every
                 package, left out
``Requires(name)``  the group requires a trove: it is added (``autoResolve``) or its
                 absence is an error (``depCheck``), and recorded as the group trove's
                 requirement, so a group that nests this one must hold it too

``byDefault=False`` members are resolved (with what they need) and pinned in the group's
info (``optional``), but are not members an image installs: an image of the group holds
only its by-default members. With ``checkOnlyByDefaultDeps = False`` an optional
member's unmet requirements fail the resolution too (by default they are warnings).

Differences to conary's defaults: conary's groups had ``autoResolve`` and ``depCheck``
off; appbuild's have both on, since a group is a bootable closure. A recipe that sets
them (``autoResolve = False``) gets conary's behaviour. ``checkPathConflicts`` was on in
both. Groups a recipe makes with ``createGroup`` take the recipe's switches unless
``createGroup`` gives their own (``autoResolve=``, ``depCheck=``,
``checkPathConflicts=``). Conary's search path could name troves as well as labels; here
it holds labels only. ``addCopy`` puts the copied group's pins in directly rather than
making a renamed child group. ``byDefault=False`` members stay out of images.
``remove``, ``removeComponents``, ``replace`` and the search path hold for every group
the recipe makes; ``add``, ``addAll``, ``addCopy``, ``addNewGroup`` and ``Requires`` take
``groupName=``. A group ``createGroup`` made is resolved by resolving the recipe's own
group (``appbuild resolve group-NAME`` of the file), not by its own name.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import ClassVar

from appbuilder.core.arch import Arch
from appbuilder.core.errors import AppbuildError, RecipeError
from appbuilder.repository.versions import Flavor, TroveSpec, check_label

GROUP_NAME_RE = re.compile(r"^group-[a-z0-9][a-z0-9+._-]*$")
LOGIN_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

# what an image installs of a package unless the group says otherwise: what runs (with
# conary's :python, :perl and :locale, which conary's groups installed too), not
# :devel, :devellib, :doc, :supdoc, :debuginfo or :test
DEFAULT_COMPONENTS = ("runtime", "lib", "config", "data", "python", "perl", "locale", "rpm", "deb")


ADD, ADD_ALL, ADD_COPY = "add", "addAll", "addCopy"  # how a GroupItem came in
SWITCHES = ("autoResolve", "depCheck", "checkPathConflicts")
COMPONENT_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass
class GroupItem:
    """One trove the group names."""

    spec: TroveSpec
    components: tuple[str, ...] | None  # None: the group's default components
    where: str
    by_default: bool = True
    group: str | None = None  # the group (of this recipe) it goes in; None: the recipe's own
    how: str = ADD


@dataclass
class GroupContents:
    """What ``setup()`` said, ready for resolution."""

    items: list[GroupItem] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)  # trove name -> where
    replaced: dict[str, TroveSpec] = field(default_factory=dict)  # name -> spec (no version: the newest)
    subgroups: list[tuple[str, str]] = field(default_factory=list)  # (group name, where)
    allowed_conflicts: list[str] = field(default_factory=list)  # path regexes
    # conary's group language (see the module docstring)
    created: dict[str, dict] = field(default_factory=dict)  # group name -> its switches and where
    subgroup_parent: dict[str, str] = field(default_factory=dict)  # nested group -> the group it goes in
    optional_subgroups: list[str] = field(default_factory=list)  # addNewGroup(..., byDefault=False)
    search_path: list[str] = field(default_factory=list)  # labels, in order
    requires: list[tuple[str, str, str | None]] = field(default_factory=list)  # (trove name, where, group)
    removed_components: list[str] = field(default_factory=list)

    def to_data(self) -> dict:
        """Plain data, as it travels out of the sandbox."""
        return {
            "items": [[str(i.spec), list(i.components) if i.components is not None else None, i.where,
                       i.by_default, i.group, i.how] for i in self.items],
            "removed": self.removed,
            "replaced": {k: str(v) for k, v in self.replaced.items()},
            "subgroups": [list(s) for s in self.subgroups],
            "allowed_conflicts": self.allowed_conflicts,
            "created": self.created,
            "subgroup_parent": self.subgroup_parent,
            "optional_subgroups": self.optional_subgroups,
            "search_path": self.search_path,
            "requires": [list(r) for r in self.requires],
            "removed_components": self.removed_components,
        }

    @classmethod
    def from_data(cls, c: dict) -> "GroupContents":
        """What :meth:`to_data` gave (raises RepositoryError, TypeError or ValueError on bad data)."""
        items = []
        for spec, comps, where, *rest in c["items"]:
            by_default, group, how = (*rest, True, None, ADD)[:3] if rest else (True, None, ADD)
            if how not in (ADD, ADD_ALL, ADD_COPY):
                raise ValueError(f"bad item kind {how!r}")
            items.append(GroupItem(TroveSpec.parse(spec), tuple(comps) if comps is not None else None, str(where),
                                   bool(by_default), None if group is None else str(group), how))
        return cls(
            items=items,
            removed=dict(c["removed"]),
            replaced={k: TroveSpec.parse(v) for k, v in c["replaced"].items()},
            subgroups=[(str(n), str(w)) for n, w in c["subgroups"]],
            allowed_conflicts=list(c["allowed_conflicts"]),
            created={str(k): dict(v) for k, v in c.get("created", {}).items()},
            subgroup_parent={str(k): str(v) for k, v in c.get("subgroup_parent", {}).items()},
            optional_subgroups=[str(g) for g in c.get("optional_subgroups", [])],
            search_path=[check_label(str(lbl)) for lbl in c.get("search_path", [])],
            requires=[(str(n), str(w), None if g is None else str(g)) for n, w, g in c.get("requires", [])],
            removed_components=[str(x) for x in c.get("removed_components", [])],
        )


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
    checkOnlyByDefaultDeps: ClassVar[bool] = True  # conary's: optional members' unmet needs only warn

    def __init__(self, arch: Arch):
        self.arch = arch.name
        self.contents = GroupContents()

    def setup(self) -> None:  # pragma: no cover - every group overrides it
        raise RecipeError(f"{type(self).__name__} does not define setup(r)")

    @staticmethod
    def _where(depth: int = 0) -> str:
        frame = sys._getframe(2 + depth)
        return f"{frame.f_code.co_filename}:{frame.f_lineno}"

    def _spec(self, name: str, version: str | None, flavor: str | None, verb: str) -> TroveSpec:
        if not isinstance(name, str) or not name:
            raise RecipeError(f"{self._where(1)}: {verb}() needs a trove name")
        try:
            return TroveSpec(name, version, Flavor.parse(flavor) if flavor else None)
        except AppbuildError as exc:
            raise RecipeError(f"{self._where(1)}: {verb}({name!r}, flavor={flavor!r}): {exc}") from None

    def _group_of(self, groupName: str | None, verb: str) -> str | None:
        if groupName is None or groupName == self.name:
            return None
        if groupName not in self.contents.created:
            raise RecipeError(f"{self._where(1)}: {verb}(..., groupName={groupName!r}): no such group in this "
                              f"recipe; make it first with r.createGroup({groupName!r})")
        return groupName

    def add(self, name: str, version: str | None = None, flavor: str | None = None,
            components: list[str] | tuple[str, ...] | None = None, *, byDefault: bool = True,
            groupName: str | None = None) -> None:
        """Put a package (all its default components), a component, or a capsule in the group.

        ``version`` pins a version (full, a revision, or just the upstream version);
        ``flavor`` picks by use flags and architecture as conary did (``'ssl'``,
        ``'!ssl'``, ``'is: x86'``): a trove built with a flag the flavor does not ask for is
        not taken, one built without it is unless the flag is required; without a flavor the
        trove best fitting the workspace's use flags is taken;
        ``components`` names which components of a package go in;
        ``byDefault=False``: resolved and pinned in the group, not installed in an image;
        ``groupName``: into another group this recipe made (``createGroup``).
        """
        spec = self._spec(name, version, flavor, "add")
        comps = tuple(components) if components is not None else None
        if comps is not None and ":" in name:
            raise RecipeError(f"{self._where()}: add({name!r}): components= only applies to a package name")
        self.contents.items.append(GroupItem(spec, comps, self._where(), bool(byDefault),
                                             self._group_of(groupName, "add")))

    def addAll(self, name: str, version: str | None = None, flavor: str | None = None, *,
               groupName: str | None = None) -> None:
        """Put in every trove a group names (what its recipe added and its nested groups,
        resolved again here), or every component of a package (``:debuginfo`` too)."""
        spec = self._spec(name, version, flavor, "addAll")
        self.contents.items.append(GroupItem(spec, None, self._where(), True, self._group_of(groupName, "addAll"),
                                             ADD_ALL))

    def addCopy(self, name: str, version: str | None = None, flavor: str | None = None, *,
                groupName: str | None = None) -> None:
        """Put in every member of a resolved group trove with its exact pin, as it is."""
        spec = self._spec(name, version, flavor, "addCopy")
        if not GROUP_NAME_RE.match(name):
            raise RecipeError(f"{self._where()}: addCopy({name!r}): copies a group (group-NAME)")
        self.contents.items.append(GroupItem(spec, None, self._where(), True, self._group_of(groupName, "addCopy"),
                                             ADD_COPY))

    def remove(self, name: str) -> None:
        """Leave a trove (package or component) out, even if something pulled it in.

        With ``depCheck`` on, removing something another member requires is an error.
        """
        self.contents.removed[name] = self._where()

    def removeComponents(self, components) -> None:
        """Leave these components (``['devel', 'doc']``) of every package out of the group."""
        comps = [components] if isinstance(components, str) else list(components)
        for c in comps:
            if not isinstance(c, str) or not COMPONENT_RE.match(c.lstrip(":")):
                raise RecipeError(f"{self._where()}: removeComponents: {c!r} is not a component name")
            self.contents.removed_components.append(c.lstrip(":"))

    def replace(self, name: str, spec: str | None = None) -> None:
        """Use another version of a trove, wherever it comes from: the newest on the search
        path (``replace('busybox')``), or the one *spec* names (``'busybox=1.35.0-1-2'``)."""
        if spec is None:
            self.contents.replaced[name] = TroveSpec(name)
            return
        try:
            new = TroveSpec.parse(spec)
        except AppbuildError as exc:
            raise RecipeError(f"{self._where()}: replace({name!r}, {spec!r}): {exc}") from None
        if new.name.split(":", 1)[0] != name.split(":", 1)[0]:
            raise RecipeError(f"{self._where()}: replace({name!r}, {spec!r}) must name the same trove")
        self.contents.replaced[name] = new

    def addNewGroup(self, group: str, *, byDefault: bool = True, groupName: str | None = None) -> None:
        """Include another group: one this recipe made (``createGroup``) or ``groups/GROUP.py``,
        resolved with this one and kept as a member (``byDefault=False``: pinned, not installed)."""
        if not GROUP_NAME_RE.match(group):
            raise RecipeError(f"{self._where()}: addNewGroup({group!r}): group names start with 'group-'")
        parent = self._group_of(groupName, "addNewGroup")
        if parent is not None:
            self.contents.subgroup_parent[group] = parent
        if not byDefault:
            self.contents.optional_subgroups.append(group)
        self.contents.subgroups.append((group, self._where()))

    def createGroup(self, group: str, *, autoResolve: bool | None = None, depCheck: bool | None = None,
                    checkPathConflicts: bool | None = None) -> None:
        """Make another group in this recipe (committed as its own group trove, with this
        recipe's version); ``add(..., groupName=...)`` fills it, ``addNewGroup`` nests it.
        Its switches are this recipe's unless given."""
        if not GROUP_NAME_RE.match(group) or group == self.name:
            raise RecipeError(f"{self._where()}: createGroup({group!r}): a new name of the form group-NAME")
        if group in self.contents.created:
            raise RecipeError(f"{self._where()}: createGroup({group!r}): made twice")
        switches = {k: bool(v) for k, v in (("autoResolve", autoResolve), ("depCheck", depCheck),
                                             ("checkPathConflicts", checkPathConflicts)) if v is not None}
        self.contents.created[group] = {"switches": switches, "where": self._where()}

    def setSearchPath(self, *labels: str) -> None:
        """Search these labels, in order, for what the group names and for providers: the
        first label holding a matching trove wins."""
        for label in labels:
            try:
                check_label(label)
            except AppbuildError:
                raise RecipeError(f"{self._where()}: setSearchPath({label!r}): only labels (host@namespace:tag) "
                                  f"can be searched here, not troves") from None
        self.contents.search_path = list(labels)

    setLabelPath = setSearchPath

    def Requires(self, name: str, groupName: str | None = None) -> None:
        """The group (or ``groupName``, one this recipe made) requires a trove
        (``'appliance-init'``, ``'busybox:runtime'``)."""
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9+._:-]*$", name):
            raise RecipeError(f"{self._where()}: Requires({name!r}): a trove name")
        self.contents.requires.append((name, self._where(), self._group_of(groupName, "Requires")))

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
