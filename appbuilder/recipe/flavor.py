"""``Use``, ``Arch`` and ``Flags`` in recipes: conary's build flags, and the flavor they make.

A recipe may build differently depending on flags::

    class Hello(PackageRecipe):
        name = 'hello'
        version = '1.0'

        def setup(r):
            r.addSource('hello.c')
            if Use.ssl:
                r.Environment('CPPFLAGS', '-DWITH_SSL')
            if Arch.x86_64:
                r.Make('hello CFLAGS=-O2')
            ...

``Use.NAME`` is one of conary's use flags (:data:`USE_FLAGS`); ``Arch.x86_64``,
``Arch.x86`` (and ``Arch.bits64``, ``Arch.bits32``, ``Arch.LE``, the other major
architectures conary knew, sub-architectures such as ``Arch.x86.i686``) say what is being
built for; ``Flags.NAME = True`` in the recipe defines a flag of its own (conary's local
flags), read as ``Flags.NAME`` and set from outside as ``NAME.FLAG`` (``hello.debug``).

As in conary, the flags a recipe actually *reads* (takes the truth of: ``if Use.ssl:``,
``Use.ssl and ...``, ``bool(Use.ssl)``) make the trove's flavor, with the architecture:
a flag that was on is written ``ssl`` (``~builddocs`` for the flags conary did not
require, builddocs and buildtests), one that was off ``~!ssl``; local flags with the
recipe's name (``hello.debug``). ``r.flavor`` is that flavor so far (``ssl is: x86_64``).
So cooking one recipe with ``ssl`` on and off gives two troves,
``hello=.../1.0-1-1[ssl is: x86_64]`` and ``hello=.../1.0-1-1[~!ssl is: x86_64]``, that
groups tell apart (``r.add('hello', flavor='ssl')``); a recipe that never reads ``ssl``
gives the same trove either way.

The values come from :data:`USE_FLAGS` (conary's flags, with appbuild's defaults for an
appliance), then the ``use:`` setting of ``repo/config.yaml`` (``use: {ssl: false}``),
then ``cook.flavor`` (``appbuild cook recipes/hello --flavor '!ssl'``): a flag is on when
written ``ssl`` or ``~ssl``, off when written ``!ssl`` or ``~!ssl``.

Differences to conary: sub-architecture flags can be read but are not written into the
flavor; ``Use.NAME`` of a flag that is not in :data:`USE_FLAGS` is an error naming the
nearest one (conary's ``--unknown-flags`` is not there; a workspace adds its own flags
to the ``use:`` setting); flags cannot be set from a recipe (``Use.ssl = True`` is refused
as in conary; ``Flags.NAME = ...`` defines a local flag).
"""

from __future__ import annotations

import difflib
import re
import sys

from appbuilder.core.errors import RecipeError

# conary's use flags (config/use), with the value an appliance build starts from and
# whether conary required the flag (a flag it did not require is written ~NAME when on)
USE_FLAGS: dict[str, tuple[bool, bool, str]] = {
    "alternatives": (False, True, "use the alternatives system for programs several packages provide"),
    "bootstrap": (False, True, "build a reduced package while bootstrapping a toolchain"),
    "builddocs": (False, False, "build documentation (SGML, TeX, texinfo) as well as binaries"),
    "buildtests": (False, False, "build test suites to install with the package"),
    "cross": (False, True, "cross-compile"),
    "desktop": (False, True, "build for a desktop system"),
    "dietlibc": (False, True, "link against dietlibc"),
    "dom0": (False, True, "build for a Xen dom0"),
    "domU": (False, True, "build for a Xen guest"),
    "emacs": (False, True, "include Emacs support"),
    "gcj": (False, True, "build Java code with gcj"),
    "gnome": (False, True, "include GNOME support"),
    "gtk": (False, True, "include GTK support"),
    "ipv6": (True, True, "include IPv6 support"),
    "kde": (False, True, "include KDE support"),
    "krb": (True, True, "include Kerberos (V5) support"),
    "ldap": (True, True, "include LDAP support"),
    "nptl": (True, True, "use native POSIX threads"),
    "pam": (True, True, "include PAM support"),
    "pcre": (True, True, "use Perl-compatible regular expressions"),
    "perl": (True, True, "include Perl support"),
    "pie": (False, True, "build position-independent executables"),
    "python": (True, True, "include Python support"),
    "qt": (False, True, "include Qt support"),
    "readline": (True, True, "use readline"),
    "sasl": (True, True, "include SASL support"),
    "selinux": (False, True, "include SELinux support"),
    "ssl": (True, True, "include SSL/TLS support"),
    "tcl": (False, True, "include Tcl support"),
    "tcpwrappers": (True, True, "include TCP wrappers support"),
    "tk": (False, True, "include Tk support"),
    "vmware": (False, True, "build for a VMware guest"),
    "X": (False, True, "include X11 support"),
    "xen": (False, True, "include Xen support"),
    "xfce": (False, True, "include Xfce support"),
}

# major architectures conary knew (reading one that is not being built is False),
# their properties and sub-architectures (value when building for the appbuild arch)
ARCH_PROPS = {"x86_64": {"bits64": True, "bits32": False, "LE": True, "BE": False},
              "x86": {"bits64": False, "bits32": True, "LE": True, "BE": False}}
SUBARCHES = {"x86_64": {"nx": True, "sse2": True, "sse3": False, "3dnow": False},
             "x86": {"i486": True, "i586": True, "i686": True, "cmov": True, "mmx": False, "sse": False,
                     "sse2": False, "3dnow": False}}
OTHER_ARCHES = ("alpha", "ia64", "mips", "mipsel", "ppc", "ppc64", "s390", "s390x", "sparc", "sparc64", "arm")
FLAG_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _caller() -> str:
    """``file:line`` of the recipe line that is reading a flag."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame else "recipe"


def _hint(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]}?" if close else ""


class Flag:
    """One flag; taking its truth records it as used (it goes into the flavor)."""

    def __init__(self, tracker: "Tracker", kind: str, name: str, value: bool):
        self._tracker, self._kind, self._name, self._value = tracker, kind, name, bool(value)

    def __bool__(self) -> bool:
        self._tracker.read(self._kind, self._name)
        return self._value

    def _get(self) -> bool:
        """The value without recording the flag as used (conary's ``_get``)."""
        return self._value

    def __eq__(self, other) -> bool:
        return bool(self) == bool(other) if isinstance(other, (Flag, bool)) else NotImplemented

    def __ne__(self, other) -> bool:
        return bool(self) != bool(other) if isinstance(other, (Flag, bool)) else NotImplemented

    __hash__ = object.__hash__

    def __or__(self, other):
        return bool(self) | bool(other)

    __ror__ = __or__

    def __and__(self, other):
        return bool(self) & bool(other)

    __rand__ = __and__

    def __repr__(self) -> str:
        return f"{self._kind}.{self._name}: {self._value}"


class _Collection:
    _what = "flag"

    def __setattr__(self, key: str, value) -> None:
        if key.startswith("_"):
            object.__setattr__(self, key, value)
        else:
            raise RecipeError(f"{_caller()}: cannot set {self._what}.{key}: flags are chosen per cook "
                              f"(appbuild cook --flavor, the use: setting), not by the recipe")

    def __getitem__(self, key: str):
        return getattr(self, key)


class UseCollection(_Collection):
    """``Use``: conary's use flags."""

    _what = "Use"

    def __init__(self, tracker: "Tracker", values: dict[str, bool]):
        self._tracker = tracker
        self._values = values

    def __getattr__(self, key: str) -> Flag:
        if key.startswith("__"):
            raise AttributeError(key)
        if key not in self._values:
            raise RecipeError(f"{_caller()}: unknown use flag Use.{key}{_hint(key, self._values)} "
                              f"(conary's flags, and those of the use: setting)")
        return Flag(self._tracker, "Use", key, self._values[key])

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def keys(self):
        return sorted(self._values)


class _SubArches(_Collection):
    def __init__(self, tracker: "Tracker", major: str, on: bool, subs: dict[str, bool]):
        self._tracker, self._major, self._on, self._subs = tracker, major, on, subs
        self._what = f"Arch.{major}"

    def __bool__(self) -> bool:
        self._tracker.read("Arch", self._major)
        return self._on

    def __getattr__(self, key: str) -> Flag:
        if key.startswith("__"):
            raise AttributeError(key)
        if key not in self._subs:
            raise RecipeError(f"{_caller()}: unknown sub-architecture Arch.{self._major}.{key}"
                              f"{_hint(key, self._subs)}")
        return Flag(self._tracker, "Arch", self._major, self._on and self._subs[key])

    def __eq__(self, other) -> bool:
        return bool(self) == bool(other)

    __hash__ = object.__hash__


class ArchCollection(_Collection):
    """``Arch``: what is being built for (``Arch.x86_64``, ``Arch.bits64``, ``Arch.x86.i686``)."""

    _what = "Arch"

    def __init__(self, tracker: "Tracker", arch: str | None):
        self._tracker, self._arch = tracker, arch

    def __getattr__(self, key: str):
        if key.startswith("__"):
            raise AttributeError(key)
        if key in SUBARCHES:
            return _SubArches(self._tracker, key, self._arch == key, SUBARCHES[key])
        if key in OTHER_ARCHES:
            return _SubArches(self._tracker, key, False, {})
        props = ARCH_PROPS.get(self._arch or "", {})
        if key in ARCH_PROPS["x86_64"]:
            return Flag(self._tracker, "Arch", self._arch or "", props.get(key, False))
        raise RecipeError(f"{_caller()}: unknown architecture Arch.{key}"
                          f"{_hint(key, [*SUBARCHES, *OTHER_ARCHES, *ARCH_PROPS['x86_64']])}")

    def getCurrentArch(self):
        """The architecture being built for, as conary's ``Arch.getCurrentArch()``."""
        return getattr(self, self._arch) if self._arch else None


class LocalFlags(_Collection):
    """``Flags``: a recipe's own flags; ``Flags.debug = False`` defines one (its default)."""

    _what = "Flags"

    def __init__(self, tracker: "Tracker", overrides: dict[str, bool]):
        object.__setattr__(self, "_tracker", tracker)
        object.__setattr__(self, "_overrides", overrides)
        object.__setattr__(self, "_values", {})

    def __setattr__(self, key: str, value) -> None:
        if key.startswith("_") or not FLAG_NAME_RE.match(key):
            raise RecipeError(f"{_caller()}: bad local flag name {key!r}")
        if not isinstance(value, (bool, Flag)):
            raise RecipeError(f"{_caller()}: Flags.{key} must be True or False, not {value!r}")
        self._values[key] = self._overrides.get(key, bool(value) if isinstance(value, bool) else value._get())

    def __getattr__(self, key: str) -> Flag:
        if key.startswith("__"):
            raise AttributeError(key)
        if key not in self._values:
            raise RecipeError(f"{_caller()}: no local flag Flags.{key}{_hint(key, self._values)} "
                              f"(define it first: Flags.{key} = False)")
        return Flag(self._tracker, "Flags", key, self._values[key])


class Tracker:
    """The flags of one evaluation and which of them the recipe read."""

    def __init__(self, arch: str | None, use: dict[str, bool] | None = None,
                 local: dict[str, bool] | None = None):
        self.arch = arch
        values = {name: default for name, (default, _, _) in USE_FLAGS.items()}
        values.update(use or {})
        self.values = values
        self.used: dict[tuple[str, str], None] = {}
        self.Use = UseCollection(self, values)
        self.Arch = ArchCollection(self, arch)
        self.Flags = LocalFlags(self, local or {})

    def read(self, kind: str, name: str) -> None:
        self.used.setdefault((kind, name), None)

    def flags(self, recipe_name: str) -> list[list[str]]:
        """The flavor flags of what was read: ``[name, sense]`` pairs."""
        out = []
        for kind, name in self.used:
            if kind == "Use":
                on, required = self.values[name], USE_FLAGS.get(name, (False, True, ""))[1]
                out.append([name, ("" if required else "~") if on else "~!"])
            elif kind == "Flags":
                out.append([f"{recipe_name}.{name}", "~" if self.Flags._values[name] else "~!"])
        return sorted(out)

    def flavor_text(self, recipe_name: str) -> str:
        from appbuilder.repository.versions import Flavor

        return str(Flavor(self.arch, tuple((n, s) for n, s in self.flags(recipe_name))))

    def namespace(self) -> dict:
        """The names a recipe file sees."""
        return {"Use": self.Use, "Arch": self.Arch, "Flags": self.Flags}


_current: Tracker | None = None


def begin(arch: str | None, use: dict[str, bool] | None = None, local: dict[str, bool] | None = None) -> Tracker:
    """Start the flags of one recipe evaluation (in the sandbox)."""
    global _current
    _current = Tracker(arch, use, local)
    return _current


def current() -> Tracker:
    """The flags of the evaluation under way (a default one when none was begun)."""
    return _current if _current is not None else begin(None)


def parse_use(text: str, where: str = "the flavor") -> tuple[dict[str, bool], dict[str, bool]]:
    """Use flag values from a flavor as a user writes it (``ssl,!ipv6,~builddocs``,
    ``hello.debug``): (global flags, local flags by ``recipe.flag``). ``is:`` is refused."""
    from appbuilder.core.errors import AppbuildError
    from appbuilder.repository.versions import Flavor

    try:
        flavor = Flavor.parse(text)
    except AppbuildError as exc:
        raise RecipeError(f"{where}: {exc}") from None
    if flavor.arch:
        raise RecipeError(f"{where}: {text!r} names an architecture; choose it with --arch")
    use: dict[str, bool] = {}
    local: dict[str, bool] = {}
    for name, sense in flavor.flags:
        (local if "." in name else use)[name] = sense in ("", "~")
    return use, local


def check_use(use: dict[str, bool], where: str, *, extra: set[str] = frozenset()) -> None:
    """Refuse flag names that are neither conary's nor declared in the use: setting."""
    for name in use:
        if name not in USE_FLAGS and name not in extra:
            raise RecipeError(f"{where}: unknown use flag {name!r}{_hint(name, [*USE_FLAGS, *extra])} "
                              f"(add it to the use: setting of repo/config.yaml to define it)")


def cook_flags(setting: dict[str, bool], flavor: str) -> tuple[dict[str, bool], dict[str, bool]]:
    """The use flags of a cook: conary's defaults, the ``use:`` setting over them, the cook's
    flavor (``cook.flavor``, ``--flavor``) over that. Returns (use flags, local flags by
    ``recipe.flag``), each sorted by name."""
    use = {name: default for name, (default, _, _) in USE_FLAGS.items()}
    use.update(setting)
    extra, local = parse_use(flavor, "cook.flavor") if flavor else ({}, {})
    check_use(extra, "cook.flavor", extra=set(setting))
    use.update(extra)
    return dict(sorted(use.items())), dict(sorted(local.items()))



def with_flags(input_hash: str, use: dict[str, bool], local: dict[str, bool]) -> str:
    """A cook's input hash with the values of its use flags and own flags in it: cooking
    with other flags is cooking anew (the trove's flavor says which of them mattered)."""
    import hashlib

    h = hashlib.sha256(f"inputs {input_hash}\n".encode())
    for name, value in sorted(use.items()):
        h.update(f"use {name} {int(value)}\n".encode())
    for name, value in sorted(local.items()):
        h.update(f"flag {name} {int(value)}\n".encode())
    return h.hexdigest()


__all__ = ["USE_FLAGS", "Tracker", "begin", "current", "parse_use", "check_use", "cook_flags", "with_flags", "Flag"]
