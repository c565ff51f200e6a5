"""The ``appbuild`` command line: argument parsing and wiring, nothing else.

appbuild cook recipes/NAME [--arch x86_64|x86|all] [--force] [-j N]
appbuild query [NAME]
appbuild show NAME[=VERSION] [--files] [--deps] [--verify]
appbuild verify [TARGET] [-j N]
appbuild explain [ACTION]
appbuild graph --build [--format dot|graphml] [-o FILE]
appbuild gc
appbuild inspect IMAGE... [--json]
appbuild upload ami IMAGE_DIR_OR_MANIFEST [--endpoint URL] [--bucket B] --region R [--method import|ebs-direct]
appbuild import rpm FILE.rpm... | --repo PATH-OR-URL [--only NAME...] [--arch A] [--label L]
appbuild import deb PKG[:ARCH]... | FILE.deb... [--label L]
appbuild group-NAME --format F[,F...]|all --arch x86_64|x86|all [--version V]
appbuild images [group-NAME] | show group-NAME=VERSION | diff [group-NAME=]V1 [group-NAME=]V2
appbuild publish group-NAME=VERSION --to DIR|s3://BUCKET/PREFIX [--channel release|nightly] [--keep N]
appbuild rollback group-NAME --to VERSION [--dest DIR|s3://...] [--arch A]
appbuild serve [DIR] [--port P]
appbuild fs keygen --repo NAME -o DIR | publish DIR --repo NAME --to OUT [--key FILE] | check OUT/NAME --pub FILE
appbuild context make USER-DATA.ini -o CTX.iso|CTX.img [--add FILE...]
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys

from appbuilder import __version__
from appbuilder.cli import fs, groups, images, packages
from appbuilder.cli.images import build_image_parser
from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import load_settings
from appbuilder.core.ui import Console


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appbuild", description="Build versioned packages and appliance images from recipes.")
    p.add_argument("--version", action="version", version=f"appbuild {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for area in (packages, groups, images, fs):
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


def _terminate(signum, frame) -> None:
    """SIGTERM stops appbuild as Ctrl-C does: running builds are killed, nothing half-done stays."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
