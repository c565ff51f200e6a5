"""Conary recipes load as their authors wrote them (issue 16, point 1): conary's base
classes and functions without an import line, superclasses from the workspace's recipe
library (``loadSuperClass``), ``clearBuildRequires``, Python 2 octal literals, and a
clear ``conary's X is not supported`` for what appbuild lacks. The recipes here are
written in conary's style; two of them are really cooked for x86_64 and x86."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from appbuilder.cli.common import open_repo
from appbuilder.cook.inputs import source_hash
from appbuilder.core.arch import get_arch
from appbuilder.core.errors import AppbuildError, RecipeError, RepositoryError
from appbuilder.recipe.actions import REGISTRY, Action
from appbuilder.recipe.base import PackageRecipe
from appbuilder.recipe.build_actions import Configure, Create, Install, Make, MakeInstall, Run
from appbuilder.recipe.explain import explain, list_actions
from appbuilder.recipe.library import LibrarySpec, library_files, source_digest
from appbuilder.recipe.loader import find_recipes, load_group, load_recipe
from appbuilder.recipe.py2 import rewrite_octal
from appbuilder.recipe.source_actions import addSource
from appbuilder.recipe.unsupported import UNSUPPORTED
from tests.conftest import component, run_appbuild

DATA = Path(__file__).parent / "data" / "conary" / "recipes"
X86_64, X86 = get_arch("x86_64"), get_arch("x86")


@pytest.fixture
def ws(tmp_path) -> Path:
    """A workspace layout (recipes/, groups/) to write conary-style recipes into."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "groups").mkdir()
    return tmp_path


def recipe(ws: Path, name: str, body: str, **files: str) -> Path:
    d = ws / "recipes" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "recipe.py").write_text(textwrap.dedent(body))
    for fname, content in files.items():
        (d / fname).write_text(content)
    return d


def actions(rf, arch=X86_64):
    return [(type(a).__name__, a.call) for a in rf.instantiate(arch).actions]


def refused(path) -> str:
    with pytest.raises(RecipeError) as err:
        rf = load_recipe(path)
        rf.instantiate(X86_64)
    text = str(err.value)
    assert "Traceback" not in text
    return text


# ------------------------------------------------------------------ base classes by name


def test_conary_base_classes_load_without_an_import(ws):
    for base in ("PackageRecipe", "BuildPackageRecipe", "CPackageRecipe"):
        name = base.lower().replace("recipe", "") + "-x"
        recipe(ws, name, f"""\
            class X({base}):
                name = '{name}'
                version = '1.0'
                buildRequires = ['libhello:devel']

                def setup(r):
                    r.Run('true')
            """)
    found = {r.name: r for r in find_recipes(ws / "recipes")}
    assert set(found) == {"package-x", "buildpackage-x", "cpackage-x"}
    for r in found.values():  # they add no buildRequires: the toolchain group has make, gcc, libc
        assert r.build_requires == ["libhello:devel"]
        assert actions(r) == [("Run", (("true",), {}))]
    (ws / "groups" / "group-conary.py").write_text(textwrap.dedent("""\
        class GroupConary(GroupRecipe):
            name = 'group-conary'
            version = '1.0'
            clearBuildRequires()

            def setup(r):
                r.add('hello')
        """))
    group = load_group(ws / "groups", "group-conary").instantiate(X86)
    assert [str(i.spec) for i in group.contents.items] == ["hello"]


def test_auto_package_recipe_runs_unpack_configure_make_makeinstall_policy(ws):
    d = recipe(ws, "auto", """\
        class Auto(AutoPackageRecipe):
            name = 'auto'
            version = '2.1'

            def unpack(r):
                r.addSource('auto.c')
        """, **{"auto.c": "int main(void) { return 0; }\n"})
    rf = load_recipe(d)
    assert actions(rf) == [("addSource", (("auto.c",), {})), ("Configure", ((), {})), ("Make", ((), {})),
                           ("MakeInstall", ((), {}))]
    recorded = rf.instantiate(X86).actions
    # the implicit actions are placed at the class statement of the recipe
    assert [a.where for a in recorded[1:]] == [f"{d / 'recipe.py'}:1"] * 3
    assert recorded[0].where == f"{d / 'recipe.py'}:6"

    # each step may be overridden; policy() runs last
    recipe(ws, "auto", """\
        class Auto(AutoPackageRecipe):
            name = 'auto'
            version = '2.1'

            def unpack(r):
                r.addSource('auto.c')

            def configure(r):
                r.Configure('--disable-nls', dir='src')

            def make(r):
                r.Make('all', forceFlags=True)

            def policy(r):
                r.Create('%(sysconfdir)s/auto.conf', contents='x\\n')
        """)
    got = load_recipe(d).instantiate(X86_64).actions
    assert [type(a) for a in got] == [addSource, Configure, Make, MakeInstall, Create]
    assert got[1].call == (("--disable-nls",), {"dir": "src"}) and got[1].where.endswith("recipe.py:9")


def test_macros_name_version_and_disable_parallel_make_in_setup(ws):
    d = recipe(ws, "macro-user", """\
        class MacroUser(CPackageRecipe):
            name = 'macro-user'
            version = '3.2'

            def setup(r):
                r.macros.confdir = '%(sysconfdir)s/' + r.name
                r.macros.cflags += ' -DVERSION=' + r.version
                r.disableParallelMake()
                r.Make('CONF=%(confdir)s')
        """)
    got = load_recipe(d).instantiate(X86_64)
    assert got.macros.confdir == "/etc/macro-user"
    assert got.macros.cflags.endswith(" -DVERSION=3.2")
    assert got.macros.parallelmflags == ""


# ------------------------------------------------------------------ clearBuildRequires


def test_build_requires_add_to_the_base_classes_and_clear_build_requires_forgets_them(ws):
    recipe(ws, "netlib", """\
        class NetLibRecipe(CPackageRecipe):
            name = 'netlib'
            version = '1'
            abstractBaseClass = True
            buildRequires = ['openssl:devel', 'zlib:devel']
        """)
    recipe(ws, "inherits", """\
        loadSuperClass('netlib')
        class Inherits(NetLibRecipe):
            name = 'inherits'
            version = '1'
            buildRequires = ['libhello:devel', 'zlib:devel']
            def setup(r): pass
        """)
    recipe(ws, "drops-one", """\
        loadSuperClass('netlib')
        class DropsOne(NetLibRecipe):
            name = 'drops-one'
            version = '1'
            clearBuildReqs('openssl:devel')
            buildRequires = ['libhello:devel']
            def setup(r): pass
        """)
    recipe(ws, "drops-all", """\
        loadSuperClass('netlib')
        class DropsAll(NetLibRecipe):
            name = 'drops-all'
            version = '1'
            clearBuildRequires()
            def setup(r): pass
        """)
    recipe(ws, "file-wide", """\
        loadSuperClass('netlib')
        clearBuildRequires('zlib:devel')

        class FileWide(NetLibRecipe):
            name = 'file-wide'
            version = '1'
            def setup(r): pass
        """)
    recipe(ws, "after-class", """\
        loadSuperClass('netlib')

        class AfterClass(NetLibRecipe):
            name = 'after-class'
            version = '1'
            buildRequires = ['libhello:devel']
            def setup(r): pass

        clearBuildReqs('libhello:devel', 'zlib:devel')
        """)
    found = {r.name: r.build_requires for r in find_recipes(ws / "recipes")}
    assert found == {
        "inherits": ["openssl:devel", "zlib:devel", "libhello:devel"],
        "drops-one": ["zlib:devel", "libhello:devel"],
        "drops-all": [],
        "file-wide": ["openssl:devel"],
        "after-class": ["openssl:devel"],
    }  # the superclass itself (abstractBaseClass) is not among the recipes to cook


def test_clear_build_requires_outside_the_class_body_is_an_error(ws):
    d = recipe(ws, "late", """\
        class Late(PackageRecipe):
            name = 'late'
            version = '1'

            def setup(r):
                clearBuildReqs()
        """)
    assert refused(d) == f"{d / 'recipe.py'}:6: clearBuildRequires() belongs in the class body (it changes " \
                         f"buildRequires, which are read before setup runs)"


# ------------------------------------------------------------------ loadSuperClass / loadInstalled


def test_load_super_class_from_the_recipe_library(ws):
    recipe(ws, "cprogram", (DATA / "cprogram" / "recipe.py").read_text())
    d = recipe(ws, "greet", (DATA / "greet" / "recipe.py").read_text())
    rf = load_recipe(d)
    assert (rf.name, rf.version, rf.attrs["class"]) == ("greet", "0.3", "Greet")
    got = rf.instantiate(X86)
    assert [type(a) for a in got.actions] == [addSource, Run, Install, Create]
    assert got.actions[0].call == (("greet.c",), {})
    assert "-DGREETING=1" in got.actions[1].call[0][0]
    assert got.actions[2].call == (("%(name)s", "%(bindir)s/%(name)s"), {"mode": 0o755})
    # the superclass's actions name the superclass's lines; the user's their own
    library = ws / "recipes" / "cprogram" / "recipe.py"
    assert got.actions[1].where == f"{library}:12"
    assert got.actions[3].where == f"{d / 'recipe.py'}:11"
    assert got.macros.greetdir == "/usr/share/greet"
    assert library_files(d / "recipe.py") == [library]


def test_load_super_class_puts_every_class_of_the_library_in_the_namespace_and_returns_its_own(ws):
    recipe(ws, "kit", """\
        class KitBase(PackageRecipe):
            name = 'kit-base'
            version = '0'
            abstractBaseClass = 1
            def setup(r):
                r.Create('/usr/share/kit/' + r.part, contents=r.part)

        class Kit(KitBase):
            name = 'kit'
            version = '2.0'
            abstractBaseClass = 1
            part = 'kit'
        """)
    d = recipe(ws, "kit-user", """\
        Loaded = loadInstalled('kit=2.0-1-1')

        class KitUser(KitBase):
            name = 'kit-user'
            version = '1'
            part = Loaded.__name__ + '-' + Kit.version
        """)
    got = load_recipe(d).instantiate(X86_64)
    assert [a.call for a in got.actions] == [(("/usr/share/kit/Kit-2.0",), {"contents": "Kit-2.0"})]


def test_a_superclass_beside_the_recipe_is_found_first(ws):
    recipe(ws, "helper", """\
        class Helper(PackageRecipe):
            name = 'helper'
            version = '9'
            abstractBaseClass = 1
            tag = 'library'
        """)
    d = recipe(ws, "beside", """\
        loadSuperClass('helper')
        class Beside(Helper):
            name = 'beside'
            version = '1'
            def setup(r):
                r.Create('/usr/share/beside', contents=r.tag)
        """, **{"helper.recipe": textwrap.dedent("""\
            class Helper(PackageRecipe):
                name = 'helper'
                version = '1'
                abstractBaseClass = 1
                tag = 'beside'
            """)})
    got = load_recipe(d).instantiate(X86_64)
    assert got.actions[0].call[1] == {"contents": "beside"}


def test_a_label_or_flavor_in_the_spec_is_accepted_with_a_warning(ws, capsys):
    recipe(ws, "helper", """\
        class Helper(PackageRecipe):
            name = 'helper'
            version = '9'
            abstractBaseClass = 1
        """)
    d = recipe(ws, "labelled", """\
        loadSuperClass('helper=conary.rpath.com@rpl:1[!bootstrap]')
        class Labelled(Helper):
            name = 'labelled'
            version = '1'
            def setup(r): pass
        """)
    load_recipe(d)
    err = capsys.readouterr().err
    where = f"{d / 'recipe.py'}:1"
    assert (f"warning: {where}: loadSuperClass('helper=conary.rpath.com@rpl:1[!bootstrap]'): the label "
            f"'conary.rpath.com@rpl:1' is not looked up: the workspace's recipes/helper/recipe.py is used") in err
    assert "the flavor '!bootstrap' is not looked up" in err
    assert LibrarySpec.parse("helper=/conary.rpath.com@rpl:devel//1/2.4-1-1") == LibrarySpec(
        "helper", "2.4", "/conary.rpath.com@rpl:devel//1/2.4-1-1", None)
    assert LibrarySpec.parse("helper.recipe") == LibrarySpec("helper", None, None, None)


def test_load_super_class_errors_name_the_file_and_line(ws):
    recipe(ws, "base1", """\
        class Base1(PackageRecipe):
            name = 'base1'
            version = '1.0'
            abstractBaseClass = 1
        """)
    d = recipe(ws, "wrong-version", """\


        loadSuperClass('base1=2.0')
        class WrongVersion(Base1):
            name = 'wrong-version'
            version = '1'
            def setup(r): pass
        """)
    lib = ws / "recipes" / "base1" / "recipe.py"
    assert refused(d) == (f"{d / 'recipe.py'}:3: loadSuperClass('base1=2.0'): the recipe library has base1 1.0, "
                          f"not 2.0 ({lib})")

    d = recipe(ws, "missing", """\
        loadSuperClass('nowhere')
        class Missing(PackageRecipe):
            name = 'missing'
            version = '1'
            def setup(r): pass
        """)
    assert refused(d) == (f"{d / 'recipe.py'}:1: loadSuperClass('nowhere'): the recipe library has no 'nowhere' "
                          f"(looked for {d / 'nowhere.recipe'} or {ws / 'recipes' / 'nowhere' / 'recipe.py'}; "
                          f"a superclass is named with a string literal)")

    # a name made at run time: the file was not named, so it is not there for the recipe
    d = recipe(ws, "computed", """\
        which = 'base' + str(1)
        loadSuperClass(which)
        class Computed(PackageRecipe):
            name = 'computed'
            version = '1'
            def setup(r): pass
        """)
    assert refused(d).startswith(f"{d / 'recipe.py'}:2: loadSuperClass('base1'): the recipe library has no 'base1'")

    d = recipe(ws, "bad-spec", """\
        loadSuperClass('../../etc/passwd')
        """)
    assert refused(d).startswith(f"{d / 'recipe.py'}:1: loadSuperClass('../../etc/passwd'): '../../etc/passwd' "
                                 f"is not a recipe name")


def test_a_circle_of_superclasses_is_named(ws):
    recipe(ws, "ring-a", """\
        loadSuperClass('ring-b')
        class RingA(PackageRecipe):
            name = 'ring-a'
            version = '1'
            abstractBaseClass = 1
        """)
    recipe(ws, "ring-b", """\

        loadSuperClass('ring-a')
        class RingB(PackageRecipe):
            name = 'ring-b'
            version = '1'
            abstractBaseClass = 1
        """)
    d = recipe(ws, "ring-user", """\
        loadSuperClass('ring-a')
        class RingUser(RingA):
            name = 'ring-user'
            version = '1'
            def setup(r): pass
        """)
    assert refused(d) == (f"{ws / 'recipes' / 'ring-b' / 'recipe.py'}:2: loadSuperClass('ring-a') loads in a "
                          f"circle: recipes/ring-user/recipe.py -> recipes/ring-a/recipe.py -> "
                          f"recipes/ring-b/recipe.py -> recipes/ring-a/recipe.py")


def test_an_error_inside_a_superclass_names_the_superclass_line(ws):
    recipe(ws, "broken-base", """\
        class BrokenBase(PackageRecipe):
            name = 'broken-base'
            version = '1'
            abstractBaseClass = 1

            def setup(r):
                r.Create('/x', contents=r.missing_attribute)
        """)
    d = recipe(ws, "broken-user", """\
        loadSuperClass('broken-base')
        class BrokenUser(BrokenBase):
            name = 'broken-user'
            version = '1'
        """)
    text = refused(d)
    assert text.startswith(f"{ws / 'recipes' / 'broken-base' / 'recipe.py'}:7: ")
    assert "missing_attribute" in text


def test_a_group_loads_a_group_superclass_from_groups(ws):
    base = ws / "groups" / "group-appliance-base.py"
    base.write_text(textwrap.dedent("""\
        class ApplianceBaseRecipe(GroupRecipe):
            name = 'group-appliance-base'
            version = '1.0'
            abstractBaseClass = 1
            imageGroup = True

            def setup(r):
                r.add('busybox')
                r.addPackages()

            def addPackages(r):
                pass
        """))
    user = ws / "groups" / "group-mine.py"
    user.write_text(textwrap.dedent("""\
        loadSuperClass('group-appliance-base')

        class GroupMine(ApplianceBaseRecipe):
            name = 'group-mine'
            version = '2.0'

            def addPackages(r):
                r.add('hello')
        """))
    group = load_group(ws / "groups", "group-mine").instantiate(X86_64)
    assert [str(i.spec) for i in group.contents.items] == ["busybox", "hello"]
    assert group.imageGroup is True
    before = source_digest(user)
    base.write_text(base.read_text().replace("r.add('busybox')", "r.add('busybox')\n        r.add('base-files')"))
    assert source_digest(user) != before  # the group's source hash follows its superclass


def test_a_superclass_is_not_cooked_on_its_own(ws):
    recipe(ws, "cprogram", (DATA / "cprogram" / "recipe.py").read_text())
    with pytest.raises(RecipeError, match=r"cprogram is a superclass \(abstractBaseClass\): it is not cooked on "
                                          r"its own; recipes use it with loadSuperClass\('cprogram'\)"):
        find_recipes(ws / "recipes" / "cprogram")


def test_the_library_is_read_only_in_the_sandbox_and_other_recipes_are_not_there(ws):
    recipe(ws, "secret", """\
        class Secret(PackageRecipe):
            name = 'secret'
            version = '1'
            def setup(r): pass
        """, **{"token": "not for others\n"})
    recipe(ws, "base2", """\
        class Base2(PackageRecipe):
            name = 'base2'
            version = '1'
            abstractBaseClass = 1
        """)
    d = recipe(ws, "prober", """\
        loadSuperClass('base2')
        import os
        lib = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'base2', 'recipe.py')
        try:
            open(lib, 'a').write('# changed by a recipe')
            wrote = 'yes'
        except OSError:
            wrote = 'no'
        secret = os.path.exists(os.path.join(os.path.dirname(os.path.dirname(__file__)), 'secret', 'token'))

        class Prober(Base2):
            name = 'prober'
            version = '1'
            def setup(r):
                r.Create('/probe', contents='wrote=%s secret=%s' % (wrote, secret))
        """)
    got = load_recipe(d).instantiate(X86_64)
    assert got.actions[0].call[1] == {"contents": "wrote=no secret=False"}
    assert "changed" not in (ws / "recipes" / "base2" / "recipe.py").read_text()


def test_a_library_file_leading_outside_the_workspace_is_refused(ws, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "recipe.py"
    outside.write_text("class Evil(PackageRecipe):\n    name = 'evil'\n    version = '1'\n")
    (ws / "recipes" / "evil").mkdir()
    (ws / "recipes" / "evil" / "recipe.py").symlink_to(outside)
    d = recipe(ws, "lured", """\
        loadSuperClass('evil')
        class Lured(Evil):
            name = 'lured'
            version = '1'
            def setup(r): pass
        """)
    with pytest.raises(RecipeError, match=r"recipe.py:1: loadSuperClass\('evil'\): .* leads outside the workspace"):
        load_recipe(d)


def test_changing_a_superclass_changes_the_source_hash_of_its_users_only(ws):
    recipe(ws, "cprogram", (DATA / "cprogram" / "recipe.py").read_text())
    greet = recipe(ws, "greet", (DATA / "greet" / "recipe.py").read_text(), **{"greet.c": "int main(){}\n"})
    plain = recipe(ws, "plain", """\
        class Plain(PackageRecipe):
            name = 'plain'
            version = '1'
            def setup(r): pass
        """)
    before = source_hash(greet), source_hash(plain)
    lib = ws / "recipes" / "cprogram" / "recipe.py"
    lib.write_text(lib.read_text().replace("extraCFlags = ''", "extraCFlags = '-DLIBRARY=2'"))
    after = source_hash(greet), source_hash(plain)
    assert after[0] != before[0] and after[1] == before[1]


# ------------------------------------------------------------------ Python 2 octal literals


def test_python2_octal_literals_are_rewritten_with_a_warning(ws, capsys):
    d = recipe(ws, "octal", """\
        class Octal(PackageRecipe):
            name = 'octal'
            version = '1'

            def setup(r):
                r.Create('%(bindir)s/x', contents='0755 stays text', mode=0755)  # 0644 in a comment
                r.Create('%(bindir)s/y', contents='', mode=04711)
        """)
    got = load_recipe(d).instantiate(X86)
    assert [a.call[1] for a in got.actions] == [{"contents": "0755 stays text", "mode": 0o755},
                                                {"contents": "", "mode": 0o4711}]
    err = capsys.readouterr().err
    path = d / "recipe.py"
    assert f"warning: {path}:6: Python 2 octal literal 0755 read as 0o755 (write 0o755)" in err
    assert f"warning: {path}:7: Python 2 octal literal 04711 read as 0o4711 (write 0o4711)" in err
    assert err.count("0755 read as") == 1  # once, though the recipe was read twice


def test_the_octal_rewrite_uses_the_tokenizer():
    source = 's = "0755"  # 0644\nm = 0755 + 00 + 0 + 0o7 + 10\nx = (0644,\n     0600)\n'
    new, warnings = rewrite_octal(source, "f.py")
    assert new == 's = "0755"  # 0644\nm = 0o755 + 00 + 0 + 0o7 + 10\nx = (0o644,\n     0o600)\n'
    assert [w.split(":")[1] for w in warnings] == ["2", "3", "4"]
    assert rewrite_octal("x = 089\n", "f.py") == ("x = 089\n", [])  # not octal: the compiler says so


# ------------------------------------------------------------------ conary names appbuild lacks


@pytest.mark.parametrize("line, name", [
    ("r.addMercurialSnapshot('http://hg.example.org/x')", "r.addMercurialSnapshot"),
    ("r.XInetdService('x', 'y')", "r.XInetdService"),
    ("r.TagSpec('initscript', '%(initdir)s/')", "r.TagSpec"),
    ("util.joinPaths('a', 'b')", "util"),
])
def test_an_unsupported_conary_name_says_so_with_file_and_line(ws, line, name):
    d = recipe(ws, "old", f"""\
        class Old(PackageRecipe):
            name = 'old'
            version = '1'

            def setup(r):
                {line}
        """)
    text = refused(d)
    assert text.startswith(f"{d / 'recipe.py'}:6: conary's {name} is not supported: ")
    assert len(text.split("is not supported: ", 1)[1]) > 10  # with the reason


def test_load_recipe_at_file_level_is_named(ws):
    d = recipe(ws, "older", """\
        loadRecipe('something')
        class Older(PackageRecipe):
            name = 'older'
            version = '1'
            def setup(r): pass
        """)
    assert refused(d) == (f"{d / 'recipe.py'}:1: conary's loadRecipe is not supported: an old name of "
                          f"loadSuperClass: write loadSuperClass('NAME')")


def test_an_action_registered_under_a_conary_name_wins_over_the_table():
    class R(PackageRecipe):
        name = 'r'
        version = '1'

    assert "XInetdService" in UNSUPPORTED and "XInetdService" not in REGISTRY
    r = R(X86_64)
    with pytest.raises(RecipeError, match="conary's r.XInetdService is not supported"):
        r.XInetdService("x")
    try:
        class XInetdService(Action):  # registers itself, as an action module's classes do
            """A stand-in for an action another module adds later."""

            def __init__(self, name: str):
                self.name = name

        r.XInetdService("telnet")
        assert type(r.actions[0]) is XInetdService and r.actions[0].name == "telnet"
    finally:
        REGISTRY.pop("XInetdService", None)


# ------------------------------------------------------------------ appbuild explain


def test_explain_documents_the_recipe_classes_and_functions(settings):
    out = run_appbuild(settings, "explain").stdout
    assert out == list_actions() + "\n"
    section = out[out.index("recipe classes and functions"):]
    for name in ("PackageRecipe", "BuildPackageRecipe", "CPackageRecipe", "AutoPackageRecipe", "GroupRecipe",
                 "loadSuperClass", "loadInstalled", "clearBuildRequires", "clearBuildReqs"):
        assert f"\n  {name} " in section
    auto = run_appbuild(settings, "explain", "AutoPackageRecipe").stdout
    assert auto.startswith("class NAME(AutoPackageRecipe)") and "r.makeinstall()" in auto
    assert "recipes/NAME/recipe.py" in explain("loadSuperClass")
    proc = run_appbuild(settings, "explain", "TagSpec", check=False)
    assert proc.returncode == 1 and "conary's r.TagSpec is not supported" in proc.stderr
    with pytest.raises(AppbuildError, match="conary's loadRecipe is not supported"):
        explain("loadRecipe")


# ------------------------------------------------------------------ real cooks, both architectures


def _copy_recipes(settings, *names: str) -> None:
    for name in names:
        shutil.copytree(DATA / name, settings.workspace / "recipes" / name)


def _paths(repo, package: str, arch: str) -> set[str]:
    return {f.path for m in repo.get(repo.find_one(package, arch=arch)).members for f in repo.get(m).files}


def _file(repo, trove_name: str, arch: str, path: str) -> bytes:
    trove = component(repo, trove_name, arch)
    entry = next(f for f in trove.files if f.path == path)
    return repo.store.read(entry.sha256)


def test_auto_package_recipe_and_a_superclass_user_cook_for_both_arches(cook_workspace):
    s = cook_workspace
    _copy_recipes(s, "autohello", "cprogram", "greet")
    proc = run_appbuild(s, "cook", "recipes/", "--arch", "all", "-j", "2")
    # the superclass is not cooked itself; the octal literals were read with a warning
    assert "cprogram" not in proc.stdout
    assert "recipes/autohello/recipe.py:8: Python 2 octal literal 0755 read as 0o755" in proc.stderr
    assert "recipes/cprogram/recipe.py:13: Python 2 octal literal 0755 read as 0o755" in proc.stderr
    repo = open_repo(s)
    for arch, elf_class in (("x86_64", 2), ("x86", 1)):
        auto = _file(repo, "autohello:runtime", arch, "/usr/bin/autohello")
        assert auto[:4] == b"\x7fELF" and auto[4] == elf_class
        assert b"configured with the greeting" in auto  # Configure('--enable-greeting') was run
        greet = _file(repo, "greet:runtime", arch, "/usr/bin/greet")
        assert greet[:4] == b"\x7fELF" and greet[4] == elf_class
        assert b"built with the superclass's flags" in greet  # the user's extraCFlags in the superclass's Run
        assert "/usr/share/greet/README" in _paths(repo, "greet", arch)
    with pytest.raises(RepositoryError):
        repo.find_one("cprogram")


def test_changing_a_superclass_cooks_its_users_again(cook_workspace):
    s = cook_workspace
    _copy_recipes(s, "cprogram", "greet", "autohello")
    run_appbuild(s, "cook", "recipes/", "--arch", "all", "-j", "2")
    repo = open_repo(s)
    first = {a: (repo.find_one("greet", arch=a), repo.find_one("autohello", arch=a)) for a in ("x86_64", "x86")}

    run_appbuild(s, "cook", "recipes/", "--arch", "all")  # nothing changed: nothing cooked
    repo = open_repo(s)
    assert {a: (repo.find_one("greet", arch=a), repo.find_one("autohello", arch=a)) for a in first} == first

    lib = s.workspace / "recipes" / "cprogram" / "recipe.py"
    lib.write_text(lib.read_text().replace("r.extras()", "r.Create('%(datadir)s/%(name)s/built-by', "
                                                         "contents='cprogram 1.1\\n')\n        r.extras()"))
    run_appbuild(s, "cook", "recipes/", "--arch", "all")
    repo = open_repo(s)
    for arch, (greet, auto) in first.items():
        again = repo.find_one("greet", arch=arch)
        assert again != greet and again.version.source_count > greet.version.source_count
        assert repo.find_one("autohello", arch=arch) == auto  # it does not load the superclass
        assert "/usr/share/greet/built-by" in _paths(repo, "greet", arch)
