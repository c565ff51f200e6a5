"""The build sandbox: bubblewrap with no network, and only the build dirs writable.

Each build command runs in a fresh ``bwrap`` with:

* the host root bind-mounted **read-only** (the host provides the toolchain),
* the cook's work directory (sources, build and install root) bound read-write,
* private ``/tmp``, ``/dev`` and ``/proc``, new PID, IPC, UTS and network namespaces
  (only a loopback interface: no network at all),
* a cleared environment: only what the cook sets (compiler flags, ``PATH``,
  ``SOURCE_DATE_EPOCH``, ...).

bwrap works for root and, through user namespaces, for unprivileged users. If it
cannot create a sandbox, the cook fails rather than building unconfined.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

from appbuilder.errors import BuildFailed, Interrupted

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Sandbox:
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

    def __init__(self, writable: Sequence[Path], readonly: Sequence[Path] = (), *, hostname: str = "appbuild"):
        self.bwrap = shutil.which("bwrap")
        if not self.bwrap:
            raise BuildFailed("bubblewrap (bwrap) is not installed: the build sandbox needs it (apt-get install bubblewrap)")
        self.writable = [Path(p) for p in writable]
        self.readonly = [Path(p) for p in readonly]
        self.hostname = hostname

    def argv(self, command: Sequence[str], *, cwd: Path, env: dict[str, str]) -> list[str]:
        args = [
            self.bwrap,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",
            "--tmpfs", "/var/tmp",
            "--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts",
            "--hostname", self.hostname,
            "--die-with-parent", "--new-session",
            "--clearenv",
        ]
        for path in self.writable:
            args += ["--bind", str(path), str(path)]
        for path in self.readonly:
            args += ["--ro-bind", str(path), str(path)]
        for key, value in sorted(env.items()):
            args += ["--setenv", key, value]
        args += ["--chdir", str(cwd), "--", *command]
        return args

    def run(
        self,
        command: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str],
        log: BinaryIO,
        echo: Callable[[bytes], None] | None = None,
    ) -> int:
        """Run *command*; its output goes to *log* (and *echo*). Returns the exit status."""
        with self._lock:  # starting and registering is atomic with respect to kill_all
            if Sandbox._stopped:
                raise Interrupted("interrupted: the build was stopped and nothing was committed")
            proc = subprocess.Popen(
                self.argv(command, cwd=cwd, env=env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._running.add(proc)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if echo:
                    echo(line)
            return proc.wait()
        except KeyboardInterrupt:
            _kill(proc)
            raise Interrupted("interrupted: the build was stopped and nothing was committed") from None
        except BaseException:
            _kill(proc)
            raise
        finally:
            with self._lock:
                self._running.discard(proc)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def build_env(*, path_prefix: Sequence[str] = (), extra: dict[str, str] | None = None,
              source_date_epoch: int) -> dict[str, str]:
    """The environment every build command starts with."""
    env = {
        "PATH": ":".join([*path_prefix, BASE_PATH]),
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "SHELL": "/bin/sh",
        "TERM": "dumb",
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
    }
    env.update(extra or {})
    return env
