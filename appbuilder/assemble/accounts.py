"""Users and groups of an image: ``/etc/passwd``, ``/etc/group``, ``/etc/shadow``.

The accounts are root, the users an image group declares (``users =
('name:uid:group:gid:home:shell', ...)``), and every owner and group some member's
files name (conary's ``UtilizeUser``/``UtilizeGroup``): those get system ids from 100
up, in name order, so the same closure always gets the same ids. Passwords are locked
(``!``); contextualization sets them at boot.
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


def parse_user(spec: str) -> User:
    parts = spec.split(":")
    if len(parts) != 6 or not parts[1].isdigit() or not parts[3].isdigit():
        raise AppbuildError(f"bad user {spec!r}: expected name:uid:group:gid:home:shell")
    return User(parts[0], int(parts[1]), parts[2], int(parts[3]), parts[4], parts[5])


class Accounts:
    def __init__(self, declared: list[str] | tuple[str, ...], owners: set[str], groups: set[str]):
        self.users: dict[str, User] = {"root": User("root", 0, "root", 0, "/root", "/bin/sh")}
        self.groups: dict[str, int] = {"root": 0}
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

    def uid(self, name: str) -> int:
        return self.users[name].uid

    def gid(self, name: str) -> int:
        return self.groups[name]

    def passwd(self) -> str:
        return "".join(f"{u.name}:x:{u.uid}:{u.gid}:{u.name}:{u.home}:{u.shell}\n"
                       for u in sorted(self.users.values(), key=lambda u: u.uid))

    def shadow(self) -> str:
        return "".join(f"{u.name}:!:19000:0:99999:7:::\n" for u in sorted(self.users.values(), key=lambda u: u.uid))

    def group(self) -> str:
        members: dict[str, list[str]] = {}
        for u in self.users.values():
            if u.group != u.name:
                members.setdefault(u.group, []).append(u.name)
        return "".join(f"{g}:x:{gid}:{','.join(sorted(members.get(g, [])))}\n"
                       for g, gid in sorted(self.groups.items(), key=lambda kv: kv[1]))


def _next_free(used: set[int]) -> int:
    n = FIRST_SYSTEM_ID
    while n in used:
        n += 1
    return n
