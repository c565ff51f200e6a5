"""The base of recipe actions, and what an action may ask of the cook.

A recipe's ``setup(r)`` only *records* actions (``r.Make()`` creates a ``Make``
action); the cook runs them later, in order, through an :class:`ActionContext`. Every
action is a class whose docstring is its user documentation (``appbuild explain``).
"""

from __future__ import annotations

import inspect
from pathlib import Path, PurePosixPath
from typing import ClassVar, Protocol, Sequence

from appbuilder.arch import Arch
from appbuilder.errors import RecipeError
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

    def run(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        """Run a command in the build sandbox; raises BuildFailed when it fails."""

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

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if not cls.__name__.startswith("_"):
            REGISTRY[cls.__name__] = cls

    def do(self, ctx: ActionContext) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """A one-line summary for the build log."""
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "where" and v not in (None, "", (), []))
        return f"{type(self).__name__}({args})"

    @classmethod
    def explain(cls) -> str:
        """``Name(signature)`` followed by the docstring: what ``appbuild explain`` prints."""
        sig = inspect.signature(cls.__init__)
        params = [p for name, p in sig.parameters.items() if name != "self"]
        doc = inspect.getdoc(cls) or "(undocumented)"
        return f"r.{cls.__name__}({', '.join(str(p) for p in params)})\n    [{cls.phase} action]\n\n{doc}\n"


def in_root(root: Path, path: str, *, what: str = "path") -> Path:
    """*root* joined with the absolute in-image *path*, refusing anything that escapes it."""
    pure = PurePosixPath(path)
    if not pure.is_absolute():
        raise RecipeError(f"{what} {path!r} must be absolute (a path inside the installed system)")
    if ".." in pure.parts:
        raise RecipeError(f"{what} {path!r} must not contain '..'")
    return root.joinpath(*pure.parts[1:])


def in_build(ctx: ActionContext, path: str) -> Path:
    """A path relative to the build directory, or absolute meaning inside destdir."""
    if path.startswith("/"):
        return in_root(ctx.destdir, path)
    pure = PurePosixPath(path)
    if ".." in pure.parts:
        raise RecipeError(f"path {path!r} must not contain '..'")
    return ctx.builddir / pure
