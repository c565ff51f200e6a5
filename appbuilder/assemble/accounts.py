"""Users and groups of an image: ``/etc/passwd``, ``/etc/group``, ``/etc/shadow``.

The accounts are root, the users an image group declares (``users =
('name:uid:group:gid:home:shell', ...)``), and every owner and group some member's
files name (conary's ``UtilizeUser``/``UtilizeGroup``): those get system ids from 100
up, in name order, so the same closure always gets the same ids. Passwords are locked
(``!``); contextualization sets them at boot.

When the closure holds the distribution's own account tables, they come first (*seed*,
see :func:`seed_tables`): Debian's base-passwd ``/usr/share/base-passwd/passwd.master``
and ``group.master`` (daemon 1, shadow 42, utmp 43, nogroup 65534, ...), or an EL
``setup`` package's ``/etc/passwd`` and ``/etc/group``. Their users and groups keep the
distribution's numbers, so the ids appbuild gives files agree with what ``update-passwd``,
``adduser`` and ``useradd`` in the package scripts expect.
"""

from __future__ import annotations

from dataclasses import dataclass

from appbuilder.core.errors import AppbuildError

FIRST_SYSTEM_ID = 100
NOLOGIN = "/sbin/nologin"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    group: str
    gid: int
    home: str
    shell: str
    gecos: str = ""


def parse_user(spec: str) -> User:
    parts = spec.split(":")
    if len(parts) != 6 or not parts[1].isdigit() or not parts[3].isdigit():
        raise AppbuildError(f"bad user {spec!r}: expected name:uid:group:gid:home:shell")
    return User(parts[0], int(parts[1]), parts[2], int(parts[3]), parts[4], parts[5])


SEED_FILES = (("/usr/share/base-passwd/passwd.master", "/usr/share/base-passwd/group.master"),
              ("/etc/passwd", "/etc/group"))


def seed_tables(files: dict[str, bytes]) -> tuple[str, str] | None:
    """The (passwd, group) text to seed accounts from, out of *files* (path -> content of the
    closure's members): base-passwd's master files, else a member's /etc/passwd and /etc/group."""
    for passwd, group in SEED_FILES:
        if passwd in files and group in files:
            return files[passwd].decode(errors="replace"), files[group].decode(errors="replace")
    return None


class Accounts:
    def __init__(self, declared: list[str] | tuple[str, ...], owners: set[str], groups: set[str], *,
                 seed: tuple[str, str] | None = None):
        self.users: dict[str, User] = {"root": User("root", 0, "root", 0, "/root", "/bin/sh")}
        self.groups: dict[str, int] = {"root": 0}
        self.seeded: set[str] = set()  # users from the distribution's tables: their primary group lists no members
        if seed:
            self._seed(*seed)
        for spec in declared:
            u = parse_user(spec)
            self.users[u.name] = u
            self.groups.setdefault(u.group, u.gid)
        used_uids = {u.uid for u in self.users.values()}
        used_gids = set(self.groups.values())
        for name in sorted(groups | {o for o in owners if o not in self.users}):
            if name not in self.groups:
                gid = _next_free(used_gids)
                self.groups[name] = gid
                used_gids.add(gid)
        for name in sorted(owners):
            if name not in self.users:
                uid = _next_free(used_uids)
                used_uids.add(uid)
                self.users[name] = User(name, uid, name, self.groups[name], "/nonexistent", NOLOGIN)

    def _seed(self, passwd: str, group: str) -> None:
        for line in group.splitlines():
            parts = line.split(":")
            if len(parts) >= 3 and parts[0] and parts[2].isdigit():
                self.groups.setdefault(parts[0], int(parts[2]))
        by_gid = {gid: name for name, gid in self.groups.items()}
        for line in passwd.splitlines():
            parts = line.split(":")
            if len(parts) == 7 and parts[0] and parts[2].isdigit() and parts[3].isdigit():
                gid = int(parts[3])
                self.users.setdefault(parts[0], User(parts[0], int(parts[2]), by_gid.get(gid, parts[0]), gid,
                                                     parts[5], parts[6], parts[4]))
                self.groups.setdefault(self.users[parts[0]].group, gid)
                self.seeded.add(parts[0])

    def uid(self, name: str) -> int:
        return self.users[name].uid

    def gid(self, name: str) -> int:
        return self.groups[name]

    def passwd(self) -> str:
        return "".join(f"{u.name}:x:{u.uid}:{u.gid}:{u.gecos or u.name}:{u.home}:{u.shell}\n"
                       for u in sorted(self.users.values(), key=lambda u: u.uid))

    def shadow(self) -> str:
        return "".join(f"{u.name}:!:19000:0:99999:7:::\n" for u in sorted(self.users.values(), key=lambda u: u.uid))

    def group(self) -> str:
        members: dict[str, list[str]] = {}
        for u in self.users.values():
            if u.group != u.name and u.name not in self.seeded:
                members.setdefault(u.group, []).append(u.name)
        return "".join(f"{g}:x:{gid}:{','.join(sorted(members.get(g, [])))}\n"
                       for g, gid in sorted(self.groups.items(), key=lambda kv: kv[1]))


def _next_free(used: set[int]) -> int:
    n = FIRST_SYSTEM_ID
    while n in used:
        n += 1
    return n
