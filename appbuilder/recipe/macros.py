"""Recipe macros: ``%(name)s`` strings expanded at build time.

Macros may refer to other macros (``bindir = %(exec_prefix)s/bin``) and a recipe may
redefine one in terms of its old value (``r.macros.cflags += ' -fPIC'`` or
``r.macros.cflags = '%(cflags)s -fPIC'``). Architecture macros come from
:mod:`appbuilder.core.arch`.
"""

from __future__ import annotations

import difflib
import re

from appbuilder.core.arch import Arch
from appbuilder.core.errors import RecipeError

_REF = re.compile(r"%\((\w+)\)s")


class Macros:
    """A set of macros; attribute and item access both return the expanded value."""

    def __init__(self, values: dict[str, str] | None = None):
        object.__setattr__(self, "_raw", {})
        for key, value in (values or {}).items():
            self[key] = value

    # --- definition
    def __setitem__(self, key: str, value) -> None:
        value = str(value)
        if f"%({key})s" in value:  # self-reference: splice in the old definition
            value = value.replace(f"%({key})s", self._raw.get(key, ""))
        self._raw[key] = value

    def __setattr__(self, key: str, value) -> None:
        self[key] = value

    # --- lookup
    def __getitem__(self, key: str) -> str:
        return self._expand(key, ())

    def __getattr__(self, key: str) -> str:
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]

    def __contains__(self, key: str) -> bool:
        return key in self._raw

    def keys(self):
        return sorted(self._raw)

    def _expand(self, key: str, stack: tuple) -> str:
        if key not in self._raw:
            close = difflib.get_close_matches(key, self._raw, n=1)
            hint = f" (did you mean %({close[0]})s?)" if close else ""
            raise RecipeError(f"unknown macro %({key})s{hint}")
        if key in stack:
            raise RecipeError(f"macro %({key})s refers to itself through {' -> '.join(stack)}")
        return _REF.sub(lambda m: self._expand(m.group(1), stack + (key,)), self._raw[key])

    def expand(self, text: str) -> str:
        """Expand every ``%(name)s`` in *text*; ``%%`` stands for a literal ``%``."""
        parts = text.split("%%")
        return "%".join(_REF.sub(lambda m: self[m.group(1)], p) for p in parts)

    def copy(self) -> "Macros":
        other = Macros()
        other._raw.update(self._raw)
        return other


def default_macros(arch: Arch, *, name: str, version: str, jobs: int = 2) -> Macros:
    """The macros every recipe starts with, for one architecture."""
    return Macros(
        {
            "name": name,
            "version": version,
            # installation directories (FHS, EL library layout)
            "prefix": "/usr",
            "exec_prefix": "%(prefix)s",
            "bindir": "%(exec_prefix)s/bin",
            "sbindir": "%(exec_prefix)s/sbin",
            "lib": arch.lib,
            "libdir": "%(exec_prefix)s/%(lib)s",
            "libexecdir": "%(exec_prefix)s/libexec",
            "includedir": "%(prefix)s/include",
            "datadir": "%(prefix)s/share",
            "mandir": "%(datadir)s/man",
            "infodir": "%(datadir)s/info",
            "docdir": "%(datadir)s/doc",
            "thisdocdir": "%(docdir)s/%(name)s-%(version)s",
            "sysconfdir": "/etc",
            "localstatedir": "/var",
            "sharedstatedir": "/var/lib",
            "initdir": "%(sysconfdir)s/init.d",
            "essentialbindir": "/bin",
            "essentialsbindir": "/sbin",
            "essentiallibdir": "/%(lib)s",
            "debuglibdir": "/usr/lib/debug",
            "debugsrcdir": "/usr/src/debug",
            # architecture
            "arch": arch.name,
            "processor": arch.processor,
            "elfclass": str(arch.elf_class),
            "debianarch": arch.debian,
            "target": arch.gnu_triplet,
            "host": arch.gnu_triplet,
            "build": arch.gnu_triplet,
            "dynamiclinker": arch.loader,
            # compiler
            "archflags": arch.archflags,
            "optflags": "-O2",
            "dbgflags": "-g",
            "cflags": "%(optflags)s %(dbgflags)s %(archflags)s",
            "cxxflags": "%(cflags)s",
            "cppflags": "",
            "ldflags": "%(archflags)s",
            "cc": "gcc",
            "cxx": "g++",
            "parallelmflags": f"-j{jobs}",
            # set by the cook for each build
            "builddir": "",
            "destdir": "",
            "sysroot": "",
        }
    )
