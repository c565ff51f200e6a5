"""Split debug information off ELF objects into ``:debuginfo``.

For every unstripped ELF executable or shared library in the install root,
``objcopy --only-keep-debug`` writes ``/usr/lib/debug/PATH.debug``, the object is
stripped (``--strip-all`` for programs, ``--strip-unneeded`` for libraries,
``--strip-debug`` for relocatable objects and static archives) and linked to its debug
file with ``.gnu_debuglink``. Files with several hard links are left alone.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from appbuilder.errors import BuildFailed
from appbuilder.policy.elf import is_elf, read_elf_file

AR_MAGIC = b"!<arch>\n"


def _objcopy(args: list[str]) -> None:
    proc = subprocess.run(["objcopy", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildFailed(f"objcopy {' '.join(args)} failed: {proc.stderr.strip()}")


def strip_tree(root: Path, debuglibdir: str, exceptions: tuple[str, ...] = ()) -> list[str]:
    """Strip ELF objects under *root*; returns the in-image paths of the debug files written."""
    skip = [re.compile(p) for p in exceptions]
    debug_root = root / debuglibdir.lstrip("/")
    written: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if Path(dirpath) == debug_root or debug_root in Path(dirpath).parents:
            continue
        for name in sorted(filenames):
            host = Path(dirpath, name)
            path = "/" + str(host.relative_to(root))
            st = host.lstat()
            if not host.is_file() or host.is_symlink() or st.st_nlink > 1 or any(r.fullmatch(path) for r in skip):
                continue
            with open(host, "rb") as f:
                head = f.read(8)
            if head == AR_MAGIC:
                _objcopy(["--strip-debug", str(host)])
                os.chmod(host, st.st_mode & 0o7777)
                continue
            if not is_elf(head):
                continue
            info = read_elf_file(str(host))
            if info is None or not (info.has_debug or info.has_symtab):
                continue
            mode = st.st_mode & 0o7777
            if info.type == "ET_REL":
                _objcopy(["--strip-debug", str(host)])
            elif info.type in ("ET_EXEC", "ET_DYN"):
                debug_file = debug_root / (path.lstrip("/") + ".debug")
                debug_file.parent.mkdir(parents=True, exist_ok=True)
                if info.has_debug:
                    _objcopy(["--only-keep-debug", "--compress-debug-sections", str(host), str(debug_file)])
                    os.chmod(debug_file, 0o644)
                    written.append("/" + str(debug_file.relative_to(root)))
                strip = "--strip-unneeded" if info.is_shared_library else "--strip-all"
                _objcopy([strip, str(host)])
                if info.has_debug:
                    _objcopy([f"--add-gnu-debuglink={debug_file}", str(host)])
            os.chmod(host, mode)
    return written
