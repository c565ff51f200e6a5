"""conary's habits (issue 16, point 6): every missing buildRequires at once, ``q``/``rq``,
``showcs`` between group versions, ``diff recipes/NAME`` against the last cook. Real cooks."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

from tests.conftest import run_appbuild


def write_recipe(ws: Path, name: str, body: str, files: dict[str, str] | None = None) -> Path:
    d = ws / "recipes" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "recipe.py").write_text(textwrap.dedent(body))
    for fname, content in (files or {}).items():
        (d / fname).write_text(content)
    return d


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


# ------------------------------------------------------- every missing buildRequires


def test_a_cook_lacking_two_build_requirements_names_both_at_once(cook_workspace):
    ws = cook_workspace.workspace
    write_recipe(ws, "greetgen", """\
        class GreetGen(PackageRecipe):
            name = 'greetgen'
            version = '1.0'

            def setup(r):
                r.Create('%(bindir)s/mkgreeting', mode=0o755,
                         contents='#!/bin/sh\\necho "#define GREETING \\\\"hello\\\\""\\n')
        """)
    write_recipe(ws, "greethdr", """\
        class GreetHdr(PackageRecipe):
            name = 'greethdr'
            version = '1.0'

            def setup(r):
                r.Create('%(includedir)s/greet.h', contents='#define WHO "world"\\n')
        """)
    # the Makefile runs the tool first, then compiles against the header: a build stops at
    # the first, so the second only shows when the build is tried with the first added
    write_recipe(ws, "needy", """\
        class Needy(PackageRecipe):
            name = 'needy'
            version = '1.0'

            def setup(r):
                r.addSource('Makefile')
                r.addSource('main.c')
                r.Make()
                r.Install('greeting', '%(bindir)s/greeting')
        """, files={
        "Makefile": "all: greeting\n\ngen.h:\n\tmkgreeting > gen.h\n\n"
                    "greeting: main.c gen.h\n\t$(CC) -o greeting main.c\n",
        "main.c": '#include <stdio.h>\n#include "gen.h"\n#include <greet.h>\n'
                  'int main(void) { printf("%s, %s\\n", GREETING, WHO); return 0; }\n',
    })
    run_appbuild(cook_workspace, "cook", "recipes/greetgen", "recipes/greethdr")
    proc = run_appbuild(cook_workspace, "cook", "recipes/needy", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    err = proc.stderr
    assert "2 things the build needs are not in its build root:" in err
    assert "the build needs the command 'mkgreeting', which is not in its build root: greetgen provides it" in err
    assert "the build needs the header 'greet.h', which is not in its build root: greethdr:devel provides it" in err
    assert "with greetgen, greethdr:devel added, a trial build in a scratch build root got through" in err
    assert "buildRequires = ['greetgen', 'greethdr:devel']" in err
    assert run_appbuild(cook_workspace, "query", "needy", check=False).stdout == ""  # nothing committed
    # the suggested line is right: with it the recipe cooks, and the program runs
    recipe = ws / "recipes" / "needy" / "recipe.py"
    recipe.write_text(recipe.read_text().replace("version = '1.0'\n",
                                                 "version = '1.0'\n    buildRequires = ['greetgen', 'greethdr:devel']\n"))
    run_appbuild(cook_workspace, "cook", "recipes/needy")
    shown = run_appbuild(cook_workspace, "rq", "needy:runtime", "--ls").stdout
    assert "/usr/bin/greeting" in shown


def test_a_missing_tool_nothing_provides_is_named_without_trial_builds(cook_workspace):
    write_recipe(cook_workspace.workspace, "lonely", """\
        class Lonely(PackageRecipe):
            name = 'lonely'
            version = '1'

            def setup(r):
                r.Run('no-such-generator-anywhere --out x')
        """)
    proc = run_appbuild(cook_workspace, "cook", "recipes/lonely", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "the build needs the command 'no-such-generator-anywhere', which is not in its build root, and " \
           "nothing in the repository provides it" in proc.stderr
    assert "trial build" not in proc.stderr


# ------------------------------------------------------------------------ rq / q


def test_rq_answers_conary_query_forms(hello_repo):
    out = run_appbuild(hello_repo, "rq", "hello", "--flavors").stdout.splitlines()
    assert out == ["hello=1.0-1-1[is: x86]", "hello=1.0-1-1[is: x86_64]"]  # sorted by name, flavor, version
    info = run_appbuild(hello_repo, "rq", "hello", "--info", "--arch", "x86").stdout
    assert "Name      : hello" in info and "Flavor    : is: x86 " in info and "Label     : cernvm@cvm:2" in info
    assert "Build reqs: libhello:devel=cernvm@cvm:2/1.0-1-1[is: x86]" in info
    troves = run_appbuild(hello_repo, "rq", "hello=1.0", "--troves", "--arch", "x86_64").stdout.splitlines()
    assert troves[0] == "hello=1.0-1-1" and "  hello:runtime=1.0-1-1" in troves
    ls = run_appbuild(hello_repo, "rq", "hello[is: x86_64]", "--ls").stdout.splitlines()
    assert "  /usr/bin/hello" in ls and "  /etc/hello.conf" in ls
    lsl = run_appbuild(hello_repo, "rq", "libhello:lib", "--lsl", "--arch", "x86_64").stdout
    assert "lrwxrwxrwx" in lsl and "/usr/lib64/libhello.so.1 -> libhello.so.1.0" in lsl
    deps = run_appbuild(hello_repo, "rq", "hello:runtime", "--deps", "--arch", "x86_64").stdout
    assert "soname: ELF64/libhello.so.1(LIBHELLO_1.0 x86_64)" in deps
    owners = run_appbuild(hello_repo, "rq", "--path", "/usr/bin/hello", "--full-versions", "--flavors").stdout
    assert owners.splitlines() == ["hello:runtime=cernvm@cvm:2/1.0-1-1[is: x86]",
                                   "hello:runtime=cernvm@cvm:2/1.0-1-1[is: x86_64]"]
    listing = run_appbuild(hello_repo, "rq").stdout.splitlines()
    assert "hello=1.0-1-1" in listing and not any(":" in line.split("=")[0] for line in listing)


def test_rq_bad_input_gives_clear_errors(hello_repo):
    cases = {
        ("rq", "nosuchtrove"): "no trove matches nosuchtrove; there is no trove of that name",
        ("rq", "hello=9.9"): "no trove matches hello=9.9; it has: 1.0-1-1[is: x86",
        ("rq", "hello[is: sparc]"): "unknown architecture 'sparc'",
        ("rq", "hello=1.0--2.0"): "'name=V1--V2' names a change",
        ("rq", "--path", "usr/bin/hello"): "--path takes an absolute path",
        ("rq", "--path", "/no/such/file"): "the repository holds no file /no/such/file",
        ("rq", "hello", "--arch", "sparc"): "unknown architecture 'sparc'",
        ("q",): "no image has been built",
        ("q", "--group", "hello"): "--group takes group-NAME[=VERSION]",
        ("q", "--group", "group-nothere"): "no group trove group-nothere for x86_64",
        ("diff", "recipes/nothere"): "recipes/nothere",
        ("showcs", "group-nothere"): "no recorded group group-nothere for x86_64",
    }
    for args, message in cases.items():
        proc = run_appbuild(hello_repo, *args, check=False, cwd=hello_repo.workspace)
        no_traceback(proc)
        assert proc.returncode != 0, args
        assert message in proc.stderr, (args, proc.stderr)
    # hello was cooked in this repository from these very files
    same = run_appbuild(hello_repo, "diff", "recipes/hello", "--arch", "x86")
    assert same.stdout == "" and "is the recipe hello=cernvm@cvm:2/1.0-1-1[is: x86] was cooked from: no changes" \
        in same.stderr


# ------------------------------------------------- diff, q, showcs on one workspace


def test_diff_q_and_showcs_follow_a_recipe_through_two_group_versions(cook_workspace):
    s, ws = cook_workspace, cook_workspace.workspace
    write_recipe(ws, "motd", """\
        class Motd(PackageRecipe):
            name = 'motd'
            version = '1.0'

            def setup(r):
                r.addSource('motd.txt')
                r.Install('motd.txt', '%(sysconfdir)s/motd')
                r.Create('%(datadir)s/motd/tag', contents='one\\n')
        """, files={"motd.txt": "Welcome\nto the first version\n"})
    (ws / "groups" / "group-motd.py").write_text(textwrap.dedent("""\
        class GroupMotd(GroupRecipe):
            name = 'group-motd'
            version = '1.0'

            def setup(r):
                r.add('motd')
        """))
    run_appbuild(s, "cook", "recipes/motd")
    same = run_appbuild(s, "diff", "recipes/motd")
    assert same.stdout == "" and "is the recipe motd=cernvm@cvm:2/1.0-1-1[is: x86_64] was cooked from: no changes" \
        in same.stderr
    run_appbuild(s, "resolve", "group-motd")

    # the recipe changes: diff shows it against what the cook recorded
    (ws / "recipes" / "motd" / "motd.txt").write_text("Welcome\nto the second version\n")
    recipe = ws / "recipes" / "motd" / "recipe.py"
    recipe.write_text(recipe.read_text().replace("contents='one\\n'", "contents='two\\n', mode=0o600"))
    (ws / "recipes" / "motd" / "NOTES").write_text("new file\n")
    proc = run_appbuild(s, "diff", "recipes/motd")
    assert "against the recipe motd=cernvm@cvm:2/1.0-1-1[is: x86_64] was cooked from (a/)" in proc.stderr
    diff = proc.stdout.splitlines()
    assert "--- a/motd/motd.txt" in diff and "+++ b/motd/motd.txt" in diff
    assert "-to the first version" in diff and "+to the second version" in diff
    assert "-        r.Create('%(datadir)s/motd/tag', contents='one\\n')" in diff
    assert "+        r.Create('%(datadir)s/motd/tag', contents='two\\n', mode=0o600)" in diff
    assert "--- /dev/null" in diff and "+++ b/motd/NOTES" in diff and "+new file" in diff

    run_appbuild(s, "cook", "recipes/motd")
    run_appbuild(s, "resolve", "group-motd")
    assert run_appbuild(s, "diff", "recipes/motd").stdout == ""  # the new cook recorded the new recipe

    # q asks the group's closure
    q = run_appbuild(s, "q", "--group", "group-motd")
    # the group recipe did not change: its second version is a new build of the same source
    assert "querying group-motd=cernvm@cvm:2/1.0-1-2[is: x86_64]" in q.stderr
    assert "motd=1.0-2-1" in q.stdout.splitlines()
    old = run_appbuild(s, "q", "--group", "group-motd=1.0-1-1", "motd", "--troves").stdout.splitlines()
    assert old[0] == "motd=1.0-1-1" and any(line.startswith("  motd:") for line in old[1:])
    owner = run_appbuild(s, "q", "--group", "group-motd", "--path", "/etc/motd").stdout.splitlines()
    assert owner[0].startswith("motd:") and owner[0].endswith("=1.0-2-1")
    missing = run_appbuild(s, "q", "--group", "group-motd", "hello", check=False)
    assert missing.returncode == 1 and "holds no trove matching hello" in missing.stderr

    # showcs: what the new group version changes; conary's spelling and --from/--to agree
    cs = run_appbuild(s, "showcs", "group-motd=1.0-1-1--1.0-1-2", "--diff").stdout.splitlines()
    assert cs == run_appbuild(s, "showcs", "group-motd", "--from", "1.0-1-1", "--to", "1.0-1-2",
                              "--diff").stdout.splitlines()
    assert cs[0] == "group-motd=1.0-1-1 -> 1.0-1-2 (is: x86_64)"
    assert any(line.split() == ["changed", "motd", "1.0-1-1", "->", "1.0-2-1"] for line in cs)
    text = "\n".join(cs)
    assert "~ /etc/motd (content 29 -> 30 bytes)" in text
    assert "-to the first version" in text and "+to the second version" in text
    assert "~ /usr/share/motd/tag (content 4 -> 4 bytes, mode 644 -> 600)" in text
    assert cs[-1].endswith("0 added, 0 removed, 0 unchanged") and "changed," in cs[-1]
    newest = run_appbuild(s, "showcs", "group-motd").stdout.splitlines()  # newest against the one before
    assert newest[0] == cs[0] and not any(line.strip().startswith("~") for line in newest)
    bad = run_appbuild(s, "showcs", "group-motd=1.0-1-1--7.7", check=False)
    assert bad.returncode == 1 and "group-motd has no version '7.7' for x86_64; it has: 1.0-1-1, 1.0-1-2" in bad.stderr
    no_traceback(bad)


def test_a_damaged_recorded_recipe_is_an_error_not_a_wrong_diff(cook_workspace):
    write_recipe(cook_workspace.workspace, "tiny", """\
        class Tiny(PackageRecipe):
            name = 'tiny'
            version = '1'

            def setup(r):
                r.Create('/usr/share/tiny', contents='x')
        """)
    run_appbuild(cook_workspace, "cook", "recipes/tiny")
    with sqlite3.connect(cook_workspace.repository / "index.sqlite") as db:
        row = db.execute("SELECT id, info FROM troves WHERE name='tiny'").fetchone()
        info = json.loads(row[1])
        info["recipe_text"]["recipe.py"] = info["recipe_text"]["recipe.py"].replace("'x'", "'y'")
        db.execute("UPDATE troves SET info=? WHERE id=?", (json.dumps(info, sort_keys=True), row[0]))
    proc = run_appbuild(cook_workspace, "diff", "recipes/tiny", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "the recorded text of recipe.py does not match its recorded sha256" in proc.stderr
    write_recipe(cook_workspace.workspace, "other", "class Other(PackageRecipe):\n    name = 'other'\n    version = '1'\n\n"
                 "    def setup(r):\n        r.Create('/usr/share/other', contents='o')\n")
    other = run_appbuild(cook_workspace, "diff", "recipes/", check=False)
    assert other.returncode == 1 and "appbuild diff takes one recipe" in other.stderr
