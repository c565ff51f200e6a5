"""Package scripts at image time: DEB maintainer scripts and RPM scriptlets, without root.

Capsules are staged as their files only; for a group with ``packageScripts = True`` the
packages' own scripts then finish the installation inside the staged root, as dpkg or
rpm would have on a real machine: users and groups (``adduser --system messagebus``),
owners and modes (``chown``, ``dpkg-statoverride``), alternatives, caches, the dpkg
status ``install ok installed``.

**Confinement.** Every script runs in the sandbox (:mod:`appbuilder.core.sandbox`) with
the staged root bound writable as ``/``, in a user namespace mapping ids ``0..65535`` to
the host range ``100000..`` (:class:`~appbuilder.core.userns.MappedUserNamespace`): root
inside is never root on the host, and a file a script gives to uid 100 is owned by host
uid 100100. appbuild runs as root for this: it sets up the range and the staged root's
owners from outside (for another user the namespace could come from its ``/etc/subuid``
range through newuidmap; that path is not finished). Inside, a script has only
CAP_CHOWN, CAP_FOWNER, CAP_DAC_OVERRIDE, CAP_FSETID, CAP_SETUID and CAP_SETGID; no
network, the group's hostname, a fixed environment (``SOURCE_DATE_EPOCH``, ``TZ=UTC``,
``PERL_HASH_SEED=0``, ``PYTHONHASHSEED=0``, ``DEBIAN_FRONTEND=noninteractive``,
``INITRD=No``: appbuild makes the initramfs), no new user namespaces, a time limit per
script (setting ``scripts.timeout``). ``/usr/sbin/policy-rc.d`` (exit 101) keeps services
from being started while it runs. ``ischroot`` answers yes (a stand-in in ``/.appbuild-bin``,
first in ``PATH``): the scripts install into an image, not into the running system, as in
the chroot of debootstrap or apt; the sandbox's own PID namespace would otherwise make it
answer no, and scripts then act on the running system: libc6's ``postinst`` asks init to
re-execute and sleeps a second, initramfs-tools' ``resume`` hook reads the build host's
``/proc/swaps``.

**DEB.** The dpkg database is written as dpkg leaves it after unpacking
(``install ok unpacked``, maintainer scripts in ``/var/lib/dpkg/info``, conffiles as
``PATH.dpkg-new``; :mod:`appbuilder.capsule.dpkgdb`). Each ``preinst install`` runs, then
the image's own dpkg configures them all in one run (``dpkg --configure --no-triggers
PKG...``, reading its database once), in dependency order (Pre-Depends and Depends, first
present alternative); its ``Setting up PKG`` lines split the output and the time by package,
restart the time limit, and name the package of a failure or a hang; then the triggers
activated while they were configured run with ``dpkg --triggers-only --pending``. File
triggers of the members' own paths are not activated: every member was unpacked before
any was configured, and dpkg's rule (its triggers spec: an unpacked package never has
pending triggers) is that a package's ``postinst configure`` does what its triggers would
(``udev`` updates the hwdb, ``systemd`` the catalog), as when ``dpkg --unpack`` of them all
is followed by ``dpkg --configure -a``. A closure without dpkg is an error.

**RPM.** appbuild runs the scriptlets itself, in the order librpm gives the transaction
(``ts.order()``): every ``%pretrans``; per package ``%pre 1``, ``%post 1``, then the
``%triggerin`` scripts the install fires (of this package on packages installed before
it, and of earlier packages on it) and ``%filetriggerin`` (matching paths on stdin); at
the end ``%transfiletriggerin`` and every ``%posttrans``. Each scriptlet runs with the
interpreter its header names (``/bin/sh`` by default), inside the sandbox. Lua
scriptlets (``<lua>``) are refused with an error naming the package and the scriptlet:
running them needs librpm's own interpreter (deferred). The RPM database is registered
as before (justdb): it holds the packages as installed; their scriptlets have run.

**Afterwards.** Machine-specific or time-dependent leftovers are normalised: an empty
``/etc/machine-id`` (``/var/lib/dbus/machine-id`` a link to it), no ``/var/lib/systemd/random-seed``, no dpkg or alternatives logs,
no ``*-old`` database backups, no ldconfig ``aux-cache``; extended attributes (ACLs) a script
set are dropped (on the host they name host ids; systemd-tmpfiles sets the journal's
ACLs again at boot), and the log says where. What the scripts left is read
back into the staged root's :class:`~appbuilder.assemble.rootfs.ImageEntry` table:
owners (host id minus the range's base), modes, new files, deleted files; times are
clamped to SOURCE_DATE_EPOCH. Each script's output goes to the build log under an
``== PACKAGE SCRIPT ==`` header; a failing script raises :class:`ScriptError` naming the
package, the script and its exit status (or the time limit), with its last lines.

**Cache.** The scripts' effect is a function of the staged root they start from. With a
*cache* directory, the run's delta (new and changed paths with their metadata, contents
kept in the content store; deleted paths) is recorded under a key made of the whole
starting tree (every path's type, mode, owner, time and content digest), the packages'
control archives and RPM headers (where the scripts come from), the hostname,
SOURCE_DATE_EPOCH and :data:`RUNNER_VERSION`; the next build from the same tree applies it
instead of running anything, and gets the same tree (a delta whose contents were swept
from the store is a miss).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from appbuilder.assemble.rootfs import ImageEntry, StagedRoot, file_state
from appbuilder.capsule.deb import parse_control
from appbuilder.capsule.dpkgdb import configured_by_dpkg, control_members, deb_capsules, info_name
from appbuilder.capsule.rpmdb import rpm_capsules
from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import remove_tree
from appbuilder.core.sandbox import BASE_PATH, Sandbox, TimeLimitExceeded
from appbuilder.core.userns import MappedUserNamespace
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import Trove

RUNNER_VERSION = "3"  # part of the cache key: change it when what a run produces changes
CLOCK_TICK = 0.02  # longer than the file system clock's step (a jiffy at HZ=100 is 10 ms)
SCRIPT_CAPS = ("CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_SETUID", "CAP_SETGID")
POLICY_RC_D = "/usr/sbin/policy-rc.d"
STAND_INS = "/.appbuild-bin"  # first in the scripts' PATH while they run, removed afterwards
# programs answering for the build, not the build host: ischroot says "a chroot" (exit 0)
STAND_IN_PROGRAMS = {"ischroot": "#!/bin/sh\n# appbuild: package scripts install into an image, not the running system\nexit 0\n"}
SCRATCH = "/.appbuild-script"  # a scriptlet's body or stdin, written into the root for one run
TAIL_LINES = 15
# left by scripts, different on every run: emptied, or removed
EMPTIED = ("/etc/machine-id",)
REMOVED = ("/var/lib/systemd/random-seed", "/var/log/dpkg.log", "/var/log/alternatives.log",
           "/var/cache/ldconfig/aux-cache", "/var/log/apt/history.log", "/var/log/apt/term.log")
OLD_IN = ("/var/lib/dpkg", "/var/cache/debconf", "/etc")  # *-old backups there are dropped
# random ids a script made in place of the machine's: a link to /etc/machine-id (set at first boot)
MACHINE_ID_LINKS = ("/var/lib/dbus/machine-id",)
# where the sandbox mounts its own file systems: made in the root if missing, removed again if left empty
MOUNT_POINTS = ("/dev", "/proc", "/tmp", "/var/tmp", "/run")


class ScriptError(AppbuildError):
    """A package script failed or passed its time limit (names the package and the script)."""


@dataclass
class ScriptReport:
    """What ran: (package, script, seconds) in order, and every script's output."""

    ran: list[tuple[str, str, float]] = field(default_factory=list)
    log: str = ""
    cached: bool = False  # the delta of an earlier identical run was applied; nothing ran


def run_package_scripts(repo: Repository, troves: list[Trove], staged: StagedRoot, *, hostname: str,
                        source_date_epoch: int, timeout: float,
                        log: Callable[[str], None] | None = None, cache: Path | None = None) -> ScriptReport:
    """Run the maintainer scripts / scriptlets of the DEB and RPM capsules among *troves* in
    *staged* (see the module's docstring); *staged.entries* then describes what they left.
    *cache*: a directory where runs' deltas are kept (see **Cache** above)."""
    debs, rpms = deb_capsules(troves), rpm_capsules(troves)
    report = ScriptReport()
    if not debs and not rpms:
        return report
    before = _snapshot(staged) if cache is not None else None
    scripts_from = sorted(t.info["deb_control_blob"] for t in debs) + sorted(t.info["rpm_header_blob"] for t in rpms)
    key = _cache_key(before, hostname, source_date_epoch, scripts_from) if before is not None else ""
    if cache is not None and _apply_cached(repo, staged, Path(cache) / f"{key}.json"):
        report.cached = True
        report.log = f"== package scripts: applied the recorded result of an identical run ({key[:16]}) ==\n"
        if log:
            log(report.log.rstrip("\n"))
        return report
    _run(repo, debs, rpms, staged, hostname, source_date_epoch, timeout, report, log)
    if report.ran:
        line = summary(report)
        report.log += line + "\n"
        if log:
            log(line)
    if cache is not None:
        _record_delta(repo, staged, before, Path(cache) / f"{key}.json")
    return report


def summary(report: ScriptReport, slowest: int = 8) -> str:
    """One line for the build log: how many scripts ran, their time, and the slowest."""
    total = sum(seconds for _, _, seconds in report.ran)
    top = sorted(report.ran, key=lambda r: -r[2])[:slowest]
    return (f"== package scripts: {len(report.ran)} in {total:.1f} s; slowest: "
            + ", ".join(f"{p} {s} {sec:.2f} s" for p, s, sec in top) + " ==")


def _run(repo: Repository, debs: list[Trove], rpms: list[Trove], staged: StagedRoot, hostname: str,
         source_date_epoch: int, timeout: float, report: ScriptReport, log: Callable[[str], None] | None) -> None:
    if os.geteuid() != 0:
        raise ScriptError("package scripts (packageScripts) need appbuild to run as root for now: the staged root's "
                          "owners are set in the id range from outside the namespace (deferred for other users)")
    with MappedUserNamespace() as ns, _reachable(staged.directory, ns.host_uid(), ns.host_gid()) as root:
        runner = _Runner(root, ns, hostname, source_date_epoch, timeout, report, log)
        made = sorted({str(p) for m in MOUNT_POINTS for p in [PurePosixPath(m), *PurePosixPath(m).parents]
                       if str(p) != "/" and not os.path.lexists(_host(root, str(p)))}, reverse=True)
        _prepare(root, staged, ns)
        policy = _add_policy(root, ns)
        stand_ins = _add_stand_ins(root, ns)
        if stand_ins:
            runner.env["PATH"] = f"{STAND_INS}:{runner.env['PATH']}"
        try:
            if debs:
                _deb_phase(repo, debs, runner, staged)
            if rpms:
                _rpm_phase(repo, rpms, runner, staged)
        finally:
            runner.clean()
            if policy:
                os.unlink(root / POLICY_RC_D.lstrip("/"))
            if stand_ins:
                remove_tree(_host(root, STAND_INS))  # a script may have changed it: whatever is there goes
            for path in made:  # deepest first: /var/tmp before /var
                host = _host(root, path)
                if os.path.isdir(host) and not os.path.islink(host) and not os.listdir(host):
                    os.rmdir(host)
            _normalise(root)
            dropped = _harvest(root, staged, ns, source_date_epoch)
            if dropped:
                note = (f"== appbuild: extended attributes (ACLs) the scripts set were dropped from {len(dropped)} "
                        f"paths: {', '.join(dropped[:10])} ==\n")
                report.log += note
                if log:
                    log(note.rstrip("\n"))


# ------------------------------------------------------------------ the cache of runs

Snapshot = dict[str, tuple]  # path -> (type, mode, uid, gid, mtime, rdev, content digest or link target)


def _snapshot(staged: StagedRoot) -> Snapshot:
    """Every entry of *staged* with what its path holds on the host."""
    out: Snapshot = {}
    base = str(staged.directory)
    for path, e in staged.entries.items():
        what = ""
        if e.type in ("file", "symlink"):
            host = base + path
            try:
                st = os.lstat(host)
            except OSError:  # not there (any more): nothing to name
                st = None
            if st is not None and e.type == "symlink" and stat.S_ISLNK(st.st_mode):
                what = os.readlink(host)
            elif st is not None and e.type == "file" and stat.S_ISREG(st.st_mode):
                known = staged.known.get(path)  # written by staging, unchanged since: not read again
                if known is not None and file_state(st) == known[1]:
                    what = known[0]
                else:
                    with open(host, "rb") as f:
                        what = hashlib.file_digest(f, "sha256").hexdigest()
        out[path] = (e.type, e.mode, e.uid, e.gid, e.mtime, e.rdev, what)
    return out


def _cache_key(before: Snapshot, hostname: str, sde: int, scripts_from: list[str]) -> str:
    h = hashlib.sha256(json.dumps([RUNNER_VERSION, hostname, sde, scripts_from]).encode())
    for path in sorted(before):
        h.update(json.dumps([path, *before[path]]).encode() + b"\n")
    return h.hexdigest()


def _record_delta(repo: Repository, staged: StagedRoot, before: Snapshot, where: Path) -> None:
    after = _snapshot(staged)
    inodes: dict[tuple[int, int], str] = {}
    for path in sorted(p for p, v in after.items() if v[0] == "file"):
        st = os.lstat(_host(staged.directory, path))
        if st.st_nlink > 1:
            inodes.setdefault((st.st_dev, st.st_ino), path)
    changed = []
    for path in sorted(p for p in after if before.get(p) != after[p]):
        kind, what = after[path][0], after[path][6]
        link = ""
        if kind == "file":
            host = _host(staged.directory, path)
            st = os.lstat(host)
            first = inodes.get((st.st_dev, st.st_ino), path) if st.st_nlink > 1 else path
            if first != path:
                link = first
            else:
                repo.store.put_file(host, what)
        changed.append([path, *after[path], link])
    delta = {"runner": RUNNER_VERSION, "set": changed, "delete": sorted(p for p in before if p not in after)}
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.with_name(f".{where.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(delta))
    os.replace(tmp, where)


def _apply_cached(repo: Repository, staged: StagedRoot, where: Path) -> bool:
    """Apply the delta recorded at *where*; False when there is none (or its contents are gone)."""
    try:
        delta = json.loads(where.read_text())
    except (OSError, ValueError):
        return False
    if delta.get("runner") != RUNNER_VERSION or not all(
            repo.store.has(item[7]) for item in delta["set"] if item[1] == "file" and not item[8]):
        return False
    root = staged.directory
    for path in sorted(delta["delete"], reverse=True):
        host = _host(root, path)
        if os.path.isdir(host) and not os.path.islink(host):
            shutil.rmtree(host)
        elif os.path.lexists(host):
            os.unlink(host)
        staged.entries.pop(path, None)
    for path, kind, mode, uid, gid, mtime, rdev, what, link in delta["set"]:
        host = _host(root, path)
        if kind == "dir":
            if os.path.lexists(host) and (os.path.islink(host) or not os.path.isdir(host)):
                os.unlink(host)
            if not os.path.isdir(host):
                os.mkdir(host, 0o755)
        else:
            if os.path.isdir(host) and not os.path.islink(host):
                shutil.rmtree(host)
            elif os.path.lexists(host):
                os.unlink(host)
            if kind == "file" and link:
                os.link(_host(root, link), host, follow_symlinks=False)
            elif kind == "file":
                repo.store.copy_to(what, host)
            elif kind == "symlink":
                os.symlink(what, host)
            elif kind == "fifo":
                os.mkfifo(host)
        staged.add(ImageEntry(path, kind, mode, uid, gid, mtime, rdev))
    return True


# ------------------------------------------------------------------ running one script


class _Runner:
    def __init__(self, root: Path, ns: MappedUserNamespace, hostname: str, sde: int, timeout: float,
                 report: ScriptReport, log: Callable[[str], None] | None):
        self.root, self.ns, self.timeout, self.report, self.log = root, ns, timeout, report, log
        self.sandbox = Sandbox(root, hostname=hostname, timeout=timeout, userns=ns, writable_root=True,
                               caps=SCRIPT_CAPS)
        self.env = {
            "PATH": BASE_PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh",
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "TERM": "dumb",
            "SOURCE_DATE_EPOCH": str(sde), "PERL_HASH_SEED": "0", "PERL_PERTURB_KEYS": "0",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
            "DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true",
            # appbuild makes the image's initramfs itself: the kernel's postinst hooks make none
            "INITRD": "No",
        }
        self.scratch: list[Path] = []

    def put(self, name: str, data: bytes, mode: int = 0o700) -> str:
        """Write *data* into the root for the next run; returns its path inside."""
        inside = f"{SCRATCH}-{name}"
        host = self.root / inside.lstrip("/")
        host.write_bytes(data)
        os.chown(host, self.ns.host_uid(), self.ns.host_gid())
        os.chmod(host, mode)
        self.scratch.append(host)
        return inside

    def clean(self) -> None:
        for host in self.scratch:
            host.unlink(missing_ok=True)
        self.scratch.clear()

    def run(self, package: str, script: str, argv: list[str], *, env: dict[str, str] | None = None,
            stdin: bytes | None = None) -> None:
        """Run *argv* in the root as *package*'s *script*; a failure raises ScriptError."""
        header = f"== {package} {script} ==\n"
        out = io.BytesIO()
        start = time.monotonic()
        given = None
        if stdin is not None:  # a file of our own, not in the root
            given = tempfile.TemporaryFile()
            given.write(stdin)
            given.seek(0)
        try:
            status = self.sandbox.run(argv, cwd="/", env={**self.env, **(env or {})}, log=out,
                                      stdin=None if given is None else given.fileno())
        except TimeLimitExceeded:
            text = out.getvalue().decode(errors="replace")
            self._record(package, script, header + text + f"(stopped after {self.timeout:g} s)\n", start)
            raise ScriptError(f"{package} {script} timed out after {self.timeout:g} s (the time limit of one "
                              f"package script: setting scripts.timeout){_tail(text)}") from None
        finally:
            self.clean()
            if given is not None:
                given.close()
        text = out.getvalue().decode(errors="replace")
        self._record(package, script, header + text + ("" if status == 0 else f"(exit status {status})\n"), start)
        if status != 0:
            raise ScriptError(f"{package} {script} failed (exit {status}){_tail(text)}")

    def run_steps(self, script: str, argv: list[str], step: re.Pattern[bytes], failed: re.Pattern[str]) -> None:
        """Run *argv*, one program doing a *script* for many packages (``dpkg --configure P1 P2
        ...``): each output line matching *step* starts the next package (group 1 names it) and
        its time limit; what follows is that package's output and run time. A nonzero exit names
        the package *failed* finds in the output (group 1: package, group 2: exit status), or
        the one running last."""
        steps: list[tuple[str, float, list[bytes]]] = [("dpkg", time.monotonic(), [])]

        def seen(line: bytes) -> None:
            m = step.match(line)
            if m:
                steps.append((m.group(1).decode(errors="replace").split(":")[0], time.monotonic(), []))
            steps[-1][2].append(line)

        def record(last_status: int | None = None, timed_out: bool = False) -> None:
            for i, (package, started, lines) in enumerate(steps):
                if i == 0 and not lines:
                    continue
                ended = steps[i + 1][1] if i + 1 < len(steps) else time.monotonic()
                text = b"".join(lines).decode(errors="replace")
                tail = ""
                if i == len(steps) - 1 and timed_out:
                    tail = f"(stopped after {self.timeout:g} s)\n"
                elif i == len(steps) - 1 and last_status:
                    tail = f"(exit status {last_status})\n"
                self._record(package, script if i else "dpkg", f"== {package} {script if i else 'dpkg'} ==\n"
                             + text + tail, started, ended - started)

        try:
            status = self.sandbox.run(argv, cwd="/", env=self.env, log=io.BytesIO(), echo=seen, step=step)
        except TimeLimitExceeded:
            record(timed_out=True)
            package, _, lines = steps[-1]
            raise ScriptError(f"{package} {script} timed out after {self.timeout:g} s (the time limit of one "
                              f"package script: setting scripts.timeout)"
                              f"{_tail(b''.join(lines).decode(errors='replace'))}") from None
        finally:
            self.clean()
        record(status)
        if status != 0:
            text = b"".join(line for _, _, lines in steps for line in lines).decode(errors="replace")
            m = failed.search(text)
            package, code = (m.group(1).split(":")[0], m.group(2)) if m else (steps[-1][0], str(status))
            own = next((b"".join(lines).decode(errors="replace") for p, _, lines in reversed(steps) if p == package),
                       text)
            raise ScriptError(f"{package} {script} failed (exit {code}){_tail(own)}")

    def _record(self, package: str, script: str, text: str, start: float, seconds: float | None = None) -> None:
        self.report.ran.append((package, script, round(time.monotonic() - start if seconds is None else seconds, 3)))
        self.report.log += text
        if self.log:
            self.log(text.rstrip("\n"))


def _tail(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()][-TAIL_LINES:]
    return (":\n  " + "\n  ".join(lines)) if lines else ""


# ------------------------------------------------------------------ the root before and after


def _exists(root: Path, path: str) -> bool:
    """*path* exists in *root* (through the root's own symlinks, e.g. a merged /usr)."""
    host = root
    for part in PurePosixPath(path).parts[1:]:
        host = host / part
        for _ in range(40):
            if not host.is_symlink():
                break
            target = os.readlink(host)
            host = (root / target.lstrip("/")) if target.startswith("/") else host.parent / target
    return host.exists()


def _searchable(path: Path, uid: int, gid: int) -> bool:
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


@contextmanager
def _reachable(directory: Path, uid: int, gid: int) -> Iterator[Path]:
    """*directory*, or for the run a place the namespace's owner (host *uid*) can reach it at:
    bwrap runs as that user and opens the root by its path, so a directory under a private
    one (mode 0700) is moved for the run into a directory only traversable by others."""
    directory = Path(os.path.realpath(directory))
    ancestors = list(reversed(directory.parents))
    reachable = Path("/")
    for a in ancestors:
        if not _searchable(a, uid, gid):
            break
        reachable = a
    else:
        yield directory
        return
    bridge = Path(tempfile.mkdtemp(prefix=".appbuild-scripts-", dir=reachable))
    os.chmod(bridge, 0o711)
    target = bridge / "root"
    try:
        os.rename(directory, target)
    except OSError as e:
        os.rmdir(bridge)
        if e.errno == errno.EXDEV:
            raise ScriptError(f"the staged root {directory} is not reachable for the package-script user (host uid "
                              f"{uid}) and cannot be moved next to {reachable}: build in a directory others may "
                              f"traverse") from None
        raise
    try:
        yield target
    finally:
        os.rename(target, directory)
        os.rmdir(bridge)


def _host(root: Path, path: str) -> Path:
    return root.joinpath(*PurePosixPath(path).parts[1:]) if path != "/" else root


def _prepare(root: Path, staged: StagedRoot, ns: MappedUserNamespace) -> None:
    """Give every staged path its image owner (in the namespace's range), mode and time.

    The contents staging wrote and knows (``staged.known``) stay known: each file's state is
    taken again after its owner and mode are set, and the clock is let pass a tick at the
    end, so whatever a script then writes has a later change time than any state taken here."""
    base = str(root)
    for entry in sorted(staged.entries.values(), key=lambda e: e.path):
        if entry.type in ("char", "block"):
            continue
        host = base + entry.path if entry.path != "/" else base
        try:
            st = os.lstat(host)
        except OSError:  # not there (any more)
            continue
        known = staged.known.get(entry.path) if entry.type == "file" else None
        digest = known[0] if known is not None and file_state(st) == known[1] else None
        os.lchown(host, ns.host_uid(entry.uid), ns.host_gid(entry.gid))
        if entry.type != "symlink":
            os.chmod(host, stat.S_IMODE(entry.mode))
        os.utime(host, (entry.mtime, entry.mtime), follow_symlinks=False)
        if digest is not None:
            staged.known[entry.path] = (digest, file_state(os.lstat(host)))
        else:
            staged.known.pop(entry.path, None)
    time.sleep(CLOCK_TICK)
    # anything staged without an entry yet (the caller records those first): root's
    for dirpath, dirnames, filenames in os.walk(base):
        inside = dirpath[len(base):]
        for name in dirnames + filenames:
            if f"{inside}/{name}" in staged.entries:
                continue  # given its owner above
            host = os.path.join(dirpath, name)
            if ns.inside_uid(os.lstat(host).st_uid) is None:
                os.lchown(host, ns.host_uid(), ns.host_gid())


def _add_policy(root: Path, ns: MappedUserNamespace) -> bool:
    host = _host(root, POLICY_RC_D)
    if not os.path.isdir(host.parent) or os.path.islink(host.parent) or os.path.lexists(host):
        return False
    host.write_text("#!/bin/sh\n# appbuild: no service is started while package scripts run\nexit 101\n")
    os.chmod(host, 0o755)
    os.lchown(host, ns.host_uid(), ns.host_gid())
    return True


def _add_stand_ins(root: Path, ns: MappedUserNamespace) -> bool:
    """Write :data:`STAND_IN_PROGRAMS` into :data:`STAND_INS` (unless the root has that path)."""
    host = _host(root, STAND_INS)
    if os.path.lexists(host):
        return False
    os.mkdir(host, 0o755)
    os.lchown(host, ns.host_uid(), ns.host_gid())
    for name, text in STAND_IN_PROGRAMS.items():
        program = host / name
        program.write_text(text)
        os.chmod(program, 0o755)
        os.lchown(program, ns.host_uid(), ns.host_gid())
    return True


def _normalise(root: Path) -> None:
    for path in MACHINE_ID_LINKS:
        host = _host(root, path)
        if host.is_file() and not host.is_symlink():
            host.unlink()
            os.symlink("/etc/machine-id", host)
    for path in EMPTIED:
        host = _host(root, path)
        if host.is_file() and not host.is_symlink() and host.stat().st_size:
            host.write_bytes(b"")
    for path in REMOVED:
        host = _host(root, path)
        if host.is_file() or host.is_symlink():
            host.unlink()
    for directory in OLD_IN:
        host = _host(root, directory)
        if host.is_dir() and not host.is_symlink():
            for dirpath, _, filenames in os.walk(host):
                for name in filenames:
                    if name.endswith("-old"):
                        os.unlink(os.path.join(dirpath, name))


KINDS = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo"}


def _harvest(root: Path, staged: StagedRoot, ns: MappedUserNamespace, sde: int) -> list[str]:
    """Read owners, modes, new and deleted paths back into *staged.entries*; clamp times.

    Extended attributes a script set (POSIX ACLs: systemd's ``setfacl`` on /var/log/journal)
    are removed: on the host they name host ids (base + id), which mean nothing in the image,
    and the image's file system writer sets none (systemd-tmpfiles sets the journal's ACLs at
    boot). Returns the paths that had some."""
    dropped = [] if not _drop_xattrs(root) else ["/"]
    seen = {"/"}
    walk = [("/", root)]
    st = os.lstat(root)
    _update(staged, "/", st, ns, sde)
    while walk:
        path, host = walk.pop()
        for name in sorted(os.listdir(host)):
            child_host = host / name
            child = f"{path.rstrip('/')}/{name}"
            st = os.lstat(child_host)
            if stat.S_IFMT(st.st_mode) not in KINDS:  # a socket a script left: not image content
                os.unlink(child_host)
                continue
            seen.add(child)
            if not stat.S_ISLNK(st.st_mode) and _drop_xattrs(child_host):
                dropped.append(child)
            _update(staged, child, st, ns, sde)
            if stat.S_ISDIR(st.st_mode):
                walk.append((child, child_host))
    for path in [p for p, e in staged.entries.items() if p not in seen and e.type not in ("char", "block")]:
        del staged.entries[path]
    return sorted(dropped)


def _drop_xattrs(host: Path) -> bool:
    try:
        names = os.listxattr(host, follow_symlinks=False)
    except OSError:
        return False
    for name in names:
        os.removexattr(host, name, follow_symlinks=False)
    return bool(names)


def _update(staged: StagedRoot, path: str, st: os.stat_result, ns: MappedUserNamespace, sde: int) -> None:
    kind = KINDS[stat.S_IFMT(st.st_mode)]
    uid, gid = ns.inside_uid(st.st_uid), ns.inside_gid(st.st_gid)
    mode = 0o777 if kind == "symlink" else stat.S_IMODE(st.st_mode)
    mtime = min(int(st.st_mtime), sde)
    old = staged.entries.get(path)
    staged.add(ImageEntry(path, kind, mode, uid or 0, gid or 0, mtime, old.rdev if old else 0))


# ------------------------------------------------------------------ DEB


@dataclass
class _Deb:
    trove: Trove
    fields: dict[str, str]
    members: dict[str, bytes]

    @property
    def name(self) -> str:
        return self.fields["Package"]

    @property
    def info(self) -> str:
        return info_name(self.fields)


def _relations(text: str) -> list[list[str]]:
    """A Depends-like field as alternatives of bare names (versions and arch qualifiers dropped)."""
    out = []
    for group in text.replace("\n", " ").split(","):
        names = [re.split(r"[\s(:\[]", alt.strip(), maxsplit=1)[0] for alt in group.split("|")]
        names = [n for n in names if n]
        if names:
            out.append(names)
    return out


def deb_order(debs: list[_Deb]) -> list[_Deb]:
    """*debs* in dependency order (Pre-Depends and Depends; the first alternative present in the
    set; virtual names through Provides); a cycle is broken where it closes, deterministically."""
    by_name = {d.name: d for d in debs}
    provides: dict[str, str] = {}
    for d in sorted(debs, key=lambda d: d.name):
        for alts in _relations(d.fields.get("Provides", "")):
            provides.setdefault(alts[0], d.name)

    def needs(d: _Deb) -> list[str]:
        out = []
        for field_name in ("Pre-Depends", "Depends"):
            for alts in _relations(d.fields.get(field_name, "")):
                hit = next((a if a in by_name else provides[a] for a in alts if a in by_name or a in provides), None)
                if hit and hit != d.name:
                    out.append(hit)
        return out

    order: list[_Deb] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for start in sorted(by_name):
        stack = [(start, iter(needs(by_name[start])))]
        state[start] = state.get(start) or 1
        if state[start] == 2:
            continue
        while stack:
            name, deps = stack[-1]
            dep = next(deps, None)
            if dep is None:
                stack.pop()
                if state[name] != 2:
                    state[name] = 2
                    order.append(by_name[name])
            elif dep not in state:
                state[dep] = 1
                stack.append((dep, iter(needs(by_name[dep]))))
    return order


def _deb_phase(repo: Repository, troves: list[Trove], runner: _Runner, staged: StagedRoot) -> None:
    root = runner.root
    debs = []
    for t in troves:
        members = control_members(repo.store, t)
        debs.append(_Deb(t, parse_control(members["control"].decode(errors="replace")), members))
    order = deb_order(debs)
    if not configured_by_dpkg(troves):
        # DEB members of a system without dpkg (an EL base holding Debian's kernel and a few
        # libraries): their maintainer scripts expect a Debian system (linux-update-symlinks,
        # ldconfig triggers); they are staged as in a group without packageScripts
        note = (f"== {len(order)} Debian package(s) in a system without dpkg: their maintainer scripts are "
                f"not run (add the package dpkg to run them): {', '.join(d.name for d in order)} ==\n")
        runner.report.log += note
        if runner.log:
            runner.log(note.rstrip("\n"))
        return
    # conffiles wait as PATH.dpkg-new, as after dpkg's unpack (the database says "newconffile")
    for d in debs:
        for path in d.trove.info.get("conffiles", []):
            host = _host(root, path)
            if path in staged.entries and host.is_file() and not host.is_symlink():
                os.rename(host, f"{host}.dpkg-new")
                staged.entries[f"{path}.dpkg-new"] = staged.entries.pop(path)
                staged.entries[f"{path}.dpkg-new"].path = f"{path}.dpkg-new"
    _write_trigger_interests(root, debs, runner.ns)
    dpkg_version = next((d.fields.get("Version", "") for d in debs if d.name == "dpkg"), "")
    for d in order:
        if "preinst" in d.members:
            runner.run(d.name, "preinst install", [f"/var/lib/dpkg/info/{d.info}.preinst", "install"],
                       env=_maintainer_env(d, "preinst", dpkg_version))
    # one dpkg configures them all, in this order (it reads its database once): each "Setting up"
    # line starts a package's share of the output and of the time limit; the first failure stops it
    runner.run_steps("postinst configure",
                     ["dpkg", "--configure", "--no-triggers", "--force-depends", "--force-confdef", "--force-confold",
                      "--abort-after=1", *(d.info for d in order)], SETTING_UP, DPKG_FAILED)
    runner.run("dpkg", "triggers", ["dpkg", "--triggers-only", "--pending", "--force-depends"])
    status = (root / "var/lib/dpkg/status").read_text(errors="replace")
    unfinished = [m.group(1) + " (" + m.group(2) + ")" for m in
                  re.finditer(r"^Package: (\S+)\n(?:.+\n)*?Status: (.+)$", status, re.M)
                  if m.group(2) != "install ok installed"]
    if unfinished:
        raise ScriptError(f"dpkg left {len(unfinished)} packages unfinished: {', '.join(unfinished[:10])}")


SETTING_UP = re.compile(rb"Setting up (\S+) \(")  # dpkg, before a package's postinst configure
DPKG_FAILED = re.compile(r"error processing package (\S+) \(--configure\):\n.*?exit status (\d+)")


def _maintainer_env(d: _Deb, script: str, dpkg_version: str) -> dict[str, str]:
    return {"DPKG_MAINTSCRIPT_PACKAGE": d.name, "DPKG_MAINTSCRIPT_ARCH": d.fields.get("Architecture", ""),
            "DPKG_MAINTSCRIPT_NAME": script, "DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT": "1",
            "DPKG_ADMINDIR": "/var/lib/dpkg", "DPKG_ROOT": "", "DPKG_RUNNING_VERSION": dpkg_version}


def _trigger_lines(d: _Deb) -> list[tuple[str, str]]:
    """(directive, name) of a package's ``triggers`` control file."""
    text = d.members.get("triggers", b"").decode(errors="replace")
    out = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) == 2:
            out.append((parts[0], parts[1]))
    return out


def _write_trigger_interests(root: Path, debs: list[_Deb], ns: MappedUserNamespace) -> None:
    """dpkg's trigger interest files (``triggers/File``, ``triggers/NAME``), as its unpack writes them."""
    files: list[str] = []
    named: dict[str, list[str]] = {}
    for d in sorted(debs, key=lambda d: d.info):
        for directive, name in _trigger_lines(d):
            if not directive.startswith("interest"):
                continue
            who = d.info + ("/noawait" if directive == "interest-noawait" else "")
            if name.startswith("/"):
                files.append(f"{name} {who}\n")
            else:
                named.setdefault(name, []).append(f"{who}\n")
    tdir = root / "var/lib/dpkg/triggers"
    tdir.mkdir(parents=True, exist_ok=True)
    written = []
    if files:
        (tdir / "File").write_text("".join(files))
        written.append(tdir / "File")
    for name, who in named.items():
        (tdir / name).write_text("".join(who))
        written.append(tdir / name)
    for host in [tdir, *written]:
        os.lchown(host, ns.host_uid(), ns.host_gid())


# ------------------------------------------------------------------ RPM

SCRIPTLETS = {  # name: (script tag, program tag)
    "%pretrans": ("PRETRANS", "PRETRANSPROG"),
    "%pre": ("PREIN", "PREINPROG"),
    "%post": ("POSTIN", "POSTINPROG"),
    "%posttrans": ("POSTTRANS", "POSTTRANSPROG"),
}
RPMSENSE_TRIGGERIN = 1 << 16


@dataclass
class _Rpm:
    trove: Trove
    hdr: object

    @property
    def name(self) -> str:
        return self.hdr["name"]


def _rpm_header(repo: Repository, trove: Trove):
    """The header of an RPM capsule (its stored lead, signature and header; verified at import)."""
    import rpm

    fd = os.memfd_create("appbuild-rpm-header", 0)
    try:
        os.write(fd, repo.store.read(trove.info["rpm_header_blob"]))
        os.lseek(fd, 0, os.SEEK_SET)
        ts = rpm.TransactionSet()
        ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NOPAYLOAD)
        return ts.hdrFromFdno(fd)
    except rpm.error as e:
        raise ScriptError(f"{trove}: its stored RPM header is unreadable ({e})") from None
    finally:
        os.close(fd)


def rpm_order(rpms: list[_Rpm]) -> list[_Rpm]:
    """*rpms* in the order librpm installs them (``ts.order()``: requirements first)."""
    import rpm

    with tempfile.TemporaryDirectory(prefix="appbuild-rpmorder-") as scratch:
        rpm.addMacro("_dbpath", scratch)
        try:
            ts = rpm.TransactionSet(scratch)
            ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NOPAYLOAD)
            by_key = {}
            for i, r in enumerate(sorted(rpms, key=lambda r: (r.name, str(r.trove.flavor)))):
                by_key[str(i)] = r
                ts.addInstall(r.hdr, str(i), "i")
            ts.order()
            return [by_key[te.Key()] for te in ts]
        finally:
            rpm.delMacro("_dbpath")


def _prog(hdr, tag: str) -> list[str]:
    value = hdr[tag]
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def _run_rpm_script(runner: _Runner, package: str, script: str, body: str | None, prog: list[str],
                    args: list[str], stdin: bytes | None = None) -> None:
    if prog and prog[0] == "<lua>":
        raise ScriptError(f"{package} {script} is a Lua scriptlet (<lua>), which appbuild cannot run yet (it "
                          f"needs librpm's own interpreter)")
    prog = prog or ["/bin/sh"]
    argv = list(prog)
    if body:
        argv += [runner.put("body", body.encode(), 0o700), *args]
    runner.run(package, script, argv, stdin=stdin)


def _provides(hdr) -> dict[str, str]:
    out = {hdr["name"]: f"{hdr['epoch'] or 0}:{hdr['version']}-{hdr['release']}"}
    for name, version in zip(hdr["providename"] or [], hdr["provideversion"] or []):
        out.setdefault(name, version or "")
    return out


def _satisfies(flags: int, want: str, have: str | None) -> bool:
    import rpm

    sense = flags & (rpm.RPMSENSE_LESS | rpm.RPMSENSE_GREATER | rpm.RPMSENSE_EQUAL)
    if not want or not sense:
        return True
    if not have:
        return False

    def evr(text: str) -> tuple[str, str, str]:
        epoch, _, rest = text.rpartition(":") if ":" in text else ("0", "", text)
        version, _, release = rest.partition("-")
        return (epoch or "0", version, release or (None if "-" not in want else ""))

    a, b = evr(have), evr(want)
    if "-" not in want:  # no release in the requirement: compare versions only
        a, b = (a[0], a[1], ""), (b[0], b[1], "")
    c = rpm.labelCompare(a, b)
    return bool((c < 0 and sense & rpm.RPMSENSE_LESS) or (c > 0 and sense & rpm.RPMSENSE_GREATER)
                or (c == 0 and sense & rpm.RPMSENSE_EQUAL))


def _triggers(hdr) -> list[tuple[str, int, str, int]]:
    """(target name, flags, version, script index) of a header's %trigger* conditions."""
    names = hdr["triggername"] or []
    return list(zip(names, hdr["triggerflags"] or [0] * len(names), hdr["triggerversion"] or [""] * len(names),
                    hdr["triggerindex"] or list(range(len(names)))))


def _file_triggers(hdr, tag_prefix: str) -> list[tuple[str, str, list[str]]]:
    """(prefix path, script, program) of a header's %filetriggerin (or %transfiletriggerin) scripts."""
    names = hdr[f"{tag_prefix}name"] or []
    if not names:
        return []
    flags = hdr[f"{tag_prefix}flags"] or [0] * len(names)
    index = hdr[f"{tag_prefix}index"] or list(range(len(names)))
    scripts = hdr[f"{tag_prefix}scripts"] or []
    progs = hdr[f"{tag_prefix}scriptprog"] or []
    out = []
    for name, flag, i in zip(names, flags, index):
        if flag & RPMSENSE_TRIGGERIN and i < len(scripts):
            prog = progs[i] if i < len(progs) else "/bin/sh"
            out.append((name, scripts[i], [prog] if isinstance(prog, str) else list(prog)))
    return out


def _rpm_phase(repo: Repository, troves: list[Trove], runner: _Runner, staged: StagedRoot) -> None:
    rpms = rpm_order([_Rpm(t, _rpm_header(repo, t)) for t in troves])
    for r in rpms:  # Lua is refused before anything runs
        for label, (tag, prog_tag) in SCRIPTLETS.items():
            if _prog(r.hdr, prog_tag)[:1] == ["<lua>"]:
                raise ScriptError(f"{r.name} {label} is a Lua scriptlet (<lua>), which appbuild cannot run yet "
                                  f"(it needs librpm's own interpreter)")
    for r in rpms:
        if r.hdr["pretrans"]:
            _run_rpm_script(runner, r.name, "%pretrans", r.hdr["pretrans"], _prog(r.hdr, "pretransprog"), [])
    installed: list[_Rpm] = []
    fired: set[tuple[str, int, str]] = set()
    for r in rpms:
        if r.hdr["prein"] or _prog(r.hdr, "preinprog"):
            _run_rpm_script(runner, r.name, "%pre", r.hdr["prein"], _prog(r.hdr, "preinprog"), ["1"])
        if r.hdr["postin"] or _prog(r.hdr, "postinprog"):
            _run_rpm_script(runner, r.name, "%post", r.hdr["postin"], _prog(r.hdr, "postinprog"), ["1"])
        installed.append(r)
        # %triggerin: of packages installed so far on this one, and of this one on those
        for owner in installed:
            for target in ([r] if owner is not r else installed):
                have = _provides(target.hdr)
                for name, flags, version, index in _triggers(owner.hdr):
                    key = (owner.name, index, target.name)
                    if flags & RPMSENSE_TRIGGERIN and name in have and _satisfies(flags, version, have[name]) \
                            and key not in fired:
                        fired.add(key)
                        scripts, progs = owner.hdr["triggerscripts"] or [], owner.hdr["triggerscriptprog"] or []
                        prog = progs[index] if index < len(progs) else "/bin/sh"
                        _run_rpm_script(runner, owner.name, f"%triggerin -- {name}",
                                        scripts[index] if index < len(scripts) else "",
                                        [prog] if isinstance(prog, str) else list(prog), ["1", "1"])
        # %filetriggerin: of packages installed so far, on this one's files (and this one's on theirs)
        for owner in installed:
            for prefix, body, prog in _file_triggers(owner.hdr, "filetrigger"):
                targets = [r] if owner is not r else installed
                paths = sorted({p for t in targets for p in (t.hdr["filenames"] or []) if p.startswith(prefix)})
                if paths:
                    _run_rpm_script(runner, owner.name, f"%filetriggerin -- {prefix}", body, prog, ["1", "0"],
                                    stdin="".join(f"{p}\n" for p in paths).encode())
    for owner in rpms:
        for prefix, body, prog in _file_triggers(owner.hdr, "transfiletrigger"):
            paths = sorted({p for t in rpms for p in (t.hdr["filenames"] or []) if p.startswith(prefix)})
            if paths:
                _run_rpm_script(runner, owner.name, f"%transfiletriggerin -- {prefix}", body, prog, ["1", "0"],
                                stdin="".join(f"{p}\n" for p in paths).encode())
    for r in rpms:
        if r.hdr["posttrans"]:
            _run_rpm_script(runner, r.name, "%posttrans", r.hdr["posttrans"], _prog(r.hdr, "posttransprog"), [])
