"""Stage a group's closure as the root file system of an image, without root privileges.

Every member's files are written into a staging directory in path order: contents
from the content store, symlinks, hard links, directories, FIFOs. What an unprivileged
user cannot create on the host (owners other than its own, device nodes) and what the
host would make non-reproducible (ctimes) is recorded per path as an
:class:`ImageEntry`; the file system writer applies it inside the image
(``appbuilder.assemble.ext4``). Times are clamped to the image's SOURCE_DATE_EPOCH.

``/boot`` goes to the boot partition instead, and of the kernel's modules only those
the image keeps are staged.

**Merged /usr** (a group's ``mergedUsr``, as Debian since 12 and every EL since 7): the
top-level ``/bin``, ``/sbin``, ``/lib`` (and ``/lib32``, ``/lib64``, ``/libx32`` when a
member ships files there) are symlinks into ``/usr``, and a member's ``/bin/sh`` is staged
as ``/usr/bin/sh``, as dpkg or rpm would have written it through the link. Two members
writing one path that way (``/bin/x`` and ``/usr/bin/x``) are the same path. Generated files (accounts, fstab, hostname, release,
manifest) are added last and win over members' files of the same path.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from appbuilder.assemble.accounts import Accounts
from appbuilder.core.beneath import chmod_at
from appbuilder.core.errors import AppbuildError
from appbuilder.core.usrmerge import is_merged_dir, merged_links, merged_path
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry, Trove

DIR_MODE = 0o755


@dataclass
class ImageEntry:
    """Final metadata of one path in the image."""

    path: str
    type: str
    mode: int
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    rdev: int = 0


@dataclass
class GeneratedFile:
    path: str
    content: bytes
    mode: int = 0o644


@dataclass
class StagedRoot:
    directory: Path
    entries: dict[str, ImageEntry] = field(default_factory=dict)
    boot_files: dict[str, FileEntry] = field(default_factory=dict)  # /boot/NAME -> entry
    installed_size: int = 0
    # path -> (sha256 of the content written there, the file's state right after): while its
    # state (see file_state) is unchanged the path still holds that content, unread
    known: dict[str, tuple[str, tuple]] = field(default_factory=dict)

    def add(self, entry: ImageEntry) -> None:
        self.entries[entry.path] = entry

    def known_digest(self, path: str, host: Path) -> str | None:
        """The sha256 of the file *host* (the staged *path*) if it is still what was written there."""
        known = self.known.get(path)
        if known is None:
            return None
        try:
            return known[0] if file_state(os.lstat(host)) == known[1] else None
        except OSError:
            return None


def file_state(st: os.stat_result) -> tuple:
    """What changes whenever a file's content may have: its inode, size and change time.

    A write, truncation, rename onto the path or a new file there sets the change time to the
    present, which no unprivileged program can set back; the staged tree's writers make sure
    the clock has moved on before code they do not trust runs (see assemble/scripts.py)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_ctime_ns, stat.S_IFMT(st.st_mode))


class _Root:
    """The staging directory: where an image path is on the host, never outside it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.prefix = str(directory).rstrip("/")
        self.real = os.path.realpath(directory)
        # parents found inside the root: a staged directory never becomes a symlink later (a
        # member doing that is refused), so each parent is resolved once, not once per file
        self.inside: set[str] = set()

    def host(self, path: str) -> Path:
        if not path.startswith("/") or ".." in path.split("/"):
            raise AppbuildError(f"refusing to stage {path!r}")
        path = os.path.normpath(path)
        host = Path(self.prefix + path) if path != "/" else self.directory
        parent = path.rsplit("/", 1)[0] or "/"
        if parent not in self.inside:
            real = os.path.realpath(host.parent)
            if real != self.real and not real.startswith(self.real + os.sep):
                raise AppbuildError(f"{path} would be staged outside the image root (through a symlink)")
            self.inside.add(parent)
        return host


def _make_dir(host: Path, path: str, conflict: str) -> None:
    """Make the staging directory *host*; anything else already there (a member's file, or a
    symlink that would lead the directory's mode elsewhere) is a conflict between members."""
    try:
        os.mkdir(host, 0o700)
    except FileExistsError:
        if os.path.islink(host) or not os.path.isdir(host):
            raise AppbuildError(conflict) from None
    except NotADirectoryError:
        raise AppbuildError(conflict) from None


def _chmod_here(host: Path, mode: int) -> None:
    """chmod the staged entry *host* itself: a symlink there is never followed."""
    fd = os.open(host.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        chmod_at(fd, host.name, mode)
    finally:
        os.close(fd)


def stage_root(
    store: ContentStore,
    troves: list[Trove],
    dest: Path,
    *,
    accounts: Accounts,
    source_date_epoch: int,
    skip: set[str] = frozenset(),
    generated: list[GeneratedFile] = (),
    merged_usr: bool = False,
) -> StagedRoot:
    """Write *troves* (minus *skip* paths and ``/boot``) and *generated* files under *dest*;
    *merged_usr*: the top-level ``/bin``, ``/sbin``, ``/lib``... are links into ``/usr``."""
    dest.mkdir(parents=True, exist_ok=True)
    root = _Root(dest)
    staged = StagedRoot(dest)
    staged.add(ImageEntry("/", "dir", DIR_MODE, mtime=source_date_epoch))
    where = merged_path if merged_usr else (lambda path: path)
    if merged_usr:
        staged.add(ImageEntry("/usr", "dir", DIR_MODE, mtime=source_date_epoch))
        _make_dir(dest / "usr", "/usr", "/usr")
        for top in merged_links(f.path for t in troves for f in t.files):
            os.symlink(f"usr/{top}", dest / top)
            staged.add(ImageEntry(f"/{top}", "symlink", 0o777, mtime=source_date_epoch))

    def clamp(mtime: int) -> int:
        return min(mtime, source_date_epoch) if mtime else source_date_epoch

    def parents(path: str) -> None:
        _parents(staged, root, path, source_date_epoch)

    entries = sorted((f for t in troves for f in t.files), key=lambda f: where(f.path))
    staged.boot_files = boot_files(troves, skip)
    with _Writers(staged) as writers:
        _stage_entries(store, entries, root, staged, accounts, skip, where, merged_usr, clamp, parents, writers)
    _add_generated(staged, root, generated, source_date_epoch, where)
    return staged


def add_generated(staged: StagedRoot, generated: list[GeneratedFile], *, source_date_epoch: int,
                  merged_usr: bool = False) -> None:
    """Write *generated* files into the staged root (after staging, or after the package scripts
    ran in it), each in place of whatever is at its path; never through a symlink out of the root."""
    _add_generated(staged, _Root(staged.directory), generated, source_date_epoch,
                   merged_path if merged_usr else (lambda path: path))


def _add_generated(staged: StagedRoot, root: _Root, generated, source_date_epoch: int, where) -> None:
    for g in generated:
        path = where(g.path)
        _parents(staged, root, path, source_date_epoch)
        host = root.host(path)
        if host.is_dir() and not host.is_symlink():
            raise AppbuildError(f"{path} is a directory in the image: appbuild cannot write its file {g.path} there")
        if host.is_symlink() or host.exists():
            host.unlink()
        host.write_bytes(g.content)
        staged.known[path] = (hashlib.sha256(g.content).hexdigest(), file_state(os.lstat(host)))
        staged.add(ImageEntry(path, "file", g.mode, mtime=source_date_epoch))
        staged.installed_size += len(g.content)


def _parents(staged: StagedRoot, root: _Root, path: str, source_date_epoch: int) -> None:
    """The directories above *path* exist (made, with an entry, where missing)."""
    above = staged.entries.get(path.rsplit("/", 1)[0] or "/")
    if above is not None and above.type == "dir":  # staged with the directories above it
        return
    for parent in reversed(PurePosixPath(path).parents[:-1]):
        p = str(parent)
        if p not in staged.entries:
            staged.add(ImageEntry(p, "dir", DIR_MODE, mtime=source_date_epoch))
            _make_dir(root.host(p), p, f"{path} needs the directory {p}")
        elif staged.entries[p].type not in ("dir", "symlink"):
            raise AppbuildError(f"{path} needs the directory {p}, which a member holds as a {staged.entries[p].type}")


class _Writers:
    """File contents written by a few threads while the tree is laid out (decompressing,
    checking and writing release the interpreter): a path's pending write is waited for
    before anything else touches that path, every write before the block ends."""

    def __init__(self, staged: StagedRoot):
        from concurrent.futures import ThreadPoolExecutor

        from appbuilder.core.cpus import usable_cpus

        self.staged = staged
        self.pool = ThreadPoolExecutor(max(2, usable_cpus()), thread_name_prefix="stage")
        self.pending: dict[str, tuple[object, str]] = {}

    def write(self, path: str, digest: str, job) -> None:
        """Run *job* (writing the content *digest* at *path*; it returns the file's stat)."""
        self.pending[path] = (self.pool.submit(job), digest)

    def settle(self, path: str) -> None:
        """The write of *path*, if one is pending, is done (its error raised) and known."""
        pending = self.pending.pop(path, None)
        if pending is not None:
            future, digest = pending
            self.staged.known[path] = (digest, file_state(future.result()))

    def __enter__(self) -> "_Writers":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            for path in list(self.pending):
                if kind is None:
                    self.settle(path)
                else:
                    self.pending.pop(path)[0].cancel()
        finally:
            self.pool.shutdown(wait=True)


def _stage_entries(store, entries, root: _Root, staged, accounts, skip, where, merged_usr, clamp, parents,
                   writers: _Writers) -> None:
    for f in entries:
        if f.path in skip:
            continue
        if f.path.startswith("/boot/"):  # the boot partition holds these; /boot is its mount point
            continue
        path = where(f.path)
        if merged_usr and is_merged_dir(path):
            continue  # a member's /bin or /lib64 itself: the link into /usr stands for it
        parents(path)
        host = root.host(path)
        writers.settle(path)  # a member written before at this path
        # what the host may do with it while staging (its owner reads and writes it; the image
        # gets the entry's real mode); never through a symlink
        host_mode = stat.S_IMODE(f.mode) | (0o600 if f.type != "dir" else 0o700)
        if f.type == "dir":
            _make_dir(host, path, f"{path} is a directory in one member and a "
                                  f"{staged.entries[path].type if path in staged.entries else 'file'} in another")
        else:
            if host.is_symlink() or host.exists():
                if host.is_dir() and not host.is_symlink():
                    raise AppbuildError(f"{path} is a directory in one member and a {f.type} in another")
                host.unlink()
            if f.type == "file":
                writers.write(path, f.sha256, functools.partial(_write_file, store, f.sha256, host, host_mode))
                staged.installed_size += f.size
            elif f.type == "symlink":
                os.symlink(f.target, host)
            elif f.type == "hardlink":
                target = where(f.target)
                writers.settle(target)
                source = root.host(target)
                if not (os.path.lexists(source) and stat.S_ISREG(os.lstat(source).st_mode)):
                    raise AppbuildError(f"{path} is a hard link to {f.target}, which is not in the image")
                os.link(source, host, follow_symlinks=False)
            elif f.type == "fifo":
                os.mkfifo(host)
            # char and block devices exist only inside the image (see ImageEntry)
        if f.type in ("hardlink", "fifo", "dir"):
            _chmod_here(host, host_mode)
        staged.add(ImageEntry(path, "file" if f.type == "hardlink" else f.type, f.mode,
                              accounts.uid(f.owner), accounts.gid(f.group), clamp(f.mtime), f.rdev))


def _write_file(store, digest: str, host: Path, mode: int) -> os.stat_result:
    return store.write_new(digest, host, mode)


def boot_files(troves: list[Trove], skip: set[str] = frozenset()) -> dict[str, FileEntry]:
    """The members' regular files under ``/boot`` (minus *skip*), which the boot partition holds."""
    return {f.path: f for f in sorted((f for t in troves for f in t.files), key=lambda f: f.path)
            if f.path.startswith("/boot/") and f.type == "file" and f.path not in skip}


def owners_and_groups(troves: list[Trove]) -> tuple[set[str], set[str]]:
    files = [f for t in troves for f in t.files]
    return {f.owner for f in files}, {f.group for f in files}
