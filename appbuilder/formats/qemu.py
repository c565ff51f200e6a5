"""Running qemu-img (and other converters) so that they can all be stopped at once.

Conversions run in worker threads, each waiting on one child process. A
:class:`Processes` set remembers the children of one batch; :meth:`Processes.stop`
terminates them all (on Ctrl-C or when one conversion fails) and makes any later
:meth:`Processes.run` refuse to start, so a batch winds down promptly.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Sequence

from appbuilder.core.errors import AppbuildError

QEMU_IMG = "qemu-img"
CHECK_UNSUPPORTED = 63  # qemu-img check: "This image format does not support checks"


class ConversionError(AppbuildError):
    """A converter failed, or its output did not pass verification."""


class Cancelled(AppbuildError):
    """The batch was stopped before this step could finish."""


class Processes:
    """The child processes of one batch of conversions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen] = set()
        self.stopped = threading.Event()

    def run(self, argv: Sequence[str | Path], *, what: str, ok: Sequence[int] = (0,)) -> tuple[int, str, str]:
        """Run *argv* to completion; (returncode, stdout, stderr). Raises on other codes."""
        argv = [str(a) for a in argv]
        with self._lock:
            if self.stopped.is_set():
                raise Cancelled(f"{what}: stopped")
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
            except FileNotFoundError:
                raise ConversionError(f"{what}: {argv[0]} is not installed") from None
            self._live.add(proc)
        try:
            out, err = proc.communicate()
        finally:
            with self._lock:
                self._live.discard(proc)
        if self.stopped.is_set():
            raise Cancelled(f"{what}: stopped")
        if proc.returncode not in ok:
            cmd = " ".join(argv)
            raise ConversionError(f"{what} failed (exit {proc.returncode}): {cmd}\n{(err or out).strip()}")
        return proc.returncode, out, err

    def stop(self, grace: float = 5.0) -> None:
        """Terminate every running child (SIGTERM, then SIGKILL after *grace* s) and wait for them."""
        self.stopped.set()
        with self._lock:
            live = list(self._live)
        for proc in live:
            if proc.poll() is None:
                proc.terminate()
        for proc in live:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

def info(path: str | Path, fmt: str | None = None, *, runner: Processes | None = None) -> dict:
    """``qemu-img info --output=json`` of *path* (``-U``: fine while others read it)."""
    argv = [QEMU_IMG, "info", "-U", "--output=json"] + (["-f", fmt] if fmt else []) + [str(path)]
    if runner is None:
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ConversionError(f"qemu-img info {path} failed: {proc.stderr.strip()}")
        out = proc.stdout
    else:
        _, out, _ = runner.run(argv, what=f"qemu-img info {Path(path).name}")
    return json.loads(out)


def check(path: str | Path, fmt: str, *, runner: Processes | None = None) -> bool | None:
    """``qemu-img check``: True if clean, None if the format has no checks (vpc, raw)."""
    argv = [QEMU_IMG, "check", "-f", fmt, str(path)]
    what = f"qemu-img check {Path(path).name}"
    if runner is None:
        proc = subprocess.run(argv, capture_output=True, text=True)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        rc, out, err = runner.run(argv, what=what, ok=(0, 1, 2, 3, CHECK_UNSUPPORTED))
    if rc == CHECK_UNSUPPORTED:
        return None
    if rc != 0:
        raise ConversionError(f"{what}: the image is not consistent (exit {rc}):\n{(out + err).strip()}")
    return True


def convert_argv(src: Path, dst: Path, *, fmt: str, options: str = "", compress: bool = False,
                 src_fmt: str = "raw") -> list[str]:
    """The ``qemu-img convert`` command line for one conversion (in-order writes: reproducible)."""
    argv = [QEMU_IMG, "convert", "-f", src_fmt, "-O", fmt]
    if options:
        argv += ["-o", options]
    if compress:
        argv.append("-c")
    return argv + [str(src), str(dst)]
