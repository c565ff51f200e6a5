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
    """The macros every recipe starts with, for one architecture.

    They are conary's default macros (its ``/etc/conary/macros`` and the architecture's
    ``targetarch``/``lib``), with conary's values, so that a conary recipe finds every
    macro it used: ``%(x11prefix)s``, ``%(krbprefix)s``, ``%(servicedir)s``,
    ``%(cachedir)s``, ``%(thisdocdir)s``, ``%(initdir)s``, ``%(targetarch)s``,
    ``%(mflags)s``, ... Where appbuild differs it says so below: the compiler flags
    carry ``%(archflags)s`` (an x86 cook is a ``-m32`` build on an x86_64 build root, so
    every command must select the instruction set), ``%(ldflags)s`` is
    ``%(archflags)s`` alone (conary: ``%(dbgflags)s``), ``%(parallelmflags)s`` is
    ``-jN`` (conary left it to its configuration) and ``%(cxxflags)s`` holds only the
    C++ specific flags, as in conary: C++ builds get ``%(cflags)s %(cxxflags)s``.
    appbuild adds ``%(arch)s``, ``%(processor)s``, ``%(elfclass)s``, ``%(debianarch)s``,
    ``%(dynamiclinker)s`` and ``%(archflags)s``.
    """
    return Macros(
        {
            "name": name,
            "version": version,
            "maindir": "%(name)s-%(version)s",
            # installation directories (conary's values)
            "lib": arch.lib,
            "prefix": "/usr",
            "sysconfdir": "/etc",
            "initdir": "%(sysconfdir)s/init.d",
            "exec_prefix": "%(prefix)s",
            "bindir": "%(exec_prefix)s/bin",
            "essentialbindir": "/bin",
            "sbindir": "%(exec_prefix)s/sbin",
            "essentialsbindir": "/sbin",
            "libdir": "%(exec_prefix)s/%(lib)s",
            "essentiallibdir": "/%(lib)s",
            "libexecdir": "%(exec_prefix)s/libexec",
            "localstatedir": "/var",
            "servicedir": "/srv",
            "cachedir": "%(localstatedir)s/cache",
            "sharedstatedir": "%(prefix)s/com",
            "includedir": "%(prefix)s/include",
            "datadir": "%(prefix)s/share",
            "mandir": "%(datadir)s/man",
            "infodir": "%(datadir)s/info",
            "docdir": "%(datadir)s/doc",
            "thisdocdir": "%(docdir)s/%(name)s-%(version)s",
            "tagdescriptiondir": "%(sysconfdir)s/conary/tags",
            "taghandlerdir": "%(libexecdir)s/conary/tags",
            "tagdatadir": "%(datadir)s/conary/tags",
            "testdir": "%(localstatedir)s/conary/tests",
            "thistestdir": "%(testdir)s/%(name)s-%(version)s",
            "debuglibdir": "/usr/lib/debug",  # no %(prefix)s or %(lib)s, as in conary
            "debugsrcdir": "/usr/src/debug",
            "userinfodir": "%(sysconfdir)s/conary/userinfo",
            "groupinfodir": "%(sysconfdir)s/conary/groupinfo",
            "buildlogpath": "%(debugsrcdir)s/buildlogs/%(name)s-%(version)s-log.bz2",
            "buildxmlpath": "%(debugsrcdir)s/buildlogs/%(name)s-%(version)s-xml.bz2",
            "jvmdir": "%(libdir)s/jvm",
            "javadir": "%(datadir)s/java",
            "javadocdir": "%(datadir)s/javadoc",
            "thisjavadocdir": "%(javadocdir)s/%(name)s-%(version)s",
            "krbprefix": "%(exec_prefix)s/kerberos",
            "x11prefix": "%(exec_prefix)s/X11R6",
            # programs and their options
            "cc": "gcc",
            "cxx": "g++",
            "archflags": arch.archflags,
            "optflags": "-O2",
            "dbgflags": "-g",
            "cflags": "%(optflags)s %(dbgflags)s %(archflags)s",
            "cxxflags": "",  # C++ specific flags: C++ builds get %(cflags)s %(cxxflags)s
            "cppflags": "",
            "ldflags": "%(archflags)s",
            "mflags": "",
            "parallelmflags": f"-j{jobs}",
            "classpath": "",
            "os": "linux",
            "debugedit": "debugedit",
            "strip": "eu-strip",
            "strip_archive": "strip -g",
            "monodis": "%(bindir)s/monodis",
            "ruby": "%(bindir)s/ruby",
            "make": "make",
            "archive_name": "%(name)s",
            "archive_version": "%(version)s",
            "major_version": "%(version)s",
            "buildbranch": "",
            "buildlabel": "",
            # architecture: conary's target/host/build triplets (no cross builds: all three alike)
            "targetarch": arch.processor,
            "hostarch": "%(targetarch)s",
            "buildarch": "%(targetarch)s",
            "targetvendor": "unknown",
            "targetos": "linux",
            "target": "%(targetarch)s-%(targetvendor)s-%(targetos)s",
            "hostvendor": "unknown",
            "hostos": "linux",
            "host": "%(hostarch)s-%(hostvendor)s-%(hostos)s",
            "buildvendor": "unknown",
            "buildos": "linux",
            "build": "%(buildarch)s-%(buildvendor)s-%(buildos)s",
            "buildcc": "%(cc)s",
            "buildcxx": "%(cxx)s",
            # appbuild's own
            "arch": arch.name,
            "processor": arch.processor,
            "elfclass": str(arch.elf_class),
            "debianarch": arch.debian,
            "dynamiclinker": arch.loader,
            # set by the cook for each build
            "builddir": "",
            "destdir": "",
            "sysroot": "",
        }
    )
