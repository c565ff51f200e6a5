"""File operations that never leave a directory tree, whatever symlinks it holds.

Recipe file actions and policies run in the appbuild process on the host, on trees a
build wrote: the install root (``%(destdir)s``) and the build directory. Anything in
them may be a symlink a hostile ``make install`` planted (``destdir/usr/share -> /``).
A :class:`Beneath` resolves every path beneath its root the way ``openat2(2)`` does
with ``RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS``:

* relative symlinks whose target stays inside the root are followed as usual;
* an absolute symlink, or one whose ``..`` climbs above the root, is refused with an
  error naming the link (``/usr/share/info: /usr/share is a symlink leading outside
  the install root (to '/srv'); refusing to follow it``), and nothing is touched.

Every operation works on file descriptors: a directory is opened once, and the last
name is used relative to it (``mkdirat``, ``unlinkat``, ``renameat``, ``symlinkat``,
``shutil.rmtree(dir_fd=)``, a mode set through the object's own ``O_PATH`` fd), so no
path is checked and then used again by name. Globs are matched by listing directories
through those fds, never with :mod:`glob` on host paths.

Where the kernel has no openat2 (``ENOSYS``: Linux before 5.6; seccomp filters that
answer ``ENOSYS`` or ``EPERM``) the same rules are applied one component at a time:
each name is looked up with ``O_NOFOLLOW`` in an already open directory, and a
symlink's target is read and walked inside the root. When openat2 refuses a path, that
walk runs too, to name the symlink at fault.
"""

from __future__ import annotations

import ctypes
import errno
import fnmatch
import os
import re
import shutil
import stat
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from appbuilder.core.errors import RecipeError

# linux/openat2.h
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08
SYS_openat2 = 437  # asm-generic: the same number on x86_64, i386, arm64, ...
MAX_LINKS = 40  # the kernel's limit on symlinks followed in one lookup

_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_MAGIC = re.compile(r"[*?[]")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _openat2(dirfd: int, path: bytes, flags: int, mode: int, resolve: int) -> int:
    """The openat2 system call; raises OSError (ENOSYS where the kernel lacks it)."""
    how = _OpenHow(flags, mode, resolve)
    fd = _libc.syscall(ctypes.c_long(SYS_openat2), ctypes.c_int(dirfd), ctypes.c_char_p(path),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def chmod_fd(fd: int, mode: int) -> None:
    """Set the mode of the object an ``O_PATH`` (or any) fd refers to; never of a symlink.

    An ``O_PATH`` fd cannot be passed to ``fchmod``; its ``/proc/self/fd`` entry leads
    to the very inode it holds, so a later rename or symlink cannot redirect it.
    """
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        raise OSError(errno.ELOOP, "a symlink has no mode of its own")
    try:
        os.chmod(f"/proc/self/fd/{fd}", mode)
    except FileNotFoundError:
        if not os.path.isdir("/proc/self/fd"):
            raise OSError(errno.ENOSYS, "setting a mode safely needs /proc mounted") from None
        raise


def chmod_at(dirfd: int, name: str, mode: int) -> None:
    """Set the mode of *name* in the directory *dirfd*, refusing a symlink there."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        chmod_fd(fd, mode)
    finally:
        os.close(fd)


def _copy_bytes(src: int, dst: int) -> None:
    while block := os.read(src, 1 << 20):
        view = memoryview(block)
        while view:
            view = view[os.write(dst, view):]


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISSOCK, "socket"), (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink")):
        if test(mode):
            return name
    return "regular file" if stat.S_ISREG(mode) else "special file"


@dataclass
class Entry:
    """One name in a directory listed by :meth:`Beneath.walk`, with its ``lstat``."""

    name: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:  # a real directory, never a symlink to one
        return stat.S_ISDIR(self.st.st_mode)


class Beneath:
    """A directory tree whose symlinks cannot lead file operations outside it.

    ``root`` is trusted (the caller made it); everything beneath it is not. Paths are
    strings: with ``absolute=True`` (the install root) they are written as paths of the
    installed system (``/usr/share/info``), otherwise relative to the root
    (``docs/README``); a leading ``/`` is ignored either way. ``label`` names the tree
    in messages; ``error`` builds the exception raised when a path would leave it.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, root: Path | str, *, label: str = "directory", absolute: bool = False,
                 error: Callable[[str], Exception] = RecipeError, _fd: int | None = None):
        self.root = Path(root)
        self.label = label
        self.absolute = absolute
        self.error = error
        self.fd = os.open(self.root, _DIR) if _fd is None else _fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Beneath":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def sub(self, path: str, *, label: str | None = None, absolute: bool | None = None,
            create: bool = False) -> "Beneath":
        """A tree rooted at the directory *path* beneath this one (created with *create*)."""
        if create:
            self.mkdirs(path)
        fd = self.open(path, _DIR)
        return Beneath(self.root.joinpath(*self.parts(path)), label=label or self.label,
                       absolute=self.absolute if absolute is None else absolute, error=self.error, _fd=fd)

    # ------------------------------------------------------------------ paths

    @staticmethod
    def parts(path: str) -> list[str]:
        """The components of *path*, without empty ones and ``.``."""
        return [p for p in path.split("/") if p not in ("", ".")]

    def show(self, path: str | list[str]) -> str:
        """*path* as messages write it: ``/usr/bin/x`` (install root) or ``src/x``."""
        text = "/".join(self.parts(path) if isinstance(path, str) else path)
        return "/" + text if self.absolute else (text or ".")

    def _outside(self, shown: str, link: list[str] | None, target: str | None) -> Exception:
        if link is None:
            return self.error(f"{shown}: leads outside the {self.label}; refusing to follow it")
        return self.error(f"{shown}: {self.show(link)} is a symlink leading outside the {self.label} "
                          f"(to {target!r}); refusing to follow it")

    # ------------------------------------------------------------------ resolution

    def open(self, path: str, flags: int = os.O_RDONLY, mode: int = 0o644, *, follow: bool = True,
             asked: str | None = None) -> int:
        """A new fd for *path* opened with *flags* (``os.O_*``), resolved beneath the root.

        Symlinks on the way, and the last component unless ``follow=False``, are
        followed while they stay inside; ``O_CREAT`` creates the file beneath the root.
        The caller closes the fd. Errors name *asked* (the path an operation was asked
        about, of which *path* is a part), or *path*.
        """
        parts = self.parts(path)
        shown = self.show(path if asked is None else asked)
        flags |= os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        if not flags & os.O_CREAT and flags & os.O_TMPFILE != os.O_TMPFILE:
            mode = 0  # openat2 refuses a mode that would not be used
        rel = os.fsencode("/".join(parts) or ".")
        for _attempt in range(5):
            try:
                return _openat2(self.fd, rel, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:  # a concurrent rename during '..': try again
                    continue
                if exc.errno in (errno.ENOSYS, errno.EPERM):  # no openat2 (EPERM: older seccomp filters)
                    break  # the walk answers; a real EPERM it meets as well
                if exc.errno in (errno.EXDEV, errno.ELOOP):
                    # the walk names the link that leads out (and raises); should it not, refuse anyway
                    os.close(self._walk(parts, flags, mode, shown))
                    raise self._outside(shown, None, None) from None
                raise OSError(exc.errno, exc.strerror, shown) from None
        return self._walk(parts, flags, mode, shown)

    def _walk(self, parts: list[str], flags: int, mode: int, shown: str) -> int:
        """openat2's rules applied one component at a time (for kernels without it)."""
        follow_last = not flags & os.O_NOFOLLOW and not (flags & os.O_CREAT and flags & os.O_EXCL)
        # (component, (the symlink it came from, that link's target) or None)
        todo: deque[tuple[str, tuple[list[str], str] | None]] = deque((p, None) for p in parts)
        stack: list[tuple[int, list[str]]] = [(self.fd, [])]  # open directories, root first
        links = 0
        try:
            while todo:
                name, via = todo.popleft()
                fd, where = stack[-1]
                if name == "..":
                    if len(stack) == 1:
                        raise self._outside(shown, *(via or (None, None)))
                    os.close(stack.pop()[0])
                    continue
                here = where + [name]
                last = not todo
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if last and flags & os.O_CREAT:
                        return self._open_at(fd, name, flags | os.O_NOFOLLOW, mode, shown)
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), shown) from None
                if stat.S_ISLNK(st.st_mode) and (follow_last or not last):
                    links += 1
                    if links > MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), shown)
                    target = os.readlink(name, dir_fd=fd)
                    if target.startswith("/"):
                        raise self._outside(shown, here, target)
                    todo.extendleft(reversed([(c, (here, target)) for c in self.parts(target)]))
                    continue
                if last:
                    return self._open_at(fd, name, flags | os.O_NOFOLLOW, mode, shown)
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), shown)
                stack.append((self._open_at(fd, name, _DIR | os.O_NOFOLLOW, 0, shown), here))
            return self._open_at(stack[-1][0], ".", flags, mode, shown)
        finally:
            for fd, _ in stack[1:]:
                os.close(fd)

    @staticmethod
    def _open_at(dirfd: int, name: str, flags: int, mode: int, shown: str) -> int:
        try:
            return os.open(name, flags, mode, dir_fd=dirfd)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, shown) from None

    @contextmanager
    def parent(self, path: str, *, create: bool = False, asked: str | None = None) -> Iterator[tuple[int, str]]:
        """``(fd of the directory holding path, its last name)``; the name is not resolved.

        With *create*, missing parent directories are made first.
        """
        parts = self.parts(path)
        asked = path if asked is None else asked
        if not parts or parts[-1] == "..":
            raise self.error(f"{self.show(asked)}: names no entry inside the {self.label}")
        parent = "/".join(parts[:-1])
        if create:
            self.mkdirs(parent, asked=asked)
        fd = self.open(parent, _DIR, asked=asked)
        try:
            yield fd, parts[-1]
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ looking

    def lstat(self, path: str, *, asked: str | None = None) -> os.stat_result:
        """The status of *path* itself (a symlink there is not followed)."""
        if not self.parts(path):
            return os.fstat(self.fd)
        with self.parent(path, asked=asked) as (fd, name):
            return os.stat(name, dir_fd=fd, follow_symlinks=False)

    def lexists(self, path: str, *, asked: str | None = None) -> bool:
        """Whether *path* exists (a dangling symlink does)."""
        try:
            self.lstat(path, asked=asked)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def readlink(self, path: str) -> str:
        with self.parent(path) as (fd, name):
            return os.readlink(name, dir_fd=fd)

    def listdir(self, path: str = "", *, asked: str | None = None) -> list[str]:
        """The names in the directory *path* (following in-root links to it)."""
        fd = self.open(path, os.O_RDONLY | os.O_DIRECTORY, asked=asked)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def glob(self, pattern: str) -> list[str]:
        """The paths matching *pattern* (``*``, ``?``, ``[...]`` per component), sorted.

        Like :func:`glob.glob`: wildcards do not match names starting with ``.`` unless
        the pattern component does, and a pattern without wildcards matches a path that
        exists. Directories are listed through fds beneath the root.
        """
        found: list[list[str]] = [[]]
        for part in self.parts(pattern):
            if not _MAGIC.search(part):
                found = [prefix + [part] for prefix in found]
                continue
            matched = []
            for prefix in found:
                try:
                    names = self.listdir("/".join(prefix), asked=pattern)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                hidden_ok = part.startswith(".")
                matched += [prefix + [n] for n in names
                            if fnmatch.fnmatchcase(n, part) and (hidden_ok or not n.startswith("."))]
            found = matched
        return sorted(self.show(p) for p in found if p and self.lexists("/".join(p), asked=pattern))

    def walk(self, path: str = "") -> Iterator[tuple[str, int, os.stat_result, list[Entry]]]:
        """Every directory from *path* down: ``(its path, a readable fd, its stat, entries)``.

        Entries are sorted by name and carry their ``lstat``; symlinks are listed, never
        followed. Removing an entry from the list stops the walk from entering it. The
        fd is valid until the next step.
        """
        yield from self._walk_dir(self.parts(path), self.open(path, os.O_RDONLY | os.O_DIRECTORY))

    def _walk_dir(self, parts: list[str], fd: int) -> Iterator[tuple[str, int, os.stat_result, list[Entry]]]:
        try:
            entries = [Entry(n, os.stat(n, dir_fd=fd, follow_symlinks=False)) for n in sorted(os.listdir(fd))]
            yield self.show(parts), fd, os.fstat(fd), entries
            for e in entries:
                if e.is_dir:
                    sub = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                    if not os.path.samestat(os.fstat(sub), e.st):
                        os.close(sub)
                        raise OSError(errno.EAGAIN, "changed while being walked", self.show(parts + [e.name]))
                    yield from self._walk_dir(parts + [e.name], sub)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ changing

    def mkdirs(self, path: str, mode: int | None = None, *, asked: str | None = None) -> None:
        """Make the directory *path* and missing parents; *mode* sets the last one's mode."""
        fd = self._mkdirs(path, path if asked is None else asked)
        try:
            if mode is not None:
                chmod_fd(fd, mode)
        finally:
            os.close(fd)

    def _mkdirs(self, path: str, asked: str) -> int:
        try:
            return self.open(path, _DIR, asked=asked)
        except FileNotFoundError:
            if not self.parts(path):
                raise
        with self.parent(path, create=True, asked=asked) as (fd, name):
            try:
                os.mkdir(name, 0o777, dir_fd=fd)  # less the umask, like os.makedirs
            except FileExistsError:
                pass
        return self.open(path, _DIR, asked=asked)

    def chmod(self, path: str, mode: int, *, follow: bool = True) -> None:
        """Set the mode of *path*; a symlink is followed (inside only) or, with
        ``follow=False``, refused."""
        fd = self.open(path, os.O_PATH, follow=follow)
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise self.error(f"{self.show(path)}: is a symlink; a symlink has no mode of its own")
            chmod_fd(fd, mode)
        finally:
            os.close(fd)

    def open_file(self, path: str, flags: int, mode: int = 0o666, *, follow: bool = True) -> int:
        """Open the regular file *path* (following in-root links), refusing anything else.

        ``O_NONBLOCK`` keeps a fifo planted where a file was expected from hanging us.
        """
        fd = self.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY, mode, follow=follow)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise self.error(f"{self.show(path)}: is a {_kind(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
        return fd

    def read_bytes(self, path: str) -> bytes:
        fd = self.open_file(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def write_bytes(self, path: str, data: bytes, mode: int | None = None) -> None:
        """Write *data* to the file *path* (made with its parents when missing);
        *mode* sets its mode."""
        fd = self._create(path, mode)
        with os.fdopen(fd, "wb") as f:
            f.truncate()
            f.write(data)

    def write_from(self, path: str, src_fd: int, mode: int | None = None) -> None:
        """Write the content of the open file *src_fd* to *path*, like :meth:`write_bytes`."""
        fd = self._create(path, mode)
        try:
            if os.path.samestat(os.fstat(fd), os.fstat(src_fd)):
                raise self.error(f"{self.show(path)}: is the file being copied")
            os.ftruncate(fd, 0)
            _copy_bytes(src_fd, fd)
        finally:
            os.close(fd)

    def _create(self, path: str, mode: int | None) -> int:
        """The file *path* opened for writing, not truncated yet (made when missing)."""
        self.mkdirs("/".join(self.parts(path)[:-1]), asked=path)
        fd = self.open_file(path, os.O_WRONLY | os.O_CREAT, 0o666 if mode is None else mode & 0o777)
        try:
            if mode is not None:
                os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def unlink(self, path: str) -> None:
        """Remove the file or symlink *path* (never what a symlink points to)."""
        with self.parent(path) as (fd, name):
            os.unlink(name, dir_fd=fd)

    def rmtree(self, path: str) -> None:
        """Remove the directory *path* and everything in it (symlinks inside are removed,
        never followed)."""
        with self.parent(path) as (fd, name):
            if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise self.error(f"{self.show(path)}: is a symlink, not a directory")
            shutil.rmtree(name, dir_fd=fd)

    def rename(self, src: str, dest: str) -> None:
        """Move *src* to *dest* (replacing a file there), making *dest*'s parents."""
        with self.parent(src) as (sfd, sname), self.parent(dest, create=True) as (dfd, dname):
            os.replace(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)

    def symlink(self, target: str, path: str) -> None:
        """Make *path* a symlink holding *target* verbatim, replacing a file or symlink there."""
        with self.parent(path, create=True) as (fd, name):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISDIR(st.st_mode):
                    raise self.error(f"{self.show(path)}: is a directory; not replacing it with a symlink")
                os.unlink(name, dir_fd=fd)
            os.symlink(target, name, dir_fd=fd)


def copy(src: Beneath, src_path: str, dest: Beneath, dest_path: str, *, mode: int | None = None) -> None:
    """Copy the file, symlink or directory *src_path* of *src* to *dest_path* in *dest*.

    A symlink is copied as a symlink (its target text), never followed; a directory is
    copied with everything in it the same way, merging into one that exists, keeping
    permission bits; a file gets *mode*, or its own permission bits. Other file types
    are refused.
    """
    st = src.lstat(src_path)
    if stat.S_ISLNK(st.st_mode):
        dest.symlink(src.readlink(src_path), dest_path)
    elif stat.S_ISDIR(st.st_mode):
        fd = src.open(src_path, os.O_RDONLY | os.O_DIRECTORY, follow=False)
        try:
            _copy_dir(src, fd, src.parts(src_path), dest, dest.parts(dest_path), st)
        finally:
            os.close(fd)
    elif stat.S_ISREG(st.st_mode):
        fd = src.open_file(src_path, os.O_RDONLY, follow=False)
        try:
            dest.write_from(dest_path, fd, stat.S_IMODE(st.st_mode) if mode is None else mode)
        finally:
            os.close(fd)
    else:
        raise src.error(f"{src.show(src_path)}: is a {_kind(st.st_mode)}; only files, directories and "
                        "symlinks can be copied")


def _copy_dir(src: Beneath, fd: int, src_parts: list[str], dest: Beneath, dest_parts: list[str],
              st: os.stat_result) -> None:
    """Copy the open directory *fd* (at *src_parts*) to *dest_parts* in *dest*."""
    target = "/".join(dest_parts)
    dest.mkdirs(target)
    for name in sorted(os.listdir(fd)):
        est = os.stat(name, dir_fd=fd, follow_symlinks=False)
        there = "/".join(dest_parts + [name])
        if stat.S_ISLNK(est.st_mode):
            dest.symlink(os.readlink(name, dir_fd=fd), there)
        elif stat.S_ISDIR(est.st_mode):
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                _copy_dir(src, sub, src_parts + [name], dest, dest_parts + [name], est)
            finally:
                os.close(sub)
        elif stat.S_ISREG(est.st_mode):
            sub = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
            try:
                if not os.path.samestat(os.fstat(sub), est):
                    raise OSError(errno.EAGAIN, "changed while being copied", src.show(src_parts + [name]))
                os.set_blocking(sub, True)
                dest.write_from(there, sub, stat.S_IMODE(est.st_mode))
            finally:
                os.close(sub)
        else:
            raise src.error(f"{src.show(src_parts + [name])}: is a {_kind(est.st_mode)}; only files, "
                            "directories and symlinks can be copied")
    dest.chmod(target, stat.S_IMODE(st.st_mode))
