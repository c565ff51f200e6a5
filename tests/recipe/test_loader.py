"""Loading recipe files: every mistake a recipe author can make is reported with file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from appbuilder.core.errors import RecipeError
from appbuilder.recipe.loader import find_recipes, load_recipe, recipe_path


def write(dir_: Path, body: str, name: str = "pkg") -> Path:
    d = dir_ / name
    d.mkdir(parents=True, exist_ok=True)
    path = d / "recipe.py"
    path.write_text(textwrap.dedent(body))
    return path


def line_of(path: Path, needle: str) -> int:
    """1-based line number of the first line containing *needle*."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


GOOD = """\
    class Pkg(PackageRecipe):
        name = 'pkg'
        version = '1.0'
        buildRequires = ['libfoo:devel']

        def setup(r):
            r.Create('%(datadir)s/pkg/README', contents='hi')
            if r.arch == 'x86':
                r.Run('echo 32-bit')
    """


def test_good_recipe_loads_and_records_actions_per_arch(tmp_path, x86_64, x86):
    path = write(tmp_path, GOOD)
    rf = load_recipe(path.parent)
    assert rf.path == path.resolve() and rf.directory == path.parent.resolve()
    assert rf.name == "pkg" and rf.build_requires == ["libfoo:devel"]
    r64 = rf.instantiate(x86_64)
    r32 = rf.instantiate(x86)
    assert [type(a).__name__ for a in r64.actions] == ["Create"]
    assert [type(a).__name__ for a in r32.actions] == ["Create", "Run"]
    assert r64.actions[0].where == f"{path.resolve()}:{line_of(path, 'r.Create')}"
    assert r32.actions[1].where.endswith(f":{line_of(path, 'r.Run')}")
    assert r64.main_dir == "pkg-1.0"


def test_recipe_path_accepts_dir_or_file_and_reports_missing(tmp_path):
    path = write(tmp_path, GOOD)
    assert recipe_path(path.parent) == path and recipe_path(path) == path
    with pytest.raises(RecipeError, match="no recipe at"):
        recipe_path(tmp_path / "nothing")


def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, """\
        class Pkg(PackageRecipe):
            name = 'pkg'
            version = '1.0'

            def setup(r):
                r.Run('make'
                r.Install('x', '/usr/bin/')
        """)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path.resolve()}:")
    line = int(msg.split(":")[1])
    assert line in (line_of(path, "r.Run"), line_of(path, "r.Install"))
    assert "syntax error" in msg


def test_exception_at_module_level_names_file_and_line(tmp_path):
    path = write(tmp_path, """\
        import os

        VALUE = {}['missing']

        class Pkg(PackageRecipe):
            name = 'pkg'
            version = '1'
            def setup(r):
                pass
        """)
    with pytest.raises(RecipeError, match=rf"{path.resolve()}:{line_of(path, 'VALUE')}: KeyError: 'missing'"):
        load_recipe(path)


@pytest.mark.parametrize("attrs, message", [
    ("version = '1.0'", "has no 'name'"),
    ("name = 'pkg'", "has no 'version'"),
    ("name = 'pkg'\n    version = 1.0", "has no 'version'"),  # not a string
    ("name = 'pkg'\n    version = '1.0-2'", "bad version '1.0-2'"),
    ("name = 'pkg'\n    version = '1 0'", "bad version '1 0'"),
    ("name = 'Pkg'\n    version = '1'", "bad name 'Pkg'"),
    ("name = 'pkg'\n    version = '1'\n    buildRequires = 'libfoo:devel'", "buildRequires must be a list"),
    ("name = 'pkg'\n    version = '1'\n    license = 'GPL v2'", "license must be an SPDX license expression"),
    ("name = 'pkg'\n    version = '1'\n    license = ['MIT']", "license must be an SPDX license expression"),
])
def test_missing_or_bad_class_attributes(tmp_path, attrs, message):
    path = write(tmp_path, f"""\
class Pkg(PackageRecipe):
    {attrs}

    def setup(r):
        pass
""")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert message in str(exc.value)
    assert str(exc.value).startswith(f"{path.resolve()}: recipe Pkg")


def test_a_declared_license_is_read(tmp_path):
    licensed = GOOD.replace("version = '1.0'", "version = '1.0'\n        license = '(MIT OR Apache-2.0) AND Zlib'")
    path = write(tmp_path, licensed)
    assert load_recipe(path).attrs["license"] == "(MIT OR Apache-2.0) AND Zlib"
    assert load_recipe(write(tmp_path, GOOD, name="other")).attrs["license"] is None


def test_recipe_without_setup_is_refused(tmp_path):
    path = write(tmp_path, """\
        class Pkg(PackageRecipe):
            name = 'pkg'
            version = '1'
        """)
    with pytest.raises(RecipeError, match="does not define setup"):
        load_recipe(path)


def test_no_recipe_class(tmp_path):
    path = write(tmp_path, "x = 1\n")
    with pytest.raises(RecipeError, match=f"{path.resolve()}: defines no recipe class"):
        load_recipe(path)


def test_two_recipe_classes_in_one_file(tmp_path):
    path = write(tmp_path, """\
        class One(PackageRecipe):
            name = 'one'
            version = '1'
            def setup(r):
                pass

        class Two(PackageRecipe):
            name = 'two'
            version = '1'
            def setup(r):
                pass
        """)
    with pytest.raises(RecipeError, match=r"defines several recipe classes \(One, Two\); one per file"):
        load_recipe(path)


def test_unknown_action_suggests_the_right_one_with_file_and_line(tmp_path, x86_64):
    path = write(tmp_path, """\
        class Pkg(PackageRecipe):
            name = 'pkg'
            version = '1'

            def setup(r):
                r.Create('/usr/share/a', contents='a')
                r.Confgure('--with-x')
        """)
    rf = load_recipe(path)  # unknown actions show only when setup() runs
    with pytest.raises(RecipeError) as exc:
        rf.instantiate(x86_64)
    msg = str(exc.value)
    assert msg.startswith(f"{path.resolve()}:{line_of(path, 'Confgure')}: ")
    assert "unknown action 'Confgure'; did you mean Configure?" in msg


def test_unknown_action_without_a_close_match(tmp_path, x86_64):
    path = write(tmp_path, """\
        class Pkg(PackageRecipe):
            name = 'pkg'
            version = '1'

            def setup(r):
                r.Xyzzy()
        """)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path).instantiate(x86_64)
    assert "unknown action 'Xyzzy'" in str(exc.value) and "did you mean" not in str(exc.value)
    assert f":{line_of(path, 'Xyzzy')}:" in str(exc.value)


@pytest.mark.parametrize("call, fragment", [
    ("r.Make(makeargs='x', bogus=1)", "unexpected keyword argument 'bogus'"),
    ("r.Install()", "missing"),
    ("r.Run('a', 'b', {}, 'too many')", "positional argument"),
])
def test_wrong_action_arguments_name_action_file_and_line(tmp_path, x86_64, call, fragment):
    path = write(tmp_path, f"""\
class Pkg(PackageRecipe):
    name = 'pkg'
    version = '1'

    def setup(r):
        r.Create('/usr/share/a', contents='a')
        {call}
""")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path).instantiate(x86_64)
    msg = str(exc.value)
    action = call.split("(")[0].split(".")[1]
    assert msg.startswith(f"{path.resolve()}:{line_of(path, call)}: {action}: ")
    assert fragment in msg


def test_action_refusing_its_arguments_names_file_and_line(tmp_path, x86_64):
    path = write(tmp_path, """\
        class Pkg(PackageRecipe):
            name = 'pkg'
            version = '1'

            def setup(r):
                r.ComponentSpec('Bad Name', '/usr/.*')
        """)
    with pytest.raises(RecipeError, match=rf"{path.resolve()}:{line_of(path, 'ComponentSpec')}: .*bad component name"):
        load_recipe(path).instantiate(x86_64)


def test_exception_inside_setup_names_file_and_line(tmp_path, x86_64):
    path = write(tmp_path, """\
        def helper(r):
            return r.macros.prefix + 1

        class Pkg(PackageRecipe):
            name = 'pkg'
            version = '1'

            def setup(r):
                r.Create('/usr/share/a', contents='a')
                helper(r)
        """)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path).instantiate(x86_64)
    msg = str(exc.value)
    # the innermost line of the recipe file: inside the helper
    assert msg.startswith(f"{path.resolve()}:{line_of(path, 'prefix + 1')}: error in setup(): TypeError")


def test_unknown_macro_in_setup_names_the_macro(tmp_path, x86_64):
    path = write(tmp_path, """\
        class Pkg(PackageRecipe):
            name = 'pkg'
            version = '1'

            def setup(r):
                r.mainDir('%(nmae)s-src')
        """)
    with pytest.raises(RecipeError, match=r"unknown macro %\(nmae\)s \(did you mean %\(name\)s\?\)"):
        load_recipe(path).instantiate(x86_64)


def test_find_recipes_in_a_directory(tmp_path):
    write(tmp_path, GOOD.replace("'pkg'", "'alpha'"), "alpha")
    write(tmp_path, GOOD.replace("'pkg'", "'beta'"), "beta")
    (tmp_path / "not-a-recipe").mkdir()
    assert [r.name for r in find_recipes(tmp_path)] == ["alpha", "beta"]
    assert [r.name for r in find_recipes(tmp_path / "beta")] == ["beta"]


def test_find_recipes_refuses_two_recipes_with_one_name(tmp_path):
    write(tmp_path, GOOD, "one")
    write(tmp_path, GOOD, "two")
    with pytest.raises(RecipeError, match="two recipes are named 'pkg'"):
        find_recipes(tmp_path)


def test_find_recipes_in_an_empty_directory(tmp_path):
    with pytest.raises(RecipeError, match="no recipes in"):
        find_recipes(tmp_path)


def test_project_recipes_all_load(x86_64, x86):
    from tests.conftest import PROJECT

    recipes = find_recipes(PROJECT / "recipes")
    assert recipes
    for rf in recipes:
        for arch in (x86_64, x86):
            assert rf.instantiate(arch).actions, rf.name
