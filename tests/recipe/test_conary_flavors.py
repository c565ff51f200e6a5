"""Flavors as conary had them: ``Use``/``Arch``/``Flags`` in recipes, the flags a recipe read
written into its trove's flavor, one recipe cooked with different flags into troves that
groups tell apart (real cooks through the real command line, for x86_64 and x86)."""

from __future__ import annotations

import textwrap

import pytest

from appbuilder.core.errors import RepositoryError
from appbuilder.graph.groups import find_group
from appbuilder.repository.repo import Repository
from appbuilder.repository.versions import NVF, Flavor, TroveSpec
from tests.conftest import run_appbuild

GREET_C = r"""#include <stdio.h>
int main(void) {
#ifdef WITH_SSL
    puts("greetings over TLS");
#else
    puts("greetings in the clear");
#endif
    return 0;
}
"""

# written as a conary recipe author would: flags read in setup() decide the build
GREET = """\
class Greet(PackageRecipe):
    name = 'greet'
    version = '1.0'

    Flags.chatty = False

    def setup(r):
        r.addSource('greet.c')
        defines = ''
        if Use.ssl:
            defines += ' -DWITH_SSL'
        r.Run('%(cc)s %(cflags)s' + defines + ' -o greet greet.c')
        r.Install('greet', '%(bindir)s/greet')
        if Arch.x86_64:
            r.Create('%(datadir)s/greet/word-size', contents='64\\n')
        elif Arch.x86:
            r.Create('%(datadir)s/greet/word-size', contents='32\\n')
        r.Create('%(datadir)s/greet/extra', contents='chatty\\n', use=Flags.chatty)
        r.Create('%(datadir)s/greet/flavor', contents=r.flavor + '\\n')
"""

# never reads a flag: the same trove whatever the flags
PLAIN = """\
class Plain(PackageRecipe):
    name = 'plain'
    version = '1.0'

    def setup(r):
        r.Create('%(datadir)s/plain/README', contents='plain\\n')
"""


@pytest.fixture
def greet(cook_workspace):
    ws = cook_workspace.workspace
    (ws / "recipes/greet").mkdir()
    (ws / "recipes/greet/recipe.py").write_text(GREET)
    (ws / "recipes/greet/greet.c").write_text(GREET_C)
    (ws / "recipes/plain").mkdir()
    (ws / "recipes/plain/recipe.py").write_text(PLAIN)
    return cook_workspace


def group(ws, name: str, body: str) -> None:
    """A group as conary wrote them: depCheck off (conary's default; the x86 C library is not
    in this repository, only the x86_64 toolchain is)."""
    cls = "".join(p.capitalize() for p in name.split("-"))
    (ws / "groups" / f"{name}.py").write_text(
        f"class {cls}(GroupRecipe):\n    name = '{name}'\n    version = '1.0'\n    depCheck = False\n\n"
        "    def setup(r):\n" + textwrap.indent(textwrap.dedent(body), "        "))


def file_text(repo: Repository, nvf: NVF, path: str) -> bytes:
    comp = next(repo.get(m) for m in repo.get(nvf, with_files=False).members
                if any(f.path == path for f in repo.get(m).files))
    entry = next(f for f in comp.files if f.path == path)
    return repo.store.read(entry.sha256)


def test_flavor_strings_as_conary_writes_them():
    f = Flavor.parse("[ssl,~!ipv6 is: x86_64]")
    assert str(f) == "~!ipv6,ssl is: x86_64" and f.arch == "x86_64"
    assert Flavor.parse("ssl,is: x86") == Flavor("x86", (("ssl", ""),))
    assert Flavor.parse("x86_64") == Flavor.parse("is: x86_64") == Flavor("x86_64")
    assert str(Flavor.parse("!ssl")) == "!ssl"
    assert str(TroveSpec.parse("greet=1.0[~!ssl is: x86]")) == "greet=1.0[~!ssl is: x86]"
    built_with, built_without = Flavor.parse("ssl is: x86_64"), Flavor.parse("~!ssl is: x86_64")
    # conary's rules: a trove built with ssl needs it asked for; one without fits unless ssl is required
    assert Flavor.parse("ssl").score(built_without) is None and Flavor.parse("ssl").score(built_with) == 2
    assert Flavor.parse("!ssl").score(built_with) is None and Flavor.parse("!ssl").score(built_without) == 1
    assert Flavor.parse("is: x86_64").score(built_with) is None
    assert Flavor.parse("~ssl").score(built_without) == -1
    assert Flavor.parse("ssl is: x86").score(built_with) is None  # another architecture
    with pytest.raises(RepositoryError, match="not a flag"):
        Flavor.parse("ss-l is: x86_64")
    with pytest.raises(RepositoryError, match="sub-architecture"):
        Flavor.parse("is: x86(i686)")


def test_one_recipe_two_flavors_two_arches(greet):
    ws = greet.workspace
    on = run_appbuild(greet, "cook", "recipes/greet", "recipes/plain", "--arch", "all").stdout
    assert "greet=cernvm@cvm:2/1.0-1-1[~!greet.chatty,ssl is: x86_64]" in on
    assert "greet=cernvm@cvm:2/1.0-1-1[~!greet.chatty,ssl is: x86]" in on
    assert "plain=cernvm@cvm:2/1.0-1-1[is: x86_64]" in on  # read no flag: no flag in its flavor

    off = run_appbuild(greet, "cook", "recipes/greet", "recipes/plain", "--arch", "all", "--flavor", "!ssl").stdout
    assert "greet=cernvm@cvm:2/1.0-1-1[~!greet.chatty,~!ssl is: x86_64]" in off
    assert "greet=cernvm@cvm:2/1.0-1-1[~!greet.chatty,~!ssl is: x86]" in off
    again = run_appbuild(greet, "cook", "recipes/greet", "--flavor", "!ssl").stdout
    assert "up to date: greet=cernvm@cvm:2/1.0-1-1[~!greet.chatty,~!ssl is: x86_64]" in again

    # the flags read make the flavor: the local flag read by use= too (conary's Flags)
    config = ws / "repo/config.yaml"
    config.write_text(config.read_text() + "use:\n  ssl: false\n")
    chatty = run_appbuild(greet, "cook", "recipes/greet", "--flavor", "greet.chatty").stdout
    assert "greet=cernvm@cvm:2/1.0-1-1[~greet.chatty,~!ssl is: x86_64]" in chatty

    repo = Repository(greet.repository, greet.label)
    by_flavor = {str(n.flavor): n for n in repo.versions("greet")}
    assert sorted(by_flavor) == sorted([
        "~!greet.chatty,ssl is: x86_64", "~!greet.chatty,ssl is: x86", "~!greet.chatty,~!ssl is: x86_64",
        "~!greet.chatty,~!ssl is: x86", "~greet.chatty,~!ssl is: x86_64"])
    assert all(str(n.version) == "cernvm@cvm:2/1.0-1-1" for n in by_flavor.values())
    ssl64, ssl32 = by_flavor["~!greet.chatty,ssl is: x86_64"], by_flavor["~!greet.chatty,ssl is: x86"]
    plain64, plain32 = by_flavor["~!greet.chatty,~!ssl is: x86_64"], by_flavor["~!greet.chatty,~!ssl is: x86"]
    chatty64 = by_flavor["~greet.chatty,~!ssl is: x86_64"]
    # what was built differs as the flags said
    assert b"greetings over TLS" in file_text(repo, ssl64, "/usr/bin/greet")
    assert b"greetings over TLS" not in file_text(repo, plain64, "/usr/bin/greet")
    assert b"greetings in the clear" in file_text(repo, plain32, "/usr/bin/greet")
    assert file_text(repo, ssl32, "/usr/share/greet/word-size") == b"32\n"
    assert file_text(repo, ssl64, "/usr/share/greet/flavor") == b"~!greet.chatty,ssl is: x86_64\n"
    assert file_text(repo, chatty64, "/usr/share/greet/extra") == b"chatty\n"
    with pytest.raises(StopIteration):
        file_text(repo, plain64, "/usr/share/greet/extra")  # use=Flags.chatty: only when on

    # groups pick the flavor they ask for, for each architecture; by default the workspace's flags
    group(ws, "group-secure", "r.add('greet', flavor='ssl')\n")
    group(ws, "group-clear", "r.add('greet', flavor='!ssl')\n")
    group(ws, "group-default", "r.add('greet')\n")
    for arch in ("x86_64", "x86"):
        for name in ("group-secure", "group-clear", "group-default"):
            run_appbuild(greet, "resolve", name, "--arch", arch)
        pins = {name: {str(m) for m in repo.get(find_group(repo, name, arch), with_files=False).members}
                for name in ("group-secure", "group-clear", "group-default")}
        assert f"greet=cernvm@cvm:2/1.0-1-1[~!greet.chatty,ssl is: {arch}]" in pins["group-secure"]
        assert f"greet:runtime=cernvm@cvm:2/1.0-1-1[~!greet.chatty,ssl is: {arch}]" in pins["group-secure"]
        assert f"greet=cernvm@cvm:2/1.0-1-1[~!greet.chatty,~!ssl is: {arch}]" in pins["group-clear"]
        assert not any(",ssl is" in p for p in pins["group-clear"])
        assert f"greet=cernvm@cvm:2/1.0-1-1[~!greet.chatty,~!ssl is: {arch}]" in pins["group-default"]  # use: ssl: false

    group(ws, "group-bad", "r.add('greet', flavor='ssl,bogus-flag')\n")
    proc = run_appbuild(greet, "resolve", "group-bad", check=False)
    assert proc.returncode == 1 and "group-bad.py:7" in proc.stderr and "not a flag" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_flag_names_the_line(cook_workspace):
    ws = cook_workspace.workspace
    (ws / "recipes/typo").mkdir()
    (ws / "recipes/typo/recipe.py").write_text(
        "class Typo(PackageRecipe):\n    name = 'typo'\n    version = '1.0'\n\n    def setup(r):\n"
        "        if Use.sssl:\n            r.Create('/etc/typo', contents='x')\n")
    proc = run_appbuild(cook_workspace, "cook", "recipes/typo", check=False)
    assert proc.returncode != 0
    assert "typo/recipe.py:6: unknown use flag Use.sssl; did you mean ssl?" in proc.stderr
    proc = run_appbuild(cook_workspace, "cook", "recipes/typo", "--flavor", "ssl is: x86", check=False)
    assert proc.returncode != 0 and "--arch" in proc.stderr and "Traceback" not in proc.stderr
