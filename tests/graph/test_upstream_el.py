"""Top-down resolution against an rpm-md repository (issue 15, points 4 and 5): the EL-like
repository of ``tests/el_repo.py`` (built with rpmbuild and createrepo_c, repomd.xml signed),
configured as the ``el`` source, served over HTTP from 127.0.0.1 or read as a path.

* Planning (``appbuild resolve GROUP --upstream``) follows RPM Requires: file dependencies
  (``/usr/bin/sh``, ``/sbin/ldconfig``, ``Requires(pre)``), sonames, rich ``and`` and ``if``;
  every pick says why and from which index, and nothing is imported.
* Bad input: a requirement nothing provides names the chain and every index searched; two
  providers with equal claims show the rule that chose; a repomd.xml whose signature does
  not verify and a primary whose checksum fails are refused in one line.
* Resolving imports the picks as RPM capsules and records each member's reason.

The image of group-cernvm-el (the appliance's packages on the EL base, scriptlets run at
image time) is built in ``tests/store/test_cernvm_el.py``.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from appbuilder.cli.common import open_repo
from appbuilder.graph.groups import find_group
from tests.conftest import make_settings, new_workspace, run_appbuild
from tests.el_repo import OTHER_UID

GROUP = '''\
class {cls}(GroupRecipe):
    name = '{name}'
    version = '1.0'
    resolveSources = {sources!r}
    upstreamRelations = True

    def setup(r):
{adds}
'''


def el_workspace(tmp_path, shared_cache, sources: dict, groups: dict[str, list[str]],
                 resolve: tuple[str, ...] = ("el",)):
    """A scratch workspace whose `sources:` are *sources* and whose groups/ holds one group
    per entry of *groups* (name -> the packages it adds), resolving against *resolve*."""
    ws = new_workspace(tmp_path)
    with open(ws / "repo" / "config.yaml", "a") as f:
        f.write(yaml.safe_dump({"sources": sources}))
    for name, adds in groups.items():
        cls = "".join(part.capitalize() for part in name.split("-"))
        body = "\n".join(f"        r.add({a!r})" for a in adds)
        (ws / "groups" / f"{name}.py").write_text(GROUP.format(cls=cls, name=name, sources=resolve, adds=body))
    return make_settings(tmp_path, workspace=ws, cache=shared_cache)


def plan(settings, group: str, check: bool = True):
    return run_appbuild(settings, "resolve", group, "--upstream", "--arch", "x86_64", check=check, timeout=300)


def rows(stdout: str) -> dict[str, str]:
    """The plan's table: package -> its whole row."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^(\S+) +\S+ +\S+ +.*  (import|in repository)  .*$",
                                                          stdout, re.M)}


def one_line_error(proc) -> str:
    """The error of a failed command: exactly one ``error:`` line, no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# ------------------------------------------------------------------ the repository itself


def test_the_el_repository_is_signed_and_holds_what_the_tests_need(el_repo):
    repodata = el_repo.root / "repodata"
    gpgv = subprocess.run(["gpgv", "--keyring", str(el_repo.keyring), str(repodata / "repomd.xml.asc"),
                           str(repodata / "repomd.xml")], capture_output=True, text=True)
    assert gpgv.returncode == 0, gpgv.stderr
    assert {"el-setup", "el-filesystem", "el-glibc", "el-sh", "libhello", "el-daemon", "el-extra", "el-daemon-plugins",
            "el-fail", "el-hang", "el-pick", "el-backend-a", "el-backend-b", "el-needy", "el-orphan",
            "el-rival"} <= set(el_repo.packages)

    def query(name: str, *what: str) -> str:
        return subprocess.run(["rpm", "-qp", *what, str(el_repo.packages[name])], capture_output=True, text=True,
                              check=True).stdout

    daemon = query("el-daemon", "--requires")
    assert "(libhello and el-setup)" in daemon and "(el-extra if el-daemon-plugins)" in daemon
    assert "/usr/bin/sh" in daemon and "/usr/sbin/useradd" in daemon
    scripts = query("el-daemon", "--scripts", "--triggers")
    assert "useradd -r" in scripts and "chown appd:appd" in scripts and "triggerin scriptlet" in scripts
    glibc = query("el-glibc", "--provides")
    assert "libc.so.6()(64bit)" in glibc and "libc.so.6(GLIBC_2.34)(64bit)" in glibc
    assert "libhello.so.1()(64bit)" in query("libhello", "--provides")
    assert "/usr/bin/sh" in query("el-sh", "--list")
    # what the file dependencies need: primary lists bin and /etc paths, filelists the rest
    primary = el_repo.metadata(el_repo.root, "primary")
    assert primary.exists() and el_repo.metadata(el_repo.root, "filelists").exists()
    assert el_repo.build_seconds < 120, el_repo.build_seconds


# ------------------------------------------------------------------ planning


def test_plan_follows_rpm_requires_over_http(el_repo, el_http, tmp_path, shared_cache):
    s = el_workspace(tmp_path, shared_cache, {"el": el_repo.source(el_http.url)}, {"group-el-daemon": ["el-daemon"]})
    before = len(el_http.server.requests)
    proc = plan(s, "group-el-daemon")
    picks = rows(proc.stdout)
    assert set(picks) == {"el-daemon", "el-sh", "libhello", "el-setup", "el-glibc", "el-filesystem"}, proc.stdout
    index = f"el {el_http.url}/repodata primary"
    assert all(index in row and " import " in row for row in picks.values()), proc.stdout
    assert "named by group-el-daemon" in picks["el-daemon"]
    # file dependencies (also Requires(pre)), rich `and`, a library's scriptlet interpreter
    assert re.search(r"el-daemon Requires(\(pre\))?: /usr/bin/sh", picks["el-sh"]), picks["el-sh"]
    assert "el-daemon Requires: libhello" in picks["libhello"]
    assert "el-daemon Requires: el-setup" in picks["el-setup"] or "el-glibc Requires: el-setup" in picks["el-setup"]
    assert re.search(r"libhello Requires(\(pre\))?: (/sbin/ldconfig|libc\.so\.6)", picks["el-glibc"]), proc.stdout
    assert "el-glibc Requires: el-filesystem" in picks["el-filesystem"]
    # `(el-extra if el-daemon-plugins)`: the condition is false, so el-extra stays out
    assert "el-extra" not in proc.stdout
    assert "nothing was imported" in proc.stderr + proc.stdout
    assert any(r.endswith("/repodata/repomd.xml.asc") for r in el_http.server.requests[before:])
    assert not open_repo(s).names(), "a plan imports nothing"


def test_if_brings_el_extra_only_with_the_plugins(el_repo, tmp_path, shared_cache):
    s = el_workspace(tmp_path, shared_cache, {"el": el_repo.source()},
                     {"group-el-plugins": ["el-daemon", "el-daemon-plugins"]})
    picks = rows(plan(s, "group-el-plugins").stdout)
    assert "el-extra" in picks, picks
    assert "el-daemon Requires: (el-extra if el-daemon-plugins)" in picks["el-extra"] or \
        "el-daemon Requires: el-extra" in picks["el-extra"], picks["el-extra"]


def test_equal_claims_show_the_rule(el_repo, tmp_path, shared_cache):
    s = el_workspace(tmp_path, shared_cache, {"el": el_repo.source()}, {"group-el-pick": ["el-pick"]})
    proc = plan(s, "group-el-pick")
    picks = rows(proc.stdout)
    assert "el-backend-a" in picks and "el-backend-b" not in picks, proc.stdout
    assert "el-pick Requires: el-backend" in picks["el-backend-a"]
    assert "[rule: first by name]" in picks["el-backend-a"], picks["el-backend-a"]


def test_the_same_package_in_two_sources_goes_by_priority(el_repo, el_http, tmp_path, shared_cache):
    """The same repository as two sources (over HTTP, and as a path): the preferred source wins,
    and the plan says so."""
    sources = {"el": el_repo.source(el_http.url, priority=20), "el-copy": el_repo.source(priority=30)}
    s = el_workspace(tmp_path, shared_cache, sources, {"group-el-two": ["el-pick"]}, resolve=("el-copy", "el"))
    proc = plan(s, "group-el-two")
    picks = rows(proc.stdout)
    assert f"el {el_http.url}/repodata primary" in picks["el-pick"], proc.stdout
    assert "rule: source priority el(20) < el-copy(30)" in picks["el-backend-a"] or \
        "rule: source priority el(20) < el-copy(30)" in picks["el-pick"], proc.stdout


# ------------------------------------------------------------------ bad input: one line, naming what failed


def test_an_unresolvable_requirement_names_the_chain_and_every_index(el_repo, el_http, tmp_path, shared_cache):
    sources = {"el": el_repo.source(el_http.url, priority=20), "el-copy": el_repo.source(priority=30)}
    s = el_workspace(tmp_path, shared_cache, sources, {"group-el-needy": ["el-needy"]}, resolve=("el", "el-copy"))
    error = one_line_error(plan(s, "group-el-needy", check=False))
    assert "libmissing.so.3()(64bit) needed by group-el-needy -> el-needy -> el-orphan" in error, error
    assert "no provider in the repository" in error
    assert f"el ({el_http.url}/repodata primary" in error, error
    assert f"el-copy ({el_repo.root}/repodata primary" in error, error
    # a build stops the same way, before importing anything
    build = run_appbuild(s, "resolve", "group-el-needy", "--arch", "x86_64", check=False, timeout=300)
    assert "libmissing.so.3()(64bit) needed by group-el-needy -> el-needy -> el-orphan" in one_line_error(build)


def test_conflicting_picks_name_both_packages(el_repo, tmp_path, shared_cache):
    s = el_workspace(tmp_path, shared_cache, {"el": el_repo.source()},
                     {"group-el-rival": ["el-daemon", "el-daemon-plugins", "el-rival"]})
    error = one_line_error(plan(s, "group-el-rival", check=False))
    assert "el-rival" in error and "el-extra" in error and "conflict" in error, error


@pytest.mark.parametrize("how", ["untrusted key", "changed after signing", "unsigned"])
def test_a_repomd_whose_signature_fails_is_refused(el_repo, el_http, tmp_path, shared_cache, how):
    copy = el_repo.copy(tmp_path / "el-copy")
    repomd = copy / "repodata" / "repomd.xml"
    if how == "untrusted key":
        el_repo.sign(copy, uid=OTHER_UID)
    elif how == "changed after signing":
        repomd.write_text(repomd.read_text().replace("<revision>", "<revision>1", 1))
    else:
        (copy / "repodata" / "repomd.xml.asc").unlink()
    s = el_workspace(tmp_path, shared_cache, {"el": el_repo.source(copy)}, {"group-el-daemon": ["el-daemon"]})
    error = one_line_error(plan(s, "group-el-daemon", check=False))
    assert "repomd.xml" in error, error
    assert not open_repo(s).names()


def test_a_primary_whose_checksum_fails_is_refused(el_repo, tmp_path, shared_cache):
    copy = el_repo.copy(tmp_path / "el-copy")
    primary = el_repo.tamper_primary(copy)  # repomd.xml re-signed: only the checksum is wrong
    s = el_workspace(tmp_path, shared_cache, {"el": el_repo.source(copy)}, {"group-el-daemon": ["el-daemon"]})
    error = one_line_error(plan(s, "group-el-daemon", check=False))
    assert primary.name in error and "checksum" in error, error


def test_an_unknown_source_is_named(el_repo, tmp_path, shared_cache):
    s = el_workspace(tmp_path, shared_cache, {"el": el_repo.source()}, {"group-el-daemon": ["el-daemon"]},
                     resolve=("centos",))
    error = one_line_error(plan(s, "group-el-daemon", check=False))
    assert "centos" in error, error


# ------------------------------------------------------------------ importing


def test_resolving_imports_the_picks_as_rpm_capsules(el_repo, el_http, tmp_path, shared_cache):
    s = el_workspace(tmp_path, shared_cache, {"el": el_repo.source(el_http.url, label="el@cvm:9")},
                     {"group-el-daemon": ["el-daemon"]})
    proc = run_appbuild(s, "resolve", "group-el-daemon", "--arch", "x86_64", timeout=600)
    members = {line.split()[0]: line for line in proc.stdout.splitlines()[1:] if line.strip()}
    for name in ("el-daemon", "el-sh", "libhello", "el-setup", "el-glibc", "el-filesystem"):
        assert any(m.split(":")[0] == name for m in members), (name, proc.stdout)
    repo = open_repo(s)
    daemon = repo.get(repo.find_one("el-daemon", arch="x86_64"), with_files=False)
    assert str(daemon.version.label) == "el@cvm:9"
    assert daemon.info.get("capsule") == "rpm"
    # every member from upstream records why it came in and from which index
    group = repo.get(find_group(repo, "group-el-daemon", "x86_64"), with_files=False)
    upstream = group.info.get("upstream", {})
    wanted = {"el-daemon", "el-sh", "libhello", "el-setup", "el-glibc", "el-filesystem"}
    assert wanted <= set(upstream), sorted(upstream)
    assert all(f"el {el_http.url}/repodata primary" in u["index"] for u in upstream.values()), upstream
    assert upstream["el-sh"]["reason"] == "el-daemon Requires(pre): /usr/bin/sh", upstream["el-sh"]
    show = run_appbuild(s, "show", "group-el-daemon", "--arch", "x86_64").stdout
    assert "el-sh" in show and re.search(r"/usr/bin/sh", show), show
    # a second resolution finds everything in the repository: the same group version
    again = run_appbuild(s, "resolve", "group-el-daemon", "--arch", "x86_64", timeout=600)
    assert "unchanged" in again.stdout + again.stderr, again.stdout + again.stderr
