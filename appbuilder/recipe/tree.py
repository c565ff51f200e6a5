"""The files of a recipe directory, as appbuild counts them.

A recipe's directory holds ``recipe.py`` and what it uses (local sources, patches,
configuration files). :func:`recipe_tree` walks it in a fixed order: the cook's source
hash (:mod:`appbuilder.cook.inputs`), the recipe text a cooked package keeps and the
kept answers of reading a recipe (:mod:`appbuilder.recipe.answers`) all see the same
files. Byte-compiled files, editor backups (``NAME~``), ``__pycache__`` and ``.git``
are not counted; a symbolic link counts as its target (``link:TARGET``), not as what
it points at, and anything else that is not a regular file (a FIFO, a device, a socket)
as its kind (``special:MODE``), never read: reading a FIFO would wait forever.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

IGNORED_NAMES = {"__pycache__", ".git"}
# how the content of a file that is not read begins (a symbolic link, a FIFO, a device, a socket)
UNREAD = (b"link:", b"special:")


def recipe_tree(recipe_dir: Path) -> Iterator[tuple[str, bytes]]:
    """(relative path, content) of each file of a recipe directory, in order (a symlink's
    content is ``link:TARGET``, another file that is not a regular one ``special:MODE``)."""
    for dirpath, dirnames, filenames in os.walk(recipe_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_NAMES)
        for name in sorted(filenames):
            if name.endswith((".pyc", "~")):
                continue
            path = Path(dirpath, name)
            rel = path.relative_to(recipe_dir).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                yield rel, b"link:" + os.readlink(path).encode()
            elif stat.S_ISREG(mode):
                yield rel, path.read_bytes()
            else:
                yield rel, b"special:%o" % stat.S_IFMT(mode)
