"""Build roots: the file system a cook's commands see, made from troves, never the host.

A build root is the closure of the toolchain group (``groups/group-toolchain.py``: the
pinned compiler, binutils, C library, shell and tools) with the closure of a recipe's
``buildRequires`` laid over it, as rMake's chroots and osbuild's buildroots were, but
without root: the sandbox binds it read-only as ``/``.

Roots are cached under ``cache/buildroots/``:

* ``files/ab/SHA256.MODE``: each file content the roots use, decompressed from the
  content store once (and checked against its sha256 on the way), with its mode
  (setuid/setgid bits and write permission removed);
* ``roots/KEY/root``: one tree per distinct content, where KEY is the sha256 over every
  path, type, mode and content of the root. Its regular files are hard links into
  ``files/``, so a second root sharing most of the toolchain costs only its directory
  entries, and a root whose key exists is used as it is.

A root is written into a temporary directory and renamed into place when complete, so
a killed cook leaves no half-made root (the next run sweeps the leftover). Paths are
laid out as the root itself would resolve them (its own symlinks, absolute ones
starting at its top), so no entry can be written outside it. Only the most recently
used roots are kept (``keep``); contents no kept root uses are removed with them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from appbuilder.cook.archive import LinkResolver
from appbuilder.core.errors import BuildFailed
from appbuilder.core.fileio import hold_lock, lock_is_free, remove_tree
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry, Trove

FORMAT = 1  # bump when the way roots are laid out changes: every key changes with it
KEEP_ROOTS = 6
# directories the sandbox mounts over or binds into; they exist in every root
MOUNT_POINTS = ("dev", "proc", "sys", "tmp", "var/tmp", "run", "build", "sources")
ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "etc/hostname": "appbuild\n",
}


def _root_mode(entry: FileEntry) -> int:
    """Build roots are read-only and never setuid: read for all, execute as the package says."""
    if entry.type == "dir":
        return 0o755
    return 0o444 | (entry.mode & 0o111)


@dataclass(frozen=True)
class RootPlan:
    """What one build root holds: its entries by path, and the key naming it."""

    entries: dict[str, FileEntry]  # in-root path -> entry (files, dirs, symlinks)
    key: str
    replaced: tuple[str, ...]  # "PATH: A replaced by B" for paths a later layer overrode
    members: tuple[str, ...]  # the troves it was made from

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries.values() if e.type in ("file", "hardlink"))


def plan_root(layers: Sequence[Iterable[Trove]], links: dict[str, str] | None = None) -> RootPlan:
    """Merge the files of *layers* (later layers win on a path), plus *links*.

    Devices and fifos are left out: the sandbox provides ``/dev``.
    """
    entries: dict[str, FileEntry] = {}
    owner: dict[str, str] = {}
    replaced: list[str] = []
    members: list[str] = []
    for layer in layers:
        for trove in layer:
            members.append(str(trove.nvf))
            for f in trove.files:
                if f.type not in ("file", "hardlink", "dir", "symlink"):
                    continue
                old = entries.get(f.path)
                if old is not None and old.type != "dir" and _identity(old) != _identity(f):
                    replaced.append(f"{f.path}: {owner[f.path]} replaced by {trove.name}")
                if old is None or f.type != "dir" or old.type != "dir":
                    entries[f.path] = f
                    owner[f.path] = trove.name
    for path, target in sorted((links or {}).items()):
        if not path.startswith("/") or ".." in path.split("/"):
            raise BuildFailed(f"build root link {path!r} must be an absolute path without '..'")
        if path not in entries:
            entries[path] = FileEntry(path=path, type="symlink", mode=0o777, target=target)
    digest = hashlib.sha256(f"appbuild build root format {FORMAT}\n".encode())
    for path in sorted(entries):
        e = entries[path]
        what = e.sha256 if e.type in ("file", "hardlink") else (e.target or "")
        digest.update(f"{path}\0{e.type if e.type != 'hardlink' else 'file'}\0{_root_mode(e):o}\0{what}\n".encode())
    return RootPlan(entries, digest.hexdigest(), tuple(replaced), tuple(members))


def _identity(f: FileEntry) -> tuple:
    return ("file" if f.type == "hardlink" else f.type, f.sha256, f.target if f.type == "symlink" else None,
            _root_mode(f))


class BuildRoots:
    """The cache of build roots of one workspace (``cache/buildroots``)."""

    def __init__(self, cache: Path, store: ContentStore, *, keep: int = KEEP_ROOTS):
        self.top = Path(cache) / "buildroots"
        self.files = self.top / "files"
        self.roots = self.top / "roots"
        self.store = store
        self.keep = keep

    def path_of(self, key: str) -> Path:
        return self.roots / key / "root"

    @contextlib.contextmanager
    def use(self, plan: RootPlan, *, log: Callable[[str], None] = lambda s: None,
            finish: Callable[[Path], None] | None = None) -> Iterator[Path]:
        """The root directory of *plan* (the cached one, or a new one made now), kept from
        the sweep for as long as the caller is in the ``with`` block.

        *finish* runs on a new root before it is published. *log* gets one line naming the
        root, the same whether it was made now or found (a build log must not depend on
        what a machine's cache held).
        """
        self.roots.mkdir(parents=True, exist_ok=True)
        with _flocked(self.top / ".lock", fcntl.LOCK_SH):  # no sweep while roots are being made
            root = self._get(plan, finish)
            log(f"build root {plan.key[:16]}: {self._entries(root)} entries, {plan.size / 1e6:.1f} MB from "
                f"{len(plan.members)} troves")
            in_use = os.open(root.parent / ".lock", os.O_RDONLY | os.O_CLOEXEC)
            fcntl.flock(in_use, fcntl.LOCK_SH)
        try:
            yield root
        finally:
            os.close(in_use)
        self.sweep()

    def _entries(self, root: Path) -> object:
        try:
            return json.loads((root.parent / "manifest.json").read_text())["entries"]
        except (OSError, ValueError, KeyError, TypeError):
            return "?"

    def _get(self, plan: RootPlan, finish: Callable[[Path], None] | None) -> Path:
        root = self.path_of(plan.key)
        if not (root.parent / "manifest.json").is_file():
            with _flocked(self.roots / f".{plan.key}.making", fcntl.LOCK_EX):  # one maker per root
                if not (root.parent / "manifest.json").is_file():
                    self._make(plan, finish)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.roots / f".{plan.key}.making")
        os.utime(root.parent / "manifest.json")  # most recently used
        return root

    def _make(self, plan: RootPlan, finish: Callable[[Path], None] | None) -> None:
        root = self.path_of(plan.key)
        self.files.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.roots, prefix="tmp-"))
        lock = hold_lock(tmp)
        try:
            count = self._write(plan, tmp / "root")
            if finish:
                finish(tmp / "root")
            manifest = {"key": plan.key, "format": FORMAT, "members": list(plan.members),
                        "entries": count, "bytes": plan.size, "replaced": list(plan.replaced)}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            try:
                os.rename(tmp, root.parent)
            except OSError:  # another cook made the same root meanwhile
                if not (root.parent / "manifest.json").is_file():
                    raise
        finally:
            os.close(lock)
            if tmp.exists():
                remove_tree(tmp)

    def _write(self, plan: RootPlan, top: Path) -> int:
        symlinks = {p.lstrip("/"): e.target for p, e in plan.entries.items() if e.type == "symlink"}
        resolver = LinkResolver(symlinks, rooted=True)
        top.mkdir()
        made_dirs: set[str] = {""}
        for path in sorted(plan.entries):
            e = plan.entries[path]
            parent = resolver.resolve(posixpath.dirname(path))
            if parent is None:
                raise BuildFailed(f"build root: {path}: its directory is a symlink loop")
            self._mkdirs(top, parent, made_dirs)
            host = top / parent / posixpath.basename(path) if parent else top / posixpath.basename(path)
            if e.type == "dir":
                rel = f"{parent}/{posixpath.basename(path)}" if parent else posixpath.basename(path)
                if os.path.islink(host) or (host.exists() and not host.is_dir()):
                    os.unlink(host)
                self._mkdirs(top, rel, made_dirs)
                continue
            if os.path.lexists(host):
                if host.is_dir() and not host.is_symlink():
                    remove_tree(host)
                else:
                    os.unlink(host)
            if e.type == "symlink":
                os.symlink(e.target, host)
            else:
                os.link(self._content(e), host)
        for rel in MOUNT_POINTS:
            self._mkdirs(top, rel, made_dirs)
        for rel, text in ETC_FILES.items():
            self._mkdirs(top, posixpath.dirname(rel), made_dirs)
            target = top / rel
            if not os.path.lexists(target):
                target.write_text(text)
                target.chmod(0o444)
        return len(plan.entries)

    @staticmethod
    def _mkdirs(top: Path, rel: str, made: set[str]) -> None:
        """Create the real directory *rel* (a resolved path: no symlink in it) under *top*."""
        if rel in made:
            return
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub in made:
                continue
            host = top / sub
            if os.path.islink(host) or (os.path.lexists(host) and not host.is_dir()):
                os.unlink(host)
            if not host.is_dir():
                host.mkdir(mode=0o755)
            made.add(sub)

    def _content(self, entry: FileEntry) -> Path:
        """The unpacked, verified content of *entry* with its root mode (made once)."""
        mode = _root_mode(entry)
        path = self.files / entry.sha256[:2] / f"{entry.sha256}.{mode:o}"
        if path.exists():
            return path
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        os.close(fd)
        try:
            self.store.copy_to(entry.sha256, tmp)
            os.chmod(tmp, mode)
            # never replace a published content file: a root being made right now may be
            # linking it, and a link to an inode that a rename just dropped fails
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return path

    # ------------------------------------------------------------ upkeep

    def sweep(self) -> None:
        """Drop leftovers of killed runs, all but the *keep* most recently used roots (none
        that a cook is using), and the contents no remaining root uses. Skipped while
        another process is making a root."""
        if not self.roots.is_dir():
            return
        lock = os.open(self.top / ".lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            return
        try:
            done = []
            for d in self.roots.iterdir():
                if not d.is_dir():
                    continue
                if (d / "manifest.json").is_file():
                    done.append(((d / "manifest.json").stat().st_mtime, d))
                elif lock_is_free(d):
                    remove_tree(d)  # a root whose maker was killed
            done.sort(reverse=True)
            if len(done) <= self.keep:
                return
            for _, d in done[self.keep:]:
                if lock_is_free(d):  # nobody cooks in it
                    remove_tree(d)
            for sub in self.files.iterdir():
                for f in sub.iterdir():
                    with contextlib.suppress(FileNotFoundError):
                        if f.stat().st_nlink == 1:
                            f.unlink()
        finally:
            os.close(lock)


@contextlib.contextmanager
def _flocked(path: Path, operation: int) -> Iterator[int]:
    """Hold an flock on *path* (created if missing) for the ``with`` block."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, operation)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield fd
    finally:
        os.close(fd)
