"""Split debug information off ELF objects into ``:debuginfo``.

For every unstripped ELF executable or shared library in the install root,
``objcopy --only-keep-debug`` writes ``/usr/lib/debug/PATH.debug``, the object is
stripped (``--strip-all`` for programs, ``--strip-unneeded`` for libraries,
``--strip-debug`` for relocatable objects and static archives) and linked to its debug
file with ``.gnu_debuglink``. Files with several hard links are left alone.

The install root is read on the host through directory fds, never through a symlink,
and debug directories are made beneath it (a ``/usr/lib/debug`` planted as a symlink
leading out fails the build). objcopy itself is the build root's (the pinned
toolchain's, so its output does not depend on the machine): the policy hands the
command lines to a runner, which in a cook runs them all in one sandboxed command that
sees the install root at *inside*.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Callable

from appbuilder.core.beneath import Beneath
from appbuilder.core.errors import BuildFailed
from appbuilder.policy.elf import is_elf, read_elf

AR_MAGIC = b"!<arch>\n"


# runs objcopy command lines (argument lists, without "objcopy"), in order
ObjcopyRunner = Callable[[list[list[str]]], None]


def _inspect(dirfd: int, name: str, st: os.stat_result):
    """``"ar"``, the ElfInfo of an ELF object, or None for anything else."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
    with os.fdopen(fd, "rb") as f:
        if not os.path.samestat(os.fstat(fd), st):
            return None
        head = f.read(8)
        if head == AR_MAGIC:
            return "ar"
        if not is_elf(head):
            return None
        f.seek(0)
        return read_elf(f)


def strip_tree(root: Path, debuglibdir: str, exceptions: tuple[str, ...] = (), *,
               objcopy: ObjcopyRunner, inside: str | None = None) -> list[str]:
    """Strip ELF objects under *root*; returns the in-image paths of the debug files written.

    *objcopy* runs the planned command lines, in which the install root is named
    *inside* (where the runner's objcopy sees *root*; by default *root* itself).
    """
    inside = (str(root) if inside is None else inside).rstrip("/")
    skip = [re.compile(p) for p in exceptions]
    debug_top = "/" + "/".join(Beneath.parts(debuglibdir))
    commands: list[list[str]] = []
    modes: list[tuple[str, int]] = []
    written: list[str] = []
    with Beneath(root, label="install root", absolute=True, error=BuildFailed) as tree:
        for dir_path, dirfd, _st, entries in tree.walk():
            prefix = "" if dir_path == "/" else dir_path
            entries[:] = [e for e in entries if f"{prefix}/{e.name}" != debug_top]  # never strip debug files
            for e in entries:
                path = f"{prefix}/{e.name}"
                if not stat.S_ISREG(e.st.st_mode) or e.st.st_nlink > 1 or any(r.fullmatch(path) for r in skip):
                    continue
                info = _inspect(dirfd, e.name, e.st)
                if info is None or (info != "ar" and not (info.has_debug or info.has_symtab)):
                    continue
                at = inside + path
                if info == "ar" or info.type == "ET_REL":
                    commands.append(["--strip-debug", at])
                elif info.type in ("ET_EXEC", "ET_DYN"):
                    debug_path = f"{debug_top}{path}.debug"
                    if info.has_debug:
                        _make_room(tree, debug_path)
                        commands.append(["--only-keep-debug", "--compress-debug-sections", at, inside + debug_path])
                        written.append(debug_path)
                    commands.append(["--strip-unneeded" if info.is_shared_library else "--strip-all", at])
                    if info.has_debug:
                        commands.append([f"--add-gnu-debuglink={inside + debug_path}", at])
                else:
                    continue
                modes.append((path, stat.S_IMODE(e.st.st_mode)))
        if commands:
            objcopy(commands)
        for path, mode in [*modes, *((d, 0o644) for d in written)]:
            tree.chmod(path, mode, follow=False)  # objcopy rewrites files; the modes are the package's
    return written


def _make_room(tree: Beneath, debug_path: str) -> None:
    """Make the directories of *debug_path* beneath the root, and remove whatever (a
    symlink) stands at it: objcopy writes its output by name."""
    with tree.parent(debug_path, create=True) as (debug_dir, debug_name):
        try:
            if not stat.S_ISDIR(os.stat(debug_name, dir_fd=debug_dir, follow_symlinks=False).st_mode):
                os.unlink(debug_name, dir_fd=debug_dir)
        except FileNotFoundError:
            pass
