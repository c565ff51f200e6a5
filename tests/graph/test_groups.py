"""Group recipes resolved top-down into exact, versioned closures (real cooks, real CLI).

The recipes here are small on purpose: scripts whose interpreters are other packages'
files, files several packages write, explicit soname requirements. Closures with real
shared libraries and capsules are covered in tests/capsule and tests/images.
"""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest

from appbuilder.graph.groups import find_group
from appbuilder.repository.repo import Repository
from tests.conftest import PROJECT, run_appbuild


@pytest.fixture
def workspace(cook_workspace):
    """Cooks here need the toolchain in the repository (a build root is made from it)."""
    return cook_workspace


def recipe(ws: Path, name: str, setup: str, *, version: str = "1.0", extra: str = "") -> None:
    d = ws / "recipes" / name
    d.mkdir(parents=True, exist_ok=True)
    body = f"""\
class R(PackageRecipe):
    name = '{name}'
    version = '{version}'
{textwrap.indent(textwrap.dedent(extra), '    ')}
    def setup(r):
{textwrap.indent(textwrap.dedent(setup), '        ')}
"""
    (d / "recipe.py").write_text(body)


def group(ws: Path, name: str, body: str, *, attrs: str = "") -> None:
    cls = "".join(p.capitalize() for p in name.split("-"))
    text = f"""\
class {cls}(GroupRecipe):
    name = '{name}'
    version = '1.0'
{textwrap.indent(textwrap.dedent(attrs), '    ')}
    def setup(r):
{textwrap.indent(textwrap.dedent(body), '        ')}
"""
    (ws / "groups" / f"{name}.py").write_text(text)


def script(path: str, interpreter: str) -> str:
    return f"r.Create('{path}', contents='#!{interpreter}\\necho hi\\n', mode=0o755)"


@pytest.fixture
def tools(workspace):
    """interp (an interpreter), app (a script run by it, and a config file), tool (another script)."""
    ws = workspace.workspace
    recipe(ws, "interp", "r.Create('/usr/bin/interp', contents='not a script, an interpreter\\n', mode=0o755)")
    recipe(ws, "app", f"""\
        {script('/usr/bin/app', '/usr/bin/interp')}
        r.Create('/etc/app.conf', contents='x=1\\n')
        r.Create('/usr/share/man/man1/app.1', contents='.TH APP 1\\n')
        """)
    recipe(ws, "tool", script("/usr/bin/tool", "/usr/bin/app"))
    run_appbuild(workspace, "cook", "recipes/")
    return workspace


def resolve(settings, name: str, *args: str, check: bool = True):
    return run_appbuild(settings, "resolve", name, *args, check=check)


def members(settings, name: str, arch: str = "x86_64") -> dict[str, str]:
    repo = Repository(settings.repository, settings.label)
    g = repo.get(find_group(repo, name, arch), with_files=False)
    return {m.name: str(m.version) for m in g.members}


def test_closure_reasons_pins_and_stable_version(tools):
    ws = tools.workspace
    group(ws, "group-tool", "r.add('tool')")
    out = resolve(tools, "group-tool").stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert "named" in rows["tool"]
    assert "component of tool" in rows["tool:runtime"]
    assert "tool:runtime requires file: /usr/bin/app" in rows["app:runtime"]
    assert "app:runtime requires file: /usr/bin/interp" in rows["interp:runtime"]
    assert "app:runtime requires trove: app:config" in rows["app:config"]
    assert "app:doc" not in rows  # only the components the group takes by default
    assert out.splitlines()[-1].startswith("group-tool=cernvm@cvm:2/1.0-1-1[is: x86_64]")
    pins = members(tools, "group-tool")
    assert pins == {
        "tool": "cernvm@cvm:2/1.0-1-1", "tool:runtime": "cernvm@cvm:2/1.0-1-1",
        "app:runtime": "cernvm@cvm:2/1.0-1-1", "app:config": "cernvm@cvm:2/1.0-1-1",
        "interp:runtime": "cernvm@cvm:2/1.0-1-1",
    }

    again = resolve(tools, "group-tool").stdout
    assert "group-tool=cernvm@cvm:2/1.0-1-1[is: x86_64]" in again and "unchanged" in again

    # a new interp changes the closure: a new group version with the new pin
    (ws / "recipes/interp/recipe.py").write_text((ws / "recipes/interp/recipe.py").read_text() + "# v2\n")
    run_appbuild(tools, "cook", "recipes/interp")
    third = resolve(tools, "group-tool").stdout
    assert "group-tool=cernvm@cvm:2/1.0-1-2[is: x86_64]" in third and "new version" in third
    assert members(tools, "group-tool")["interp:runtime"] == "cernvm@cvm:2/1.0-2-1"

    # every version stays recorded, with its own pins
    versions = run_appbuild(tools, "query", "group-tool").stdout.splitlines()
    assert versions == ["group-tool=cernvm@cvm:2/1.0-1-1[is: x86_64]", "group-tool=cernvm@cvm:2/1.0-1-2[is: x86_64]"]


def test_unresolvable_requirement_names_the_chain(tools):
    ws = tools.workspace
    recipe(ws, "orphan", script("/usr/bin/orphan", "/usr/bin/nosuchinterp"))
    recipe(ws, "wrapper", script("/usr/bin/wrapper", "/usr/bin/orphan"))
    run_appbuild(tools, "cook", "recipes/")
    group(ws, "group-broken", "r.add('wrapper')")
    proc = resolve(tools, "group-broken", check=False)
    assert proc.returncode == 1
    assert ("file: /usr/bin/nosuchinterp needed by group-broken -> wrapper -> wrapper:runtime -> orphan:runtime: "
            "nothing in the repository provides it") in proc.stderr
    assert run_appbuild(tools, "query", "group-broken", check=False).stdout == ""

    group(ws, "group-broken", "r.add('wrapper')", attrs="depCheck = False")
    lenient = resolve(tools, "group-broken")
    assert "unresolved (depCheck is off): file: /usr/bin/nosuchinterp" in lenient.stderr


def test_path_conflict_names_both_unless_declared(tools):
    ws = tools.workspace
    recipe(ws, "motd-a", "r.Create('/etc/motd', contents='welcome from a\\n')")
    recipe(ws, "motd-b", "r.Create('/etc/motd', contents='welcome from b\\n')")
    recipe(ws, "motd-same", "r.Create('/etc/motd', contents='welcome from a\\n')")
    run_appbuild(tools, "cook", "recipes/")
    group(ws, "group-motd", "r.add('motd-a')\nr.add('motd-b')")
    proc = resolve(tools, "group-motd", check=False)
    assert proc.returncode == 1
    assert "/etc/motd is written differently by motd-a:config and motd-b:config" in proc.stderr

    group(ws, "group-motd", "r.add('motd-a')\nr.add('motd-same')")  # identical content: no conflict
    resolve(tools, "group-motd")
    group(ws, "group-motd", "r.add('motd-a')\nr.add('motd-b')\nr.allowPathConflicts('/etc/motd')")
    resolve(tools, "group-motd")


def test_other_elf_class_never_satisfies(workspace):
    ws = workspace.workspace
    for name in ("libhello",):
        import shutil

        shutil.copytree(PROJECT / "recipes" / name, ws / "recipes" / name)
    recipe(ws, "needs64", """\
        r.Create('/usr/share/needs64/marker', contents='x')
        r.Requires('soname: ELF64/libhello.so.1(x86_64)', '/usr/share/needs64/marker')
        """, extra="")
    (ws / "recipes/needs64/recipe.py").write_text((ws / "recipes/needs64/recipe.py").read_text().replace(
        "r.Create('/usr/share/needs64/marker', contents='x')",
        "r.Create('/usr/share/needs64/marker', contents='x')\n        r.ComponentSpec('runtime', '/usr/share/needs64/.*')"))
    run_appbuild(workspace, "cook", "recipes/libhello", "--arch", "x86")
    run_appbuild(workspace, "cook", "recipes/needs64")
    group(ws, "group-mixed", "r.add('needs64')")
    proc = resolve(workspace, "group-mixed", check=False)
    assert proc.returncode == 1
    assert "soname: ELF64/libhello.so.1(x86_64) needed by group-mixed -> needs64 -> needs64:runtime" in proc.stderr
    assert "libhello:lib provides ELF32/libhello.so.1 for is: x86: a library of the other ELF class cannot satisfy it" \
        in proc.stderr


def test_ambiguous_providers_are_reported_with_the_rule(tools):
    ws = tools.workspace
    recipe(ws, "interp-fork", "r.Create('/usr/bin/interp', contents='another interpreter\\n', mode=0o755)")
    run_appbuild(tools, "cook", "recipes/interp-fork")
    group(ws, "group-app", "r.add('app')")
    proc = resolve(tools, "group-app")
    assert ("file: /usr/bin/interp (for app:runtime) has 2 providers (interp-fork:runtime, interp:runtime); "
            "chose interp-fork:runtime: the newest") in proc.stderr
    assert members(tools, "group-app")["interp-fork:runtime"]
    # naming a package in the group settles it
    group(ws, "group-app", "r.add('app')\nr.add('interp')")
    proc = resolve(tools, "group-app")
    assert "interp-fork" not in proc.stdout


def test_remove_replace_components_and_nested_groups(tools):
    ws = tools.workspace
    # an older interp stays in the repository when a new one is cooked
    (ws / "recipes/interp/recipe.py").write_text((ws / "recipes/interp/recipe.py").read_text() + "# v2\n")
    run_appbuild(tools, "cook", "recipes/interp")

    group(ws, "group-pinned", "r.add('app')\nr.replace('interp', 'interp=1.0-1-1')")
    resolve(tools, "group-pinned")
    assert members(tools, "group-pinned")["interp:runtime"] == "cernvm@cvm:2/1.0-1-1"

    group(ws, "group-docs", "r.add('app', components=['runtime', 'config', 'doc'])")
    resolve(tools, "group-docs")
    assert "app:doc" in members(tools, "group-docs")

    group(ws, "group-noconf", "r.add('app')\nr.remove('app:config')")
    proc = resolve(tools, "group-noconf", check=False)
    assert proc.returncode == 1
    assert ("trove: app:config needed by group-noconf -> app -> app:runtime: nothing in the repository provides it "
            "(the group removes app:config)") in proc.stderr

    group(ws, "group-inner", "r.add('interp')")
    group(ws, "group-outer", "r.add('tool')\nr.addNewGroup('group-inner')")
    out = resolve(tools, "group-outer").stdout
    pins = members(tools, "group-outer")
    assert "group-inner" in pins and "interp:runtime" in pins and "tool:runtime" in pins
    assert "member of group-inner" in next(line for line in out.splitlines() if line.startswith("interp "))

    group(ws, "group-loop-a", "r.addNewGroup('group-loop-b')")
    group(ws, "group-loop-b", "r.addNewGroup('group-loop-a')")
    proc = resolve(tools, "group-loop-a", check=False)
    assert "group cycle: group-loop-a -> group-loop-b -> group-loop-a" in proc.stderr


def test_auto_resolve_off_leaves_requirements_unmet(tools):
    group(tools.workspace, "group-strict", "r.add('tool')", attrs="autoResolve = False")
    proc = resolve(tools, "group-strict", check=False)
    assert proc.returncode == 1
    assert "file: /usr/bin/app needed by group-strict -> tool -> tool:runtime: nothing in the repository provides " \
           "it (autoResolve is off)" in proc.stderr


def test_bad_group_recipes(workspace):
    ws = workspace.workspace
    proc = resolve(workspace, "group-nothere", check=False)
    assert proc.returncode == 1 and "no group recipe" in proc.stderr
    (ws / "groups/group-typo.py").write_text("class G(GroupRecipe):\n    name = 'group-typo'\n    version = '1'\n"
                                             "    def setup(r):\n        r.add('nosuchpackage')\n")
    proc = resolve(workspace, "group-typo", check=False)
    assert "group-typo.py:5: add(nosuchpackage): no trove matches nosuchpackage" in proc.stderr
    (ws / "groups/group-misnamed.py").write_text("class G(GroupRecipe):\n    name = 'group-other'\n    version = '1'\n"
                                                 "    def setup(r):\n        pass\n")
    proc = resolve(workspace, "group-misnamed", check=False)
    assert "belongs in groups/group-other.py" in proc.stderr
    for login in ("'root'", "'Bad User'", "42"):  # root stays locked; a login user is a plain name
        (ws / "groups/group-login.py").write_text("class G(GroupRecipe):\n    name = 'group-login'\n    version = '1'\n"
                                                  f"    loginUser = {login}\n    def setup(r):\n        pass\n")
        proc = resolve(workspace, "group-login", check=False)
        assert proc.returncode == 1 and "loginUser must be a user name other than root" in proc.stderr, login


def test_graph_export_holds_nodes_and_edges(tools, tmp_path):
    group(tools.workspace, "group-tool", "r.add('tool')")
    resolve(tools, "group-tool")
    base = tmp_path / "graph"
    out = run_appbuild(tools, "graph", "group-tool", "-o", str(base)).stdout
    assert "3 packages, 2 dependency edges" in out
    g = nx.read_graphml(base.with_suffix(".graphml"))
    assert set(g.nodes) == {"tool", "app", "interp"}
    assert set(g.edges) == {("tool", "app"), ("app", "interp")}
    assert g.edges["tool", "app"]["requirements"] == "file: /usr/bin/app"
    dot = base.with_suffix(".dot").read_text()
    assert '"tool" -> "app"' in dot and '"app" -> "interp"' in dot
    svg = ET.parse(base.with_suffix(".svg")).getroot()
    assert svg.tag.endswith("svg") and "interp" in ET.tostring(svg, encoding="unicode")
    assert base.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resolve_records_image_settings(tools):
    group(tools.workspace, "group-img", "r.add('tool')",
          attrs="imageGroup = True\nhostname = 'box'\nkernelModules = ('fuse',)\nusers = ('alice:1000:alice:1000:/home/alice:/bin/sh',)"
                "\nloginUser = 'cernvm'")
    resolve(tools, "group-img")
    repo = Repository(tools.repository, tools.label)
    info = repo.get(find_group(repo, "group-img", "x86_64"), with_files=False).info
    assert info["image_group"] is True and info["hostname"] == "box" and info["kernel_modules"] == ["fuse"]
    assert info["users"] == ["alice:1000:alice:1000:/home/alice:/bin/sh"]
    assert info["login_user"] == "cernvm"
    assert json.dumps(info["reasons"])  # reasons are stored with the pins


def test_source_date_epoch_comes_from_the_pins_not_the_clock(tools):
    """Images take every time stamp from the group's SOURCE_DATE_EPOCH: the workspace's value for
    cooked members, the newest upstream file time when a capsule is newer; never the clock."""
    group(tools.workspace, "group-cooked", "r.add('tool')", attrs="imageGroup = True")
    group(tools.workspace, "group-capsule", "r.add('tool')\nr.add('dash')", attrs="imageGroup = True")
    resolve(tools, "group-cooked")
    resolve(tools, "group-capsule")
    repo = Repository(tools.repository, tools.label)
    cooked = repo.get(find_group(repo, "group-cooked", "x86_64"), with_files=False)
    assert cooked.info["source_date_epoch"] == tools.get("source_date_epoch") == 1_700_000_000
    capsule = repo.get(find_group(repo, "group-capsule", "x86_64"), with_files=False)
    newest = max(f.mtime for m in capsule.members for f in repo.get(m).files)
    assert newest > 1_700_000_000  # Debian 12's dash was built after November 2023
    assert capsule.info["source_date_epoch"] == newest
