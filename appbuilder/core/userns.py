"""A user namespace that maps a whole range of host ids, for running package scripts.

Package scripts (``adduser``, ``chown messagebus``, ``useradd``) must own files by
many ids, which the one-id user namespace of the cook sandbox cannot do. A
:class:`MappedUserNamespace` maps ids ``0 .. count-1`` inside to ``base .. base+count-1``
on the host (``0 100000 65536``): uid 0 inside is host uid 100000, never host root, and
a file a script gives to ``messagebus`` (uid 100 inside) is owned by host uid 100100.

The namespace is made by a small holder process that runs as the host uid *base*,
calls ``unshare(CLONE_NEWUSER)`` and waits; the maps are then written from outside:

* as root, directly into ``/proc/PID/uid_map`` and ``gid_map``;
* as another user, with ``newuidmap``/``newgidmap`` (package ``uidmap``), which check
  the range against ``/etc/subuid`` and ``/etc/subgid``; without them, or without a
  range there, a one-line error says so.

Once the maps are written a file descriptor on the namespace (:attr:`fd`) keeps it
alive; the holder exits. ``bwrap --userns FD`` then runs its commands in it (see
:mod:`appbuilder.core.sandbox`); bwrap itself must run as the namespace's owner (host
uid *base* when root made it, see :meth:`popen_user`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys

from appbuilder.core.errors import AppbuildError

DEFAULT_BASE = 100000
DEFAULT_COUNT = 65536

# run by the holder: enter a new user namespace, say so, wait until told to go
_HOLDER = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "if libc.unshare(0x10000000) != 0:\n"
    "    e = ctypes.get_errno(); sys.stdout.write('error ' + os.strerror(e) + '\\n'); sys.stdout.flush(); sys.exit(1)\n"
    "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
    "sys.stdin.read()\n"
)


class UserNamespaceError(AppbuildError):
    """The multi-id user namespace could not be made."""


def _subid_range(path: str, user: str, uid: int) -> tuple[int, int] | None:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[1].isdigit() and parts[2].isdigit():
            return int(parts[1]), int(parts[2])
    return None


class MappedUserNamespace:
    """A user namespace mapping ids ``0..count-1`` to host ``base..base+count-1`` (a context manager).

    As root, *base* and *count* are used as given. As another user they come from its
    ``/etc/subuid`` range (*base* None) and ``newuidmap`` writes the maps.
    """

    def __init__(self, base: int | None = DEFAULT_BASE, count: int = DEFAULT_COUNT):
        self.root = os.geteuid() == 0
        self.count = count
        self.fd: int | None = None
        if self.root:
            self.base = DEFAULT_BASE if base is None else base
            self.gid_base = self.base
        else:
            user = pwd.getpwuid(os.geteuid()).pw_name
            uids = _subid_range("/etc/subuid", user, os.geteuid())
            gids = _subid_range("/etc/subgid", user, os.geteuid())
            if not uids or not gids or uids[1] < count or gids[1] < count:
                raise UserNamespaceError(
                    f"package scripts need {count} subordinate ids for user {user}: add a range to /etc/subuid and "
                    f"/etc/subgid (e.g. '{user}:100000:{count}'), or run appbuild as root")
            if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
                raise UserNamespaceError("package scripts need newuidmap and newgidmap as a non-root user "
                                         "(apt-get install uidmap)")
            self.base, self.gid_base = uids[0], gids[0]
        if self.base <= 0 or count <= 0:
            raise UserNamespaceError(f"bad id range {self.base}+{count} for the package-script user namespace")

    def host_uid(self, uid: int = 0) -> int:
        """The host uid of *uid* inside."""
        return self.base + uid

    def host_gid(self, gid: int = 0) -> int:
        """The host gid of *gid* inside."""
        return self.gid_base + gid

    def inside_uid(self, host: int) -> int | None:
        """The uid inside of host uid *host* (None: not mapped, the file shows as nobody)."""
        return host - self.base if self.base <= host < self.base + self.count else None

    def inside_gid(self, host: int) -> int | None:
        return host - self.gid_base if self.gid_base <= host < self.gid_base + self.count else None

    def popen_user(self) -> dict:
        """Keyword arguments for ``subprocess.Popen`` so the child (bwrap) runs as the namespace's owner."""
        if not self.root:
            return {}
        return {"user": self.base, "group": self.gid_base, "extra_groups": []}

    def __enter__(self) -> "MappedUserNamespace":
        if self.fd is not None:
            raise UserNamespaceError("the user namespace is already open")
        # the interpreter itself, not a virtual environment's link to it: the holder runs as
        # the namespace's owner, who may not traverse a private (mode 0700) checkout
        python = os.path.realpath(sys.executable)
        try:
            holder = subprocess.Popen([python, "-I", "-S", "-c", _HOLDER], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={},
                                      **self.popen_user())
        except OSError as e:
            raise UserNamespaceError(f"cannot create a user namespace: {python} does not run as host uid "
                                     f"{self.base}: {e.strerror}") from None
        try:
            assert holder.stdout is not None and holder.stdin is not None
            said = holder.stdout.readline().strip()
            if said != "ready":
                err = holder.stderr.read().strip() if holder.stderr else ""
                raise UserNamespaceError(f"cannot create a user namespace: {said.removeprefix('error ') or err or 'no answer'}")
            self._write_maps(holder.pid)
            self.fd = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            if holder.stdin:
                holder.stdin.close()
            try:
                holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                holder.kill()
                holder.wait()
        return self

    def _write_maps(self, pid: int) -> None:
        if self.root:
            try:
                for name, base in (("uid_map", self.base), ("gid_map", self.gid_base)):
                    with open(f"/proc/{pid}/{name}", "w") as f:
                        f.write(f"0 {base} {self.count}\n")
            except OSError as e:
                raise UserNamespaceError(f"cannot write the id maps of the package-script user namespace: {e}") from None
            return
        for tool, base in (("newuidmap", self.base), ("newgidmap", self.gid_base)):
            proc = subprocess.run([tool, str(pid), "0", str(base), str(self.count)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserNamespaceError(f"{tool} failed: {(proc.stderr or proc.stdout).strip()}")

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
