"""Policy settings: how a recipe tunes the policies that turn its install root into troves.

After the build, policies run over the install root in a fixed order (strip debug
information, classify files into components, mark configuration files, set owners,
find provides and requires, check build requirements). These calls adjust them; they
take effect whenever in ``setup()`` they appear. Path patterns are regular
expressions matched against the whole installed path, after macro expansion.
"""

from __future__ import annotations

import re

from appbuilder.core.errors import RecipeError
from appbuilder.recipe.actions import POLICY, Action
from appbuilder.repository.deps import DEP_CLASSES, Dependency


def _compile(patterns) -> tuple[str, ...]:
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise RecipeError(f"bad path pattern {p!r}: {exc}") from None
    return tuple(patterns)


class _PolicySetting(Action):
    phase = POLICY

    def do(self, ctx) -> None:  # settings are read by the policies, not run
        pass


class ComponentSpec(_PolicySetting):
    """Put files matching the patterns into ``component`` (before the default rules).

    The default rules, first match wins: ``:debuginfo`` (``/usr/lib/debug``,
    ``/usr/src/debug``), ``:devel`` (headers, static libraries, ``.so`` symlinks,
    pkg-config files, man pages of sections 2 and 3), ``:doc`` (man, info and doc
    directories), ``:config`` (non-executable files under ``%(sysconfdir)s``),
    ``:lib`` (anything under a ``lib``, ``lib64`` or multiarch library directory),
    ``:data`` (the rest of ``%(datadir)s``), and ``:runtime`` for everything else.

    Example::

        r.ComponentSpec('runtime', '%(libdir)s/appliance/.*')
    """

    def __init__(self, component: str, *patterns: str):
        if not re.match(r"^[a-z][a-z0-9_-]*$", component):
            raise RecipeError(f"ComponentSpec: bad component name {component!r}")
        if not patterns:
            raise RecipeError("ComponentSpec: give at least one path pattern")
        self.component, self.patterns = component, _compile(patterns)


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


class Requires(_PolicySetting):
    """Add a requirement to the components holding matching files.

    ``dep`` is a typed dependency (``trove: busybox:runtime``, ``file: /bin/sh``,
    ``soname: ELF64/libfuse3.so.3(x86_64)``). Without patterns it applies to the
    ``:runtime`` component.

    Example::

        r.Requires('file: /bin/sh', '%(sysconfdir)s/init.d/.*')
    """

    def __init__(self, dep: str, *patterns: str):
        self.dep, self.patterns = Dependency.parse(dep), _compile(patterns)


class Provides(_PolicySetting):
    """Add a provision to the components holding matching files.

    Only ``file:``, ``soname:`` and ``abi:`` provisions may be added by hand.

    Example::

        r.Provides('soname: ELF64/libplugin.so(x86_64)', '%(libdir)s/plugins/libplugin.so')
    """

    def __init__(self, dep: str, *patterns: str):
        d = Dependency.parse(dep)
        if not d.kind.provided_by_hand:
            allowed = ", ".join(f"{c.name}:" for c in DEP_CLASSES.values() if c.provided_by_hand)
            raise RecipeError(f"Provides: only {allowed} may be provided by hand, not {d}")
        self.dep, self.patterns = d, _compile(patterns)


class Strip(_PolicySetting):
    """Control splitting debug information into ``:debuginfo``.

    By default every ELF object is stripped and its debug information is kept under
    ``/usr/lib/debug/PATH.debug`` (linked with ``.gnu_debuglink``), in the
    ``:debuginfo`` component. ``exceptions`` are path patterns to leave alone;
    ``enabled=False`` turns stripping off for the whole recipe.

    Example::

        r.Strip(exceptions=['/boot/.*'])
    """

    def __init__(self, exceptions: tuple | list = (), enabled: bool = True):
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
        self.exceptions, self.fatal = _compile(exceptions), fatal
