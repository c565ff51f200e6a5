"""The multi-id user namespace and the sandbox's package-script mode: ids chowned inside land
on the host as base + id, no new user namespace, no network, nothing but the granted
capabilities."""

from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from appbuilder.core.sandbox import Bind, Sandbox, TimeLimitExceeded
from appbuilder.core.userns import MappedUserNamespace

CAPS = ("CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_SETUID", "CAP_SETGID")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"),
                                reason="the package-script namespace is made by root here (no subuid range)")


@pytest.fixture
def root():
    """A writable root the namespace's owner can reach (the host's /usr bound read-only in it)."""
    top = Path(tempfile.mkdtemp(prefix="appbuild-userns-test-"))
    os.chmod(top, 0o711)
    r = top / "root"
    for d in ("usr", "etc", "data", "tmp", "proc", "dev", "run", "var/tmp"):
        (r / d).mkdir(parents=True)
    for link in ("bin", "sbin", "lib", "lib64"):
        os.symlink(f"usr/{link}", r / link)
    yield r
    shutil.rmtree(top)


def run(ns, root: Path, script: str, *, timeout: float = 30) -> tuple[int, str]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), ns.host_uid(), ns.host_gid())
    sb = Sandbox(root, [Bind(Path("/usr"), "/usr")], hostname="scripts-test", timeout=timeout, userns=ns,
                 writable_root=True, caps=CAPS)
    out = io.BytesIO()
    status = sb.run(["/bin/sh", "-c", script], cwd="/", env={"PATH": "/usr/bin:/usr/sbin"}, log=out)
    return status, out.getvalue().decode(errors="replace")


def test_owners_set_inside_land_as_base_plus_id_on_the_host(root):
    with MappedUserNamespace() as ns:
        status, out = run(ns, root, "id -u; hostname; echo hi > /data/f; chown 42:43 /data/f; chmod 4755 /data/f; "
                                    "mkdir /data/d; chown 100:101 /data/d")
        assert status == 0, out
        assert out.split()[:2] == ["0", "scripts-test"]
    st = os.lstat(root / "data" / "f")
    assert (st.st_uid, st.st_gid) == (ns.base + 42, ns.base + 43)
    assert oct(st.st_mode & 0o7777) == "0o4755"  # setuid kept (CAP_FSETID)
    d = os.lstat(root / "data" / "d")
    assert (d.st_uid, d.st_gid) == (ns.base + 100, ns.base + 101)
    assert ns.inside_uid(st.st_uid) == 42 and ns.inside_uid(0) is None  # host root is not mapped


def test_no_new_user_namespace_no_network_only_the_granted_capabilities(root):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        with MappedUserNamespace() as ns:
            status, out = run(ns, root, f"""
                unshare -U true && echo UNSHARE-OK || echo UNSHARE-REFUSED
                python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for name, nr, flags in (("clone", 56, 0x10000000 | 17), ("clone3", 435, 0)):
    r = libc.syscall(nr, flags, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)
    print(name.upper(), r, ctypes.get_errno())'
                python3 -c 'import socket; socket.create_connection(("127.0.0.1", {port}), timeout=2)' 2>/dev/null \
                    && echo NET-OK || echo NET-REFUSED
                ls /sys/class/net 2>/dev/null | tr '\\n' ' '; echo
                grep CapEff /proc/self/status
                mknod /data/null c 1 3 2>/dev/null && echo MKNOD-OK || echo MKNOD-REFUSED
            """)
    finally:
        listener.close()
    assert status == 0, out
    assert "UNSHARE-REFUSED" in out and "UNSHARE-OK" not in out
    assert "CLONE -1 1" in out  # clone(CLONE_NEWUSER): EPERM
    assert "CLONE3 -1 38" in out  # clone3: ENOSYS (the C library falls back to clone)
    assert "NET-REFUSED" in out
    assert "MKNOD-REFUSED" in out
    eff = int(out.split("CapEff:")[1].split()[0], 16)
    assert eff == (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 6) | (1 << 7)  # CHOWN DAC_OVERRIDE FOWNER FSETID SETGID SETUID


def test_waiting_for_the_disk_is_suppressed(root):
    """fsync and its kin return 0 without doing anything: on /dev/null, where the kernel says
    EINVAL (dd conv=fsync fails on the host), they succeed; sync(1) too."""
    with MappedUserNamespace() as ns:
        status, out = run(ns, root, "dd if=/dev/zero of=/dev/null count=1 conv=fsync 2>&1 && "
                                    "dd if=/dev/zero of=/dev/null count=1 conv=fdatasync 2>&1 && sync && echo SYNCED")
    assert status == 0 and "SYNCED" in out and "failed" not in out, out


def test_a_hanging_command_is_stopped_at_the_time_limit(root):
    with MappedUserNamespace() as ns, pytest.raises(TimeLimitExceeded, match="time limit of 2 s"):
        run(ns, root, "sleep 600", timeout=2)


def test_a_writable_root_needs_the_namespace():
    from appbuilder.core.errors import BuildFailed

    with pytest.raises(BuildFailed, match="user namespace"):
        Sandbox(Path("/nonexistent"), writable_root=True)
