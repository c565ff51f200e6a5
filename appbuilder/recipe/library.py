"""The recipe library: where ``loadSuperClass('NAME')`` finds NAME.

In conary a superclass is itself a recipe (a source trove with a name and a version)
whose classes a recipe loads with ``loadSuperClass('NAME')`` (or ``loadInstalled``).
In appbuild the workspace is the repository, so the library is the workspace itself:

* ``NAME.recipe`` beside the recipe that asks (conary looked there first), else
* ``recipes/NAME/recipe.py`` for a package superclass (``loadSuperClass('autotools')``
  reads ``recipes/autotools/recipe.py``), or
* ``groups/NAME.py`` for a name starting with ``group-`` (a group superclass).

A superclass that is only a superclass says so with ``abstractBaseClass = True`` in its
class (as in conary): ``appbuild cook recipes/`` then does not cook it on its own. A
library file is read like a recipe, in the sandbox; only the library files a recipe
names (with a string literal, found here without running anything) are made visible
to it there, read-only, and their contents count in the recipe's source hash, so
changing a superclass cooks its users again.

Trove specs may carry a version (``'autotools=1.0'``: the library's recipe must have
that version), a label (``'autotools=conary.rpath.com@rpl:1'``: accepted, the workspace
holds one version of each recipe) or a flavor (``'autotools[!bootstrap]'``: accepted).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

from appbuilder.core.errors import RecipeError

LOADERS = ("loadSuperClass", "loadInstalled")
LIBRARY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*$")
RECIPE_FILE = "recipe.py"


@dataclass(frozen=True)
class LibrarySpec:
    """A parsed ``loadSuperClass`` argument: ``name[=version][[flavor]]``."""

    name: str
    version: str | None  # an upstream version the library must have
    label: str | None  # a conary label or branch (accepted, not checked)
    flavor: str | None

    @classmethod
    def parse(cls, spec: str) -> "LibrarySpec":
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"a trove spec is a string such as 'autotools' or 'autotools=1.0', not {spec!r}")
        text = spec.strip()
        flavor = None
        if text.endswith("]") and "[" in text:
            text, flavor = text[:-1].split("[", 1)
        name, _, version = text.partition("=")
        name = name.strip()
        if name.endswith(".recipe"):
            name = name[: -len(".recipe")]
        if name.endswith(":source"):
            name = name[: -len(":source")]
        if not LIBRARY_NAME_RE.match(name):
            raise ValueError(f"{name!r} is not a recipe name (letters, digits, + . _ -)")
        label = None
        version = version.strip() or None
        if version and ("@" in version or version.startswith((":", "/"))):
            label, version = version, None
            if "/" in label.strip("/"):  # a full version string: its last part is the version
                last = label.rstrip("/").rsplit("/", 1)[1]
                version = last.split("-", 1)[0] or None
        elif version:
            version = version.split("-", 1)[0]  # upstream-sourcecount(-buildcount): the upstream part
        return cls(name, version, label, flavor)


def recipes_root(caller: Path) -> Path:
    """The ``recipes/`` directory of the workspace *caller* (a recipe or group file) is in."""
    return caller.parent.parent if caller.name == RECIPE_FILE else caller.parent.parent / "recipes"


def candidates(name: str, caller: Path) -> list[Path]:
    """Where ``loadSuperClass(name)`` called from *caller* looks, in order."""
    root = recipes_root(caller)
    library = root.parent / "groups" / f"{name}.py" if name.startswith("group-") else root / name / RECIPE_FILE
    return [caller.parent / f"{name}.recipe", library]


def find_library(name: str, caller: Path) -> Path | None:
    """The first existing file ``loadSuperClass(name)`` from *caller* reads (None: none)."""
    for path in candidates(name, caller):
        if path.is_file():
            return path
    return None


def named_libraries(source: str) -> list[tuple[str, int]]:
    """``(spec, line)`` of each ``loadSuperClass('...')``/``loadInstalled('...')`` with a
    string literal in *source*, found with the tokenizer (nothing runs)."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
                  if t.type not in (tokenize.NL, tokenize.COMMENT)]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return []  # compiling it in the sandbox reports the real error
    found = []
    for i, t in enumerate(tokens[:-2]):
        if t.type == tokenize.NAME and t.string in LOADERS and tokens[i + 1].string == "(" \
                and tokens[i + 2].type == tokenize.STRING:
            try:
                value = ast.literal_eval(tokens[i + 2].string)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, str):
                found.append((value, t.start[0]))
    return found


def library_files(path: Path) -> list[Path]:
    """Every library file the recipe or group file *path* names, and those they name
    (each once, in the order first named). Raises :class:`RecipeError` for one that
    leads outside its workspace (a symbolic link elsewhere)."""
    workspace = recipes_root(path).parent.resolve()
    seen: list[Path] = []
    todo = [path]
    while todo:
        current = todo.pop(0)
        try:
            source = current.read_text(errors="replace")
        except OSError:
            continue
        for spec, line in named_libraries(source):
            try:
                name = LibrarySpec.parse(spec).name
            except ValueError:
                continue  # reported with its line when the recipe is read
            found = find_library(name, current)
            if found is None or found == path or found in seen:
                continue
            real = found.resolve()
            if not real.is_relative_to(workspace):
                raise RecipeError(f"{current}:{line}: loadSuperClass({spec!r}): {found} leads outside the "
                                  f"workspace (to {real})")
            seen.append(found)
            todo.append(found)
    return seen


def library_name(path: Path, caller: Path) -> str:
    """How a library file is named in hashes and messages: its path below the workspace."""
    workspace = recipes_root(caller).parent
    try:
        return path.relative_to(workspace).as_posix()
    except ValueError:
        return path.as_posix()


def source_digest(path: Path) -> str:
    """sha256 of a recipe or group file with the library files it loads: the file's own
    sha256 when it loads none (so it is what it was before superclasses), else a digest
    over the file and each library file, in the order named."""
    import hashlib

    content = path.read_bytes()
    libraries = library_files(path)
    if not libraries:
        return hashlib.sha256(content).hexdigest()
    h = hashlib.sha256(b"file\0" + content + b"\0")
    for library in libraries:
        h.update(b"library\0" + library_name(library, path).encode() + b"\0" + library.read_bytes() + b"\0")
    return h.hexdigest()
