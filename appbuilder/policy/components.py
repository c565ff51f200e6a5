"""Which component each installed file goes to: conary's ``ComponentSpec`` rules.

Rules are path patterns (conary's filter expressions, see
:mod:`appbuilder.core.pathpattern`) over the installed path, first match wins, in
conary's order:

1. the invariant rules, which a recipe cannot override: ``:debuginfo``
   (``%(debuglibdir)s/``, ``%(debugsrcdir)s/``) and ``:test`` (``%(testdir)s/``);
2. the recipe's own ``r.ComponentSpec()`` rules, in the order it gave them;
3. configuration files (``r.Config``, and plain files under ``%(sysconfdir)s``) go to
   ``:config``;
4. conary's base rules (its ``components/base/*.py``, in their dependency order), in
   :data:`BASE_RULES`: ``:python`` and ``:perl`` modules, ``:devel`` for man pages of
   sections 2 and 3, ``:doc`` (man, info, gtk-doc, ri and javadoc directories),
   ``:supdoc`` (``%(docdir)s/``), GNOME help in the C locale to ``:runtime``,
   ``:locale`` (``%(datadir)s/locale/`` and the other GNOME help), ``:devellib``
   (``.so`` symlinks, static ``.a`` archives, pkg-config files), ``:devel`` (headers,
   aclocal macros, ``*-config`` scripts), ``:emacs``, ``:data`` (the rest of
   ``%(datadir)s``), ``:lib`` (anything but a directory under a ``lib`` or ``%(lib)s``
   directory);
5. everything else goes to the catch-all component, ``:runtime`` unless the recipe
   says ``r.ComponentSpec(catchall='...')``.

Components of one package require each other as conary's ``ComponentRequires`` made
them (:data:`COMPONENT_REQUIRES`): ``:runtime`` needs ``:lib``, ``:data`` and
``:config``; ``:lib`` needs ``:data`` and ``:config``; ``:devellib`` needs ``:lib``,
``:data`` and ``:config``; ``:devel`` needs ``:devellib``, ``:lib`` and ``:config``;
``:python`` and ``:perl`` need ``:data``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appbuilder.core.pathpattern import path_regex
from appbuilder.recipe.macros import Macros

# a rule applies to any file, or only to symlinks, or to anything but a directory, or only
# to non-executable regular files (conary's set and unset mode masks)
ANY, SYMLINK, NOT_DIR, PLAIN_FILE = "any", "symlink", "not-dir", "plain-file"

# (component, pattern, applies to); conary's invariant component rules
INVARIANT_RULES: list[tuple[str, str, str]] = [
    ("test", "%(testdir)s/", ANY),
    ("debuginfo", "%(debugsrcdir)s/", ANY),
    ("debuginfo", "%(debuglibdir)s/", ANY),
]

# conary's base component rules in their dependency order (follows/precedes of each
# components/base/*.py file); first match wins
BASE_RULES: list[tuple[str, str, str]] = [
    ("config", "%(sysconfdir)s/", PLAIN_FILE),
    ("python", "/usr/(%(lib)s|lib)/python.*/site-packages/", ANY),
    ("perl", "/usr/(%(lib)s|lib)/perl.*/(vendor|site)_perl/", ANY),
    ("devel", "%(mandir)s/man(2|3)/", ANY),  # develdocs
    ("doc", "%(datadir)s/(gtk-doc|man|info|ri|javadoc)/", ANY),
    ("supdoc", "%(datadir)s/doc/", ANY),
    ("runtime", "%(datadir)s/gnome/help/.*/C/", ANY),  # gnomehelpmenu
    ("locale", "%(datadir)s/locale/", ANY),
    ("locale", "%(datadir)s/gnome/help/.*/", ANY),
    ("devellib", r"\.so", SYMLINK),
    ("devellib", r"\.a", ANY),
    ("devellib", "(%(libdir)s|%(datadir)s)/pkgconfig/", ANY),
    ("devel", r".*/include/.*\.h", ANY),
    ("devel", "%(includedir)s/", ANY),
    ("devel", "%(datadir)s/aclocal/", ANY),
    ("devel", "%(bindir)s/..*-config", ANY),
    ("emacs", "%(datadir)s/emacs/site-lisp/", ANY),
    ("data", "%(datadir)s/", ANY),
    ("lib", r".*/(%(lib)s|lib)/", NOT_DIR),
]
CATCHALL = "runtime"
CONFIG = "config"

# component -> the components of the same package it requires (when both exist)
COMPONENT_REQUIRES: dict[str, tuple[str, ...]] = {
    "runtime": ("lib", "data", "config"),
    "lib": ("data", "config"),
    "devellib": ("lib", "data", "config"),
    "devel": ("devellib", "lib", "config"),
    "python": ("data",),
    "perl": ("data",),
}


@dataclass(frozen=True)
class Rule:
    component: str
    regex: re.Pattern
    applies_to: str = ANY

    def matches(self, path: str, file_type: str, executable: bool) -> bool:
        if self.applies_to == SYMLINK and file_type != "symlink":
            return False
        if self.applies_to == NOT_DIR and file_type == "dir":
            return False
        if self.applies_to == PLAIN_FILE and (file_type != "file" or executable):
            return False
        return self.regex.search(path) is not None


class Classifier:
    """Assigns files to components: invariant rules, the recipe's, configuration files,
    conary's base rules, the catch-all."""

    def __init__(self, macros: Macros, recipe_rules: list[tuple[str, tuple[str, ...]]] = (), *,
                 catchall: str = CATCHALL):
        def rules(table):
            return [Rule(c, path_regex(macros.expand(p)), kind) for c, p, kind in table]

        self.invariant = rules(INVARIANT_RULES)
        self.recipe = [Rule(component, path_regex(macros.expand(p))) for component, patterns in recipe_rules
                       for p in patterns]
        self.base = rules(BASE_RULES)
        self.catchall = catchall

    def component(self, path: str, file_type: str, executable: bool, *, config: bool = False) -> str:
        for rule in (*self.invariant, *self.recipe):
            if rule.matches(path, file_type, executable):
                return rule.component
        if config:
            return CONFIG
        for rule in self.base:
            if rule.matches(path, file_type, executable):
                return rule.component
        return self.catchall
