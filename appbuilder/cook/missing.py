"""Why a build failed when it used something it did not declare, listed all at once.

A build root holds the toolchain group and the recipe's ``buildRequires``, nothing
else, so a build that runs ``perl`` or includes ``<zlib.h>`` without declaring them
fails, as it did under conary. This module reads the failed command's output for the
usual words of shells, make, env, the compiler, the linker and pkg-config, and names
what was missing and the ``buildRequires`` line that would bring it: the trove in the
repository that holds the file, or, when there is none, the Debian package that holds
it on this machine, to import first.

A build stops at its first error, so one failure shows one missing thing; conary listed
every missing build requirement at once. When everything the failure names has a
provider in the repository, the cook runs the build again in a scratch work directory
with those providers added to the build root (:func:`probe`; nothing is committed), reads
what that build missed in turn, and so on for up to :data:`PROBE_ROUNDS` rounds: the
error then lists every missing requirement and the whole ``buildRequires`` line, and
says whether the build got through with them.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from appbuilder.core.arch import BUILD_ARCH, Arch
from appbuilder.recipe.loader import RecipeFile
from appbuilder.repository.repo import Repository

TAIL_BYTES = 64 << 10
PROBE_ROUNDS = 4  # builds run again to find what else is missing, at most
BIN_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin")
_Q = "['\u2018\u2019\"]?"  # quotes around a name: none, ASCII or the UTF-8 locale's

COMMAND = [
    re.compile(r"^(?:/bin/)?(?:ba|da)?sh: (?:\d+: |line \d+: )?(?P<name>[^\s:]+): (?:not found|command not found)"),
    re.compile(r"^(?:/usr/bin/)?env: " + _Q + r"(?P<name>[^'\u2018\u2019\"\s]+)" + _Q + r": No such file or directory"),
    re.compile(r"^make(?:\[\d+\])?: (?P<name>[^\s:*]+): (?:No such file or directory|Command not found)"),
    re.compile(r"^bwrap: execvp (?P<name>\S+): No such file or directory"),
]
HEADER = re.compile(r"fatal error: (?P<name>[\w./+-]+\.h(?:h|pp|xx)?): No such file or directory")
LIBRARY = re.compile(r"cannot find -l(?P<name>[\w.+-]+)")
PKGCONFIG = [
    re.compile(r"Package (?P<name>[\w.+-]+) was not found in the pkg-config search path"),
    re.compile(r"Package '(?P<name>[\w.+-]+)'(?:, required by '[^']*')?, not found"),
]


@dataclass(frozen=True)
class Missing:
    kind: str  # command, header, library, pkg-config module
    name: str
    paths: tuple[str, ...]  # where the build root would have had it

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}"


@dataclass(frozen=True)
class Finding:
    """One missing thing and what would bring it."""

    missing: Missing
    provider: str | None  # the buildRequires entry: a trove of the repository holding it
    host: str | None  # else the Debian package holding it on this machine (to import first)


# what a retried build reports: None when it got through, else what it missed ([] when
# it failed for a reason this module does not recognise)
Retry = Callable[[list[str]], "list[Missing] | None"]


def failed_output(log_path: str | Path) -> str:
    """The output of the last command in the build log (what failed)."""
    with open(log_path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - TAIL_BYTES))
        text = f.read().decode(errors="replace")
    last = text.rfind("\n+ ")
    return text[last + 1:] if last >= 0 else text


def find_missing(output: str, arch: Arch, libdir: str) -> list[Missing]:
    """What the failed command's *output* says it could not find, in order, once each."""
    found: dict[tuple[str, str], Missing] = {}
    for line in output.splitlines():
        line = line.strip()
        for regex in COMMAND:
            if m := regex.search(line):
                name = m.group("name")
                paths = (name,) if name.startswith("/") else tuple(f"{d}/{name}" for d in BIN_DIRS)
                found.setdefault(("command", name), Missing("command", name, paths))
        if m := HEADER.search(line):
            name = m.group("name")
            paths = (f"/usr/include/{name}", f"/usr/include/{arch.multiarch}/{name}")
            found.setdefault(("header", name), Missing("header", name, paths))
        if m := LIBRARY.search(line):
            name = m.group("name")
            dirs = dict.fromkeys([libdir, *arch.multiarch_libdirs, "/usr/lib", "/lib"])
            paths = tuple(f"{d}/lib{name}.{ext}" for d in dirs for ext in ("so", "a"))
            found.setdefault(("library", name), Missing("library", f"-l{name}", paths))
        for regex in PKGCONFIG:
            if m := regex.search(line):
                name = m.group("name")
                dirs = dict.fromkeys([libdir, *arch.multiarch_libdirs[1:], "/usr/lib", "/usr/share"])
                paths = tuple(f"{d}/pkgconfig/{name}.pc" for d in dirs)
                found.setdefault(("pkg-config module", name), Missing("pkg-config module", name, paths))
    return list(found.values())


def missing_in_log(log_path: str | Path, arch: Arch, libdir: str) -> list[Missing]:
    """What the failed build logged at *log_path* could not find ([] when the log is unreadable)."""
    try:
        return find_missing(failed_output(log_path), arch, libdir)
    except OSError:
        return []


def look_up(missing: list[Missing], repo: Repository, arch: Arch) -> list[Finding]:
    """Each missing thing with the trove that provides it, or the host package that holds it."""
    found = []
    for m in missing:
        provider = _provider(repo, m, arch)
        found.append(Finding(m, provider, None if provider else _host_package(m.paths)))
    return found


def probe(first: list[Finding], retry: Retry, find: Callable[[list[Missing]], list[Finding]],
          rounds: int = PROBE_ROUNDS) -> tuple[list[Finding], str | None]:
    """Every missing requirement, by building again with the providers found so far.

    *retry* runs the build with extra build requirements (nothing committed) and says what
    it missed; *find* looks new ones up. Probing stops when the build gets through, fails
    for another reason, misses something without a provider in the repository, misses
    again what was added, or after *rounds* builds. Returns the findings, in the order the
    builds met them, and a sentence saying how the probing ended (None when it did not run).
    """
    findings = list(first)
    if not findings or any(f.provider is None for f in findings):
        return findings, None
    for done in range(1, rounds + 1):
        added = list(dict.fromkeys(f.provider for f in findings if f.provider))
        result = retry(added)
        with_them = f"with {', '.join(added)} added, a trial build in a scratch build root"
        if result is None:
            return findings, f"{with_them} got through: these are all it lacks"
        known = {f.missing for f in findings}
        again = [m for m in result if m in known]
        new = find([m for m in result if m not in known])
        if again:
            return findings, f"{with_them} still missed {', '.join(map(str, again))}: check what those troves hold"
        if not new:
            return findings, f"{with_them} failed for another reason (cook with the requirements added to see it)"
        findings += new
        lacking = [str(f.missing) for f in new if f.provider is None]
        if lacking:
            return findings, (f"{with_them} also missed the {', '.join(lacking)}, which nothing in the repository "
                              "provides: there may be more once that is there")
        if done == rounds:
            return findings, f"stopped after {rounds} trial builds: there may be more"
    return findings, None


def explain(findings: list[Finding], rf: RecipeFile, arch: Arch, ended: str | None = None) -> str | None:
    """A paragraph naming everything the failed build missed and the ``buildRequires`` to declare."""
    if not findings:
        return None
    lines = [f"{len(findings)} things the build needs are not in its build root:"] if len(findings) > 1 else []
    additions: list[str] = []
    for f in findings:
        m = f.missing
        if f.provider:
            lines.append(f"the build needs the {m}, which is not in its build root: {f.provider} provides it")
            additions.append(f.provider)
        else:
            where = f.host
            how = (f"on this machine it comes with the Debian package {where}: 'appbuild import deb {where}"
                   f"{'' if m.kind == 'command' or arch.debian == 'amd64' else ':' + arch.debian}', then"
                   if where else "cook or import what provides it, then")
            lines.append(f"the build needs the {m}, which is not in its build root, and nothing in the "
                         f"repository provides it ({', '.join(m.paths[:2])}...): {how} declare it")
            if where:
                additions.append(where)
    if ended:
        lines.append(ended)
    if additions:
        wanted = list(dict.fromkeys([*rf.build_requires, *additions]))
        lines.append(f"add to {rf.path}: buildRequires = {wanted!r}")
    lines.append("(a build root holds only the toolchain group and the recipe's buildRequires)")
    return "\n".join(lines)


def explain_missing(log_path: str | Path, repo: Repository, arch: Arch, rf: RecipeFile, libdir: str,
                    retry: Retry | None = None) -> str | None:
    """A paragraph naming what the failed build missed and how to declare it, or None.

    With *retry*, the build is tried again with the providers found (see :func:`probe`) so
    that every missing requirement is named at once.
    """
    first = look_up(missing_in_log(log_path, arch, libdir), repo, arch)
    ended = None
    if retry is not None:
        first, ended = probe(first, retry, lambda ms: look_up(ms, repo, arch))
    return explain(first, rf, arch, ended)


def _provider(repo: Repository, m: Missing, arch: Arch) -> str | None:
    """The buildRequires entry that brings *m*: a trove holding one of its paths."""
    run_arch = BUILD_ARCH if m.kind == "command" else arch.name  # commands run on the build machine
    for path in m.paths:
        owners = [n for n in repo.owners(path) if n.flavor.installable_on(run_arch)]
        if owners:
            owner = owners[-1]
            if m.kind in ("header", "library", "pkg-config module") and ":" in owner.name:
                return owner.name if owner.name.endswith(":devel") else owner.package
            return owner.package
    return None


def _host_package(paths: tuple[str, ...]) -> str | None:
    """The Debian package holding one of *paths* on this machine (a hint only)."""
    for path in paths:
        try:
            proc = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode == 0 and proc.stdout:
            first = proc.stdout.splitlines()[0]
            if not first.startswith("diversion"):
                return first.split(":", 1)[0].split(",", 1)[0].strip()
    return None
