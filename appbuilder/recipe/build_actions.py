"""Build actions: compile, install and arrange files in the install root.

Commands run inside the build sandbox, in the build directory ``%(builddir)s``, with
the compiler macros in the environment (``CC``, ``CFLAGS``, ``CPPFLAGS``,
``LDFLAGS``, ...). File actions work on the install root ``%(destdir)s``; their paths
are absolute paths of the installed system.

File actions run in appbuild itself, not in the sandbox, on trees the build wrote. They
follow symlinks only while they stay inside the install root (or the build directory):
an absolute symlink, or one climbing out with ``..``, fails the action with a message
naming it, and nothing outside is touched (see :mod:`appbuilder.core.beneath`).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from pathlib import Path

from appbuilder.core.beneath import copy
from appbuilder.core.errors import RecipeError
from appbuilder.recipe.actions import Action, ActionContext, Trees, image_path, in_build


def compiler_env(ctx: ActionContext) -> dict[str, str]:
    m = ctx.macros
    return {
        "CC": f"{m.cc} {m.archflags}",
        "CXX": f"{m.cxx} {m.archflags}",
        "CFLAGS": m.cflags,
        "CXXFLAGS": f"{m.cflags} {m.cxxflags}".strip(),  # conary's: %(cflags)s %(cxxflags)s
        "CPPFLAGS": m.cppflags,
        "LDFLAGS": m.ldflags,
    }


def _workdir(ctx: ActionContext, dir: str) -> Path:
    return in_build(ctx, ctx.macros.expand(dir)) if dir else ctx.builddir


class Run(Action):
    """Run a shell command in the build directory.

    The command is expanded with macros and run by ``/bin/sh -e``, so a failing
    command fails the build. ``dir`` is relative to the build directory; ``env``
    adds environment variables (values are macro-expanded).

    Example::

        r.Run('./mkversion.sh > version.h')
        r.Run('make -C tools CC="%(cc)s %(archflags)s"', dir='src')
    """

    def __init__(self, cmd: str, dir: str = "", env: dict | None = None):
        self.cmd, self.dir, self.env = cmd, dir, env or {}

    def do(self, ctx: ActionContext) -> None:
        env = {**compiler_env(ctx), **{k: ctx.macros.expand(str(v)) for k, v in self.env.items()}}
        ctx.run(["/bin/sh", "-ec", ctx.macros.expand(self.cmd)], cwd=_workdir(ctx, self.dir), env=env)


class Configure(Action):
    """Run an autoconf ``configure`` script with the standard directories.

    Passes ``--prefix``, ``--bindir``, ``--libdir``, ``--sysconfdir`` and the other
    installation directories from the macros, ``--build=%(build)s`` (so an x86 build
    on an x86_64 host is a native ``-m32`` build, not a cross build), then ``args``
    (macro-expanded, split like a shell would). The compiler macros are in the
    environment.

    Example::

        r.Configure('--disable-nls --with-zlib')
    """

    def __init__(self, args: str = "", dir: str = "", configureName: str = "configure", env: dict | None = None):
        self.args, self.dir, self.configureName, self.env = args, dir, configureName, env or {}

    def do(self, ctx: ActionContext) -> None:
        m = ctx.macros
        argv = [
            f"./{self.configureName}",
            f"--prefix={m.prefix}",
            f"--exec-prefix={m.exec_prefix}",
            f"--bindir={m.bindir}",
            f"--sbindir={m.sbindir}",
            f"--sysconfdir={m.sysconfdir}",
            f"--datadir={m.datadir}",
            f"--includedir={m.includedir}",
            f"--libdir={m.libdir}",
            f"--libexecdir={m.libexecdir}",
            f"--localstatedir={m.localstatedir}",
            f"--sharedstatedir={m.sharedstatedir}",
            f"--mandir={m.mandir}",
            f"--infodir={m.infodir}",
            f"--build={m.build}",
            *shlex.split(m.expand(self.args)),
        ]
        env = {**compiler_env(ctx), **{k: m.expand(str(v)) for k, v in self.env.items()}}
        ctx.run(argv, cwd=_workdir(ctx, self.dir), env=env)


class Make(Action):
    """Run ``make`` in the build directory, in parallel (``%(parallelmflags)s``).

    ``makeargs`` are macro-expanded and split like a shell would. With
    ``forceFlags=True`` the compiler macros are passed as make variables
    (``CC=... CFLAGS=...``) so that they override the Makefile's own; otherwise they
    are only in the environment. ``parallel=False`` runs one job.

    Example::

        r.Make('PREFIX=%(prefix)s', forceFlags=True)
    """

    def __init__(self, makeargs: str = "", dir: str = "", forceFlags: bool = False, parallel: bool = True,
                 target: str = ""):
        self.makeargs, self.dir, self.forceFlags, self.parallel, self.target = (
            makeargs, dir, forceFlags, parallel, target)

    def argv(self, ctx: ActionContext) -> list[str]:
        argv = ["make"]
        if self.parallel:
            argv += shlex.split(ctx.macros.parallelmflags)
        if self.forceFlags:
            argv += [f"{k}={v}" for k, v in compiler_env(ctx).items()]
        argv += shlex.split(ctx.macros.expand(self.makeargs))
        if self.target:
            argv.append(ctx.macros.expand(self.target))
        return argv

    def do(self, ctx: ActionContext) -> None:
        ctx.run(self.argv(ctx), cwd=_workdir(ctx, self.dir), env=compiler_env(ctx))


class MakeInstall(Make):
    """Run ``make install`` with ``DESTDIR`` pointing at the install root.

    ``rootVar`` names the variable the Makefile uses for the install root
    (``DESTDIR`` by default, sometimes ``INSTALL_ROOT`` or ``PREFIX``);
    ``installtarget`` is the target (``install``). Runs one job at a time.

    Example::

        r.MakeInstall('CONFIG_PREFIX=%(destdir)s', rootVar='')
    """

    def __init__(self, makeargs: str = "", dir: str = "", rootVar: str = "DESTDIR",
                 installtarget: str = "install", forceFlags: bool = False):
        super().__init__(makeargs, dir, forceFlags=forceFlags, parallel=False, target=installtarget)
        self.rootVar = rootVar

    def argv(self, ctx: ActionContext) -> list[str]:
        argv = super().argv(ctx)
        if self.rootVar:
            argv.insert(1, f"{self.rootVar}={ctx.macros.destdir}")  # the install root as commands see it
        return argv


class Create(Action):
    """Create a file in the install root with the given contents.

    ``contents`` is macro-expanded unless ``macros=False``; ``mode`` defaults to 0644.
    Missing parent directories are made; an existing file is overwritten.

    Example::

        r.Create('%(sysconfdir)s/hostname', contents='cernvm\\n')
        r.Create('/sbin/appliance-init', contents=script, mode=0o755, macros=False)
    """

    def __init__(self, file: str, contents: str = "", mode: int = 0o644, macros: bool = True):
        self.file, self.contents, self.mode, self.macros = file, contents, mode, macros

    def do(self, ctx: ActionContext) -> None:
        path = image_path(ctx.macros.expand(self.file))
        text = ctx.macros.expand(self.contents) if self.macros else self.contents
        with Trees(ctx, self) as trees:
            trees.root.write_bytes(path, text.encode(), self.mode)


class Install(Action):
    """Copy files from the build directory into the install root.

    ``src`` is relative to the build directory and may be a glob; ``dest`` is a path
    in the installed system; a ``dest`` ending in ``/`` is a directory to copy into.
    ``mode`` defaults to 0755 for executables and 0644 for everything else. A
    directory is copied with everything in it, keeping its modes; a symlink is copied
    as a symlink, never followed.

    Example::

        r.Install('busybox', '%(essentialbindir)s/busybox', mode=0o755)
        r.Install('docs/*.txt', '%(thisdocdir)s/')
    """

    def __init__(self, src: str, dest: str, mode: int | None = None):
        self.src, self.dest, self.mode = src, dest, mode

    def do(self, ctx: ActionContext) -> None:
        dest_text = ctx.macros.expand(self.dest)
        dest = image_path(dest_text)
        with Trees(ctx, self) as trees:
            tree, pattern = trees.of(ctx.macros.expand(self.src))
            sources = tree.glob(pattern)
            if not sources:
                raise RecipeError(f"Install: nothing matches {self.src!r} in the {tree.label}")
            into_dir = dest_text.endswith("/") or len(sources) > 1
            for src in sources:
                target = f"{dest.rstrip('/')}/{src.rsplit('/', 1)[-1]}" if into_dir else dest
                mode = self.mode
                if mode is None:
                    mode = 0o755 if tree.lstat(src).st_mode & 0o111 else 0o644
                if not into_dir and _is_dir(trees.root, target) and not _is_dir(tree, src):
                    raise RecipeError(f"Install: {target} is a directory; end dest with '/' to copy into it")
                copy(tree, src, trees.root, target, mode=mode)


def _is_dir(tree, path: str) -> bool:
    try:
        return stat.S_ISDIR(tree.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


class Symlink(Action):
    """Create symbolic links in the install root: ``r.Symlink(target, [target, ...,] link)``.

    Each ``target`` is stored exactly as given (relative or absolute, never resolved on
    the build host). A ``link`` ending in ``/`` is a directory (made when missing): each
    link in it gets its target's base name; several targets need such a directory, as
    in conary. A target holding glob characters (``*``, ``?``, ``[``) is expanded: an
    absolute one in the install root, a relative one from the link's directory; nothing
    matching is an error unless ``allowNoMatch=True``. A file or symlink already at a
    link is replaced.

    Example::

        r.Symlink('busybox', '%(essentialbindir)s/sh')
        r.Symlink('/bin/busybox', '/sbin/init')
        r.Symlink('busybox', 'ls', 'cat', 'mount', '%(essentialbindir)s/')
        r.Symlink('%(libexecdir)s/tool/*', '%(bindir)s/')
    """

    def __init__(self, *args: str, allowNoMatch: bool = False):
        if len(args) < 2:
            raise RecipeError("Symlink: give the target(s) and then the link")
        if not all(isinstance(a, str) and a for a in args):
            raise RecipeError(f"Symlink: targets and link must be non-empty strings, not {args!r}")
        self.targets, self.link, self.allowNoMatch = tuple(args[:-1]), args[-1], allowNoMatch
        if len(self.targets) > 1 and not self.link.endswith("/"):
            raise RecipeError(f"Symlink: several targets need a directory to link them in "
                              f"(end {self.link!r} with '/')")

    @property
    def target(self) -> str:  # the single target (the two-argument form)
        return self.targets[0]

    def do(self, ctx: ActionContext) -> None:
        link_text = ctx.macros.expand(self.link)
        into_dir = link_text.endswith("/")
        image_path(link_text)
        with Trees(ctx, self) as trees:
            targets: list[str] = []
            for t in self.targets:
                target = ctx.macros.expand(t)
                if not _GLOB.search(target):
                    targets.append(target)
                    continue
                base = "" if target.startswith("/") else (link_text if into_dir else os.path.dirname(link_text))
                pattern = target if target.startswith("/") else f"{base.rstrip('/')}/{target}"
                hits = trees.root.glob(image_path(pattern))
                if not hits and not self.allowNoMatch:
                    raise RecipeError(f"Symlink: nothing matches {t!r} in the install root")
                targets += [h if target.startswith("/") else os.path.join(os.path.dirname(target), os.path.basename(h))
                            for h in hits]
            if not into_dir and len(targets) > 1:
                raise RecipeError(f"Symlink: {len(targets)} targets match; end {self.link!r} with '/' to link "
                                  f"them in a directory")
            for target in targets:
                link = link_text + os.path.basename(target.rstrip("/")) if into_dir else link_text
                trees.root.symlink(target, image_path(link))


_GLOB = re.compile(r"[*?\[]")


class MakeDirs(Action):
    """Create directories in the install root (with their parents).

    An empty directory is packaged as such; ``mode`` defaults to 0755.

    Example::

        r.MakeDirs('/proc', '/sys', '/dev', '/tmp', '/root')
        r.MakeDirs('/tmp', mode=0o1777)
    """

    def __init__(self, *dirs: str, mode: int = 0o755):
        if not dirs:
            raise RecipeError("MakeDirs: name at least one directory")
        self.dirs, self.mode = dirs, mode

    def do(self, ctx: ActionContext) -> None:
        with Trees(ctx, self) as trees:
            for d in self.dirs:
                trees.root.mkdirs(image_path(ctx.macros.expand(d)), self.mode)


class Remove(Action):
    """Remove files (globs) from the install root; ``recursive=True`` for directories.

    A symlink is removed itself, never what it points to. Nothing matching is not an
    error.

    Example::

        r.Remove('%(libdir)s/*.la')
        r.Remove('%(datadir)s/info', recursive=True)
    """

    def __init__(self, *paths: str, recursive: bool = False):
        self.paths, self.recursive = paths, recursive

    def do(self, ctx: ActionContext) -> None:
        with Trees(ctx, self) as trees:
            root = trees.root
            for p in self.paths:
                for hit in root.glob(image_path(ctx.macros.expand(p))):
                    if stat.S_ISDIR(root.lstat(hit).st_mode):
                        if not self.recursive:
                            raise RecipeError(f"Remove: {p} is a directory; pass recursive=True")
                        root.rmtree(hit)
                    else:
                        root.unlink(hit)


# modes written without their leading 0 (decimal 755): conary corrected these, with a warning
PERMISSION_TYPOS = {1755: 0o1755, 2755: 0o2755, 4755: 0o4755, 4711: 0o4711, 4510: 0o4510, 755: 0o755,
                    750: 0o750, 644: 0o644, 640: 0o640}


class SetModes(Action):
    """Set the permission bits (setuid included): ``r.SetModes(path, [path, ...,] mode)``.

    The mode is the last positional argument, as in conary, or ``mode=``. Paths may be
    globs; absolute paths are in the install root, relative ones in the build directory
    (where setuid and setgid bits are refused). A symlink is followed to its target when
    that is inside the tree, and refused otherwise (a symlink has no mode of its own).
    Nothing matching is an error unless ``allowNoMatch=True``. A mode that is an octal
    mode written in decimal (``755`` for ``0o755``) is corrected, with a warning in the
    build log, as conary did.

    Example::

        r.SetModes('%(bindir)s/ping', 0o4755)
        r.SetModes('%(bindir)s/a', '%(bindir)s/b', mode=0o4711)
    """

    def __init__(self, *args, mode: int | None = None, allowNoMatch: bool = False):
        paths = list(args)
        if mode is None:
            if not paths or isinstance(paths[-1], bool) or not isinstance(paths[-1], int):
                raise RecipeError("SetModes: give the mode last, as a number (0o755), or as mode=")
            mode = paths.pop()
        if not paths:
            raise RecipeError("SetModes: name at least one path")
        if not all(isinstance(p, str) for p in paths):
            raise RecipeError(f"SetModes: paths must be strings, not {paths!r}")
        if isinstance(mode, bool) or not isinstance(mode, int) or (
                not 0 <= mode <= 0o7777 and mode not in PERMISSION_TYPOS):
            raise RecipeError(f"SetModes: bad mode {mode!r}")
        self.paths, self.mode, self.allowNoMatch = tuple(paths), mode, allowNoMatch

    def do(self, ctx: ActionContext) -> None:
        mode = self.mode
        if mode in PERMISSION_TYPOS:
            mode = PERMISSION_TYPOS[mode]
            ctx.log(f"warning: SetModes: odd mode {self.mode} (decimal), using 0{mode:o}: "
                    f"write 0o{mode:o}")
        with Trees(ctx, self) as trees:
            for p in self.paths:
                tree, pattern = trees.of(ctx.macros.expand(p))
                hits = tree.glob(pattern)
                if not hits:
                    if self.allowNoMatch:
                        continue
                    raise RecipeError(f"SetModes: nothing matches {p!r} in the {tree.label}")
                if tree is not trees.root and mode & 0o6000:
                    raise RecipeError(f"SetModes: cannot set setuid/setgid mode 0{mode:o} on {p} in the build "
                                      f"directory")
                for hit in hits:
                    tree.chmod(hit, mode)


class Move(Action):
    """Move (rename) a file or directory inside the install root.

    A symlink is moved itself; a file already at ``dest`` is replaced.

    Example::

        r.Move('%(bindir)s/foo', '%(sbindir)s/foo')
    """

    def __init__(self, src: str, dest: str):
        self.src, self.dest = src, dest

    def do(self, ctx: ActionContext) -> None:
        src = image_path(ctx.macros.expand(self.src))
        dest = image_path(ctx.macros.expand(self.dest))
        with Trees(ctx, self) as trees:
            if not trees.root.lexists(src):
                raise RecipeError(f"Move: {self.src} does not exist in the install root")
            trees.root.rename(src, dest)


class Replace(Action):
    """Edit files with a regular expression substitution (Python ``re`` syntax).

    Paths are relative to the build directory, or absolute for files in the install
    root. It is an error if the pattern matches nothing, unless ``allowNoChange=True``.

    Example::

        r.Replace(r'^CONFIG_STATIC=.*', 'CONFIG_STATIC=y', '.config')
    """

    def __init__(self, pattern: str, replacement: str, *paths: str, allowNoChange: bool = False):
        if not paths:
            raise RecipeError("Replace: name at least one file")
        self.pattern, self.replacement, self.paths, self.allowNoChange = pattern, replacement, paths, allowNoChange

    def do(self, ctx: ActionContext) -> None:
        regex = re.compile(self.pattern, re.MULTILINE)
        with Trees(ctx, self) as trees:
            for p in self.paths:
                tree, path = trees.of(ctx.macros.expand(p))
                # one open file for reading and writing: what was read is what is rewritten
                with open(tree.open_file(path, os.O_RDWR), "r+") as f:
                    new, count = regex.subn(ctx.macros.expand(self.replacement), f.read())
                    if not count and not self.allowNoChange:
                        raise RecipeError(f"Replace: {self.pattern!r} matches nothing in {p}")
                    f.seek(0)
                    f.truncate()
                    f.write(new)
