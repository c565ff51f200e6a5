"""Load recipe files: find the recipe class, check it, run its ``setup``.

Errors name the file and line: a syntax error, an exception inside ``setup``, an
unknown action, a missing ``name`` or ``version``.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

from appbuilder.arch import Arch
from appbuilder.errors import AppbuildError, RecipeError
from appbuilder.recipe.base import PackageRecipe, check_recipe_class
from appbuilder.recipe.group import GroupRecipe, check_group_class

RECIPE_FILE = "recipe.py"


@dataclass(frozen=True)
class RecipeFile:
    """A recipe on disk: its directory (with its own sources) and its class."""

    path: Path
    cls: type[PackageRecipe]

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.cls.name  # type: ignore[return-value]

    @property
    def build_requires(self) -> list[str]:
        return list(self.cls.buildRequires)

    def instantiate(self, arch: Arch, *, jobs: int = 2) -> PackageRecipe:
        """A recipe object for *arch* with its actions recorded."""
        recipe = self.cls(arch, jobs=jobs, recipe_file=str(self.path))
        try:
            recipe.setup()
        except AppbuildError:
            raise
        except Exception as exc:
            raise RecipeError(f"{_recipe_frame(exc, self.path)}: error in setup(): {type(exc).__name__}: {exc}") from None
        return recipe


def recipe_path(path: Path | str) -> Path:
    """``recipes/NAME`` or ``recipes/NAME/recipe.py`` → the recipe file."""
    path = Path(path)
    if path.is_dir():
        path = path / RECIPE_FILE
    if not path.is_file():
        raise RecipeError(f"no recipe at {path}")
    return path


def _exec_file(path: Path, base: type) -> type:
    """Execute a recipe file; return the one subclass of *base* it defines."""
    source = path.read_text()
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise RecipeError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    namespace: dict = {"__name__": f"appbuild_recipe_{path.stem}_{path.parent.name}", "__file__": str(path)}
    namespace.update(_recipe_globals())
    try:
        exec(code, namespace)
    except AppbuildError:
        raise
    except Exception as exc:
        raise RecipeError(f"{_recipe_frame(exc, path)}: {type(exc).__name__}: {exc}") from None
    classes = [
        v for v in namespace.values()
        if isinstance(v, type) and issubclass(v, base) and v.__module__ == namespace["__name__"]
    ]
    if not classes:
        raise RecipeError(f"{path}: defines no recipe class (a subclass of {base.__name__})")
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise RecipeError(f"{path}: defines several recipe classes ({names}); one per file")
    return classes[0]


def load_recipe(path: Path | str) -> RecipeFile:
    """Execute a package recipe file and return its recipe class."""
    path = recipe_path(path).resolve()
    cls = _exec_file(path, PackageRecipe)
    check_recipe_class(cls, str(path))
    return RecipeFile(path, cls)


@dataclass(frozen=True)
class GroupFile:
    """A group recipe on disk."""

    path: Path
    cls: type[GroupRecipe]

    @property
    def name(self) -> str:
        return self.cls.name  # type: ignore[return-value]

    def instantiate(self, arch: Arch) -> GroupRecipe:
        group = self.cls(arch)
        try:
            group.setup()
        except AppbuildError:
            raise
        except Exception as exc:
            raise RecipeError(f"{_recipe_frame(exc, self.path)}: error in setup(): {type(exc).__name__}: {exc}") from None
        return group


def load_group(groups_dir: Path, name: str) -> GroupFile:
    """Load ``groups_dir/NAME.py`` (NAME is ``group-...``)."""
    path = (Path(groups_dir) / f"{name}.py").resolve()
    if not path.is_file():
        known = sorted(p.stem for p in Path(groups_dir).glob("group-*.py"))
        raise RecipeError(f"no group recipe {path}" + (f"; known groups: {', '.join(known)}" if known else ""))
    cls = _exec_file(path, GroupRecipe)
    check_group_class(cls, str(path))
    return GroupFile(path, cls)


def find_recipes(root: Path | str) -> list[RecipeFile]:
    """Every recipe under *root* (a single recipe directory, or ``recipes/``)."""
    root = Path(root)
    if (root / RECIPE_FILE).is_file() or root.is_file():
        return [load_recipe(root)]
    found = sorted(root.glob(f"*/{RECIPE_FILE}"))
    if not found:
        raise RecipeError(f"no recipes in {root} (expected {root}/NAME/{RECIPE_FILE})")
    recipes = [load_recipe(p) for p in found]
    seen: dict[str, Path] = {}
    for r in recipes:
        if r.name in seen:
            raise RecipeError(f"two recipes are named {r.name!r}: {seen[r.name]} and {r.path}")
        seen[r.name] = r.path
    return recipes


def _recipe_globals() -> dict:
    return {"PackageRecipe": PackageRecipe, "GroupRecipe": GroupRecipe}


def _recipe_frame(exc: BaseException, path: Path) -> str:
    """``file:line`` of the innermost traceback frame inside the recipe file."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)
