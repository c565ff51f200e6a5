"""Recipe code runs in the sandbox: a recipe that tries to act on the machine reading it
(in its class body or in ``setup``) reaches nothing of it, and what it records still
comes back exactly."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from appbuilder.core.arch import get_arch
from appbuilder.core.errors import RecipeError
from appbuilder.recipe.build_actions import Install, Run
from appbuilder.recipe.loader import find_recipes, load_group, load_recipe
from appbuilder.recipe.policy_actions import Requires


def write(d: Path, name: str, body: str) -> Path:
    (d / name).mkdir(parents=True, exist_ok=True)
    path = d / name / "recipe.py"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def canary(tmp_path):
    c = tmp_path / "canary"
    c.mkdir()
    (c / "file").write_text("untouched\n")
    return c


def test_what_a_recipe_records_comes_back_exactly(tmp_path):
    path = write(tmp_path, "exact", """\
        class Exact(PackageRecipe):
            name = 'exact'
            version = '2.1'
            buildRequires = ['libhello:devel']
            buildTimeout = 90

            def setup(r):
                r.macros.cflags += ' -DEXACT'
                r.macros.thing = '%(datadir)s/thing'
                r.mainDir('exact-src')
                r.Run('make %(parallelmflags)s', dir='sub', env={'A': '1'})
                r.Install('a.txt', '%(thing)s/', mode=0o640)
                if r.arch == 'x86':
                    r.Requires('file: /bin/sh', '%(bindir)s/x')
        """)
    rf = load_recipe(path)
    assert (rf.name, rf.version, rf.build_requires, rf.attrs["buildTimeout"]) == (
        "exact", "2.1", ["libhello:devel"], 90)
    r64 = rf.instantiate(get_arch("x86_64"), jobs=7)
    r32 = rf.instantiate(get_arch("x86"), jobs=3)
    assert r64.main_dir == "exact-src" and r64.buildTimeout == 90
    assert r64.macros.cflags.endswith(" -DEXACT") and "-m64" in r64.macros.cflags
    assert r64.macros.thing == "/usr/share/thing" and r64.macros.parallelmflags == "-j7"
    assert [type(a) for a in r64.actions] == [Run, Install]
    assert [type(a) for a in r32.actions] == [Run, Install, Requires]
    run = r64.actions[0]
    assert (run.cmd, run.dir, run.env) == ("make %(parallelmflags)s", "sub", {"A": "1"})
    assert run.where == f"{path}:11"
    assert r64.actions[1].mode == 0o640
    assert "-m32" in r32.macros.cflags and r32.macros.parallelmflags == "-j3"


def test_a_recipe_cannot_touch_or_read_the_host(tmp_path, canary):
    marker = tmp_path / "made-by-recipe"
    path = write(tmp_path, "evil", f"""\
        import os, subprocess
        found = []
        for p in ('/etc/shadow', '/root', '/home', {str(canary)!r}, {str(tmp_path / 'made-by-recipe')!r}):
            found.append(p + (' visible' if os.path.exists(p) else ' absent'))
        try:
            open({str(canary / 'file')!r}, 'w').write('pwned')
        except OSError as exc:
            found.append('write refused: ' + type(exc).__name__)
        os.system('touch {marker} 2>/dev/null')
        subprocess.run(['sh', '-c', 'echo hi > {marker}'], stderr=subprocess.DEVNULL)
        print('NOT JSON: recipes may print what they like')

        class Evil(PackageRecipe):
            name = 'evil'
            version = '1'
            def setup(r):
                for line in found:
                    r.Run('echo ' + line.replace(' ', '_'))
        """)
    recipe = load_recipe(path).instantiate(get_arch("x86_64"))
    said = [a.cmd.split(" ", 1)[1] for a in recipe.actions]
    assert said[:5] == ["/etc/shadow_absent", "/root_absent", "/home_absent", f"{canary}_absent",
                        f"{marker}_absent"]
    assert said[5] == "write_refused:_FileNotFoundError"
    assert (canary / "file").read_text() == "untouched\n"
    assert not marker.exists()


def test_only_the_recipe_s_own_directory_is_visible(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "secret.txt").write_text("nope")
    path = write(tmp_path, "nosy", """\
        import os
        here = os.path.dirname(__file__)
        VERSION = open(os.path.join(here, 'VERSION')).read().strip()
        OTHER = os.path.exists(os.path.join(here, '..', 'other', 'secret.txt'))

        class Nosy(PackageRecipe):
            name = 'nosy'
            version = VERSION
            def setup(r):
                r.Run('echo %s' % OTHER)
        """)
    (path.parent / "VERSION").write_text("3.4\n")
    rf = load_recipe(path)
    assert rf.version == "3.4"  # a file beside the recipe is readable
    assert rf.instantiate(get_arch("x86_64")).actions[0].cmd == "echo False"


def test_errors_still_name_the_file_and_line(tmp_path):
    path = write(tmp_path, "broken", """\
        class Broken(PackageRecipe):
            name = 'broken'
            version = '1'
            def setup(r):
                r.Run('ok')
                {}['missing']
        """)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path).instantiate(get_arch("x86_64"))
    assert str(exc.value) == f"{path}:6: error in setup(): KeyError: 'missing'"


def test_arguments_that_are_not_plain_data_are_refused_by_name(tmp_path):
    path = write(tmp_path, "odd", """\
        class Odd(PackageRecipe):
            name = 'odd'
            version = '1'
            def setup(r):
                r.Run(object())
        """)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path).instantiate(get_arch("x86_64"))
    assert f"{path}:5: Run: an argument is not text, a number, a list or a dict" in str(exc.value)


def test_many_recipes_are_read_in_one_sandbox(tmp_path):
    for i in range(20):
        write(tmp_path, f"r{i}", f"""\
            class R{i}(PackageRecipe):
                name = 'r{i}'
                version = '1'
                buildRequires = {[f'r{i - 1}:devel'] if i else []!r}
                def setup(r):
                    r.Run('true')
            """)
    recipes = find_recipes(tmp_path)
    assert [r.name for r in recipes] == sorted(f"r{i}" for i in range(20))
    assert recipes[1].build_requires == ["r0:devel"]


def test_group_recipes_are_read_in_the_sandbox_too(tmp_path, canary):
    groups = tmp_path / "groups"
    groups.mkdir()
    (groups / "group-evil.py").write_text(textwrap.dedent(f"""\
        import os
        SEEN = os.path.exists({str(canary)!r})

        class GroupEvil(GroupRecipe):
            name = 'group-evil'
            version = '1.0'
            imageGroup = True
            kernelModules = ('fuse', 'isofs')
            links = {{'/usr/bin/cc': 'gcc'}}

            def setup(r):
                r.add('busybox', components=['runtime'])
                r.add('seen-%s' % SEEN)
                r.replace('busybox', 'busybox=1.35.0-1-2')
                r.remove('hello:doc')
                if r.arch == 'x86':
                    r.add('linux-image-*-686', flavor='is: x86')
        """))
    g = load_group(groups, "group-evil").instantiate(get_arch("x86"))
    assert g.name == "group-evil" and g.imageGroup is True and g.kernelModules == ("fuse", "isofs")
    assert g.links == {"/usr/bin/cc": "gcc"}
    items = [(str(i.spec), i.components) for i in g.contents.items]
    assert items == [("busybox", ("runtime",)), ("seen-False", None), ("linux-image-*-686[is: x86]", None)]
    assert str(g.contents.replaced["busybox"]) == "busybox=1.35.0-1-2"
    assert list(g.contents.removed) == ["hello:doc"]
    assert os.path.exists(canary)
