"""Hermetic cooks, tried as an attacker would: hostile build commands and hostile
``make install`` steps, cooked as root and as an unprivileged user, through the real
command line. The host stays as it was (a canary directory with a file, a mode and a
subdirectory) and nothing of it is packaged; build commands run without capabilities in
a root made from the repository; what is not declared is not there; time limits,
signals and kill -9 leave nothing behind."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import stat
import subprocess
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from appbuilder.cli.common import open_repo
from appbuilder.core.settings import Settings
from tests.conftest import (
    PROJECT,
    TOOLCHAIN,
    AsUser,
    env_for,
    make_settings,
    new_workspace,
    run_appbuild,
    seed_repository,
)

SECRET = "appbuild-host-secret-7f3a"
HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------- set-up


class Host:
    """Things on the host a build must neither see nor change."""

    def __init__(self, root: Path):
        self.canary = root / "canary"
        (self.canary / "sub").mkdir(parents=True)
        (self.canary / "file").write_text(SECRET + "\n")
        (self.canary / "file").chmod(0o640)
        (self.canary / "sub" / "inner").write_text("inner\n")
        self.secret = self.canary / "file"
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, tuple]:
        seen = {}
        for dirpath, dirnames, filenames in os.walk(self.canary):
            for name in sorted(dirnames + filenames):
                p = Path(dirpath, name)
                st = p.lstat()
                content = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
                seen[str(p.relative_to(self.canary))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), content)
        return seen

    def unchanged(self) -> bool:
        return self.snapshot() == self.before


@dataclasses.dataclass
class Cooking:
    """A scratch workspace, its repository holding the toolchain, and who cooks in it."""

    settings: Settings
    host: Host
    user: str | None  # None: the tests' own user (root here)
    as_user: AsUser

    def appbuild(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        if self.user is None:
            return run_appbuild(self.settings, *args, check=check)
        self.as_user.give(self.settings.workspace)  # recipes the tests just wrote
        return self.as_user.appbuild(self.settings, *args, check=check)


@pytest.fixture(params=["as root", "as a user"])
def cooking(request, as_user, toolchain_repo, shared_cache, tmp_path):
    """Cook as root (how the README, CI and the nightly run it) and as an unprivileged user."""
    if request.param == "as root":
        if os.geteuid() != 0:
            pytest.skip("the tests do not run as root")
        ws = new_workspace(tmp_path)
        s = seed_repository(make_settings(tmp_path, workspace=ws, cache=shared_cache), toolchain_repo)
        yield Cooking(s, Host(tmp_path), None, as_user)
        return
    base = as_user.home()
    ws = new_workspace(base)
    s = seed_repository(make_settings(base, workspace=ws, cache=base / "cache"), toolchain_repo)
    host = Host(base)
    as_user.give(s.repository)
    as_user.give(ws)
    yield Cooking(s, host, as_user.user or None, as_user)
    subprocess.run(["rm", "-rf", str(base)], check=False)


def recipe(s, name: str, setup: str, *, files: dict[str, str | bytes] | None = None, attrs: str = "") -> Path:
    d = s.workspace / "recipes" / name
    d.mkdir(parents=True, exist_ok=True)
    body = textwrap.indent(textwrap.dedent(setup).strip(), " " * 8)
    extra = textwrap.indent(textwrap.dedent(attrs).strip(), " " * 4)
    (d / "recipe.py").write_text(f"class R(PackageRecipe):\n    name = '{name}'\n    version = '1'\n"
                                 f"{extra}\n\n    def setup(r):\n{body}\n")
    for fname, content in (files or {}).items():
        (d / fname).write_bytes(content if isinstance(content, bytes) else content.encode())
    return d


def packaged(s, name: str, arch: str = "x86_64") -> dict[str, str]:
    """path -> content (or '-> target' for links) of every file of *name*'s components."""
    repo = open_repo(s)
    pkg = repo.get(repo.find_one(name, arch=arch))
    found = {}
    for member in pkg.members:
        for f in repo.get(member).files:
            if f.type == "file":
                found[f.path] = repo.store.read(f.sha256).decode(errors="replace")
            elif f.type == "symlink":
                found[f.path] = f"-> {f.target}"
    return found


# ----------------------------------------------------------------- build commands are confined


ESCAPE_C = (HERE / "data" / "escape.c").read_text()


@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_build_commands_have_no_privilege_and_see_nothing_of_the_host(cooking, arch):
    s, host = cooking.settings, cooking.host
    marker = Path("/tmp") / f"appbuild-host-marker-{os.getpid()}"
    marker.write_text(SECRET)
    try:
        recipe(s, "probe", """
            r.addSource('escape.c')
            r.addSource('probe.sh')
            r.Run('%(cc)s %(cflags)s -o escape escape.c')
            r.Run('sh probe.sh %(destdir)s/usr/share/probe')
            """, files={"escape.c": ESCAPE_C, "probe.sh": textwrap.dedent(f"""\
                set -u
                out=$1; mkdir -p "$out"
                ./escape {os.getpid()} > "$out/escape" 2>&1
                grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status > "$out/status"
                id -u > "$out/uid"
                for p in /root /home /etc/shadow {host.secret} {host.canary} {s.repository} {s.cache} \\
                         {s.workspace}/recipes {marker} {PROJECT}; do
                    if [ -e "$p" ]; then echo "visible $p"; else echo "absent $p"; fi
                done > "$out/visible"
                cat {host.secret} /etc/shadow {marker} > "$out/loot" 2>/dev/null || true
                cp -r /root /home {host.canary} "$out/" 2>/dev/null || true
                (echo pwned > {host.secret}) 2>/dev/null && echo wrote > "$out/write" || echo refused > "$out/write"
                (chmod 4777 {host.secret}) 2>/dev/null && echo chmod >> "$out/write" || echo refused >> "$out/write"
                (echo x > /usr/bin/planted) 2>/dev/null && echo root-writable > "$out/rootfs" || echo read-only > "$out/rootfs"
                ls /proc | grep -c '^[0-9]' > "$out/processes"
                [ -e /proc/{os.getpid()} ] && echo visible > "$out/pytest" || echo absent > "$out/pytest"
                """)})
        cooking.appbuild("cook", "recipes/probe", "--arch", arch)
    finally:
        marker.unlink()
    got = packaged(s, "probe", arch)
    escape = got["/usr/share/probe/escape"]
    lines = escape.strip().splitlines()
    assert len(lines) == 22 and all(": refused (" in line for line in lines), escape
    status = dict(line.split(":\t") for line in got["/usr/share/probe/status"].strip().splitlines())
    assert all(int(status[k], 16) == 0 for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")), status
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    assert got["/usr/share/probe/uid"].strip() == "0"  # uid 0 of its own namespace: the cooking user outside
    assert all(line.startswith("absent ") for line in got["/usr/share/probe/visible"].splitlines()), \
        got["/usr/share/probe/visible"]
    assert SECRET not in "".join(got.values())
    assert got["/usr/share/probe/write"].split() == ["refused", "refused"]
    assert got["/usr/share/probe/rootfs"].strip() == "read-only"
    # its own PID namespace: only the build's few processes, none of the host's
    assert int(got["/usr/share/probe/processes"]) <= 8 and got["/usr/share/probe/pytest"].strip() == "absent"
    # nothing of the host was copied in: only what the probe wrote, and an empty loot
    names = ("escape", "loot", "processes", "pytest", "rootfs", "status", "uid", "visible", "write")
    assert sorted(got) == [f"/usr/share/probe/{n}" for n in names]
    assert got["/usr/share/probe/loot"] == ""
    assert host.unchanged()


def test_the_build_root_is_the_toolchain_group_not_the_host(cooking):
    """The compiler a cook runs is the toolchain trove's file, byte for byte; the trove records
    the toolchain version, and `show` prints it."""
    s = cooking.settings
    recipe(s, "which", """
        r.Run('mkdir -p %(destdir)s/usr/share/which && sha256sum $(readlink -f $(command -v gcc)) /usr/bin/make '
              '| cut -d" " -f1 > %(destdir)s/usr/share/which/sums')
        """)
    cooking.appbuild("cook", "recipes/which")
    repo = open_repo(s)
    gcc, make = packaged(s, "which")["/usr/share/which/sums"].split()
    trove_files = {f.sha256: f.path for n in ("gcc-12:deb", "make:deb")
                   for f in repo.get(repo.find_one(n, arch="x86_64")).files if f.type == "file"}
    assert trove_files.get(gcc) == "/usr/bin/x86_64-linux-gnu-gcc-12"
    assert trove_files.get(make) == "/usr/bin/make"
    toolchain = repo.find_one(TOOLCHAIN, arch="x86_64")
    assert repo.get(repo.find_one("which", arch="x86_64")).info["toolchain"] == str(toolchain)
    assert f"toolchain: {toolchain}" in cooking.appbuild("show", "which").stdout


# ----------------------------------------------------------------- file actions stay inside


ATTACKS = {
    # a make install that plants a link, then an ordinary file action through it
    "remove": ("r.Run('mkdir -p %(destdir)s/usr && ln -s {canary} %(destdir)s/usr/share')\n"
               "r.Remove('%(datadir)s/sub', recursive=True)", "/usr/share"),
    "setmodes": ("r.Run('mkdir -p %(destdir)s/usr && ln -s {canary} %(destdir)s/usr/bin')\n"
                 "r.SetModes('%(bindir)s/file', mode=0o4777)", "/usr/bin"),
    "create": ("r.Run('mkdir -p %(destdir)s && ln -s {canary} %(destdir)s/etc')\n"
               "r.Create('%(sysconfdir)s/file', contents='pwned')", "/etc"),
    "install": ("r.Run('mkdir -p %(destdir)s/usr/share && ln -s {canary}/sub %(destdir)s/usr/share/doc && touch x')\n"
                "r.Install('x', '%(datadir)s/doc/inner')", "/usr/share/doc"),
    "move": ("r.Run('mkdir -p %(destdir)s/a && touch %(destdir)s/a/x && ln -s {canary} %(destdir)s/b')\n"
             "r.Move('/a/x', '/b/file')", "/b"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_planted_symlink_stops_file_actions_and_changes_nothing_outside(cooking, attack):
    s, host = cooking.settings, cooking.host
    setup, link = ATTACKS[attack]
    recipe(s, f"evil-{attack}", setup.format(canary=host.canary))
    proc = cooking.appbuild("cook", f"recipes/evil-{attack}", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{link} is a symlink leading outside the install root" in proc.stderr, proc.stderr
    assert host.unchanged()


def test_a_source_linked_to_a_host_file_is_packaged_as_a_link_not_its_content(cooking):
    s, host = cooking.settings, cooking.host
    recipe(s, "leak", f"""
        r.Run('ln -s {host.secret} leak && ln -s /etc/shadow shadow')
        r.Install('leak', '%(datadir)s/leak/')
        r.Install('shadow', '%(datadir)s/leak/')
        """)
    cooking.appbuild("cook", "recipes/leak")
    got = packaged(s, "leak")
    assert got == {"/usr/share/leak/leak": f"-> {host.secret}", "/usr/share/leak/shadow": "-> /etc/shadow"}
    assert host.unchanged()


# ----------------------------------------------------------------- what is not declared is not there


def test_an_undeclared_command_fails_naming_it_and_the_package_to_import(cook_workspace):
    s = cook_workspace
    recipe(s, "needs-python", "r.Run('python3 -c \"print(1)\" > out')")
    proc = run_appbuild(s, "cook", "recipes/needs-python", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "the build needs the command 'python3', which is not in its build root" in proc.stderr
    assert "nothing in the repository provides it" in proc.stderr
    # the machine's own dpkg database names the Debian package that has it
    owner = subprocess.run(["dpkg-query", "-S", "/usr/bin/python3"], capture_output=True, text=True).stdout
    if owner:
        assert f"appbuild import deb {owner.split(':')[0]}" in proc.stderr


def test_an_undeclared_header_names_the_trove_and_the_buildrequires_line(hello_repo, tmp_path):
    s = seed_copy(hello_repo, tmp_path)
    compile_it = ("r.Run('printf \"#include <hello.h>\\\\nint main(void){return 0;}\\\\n\" > u.c && %(cc)s -c u.c "
                  "&& mkdir -p %(destdir)s/usr/share && cp u.o %(destdir)s/usr/share/')")
    recipe(s, "uses-hello", compile_it)
    proc = run_appbuild(s, "cook", "recipes/uses-hello", check=False)
    assert proc.returncode == 1
    assert "the build needs the header 'hello.h', which is not in its build root: libhello:devel provides it" \
        in proc.stderr
    assert f"add to {s.workspace / 'recipes/uses-hello/recipe.py'}: buildRequires = ['libhello:devel']" in proc.stderr
    recipe(s, "uses-hello", compile_it, attrs="buildRequires = ['libhello:devel']")  # declared, it builds
    assert "cooked uses-hello=" in run_appbuild(s, "cook", "recipes/uses-hello").stdout


def seed_copy(settings, tmp_path):
    """A workspace of our own over a copy of *settings*' repository."""
    ws = new_workspace(tmp_path)
    return seed_repository(make_settings(tmp_path, workspace=ws, cache=settings.cache), settings.repository)


# ----------------------------------------------------------------- bounded


def sandbox_processes(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def test_a_command_past_its_time_limit_is_killed_with_everything_it_started(cook_workspace):
    s = cook_workspace
    recipe(s, "slowpoke", "r.Run('(sleep 73.125 &) ; sleep 71.5')", attrs="buildTimeout = 3")
    start = time.monotonic()
    proc = run_appbuild(s, "cook", "recipes/slowpoke", check=False)
    assert proc.returncode == 1 and time.monotonic() - start < 60
    assert "passed the time limit of 3 s for one build command" in proc.stderr
    time.sleep(0.5)
    assert sandbox_processes("sleep 7[13]") == []
    assert not list((s.cache / "work").glob("slowpoke-*"))


def test_the_configured_time_limit_applies_without_a_recipe_setting(cook_workspace):
    s = cook_workspace
    config = s.workspace / "repo" / "config.yaml"
    config.write_text(config.read_text() + "cook:\n  command_timeout: 2\n")
    recipe(s, "slowcfg", "r.Run('sleep 67.25')")
    proc = run_appbuild(s, "cook", "recipes/slowcfg", check=False)
    assert proc.returncode == 1 and "passed the time limit of 2 s" in proc.stderr
    assert sandbox_processes("sleep 67.25") == []


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_killing_appbuild_leaves_no_process_and_the_next_run_sweeps(cook_workspace, how):
    s = cook_workspace
    tag = f"{59 + how / 100:.2f}"
    recipe(s, "victim", f"r.Run('echo started; sleep {tag}')")
    proc = subprocess.Popen([str(Path(os.sys.executable).parent / "appbuild"), "cook", "recipes/victim", "-v"],
                            env=env_for(s), cwd=s.workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    line = ""
    while line.strip() != "| started" and time.monotonic() < deadline:
        line = proc.stdout.readline()
    assert line.strip() == "| started"
    assert sandbox_processes(f"sleep {tag}")
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while sandbox_processes(f"sleep {tag}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandbox_processes(f"sleep {tag}") == []
    left = list((s.cache / "work").glob("victim-*"))
    if how == signal.SIGTERM:
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
        assert left == []  # cleaned up on the way out
    else:
        assert len(left) == 1  # kill -9 left its work directory ...
        recipe(s, "other", "r.Create('/usr/share/other', contents='x')")
        run_appbuild(s, "cook", "recipes/other")
        assert not left[0].exists()  # ... which the next run swept
    assert open_repo(s).versions("victim") == []


def test_an_archive_expanding_past_the_limit_is_refused(cook_workspace):
    s = cook_workspace
    config = s.workspace / "repo" / "config.yaml"
    config.write_text(config.read_text() + "cook:\n  max_unpacked_size: 64K\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("bomb-1/zeros")
        info.size = 1 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    recipe(s, "bomb", "r.addArchive('bomb.tar.gz')", files={"bomb.tar.gz": buf.getvalue()})
    proc = run_appbuild(s, "cook", "recipes/bomb", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "bomb.tar.gz expands to 1,048,576 bytes, more than the limit of 65,536" in proc.stderr
    assert len(buf.getvalue()) < 65536  # the archive itself is small


# ----------------------------------------------------------------- the toolchain is an input


def test_a_new_toolchain_version_cooks_again(cook_workspace):
    s = cook_workspace
    recipe(s, "plain", "r.Run('mkdir -p %(destdir)s/usr/share && echo hi > %(destdir)s/usr/share/plain')")
    first = run_appbuild(s, "cook", "recipes/plain").stdout
    assert "cooked plain=" in first
    assert "is up to date" in run_appbuild(s, "cook", "recipes/plain").stdout
    group = s.workspace / "groups" / f"{TOOLCHAIN}.py"
    group.write_text(group.read_text().replace("'/usr/bin/cc': 'gcc',", "'/usr/bin/cc': 'gcc', '/usr/bin/CC': 'g++',"))
    again = run_appbuild(s, "cook", "recipes/plain").stdout
    assert "cooked plain=cernvm@cvm:2/1-1-2" in again  # same recipe, new toolchain: a new build
    repo = open_repo(s)
    toolchains = [str(n) for n in repo.versions(TOOLCHAIN)]
    assert repo.get(repo.find_one("plain", arch="x86_64")).info["toolchain"] == toolchains[-1]
    assert len(toolchains) == 2


def test_bad_file_names_in_the_install_root_are_refused_with_the_name_escaped(cook_workspace):
    s = cook_workspace
    recipe(s, "badnames", r"""
        r.Run("mkdir -p %(destdir)s/usr/share && printf x > \"%(destdir)s/usr/share/$(printf 'bad\\377\\nname')\"")
        """)
    proc = run_appbuild(s, "cook", "recipes/badnames", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "/usr/share/bad\\xff\\nname" in proc.stderr
