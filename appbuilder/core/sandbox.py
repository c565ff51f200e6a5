"""The sandbox: an unprivileged bubblewrap container around code we did not write.

Build commands run in it (over a build root), and so does the Python of recipes while
they are read (over just the interpreter; see :mod:`appbuilder.recipe.evaluate`). Each
command runs in a fresh ``bwrap`` with:

* a **new user namespace and no capabilities**, also when appbuild runs as root
  (``--unshare-user --cap-drop ALL``); inside, the build runs as uid 0 of that
  namespace, which is the cooking user outside, and cannot create further user
  namespaces (``--disable-userns``);
* a **seccomp filter** (made with libseccomp, for the x86_64, i386 and x32 system-call
  tables, so a 32-bit program cannot step around it) that refuses mount, umount,
  pivot_root, ptrace, keyctl, bpf, module loading, kexec, setns/unshare and the
  terminal-injection ioctls; bwrap sets ``no_new_privs`` with it. It also makes
  ``sync``, ``syncfs``, ``fsync``, ``fdatasync`` and ``sync_file_range`` succeed without
  doing anything (as ``systemd-nspawn --suppress-sync`` does): what a command writes goes
  into a tree appbuild itself turns into a package or an image, and a crash loses it
  anyway; dpkg alone would wait for the disk several hundred times while it configures;
* a **root file system made from the repository** (:mod:`appbuilder.cook.buildroot`)
  bound read-only as ``/``: the host's root is never bound, so nothing of ``/root``,
  ``/home``, ``/etc/shadow``, the repository or the cache is in reach;
* only the cook's own directories bound: its work tree read-write at ``/build``, the
  recipe's files and the sources it fetched read-only under ``/sources``;
* a private ``/tmp``, ``/var/tmp``, ``/dev`` and ``/proc``, new PID, IPC, UTS and
  network namespaces (only a loopback interface: no network), its own session;
* a cleared environment: only what the cook sets;
* a **time limit**; when it passes, or when appbuild is interrupted or killed, the
  whole sandbox dies (``--die-with-parent``: bwrap and everything in its PID namespace).

If bwrap or the seccomp filter is not available the cook fails rather than building
unconfined.

**Package-script mode** (``userns=``, used by :mod:`appbuilder.assemble.scripts`): the
command runs in a :class:`~appbuilder.core.userns.MappedUserNamespace` (``--userns FD``,
many ids mapped to a host range, never host root) instead of a one-id namespace; bwrap
runs as the namespace's owner, so the root's host path must be reachable for it. With a
*writable* root (the staged image, bound as ``/``) and just the capabilities a package
script needs to own and set up files (*caps*, e.g. CAP_CHOWN, CAP_FOWNER,
CAP_DAC_OVERRIDE, CAP_FSETID, CAP_SETUID, CAP_SETGID), all of them valid only inside
that namespace. ``--disable-userns`` cannot be combined with ``--userns``, so the seccomp
filter itself refuses new user namespaces there (``clone`` with CLONE_NEWUSER and
``unshare`` fail with EPERM, ``clone3`` with ENOSYS so that the C library falls back to
``clone``). Network, PID, IPC and UTS isolation, the hostname, the cleared environment,
the time limit and the private ``/tmp``, ``/var/tmp`` and ``/run`` stay as above.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Sequence

from appbuilder.core.errors import BuildFailed, Interrupted

if TYPE_CHECKING:
    from appbuilder.core.userns import MappedUserNamespace

BASE_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

# system calls a build never needs and an escape would: refused with EPERM
BLOCKED_SYSCALLS = (
    "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "setns", "unshare",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "iopl", "ioperm",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "uselib", "nfsservctl",
)
# system calls waiting for the disk: done as if they had (returning 0) without waiting
SUPPRESSED_SYNC = ("sync", "syncfs", "fsync", "fdatasync", "sync_file_range", "sync_file_range2")
# ioctls that push input into the controlling terminal
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
CLONE_NEWUSER = 0x10000000


class TimeLimitExceeded(BuildFailed):
    """A sandboxed command passed its time limit and was killed."""


@dataclass(frozen=True)
class Bind:
    """A host path made visible inside the sandbox at *inside*."""

    host: Path
    inside: str
    writable: bool = False


@functools.lru_cache(maxsize=2)
def seccomp_program(no_new_userns: bool = False) -> bytes:
    """The compiled BPF filter bwrap installs (built once per process and mode).

    *no_new_userns*: also refuse new user namespaces (``clone`` with CLONE_NEWUSER: EPERM;
    ``clone3``, whose flags seccomp cannot see: ENOSYS), for the package-script mode where
    bwrap's ``--disable-userns`` is not available."""
    try:
        import seccomp
    except ImportError:
        raise BuildFailed("the libseccomp Python binding is missing (apt-get install python3-seccomp): "
                          "the build sandbox needs it") from None
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for arch in (seccomp.Arch.X86, seccomp.Arch.X32):
        try:
            f.add_arch(arch)
        except Exception:  # not possible here: programs of that arch are killed (libseccomp's default)
            pass
    refuse = seccomp.ERRNO(errno.EPERM)
    for name in BLOCKED_SYSCALLS:
        try:
            f.add_rule(refuse, name)
        except Exception:  # not a system call on this architecture
            pass
    for name in SUPPRESSED_SYNC:
        try:
            f.add_rule(seccomp.ERRNO(0), name)
        except Exception:  # not a system call on this architecture
            pass
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(refuse, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request))
    if no_new_userns:
        f.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
        try:
            f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        except Exception:  # no clone3 in this libseccomp
            pass
    fd = os.memfd_create("appbuild-seccomp-build", 0)
    with os.fdopen(fd, "w+b") as buf:
        f.export_bpf(buf)
        buf.seek(0)
        return buf.read()


def _program_fd(no_new_userns: bool = False) -> int:
    """A readable file descriptor holding the seccomp program, for one bwrap."""
    fd = os.memfd_create("appbuild-seccomp", 0)
    os.write(fd, seccomp_program(no_new_userns))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class Sandbox:
    """Runs commands confined in one build root with some directories bound."""

    # every sandboxed process running in this program, so Ctrl-C can stop them all
    _running: set[subprocess.Popen] = set()
    _lock = threading.Lock()
    _stopped = False  # set by kill_all: no new command may start afterwards

    @classmethod
    def kill_all(cls) -> None:
        """Stop every sandboxed build command and refuse new ones (the user interrupted)."""
        with cls._lock:
            cls._stopped = True
            running = list(cls._running)
        for proc in running:
            _kill(proc)

    def __init__(self, root: Path | None, binds: Sequence[Bind] = (), *, hostname: str = "appbuild",
                 timeout: float | None = None, holders: Sequence[str] = (),
                 links: Sequence[tuple[str, str]] = (), userns: "MappedUserNamespace | None" = None,
                 writable_root: bool = False, caps: Sequence[str] = ()):
        self.bwrap = shutil.which("bwrap")
        if not self.bwrap:
            raise BuildFailed("bubblewrap (bwrap) is not installed: the build sandbox needs it (apt-get install bubblewrap)")
        self.root = Path(root) if root is not None else None  # None: an empty read-only tmpfs
        self.links = list(links)  # (target, path) symlinks made in the root
        self.binds = list(binds)
        self.hostname = hostname
        self.timeout = timeout
        # directories (existing in the root) that only hold binds: an empty read-only tmpfs
        self.holders = list(holders)
        # package-script mode (see the module's docstring)
        self.userns = userns
        self.writable_root = writable_root
        self.caps = list(caps)
        if (writable_root or caps) and userns is None:
            raise BuildFailed("a writable root or capabilities need the package-script user namespace")
        if userns is not None and userns.fd is None:
            raise BuildFailed("the package-script user namespace is not open")

    def bind(self, host: Path, inside: str, *, writable: bool = False) -> None:
        """Make *host* visible at *inside* for the commands run from now on."""
        if not any(b.inside == inside for b in self.binds):
            self.binds.append(Bind(Path(host), inside, writable))

    def argv(self, command: Sequence[str], *, cwd: str, env: dict[str, str], seccomp_fd: int) -> list[str]:
        if self.userns is not None:
            user = ["--userns", str(self.userns.fd), "--uid", "0", "--gid", "0"]
            caps = ["--cap-drop", "ALL", *(arg for cap in self.caps for arg in ("--cap-add", cap))]
        else:
            user = ["--unshare-user", "--uid", "0", "--gid", "0", "--disable-userns"]
            caps = ["--cap-drop", "ALL"]
        if self.root:
            root = ["--bind" if self.writable_root else "--ro-bind", str(self.root), "/"]
        else:
            root = ["--tmpfs", "/"]
        args = [
            self.bwrap,
            *user,
            "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            *caps,
            "--hostname", self.hostname,
            "--die-with-parent", "--new-session",
            *root,
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",
            "--tmpfs", "/var/tmp",
            *(["--tmpfs", "/run"] if self.userns is not None else []),
        ]
        for holder in self.holders:
            args += ["--tmpfs", holder]
        for b in sorted(self.binds, key=lambda b: b.inside.count("/")):
            args += ["--bind" if b.writable else "--ro-bind", str(b.host), b.inside]
        for target, path in self.links:
            args += ["--symlink", target, path]
        for holder in [*self.holders, *([] if self.root else ["/"])]:
            args += ["--remount-ro", holder]
        args += ["--clearenv"]
        for key, value in sorted(env.items()):
            args += ["--setenv", key, value]
        args += ["--seccomp", str(seccomp_fd), "--chdir", cwd, "--", *command]
        return args

    def run(
        self,
        command: Sequence[str],
        *,
        cwd: str,
        env: dict[str, str],
        log: BinaryIO,
        echo: Callable[[bytes], None] | None = None,
        timeout: float | None = None,
        pass_fds: Sequence[int] = (),
        stdin: int | None = None,
        step: "re.Pattern[bytes] | None" = None,
    ) -> int:
        """Run *command* (in-sandbox *cwd*); its output goes to *log* (and *echo*).

        Returns the exit status. A command that outlives its time limit is killed with
        everything it started, and :class:`BuildFailed` says so. *pass_fds* stay open
        for the command (a pipe it answers on). *stdin*: a file descriptor the command reads
        (default: nothing, /dev/null). *step*: the command does many steps, each announced
        by an output line matching it (dpkg's ``Setting up PKG``); the time limit is then
        one step's, counted again from each such line.
        """
        limit = timeout if timeout is not None else self.timeout
        fd = _program_fd(self.userns is not None)
        extra_fds: list[int] = []
        popen_user: dict = {}
        if self.userns is not None:
            extra_fds.append(self.userns.fd)
            popen_user = self.userns.popen_user()
        try:
            with self._lock:  # starting and registering is atomic with respect to kill_all
                if Sandbox._stopped:
                    raise Interrupted("interrupted: the build was stopped and nothing was committed")
                proc = subprocess.Popen(
                    self.argv(command, cwd=cwd, env=env, seccomp_fd=fd),
                    stdin=subprocess.DEVNULL if stdin is None else stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(fd, *extra_fds, *pass_fds),
                    **popen_user,
                )
                self._running.add(proc)
        finally:
            os.close(fd)
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _kill(proc, wait=False)

        def start_timer() -> threading.Timer | None:
            if not limit:
                return None
            started = threading.Timer(limit, expire)
            started.daemon = True
            started.start()
            return started

        timer = start_timer()
        start = time.monotonic()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if echo:
                    echo(line)
                if step is not None and timer and not expired.is_set() and step.match(line):
                    timer.cancel()
                    timer = start_timer()
                    start = time.monotonic()
            status = proc.wait()
        except KeyboardInterrupt:
            _kill(proc)
            raise Interrupted("interrupted: the build was stopped and nothing was committed") from None
        except BaseException:
            _kill(proc)
            raise
        finally:
            if timer:
                timer.cancel()
            with self._lock:
                self._running.discard(proc)
        if expired.is_set():
            raise TimeLimitExceeded(
                f"{_describe(command)} was stopped after {time.monotonic() - start:.0f} s: it passed the time limit "
                f"of {limit:g} s for one build command (the recipe's buildTimeout, or cook: command_timeout in "
                f"repo/config.yaml)"
            )
        return status


def _describe(command: Sequence[str]) -> str:
    text = " ".join(command)
    return text if len(text) < 120 else text[:117] + "..."


def _kill(proc: subprocess.Popen, *, wait: bool = True) -> None:
    """Kill bwrap's process group; ``--die-with-parent`` takes the whole sandbox with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if wait:
        proc.wait()


def build_env(*, extra: dict[str, str] | None = None, source_date_epoch: int) -> dict[str, str]:
    """The environment every build command starts with."""
    env = {
        "PATH": BASE_PATH,
        "HOME": "/tmp",
        "USER": "root",
        "LOGNAME": "root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "SHELL": "/bin/sh",
        "TERM": "dumb",
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
    }
    env.update(extra or {})
    return env
