"""Policy settings: how a recipe tunes the policies that turn its install root into troves.

After the build, policies run over the install root in a fixed order, as conary's did
(remove files that are not packaged, strip debug information, normalize man and info
pages, split the files into packages and components, mark configuration files, set
owners, find provides and requires, check build requirements). These calls adjust them;
they take effect whenever in ``setup()`` they appear.

Path patterns are conary's filter expressions: regular expressions over the installed
path, after macro expansion, anchored naturally for paths: a pattern starting with
``/`` matches from the start of the path, and one not ending in ``/`` or ``$`` matches
to its end. So ``%(datadir)s/doc/`` is everything below it, ``\\.la`` every path ending
in ``.la`` and ``%(bindir)s/tool`` that one path.
"""

from __future__ import annotations

import re

from appbuilder.core.errors import RecipeError
from appbuilder.core.pathpattern import check_pattern
from appbuilder.recipe.actions import POLICY, Action
from appbuilder.repository.deps import DEP_CLASSES, FILE, SONAME, TROVE, Dependency

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+._-]*$")
# conary's trove requirement shorthand: package:component
_TROVE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9+._-]*)?:[A-Za-z][A-Za-z0-9_-]*$")


def _compile(patterns) -> tuple[str, ...]:
    if isinstance(patterns, str):
        patterns = (patterns,)
    for p in patterns:
        if not isinstance(p, str):
            raise RecipeError(f"a path pattern must be a string, not {p!r}")
        check_pattern(p)
    return tuple(patterns)


def _except_deps(value) -> tuple[tuple[str, str], ...]:
    """conary's ``exceptDeps=``: ``'regexp'``, ``('filterexp', 'regexp')`` or a list of
    such pairs; regexps are matched from the start of ``class: dependency``."""
    if value is None:
        return ()
    if isinstance(value, str):
        pairs = [(".*", value)]
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, str) for v in value):
        pairs = [tuple(value)]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
        pairs = [tuple(v) for v in value]
    else:
        raise RecipeError(f"exceptDeps must be 'regexp', ('filterexp', 'regexp') or a list of such pairs, "
                          f"not {value!r}")
    for files, dep in pairs:
        _compile((files,))
        try:
            re.compile(dep)
        except re.error as exc:
            raise RecipeError(f"exceptDeps: bad regular expression {dep!r}: {exc}") from None
    return tuple(pairs)


class _PolicySetting(Action):
    phase = POLICY

    def do(self, ctx) -> None:  # settings are read by the policies, not run
        pass


class ComponentSpec(_PolicySetting):
    """Put files matching the patterns into ``component`` (before the default rules).

    ``component`` may name a package too, ``'pkg:component'``, which is
    ``r.PackageSpec('pkg', ...)`` as well. ``catchall=`` names the component that
    gets what no rule matches (``runtime``). The default rules are conary's, first
    match wins: ``:debuginfo`` and ``:test`` (which a recipe cannot override), then
    the recipe's rules, configuration files to ``:config``, then ``:python`` and
    ``:perl`` modules, ``:devel`` (man pages of sections 2 and 3), ``:doc`` (man,
    info, gtk-doc), ``:supdoc`` (``%(docdir)s``), ``:locale`` (``%(datadir)s/locale``),
    ``:devellib`` (``.so`` symlinks, ``.a`` archives, pkg-config files), ``:devel``
    (headers, aclocal macros, ``*-config`` scripts), ``:data`` (the rest of
    ``%(datadir)s``), ``:lib`` (files below a ``lib`` or ``%(lib)s`` directory).

    Example::

        r.ComponentSpec('runtime', '%(libdir)s/appliance/')
        r.ComponentSpec('foo-server:config', '%(sysconfdir)s/foo/server.conf')
        r.ComponentSpec(catchall='data')
    """

    def __init__(self, component: str | None = None, *patterns: str, catchall: str | None = None):
        self.package = None
        if component is not None:
            package, sep, name = component.rpartition(":")
            if sep and package:
                if not _PACKAGE.match(package):
                    raise RecipeError(f"ComponentSpec: bad package name {package!r}")
                self.package = package
            component = name
            if not _NAME.match(component):
                raise RecipeError(f"ComponentSpec: bad component name {component!r}")
            if not patterns:
                raise RecipeError("ComponentSpec: give at least one path pattern")
        elif catchall is None:
            raise RecipeError("ComponentSpec: give a component and path patterns, or catchall=")
        if catchall is not None and not _NAME.match(catchall):
            raise RecipeError(f"ComponentSpec: bad catchall component name {catchall!r}")
        self.component, self.patterns, self.catchall = component, _compile(patterns), catchall


class PackageSpec(_PolicySetting):
    """Put files matching the patterns into another package cooked from this recipe.

    One recipe may make several packages, as in conary: every file a ``PackageSpec``
    pattern matches goes to that package (first match wins, in recipe order), the rest
    to the package named by the recipe. Components are chosen within each package by
    the same rules, so ``foo-server`` gets its own ``:runtime``, ``:config``, ...
    Each package is committed with its own version (the same source and build counts
    as the recipe's package when cooked together), and can be named in groups and in
    other recipes' ``buildRequires`` like any other.

    Example::

        r.PackageSpec('openssh-server', '%(sbindir)s/sshd', '%(sysconfdir)s/ssh/sshd_config')
    """

    def __init__(self, package: str, *patterns: str):
        if not isinstance(package, str) or not _PACKAGE.match(package):
            raise RecipeError(f"PackageSpec: bad package name {package!r}")
        if not patterns:
            raise RecipeError("PackageSpec: give at least one path pattern")
        self.package, self.patterns = package, _compile(patterns)


class Ownership(_PolicySetting):
    """Set the owner and group of matching files (everything is root:root otherwise).

    Example::

        r.Ownership('cvmfs', 'cvmfs', '/var/lib/cvmfs(/.*)?')
    """

    def __init__(self, owner: str, group: str, *patterns: str):
        if not patterns:
            raise RecipeError("Ownership: give at least one path pattern")
        self.owner, self.group, self.patterns = owner, group, _compile(patterns)


class Config(_PolicySetting):
    """Mark matching files as configuration files (in addition to ``%(sysconfdir)s``).

    Configuration files go into the ``:config`` component and are flagged so that a
    system update keeps local changes.

    Example::

        r.Config('/var/lib/appliance/settings.ini')
    """

    def __init__(self, *patterns: str):
        self.patterns = _compile(patterns)


def requirement(text: str, what: str = "Requires") -> tuple[Dependency | None, str | None]:
    """A requirement a recipe wrote, in conary's forms: ``/bin/sh`` (a file),
    ``busybox:runtime`` (a trove), ``soname: libfoo.so`` (a soname of the requiring
    file's ELF class, filled in per file: returned as ``(None, 'libfoo.so')``) or a typed
    dependency ``class: name(flags)``."""
    if not isinstance(text, str) or not text.strip():
        raise RecipeError(f"{what}: a dependency must be a non-empty string, not {text!r}")
    text = text.strip()
    if text.startswith("/"):
        return Dependency(FILE, text), None
    cls, sep, rest = text.partition(":")
    if sep and cls in DEP_CLASSES and (rest.startswith(" ") or cls == FILE.name and rest.startswith("/")):
        rest = rest.strip()
        if cls == SONAME.name and not re.match(r"^ELF(32|64)/", rest):
            if "(" in rest or not rest:
                raise RecipeError(f"{what}: write 'soname: libfoo.so' (the ELF class and machine come from "
                                  f"the file) or the whole 'soname: ELF64/libfoo.so(x86_64)', not {text!r}")
            return None, rest
        try:
            return Dependency.parse(f"{cls}: {rest}"), None
        except Exception as exc:
            raise RecipeError(f"{what}: {exc}") from None
    if _TROVE.match(text) and not text.startswith(":"):
        return Dependency(TROVE, text), None
    if re.match(r"^[A-Za-z0-9+._-]+:[A-Za-z][A-Za-z0-9_-]*\(", text):
        raise RecipeError(f"{what}: {text!r}: capability flags on trove requirements are not supported")
    raise RecipeError(f"{what}: cannot tell what {text!r} requires: write a path ('/bin/sh'), a component "
                      f"('busybox:runtime'), 'soname: libfoo.so' or a typed dependency ('file: /bin/sh')")


class Requires(_PolicySetting):
    """Add a requirement to the components holding matching files, as conary's did.

    ``dep`` is written as in conary: a path (``'/bin/sh'``), a component
    (``'busybox:runtime'``), ``'soname: libfoo.so'`` (the soname of the requiring
    file's own ELF class and machine), or a typed dependency (``'file: /bin/sh'``,
    ``'trove: busybox:runtime'``, ``'soname: ELF64/libfuse3.so.3(x86_64)'``). Without
    patterns it applies to the ``:runtime`` component.

    ``exceptDeps=`` drops requirements found automatically: a regular expression
    matched from the start of ``class: dependency`` (``'soname: ELF64/libGL.*'``), or
    ``('filterexp', 'regexp')`` for the files matching ``filterexp`` only, or a list of
    such pairs. ``exceptions=`` names files whose requirements are not looked for at
    all (files below ``%(docdir)s`` never are: documentation is read, not run).

    Example::

        r.Requires('busybox:runtime', '%(sysconfdir)s/init.d/')
        r.Requires('/bin/sh', '%(libexecdir)s/foo/.*\\.sh')
        r.Requires(exceptDeps='file: /usr/bin/perl')
    """

    def __init__(self, dep: str | None = None, *patterns: str, exceptDeps=None, exceptions=()):
        self.dep = self.soname = None
        if dep is not None:
            self.dep, self.soname = requirement(dep)
        elif patterns:
            raise RecipeError("Requires: name the dependency first")
        self.patterns = _compile(patterns)
        self.exceptDeps = _except_deps(exceptDeps)
        self.exceptions = _compile(exceptions)
        if dep is None and not self.exceptDeps and not self.exceptions:
            raise RecipeError("Requires: give a dependency and path patterns, exceptDeps= or exceptions=")


class Provides(_PolicySetting):
    """Add a provision to the components holding matching files, as conary's did.

    ``'file'`` makes each matching file provide its own path (``file: /path``), so
    that others can require it; ``'soname: libfoo.so'`` provides a soname of the file's
    ELF class and machine (for a library built without one, or a symlink that must
    provide its name); typed ``file:``, ``soname:`` and ``abi:`` provisions are taken
    as written. ``exceptDeps=`` drops provisions found automatically, like
    ``r.Requires(exceptDeps=...)``; ``exceptions=`` names files whose provisions are
    not looked for.

    Example::

        r.Provides('file', '%(datadir)s/dict/words')
        r.Provides('soname: libplugin.so', '%(libdir)s/foo/libplugin.so')
        r.Provides(exceptDeps='soname: ELF64/libprivate.*')
    """

    def __init__(self, dep: str | None = None, *patterns: str, exceptDeps=None, exceptions=()):
        self.dep = self.soname = None
        self.own_path = False
        if dep == "file":
            self.own_path = True
        elif dep is not None:
            d, self.soname = requirement(dep, "Provides")
            if d is not None and not d.kind.provided_by_hand:
                allowed = ", ".join(f"{c.name}:" for c in DEP_CLASSES.values() if c.provided_by_hand)
                raise RecipeError(f"Provides: only 'file', {allowed} may be provided by hand, not {d}")
            self.dep = d
        elif patterns:
            raise RecipeError("Provides: name the provision first")
        self.patterns = _compile(patterns)
        self.exceptDeps = _except_deps(exceptDeps)
        self.exceptions = _compile(exceptions)
        if dep is None and not self.exceptDeps and not self.exceptions:
            raise RecipeError("Provides: give a provision and path patterns, exceptDeps= or exceptions=")


class Strip(_PolicySetting):
    """Control splitting debug information into ``:debuginfo``.

    By default every ELF object is stripped and its debug information is kept under
    ``/usr/lib/debug/PATH.debug`` (linked with ``.gnu_debuglink``), in the
    ``:debuginfo`` component. ``exceptions`` are path patterns to leave alone;
    ``enabled=False`` turns stripping off for the whole recipe.

    Example::

        r.Strip(exceptions=['/boot/.*'])
    """

    def __init__(self, exceptions: tuple | list | str = (), enabled: bool = True):
        self.exceptions, self.enabled = _compile(exceptions), enabled


class EnforceSonameBuildRequirements(_PolicySetting):
    """Tune the check that every shared library a build links is a build requirement.

    After the build, each soname requirement of the new package must be provided by a
    package named in ``buildRequires`` (or by the toolchain's own C and C++ runtime).
    Those that are not are reported with the package that provides them, as conary
    did. ``exceptions`` are soname patterns to ignore; ``fatal=True`` makes a report
    fail the cook.

    Example::

        r.EnforceSonameBuildRequirements(exceptions=['libGL.*'], fatal=True)
    """

    def __init__(self, exceptions: tuple | list = (), fatal: bool = False):
        if isinstance(exceptions, str):
            exceptions = (exceptions,)
        for p in exceptions:
            try:
                re.compile(p)
            except re.error as exc:
                raise RecipeError(f"bad soname pattern {p!r}: {exc}") from None
        self.exceptions, self.fatal = tuple(exceptions), fatal


class RemoveNonPackageFiles(_PolicySetting):
    """Tune the policy that removes files which should not be packaged (on by default).

    As conary's: libtool archives (``.la``), static archives inside Python's
    ``site-packages``, ``perllocal.pod``, ``.packlist``, ``.cvsignore``, ``.orig``
    and ``~`` backup files, emacs lock files (``.#...``), ``rc?.d`` start links under
    ``%(sysconfdir)s``, and anything below ``/tmp/`` or ``/var/tmp/``. ``exceptions``
    are path patterns to keep all the same (``'.*'`` turns the policy off).

    Example::

        r.RemoveNonPackageFiles(exceptions=r'%(libdir)s/libltdl\\.la')
    """

    def __init__(self, exceptions: tuple | list | str = ()):
        self.exceptions = _compile(exceptions)


class NormalizeManPages(_PolicySetting):
    """Tune the policy that normalizes man pages (on by default, as conary's).

    Below ``%(mandir)s``, ``%(x11prefix)s/man`` and ``%(krbprefix)s/man``: pages
    compressed with bzip2 or gzip are uncompressed; the install root's path is removed
    from their text; a page holding only ``.so other.N`` becomes a symlink to it;
    every page is compressed with gzip, reproducibly (maximum compression, no name or
    time stamp, like ``gzip -n -9``) and made mode 0644; symlinks are renamed and
    pointed to the compressed names. ``exceptions`` are path patterns to leave alone
    (``'.*'`` turns the policy off).

    Example::

        r.NormalizeManPages(exceptions='%(mandir)s/man1/keep-me\\.1')
    """

    def __init__(self, exceptions: tuple | list | str = ()):
        self.exceptions = _compile(exceptions)


class NormalizeInfoPages(_PolicySetting):
    """Tune the policy that normalizes info pages (on by default, as conary's).

    The ``%(infodir)s/dir`` index is removed (the system's own is built at install
    time), and every info page in ``%(infodir)s`` is compressed with gzip the
    reproducible way (``gzip -n -9``; bzip2 pages are recompressed). ``exceptions`` are
    path patterns to leave alone: ``r.NormalizeInfoPages(exceptions='%(infodir)s/dir')``
    in the one recipe that owns the index.

    Example::

        r.NormalizeInfoPages(exceptions='%(infodir)s/dir')
    """

    def __init__(self, exceptions: tuple | list | str = ()):
        self.exceptions = _compile(exceptions)
