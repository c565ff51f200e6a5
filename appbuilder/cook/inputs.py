"""Hashes that decide whether a cook is needed and what version it gets.

* The **source hash** covers the recipe directory: ``recipe.py`` and every file beside
  it (URL sources are pinned by sha256 inside the recipe, so they are covered too), and
  the recipe library files it loads (``loadSuperClass('NAME')``: ``recipes/NAME/recipe.py``,
  :mod:`appbuilder.recipe.library`), so changing a superclass cooks its users again. A
  new source hash means a new source count.
* The **input hash** chains the source hash with everything else the build depends on:
  the target architecture, the exact versions of the build requirements, the pin of
  the toolchain group the build root is made from (never anything of the host), and a
  digest of appbuild's own code that shapes a cook's output (:data:`COOK_CODE`: the
  recipe actions and macros, the policies and dependency discovery, the cook, its
  build roots and sandbox), so changing a policy cooks again what it would change
  (osbuild's hash-chained cache ids). A cook whose input hash is already in the
  repository is skipped.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import appbuilder
from appbuilder.recipe.library import RECIPE_FILE, library_files, library_name
from appbuilder.recipe.tree import recipe_tree
from appbuilder.repository.versions import NVF

# appbuild's code whose change can change what a cook produces (directories or files of
# the appbuilder package)
COOK_CODE = ("recipe", "policy", "cook/cook.py", "cook/buildroot.py", "cook/archive.py", "cook/toolchain.py",
             "core/sandbox.py", "core/beneath.py", "core/arch.py", "repository/deps.py", "upstream/debsrc.py")


def _libraries(recipe_dir: Path):
    """(name, content) of each recipe library file the recipe loads, in the order named."""
    recipe = recipe_dir / RECIPE_FILE
    if not recipe.is_file():
        return
    for path in library_files(recipe):
        if path.parent != recipe_dir:  # a NAME.recipe beside the recipe is in the tree already
            yield library_name(path, recipe), path.read_bytes()


def source_hash(recipe_dir: Path) -> str:
    h = hashlib.sha256()
    for rel, content in recipe_tree(recipe_dir):
        h.update(rel.encode() + b"\0" + content + b"\0")
    for name, content in _libraries(recipe_dir):
        h.update(b"library\0" + name.encode() + b"\0" + content + b"\0")
    return h.hexdigest()


def recipe_files(recipe_dir: Path) -> dict[str, str]:
    """sha256 of each file the source hash covers, by its path in the recipe directory (what
    a cooked package records, for its provenance)."""
    return {rel: hashlib.sha256(content).hexdigest() for rel, content in recipe_tree(recipe_dir)}


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 over the files of :data:`COOK_CODE` (their paths and contents)."""
    package = Path(appbuilder.__file__).resolve().parent
    h = hashlib.sha256()
    for entry in COOK_CODE:
        top = package / entry
        files = [top] if top.is_file() else sorted(top.rglob("*.py"))
        for path in files:
            h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def input_hash(source: str, arch: str, build_requires: list[NVF], toolchain: str) -> str:
    h = hashlib.sha256()
    for part in (f"appbuild code {code_digest()}", f"source {source}", f"arch {arch}", f"toolchain {toolchain}",
                 *(f"requires {n}" for n in sorted(map(str, build_requires)))):
        h.update(part.encode() + b"\n")
    return h.hexdigest()
