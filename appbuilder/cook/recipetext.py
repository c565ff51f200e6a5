"""The recipe a package was cooked from, kept in its trove, and ``appbuild diff recipes/NAME``.

A cooked package records the sha256 of every file of its recipe directory
(``recipe_files``, what the source hash covers). It also keeps the text of those files
(``recipe_text``: path -> text) when they are small text files (up to
:data:`MAX_FILE` bytes each, :data:`MAX_TOTAL` in all; a tarball beside the recipe is
recorded by its digest only), so that ``appbuild diff recipes/NAME`` can show what
changed since the last cook, as conary's ``cvc diff`` showed a checkout against the
repository. A recorded text is checked against its recorded sha256 when read: a
damaged record is an error, never a silently wrong diff.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path

from appbuilder.cook.inputs import recipe_files
from appbuilder.core.errors import AppbuildError, RepositoryError
from appbuilder.recipe.loader import RecipeFile
from appbuilder.recipe.tree import UNREAD, recipe_tree
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import PACKAGE, Trove
from appbuilder.repository.versions import NVF

MAX_FILE = 64 << 10
MAX_TOTAL = 256 << 10


def recipe_texts(recipe_dir: Path) -> dict[str, str]:
    """The text of each small text file of a recipe directory, by its path in it (what a
    cooked package keeps in its ``recipe_text``)."""
    kept: dict[str, str] = {}
    total = 0
    for rel, content in recipe_tree(recipe_dir):
        if len(content) > MAX_FILE or total + len(content) > MAX_TOTAL or content.startswith(UNREAD):
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\0" in text:
            continue
        kept[rel] = text
        total += len(content)
    return kept


@dataclass(frozen=True)
class Recorded:
    """A recipe directory's files as one cook recorded them: digests, and texts where kept."""

    nvf: NVF
    digests: dict[str, str]
    texts: dict[str, str]


def recorded_recipe(trove: Trove) -> Recorded:
    """What *trove* records of its recipe; every kept text is checked against its digest."""
    digests = trove.info.get("recipe_files")
    if not isinstance(digests, dict):
        raise RepositoryError(f"{trove.nvf} does not record the files of its recipe (it was not cooked from a "
                              "recipe, or by an appbuild older than recipe provenance)")
    texts = trove.info.get("recipe_text") or {}
    for rel, text in texts.items():
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digests.get(rel) != digest:
            raise RepositoryError(f"{trove.nvf}: the recorded text of {rel} does not match its recorded sha256 "
                                  f"({digest[:16]} against {str(digests.get(rel))[:16]}): the repository index "
                                  "is damaged; run `appbuild verify`")
    return Recorded(trove.nvf, dict(digests), dict(texts))


def last_cooked(repo: Repository, name: str, arch: str | None = None) -> Trove:
    """The newest package *name* (for *arch*) cooked from a recipe."""
    found = [n for n in repo.versions(name, arch=arch)]
    for nvf in reversed(found):
        trove = repo.get(nvf, with_files=False)
        if trove.kind == PACKAGE and "recipe_files" in trove.info:
            return trove
    where = f" for {arch}" if arch else ""
    if found:
        raise AppbuildError(f"no version of {name}{where} was cooked from a recipe (it was imported): "
                            "there is nothing to diff against")
    raise AppbuildError(f"{name} has never been cooked{where}: there is nothing to diff against "
                        f"(appbuild cook recipes/{name})")


def diff_lines(repo: Repository, rf: RecipeFile, arch: str | None = None) -> tuple[NVF, list[str]]:
    """A unified diff of the recipe directory *rf* against the one its last cook recorded
    (empty when they are the same); and that cook's trove."""
    old = recorded_recipe(last_cooked(repo, rf.name, arch))
    now_digests = recipe_files(rf.directory)
    now_texts = dict(_texts_of(rf.directory))
    lines: list[str] = []
    for rel in sorted(set(old.digests) | set(now_digests)):
        a, b = old.digests.get(rel), now_digests.get(rel)
        if a == b:
            continue
        left = f"a/{rf.name}/{rel}" if a else "/dev/null"
        right = f"b/{rf.name}/{rel}" if b else "/dev/null"
        old_text = old.texts.get(rel) if a else ""
        new_text = now_texts.get(rel) if b else ""
        if old_text is None or new_text is None:
            why = "its text was not recorded (a binary or large file)" if old_text is None else "a binary file"
            lines.append(f"Files {left} and {right} differ ({why}; sha256 {(a or '-')[:16]} -> {(b or '-')[:16]})")
            continue
        lines.append(f"diff {left} {right}")
        for line in difflib.unified_diff(old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                         fromfile=left, tofile=right):
            lines.append(line.rstrip("\n"))
            if not line.endswith("\n"):
                lines.append("\\ No newline at end of file")
    return old.nvf, lines


def _texts_of(recipe_dir: Path):
    for rel, content in recipe_tree(recipe_dir):
        if content.startswith(UNREAD):
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\0" not in text:
            yield rel, text
