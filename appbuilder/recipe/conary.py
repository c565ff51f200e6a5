"""Conary's recipe classes and functions, so recipes load as their authors wrote them.

A conary recipe names its base class and a few functions without importing them; so
does an appbuild recipe file:

``PackageRecipe``       builds a package (:mod:`appbuilder.recipe.base`)
``BuildPackageRecipe``  a ``PackageRecipe`` for builds that use make and the shell tools
``CPackageRecipe``      a ``BuildPackageRecipe`` for programs written in C
``AutoPackageRecipe``   a ``CPackageRecipe`` whose ``setup`` is unpack, configure, make,
                        make install, policy (each a method a recipe may override)
``GroupRecipe``         names the troves of a group (:mod:`appbuilder.recipe.group`)
``loadSuperClass``      loads a recipe from the workspace's recipe library
                        (:mod:`appbuilder.recipe.library`); its classes become names of
                        the file that loaded it
``loadInstalled``       the same (the workspace holds the one version of each recipe)
``clearBuildRequires``  (also ``clearBuildReqs``) in a class body: forget the
                        ``buildRequires`` inherited from the base classes (all of them,
                        or those named)

In conary the buildRequires of ``BuildPackageRecipe`` and ``CPackageRecipe`` named make,
coreutils, gcc, glibc and the like. In appbuild every build root already holds the
toolchain group (``groups/group-toolchain.py``), so these classes add no
``buildRequires`` of their own; what a class declares is added to what its base classes
declare, as in conary.

Conary names appbuild does not have are listed in :mod:`appbuilder.recipe.unsupported` with what to do
instead; a recipe using one stops with ``file:line: conary's NAME is not supported: ...``.
"""

from __future__ import annotations

import sys

from appbuilder.core.errors import RecipeError
from appbuilder.recipe.base import CLEARED, PackageRecipe, caller_where


class BuildPackageRecipe(PackageRecipe):
    """A package built with make and the usual shell tools (conary's ``BuildPackageRecipe``).

    The same as ``PackageRecipe`` in appbuild: make, coreutils, sed, grep, awk,
    findutils and diffutils are part of the toolchain group every build root holds, so
    it adds no ``buildRequires``.
    """


class CPackageRecipe(BuildPackageRecipe):
    """A package of programs built from C (conary's ``CPackageRecipe``).

    gcc, binutils and the C library's development files come with the toolchain group
    (for x86_64 and for x86 with ``-m32``), so it adds no ``buildRequires``; declare the
    libraries a build links against (``'zlib:devel'``).
    """


class AutoPackageRecipe(CPackageRecipe):
    """An autotools package in a few lines (conary's ``AutoPackageRecipe``).

    Its ``setup`` calls, in order, ``r.unpack()``, ``r.configure()``, ``r.make()``,
    ``r.makeinstall()`` and ``r.policy()``. ``unpack`` does nothing until a recipe
    defines it (it names the sources); ``configure`` is ``r.Configure()``, ``make`` is
    ``r.Make()``, ``makeinstall`` is ``r.MakeInstall()``, ``policy`` does nothing. A
    recipe overrides any of them::

        class Hello(AutoPackageRecipe):
            name = 'hello'
            version = '2.12'

            def unpack(r):
                r.addArchive('mirror://gnu/hello/', sha256='...')

            def configure(r):
                r.Configure('--disable-nls')
    """

    def setup(r):
        r.unpack()
        r.configure()
        r.make()
        r.makeinstall()
        r.policy()

    def unpack(r):
        """Add the sources (a recipe defines it)."""

    def configure(r):
        r.Configure()

    def make(r):
        r.Make()

    def makeinstall(r):
        r.MakeInstall()

    def policy(r):
        """Policy settings after the install (a recipe may define it)."""


def clearBuildRequires(*names: str) -> None:
    """Forget inherited ``buildRequires`` (conary's ``clearBuildRequires``/``clearBuildReqs``).

    Called in a class body (or at the top of the file, for the classes defined after
    it): without arguments the class keeps none of the ``buildRequires`` its base
    classes declare, with names it drops just those. The class's own ``buildRequires``
    are added afterwards. Called at file level after a class, it empties (or drops the
    names from) that class's whole list, as conary did::

        class Tool(CPackageRecipe):
            name = 'tool'
            version = '1.0'
            clearBuildRequires('libfoo:devel')
            buildRequires = ['zlib:devel']
    """
    frame = sys._getframe(1)
    scope = frame.f_locals
    in_class = scope is not frame.f_globals and "__module__" in scope and "__qualname__" in scope
    if not in_class and scope is not frame.f_globals:
        raise RecipeError(f"{caller_where()}: clearBuildRequires() belongs in the class body (it changes "
                          f"buildRequires, which are read before setup runs)")
    for n in names:
        if not isinstance(n, str):
            raise RecipeError(f"{caller_where()}: clearBuildRequires() takes trove names, not {n!r}")
    before = scope.get(CLEARED)
    if not names or before is True:
        scope[CLEARED] = True
    else:
        scope[CLEARED] = tuple(dict.fromkeys([*(before or ()), *names]))
    if not in_class:  # the recipe classes this file already defined (never shared base classes)
        for value in list(scope.values()):
            if isinstance(value, type) and issubclass(value, PackageRecipe) \
                    and value.__module__ == scope.get("__name__") and isinstance(value.buildRequires, list):
                value.buildRequires = [r for r in value.buildRequires if names and r not in names]


clearBuildReqs = clearBuildRequires


# ------------------------------------------------------------------ for `appbuild explain`


def recipe_names() -> dict[str, tuple[str, str]]:
    """What a recipe file sees besides ``r``'s actions: name -> (how it is written, its
    documentation), for ``appbuild explain``."""
    import inspect

    from appbuilder.recipe import base, group, library

    load = ("Load a recipe of the workspace's recipe library (a superclass).\n\n"
            "The recipe classes it defines become names of the file that loads it (call it before "
            "the class that uses them); it returns the recipe class named NAME.\n\n"
            + inspect.cleandoc(library.__doc__ or ""))
    return {
        "PackageRecipe": ("class NAME(PackageRecipe)", inspect.cleandoc(base.__doc__ or "")),
        "BuildPackageRecipe": ("class NAME(BuildPackageRecipe)", inspect.getdoc(BuildPackageRecipe) or ""),
        "CPackageRecipe": ("class NAME(CPackageRecipe)", inspect.getdoc(CPackageRecipe) or ""),
        "AutoPackageRecipe": ("class NAME(AutoPackageRecipe)", inspect.getdoc(AutoPackageRecipe) or ""),
        "GroupRecipe": ("class NAME(GroupRecipe)", inspect.cleandoc(group.__doc__ or "")),
        "loadSuperClass": ("loadSuperClass('NAME[=VERSION]')", load),
        "loadInstalled": ("loadInstalled('NAME[=VERSION]')",
                          "Load a recipe of the workspace's recipe library (as loadSuperClass).\n\n"
                          "In appbuild it is loadSuperClass: the workspace holds one version of each "
                          "recipe, and nothing is installed where a recipe is read.\n\n" + load),
        "clearBuildRequires": ("clearBuildRequires(*names)", inspect.getdoc(clearBuildRequires) or ""),
        "clearBuildReqs": ("clearBuildReqs(*names)", "conary's older name of clearBuildRequires.\n\n"
                           + (inspect.getdoc(clearBuildRequires) or "")),
    }
