"""RPM capsules through the real command line: files and rpm-md repositories, mapped
dependencies, closures with cooked packages, versions, signatures, and a staged root
that stays RPM-managed (``rpm --root ROOT -qa`` / ``-V``)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from appbuilder.capsule.rpmdb import build_rpm_database
from appbuilder.cli.common import open_repo
from appbuilder.graph.closure import ClosureResolver
from appbuilder.repository.checkout import materialize
from appbuilder.repository.deps import Dependency
from tests.capsule.conftest import make_repo
from tests.conftest import component, run_appbuild
from tests.servers import StaticServer

D = Dependency.parse


def rpm_in(root, *args: str) -> subprocess.CompletedProcess:
    """rpm on a staged root; --dbpath because Debian's rpm keeps its own db in ~/.rpmdb."""
    return subprocess.run(["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", *args],
                          capture_output=True, text=True)


# ----------------------------------------------------------------- header → trove


def test_import_files_maps_header_files_and_dependencies(workspace, rpms):
    out = run_appbuild(workspace, "import", "rpm", str(rpms.lib64), str(rpms.lib32), str(rpms.greeter64),
                       str(rpms.greeter32), str(rpms.scripts)).stdout
    assert "imported libhello=cernvm@cvm:2/1.0-1-1-1[is: x86_64]" in out
    assert "imported libhello=cernvm@cvm:2/1.0-1-1-1[is: x86]" in out  # i686 → x86, same source count
    assert "imported greeter-scripts=cernvm@cvm:2/1.0-1-1-1[]" in out  # noarch → no flavor
    repo = open_repo(workspace)

    pkg = component(repo, "libhello", "x86_64")
    assert [m.name for m in pkg.members] == ["libhello:rpm"]  # one component with everything
    assert pkg.info["capsule"] == "rpm" and pkg.info["upstream_name"] == "libhello-1.0-1.x86_64"

    lib64 = component(repo, "libhello:rpm", "x86_64")
    assert D("soname: ELF64/libhello.so.1(LIBHELLO_1.0 x86_64)") in lib64.provides
    assert {Dependency("rpm", "libhello"), Dependency("rpm", "libhello(x86-64)")} <= lib64.provides
    reqs = {str(d) for d in lib64.requires}
    assert "soname: ELF64/libc.so.6(GLIBC_2.2.5 x86_64)" in reqs  # libc.so.6()(64bit) + (GLIBC_2.2.5)(64bit)
    assert "file: /sbin/ldconfig" in reqs  # %post -p /sbin/ldconfig
    assert "soname: ELF64/ld-linux-x86-64.so.2(x86_64)" in reqs  # rtld(GNU_HASH)
    assert "rpmlib: PayloadFilesHavePrefix" in reqs
    assert lib64.info["scripts"]["postin"]["interpreter"] == ["/sbin/ldconfig"]
    assert "libc.so.6()(64bit)" in lib64.info["upstream_requires"]
    assert lib64.info["dependency_notes"] == []  # rpmbuild's declarations agree with appbuild's ELF scan
    files = {f.path: f for f in lib64.files}
    so = files["/usr/lib64/libhello.so.1.0"]
    assert (so.type, so.mode, so.owner, so.group) == ("file", 0o755, "root", "root") and so.mtime > 0
    assert files["/usr/lib64/libhello.so.1"].target == "libhello.so.1.0"
    assert repo.store.read(lib64.info["rpm_header_blob"])[:4] == b"\xed\xab\xee\xdb"  # lead+header kept
    run_appbuild(workspace, "gc", "--grace", "0")
    assert repo.store.has(lib64.info["rpm_header_blob"])  # *_blob info keeps it through gc

    lib32 = component(repo, "libhello:rpm", "x86")
    assert D("soname: ELF32/libhello.so.1(LIBHELLO_1.0 x86)") in lib32.provides  # libhello.so.1 without (64bit)
    assert any(str(d).startswith("soname: ELF32/libc.so.6(") and "x86" in d.flags for d in lib32.requires)
    assert "/usr/lib/libhello.so.1.0" in {f.path for f in lib32.files}

    greeter = component(repo, "greeter:rpm", "x86_64")
    assert D("soname: ELF64/libhello.so.1(LIBHELLO_1.0 x86_64)") in greeter.requires
    assert greeter.info["elf"] == ["ELF64 x86_64"]

    scripts = component(repo, "greeter-scripts:rpm")
    assert scripts.flavor.arch is None
    assert {D("file: /bin/sh"), D("rpm: greeter")} <= scripts.requires
    assert "greeter >= 2.0" in scripts.info["upstream_requires"]  # the constraint, kept as text
    assert not any(d.cls == "rpm" and d.name.startswith("config(") for d in scripts.requires)  # self-provided
    sfiles = {f.path: f for f in scripts.files}
    assert sfiles["/etc/greeter.conf"].config and scripts.info["conffiles"] == ["/etc/greeter.conf"]
    assert sfiles["/usr/share/greeter/VERSION"].type == "hardlink"
    assert sfiles["/usr/share/greeter/VERSION"].target == "/usr/share/greeter/RELEASE"
    assert "/var/log/greeter.log" not in sfiles and scripts.info["ghosts"] == ["/var/log/greeter.log"]
    assert set(scripts.info["scripts"]) == {"prein", "postin"}
    assert "getent group greeter" in scripts.info["scripts"]["prein"]["body"]

    show = run_appbuild(workspace, "show", "greeter-scripts", "--deps", "--files").stdout
    assert "capsule: rpm" in show and "upstream requires (rpm):" in show and "greeter >= 2.0" in show
    assert "/etc/greeter.conf [config]" in show


def test_show_deps_reports_what_the_elf_scan_and_the_package_disagree_on(workspace, rpms):
    run_appbuild(workspace, "import", "rpm", str(rpms.manual))
    manual = component(open_repo(workspace), "greeter-manual:rpm", "x86_64")
    # the hand-written requirement is what the resolver sees ...
    assert D("soname: ELF64/libmissing.so.2(x86_64)") in manual.requires
    assert not any(d.name == "ELF64/libhello.so.1" for d in manual.requires)
    show = run_appbuild(workspace, "show", "greeter-manual", "--deps").stdout
    # ... and appbuild says what the files really need
    assert ("note: undeclared requirement: the ELF scan finds soname: ELF64/libhello.so.1(LIBHELLO_1.0 x86_64) "
            "needed (/usr/bin/greeter), the package does not require it") in show
    assert "note: declared requirement not found by the ELF scan: soname: ELF64/libmissing.so.2(x86_64)" in show


# ----------------------------------------------------------------- repositories and closures


def test_repo_only_closure_stages_an_rpm_managed_root(workspace, rpm_repo, tmp_path):
    # the repository has no glibc: without --allow-missing the closure is refused, naming the chain
    refused = run_appbuild(workspace, "import", "rpm", "--repo", str(rpm_repo), "--only", "greeter-scripts",
                           check=False)
    assert refused.returncode == 1
    assert "libc.so.6(GLIBC_2.34)(64bit) needed by greeter-scripts-1.0-1.noarch -> greeter-2.0-1.x86_64" in refused.stderr
    assert "nothing was imported" in refused.stderr
    assert open_repo(workspace).packages() == []

    proc = run_appbuild(workspace, "import", "rpm", "--repo", str(rpm_repo), "--only", "greeter-scripts",
                        "--allow-missing")
    imported = sorted(re.findall(r"^imported (\S+\[[^\]]*\])", proc.stdout, re.M))
    assert imported == ["greeter-scripts=cernvm@cvm:2/1.0-1-1-1[]", "greeter=cernvm@cvm:2/2.0-1-1-1[is: x86_64]",
                        "libhello=cernvm@cvm:2/1.0-1-1-1[is: x86_64]"]  # x86_64 preferred for a noarch root
    assert "importing with unresolved dependencies" in proc.stderr

    # appbuild's resolver picks the library RPM for the program's soname requirement
    repo = open_repo(workspace)
    closure = ClosureResolver(repo, "x86_64").resolve([repo.find_one("greeter-scripts")])
    names = {n.name for n in closure.members}
    assert {"greeter-scripts", "greeter-scripts:rpm", "greeter:rpm", "libhello:rpm"} == names
    edge = [(a.name, b.name, str(r)) for a, b, r in closure.requirement_edges if b.name == "libhello:rpm"]
    assert edge == [("greeter:rpm", "libhello:rpm", "soname: ELF64/libhello.so.1(LIBHELLO_1.0 x86_64)")]
    unresolved = {str(u.requirement) for u in closure.unresolved}
    assert all(("libc.so.6" in u or "ld-linux" in u or u in ("file: /bin/sh", "file: /sbin/ldconfig"))
               for u in unresolved)  # only the base system the repository lacks

    # staged, the root is RPM-managed: rpm lists the packages and verifies every file
    root = tmp_path / "root"
    troves = [repo.get(n) for n in closure.members if ":" in n.name]  # components, with their files
    materialize(repo.store, troves, root)
    assert build_rpm_database(repo.store, troves, root) == 3
    qa = rpm_in(root, "-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n")
    assert sorted(qa.stdout.split()) == ["greeter-2.0-1.x86_64", "greeter-scripts-1.0-1.noarch",
                                         "libhello-1.0-1.x86_64"]
    verify = rpm_in(root, "-Va", "--nodeps")
    assert verify.returncode == 0 and verify.stdout == "", verify.stdout + verify.stderr
    (root / "etc/greeter.conf").write_text("changed\n")
    assert "/etc/greeter.conf" in rpm_in(root, "-Va", "--nodeps").stdout  # -V really checks
    run = subprocess.run([str(root / "usr/bin/greeter"), "SL"], env={"LD_LIBRARY_PATH": str(root / "usr/lib64")},
                         capture_output=True, text=True)
    assert run.stdout == "Hello, SL!\n"


def test_repo_import_of_everything_and_the_i686_root(workspace, rpm_repo, tmp_path):
    out = run_appbuild(workspace, "import", "rpm", "--repo", str(rpm_repo)).stdout
    assert len(out.splitlines()) == 7
    again = run_appbuild(workspace, "import", "rpm", "--repo", str(rpm_repo)).stdout.splitlines()
    assert len(again) == 7 and all("already imported" in line for line in again)  # decided from primary.xml

    repo = open_repo(workspace)
    closure = ClosureResolver(repo, "x86").resolve([repo.find_one("greeter[is: x86]")])
    assert {n.name: n.flavor.arch for n in closure.members if n.name.endswith(":rpm")} == {
        "greeter:rpm": "x86", "libhello:rpm": "x86"}
    root = tmp_path / "root32"
    troves = [repo.get(n) for n in closure.members if ":" in n.name]  # components, with their files
    materialize(repo.store, troves, root)
    build_rpm_database(repo.store, troves, root)
    assert sorted(rpm_in(root, "-qa").stdout.split()) == ["greeter-2.0-1.i686", "libhello-1.0-1.i686"]
    verify = rpm_in(root, "-Va", "--nodeps")
    assert verify.returncode == 0 and verify.stdout == "", verify.stdout + verify.stderr
    run = subprocess.run([str(root / "usr/bin/greeter")], env={"LD_LIBRARY_PATH": str(root / "usr/lib")},
                         capture_output=True, text=True)
    assert run.stdout == "Hello, world!\n"


def test_cooked_and_rpm_packages_satisfy_each_other(hello_repo, rpms, tmp_path):
    import dataclasses

    settings = dataclasses.replace(hello_repo, repository=tmp_path / "repo")
    shutil.copytree(hello_repo.repository, settings.repository)
    # an RPM program on top of the cooked libhello
    run_appbuild(settings, "import", "rpm", str(rpms.greeter64))
    repo = open_repo(settings)
    closure = ClosureResolver(repo, "x86_64").resolve([repo.find_one("greeter", arch="x86_64")])
    chosen = [(b.name, str(r)) for a, b, r in closure.requirement_edges if a.name == "greeter:rpm"]
    assert ("libhello:lib", "soname: ELF64/libhello.so.1(LIBHELLO_1.0 x86_64)") in chosen

    # and the cooked program against the RPM library
    run_appbuild(settings, "import", "rpm", str(rpms.lib64))
    hello = component(repo, "hello:runtime", "x86_64")
    need = next(d for d in hello.requires if d.name == "ELF64/libhello.so.1")
    assert repo.find_one("libhello:rpm", arch="x86_64") in repo.providers(need)
    closure = ClosureResolver(repo, "x86_64").resolve([hello.nvf])
    picked = [b.name for a, b, r in closure.requirement_edges if r == need]
    assert picked == ["libhello:rpm"]  # the newest provider
    assert any(c.requirement == need and set(c.candidates) == {"libhello:lib", "libhello:rpm"} for c in closure.choices)


def test_rpmdb_is_built_by_an_unprivileged_user(workspace, rpms, as_user):
    if as_user.user is None:
        pytest.skip("already unprivileged: the other staging tests cover it")
    run_appbuild(workspace, "import", "rpm", str(rpms.lib64), str(rpms.greeter64))
    # a copy of the repository the user owns, outside pytest's private (0700) tmp
    base = as_user.home("appbuild-rootless-")
    try:
        shutil.copytree(workspace.repository, base / "repo")
        as_user.give(base)
        script = (
            f"import sys; sys.path.insert(0, {str(as_user.runtime)!r})\n"
            "from pathlib import Path\n"
            "from appbuilder.repository.repo import Repository\n"
            "from appbuilder.repository.checkout import materialize\n"
            "from appbuilder.capsule.rpmdb import build_rpm_database\n"
            f"r = Repository(Path('{base}/repo'), 'cernvm@cvm:2')\n"
            "t = [r.get(r.find_one(n, arch='x86_64')) for n in ('libhello:rpm', 'greeter:rpm')]\n"
            f"materialize(r.store, t, Path('{base}/root'))\n"
            f"print(build_rpm_database(r.store, t, Path('{base}/root')))\n"
        )
        proc = subprocess.run(["runuser", "-u", as_user.user, "--", "/usr/bin/python3", "-c", script],
                              capture_output=True, text=True, cwd=base)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "2"
        db = base / "root/var/lib/rpm/rpmdb.sqlite"
        assert db.stat().st_uid != 0  # written by the user, not root
        assert sorted(rpm_in(base / "root", "-qa").stdout.split()) == ["greeter-2.0-1.x86_64", "libhello-1.0-1.x86_64"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_http_repository_through_the_lookaside_cache(workspace, rpm_repo, tmp_path):
    server = StaticServer(rpm_repo)
    seen = server.requests
    try:
        url = f"{server.url}/"
        out = run_appbuild(workspace, "import", "rpm", "--repo", url, "--only", "greeter", "--arch", "x86_64",
                           "--allow-missing").stdout
        assert "imported greeter=cernvm@cvm:2/2.0-1-1-1[is: x86_64]" in out and "libhello" in out
        assert "greeter[is: x86]" not in out
        assert any(p.endswith("greeter-2.0-1.x86_64.rpm") for p in seen)
        seen.clear()
        again = run_appbuild(workspace, "import", "rpm", "--repo", url, "--only", "greeter", "--arch", "x86_64",
                             "--allow-missing").stdout
        assert "already imported" in again
        assert not any(p.endswith(".rpm") for p in seen)  # no package downloaded for a no-op
    finally:
        server.stop()


# ----------------------------------------------------------------- versions and labels


def test_versions_follow_upstream(workspace, rpms):
    def imp(*args):
        return run_appbuild(workspace, "import", "rpm", *map(str, args)).stdout.strip()

    assert imp(rpms.greeter64).startswith(
        "imported greeter=cernvm@cvm:2/2.0-1-1-1[is: x86_64]  (greeter-2.0-1.x86_64.rpm, 4 files, ")
    assert imp(rpms.greeter64).startswith("greeter-2.0-1.x86_64.rpm: already imported as greeter=cernvm@cvm:2/2.0-1-1-1")
    # the same version rebuilt upstream: same source build, next build count
    assert "imported greeter=cernvm@cvm:2/2.0-1-1-2[is: x86_64]" in imp(rpms.greeter64_rebuild)
    # the other architecture of the same source build: its own build count 1
    assert "imported greeter=cernvm@cvm:2/2.0-1-1-1[is: x86]" in imp(rpms.greeter32)
    # a newer upstream: a new version on the same label
    assert "imported greeter=cernvm@cvm:2/2.1-1-1-1[is: x86_64]" in imp(rpms.greeter64_new)
    repo = open_repo(workspace)
    assert str(repo.latest("greeter", arch="x86_64").version) == "cernvm@cvm:2/2.1-1-1-1"
    # --label chooses where it goes; the same file on another label is not a no-op
    assert "imported greeter=sl@cern:6/2.0-1-1-1[is: x86_64]" in imp(rpms.greeter64, "--label", "sl@cern:6")
    # and so does rpm.label in repo/config.yaml
    config = workspace.workspace / "repo" / "config.yaml"
    config.write_text(config.read_text() + "rpm:\n  label: sl@upstream:6\n")
    assert "imported libhello=sl@upstream:6/1.0-1-1-1[is: x86_64]" in imp(rpms.lib64)


# ----------------------------------------------------------------- signatures


def test_signatures_are_verified_against_the_configured_keys(workspace, keys, rpms):
    config = workspace.workspace / "repo" / "config.yaml"
    config.write_text(config.read_text() + f"rpm:\n  keys: [{keys.trusted}]\n")
    unsigned = run_appbuild(workspace, "import", "rpm", str(rpms.greeter64), check=False)
    assert unsigned.returncode == 1 and "is not signed" in unsigned.stderr and "refused" in unsigned.stderr
    other = run_appbuild(workspace, "import", "rpm", str(keys.signed_other), check=False)
    assert other.returncode == 1 and "not among the trusted keys" in other.stderr
    assert open_repo(workspace).packages() == []
    good = run_appbuild(workspace, "import", "rpm", str(keys.signed_good)).stdout
    assert "imported greeter=cernvm@cvm:2/2.0-1-1-1[is: x86_64]" in good
    trove = component(open_repo(workspace), "greeter:rpm", "x86_64")
    assert "RSA/SHA" in trove.info["rpm"]["signature"]
    # no key was imported into the machine's rpm database
    assert "trusted@appbuild" not in subprocess.run(["rpm", "-qa", "gpg-pubkey*", "--qf", "%{SUMMARY}\n"],
                                                    capture_output=True, text=True).stdout

    config.write_text(config.read_text().replace(f"rpm:\n  keys: [{keys.trusted}]\n",
                                                 f"rpm:\n  keys: [{keys.trusted}]\n  require_signature: false\n"))
    assert "imported libhello" in run_appbuild(workspace, "import", "rpm", str(rpms.lib64)).stdout
    assert run_appbuild(workspace, "import", "rpm", str(keys.signed_other), check=False).returncode == 1


# ----------------------------------------------------------------- bad input


def test_bad_packages_are_refused_and_nothing_is_imported(workspace, rpms, tmp_path):
    def refused(*paths) -> str:
        proc = run_appbuild(workspace, "import", "rpm", *map(str, paths), check=False)
        assert proc.returncode == 1, proc.stdout
        assert "Traceback" not in proc.stderr
        return proc.stderr

    data = rpms.greeter64.read_bytes()
    truncated = tmp_path / "truncated.rpm"
    truncated.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupted" in refused(rpms.lib64, truncated)  # the good one is not imported either
    header_cut = tmp_path / "header-cut.rpm"
    header_cut.write_bytes(data[:2000])
    assert "not a valid RPM package" in refused(header_cut)
    wrong = tmp_path / "wrong-magic.rpm"
    wrong.write_bytes(b"\x00" * 200 + data[200:])
    assert "wrong magic" in refused(wrong)
    flipped = tmp_path / "flipped.rpm"
    corrupt = bytearray(data)
    corrupt[-100] ^= 0xFF
    flipped.write_bytes(bytes(corrupt))
    assert "payload digest mismatch" in refused(flipped)
    assert "points outside the root" in refused(rpms.evil)
    assert open_repo(workspace).packages() == []


def test_repository_checksums_must_match_the_metadata(workspace, rpms, tmp_path):
    repo_dir = make_repo(tmp_path / "tampered", rpms.repo_members)
    primary = next((repo_dir / "repodata").glob("*-primary.xml.*"))
    original = primary.read_bytes()
    primary.write_bytes(original[:-10] + b"\x00" * 10)
    proc = run_appbuild(workspace, "import", "rpm", "--repo", str(repo_dir), check=False)
    assert proc.returncode == 1 and "checksum mismatch" in proc.stderr and "primary metadata" in proc.stderr
    primary.write_bytes(original)

    # a package replaced after createrepo: its checksum is not the one primary.xml gives
    shutil.copy(rpms.greeter64_rebuild, repo_dir / "x86_64" / rpms.greeter64.name)
    proc = run_appbuild(workspace, "import", "rpm", "--repo", str(repo_dir), check=False)
    assert proc.returncode == 1 and "checksum mismatch" in proc.stderr and "greeter-2.0-1.x86_64.rpm" in proc.stderr
    assert open_repo(workspace).packages() == []  # not even the packages before it


def test_only_with_a_dependency_missing_inside_the_repository(workspace, rpms, tmp_path):
    repo_dir = make_repo(tmp_path / "nolib", [rpms.greeter64, rpms.scripts])
    proc = run_appbuild(workspace, "import", "rpm", "--repo", str(repo_dir), "--only", "greeter-scripts", check=False)
    assert proc.returncode == 1
    assert ("libhello.so.1()(64bit) needed by greeter-scripts-1.0-1.noarch -> greeter-2.0-1.x86_64"
            in proc.stderr)
    assert open_repo(workspace).packages() == []
    # once appbuild's repository has a provider, the closure is complete without it
    run_appbuild(workspace, "import", "rpm", str(rpms.lib64))
    proc = run_appbuild(workspace, "import", "rpm", "--repo", str(repo_dir), "--only", "greeter", check=False)
    assert "libhello.so.1" not in proc.stderr
    missing = run_appbuild(workspace, "import", "rpm", "--repo", str(repo_dir), "--only", "nosuch", check=False)
    assert missing.returncode == 1 and "--only nosuch: no such package" in missing.stderr
