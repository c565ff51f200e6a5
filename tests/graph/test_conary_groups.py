"""Conary's group language (addAll, createGroup/groupName, byDefault, setSearchPath,
one-argument replace, Requires, removeComponents, addCopy, conary's switches) in group
recipes written as conary's authors wrote them, resolved with ``appbuild resolve`` (real
cooks, real command line)."""

from __future__ import annotations

import textwrap

import pytest

from appbuilder.graph.groups import find_group
from appbuilder.repository.repo import Repository
from tests.conftest import run_appbuild

MAIN, DEVEL = "cernvm@cvm:2", "cernvm@cvm:2-devel"


def recipe(ws, name: str, setup: str) -> None:
    d = ws / "recipes" / name
    d.mkdir(parents=True, exist_ok=True)
    cls = "".join(p.capitalize() for p in name.split("-"))
    (d / "recipe.py").write_text(f"class {cls}(PackageRecipe):\n    name = '{name}'\n    version = '1.0'\n\n"
                                 "    def setup(r):\n" + textwrap.indent(textwrap.dedent(setup), "        "))


def group(ws, name: str, body: str, attrs: str = "") -> None:
    cls = "".join(p.capitalize() for p in name.split("-"))
    (ws / "groups" / f"{name}.py").write_text(
        f"class {cls}(GroupRecipe):\n    name = '{name}'\n    version = '2.0'\n"
        + textwrap.indent(textwrap.dedent(attrs), "    ")
        + "\n    def setup(r):\n" + textwrap.indent(textwrap.dedent(body), "        "))


def script(path: str, interpreter: str) -> str:
    return f"r.Create('{path}', contents='#!{interpreter}\\necho hi\\n', mode=0o755)\n"


def label(settings, value: str) -> None:
    config = settings.workspace / "repo/config.yaml"
    lines = [line for line in config.read_text().splitlines() if not line.startswith("label:")]
    config.write_text("\n".join([f"label: {value}", *lines]) + "\n")


def pins(settings, name: str, arch: str = "x86_64"):
    repo = Repository(settings.repository, MAIN)
    g = repo.get(find_group(repo, name, arch), with_files=False)
    return {m.name: str(m.version) for m in g.members}, g


@pytest.fixture
def cooked(cook_workspace):
    ws = cook_workspace.workspace
    recipe(ws, "interp", "r.Create('/usr/bin/interp', contents='an interpreter\\n', mode=0o755)\n")
    recipe(ws, "app", script("/usr/bin/app", "/usr/bin/interp")
           + "r.Create('/usr/include/app.h', contents='int app;\\n')\n"
           + "r.Create('/usr/share/doc/app/README', contents='app\\n')\n")
    recipe(ws, "tool", script("/usr/bin/tool", "/usr/bin/app"))
    recipe(ws, "helper", "r.Create('/usr/bin/helper', contents='helps\\n', mode=0o755)\n")
    recipe(ws, "extra", script("/usr/bin/extra", "/usr/bin/helper"))
    recipe(ws, "motd", "r.Create('/etc/motd', contents='welcome\\n')\n")
    run_appbuild(cook_workspace, "cook", "recipes/", "-j", "2")
    return cook_workspace


def test_conary_group_language(cooked):
    ws = cooked.workspace
    group(ws, "group-base", "r.add('interp')\nr.add('tool')\n")
    run_appbuild(cooked, "resolve", "group-base")  # addAll and addCopy take a resolved group
    group(ws, "group-appliance", """\
        r.addAll('group-base')
        r.add('app', components=['runtime', 'devel', 'doc'])
        r.add('extra', byDefault=False)
        r.createGroup('group-tools')
        r.add('tool', groupName='group-tools')
        r.addNewGroup('group-tools')
        r.removeComponents(['devel', 'doc'])
        r.Requires('motd')
        """, attrs="autoResolve = True\ndepCheck = True\n")
    out = run_appbuild(cooked, "resolve", "group-appliance").stdout
    members, g = pins(cooked, "group-appliance")
    # addAll: what group-base named, its requirements resolved again here
    assert {"interp", "tool", "tool:runtime", "app:runtime"} <= set(members)
    # removeComponents wins over components=: no :devel, no :doc of any package
    assert not [m for m in members if m.endswith((":devel", ":doc"))]
    # createGroup + groupName + addNewGroup: a group trove of its own, nested in this one
    tools, tg = pins(cooked, "group-tools")
    assert "tool:runtime" in tools and "app:runtime" in tools and "group-tools" in members
    assert tg.info["made_by"] == "group-appliance" and str(tg.version) == f"{MAIN}/2.0-1-1"
    # Requires: in the closure and recorded as the group trove's requirement
    assert "motd:config" in members and "trove: motd" in {str(d) for d in g.requires}
    assert "group-appliance requires trove: motd" in out
    # byDefault=False: resolved with what it needs and pinned, not a member an image installs
    assert "extra" not in members and "helper:runtime" not in members
    assert "extra=cernvm@cvm:2/1.0-1-1[is: x86_64]" in g.info["optional"]
    assert "helper:runtime=cernvm@cvm:2/1.0-1-1[is: x86_64]" in g.info["optional"]
    assert "byDefault=False: not installed" in out
    assert g.info["removed_components"] == ["devel", "doc"] and g.info["requires"] == ["motd"]

    # addCopy: the exact pins of a group trove
    group(ws, "group-copy", "r.addCopy('group-base')\n")
    run_appbuild(cooked, "resolve", "group-copy")
    base, _ = pins(cooked, "group-base")
    copy, _ = pins(cooked, "group-copy")
    assert copy == base

    # mistakes name the group file and line
    group(ws, "group-typo", "r.add('tool', groupName='group-nothere')\n")
    proc = run_appbuild(cooked, "resolve", "group-typo", check=False)
    assert proc.returncode == 1 and "group-typo.py:6" in proc.stderr and "createGroup('group-nothere')" in proc.stderr
    group(ws, "group-typo", "r.removeComponents(['dev el'])\n")
    proc = run_appbuild(cooked, "resolve", "group-typo", check=False)
    assert "group-typo.py:6" in proc.stderr and "not a component name" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_search_path_replace_and_conary_switches(cooked):
    ws = cooked.workspace
    group(ws, "group-base", "r.add('interp')\nr.add('tool')\n")
    run_appbuild(cooked, "resolve", "group-base")  # pins the interp of the main label
    # a second interp on a development label
    label(cooked, DEVEL)
    (ws / "recipes/interp/recipe.py").write_text(
        (ws / "recipes/interp/recipe.py").read_text().replace("an interpreter", "a newer interpreter"))
    assert f"interp={DEVEL}/1.0-1-1" in run_appbuild(cooked, "cook", "recipes/interp").stdout
    label(cooked, MAIN)

    group(ws, "group-stable", f"r.setSearchPath('{MAIN}')\nr.add('app')\n")
    group(ws, "group-devel", f"r.setLabelPath('{DEVEL}', '{MAIN}')\nr.add('interp')\nr.add('app')\n")
    group(ws, "group-newest", "r.addAll('group-base')\nr.replace('interp')\n")
    group(ws, "group-plain", "r.addAll('group-base')\n")
    for name in ("group-stable", "group-devel", "group-newest", "group-plain"):
        run_appbuild(cooked, "resolve", name)
    assert pins(cooked, "group-stable")[0]["interp:runtime"] == f"{MAIN}/1.0-1-1"
    members, g = pins(cooked, "group-devel")
    assert members["interp:runtime"] == f"{DEVEL}/1.0-1-1" and members["app:runtime"] == f"{MAIN}/1.0-1-1"
    assert g.info["search_path"] == [DEVEL, MAIN]
    # addAll takes the pins group-base named; replace('interp') the newest instead
    assert pins(cooked, "group-plain")[0]["interp:runtime"] == f"{MAIN}/1.0-1-1"
    assert pins(cooked, "group-newest")[0]["interp:runtime"] == f"{DEVEL}/1.0-1-1"

    group(ws, "group-missing", f"r.setSearchPath('{DEVEL}')\nr.add('app')\n")
    proc = run_appbuild(cooked, "resolve", "group-missing", check=False)
    assert proc.returncode == 1 and "on the search path" in proc.stderr and "group-missing.py:7" in proc.stderr

    # conary's defaults, asked for: no providers added, unmet requirements only warned about
    group(ws, "group-conary", "r.add('tool')\n", attrs="autoResolve = False\ndepCheck = False\n")
    proc = run_appbuild(cooked, "resolve", "group-conary")
    members, g = pins(cooked, "group-conary")
    assert "app:runtime" not in members and "tool:runtime" in members
    assert "unresolved (depCheck is off): file: /usr/bin/app" in proc.stderr
    assert g.info["switches"] == {"autoResolve": False, "depCheck": False}
