"""Console output: plain lines for logs and pipes, colour on a terminal (rich)."""

from __future__ import annotations

import sys
import threading

from rich.console import Console as RichConsole
from rich.markup import escape


def human_size(n: float) -> str:
    """``1.5 MiB``-style sizes for people."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Console:
    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.rich = RichConsole(file=self.stream, highlight=False, soft_wrap=True)
        self.err = RichConsole(file=sys.stderr, highlight=False, soft_wrap=True)
        self._lock = threading.Lock()

    def _print(self, console: RichConsole, text: str, style: str | None = None) -> None:
        with self._lock:
            console.print(escape(text), style=style)

    def out(self, text: str) -> None:
        self._print(self.rich, text)

    def info(self, text: str) -> None:
        self._print(self.rich, text, "dim")

    def note(self, text: str) -> None:
        """A remark that is not the command's output (goes to stderr)."""
        self._print(self.err, text, "dim")

    def success(self, text: str) -> None:
        self._print(self.rich, text, "green")

    def warn(self, text: str) -> None:
        self._print(self.err, f"warning: {text}", "yellow")

    def error(self, text: str) -> None:
        self._print(self.err, f"error: {text}", "bold red")

    def build_output(self, line: str) -> None:
        self._print(self.rich, f"  | {line}", "dim")
