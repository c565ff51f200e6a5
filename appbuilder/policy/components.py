"""Which component each installed file goes to.

Rules are regular expressions over the installed path, first match wins. The
recipe's own ``r.ComponentSpec()`` rules come before the defaults. Component
dependencies follow conary's: ``:runtime``, ``:lib`` and ``:devel`` need the
package's ``:config`` and ``:data``; ``:runtime`` and ``:devel`` need ``:lib``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appbuilder.recipe.macros import Macros

# a rule applies to any file, or only to symlinks, or only to non-executable regular files
ANY, SYMLINK, PLAIN_FILE = "any", "symlink", "plain-file"

# (component, pattern, applies to); macros are expanded; first match wins
DEFAULT_RULES: list[tuple[str, str, str]] = [
    ("debuginfo", r"%(debuglibdir)s/.*", ANY),
    ("debuginfo", r"%(debugsrcdir)s/.*", ANY),
    ("devel", r"%(includedir)s/.*", ANY),
    ("devel", r".*/lib(64|32)?(/[^/]*-linux-gnu)?/[^/]*\.(a|la)", ANY),
    ("devel", r".*/lib(64|32)?(/[^/]*-linux-gnu)?/[^/]+\.so", SYMLINK),
    ("devel", r".*/pkgconfig/[^/]*\.pc", ANY),
    ("devel", r"%(datadir)s/aclocal/.*", ANY),
    ("devel", r"%(mandir)s/man[23]/.*", ANY),
    ("devel", r"%(bindir)s/[^/]*-config", ANY),
    ("doc", r"%(mandir)s/.*", ANY),
    ("doc", r"%(infodir)s/.*", ANY),
    ("doc", r"%(docdir)s/.*", ANY),
    ("doc", r"%(datadir)s/gtk-doc/.*", ANY),
    ("config", r"%(sysconfdir)s/.*", PLAIN_FILE),
    ("lib", r"(/usr)?/lib(64|32)?/.*", ANY),
    ("data", r"%(datadir)s/.*", ANY),
]
CATCHALL = "runtime"

# component -> the components of the same package it requires (when they exist)
COMPONENT_REQUIRES: dict[str, tuple[str, ...]] = {
    "runtime": ("lib", "config", "data"),
    "lib": ("config", "data"),
    "devel": ("lib", "config", "data"),
}


@dataclass(frozen=True)
class Rule:
    component: str
    regex: re.Pattern
    applies_to: str = ANY

    def matches(self, path: str, file_type: str, executable: bool) -> bool:
        if self.applies_to == SYMLINK and file_type != "symlink":
            return False
        if self.applies_to == PLAIN_FILE and (file_type != "file" or executable):
            return False
        return self.regex.fullmatch(path) is not None


class Classifier:
    """Assigns files to components: the recipe's rules first, then the defaults."""

    def __init__(self, macros: Macros, recipe_rules: list[tuple[str, tuple[str, ...]]] = ()):
        self.rules = [Rule(component, re.compile(macros.expand(p))) for component, patterns in recipe_rules for p in patterns]
        self.rules += [Rule(c, re.compile(macros.expand(p)), kind) for c, p, kind in DEFAULT_RULES]

    def component(self, path: str, file_type: str, executable: bool) -> str:
        for rule in self.rules:
            if rule.matches(path, file_type, executable):
                return rule.component
        return CATCHALL
