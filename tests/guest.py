"""A guest booted in QEMU that a test talks to through its serial console (the tests' own
harness; appbuild's boot check is :func:`appbuilder.verify.boot.boot_until`)."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from pathlib import Path

from appbuilder.core.errors import AppbuildError
from appbuilder.verify.boot import BootOptions, qemu_argv


class RunningGuest:
    """A guest booted in QEMU whose console a test reads line by line while it runs.

    ::

        with RunningGuest(image, opts) as guest:
            guest.wait_for("APPLIANCE-BOOT-OK")
            line = guest.wait_for(re.compile(r"CHECK (\\w+) (ok|FAILED)"), timeout=60)

    Each :meth:`wait_for` looks at the console lines after the last one it matched.
    Leaving the ``with`` block (or :meth:`stop`) kills QEMU.
    """

    def __init__(self, image: Path, opts: BootOptions):
        self.opts = opts
        self.start = time.monotonic()
        self.proc = subprocess.Popen(qemu_argv(image, opts), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._buffer = bytearray()
        self.lines: list[str] = []  # complete console lines so far
        self._cursor = 0  # lines before this one were looked at by wait_for

    def __enter__(self) -> "RunningGuest":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def console(self) -> str:
        return "\n".join(self.lines) + ("\n" + self._buffer.decode(errors="replace") if self._buffer else "")

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def _read(self, wait: float) -> bool:
        """Read what the console has (waiting up to *wait* seconds); False at end of output."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return True
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        self._buffer += chunk
        *complete, rest = self._buffer.split(b"\n")
        self.lines += [line.decode(errors="replace").rstrip("\r") for line in complete]
        self._buffer = bytearray(rest)
        return True

    def wait_for(self, pattern: str | re.Pattern, timeout: float | None = None, *, partial: bool = False) -> str:
        """The next console line containing *pattern* (a string, or a regular expression searched
        for); raises :class:`AppbuildError` with the console's tail when QEMU exits or the
        deadline (default: the boot options' timeout) passes first. With *partial*, a line
        whose end has not arrived yet counts too (a prompt such as ``login:``)."""
        deadline = time.monotonic() + (self.opts.timeout if timeout is None else timeout)
        match = pattern.search if isinstance(pattern, re.Pattern) else (lambda line: pattern in line)
        alive = True
        while True:
            while self._cursor < len(self.lines):
                line = self.lines[self._cursor]
                self._cursor += 1
                if match(line):
                    return line
            unfinished = self._buffer.decode(errors="replace")
            if partial and self._cursor == len(self.lines) and unfinished and match(unfinished):
                self._cursor += 1  # when this line is complete, it has been seen
                return unfinished
            if not alive or time.monotonic() > deadline:
                what = "QEMU exited" if not alive else f"no such line within {timeout or self.opts.timeout:.0f} s"
                tail = "\n".join(self.console.splitlines()[-60:])
                raise AppbuildError(f"waiting for {getattr(pattern, 'pattern', pattern)!r} on the console: {what}; "
                                    f"the console ends with:\n{tail}")
            alive = self._read(min(0.2, max(0.0, deadline - time.monotonic())))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
