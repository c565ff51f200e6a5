"""Real cooks through the real command line: libhello (a shared library) and hello (a
program linking it), for x86_64 and x86; version bumps; failures; the sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from appbuilder.cli.common import open_repo
from appbuilder.repository.checkout import materialize
from appbuilder.repository.deps import Dependency
from tests.conftest import component, env_for, run_appbuild, sigint_as_from_a_terminal


@pytest.fixture
def workspace(cook_workspace):
    """Cooks here need the toolchain in the repository (a build root is made from it)."""
    return cook_workspace


# ----------------------------------------------------------------- dependencies and components


@pytest.mark.parametrize("arch, elf", [("x86_64", "ELF64"), ("x86", "ELF32")])
def test_library_provides_its_soname_with_elf_class_and_symbol_versions(hello_repo, arch, elf):
    repo = open_repo(hello_repo)
    lib = component(repo, "libhello:lib", arch)
    assert lib.provides == {Dependency.parse(f"soname: {elf}/libhello.so.1(LIBHELLO_1.0 {arch})")}
    assert lib.info["elf"] == [f"{elf} {arch}"]
    libc = [d for d in lib.requires if d.name == f"{elf}/libc.so.6"]
    assert libc and arch in libc[0].flags


@pytest.mark.parametrize("arch, elf, loader", [
    ("x86_64", "ELF64", "/lib64/ld-linux-x86-64.so.2"),
    ("x86", "ELF32", "/lib/ld-linux.so.2"),
])
def test_program_requires_library_loader_and_script_interpreter(hello_repo, arch, elf, loader):
    repo = open_repo(hello_repo)
    runtime = component(repo, "hello:runtime", arch)
    reqs = {str(d) for d in runtime.requires}
    assert f"soname: {elf}/libhello.so.1(LIBHELLO_1.0 {arch})" in reqs
    assert f"soname: {elf}/{loader.rsplit('/', 1)[1]}({arch})" in reqs
    assert f"file: {loader}" in reqs
    assert "file: /bin/sh" in reqs  # from hello-all's #! line
    assert "trove: hello:config" in reqs  # :runtime needs the package's :config
    assert any(r.startswith(f"soname: {elf}/libc.so.6(") for r in reqs)
    # a 32-bit library never satisfies a 64-bit requirement and vice versa
    other = "ELF32" if elf == "ELF64" else "ELF64"
    assert not any(other in r for r in reqs)


def test_components_split_by_path_rules(hello_repo):
    repo = open_repo(hello_repo)
    pkg = repo.get(repo.find_one("hello", arch="x86_64"))
    assert sorted(m.name for m in pkg.members) == ["hello:config", "hello:debuginfo", "hello:doc", "hello:runtime"]
    files = {f.path: (c.name, f) for m in pkg.members for c in [repo.get(m)] for f in c.files}
    assert files["/usr/bin/hello"][0] == "hello:runtime"
    assert files["/usr/share/man/man1/hello.1.gz"][0] == "hello:doc"  # NormalizeManPages compressed it
    assert files["/usr/lib/debug/usr/bin/hello.debug"][0] == "hello:debuginfo"
    conf = files["/etc/hello.conf"]
    assert conf[0] == "hello:config" and conf[1].config and conf[1].mode == 0o644
    hello = files["/usr/bin/hello"][1]
    assert (hello.type, hello.mode, hello.owner, hello.group) == ("file", 0o755, "root", "root")
    assert len(hello.sha256) == 64 and hello.size > 0

    lib = repo.get(repo.find_one("libhello", arch="x86_64"))
    libfiles = {f.path: (c.name, f) for m in lib.members for c in [repo.get(m)] for f in c.files}
    assert libfiles["/usr/lib64/libhello.so.1.0"][0] == "libhello:lib"
    assert libfiles["/usr/lib64/libhello.so.1"][1].target == "libhello.so.1.0"
    assert libfiles["/usr/lib64/libhello.so"][0] == "libhello:devellib"  # the link-time symlink (conary's rule)
    assert libfiles["/usr/include/hello.h"][0] == "libhello:devel"
    devel = component(repo, "libhello:devel", "x86_64")
    assert Dependency.parse("trove: libhello:lib") in devel.requires
    assert Dependency.parse("trove: libhello:devellib") in devel.requires


@pytest.mark.parametrize("arch, libdir", [("x86_64", "usr/lib64"), ("x86", "usr/lib")])
def test_cooked_program_runs_against_cooked_library(hello_repo, tmp_path, arch, libdir):
    repo = open_repo(hello_repo)
    troves = [component(repo, "hello:runtime", arch), component(repo, "libhello:lib", arch)]
    materialize(repo.store, troves, tmp_path)
    out = subprocess.run([str(tmp_path / "usr/bin/hello"), "cernvm"], env={"LD_LIBRARY_PATH": str(tmp_path / libdir)},
                         capture_output=True, text=True, check=True).stdout
    assert out == "Hello, cernvm!\n"
    kind = subprocess.run(["file", "-b", str(tmp_path / "usr/bin/hello")], capture_output=True, text=True).stdout
    assert ("32-bit" if arch == "x86" else "64-bit") in kind


def test_show_and_query_commands(hello_repo):
    out = run_appbuild(hello_repo, "query").stdout
    assert "hello=cernvm@cvm:2/1.0-1-1[is: x86_64]" in out and "libhello=cernvm@cvm:2/1.0-1-1[is: x86]" in out
    show = run_appbuild(hello_repo, "show", "hello", "--deps", "--files").stdout
    assert "soname: ELF64/libhello.so.1(LIBHELLO_1.0 x86_64)" in show
    assert "/etc/hello.conf [config]" in show
    missing = run_appbuild(hello_repo, "show", "nosuchthing", check=False)
    assert missing.returncode == 1 and "no trove matches nosuchthing" in missing.stderr


# ----------------------------------------------------------------- versions


def write_recipe(ws: Path, name: str, body: str, files: dict[str, str] | None = None) -> Path:
    d = ws / "recipes" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "recipe.py").write_text(textwrap.dedent(body))
    for fname, content in (files or {}).items():
        (d / fname).write_text(content)
    return d


def versions(settings, name: str) -> list[str]:
    return run_appbuild(settings, "query", name, check=False).stdout.splitlines()


def test_version_bumps_and_skips(workspace):
    ws = workspace.workspace
    recipe = """\
        class Tiny(PackageRecipe):
            name = 'tiny'
            version = '%s'

            def setup(r):
                r.Create('%%(datadir)s/tiny/README', contents='tiny %%(version)s\\n')
        """
    path = write_recipe(ws, "tiny", recipe % "1.0")
    run_appbuild(workspace, "cook", "recipes/tiny")
    assert versions(workspace, "tiny") == ["tiny=cernvm@cvm:2/1.0-1-1[is: x86_64]"]

    again = run_appbuild(workspace, "cook", "recipes/tiny")
    assert "up to date" in again.stdout
    assert versions(workspace, "tiny") == ["tiny=cernvm@cvm:2/1.0-1-1[is: x86_64]"]

    path.joinpath("recipe.py").write_text(textwrap.dedent(recipe % "1.0") + "# a changed recipe\n")
    run_appbuild(workspace, "cook", "recipes/tiny")
    assert versions(workspace, "tiny")[-1] == "tiny=cernvm@cvm:2/1.0-2-1[is: x86_64]"

    run_appbuild(workspace, "cook", "recipes/tiny", "--force")
    assert versions(workspace, "tiny")[-1] == "tiny=cernvm@cvm:2/1.0-2-2[is: x86_64]"

    # the other flavor of the same source revision starts its own build count
    run_appbuild(workspace, "cook", "recipes/tiny", "--arch", "x86")
    assert "tiny=cernvm@cvm:2/1.0-2-1[is: x86]" in versions(workspace, "tiny")

    path.joinpath("recipe.py").write_text(textwrap.dedent(recipe % "1.1"))
    run_appbuild(workspace, "cook", "recipes/tiny")
    assert versions(workspace, "tiny")[-1] == "tiny=cernvm@cvm:2/1.1-1-1[is: x86_64]"


def test_new_build_requirement_version_triggers_a_rebuild(workspace):
    import shutil

    from tests.conftest import PROJECT

    ws = workspace.workspace
    for name in ("libhello", "hello"):
        shutil.copytree(PROJECT / "recipes" / name, ws / "recipes" / name)
    run_appbuild(workspace, "cook", "recipes/")
    assert versions(workspace, "hello") == ["hello=cernvm@cvm:2/1.0-1-1[is: x86_64]"]
    (ws / "recipes/libhello/hello.c").write_text((ws / "recipes/libhello/hello.c").read_text() + "\n/* changed */\n")
    out = run_appbuild(workspace, "cook", "recipes/").stdout
    assert "cooked libhello=cernvm@cvm:2/1.0-2-1" in out
    # hello's recipe did not change, but what it was built against did: a new build
    assert versions(workspace, "hello")[-1] == "hello=cernvm@cvm:2/1.0-1-2[is: x86_64]"


# ----------------------------------------------------------------- failures


def test_failing_build_prints_log_tail_keeps_log_and_commits_nothing(workspace):
    write_recipe(workspace.workspace, "broken", """\
        class Broken(PackageRecipe):
            name = 'broken'
            version = '1'

            def setup(r):
                r.Create('/usr/share/broken/x', contents='x')
                r.Run('echo compiling the broken thing; echo "oops: it broke" >&2; exit 3')
        """)
    proc = run_appbuild(workspace, "cook", "recipes/broken", check=False)
    assert proc.returncode == 1
    assert "recipe.py:7: Run" in proc.stderr and "exited with status 3" in proc.stderr
    assert "oops: it broke" in proc.stderr  # the tail of the log
    logs = list(workspace.logs.glob("broken-x86_64-*.log"))
    assert len(logs) == 1 and "compiling the broken thing" in logs[0].read_text()
    assert f"full log: {logs[0]}" in proc.stderr
    assert versions(workspace, "broken") == []
    assert not list((workspace.cache / "work").glob("broken-*"))


def test_soname_not_covered_by_build_requirements_is_reported(workspace):
    """zlib's headers are declared (zlib1g-dev), its library is not: the build root has
    it only because the toolchain needs it, so the link works by accident."""
    run_appbuild(workspace, "import", "deb", "zlib1g-dev")
    write_recipe(workspace.workspace, "zprog", """\
        class ZProg(PackageRecipe):
            name = 'zprog'
            version = '1'
            buildRequires = ['zlib1g-dev']

            def setup(r):
                r.addSource('z.c')
                r.Run('%(cc)s %(cflags)s %(ldflags)s -o zprog z.c -lz')
                r.Install('zprog', '%(bindir)s/')
        """, {"z.c": '#include <zlib.h>\n#include <stdio.h>\nint main(void){puts(zlibVersion());return 0;}\n'})
    proc = run_appbuild(workspace, "cook", "recipes/zprog")
    assert "warning: zprog: soname: ELF64/libz.so.1(" in proc.stderr
    assert "x86_64) (needed by /usr/bin/zprog) is not provided by a declared build requirement" in proc.stderr
    show = run_appbuild(workspace, "show", "zprog", "--deps").stdout
    assert "build requirements not declared" in show and "libz.so.1" in show


def test_build_requirement_cycle_is_named(workspace):
    for name, other in (("alpha", "beta"), ("beta", "gamma"), ("gamma", "alpha")):
        write_recipe(workspace.workspace, name, f"""\
            class R(PackageRecipe):
                name = '{name}'
                version = '1'
                buildRequires = ['{other}:devel']

                def setup(r):
                    r.Create('/usr/share/{name}', contents='x')
            """)
    proc = run_appbuild(workspace, "cook", "recipes/", check=False)
    assert proc.returncode == 1
    assert "build requirement cycle: alpha -> beta -> gamma -> alpha" in proc.stderr


def test_missing_build_requirement_names_it(workspace):
    write_recipe(workspace.workspace, "needy", """\
        class Needy(PackageRecipe):
            name = 'needy'
            version = '1'
            buildRequires = ['nothere:devel']

            def setup(r):
                r.Create('/usr/share/needy', contents='x')
        """)
    proc = run_appbuild(workspace, "cook", "recipes/needy", check=False)
    assert proc.returncode == 1
    assert "build requirement 'nothere:devel' is not in the repository for x86_64" in proc.stderr


# ----------------------------------------------------------------- the sandbox


def test_sandbox_has_no_network_and_writes_only_its_own_dirs(workspace, tmp_path):
    outside = tmp_path / "outside-target"
    outside.mkdir()
    recipe_dir = write_recipe(workspace.workspace, "probe", """\
        class Probe(PackageRecipe):
            name = 'probe'
            version = '1'

            def setup(r):
                r.addSource('probe.sh')
                r.Run('bash probe.sh %(destdir)s/usr/share/probe')
        """)
    (recipe_dir / "probe.sh").write_text(textwrap.dedent(f"""\
        mkdir -p "$1"
        awk -F: 'NR > 2 {{gsub(/ /, "", $1); print $1}}' /proc/net/dev | tr '\\n' ' ' > "$1/interfaces"
        (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null && echo connected > "$1/tcp" || echo refused > "$1/tcp"
        (getent hosts deb.debian.org >/dev/null && echo resolved || echo unresolved) > "$1/dns"
        (touch {outside}/escaped 2>/dev/null && echo wrote || echo readonly) > "$1/outside"
        (touch {recipe_dir}/x 2>/dev/null && echo wrote || echo readonly) > "$1/recipe-dir"
        """))
    run_appbuild(workspace, "cook", "recipes/probe")
    repo = open_repo(workspace)
    trove = repo.get(repo.find_one("probe:data", arch="x86_64"))
    got = {f.path.rsplit("/", 1)[1]: repo.store.read(f.sha256).decode().strip() for f in trove.files}
    assert got["tcp"] == "refused" and got["dns"] == "unresolved"
    assert got["interfaces"] == "lo"  # a network namespace of its own: loopback only
    assert got["outside"] == "readonly" and not (outside / "escaped").exists()
    assert got["recipe-dir"] == "readonly" and not (recipe_dir / "x").exists()


def test_ctrl_c_stops_the_build_and_commits_nothing(workspace):
    sleep = f"300.{os.getpid()}"  # this test's own: other test runs on the machine may sleep too
    write_recipe(workspace.workspace, "slow", """\
        class Slow(PackageRecipe):
            name = 'slow'
            version = '1'

            def setup(r):
                r.Create('/usr/share/slow/a', contents='a')
                r.Run('echo started; sleep SECONDS')
        """.replace("SECONDS", sleep))
    proc = subprocess.Popen(
        [os.path.join(os.path.dirname(os.sys.executable), "appbuild"), "cook", "recipes/slow", "-v"],
        env=env_for(workspace), cwd=workspace.workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=sigint_as_from_a_terminal,
    )
    deadline = time.monotonic() + 60
    line = ""
    while line.strip() != "| started" and time.monotonic() < deadline:
        line = proc.stdout.readline()
    assert line.strip() == "| started"  # the command's own output: it is running
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err
    assert versions(workspace, "slow") == []
    assert not list((workspace.cache / "work").glob("slow-*"))
    leftover = subprocess.run(["pgrep", "-f", f"sleep {sleep}"], capture_output=True, text=True).stdout
    assert leftover.strip() == ""


def test_the_build_log_names_recipe_lines_the_same_on_every_machine(tmp_path):
    """Issue 17, point 5: a cook's log, whose hash is in its trove, must not name where the
    workspace happened to be (a worker places the recipe elsewhere)."""
    from appbuilder.cook.cook import portable_where

    for top in (tmp_path / "a", tmp_path / "b" / "c"):
        ws = top / "ws"
        assert portable_where(f"{ws}/recipes/hello/recipe.py:7", ws / "recipes" / "hello", ws) == "hello/recipe.py:7"
        assert portable_where(f"{ws}/recipes/lib/base.py:12", ws / "recipes" / "hello", ws) == "recipes/lib/base.py:12"
        # a recipe outside the workspace: named from its directory too
        assert portable_where(f"{top}/x/hello/recipe.py:3", top / "x" / "hello", ws) == "hello/recipe.py:3"
    assert portable_where("<string>:1", tmp_path, tmp_path) == "<string>:1"
    assert portable_where("/elsewhere/file.py:9", tmp_path / "r", tmp_path / "w") == "/elsewhere/file.py:9"
