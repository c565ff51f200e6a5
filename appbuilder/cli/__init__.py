"""The ``appbuild`` command line: argument parsing and wiring, nothing else.

Each area's module (``packages``, ``groups``, ``images``, ``fs``, ``settings``) registers
its commands on the parser; that registration is the one list of commands
(``appbuild --help`` prints it; the README's examples are checked to parse). Options that
are settings come from the settings table (:func:`appbuilder.core.settings.add_flags`).
``appbuild group-NAME ...`` goes to the image builder's own parser.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sqlite3
import sys
import threading

from appbuilder import __version__
from appbuilder.cli import fs, groups, images, packages, repo
from appbuilder.cli import settings as settings_area
from appbuilder.cli.images import build_image_parser
from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import load_settings
from appbuilder.core.ui import Console
from appbuilder.recipe.answers import kept_in
from appbuilder.repository import index


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appbuild", description="Build versioned packages and appliance images from recipes.")
    p.add_argument("--version", action="version", version=f"appbuild {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for area in (packages, groups, images, fs, repo, settings_area):
        area.register(sub)
    return p


def _images_argv(argv: list[str]) -> list[str]:
    """``appbuild images [group-NAME]`` means ``appbuild images list [group-NAME]``."""
    if argv and argv[0] == "images" and (len(argv) == 1 or argv[1] not in ("list", "show", "diff", "-h", "--help")):
        return ["images", "list", *argv[1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    ui = Console()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_image_parser() if argv and argv[0].startswith("group-") else build_parser()
    args = parser.parse_args(_images_argv(argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    settings = None
    signal.signal(signal.SIGTERM, _terminate)
    try:
        settings = None if getattr(args, "no_workspace", False) else load_settings()
        with kept_in(settings.cache if settings else None):  # answers of reading recipes
            return args.func(args, settings, ui)
    except AppbuildError as exc:
        ui.error(str(exc))
        return exc.exit_code
    except sqlite3.DatabaseError as exc:  # last resort: the repository translates the errors it expects
        where = f" ({settings.repository / 'index.sqlite'})" if settings else ""
        ui.error(f"an SQLite database cannot be used: {exc}. If it is the repository index{where}, "
                 "`appbuild verify` checks it; restore a damaged one from a backup")
        return 1
    except KeyboardInterrupt:
        ui.error("interrupted")
        return 130
    except OSError as exc:  # last resort: the machine refused (permissions, a full disk), said in one line
        where = f": {exc.filename}" if exc.filename else ""
        ui.error(f"{exc.strerror or exc}{where} (refused by the operating system)")
        return 1


def run() -> None:
    """The ``appbuild`` program: :func:`main`, then a quick exit.

    Leaving a Python program has two parts: first what a program can see (threads
    joined, exit handlers run: logs flushed, temporary directories removed), then the
    interpreter's teardown, which frees every module and object one by one (0.05 s;
    0.15 s with Dask loaded, more than a remote cook's own scheduling) and changes
    nothing on disk, with one exception: SQLite connections still open close then, and
    the last one to the repository index folds its write-ahead log back into
    ``index.sqlite``. So: the first part as the interpreter does it, every index
    connection closed (:func:`appbuilder.repository.index.close_all`), the output
    flushed, then ``os._exit``. When a connection cannot be closed yet (a thread that
    opened it still runs) the program leaves the normal way."""
    status = main()
    for signum in (signal.SIGINT, signal.SIGTERM):  # from here a signal ends the program, no traceback
        signal.signal(signum, signal.SIG_DFL)
    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter runs first
    if shutdown is None:
        sys.exit(status)
    shutdown()
    atexit._run_exitfuncs()
    if not index.close_all():
        sys.exit(status)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: the normal exit says so
        sys.exit(status)
    os._exit(status)


def _terminate(signum, frame) -> None:
    """SIGTERM stops appbuild as Ctrl-C does: running builds are killed, nothing half-done stays."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    run()
