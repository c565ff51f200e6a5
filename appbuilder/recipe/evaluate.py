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
stopped. An answer is kept (:mod:`appbuilder.recipe.answers`): a recipe nothing it sees
changed is not read again.

Conary recipes load as written (:mod:`appbuilder.recipe.conary`): the file sees conary's
base classes and functions without an import line (:func:`_recipe_globals` makes that
namespace), Python 2 octal literals are rewritten with a warning
(:mod:`appbuilder.recipe.py2`), ``loadSuperClass``/``loadInstalled`` read a file of the
recipe library (:mod:`appbuilder.recipe.library`; only the library files the recipe
names are bound into the sandbox, read-only) and a conary name appbuild lacks stops the
recipe with ``conary's NAME is not supported: ...`` (:mod:`appbuilder.recipe.unsupported`).
Warnings come back with the answer and are printed once on the error stream.
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
from appbuilder.recipe import answers as kept
from appbuilder.recipe.base import PackageRecipe, caller_where, check_recipe_class
from appbuilder.recipe.group import GroupRecipe, check_group_class
from appbuilder.recipe.library import LibrarySpec, candidates, find_library, library_files, library_name
from appbuilder.recipe.unsupported import unsupported

EVALUATION_TIMEOUT = 60.0  # seconds to load a batch of recipes
ANSWER_LIMIT = 64 << 20
PACKAGE_ATTRS = ("name", "version", "buildRequires", "buildTimeout", "license")
HOST_TOP_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


# ------------------------------------------------------------------ the parent: appbuild


def evaluate(items: list[dict]) -> list[dict]:
    """Answer each item (``{"op": "load"|"setup", "kind": "package"|"group", "path": ...,
    "arch": ..., "jobs": ...}``): from the kept answers (:mod:`appbuilder.recipe.answers`)
    where nothing changed, the others in one sandboxed interpreter; raises the first item's
    error as a :class:`RecipeError` naming its file and line."""
    keys = [kept.key_of(item) for item in items]
    found = [kept.look_up(key) for key in keys]
    missing = [i for i, a in enumerate(found) if a is None]
    if missing:
        fresh = _read_in_sandbox([items[i] for i in missing])
        for i, a in zip(missing, fresh):
            found[i] = a
            kept.keep(keys[i], a)
    for a in found:
        _show_warnings(a.get("warnings"))
        if "error" in a:
            raise RecipeError(str(a["error"]))
    return [a["ok"] for a in found]


def _read_in_sandbox(items: list[dict]) -> list[dict]:
    """The sandbox's answer to each item (``{"ok": ...}`` or ``{"error": ...}``, with its
    ``warnings``), checked for form."""
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
        for library in library_files(path):  # what loadSuperClass names: just those files, read-only
            if not any(b.inside == str(library) for b in binds):
                binds.append(Bind(library.resolve(), str(library)))
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
    return answers


_SHOWN: set[str] = set()


def _show_warnings(warnings) -> None:
    """Print each warning the sandbox gave once per process (a recipe is read several times)."""
    for w in warnings if isinstance(warnings, list) else ():
        if isinstance(w, str) and w not in _SHOWN:
            _SHOWN.add(w)
            print(f"warning: {w}", file=sys.stderr)


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
        _WARNINGS.clear()
        _SOURCES.clear()
        try:
            answer = {"ok": _answer(item)}
        except AppbuildError as exc:
            answer = {"error": str(exc)}
        except Exception as exc:  # a recipe that breaks its reader: still an answer
            answer = {"error": f"{item['path']}: {type(exc).__name__}: {exc}"}
        answers.append({**answer, "warnings": list(_WARNINGS)})
    out.write(json.dumps(answers))
    out.close()


def _answer(item: dict) -> dict:
    from appbuilder.core.arch import get_arch
    from appbuilder.recipe import flavor

    path = Path(item["path"])
    tracker = flavor.begin(item.get("arch"), item.get("use"), item.get("local"))
    if item["kind"] == "group":
        cls = exec_group(path)
        if item["op"] == "load":
            return {"attrs": class_attrs(cls)}
        recipe = run_setup(cls(get_arch(item["arch"])), path)
        return {"attrs": class_attrs(cls), "contents": _contents(recipe)}
    cls = exec_recipe(path)
    attrs = {a: getattr(cls, a) for a in PACKAGE_ATTRS}
    attrs["class"] = cls.__name__
    attrs["abstract"] = bool(cls.__dict__.get("abstractBaseClass"))  # a superclass, not cooked itself
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
        "flavor": tracker.flags(cls.name),  # the use flags setup() read (conary's flavor)
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
    return recipe.contents.to_data()


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
        why = _conary_name(exc)
        if why:
            raise RecipeError(f"{_recipe_frame(exc, path)}: {why}") from None
        raise RecipeError(f"{_recipe_frame(exc, path)}: error in setup(): {type(exc).__name__}: {exc}") from None
    return recipe


def _conary_name(exc: BaseException) -> str | None:
    """``conary's X is not supported: ...`` when *exc* is a NameError for a conary global or an
    AttributeError for a conary method of a recipe object; else None."""
    if isinstance(exc, NameError) and not isinstance(exc, UnboundLocalError) and getattr(exc, "name", None):
        return unsupported(exc.name, attribute=False)
    if isinstance(exc, AttributeError) and isinstance(getattr(exc, "obj", None), (PackageRecipe, GroupRecipe)):
        return unsupported(exc.name, attribute=True) if getattr(exc, "name", None) else None
    return None


_WARNINGS: list[str] = []  # of the item being answered (Python 2 octal literals, ...)
_SOURCES: set[str] = set()  # the recipe and library files read for it (for file:line)


def _exec_file(path: Path, base: type) -> type:
    """Execute a recipe file; return the one subclass of *base* it defines."""
    module = f"appbuild_recipe_{path.stem}_{path.parent.name}"
    namespace = _exec_source(path, module, loading=(path,), loaded={})
    classes = [
        v for v in namespace.values()
        if isinstance(v, type) and issubclass(v, base) and v.__module__ == module
    ]
    if not classes:
        raise RecipeError(f"{path}: defines no recipe class (a subclass of {base.__name__})")
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise RecipeError(f"{path}: defines several recipe classes ({names}); one per file")
    return classes[0]


def _exec_source(path: Path, module: str, *, loading: tuple[Path, ...], loaded: dict,
                 loaded_by: str | None = None) -> dict:
    """Run a recipe or library file in a fresh recipe namespace and return the namespace.
    *loading*: the files being loaded (this one last), to refuse a circle; *loaded*: the
    libraries read so far for this recipe (read once each)."""
    from appbuilder.recipe.py2 import rewrite_octal

    by = f" (loaded by {loaded_by})" if loaded_by else ""
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read it{by}: {exc}") from None
    source, warnings = rewrite_octal(source, str(path))
    _WARNINGS.extend(warnings)
    _SOURCES.add(str(path))
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise RecipeError(f"{path}:{exc.lineno}: syntax error: {exc.msg}{by}") from None
    namespace: dict = {"__name__": module, "__file__": str(path)}
    namespace.update(_recipe_globals())
    for name in ("loadSuperClass", "loadInstalled"):
        namespace[name] = _library_loader(name, path, namespace, loading, loaded)
    try:
        exec(code, namespace)
    except AppbuildError:
        raise
    except Exception as exc:
        why = _conary_name(exc) or f"{type(exc).__name__}: {exc}"
        raise RecipeError(f"{_recipe_frame(exc, path)}: {why}{by}") from None
    return namespace


def _library_loader(function: str, caller: Path, namespace: dict, loading: tuple[Path, ...], loaded: dict):
    """``loadSuperClass``/``loadInstalled`` for the file *caller*: read a recipe of the
    library and put its recipe classes into *namespace* (as conary did); returns the
    library's recipe class."""

    def load(troveSpec, label=None):
        where = caller_where()
        call = f"{function}({troveSpec!r})"
        try:
            spec = LibrarySpec.parse(troveSpec)
        except ValueError as exc:
            raise RecipeError(f"{where}: {call}: {exc}") from None
        path = find_library(spec.name, caller)
        if path is None:
            looked = " or ".join(str(p) for p in candidates(spec.name, caller))
            raise RecipeError(f"{where}: {call}: the recipe library has no {spec.name!r} (looked for {looked}; "
                              f"a superclass is named with a string literal)")
        if path in loading:
            chain = " -> ".join(library_name(p, caller) for p in (*loading, path))
            raise RecipeError(f"{where}: {call} loads in a circle: {chain}")
        if path not in loaded:
            loaded[path] = _load_library(path, spec.name, loading=(*loading, path), loaded=loaded, where=where)
        main, classes = loaded[path]
        if spec.version and main.version != spec.version:
            raise RecipeError(f"{where}: {call}: the recipe library has {spec.name} {main.version}, not "
                              f"{spec.version} ({path})")
        for what, value in (("label", spec.label or label), ("flavor", spec.flavor)):
            if value:
                _WARNINGS.append(f"{where}: {call}: the {what} {value!r} is not looked up: the workspace's "
                                 f"{library_name(path, caller)} is used")
        namespace.update(classes)
        return main

    load.__name__ = function
    return load


def _load_library(path: Path, name: str, *, loading: tuple[Path, ...], loaded: dict, where: str):
    """(the recipe class named *name*, every recipe class by its name) of a library file."""
    module = f"appbuild_library_{name}"
    namespace = _exec_source(path, module, loading=loading, loaded=loaded, loaded_by=where)
    classes = {k: v for k, v in namespace.items()
               if isinstance(v, type) and issubclass(v, (PackageRecipe, GroupRecipe)) and v.__module__ == module}
    main = [c for c in classes.values() if c.__dict__.get("name") == name]
    if len(main) != 1:
        raise RecipeError(f"{path}: defines {'no' if not main else 'more than one'} recipe class with "
                          f"name = {name!r} (loaded by {where})")
    return main[0], classes


def _recipe_globals() -> dict:
    """The names a recipe (or library) file sees without importing them: conary's base
    classes and functions, its pre-imported modules, the build flags. Extend it here."""
    import os as _os
    import re as _re
    import stat as _stat

    from appbuilder.recipe import conary, flavor

    return {
        "PackageRecipe": PackageRecipe, "GroupRecipe": GroupRecipe,
        "BuildPackageRecipe": conary.BuildPackageRecipe, "CPackageRecipe": conary.CPackageRecipe,
        "AutoPackageRecipe": conary.AutoPackageRecipe,
        "clearBuildRequires": conary.clearBuildRequires, "clearBuildReqs": conary.clearBuildReqs,
        "os": _os, "re": _re, "sys": sys, "stat": _stat,  # conary's recipe files had these
        **flavor.current().namespace(),
    }


def _recipe_frame(exc: BaseException, path: Path) -> str:
    """``file:line`` of the innermost traceback frame inside the recipe file or a library
    file it loaded."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path) or frame.filename in _SOURCES:
            found = f"{frame.filename}:{frame.lineno}"
    return found or str(path)
