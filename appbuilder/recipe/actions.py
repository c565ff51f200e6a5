"""The base of recipe actions, and what an action may ask of the cook.

A recipe's ``setup(r)`` only *records* actions (``r.Make()`` creates a ``Make``
action); the cook runs them later, in order, through an :class:`ActionContext`. Every
action is a class whose docstring is its user documentation (``appbuild explain``).
"""

from __future__ import annotations

import inspect
from pathlib import Path, PurePosixPath
from typing import ClassVar, Protocol, Sequence

from appbuilder.core.arch import Arch
from appbuilder.core.beneath import Beneath
from appbuilder.core.errors import RecipeError
from appbuilder.recipe.macros import Macros

# name -> action class, filled in by Action.__init_subclass__
REGISTRY: dict[str, type["Action"]] = {}

SOURCE, BUILD, POLICY = "source", "build", "policy"


class ActionContext(Protocol):
    """What the cook offers actions while they run."""

    macros: Macros
    arch: Arch
    recipe_dir: Path  # where the recipe and its own source files are
    srcdir: Path  # where archives unpack (the parent of builddir)
    builddir: Path  # the main build directory, %(builddir)s
    destdir: Path  # the install root, %(destdir)s
    env: dict[str, str]  # environment of every build command (r.Environment adds to it)

    def run(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        """Run a command in the build sandbox; raises BuildFailed when it fails."""

    def inside(self, path: Path) -> str:
        """Where a host path (in the work tree, the recipe directory or a fetched source)
        appears to commands run in the sandbox: what to put in their arguments."""

    def fetch(self, url: str, sha256: str | None, mirrors: Sequence[str] = ()) -> Path:
        """A verified copy of a source in the lookaside cache."""

    def debian_source(self, package: str, version: str, sha256: str) -> Path:
        """The .dsc of a Debian source package (its files beside it), verified."""

    def unpack(self, archive: Path, dest: Path) -> None:
        """Unpack an archive safely into *dest*."""

    def log(self, text: str) -> None:
        """Write a line to the build log."""


class Action:
    """Base of all actions; subclasses define ``__init__`` with their options and ``do``."""

    phase: ClassVar[str] = BUILD
    where: str = "?"  # recipe file:line that recorded the action
    call: tuple = ((), {})  # the arguments the recipe gave (see appbuilder.recipe.evaluate)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if not cls.__name__.startswith("_"):
            REGISTRY[cls.__name__] = cls

    @classmethod
    def record(cls, args: tuple | list, kwargs: dict, where: str) -> "Action":
        """The action a recipe asked for at *where* (``file:line``); arguments it does not
        take, or takes badly, are a :class:`RecipeError` there."""
        try:
            action = cls(*args, **kwargs)
        except TypeError as exc:
            raise RecipeError(f"{where}: {cls.__name__}: {exc}") from None
        except RecipeError as exc:
            raise RecipeError(f"{where}: {exc}") from None
        action.where, action.call = where, (tuple(args), dict(kwargs))
        return action

    def do(self, ctx: ActionContext) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """A one-line summary for the build log."""
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if k not in ("where", "call") and v not in (None, "", (), []))
        return f"{type(self).__name__}({args})"

    @classmethod
    def explain(cls) -> str:
        """``Name(signature)`` followed by the docstring: what ``appbuild explain`` prints."""
        sig = inspect.signature(cls.__init__)
        params = [p for name, p in sig.parameters.items() if name != "self"]
        doc = inspect.getdoc(cls) or "(undocumented)"
        return f"r.{cls.__name__}({', '.join(str(p) for p in params)})\n    [{cls.phase} action]\n\n{doc}\n"


def image_path(path: str, *, what: str = "path") -> str:
    """Check an in-image path a recipe gave: absolute, without ``..``."""
    pure = PurePosixPath(path)
    if not pure.is_absolute():
        raise RecipeError(f"{what} {path!r} must be absolute (a path inside the installed system)")
    if ".." in pure.parts:
        raise RecipeError(f"{what} {path!r} must not contain '..'")
    return path


def build_path(path: str, *, what: str = "path") -> str:
    """Check a path a recipe gave relative to the build directory: without ``..``."""
    if ".." in PurePosixPath(path).parts:
        raise RecipeError(f"{what} {path!r} must not contain '..'")
    return path


def in_root(root: Path, path: str, *, what: str = "path") -> Path:
    """*root* joined with the absolute in-image *path* (checked, but not resolved).

    Only for handing a directory to a command in the build sandbox; files are read and
    written through :class:`Trees`, which never follows a symlink out of the root.
    """
    return root.joinpath(*PurePosixPath(image_path(path, what=what)).parts[1:])


def in_build(ctx: ActionContext, path: str) -> Path:
    """A path relative to the build directory, or absolute meaning inside destdir
    (checked, but not resolved: for the build sandbox, as :func:`in_root`)."""
    if path.startswith("/"):
        return in_root(ctx.destdir, path)
    return ctx.builddir / build_path(path)


class Trees:
    """The install root and the build directory as one action sees them, opened on use.

    Paths are resolved beneath them (see :mod:`appbuilder.core.beneath`): a symlink that
    the build left and that leads outside is refused with a :class:`RecipeError`
    naming the action, the path and the link. The build directory is itself opened
    beneath the source directory, so a build directory replaced by a symlink is
    refused too.
    """

    def __init__(self, ctx: ActionContext, action: "Action | str"):
        self.ctx = ctx
        self.name = action if isinstance(action, str) else type(action).__name__
        self._root: Beneath | None = None
        self._build: Beneath | None = None

    def error(self, message: str) -> RecipeError:
        return RecipeError(f"{self.name}: {message}")

    @property
    def root(self) -> Beneath:
        """The install root; paths are in-image absolute paths."""
        if self._root is None:
            self._root = Beneath(self.ctx.destdir, label="install root", absolute=True, error=self.error)
        return self._root

    def build(self, *, create: bool = False) -> Beneath:
        """The build directory (made first with *create*); paths are relative to it."""
        if self._build is None:
            ctx = self.ctx
            try:
                rel = ctx.builddir.relative_to(ctx.srcdir)
            except ValueError:
                if create:
                    ctx.builddir.mkdir(parents=True, exist_ok=True)
                self._build = Beneath(ctx.builddir, label="build directory", error=self.error)
            else:
                with Beneath(ctx.srcdir, label="source directory", error=self.error) as src:
                    self._build = src.sub(str(rel), label="build directory", create=create)
        return self._build

    def of(self, path: str, *, create: bool = False) -> tuple[Beneath, str]:
        """The tree *path* is in: absolute paths are in the install root, others in the
        build directory; checked for ``..``."""
        if path.startswith("/"):
            return self.root, image_path(path)
        return self.build(create=create), build_path(path)

    def close(self) -> None:
        for tree in (self._root, self._build):
            if tree is not None:
                tree.close()
        self._root = self._build = None

    def __enter__(self) -> "Trees":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
