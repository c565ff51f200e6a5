"""Load recipe files: find the recipe class, check it, run its ``setup``.

Recipe code runs only in the sandbox (:mod:`appbuilder.recipe.evaluate`); here the
answers are made into recipe objects again. Errors name the file and line: a syntax
error, an exception inside ``setup``, an unknown action, a missing ``name`` or
``version``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appbuilder.core.arch import Arch
from appbuilder.core.errors import RecipeError
from appbuilder.recipe.base import PackageRecipe, check_recipe_class
from appbuilder.recipe.group import (
    GroupContents,
    GroupRecipe,
    check_group_class,
)

RECIPE_FILE = "recipe.py"


@dataclass(frozen=True)
class RecipeFile:
    """A recipe on disk: its directory (with its own sources) and what its class says.

    The class was read in the sandbox (:mod:`appbuilder.recipe.evaluate`); ``attrs``
    holds its ``name``, ``version``, ``buildRequires``, ``buildTimeout`` and ``license``.
    """

    path: Path
    attrs: dict

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.attrs["name"]

    @property
    def version(self) -> str:
        return self.attrs["version"]

    @property
    def build_requires(self) -> list[str]:
        return list(self.attrs["buildRequires"])

    @property
    def abstract(self) -> bool:
        """A superclass only (``abstractBaseClass = True``): recipes load it, nobody cooks it."""
        return bool(self.attrs.get("abstract"))

    def instantiate(self, arch: Arch, *, jobs: int = 2, use: dict[str, bool] | None = None,
                    local: dict[str, bool] | None = None) -> PackageRecipe:
        """A recipe object for *arch* with its actions recorded (``setup`` runs in the sandbox),
        *use* and *local* the values of its use flags and its own flags
        (:mod:`appbuilder.recipe.flavor`); ``recipe.used_flags`` are those it read."""
        from appbuilder.recipe.evaluate import evaluate

        data = evaluate([{"op": "setup", "kind": "package", "path": str(self.path), "arch": arch.name,
                          "jobs": jobs, "use": use, "local": local}])[0]
        return _package_recipe(data, self.path, arch, jobs)


def recipe_path(path: Path | str) -> Path:
    """``recipes/NAME`` or ``recipes/NAME/recipe.py`` → the recipe file."""
    path = Path(path)
    if path.is_dir():
        path = path / RECIPE_FILE
    if not path.is_file():
        raise RecipeError(f"no recipe at {path}")
    return path


def load_recipe(path: Path | str) -> RecipeFile:
    """Read a package recipe file (in the sandbox) and return what its class says."""
    return _load_recipes([recipe_path(path).resolve()])[0]


@dataclass(frozen=True)
class GroupFile:
    """A group recipe on disk (read in the sandbox when it is instantiated)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    def instantiate(self, arch: Arch) -> GroupRecipe:
        from appbuilder.recipe.evaluate import evaluate

        data = evaluate([{"op": "setup", "kind": "group", "path": str(self.path), "arch": arch.name}])[0]
        return _group_recipe(data, self.path, arch)


def load_group(groups_dir: Path, name: str) -> GroupFile:
    """The group recipe ``groups_dir/NAME.py`` (NAME is ``group-...``)."""
    path = (Path(groups_dir) / f"{name}.py").resolve()
    if not path.is_file():
        known = sorted(p.stem for p in Path(groups_dir).glob("group-*.py"))
        raise RecipeError(f"no group recipe {path}" + (f"; known groups: {', '.join(known)}" if known else ""))
    return GroupFile(path)


def find_recipes(root: Path | str) -> list[RecipeFile]:
    """Every recipe under *root* (a single recipe directory, or ``recipes/``), read in one
    sandboxed interpreter. Superclasses (``abstractBaseClass = True``) of the recipe
    library are not among them: they are not cooked on their own."""
    root = Path(root)
    if (root / RECIPE_FILE).is_file() or root.is_file():
        recipe = load_recipe(root)
        if recipe.abstract:
            raise RecipeError(f"{recipe.path}: {recipe.name} is a superclass (abstractBaseClass): it is not "
                              f"cooked on its own; recipes use it with loadSuperClass({recipe.name!r})")
        return [recipe]
    found = sorted(p.resolve() for p in root.glob(f"*/{RECIPE_FILE}"))
    if not found:
        raise RecipeError(f"no recipes in {root} (expected {root}/NAME/{RECIPE_FILE})")
    recipes = _load_recipes(found)
    seen: dict[str, Path] = {}
    for r in recipes:
        if r.name in seen:
            raise RecipeError(f"two recipes are named {r.name!r}: {seen[r.name]} and {r.path}")
        seen[r.name] = r.path
    return [r for r in recipes if not r.abstract]


def _load_recipes(paths: list[Path]) -> list[RecipeFile]:
    from appbuilder.recipe.evaluate import evaluate

    answers = evaluate([{"op": "load", "kind": "package", "path": str(p)} for p in paths])
    recipes = []
    for path, data in zip(paths, answers):
        _package_class(data["attrs"], path)  # the attributes as the recipe gave them, checked here too
        recipes.append(RecipeFile(path, data["attrs"]))
    return recipes


# ------------------------------------------------------------------ remaking what the sandbox read


def _package_class(attrs: dict, path: Path) -> type[PackageRecipe]:
    body = {a: attrs.get(a) for a in ("name", "version", "buildRequires", "buildTimeout", "license")}
    cls = type(str(attrs.get("class", "Recipe")), (PackageRecipe,), {**body, "setup": lambda self: None})
    check_recipe_class(cls, str(path))
    return cls


def _package_recipe(data: dict, path: Path, arch: Arch, jobs: int) -> PackageRecipe:
    from appbuilder.recipe.actions import REGISTRY

    recipe = _package_class(data["attrs"], path)(arch, jobs=jobs, recipe_file=str(path))
    for key, value in data["macros"].items():
        recipe.macros._raw[str(key)] = str(value)
    recipe.main_dir = str(data["main_dir"])
    recipe.used_flags = tuple((str(n), str(sense)) for n, sense in data.get("flavor", []))
    for name, args, kwargs, where in data["actions"]:
        cls = REGISTRY.get(name)
        if cls is None:
            raise RecipeError(f"{where}: unknown action {name!r}")
        recipe.actions.append(cls.record(args, kwargs, str(where)))
    return recipe


def _group_recipe(data: dict, path: Path, arch: Arch) -> GroupRecipe:
    from appbuilder.core.errors import RepositoryError

    attrs = {k: v for k, v in data["attrs"].items() if k != "class"}
    for k, v in attrs.items():  # tuples travel as lists
        if isinstance(getattr(GroupRecipe, k, None), tuple) and isinstance(v, list):
            attrs[k] = tuple(v)
    cls = type(str(data["attrs"].get("class", "Group")), (GroupRecipe,), {**attrs, "setup": lambda self: None})
    check_group_class(cls, str(path))
    group = cls(arch)
    c = data["contents"]
    try:
        group.contents = GroupContents.from_data(c)
    except (RepositoryError, TypeError, ValueError) as exc:
        raise RecipeError(f"{path}: what setup() recorded cannot be used: {exc}") from None
    return group
