"""Reading recipes without trusting them: their Python runs in the sandbox.

A recipe file is a program written by someone else: its class body and its ``setup``
can do anything Python can. appbuild therefore never executes one in its own process.
It starts the same Python interpreter in the sandbox (:mod:`appbuilder.core.sandbox`: a new
user namespace without capabilities, the seccomp filter, no network, a read-only
tmpfs root) that sees only the interpreter and its standard library (``/usr``, read
only), appbuild's ``recipe`` package and the recipe's own directory (or the group
file), read-only. The recipe is loaded and its ``setup`` run there; what it recorded
comes back as data (class attributes, the macros it changed, each action's name, the
arguments the recipe gave it and its ``file:line``), and appbuild makes the actions
anew from that data, checking them as if the recipe had called them itself. So a
recipe can describe a build, and do nothing else to the machine reading it.

Anything a recipe prints goes to the error stream, never into the answer, which
comes back on a pipe of its own; a recipe that takes longer than a minute to read is
stopped.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from io import BytesIO
from pathlib import Path
from typing import Any

from appbuilder.core.errors import AppbuildError, RecipeError
from appbuilder.recipe.base import PackageRecipe, check_recipe_class
from appbuilder.recipe.group import GroupRecipe, check_group_class

EVALUATION_TIMEOUT = 60.0  # seconds to load a batch of recipes
ANSWER_LIMIT = 64 << 20
PACKAGE_ATTRS = ("name", "version", "buildRequires", "buildTimeout", "license")
HOST_TOP_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


# ------------------------------------------------------------------ the parent: appbuild


def evaluate(items: list[dict]) -> list[dict]:
    """Answer each item (``{"op": "load"|"setup", "kind": "package"|"group", "path": ...,
    "arch": ..., "jobs": ...}``) in one sandboxed interpreter; raises the first item's
    error as a :class:`RecipeError` naming its file and line."""
    from appbuilder.core.sandbox import Bind, Sandbox, build_env

    package_dir = Path(__file__).resolve().parent.parent  # appbuilder/
    binds = [Bind(Path("/usr"), "/usr"), Bind(package_dir, "/appbuild/appbuilder")]
    prefix = Path(sys.base_prefix).resolve()
    if not str(prefix).startswith("/usr"):
        binds.append(Bind(prefix, str(prefix)))
    links = []
    for name in HOST_TOP_LINKS:
        top = Path("/") / name
        if top.is_symlink():
            links.append((os.readlink(top), f"/{name}"))
        elif top.is_dir():
            binds.append(Bind(top, f"/{name}"))
    for item in items:
        path = Path(item["path"])
        shown = path.parent if item["kind"] == "package" else path
        if not any(b.inside == str(shown) for b in binds):
            binds.append(Bind(shown, str(shown)))
    read, write = os.pipe()
    answer = bytearray()

    def collect() -> None:
        with os.fdopen(read, "rb") as f:
            while chunk := f.read(1 << 16):
                if len(answer) < ANSWER_LIMIT:
                    answer.extend(chunk)

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    interpreter = os.path.realpath(sys.executable)
    boot = ("import sys; sys.path.insert(0, '/appbuild'); "
            f"from appbuilder.recipe.evaluate import serve; serve({write})")
    log = BytesIO()
    try:
        box = Sandbox(None, binds, links=links, timeout=EVALUATION_TIMEOUT, hostname="recipe")
        status = box.run([interpreter, "-I", "-S", "-B", "-c", boot, json.dumps(items)], cwd="/",
                         env=build_env(source_date_epoch=0), log=log, pass_fds=(write,))
    except AppbuildError as exc:
        raise RecipeError(f"reading {_names(items)}: {exc}") from None
    finally:
        os.close(write)
        reader.join()
    try:
        answers = json.loads(answer.decode())
        if not isinstance(answers, list) or len(answers) != len(items):
            raise ValueError("not one answer per recipe")
    except ValueError:
        tail = log.getvalue().decode(errors="replace").strip().splitlines()[-15:]
        raise RecipeError(f"reading {_names(items)} failed (status {status}) without an answer:\n"
                          + "\n".join(tail)) from None
    for a in answers:
        if not isinstance(a, dict) or ("error" not in a and "ok" not in a):
            raise RecipeError(f"reading {_names(items)} gave a malformed answer")
        if "error" in a:
            raise RecipeError(str(a["error"]))
    return [a["ok"] for a in answers]


def _names(items: list[dict]) -> str:
    paths = [i["path"] for i in items]
    return paths[0] if len(paths) == 1 else f"{len(paths)} recipes ({paths[0]}, ...)"


# ------------------------------------------------------------------ the child: in the sandbox


def serve(answer_fd: int) -> None:
    """Answer the request in ``sys.argv[1]`` on *answer_fd* (runs in the sandbox)."""
    items = json.loads(sys.argv[1])
    out = os.fdopen(answer_fd, "w")
    sys.stdout = sys.stderr  # what a recipe prints is not the answer
    answers = []
    for item in items:
        try:
            answers.append({"ok": _answer(item)})
        except AppbuildError as exc:
            answers.append({"error": str(exc)})
        except Exception as exc:  # a recipe that breaks its reader: still an answer
            answers.append({"error": f"{item['path']}: {type(exc).__name__}: {exc}"})
    out.write(json.dumps(answers))
    out.close()


def _answer(item: dict) -> dict:
    from appbuilder.core.arch import get_arch

    path = Path(item["path"])
    if item["kind"] == "group":
        cls = exec_group(path)
        if item["op"] == "load":
            return {"attrs": class_attrs(cls)}
        recipe = run_setup(cls(get_arch(item["arch"])), path)
        return {"attrs": class_attrs(cls), "contents": _contents(recipe)}
    cls = exec_recipe(path)
    attrs = {a: getattr(cls, a) for a in PACKAGE_ATTRS}
    attrs["class"] = cls.__name__
    if item["op"] == "load":
        return {"attrs": attrs}
    from appbuilder.recipe.macros import default_macros

    arch = get_arch(item["arch"])
    recipe = run_setup(cls(arch, jobs=item["jobs"], recipe_file=str(path)), path)
    defaults = default_macros(arch, name=cls.name, version=cls.version, jobs=item["jobs"])._raw
    return {
        "attrs": attrs,
        "main_dir": recipe.main_dir,
        "macros": {k: v for k, v in recipe.macros._raw.items() if defaults.get(k) != v},
        "actions": [_carried(a) for a in recipe.actions],
    }


def _carried(action) -> list:
    args, kwargs = action.call
    try:
        json.dumps([args, kwargs])
    except (TypeError, ValueError):
        raise RecipeError(f"{action.where}: {type(action).__name__}: an argument is not text, a number, "
                          f"a list or a dict ({args!r}, {kwargs!r})") from None
    return [type(action).__name__, list(args), kwargs, action.where]


def class_attrs(cls: type) -> dict[str, Any]:
    """The public, plain-data class attributes of a group recipe."""
    from appbuilder.recipe.group import GroupRecipe

    attrs = {"class": cls.__name__}
    for name in dir(cls):
        if name.startswith("_") or name in vars(GroupRecipe) and callable(getattr(GroupRecipe, name)):
            continue
        value = getattr(cls, name)
        if callable(value):
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        attrs[name] = value
    return attrs


def _contents(recipe) -> dict:
    c = recipe.contents
    return {
        "items": [[str(i.spec), list(i.components) if i.components is not None else None, i.where] for i in c.items],
        "removed": c.removed,
        "replaced": {k: str(v) for k, v in c.replaced.items()},
        "subgroups": [list(s) for s in c.subgroups],
        "allowed_conflicts": c.allowed_conflicts,
    }


# ------------------------------------------------------------------ reading a recipe file (in the sandbox)


def exec_recipe(path: Path) -> type[PackageRecipe]:
    """Execute a package recipe file and return its checked class (in the sandbox only)."""
    cls = _exec_file(path, PackageRecipe)
    check_recipe_class(cls, str(path))
    return cls


def exec_group(path: Path) -> type[GroupRecipe]:
    """Execute a group recipe file and return its checked class (in the sandbox only)."""
    cls = _exec_file(path, GroupRecipe)
    check_group_class(cls, str(path))
    return cls


def run_setup(recipe, path: Path):
    """Run a recipe's ``setup()``, naming the recipe's file:line when it fails."""
    try:
        recipe.setup()
    except AppbuildError:
        raise
    except Exception as exc:
        raise RecipeError(f"{_recipe_frame(exc, path)}: error in setup(): {type(exc).__name__}: {exc}") from None
    return recipe


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


def _recipe_globals() -> dict:
    return {"PackageRecipe": PackageRecipe, "GroupRecipe": GroupRecipe}


def _recipe_frame(exc: BaseException, path: Path) -> str:
    """``file:line`` of the innermost traceback frame inside the recipe file."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)
