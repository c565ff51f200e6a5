"""``PackageRecipe``: the class a package recipe derives from.

A recipe is a Python class in ``recipes/NAME/recipe.py``::

    class Hello(PackageRecipe):
        name = 'hello'
        version = '1.0'
        buildRequires = ['libhello:devel']

        def setup(r):
            r.addSource('hello.c')
            r.Make('hello LDLIBS=-lhello')
            r.Install('hello', '%(bindir)s/')

``setup(r)`` runs once per architecture; it records actions and the cook runs them.
``r.arch`` is the architecture name (``x86_64`` or ``x86``) and ``r.macros`` the
macros, so a recipe can differ per architecture.

Builds run in a build root holding only the toolchain group and what ``buildRequires``
names (with what those need): a tool or library the build uses must be declared there.
``buildTimeout`` (seconds) limits each build command of this recipe, overriding
``cook: command_timeout`` in ``repo/config.yaml``.

As in conary, a class's ``buildRequires`` add to those of its base classes (a recipe
deriving from a superclass loaded with ``loadSuperClass`` needs what the superclass
needs); ``clearBuildRequires()`` in the class body forgets the inherited ones
(:mod:`appbuilder.recipe.conary`).
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import ClassVar

from appbuilder.core.arch import Arch
from appbuilder.core.errors import RecipeError
from appbuilder.recipe import (  # noqa: F401  (register actions)
    build_actions,
    build_commands,
    install_actions,
    policy_actions,
    source_actions,
)
from appbuilder.recipe.actions import REGISTRY, Action
from appbuilder.recipe.macros import Macros, default_macros
from appbuilder.recipe.unsupported import unsupported

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+._-]*$")
# an SPDX license expression: ids (LicenseRef-x too), AND/OR/WITH, parentheses
_LICENSE_ID = r"[A-Za-z0-9][A-Za-z0-9.+:-]*"
LICENSE_RE = re.compile(rf"^\(*{_LICENSE_ID}\)*(?: (?:AND|OR|WITH) \(*{_LICENSE_ID}\)*)*$")
# set in a class body (or at the top of a recipe file) by clearBuildRequires(): True or names
CLEARED = "_appbuild_cleared_build_requires"
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent) + "/"  # appbuilder/: not recipe code


def caller_where(depth: int = 2) -> str:
    """``file:line`` of the innermost recipe code (a recipe or a library file, never
    appbuild's own) among the callers, starting *depth* frames up."""
    frame = sys._getframe(depth)
    first = frame
    while frame is not None:
        if not frame.f_code.co_filename.startswith((_PACKAGE_DIR, "<")):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return f"{first.f_code.co_filename}:{first.f_lineno}"


def _merged_build_requires(cls: type, cleared):
    """The buildRequires of *cls*: its bases' (less what *cleared* drops), then its own."""
    own = cls.__dict__.get("buildRequires")
    if own is not None and not isinstance(own, (list, tuple)):
        return own  # check_recipe_class says what is wrong
    inherited: list = []
    for base in cls.__bases__:
        reqs = getattr(base, "buildRequires", ())
        for req in reqs if isinstance(reqs, (list, tuple)) else ():
            if req not in inherited:
                inherited.append(req)
    if cleared is True:
        inherited = []
    elif cleared:
        inherited = [r for r in inherited if r not in cleared]
    return inherited + [r for r in own or () if r not in inherited]


class PackageRecipe:
    """A recipe that builds one package from source."""

    name: ClassVar[str | None] = None
    version: ClassVar[str | None] = None
    buildRequires: ClassVar[list[str]] = []
    buildTimeout: ClassVar[float | None] = None  # seconds per build command (None: the configured limit)
    license: ClassVar[str | None] = None  # SPDX license expression of what it builds (its SBOM says it)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        defining = sys._getframe(1)  # the code running the class statement
        cleared = cls.__dict__.get(CLEARED, defining.f_globals.get(CLEARED))
        cls.buildRequires = _merged_build_requires(cls, cleared)
        cls._defined_at = f"{defining.f_code.co_filename}:{defining.f_lineno}"

    def __init__(self, arch: Arch, *, jobs: int = 2, recipe_file: str = "recipe.py"):
        self.arch = arch.name
        self.macros: Macros = default_macros(arch, name=self.name or "", version=self.version or "", jobs=jobs)
        self.actions: list[Action] = []
        self.main_dir = f"{self.name}-{self.version}"
        self._recipe_file = recipe_file

    def setup(self) -> None:  # pragma: no cover - every recipe overrides it
        raise RecipeError(f"{type(self).__name__} does not define setup(r)")

    def mainDir(self, directory: str) -> None:
        """Name the directory the build happens in (default ``NAME-VERSION``)."""
        self.main_dir = self.macros.expand(directory)
        self.macros.maindir = self.main_dir  # %(maindir)s, as setup() goes on

    def disableParallelMake(self) -> None:
        """Build with one job: ``%(parallelmflags)s`` becomes empty (as in conary)."""
        self.macros.parallelmflags = ""

    def __getattr__(self, attr: str):
        if attr.startswith("_"):
            raise AttributeError(attr)
        cls = REGISTRY.get(attr)  # first: an action registered under a conary name wins
        if cls is None:
            why = unsupported(attr, attribute=True)
            if why:
                raise RecipeError(f"{caller_where()}: {why}")
            close = difflib.get_close_matches(attr, REGISTRY, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise RecipeError(f"{caller_where()}: unknown action {attr!r}{hint} (appbuild explain lists them)")
        return lambda *args, **kwargs: self._record(cls, args, kwargs)

    @property
    def flavor(self) -> str:
        """The flavor of this build so far (``ssl is: x86_64``): the use flags ``setup``
        has read, and the architecture (:mod:`appbuilder.recipe.flavor`)."""
        from appbuilder.recipe.flavor import current

        return current().flavor_text(self.name or "")

    def _record(self, cls: type[Action], args, kwargs) -> Action | None:
        if "use" in kwargs:  # conary's use=: the action happens only when the flag(s) are on
            use = kwargs.pop("use")
            if not (all(bool(u) for u in use) if isinstance(use, (list, tuple)) else bool(use)):
                return None
        where = caller_where(3)
        if where.startswith(_PACKAGE_DIR):  # an implicit action (AutoPackageRecipe's make): the class
            where = getattr(type(self), "_defined_at", where)
        action = cls.record(args, kwargs, where)
        self.actions.append(action)
        return action

    def actions_of(self, phase: str) -> list[Action]:
        return [a for a in self.actions if a.phase == phase]

    def settings(self, cls: type[Action]) -> list:
        """The policy settings of one kind this recipe recorded, in order."""
        return [a for a in self.actions if isinstance(a, cls)]


def check_name_and_version(cls: type, where: str, name_re: re.Pattern, name_rule: str) -> None:
    """Refuse a recipe class without a valid ``name`` and ``version`` (packages and groups)."""
    for attr in ("name", "version"):
        value = getattr(cls, attr, None)
        if not value or not isinstance(value, str):
            raise RecipeError(f"{where} has no '{attr}' (a class attribute string)")
    if not name_re.match(cls.name):
        raise RecipeError(f"{where}: bad name {cls.name!r} ({name_rule})")
    if "-" in cls.version or not re.match(r"^[A-Za-z0-9._+~]+$", cls.version):
        raise RecipeError(f"{where}: bad version {cls.version!r} (letters, digits, . _ + ~; no '-')")


def check_recipe_class(cls: type, path: str) -> None:
    """Refuse a recipe class that lacks what every recipe must say."""
    where = f"{path}: recipe {cls.__name__}"
    check_name_and_version(cls, where, NAME_RE, "lower case letters, digits, + . _ -")
    reqs = getattr(cls, "buildRequires", [])
    if not isinstance(reqs, (list, tuple)) or not all(isinstance(r, str) for r in reqs):
        raise RecipeError(f"{where}: buildRequires must be a list of trove names")
    timeout = getattr(cls, "buildTimeout", None)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise RecipeError(f"{where}: buildTimeout must be a positive number of seconds")
    license = getattr(cls, "license", None)
    if license is not None and not (isinstance(license, str) and LICENSE_RE.match(license)):
        raise RecipeError(f"{where}: license must be an SPDX license expression such as 'GPL-2.0-only' or "
                          f"'MIT OR Apache-2.0', got {license!r}")
    if vars(cls).get("abstractBaseClass"):
        return  # a superclass (conary's abstractBaseClass): it need not say setup(r)
    if "setup" not in vars(cls) and not any("setup" in vars(b) for b in cls.__mro__[1:-1] if b is not PackageRecipe):
        raise RecipeError(f"{where} does not define setup(r)")


__all__ = ["PackageRecipe", "policy_actions", "source_actions", "build_actions"]
