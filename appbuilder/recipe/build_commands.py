"""More build commands, as conary had them: CMake, setup.py, configure and make variants,
and environment variables for the commands that follow.

They run in the build sandbox like :class:`~appbuilder.recipe.build_actions.Make`, with
the compiler macros in the environment. The tools they call must be in the build root:
``cmake`` and Python's setuptools are not in the toolchain group, so a recipe using
``r.CMake`` or ``r.PythonSetup`` names them in ``buildRequires``. A build root follows
libraries and interpreters, not Debian's ``Depends``, so with Debian's packages that
means the data and pure-Python packages too: ``'cmake', 'cmake-data'``, and
``'python3-minimal', 'python3.11-minimal', 'libpython3.11-minimal',
'libpython3.11-stdlib', 'python3-setuptools', 'python3-pkg-resources',
'python3-distutils'``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from appbuilder.core.errors import RecipeError
from appbuilder.recipe.actions import Action, ActionContext, Trees, build_path, image_path
from appbuilder.recipe.build_actions import Make, compiler_env

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _action_dir(ctx: ActionContext, dir: str) -> Path:
    """The directory a command runs in: relative to the build directory, or absolute in
    the install root (conary's rule for ``dir=``)."""
    text = ctx.macros.expand(dir) if dir else ""
    if text.startswith("/"):
        return ctx.destdir.joinpath(*Path(image_path(text)).parts[1:])
    return ctx.builddir / build_path(text) if text else ctx.builddir


def _obj_dir(ctx: ActionContext, action: Action, top: Path, obj_dir: str) -> Path:
    """*top*/*obj_dir*, made (beneath the build directory) when missing."""
    if not obj_dir:
        return top
    rel = build_path(ctx.macros.expand(obj_dir), what="objDir")
    where = top / rel
    with Trees(ctx, action) as trees:
        try:
            inside_build = where.relative_to(ctx.builddir).as_posix()
        except ValueError:
            raise RecipeError(f"{type(action).__name__}: objDir must be inside the build directory") from None
        trees.build().mkdirs(inside_build)
    return where


def _run(ctx: ActionContext, argv: list[str], cwd: Path, env: dict[str, str], pre: str = "") -> None:
    """Run *argv*, through the shell when the recipe gave a command to put in front."""
    if pre:
        ctx.run(["/bin/sh", "-ec", f"{ctx.macros.expand(pre)} {shlex.join(argv)}"], cwd=cwd, env=env)
    else:
        ctx.run(argv, cwd=cwd, env=env)


class Environment(Action):
    """Set an environment variable for the build commands that follow it.

    ``value`` is macro-expanded. Like conary's, it lasts until the end of the build;
    the compiler variables (``CC``, ``CFLAGS``, ...) that a command sets itself win over
    it, as they did in conary.

    Example::

        r.Environment('MOZ_THUNDERBIRD', '1')
        r.Environment('PKG_CONFIG_PATH', '%(libdir)s/pkgconfig')
    """

    def __init__(self, variable: str, value: str):
        if not isinstance(variable, str) or not _ENV_NAME.match(variable):
            raise RecipeError(f"Environment: bad variable name {variable!r}")
        self.variable, self.value = variable, str(value)

    def do(self, ctx: ActionContext) -> None:
        ctx.env[self.variable] = ctx.macros.expand(self.value)


class ManualConfigure(Action):
    """Run a ``configure`` script with only the arguments given (conary's ``ManualConfigure``).

    Unlike ``r.Configure`` no directory, ``--build`` or other argument is added; the
    compiler macros are in the environment. ``objDir=`` makes a directory (relative to
    ``dir``) to configure in, running ``../configure``; ``preConfigure=`` is shell text put
    in front of the command; ``configureName=`` names the script.

    Example::

        r.ManualConfigure('--prefix=%(prefix)s --shared')
    """

    def __init__(self, args: str = "", dir: str = "", configureName: str = "configure", objDir: str = "",
                 preConfigure: str = ""):
        self.args, self.dir, self.configureName, self.objDir, self.preConfigure = (
            args, dir, configureName, objDir, preConfigure)

    def arguments(self, ctx: ActionContext) -> list[str]:
        return shlex.split(ctx.macros.expand(self.args))

    def do(self, ctx: ActionContext) -> None:
        top = _action_dir(ctx, self.dir)
        cwd = _obj_dir(ctx, self, top, self.objDir)
        script = f"../{self.configureName}" if self.objDir else f"./{self.configureName}"
        _run(ctx, [script, *self.arguments(ctx)], cwd, compiler_env(ctx), self.preConfigure)


class CMake(Action):
    """Configure a CMake project (conary's ``r.CMake``); build it with ``r.Make`` after.

    Runs ``cmake`` with the compiler flags (``CMAKE_C_FLAGS`` = ``%(cflags)s``,
    ``CMAKE_CXX_FLAGS`` = ``%(cflags)s %(cxxflags)s``, the linker flags =
    ``%(ldflags)s``), ``CMAKE_INSTALL_PREFIX`` = ``%(prefix)s`` and, beyond conary,
    ``CMAKE_INSTALL_LIBDIR`` = ``%(lib)s`` (so that GNUInstallDirs installs into
    ``%(libdir)s``, not Debian's multiarch directory), then ``args``. ``objDir=`` builds
    out of the source tree, in that directory (relative to ``dir``); ``preCMake=`` is
    shell text put in front of the command. ``cmake`` must be in ``buildRequires``.

    Example::

        r.CMake('-DUSE_KDE3=NO', objDir='build')
        r.Make(dir='build')
        r.MakeInstall(dir='build')
    """

    def __init__(self, args: str = "", dir: str = "", objDir: str = "", preCMake: str = ""):
        self.args, self.dir, self.objDir, self.preCMake = args, dir, objDir, preCMake

    def do(self, ctx: ActionContext) -> None:
        m = ctx.macros
        top = _action_dir(ctx, self.dir)
        cwd = _obj_dir(ctx, self, top, self.objDir)
        argv = [
            "cmake",
            f"-DCMAKE_C_FLAGS:STRING={m.cflags}",
            f"-DCMAKE_CXX_FLAGS:STRING={m.cflags} {m.cxxflags}".rstrip(),
            f"-DCMAKE_EXE_LINKER_FLAGS:STRING={m.ldflags}",
            f"-DCMAKE_MODULE_LINKER_FLAGS:STRING={m.ldflags}",
            f"-DCMAKE_SHARED_LINKER_FLAGS:STRING={m.ldflags}",
            f"-DCMAKE_INSTALL_PREFIX:PATH={m.prefix}",
            f"-DCMAKE_INSTALL_LIBDIR:PATH={m.lib}",
            *shlex.split(m.expand(self.args)),
            ctx.inside(top),
        ]
        env = {**compiler_env(ctx), "CC": m.cc, "CXX": m.cxx}
        _run(ctx, argv, cwd, env, self.preCMake)


class MakePathsInstall(Make):
    """Run ``make install`` for a Makefile without ``DESTDIR`` (conary's ``MakePathsInstall``).

    Every standard directory variable is passed pointing into the install root:
    ``prefix=%(destdir)s%(prefix)s``, ``exec-prefix``, ``bindir``, ``sbindir``,
    ``sysconfdir``, ``datadir``, ``includedir``, ``libdir``, ``libexecdir``,
    ``localstatedir``, ``sharedstatedir``, ``mandir`` and ``infodir``, then
    ``makeargs``; ``installtarget`` is the target (``install``). Runs one job at a time.

    Example::

        r.MakePathsInstall('mandir=%(destdir)s%(mandir)s/man1')
    """

    VARIABLES = ("prefix", "exec-prefix", "bindir", "sbindir", "sysconfdir", "datadir", "includedir", "libdir",
                 "libexecdir", "localstatedir", "sharedstatedir", "mandir", "infodir")

    def __init__(self, makeargs: str = "", dir: str = "", installtarget: str = "install", forceFlags: bool = False):
        super().__init__(makeargs, dir, forceFlags=forceFlags, parallel=False, target=installtarget)

    def argv(self, ctx: ActionContext) -> list[str]:
        m = ctx.macros
        paths = [f"{v}={m.destdir}{m[v.replace('-', '_')]}" for v in self.VARIABLES]
        argv = super().argv(ctx)
        return [argv[0], *shlex.split(m.mflags), *paths, *argv[1:]]


class PythonSetup(Action):
    """Install a Python package with its ``setup.py`` (conary's ``r.PythonSetup``).

    Runs ``pythonX.Y setup.py install --prefix=%(prefix)s`` with ``--install-purelib``,
    ``--install-platlib`` and ``--install-data`` all at
    ``%(libdir)s/pythonX.Y/site-packages/`` (as conary did; ``purelib=``, ``platlib=``
    and ``data=`` override them) and ``--root=%(destdir)s``, then ``args``. A
    ``setup.py`` written for distutils is run with setuptools loaded first, so that
    neither installs an ``.egg``. ``X.Y`` is ``pythonVersion=``, or the ``%(pyver)s``
    macro when the recipe sets it, or else the version of the build root's
    ``python3``. ``setupName=`` names the script, ``action=`` the command
    (``install``), ``dir=`` where it is, ``rootDir=`` a directory below
    ``%(destdir)s`` to install into. The files land in the ``:python`` component.
    ``python3`` and Python's setuptools must be in ``buildRequires``.

    Example::

        r.PythonSetup()
        r.PythonSetup('--no-compile', setupName='setup-py3.py')
    """

    def __init__(self, args: str = "", setupName: str = "setup.py", action: str = "install", dir: str = "",
                 rootDir: str = "", purelib: str | None = None, platlib: str | None = None,
                 data: str | None = None, pythonVersion: str | None = None, purePython: bool = True,
                 allowNonPure: bool = False, bootstrap: bool = False):
        if pythonVersion is not None and not re.match(r"^\d+(\.\d+)?$", str(pythonVersion)):
            raise RecipeError(f"PythonSetup: bad pythonVersion {pythonVersion!r} (e.g. '3.11')")
        if not re.match(r"^[A-Za-z0-9_.-]+$", setupName):
            raise RecipeError(f"PythonSetup: bad setupName {setupName!r}")
        self.args, self.setupName, self.action, self.dir, self.rootDir = args, setupName, action, dir, rootDir
        self.purelib, self.platlib, self.data = purelib, platlib, data
        self.pythonVersion = str(pythonVersion) if pythonVersion is not None else None
        self.purePython, self.allowNonPure, self.bootstrap = purePython, allowNonPure, bootstrap

    def do(self, ctx: ActionContext) -> None:
        m = ctx.macros
        cwd = _action_dir(ctx, self.dir)
        with Trees(ctx, self) as trees:
            rel = cwd.relative_to(ctx.builddir).as_posix() if cwd != ctx.builddir else ""
            try:
                text = trees.build().read_bytes(f"{rel}/{self.setupName}".lstrip("/")).decode(errors="replace")
            except FileNotFoundError:
                raise RecipeError(f"PythonSetup: there is no {self.setupName} in {ctx.inside(cwd)}") from None
        if self.pythonVersion:
            pyver = self.pythonVersion
        elif "pyver" in m:
            pyver = m.pyver
        else:
            pyver = ""
        site = "%(libdir)s/python$PYVER/site-packages/"
        dirs = []
        for option, value in (("purelib", self.purelib), ("platlib", self.platlib), ("data", self.data)):
            dirs.append(f"--install-{option}={m.expand(value) if value is not None else m.expand(site)}")
        root = m.destdir + ("/" + m.expand(self.rootDir).strip("/") if self.rootDir else "")
        if re.search(r"(import setuptools|from setuptools import|import ez_setup|from ez_setup import)", text):
            run = f'"python$PYVER" {shlex.quote(self.setupName)}'
        else:  # distutils: load setuptools first (conary's way to avoid an .egg)
            loader = ("import setuptools, sys; sys.argv[0] = {0!r}; "
                      "exec(compile(open({0!r}).read(), {0!r}, 'exec'))").format(self.setupName)
            run = f'"python$PYVER" -c {shlex.quote(loader)}'
        detect = ("PYVER=$(python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])')" if not pyver
                  else f"PYVER={shlex.quote(pyver)}")
        script = (f"{detect}\n{run} {shlex.quote(self.action)} --prefix={shlex.quote(m.prefix)} "
                  + " ".join(_with_pyver(d) for d in dirs)
                  + f" --root={shlex.quote(root)} {m.expand(self.args)}")
        ctx.run(["/bin/sh", "-ec", script], cwd=cwd, env=compiler_env(ctx))


def _with_pyver(text: str) -> str:
    """*text* quoted for the shell, but for ``$PYVER``, which the shell expands."""
    quoted = '"' + "".join("\\" + c if c in '\\"`$' else c for c in text) + '"'
    return quoted.replace("\\$PYVER", "$PYVER")
