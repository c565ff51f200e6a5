"""Kept answers: a recipe nothing it sees changed is not read in the sandbox again, and a
kept answer is checked before it is used."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from appbuilder.core.arch import get_arch
from appbuilder.core.errors import RecipeError
from appbuilder.recipe import answers, evaluate
from appbuilder.recipe.loader import find_recipes, load_group, load_recipe

RECIPE = """\
    class Kept(PackageRecipe):
        name = 'kept'
        version = '1.0'

        def setup(r):
            r.addSource('kept.conf')
            r.Install('kept.conf', '%(sysconfdir)s/kept.conf')
    """


@pytest.fixture
def reads(monkeypatch):
    """The questions that went to the sandbox (the real one: each read still happens)."""
    asked: list[list[dict]] = []
    real = evaluate._read_in_sandbox

    def counting(items):
        asked.append(items)
        return real(items)

    monkeypatch.setattr(evaluate, "_read_in_sandbox", counting)
    return asked


def recipe_dir(tmp_path: Path) -> Path:
    d = tmp_path / "recipes" / "kept"
    d.mkdir(parents=True)
    (d / "recipe.py").write_text(textwrap.dedent(RECIPE))
    (d / "kept.conf").write_text("a=1\n")
    return d


def kept_files(cache: Path) -> list[Path]:
    return sorted((cache / answers.DIRECTORY).glob("*.json"))


def test_an_unchanged_recipe_is_answered_from_the_cache(tmp_path, reads):
    d = recipe_dir(tmp_path)
    cache = tmp_path / "cache"
    with answers.kept_in(cache):
        first = load_recipe(d).instantiate(get_arch("x86_64"))
        again = load_recipe(d).instantiate(get_arch("x86_64"))
    assert len(reads) == 2  # the class, then setup; neither again
    assert len(kept_files(cache)) == 2
    assert [type(a).__name__ for a in again.actions] == [type(a).__name__ for a in first.actions]
    assert [a.call for a in again.actions] == [a.call for a in first.actions]
    with answers.kept_in(cache):
        load_recipe(d).instantiate(get_arch("x86"))  # another question (setup for x86): read
    assert len(reads) == 3


def test_a_change_to_any_file_of_the_recipe_reads_it_again(tmp_path, reads):
    d = recipe_dir(tmp_path)
    cache = tmp_path / "cache"
    with answers.kept_in(cache):
        find_recipes(d)
        (d / "kept.conf").write_text("a=2\n")  # a file beside the recipe: it could read it
        find_recipes(d)
        (d / "recipe.py").write_text(textwrap.dedent(RECIPE).replace("'1.0'", "'1.1'"))
        assert find_recipes(d)[0].version == "1.1"
    assert len(reads) == 3


def test_a_damaged_or_misplaced_answer_is_not_used(tmp_path, reads):
    d = recipe_dir(tmp_path)
    cache = tmp_path / "cache"
    with answers.kept_in(cache):
        find_recipes(d)
        (kept,) = kept_files(cache)
        good = kept.read_bytes()
        kept.write_bytes(good.replace(b"kept", b"evil"))  # its text no longer hashes to its digest
        assert find_recipes(d)[0].name == "kept"
        assert kept.read_bytes() == good  # read again, and kept again
        other = tmp_path / "other" / "recipes" / "evil"
        other.mkdir(parents=True)
        (other / "recipe.py").write_text(textwrap.dedent(RECIPE).replace("kept", "evil").replace("Kept", "Evil"))
        find_recipes(other)
        (evil,) = [p for p in kept_files(cache) if p != kept]
        kept.write_bytes(evil.read_bytes())  # a sound answer, but to another question
        assert find_recipes(d)[0].name == "kept"
        kept.write_bytes(b"")  # cut short
        assert find_recipes(d)[0].name == "kept"
    assert len(reads) == 5


def test_errors_are_never_kept_and_nothing_is_kept_without_a_cache(tmp_path, reads):
    d = recipe_dir(tmp_path)
    (d / "recipe.py").write_text("class Broken(PackageRecipe):\n    name = 'broken'\n    version = \n")
    cache = tmp_path / "cache"
    with answers.kept_in(cache):
        for _ in range(2):
            with pytest.raises(RecipeError, match="recipe.py"):
                find_recipes(d)
    assert len(reads) == 2 and kept_files(cache) == []
    (d / "recipe.py").write_text(textwrap.dedent(RECIPE))
    find_recipes(d)
    find_recipes(d)
    assert len(reads) == 4 and kept_files(cache) == []


def test_a_group_and_the_library_files_it_loads_are_in_the_key(tmp_path, reads):
    groups = tmp_path / "groups"
    groups.mkdir()
    lib = tmp_path / "recipes" / "base-group"
    lib.mkdir(parents=True)
    (lib / "recipe.py").write_text(textwrap.dedent("""\
        class BaseGroup(GroupRecipe):
            abstractBaseClass = True
            name = 'base-group'
            version = '1'
        """))
    (groups / "group-kept.py").write_text(textwrap.dedent("""\
        loadSuperClass('base-group')

        class GroupKept(BaseGroup):
            name = 'group-kept'
            version = '1.0'

            def setup(r):
                r.add('kept')
        """))
    cache = tmp_path / "cache"
    with answers.kept_in(cache):
        load_group(groups, "group-kept").instantiate(get_arch("x86_64"))
        load_group(groups, "group-kept").instantiate(get_arch("x86_64"))
        assert len(reads) == 1
        (lib / "recipe.py").write_text((lib / "recipe.py").read_text().replace("'1'", "'2'"))
        load_group(groups, "group-kept").instantiate(get_arch("x86_64"))
    assert len(reads) == 2


def test_a_fifo_beside_the_recipe_is_counted_not_read(tmp_path, reads):
    import os

    d = recipe_dir(tmp_path)
    os.mkfifo(d / "pipe")  # reading it would wait for a writer forever
    with answers.kept_in(tmp_path / "cache"):
        assert find_recipes(d)[0].name == "kept"
        assert find_recipes(d)[0].name == "kept"
    assert len(reads) == 1


def test_trimming_keeps_the_most_recently_used_and_clears_cut_short_keeps(tmp_path, monkeypatch):
    """Beyond MAX_KEPT answers the least recently used go (down to three quarters); the
    temporary file of a keep that was killed midway goes once it is stale."""
    import os
    import time

    monkeypatch.setattr(answers, "MAX_KEPT", 4)
    place = tmp_path / "recipe-answers"
    place.mkdir()
    now = time.time()
    for age in range(6):  # answer 0 the most recently used
        f = place / f"{age:064x}.json"
        f.write_text("x")
        os.utime(f, (now - age * 60, now - age * 60))
    stale, fresh = place / ".a.json.1.tmp", place / ".b.json.2.tmp"
    for f, age in ((stale, answers.STALE_TEMPORARY + 60), (fresh, 5)):
        f.write_text("half")
        os.utime(f, (now - age, now - age))
    answers._trim(place)
    assert sorted(p.name for p in place.iterdir()) == [fresh.name, *(f"{age:064x}.json" for age in range(3))]
