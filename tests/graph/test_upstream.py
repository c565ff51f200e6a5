"""Top-down resolution against upstream indexes (graph/upstream.py, cook/topdown.py).

Debian cases use the real bookworm index of the machine's apt sources (Packages and
Contents, verified by appbuilder.upstream.debindex); the rich-dependency logic of RPM
is checked on a small in-memory index implementing the UpstreamIndex protocol (real
rpm-md repositories are covered by tests/graph/test_upstream_el.py). The end-to-end
tests run the real command line in a scratch workspace: plan, import, commit.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from appbuilder.graph.closure import Closure
from appbuilder.graph.upstream import UpstreamResolver, policy_name
from appbuilder.repository.repo import Repository
from appbuilder.upstream.index import IndexPackage, open_sources
from appbuilder.upstream.relations import parse_rpm
from tests.conftest import make_settings, run_appbuild

GROUP = "group-test"


@pytest.fixture(scope="module")
def debian(tmp_path_factory, shared_cache):
    """The Debian index for x86_64 (updated once: Packages and Contents)."""
    s = make_settings(tmp_path_factory.mktemp("upstream"), cache=shared_cache)
    return open_sources(s, "x86_64", names=["debian"], update=True)[0]


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository(tmp_path / "repo", "test@t:1")


def plan_for(indexes, repo, names, *, relations=True, base="", wanted=None):
    resolver = UpstreamResolver(indexes, relations=relations, base=base)
    wanted = [(n, "test") for n in names] if wanted is None else wanted
    return resolver.plan(Closure(), repo, set(names), wanted=wanted, group=GROUP)


# ------------------------------------------------------------------ Debian, real index


def test_systemd_sysv_and_a_kernel_from_the_essential_set_up(debian, repo):
    plan = plan_for([debian], repo, ["systemd-sysv", "linux-image-amd64"], base="essential")
    assert not plan.unresolved and not plan.conflicts, (plan.unresolved, plan.conflicts)
    picks = {p.package.name: p for p in plan.picks}
    # what systemd-sysv and the kernel need, and Debian's Essential set (no package names it)
    for name in ("systemd", "libsystemd0", "libsystemd-shared", "dpkg", "base-files", "bash", "coreutils",
                 "libc6", "linux-base", "kmod", "udev", "initramfs-tools"):
        assert name in picks, name
    assert any(n.startswith("linux-image-6.") for n in picks)
    assert picks["dpkg"].reason.startswith("Essential: yes")
    assert picks["systemd"].relation == "systemd-sysv Pre-Depends: systemd"
    # apt's first alternative: initramfs-tools, not dracut, for "initramfs-tools | linux-initramfs-tool"
    assert "dracut" not in picks and "tiny-initramfs" not in picks
    rule = picks["initramfs-tools"].rule
    assert rule.startswith("first satisfiable alternative of linux-image-6.") and "Depends" in rule
    assert any("dracut" in c and "chose initramfs-tools" in c for c in plan.choices)
    # awk is virtual: gawk, mawk and original-awk provide it; mawk alone is Priority: required
    assert picks["mawk"].rule == "Debian Priority required before optional"
    # a real package before what Provides its name: libsystemd0, not libelogind0
    assert "libelogind0" not in picks
    # Recommends are not followed (systemd Recommends dbus and systemd-timesyncd)
    assert "dbus" not in picks and "systemd-timesyncd" not in picks
    for p in plan.picks:  # every pick says why and where from
        assert p.reason and p.relation and p.index.startswith("debian bookworm")
        assert p.reason.endswith(f"[{p.index}]")
        assert p.chain[0] == GROUP and p.chain[-1] == p.package.name
    assert len({p.package.name for p in plan.picks}) == len(plan.picks)
    assert 60 < len(plan.picks) < 200


def test_a_merged_usr_base_takes_usr_is_merged_not_usrmerge(debian, repo):
    names = ["systemd-sysv"]
    plain = {p.package.name for p in plan_for([debian], repo, names, base="essential").picks}
    assert "usrmerge" in plain and "perl" in plain  # apt's first alternative of init-system-helpers
    resolver = UpstreamResolver([debian], relations=True, base="essential")
    plan = resolver.plan(Closure(), repo, set(names), wanted=[("systemd-sysv", "test")], group=GROUP, merged_usr=True)
    picks = {p.package.name: p for p in plan.picks}
    assert "usr-is-merged" in picks and "usrmerge" not in picks and "perl" not in picks
    assert picks["usr-is-merged"].relation.startswith("mergedUsr: ")


def test_relations_off_takes_only_what_is_named(debian, repo):
    plan = plan_for([debian], repo, ["systemd-sysv"], relations=False)
    assert [p.package.name for p in plan.picks] == ["systemd-sysv"]


def test_a_soname_requirement_by_contents_and_policy_name(debian):
    assert policy_name("libsystemd.so.0") == "libsystemd0"
    assert policy_name("libgdbm_compat.so.4") == "libgdbm-compat4"
    assert policy_name("libssl.so.3") == "libssl3"
    # both libsystemd0 (/usr/lib/...) and libelogind0 (/lib/...) ship libsystemd.so.0: equal claims
    assert {"libsystemd0", "libelogind0"} <= {p.name for p in debian.by_soname("ELF64", "libsystemd.so.0")}


def test_equal_claims_on_a_soname_show_the_rule(debian, repo):
    """libsystemd0 (/usr/lib/x86_64-linux-gnu) and libelogind0 (/lib/x86_64-linux-gnu) both
    ship libsystemd.so.0, both optional: Debian policy's library name decides, and says so."""
    from appbuilder.graph.closure import Unresolved
    from appbuilder.repository.deps import Dependency

    need = Dependency.parse("soname: ELF64/libsystemd.so.0(LIBSYSTEMD_209 x86_64)")
    closure = Closure(unresolved=[Unresolved(need, ("prog", "prog:runtime"))])
    plan = UpstreamResolver([debian], relations=False).plan(closure, repo, set(), group=GROUP)
    [pick] = plan.picks
    assert pick.package.name == "libsystemd0"
    assert pick.rule == "named after the soname (Debian policy 8.1: libsystemd0)"
    assert pick.relation == f"prog:runtime requires {need}"
    assert pick.chain == (GROUP, "prog", "prog:runtime", "libsystemd0")
    [choice] = plan.choices
    assert "(libelogind0, libsystemd0); chose libsystemd0: rule: named after the soname" in choice


def test_a_missing_package_names_the_chain_and_every_index(debian, repo):
    plan = plan_for([debian], repo, ["no-such-package-h2"])
    assert not plan.picks
    [u] = plan.unresolved
    assert u.chain == (GROUP,)
    assert u.searched == ("the repository", debian.describe())
    text = str(u)
    assert text.startswith(f"no-such-package-h2 needed by {GROUP}: no provider in the repository, debian (")
    assert "\n" not in text


# ------------------------------------------------------------------ rich dependencies, in memory


class MemIndex:
    """A tiny rpm-md-like index in memory (the UpstreamIndex protocol, no downloads)."""

    kind = "rpm"
    arch = "x86_64"
    label = None

    def __init__(self, source: str, priority: int, packages: list[IndexPackage], files: dict[str, str] | None = None):
        self.source, self.priority, self.packages, self.files = source, priority, packages, files or {}

    def describe(self) -> str:
        return f"{self.source} (memory primary+filelists)"

    def by_name(self, name):
        return [p for p in self.packages if p.name == name]

    def by_virtual(self, name):
        return [(p, a) for p in self.packages for a in p.provides if a.name == name]

    def by_file(self, path):
        return [p for p in self.packages if self.files.get(path) == p.name]

    def by_soname(self, elf_class, soname):
        cap = soname + ("()(64bit)" if elf_class == "ELF64" else "")
        return [p for p, _ in self.by_virtual(cap)]

    def essential(self):
        return []

    def fetch(self, packages, dest=None):  # pragma: no cover - planning only here
        raise AssertionError("no downloads in these tests")


def rpm(name, version="1.0-1", requires=(), provides=(), conflicts=(), source="el"):
    return IndexPackage(source=source, origin="memory primary", kind="rpm", name=name, version=version,
                        arch="x86_64", provides=tuple(parse_rpm(p) for p in provides),
                        depends=tuple(parse_rpm(r) for r in requires),
                        conflicts=tuple(parse_rpm(c) for c in conflicts))


def el_index(priority=20, extra=()):
    packages = [
        rpm("el-daemon", requires=["/usr/bin/sh", "(libhello and el-setup)", "(el-extra if el-daemon-plugins)",
                                   "(el-a or el-b)", "(el-quiet unless el-loud else el-loud-helper)",
                                   "libfoo.so.1()(64bit)", "(el-tool with el-tool-feature)"]),
        rpm("el-sh"), rpm("el-setup"), rpm("el-extra"), rpm("el-daemon-plugins"), rpm("el-b"),
        rpm("el-quiet"), rpm("el-loud"), rpm("el-loud-helper"),
        rpm("libhello", "1.0-1"), rpm("libhello", "2.0-1"),
        rpm("libfoo", provides=["libfoo.so.1()(64bit)"]),
        rpm("el-tool-plain", provides=["el-tool"]),
        rpm("el-tool-full", provides=["el-tool", "el-tool-feature"]),
        *extra,
    ]
    return MemIndex("el", priority, packages, {"/usr/bin/sh": "el-sh"})


def test_rich_dependencies(repo):
    plan = plan_for([el_index()], repo, ["el-daemon"])
    assert not plan.unresolved and not plan.conflicts
    picks = {p.package.name: p for p in plan.picks}
    assert {"el-sh", "libhello", "el-setup", "el-b", "el-quiet", "libfoo", "el-tool-full"} <= set(picks)
    assert picks["el-sh"].relation == "el-daemon Requires: /usr/bin/sh"
    assert picks["libhello"].package.version == "2.0-1"  # the newest
    # "if" without its condition: nothing; "or": the first that can be had; "with": one package meeting both
    assert "el-extra" not in picks and "el-a" not in picks and "el-tool-plain" not in picks
    assert "el-loud" not in picks and "el-loud-helper" not in picks
    assert any("first satisfiable alternative of a rich 'or'" in c for c in plan.choices)


def test_rich_condition_met_later_and_else(repo):
    plan = plan_for([el_index()], repo, ["el-daemon", "el-daemon-plugins", "el-loud"])
    names = {p.package.name for p in plan.picks}
    assert "el-extra" in names  # its condition came true with a named package
    assert "el-loud-helper" in names and "el-quiet" not in names  # unless ... else


def test_versions_and_source_priority(repo):
    low = [rpm("want-old", requires=["libhello < 2"])]
    plan = plan_for([el_index(extra=low)], repo, ["want-old"])
    assert [(p.package.name, p.package.version) for p in plan.picks] == [("want-old", "1.0-1"), ("libhello", "1.0-1")]
    other = MemIndex("other", 10, [rpm("libhello", "3.0-1", source="other")])
    plan = plan_for([el_index(20), other], repo, ["libhello"])
    [pick] = plan.picks
    assert pick.package.source == "other"
    assert pick.rule == "source priority other(10) < el(20)"


def test_unresolvable_rich_requirement_names_the_chain(repo):
    broken = [rpm("el-broken", requires=["(el-missing and el-setup)"]), rpm("el-top", requires=["el-broken"])]
    plan = plan_for([el_index(extra=broken)], repo, ["el-top"])
    [u] = plan.unresolved
    assert u.text == "el-missing"
    assert str(u) == ("el-missing needed by group-test -> el-top -> el-broken: no provider in the repository, "
                      "el (memory primary+filelists)")


def test_conflicts_among_picks_name_both(repo):
    extra = [rpm("el-x", requires=["el-y"], conflicts=["el-y < 2"]), rpm("el-y", "1.5-1")]
    plan = plan_for([el_index(extra=extra)], repo, ["el-x"])
    assert plan.conflicts == ["el-x 1.0-1 conflicts with el-y < 2 (Conflicts/Breaks), but el-y 1.5-1 is in the group"]


# ------------------------------------------------------------------ end to end, real command line


def write_group(ws: Path, name: str, body: str, attrs: str) -> None:
    cls = "".join(p.capitalize() for p in name.split("-"))
    (ws / "groups" / f"{name}.py").write_text(
        f"class {cls}(GroupRecipe):\n    name = '{name}'\n    version = '1.0'\n"
        + textwrap.indent(textwrap.dedent(attrs), "    ")
        + "\n    def setup(r):\n" + textwrap.indent(textwrap.dedent(body), "        "))


def test_plan_import_and_commit(workspace, debian):
    s = workspace
    write_group(s.workspace, "group-popt", "r.add('libpopt0')\n",
                "resolveSources = ('debian',)\nupstreamRelations = True\n")
    plan = run_appbuild(s, "resolve", "group-popt", "--upstream").stdout
    lines = {line.split()[0]: line for line in plan.splitlines() if line and not line.startswith("PACKAGE")}
    assert "named by group-popt" in lines["libpopt0"] and " import " in lines["libpopt0"]
    assert "libpopt0 Depends: libc6 (>= 2." in lines["libc6"]
    assert "libc6 Depends: libgcc-s1" in lines["libgcc-s1"]
    assert "nothing was imported" in plan
    assert not Repository(s.repository, "x@y:1").versions("libpopt0")

    first = run_appbuild(s, "resolve", "group-popt")
    assert "importing" in first.stdout + first.stderr
    # on the source's label: never in place of a cooked trove of the same name elsewhere
    assert [n.version.label for n in Repository(s.repository, "x@y:1").versions("libpopt0")] == ["debian@cvm:2"]
    shown = run_appbuild(s, "show", "group-popt").stdout
    assert "libpopt0  (0 files, 0 B)  named" in shown
    # the C library comes in for libpopt0's soname; libgcc-s1 only by libc6's Depends, from the index
    assert "libpopt0:deb requires soname: ELF64/libc.so.6(" in shown
    assert "libgcc-s1  (0 files, 0 B)  libc6 Depends: libgcc-s1 [debian bookworm" in shown
    assert "resolve sources: debian" in shown
    again = run_appbuild(s, "resolve", "group-popt")
    assert "unchanged: the same closure as before" in again.stdout + again.stderr
    assert "importing" not in again.stdout + again.stderr
    nothing = run_appbuild(s, "resolve", "group-popt", "--upstream")
    assert "nothing to import" in nothing.stdout + nothing.stderr


def test_unresolvable_group_is_one_line(workspace, debian):
    s = workspace
    write_group(s.workspace, "group-nothing", "r.add('no-such-package-h2')\n", "resolveSources = ('debian',)\n")
    for args in (["resolve", "group-nothing"], ["resolve", "group-nothing", "--upstream"]):
        proc = run_appbuild(s, *args, check=False)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert errors == [(f"error: group-nothing (x86_64) cannot be resolved top-down: no-such-package-h2 needed "
                           f"by group-nothing: no provider in the repository, {debian.describe()}")]


@pytest.mark.parametrize("attrs, message", [
    ("resolveSources = 'debian'\n", "resolveSources must be a tuple of source names"),
    ("resolveSources = ('debian',)\nupstreamBase = 'minimal'\n", "upstreamBase must be '' or 'essential'"),
    ("upstreamRelations = True\n", "upstreamRelations and upstreamBase need resolveSources"),
    ("resolveSources = ('nosuch',)\n", "no source 'nosuch' in the sources: setting"),
])
def test_bad_switches_are_one_line_errors(workspace, attrs, message):
    write_group(workspace.workspace, "group-bad", "r.add('libpopt0')\n", attrs)
    proc = run_appbuild(workspace, "resolve", "group-bad", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert message in error
