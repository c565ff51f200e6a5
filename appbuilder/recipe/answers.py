"""Kept answers: a recipe nobody changed is not read again.

Reading a recipe (:mod:`appbuilder.recipe.evaluate`) starts a Python interpreter in the
sandbox, about 0.1 s each time; one ``appbuild cook`` reads the recipe, the toolchain
group (twice: is anything to import? which build root?) and the recipe's ``setup``.
An answer depends only on what the sandbox shows the recipe and on the question:

* the recipe's directory (every file :func:`appbuilder.recipe.tree.recipe_tree` counts,
  as the cook's source hash does) or, for a group, its file;
* the recipe library files it loads (``loadSuperClass``), by name and content;
* the question: load or ``setup``, the path, the architecture, the jobs, the flags;
* appbuild's own code (every module of the package the sandbox binds) and the interpreter.

So each successful answer is kept in the cache directory (``paths.cache``, in
``recipe-answers/``) under the sha256 of all of these, and the next read with the same
key uses it. A kept answer is checked before it is used: its file holds the sha256 of
its text and the key it answers, and a file that does not match (damaged, cut short, or
written for another key) is ignored and replaced. What comes back then goes through
the same checks as a fresh answer (:mod:`appbuilder.recipe.loader` makes the recipe
objects anew from it). Errors are never kept: a broken recipe is read, and its error
said, every time. The directory keeps at most :data:`MAX_KEPT` answers, the least
recently used going first.

Like the cook's source hash, this assumes that a recipe answers the same when nothing
it can see changed: a recipe whose answer depends on the clock or on chance is not
rebuildable anyway.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import write_atomic
from appbuilder.recipe.library import library_files
from appbuilder.recipe.tree import recipe_tree

FORMAT = 1  # of the key and the kept file: a new one ignores every older answer
DIRECTORY = "recipe-answers"
MAX_KEPT = 4096
_lock = threading.Lock()
_place: Path | None = None
_kept = 0  # answers this process kept: the directory is trimmed at the first, then every TRIM_EVERY
TRIM_EVERY = 256


@contextmanager
def kept_in(cache: Path | None) -> Iterator[None]:
    """Keep and use answers under *cache*/``recipe-answers`` while the block runs (None:
    none are kept, every recipe is read in the sandbox)."""
    global _place
    with _lock:
        before, _place = _place, (Path(cache) / DIRECTORY if cache is not None else None)
    try:
        yield
    finally:
        with _lock:
            _place = before


def key_of(item: dict) -> str | None:
    """The key of the answer to *item* (an :func:`appbuilder.recipe.evaluate.evaluate`
    question), or None when no answer is kept (no cache directory, or what the recipe
    sees cannot be read: the sandbox says why)."""
    if _place is None:
        return None
    path = Path(item["path"])
    h = hashlib.sha256(f"appbuild recipe answer {FORMAT}\0{_code_digest()}\0".encode())
    h.update(json.dumps(item, sort_keys=True).encode() + b"\0")
    try:
        if item["kind"] == "package":
            for rel, content in recipe_tree(path.parent):
                h.update(b"file\0" + rel.encode() + b"\0" + content + b"\0")
        else:
            h.update(b"group\0" + path.read_bytes() + b"\0")
        for library in library_files(path):
            h.update(b"library\0" + str(library).encode() + b"\0" + library.read_bytes() + b"\0")
    except (OSError, AppbuildError):
        return None
    return h.hexdigest()


def look_up(key: str | None) -> dict | None:
    """The answer kept under *key*, checked; None when there is none (or it is damaged)."""
    place = _place
    if key is None or place is None:
        return None
    path = place / f"{key}.json"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, _, body = data.partition(b"\n")
    try:
        digest, kept_key = head.decode("ascii").split(" ")
        if kept_key != key or hashlib.sha256(body).hexdigest() != digest:
            return None
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict) or "ok" not in answer or "error" in answer:
        return None
    try:
        os.utime(path)  # recently used: the last to go
    except OSError:
        pass
    return answer


def keep(key: str | None, answer: dict) -> None:
    """Keep a successful *answer* under *key* (best effort: a cache that cannot be written
    only means the recipe is read again next time)."""
    place = _place
    if key is None or place is None or "ok" not in answer or "error" in answer:
        return
    global _kept
    body = json.dumps(answer, sort_keys=True).encode()
    try:
        write_atomic(place / f"{key}.json", f"{hashlib.sha256(body).hexdigest()} {key}\n".encode() + body,
                     durable=False)
        with _lock:
            _kept += 1
            trim = _kept % TRIM_EVERY == 1
        if trim:
            _trim(place)
    except OSError:
        pass


STALE_TEMPORARY = 3600  # seconds: a temporary file this old was left by a process killed while keeping


def _trim(place: Path) -> None:
    """Remove the least recently used answers beyond :data:`MAX_KEPT` (a quarter at once),
    and the temporary files of answers whose keeping was cut short."""
    entries = []
    stale = time.time() - STALE_TEMPORARY
    with os.scandir(place) as it:
        for e in it:
            if e.name.endswith(".json"):
                entries.append(e)
            elif e.name.startswith(".") and e.name.endswith(".tmp"):
                try:
                    if e.stat().st_mtime < stale:
                        os.unlink(e.path)
                except OSError:
                    pass
    if len(entries) <= MAX_KEPT:
        return
    aged = []
    for e in entries:
        try:
            aged.append((e.stat().st_mtime_ns, e.path))
        except OSError:
            continue
    for _, name in sorted(aged)[: len(aged) - MAX_KEPT * 3 // 4]:
        try:
            os.unlink(name)
        except OSError:
            pass


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """sha256 over appbuild's modules (all of them: the sandbox binds the whole package)
    and the interpreter that reads the recipes."""
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(f"{os.path.realpath(sys.executable)}\0{sys.version}\0".encode())
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
