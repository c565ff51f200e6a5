"""Users and groups of an image (appbuilder.assemble.accounts): /etc/passwd, /etc/group and
/etc/shadow for root, the declared users and every owner and group the members' files name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from appbuilder.assemble.accounts import Accounts, parse_user
from appbuilder.core.errors import AppbuildError

DECLARED = ["cvmfs:990:cvmfs:990:/var/lib/cvmfs:/sbin/nologin", "alice:1000:users:100:/home/alice:/bin/bash"]


def test_root_alone():
    a = Accounts([], {"root"}, {"root"})
    assert a.passwd() == "root:x:0:0:root:/root:/bin/sh\n"
    assert a.group() == "root:x:0:\n"
    assert a.shadow() == "root:!:19000:0:99999:7:::\n"


def test_declared_users_and_the_owners_files_name():
    """Declared users keep their ids; undeclared owners and groups get ids from 100 up, in
    name order, skipping ids already taken (users' group 100 here)."""
    a = Accounts(DECLARED, owners={"root", "zeta", "alpha", "cvmfs"}, groups={"root", "adm", "users", "disk"})
    assert a.passwd() == (
        "root:x:0:0:root:/root:/bin/sh\n"
        "alpha:x:100:102:alpha:/nonexistent:/sbin/nologin\n"
        "zeta:x:101:104:zeta:/nonexistent:/sbin/nologin\n"
        "cvmfs:x:990:990:cvmfs:/var/lib/cvmfs:/sbin/nologin\n"
        "alice:x:1000:100:alice:/home/alice:/bin/bash\n"
    )
    assert a.group() == (
        "root:x:0:\n"
        "users:x:100:alice\n"
        "adm:x:101:\n"
        "alpha:x:102:\n"
        "disk:x:103:\n"
        "zeta:x:104:\n"
        "cvmfs:x:990:\n"
    )
    assert a.shadow() == "".join(f"{n}:!:19000:0:99999:7:::\n" for n in ("root", "alpha", "zeta", "cvmfs", "alice"))
    assert (a.uid("zeta"), a.gid("zeta"), a.uid("alice"), a.gid("users"), a.gid("disk")) == (101, 104, 1000, 100, 103)


def test_the_same_closure_gets_the_same_ids_in_every_process():
    """Sets of names iterate in another order under another hash seed; the ids come from the
    names alone."""
    code = ("from appbuilder.assemble.accounts import Accounts\n"
            f"a = Accounts({DECLARED!r}, {{'root', 'nobody', 'daemon', 'bin', 'sys', 'man'}}, "
            "{'root', 'tty', 'disk', 'kmem', 'adm', 'staff', 'nogroup'})\n"
            "print(a.passwd() + a.group() + a.shadow(), end='')\n")
    outputs = set()
    for seed in ("1", "2", "3", "4"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        outputs.add(proc.stdout)
    assert len(outputs) == 1 and "daemon:x:" in outputs.pop()


def test_a_declared_id_of_100_pushes_the_system_ids_up():
    a = Accounts(["svc:100:svc:100:/srv:/bin/sh"], {"root", "other"}, {"root"})
    assert (a.uid("svc"), a.uid("other"), a.gid("other")) == (100, 101, 101)


def test_every_password_is_locked_and_every_line_is_well_formed():
    a = Accounts(DECLARED, {"root", "x", "y"}, {"root", "z"})
    for line in a.shadow().splitlines():
        assert line.split(":")[1] == "!" and len(line.split(":")) == 9
    names = [line.split(":")[0] for line in a.passwd().splitlines()]
    assert len(names) == len(set(names)) and all(len(line.split(":")) == 7 for line in a.passwd().splitlines())
    gids = [line.split(":")[2] for line in a.group().splitlines()]
    assert len(gids) == len(set(gids)) and all(len(line.split(":")) == 4 for line in a.group().splitlines())


@pytest.mark.parametrize("spec", ["alice:x:users:100:/home/alice:/bin/sh", "alice:1000:users",
                                  "alice:1000:users:gid:/home/alice:/bin/sh", "a:1:b:2:/h:/s:extra"])
def test_a_malformed_user_is_refused(spec):
    with pytest.raises(AppbuildError, match="expected name:uid:group:gid:home:shell"):
        parse_user(spec)


# base-passwd 3.6.1's master files, in part (the real ones are read from the closure in
# tests/assemble/test_scripts.py)
PASSWD_MASTER = """root:*:0:0:root:/root:/bin/sh
daemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin
man:*:6:12:man:/var/cache/man:/usr/sbin/nologin
nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
GROUP_MASTER = "root:*:0:\ndaemon:*:1:\nman:*:12:\nshadow:*:42:\nutmp:*:43:\nnogroup:*:65534:\n"


def test_the_distribution_tables_seed_the_ids_and_others_fill_in_around_them():
    from appbuilder.assemble.accounts import seed_tables

    seed = seed_tables({"/usr/share/base-passwd/passwd.master": PASSWD_MASTER.encode(),
                        "/usr/share/base-passwd/group.master": GROUP_MASTER.encode()})
    a = Accounts([], {"root", "man", "messagebus"}, {"root", "shadow", "utmp", "staff"}, seed=seed)
    assert (a.gid("shadow"), a.gid("utmp"), a.uid("man"), a.gid("man"), a.uid("nobody")) == (42, 43, 6, 12, 65534)
    assert "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" in a.passwd()
    assert "man:x:12:\n" in a.group()  # a seeded user is not listed as a member of its own primary group
    assert a.uid("messagebus") == 100 and a.gid("staff") not in (0, 1, 12, 42, 43, 65534)
    # without the tables nothing changes
    assert Accounts([], {"root"}, {"root", "shadow"}).gid("shadow") == 100
    assert seed_tables({"/etc/passwd": b"root:x:0:0::/root:/bin/sh\n"}) is None
