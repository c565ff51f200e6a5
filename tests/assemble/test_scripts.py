"""Package scripts at image time, without root (appbuilder.assemble.scripts).

DEB: Debian's Essential set, dpkg and dbus (whose postinst runs ``adduser --system
messagebus`` and ``dpkg-statoverride``), imported through the machine's apt, staged with a
merged /usr and configured by the image's own dpkg. RPM: the EL test repository's
packages (tests/el_repo.py): ``%pre`` useradd, ``%post`` chown, ``%triggerin``, a failing
and a hanging ``%post``. Bad DEB scripts come from .debs made here with dpkg-deb.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from appbuilder.assemble.accounts import Accounts
from appbuilder.assemble.image import _record_new_files, account_seed
from appbuilder.assemble.rootfs import GeneratedFile, owners_and_groups, stage_root
from appbuilder.assemble.scripts import ScriptError, run_package_scripts
from appbuilder.capsule.dpkgdb import dpkg_database, info_mode
from appbuilder.cli.common import open_repo
from tests.conftest import make_settings, new_workspace, run_appbuild

SDE = 1700000000
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="package scripts run in a namespace root makes here")

# Debian 12's Essential set, dpkg, dbus, usr-is-merged (init-system-helpers wants it or usrmerge) and
# everything they depend on (apt-get -s install --no-install-recommends from an empty status)
DEBIAN = """gcc-12-base libc6 libgcc-s1 mawk base-files libtinfo6 debianutils bash libcap2 libgpg-error0 libgcrypt20
liblz4-1 liblzma5 libzstd1 libsystemd0 bsdutils libacl1 libattr1 libgmp10 libpcre2-8-0 libselinux1 coreutils
libbz2-1.0 libmd0 zlib1g tar dpkg dash diffutils findutils grep gzip hostname libaudit-common libcap-ng0 libaudit1
libcrypt1 debconf libpam0g libdb5.3 libpam-modules-bin libpam-modules libpam-runtime login ncurses-bin perl-base sed
libblkid1 libmount1 libsmartcols1 libudev1 libuuid1 util-linux-extra util-linux libdebconfclient0 base-passwd
usr-is-merged init-system-helpers libc-bin ncurses-base sysvinit-utils libdbus-1-3 dbus-bin dbus-session-bus-common
libapparmor1 libexpat1 dbus-daemon libsemanage-common libsepol2 libsemanage2 passwd adduser dbus-system-bus-common
dbus""".split()


def _deb(work: Path, name: str, postinst: str) -> Path:
    """A .deb named *name* whose postinst is *postinst* (dpkg-deb -b)."""
    top = work / name
    (top / "DEBIAN").mkdir(parents=True)
    (top / "usr/share/doc" / name).mkdir(parents=True)
    (top / "usr/share/doc" / name / "README").write_text(f"{name}\n")
    (top / "DEBIAN/control").write_text(f"Package: {name}\nVersion: 1.0\nArchitecture: all\n"
                                        f"Maintainer: appbuild tests <t@example.invalid>\nDescription: {name}\n")
    (top / "DEBIAN/postinst").write_text(f"#!/bin/sh\n{postinst}\n")
    os.chmod(top / "DEBIAN/postinst", 0o755)
    out = work / f"{name}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(top), str(out)], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="session")
def debian(tmp_path_factory, shared_cache):
    """A repository holding the Debian set above plus three hand-made .debs (a postinst that fails,
    one that hangs, one that needs no dpkg); the seconds the import took."""
    root = tmp_path_factory.mktemp("debian-scripts")
    settings = make_settings(root, workspace=new_workspace(root), cache=shared_cache)
    debs = [_deb(root, "appbuild-fail", 'echo "about to fail" >&2; exit 3'),
            _deb(root, "appbuild-hang", "echo sleeping; sleep 600"),
            _deb(root, "appbuild-chroot", 'if ischroot; then echo "ischroot: a chroot"; else echo "ischroot: no ($?)"; fi')]
    start = time.monotonic()
    run_appbuild(settings, "import", "deb", *DEBIAN, *map(str, debs), timeout=900)
    return settings, time.monotonic() - start


def troves_of(settings, names):
    repo = open_repo(settings)
    return repo, [repo.get(c) for name in names for c in repo.get(repo.find_one(name, arch="x86_64")).members]


def stage(repo, troves, dest: Path, *, merged_usr: bool):
    """Stage *troves* as stage_image does for a group with packageScripts (no kernel here)."""
    owners, groups = owners_and_groups(troves)
    accounts = Accounts([], owners, groups, seed=account_seed(repo, troves))
    generated = [GeneratedFile("/etc/passwd", accounts.passwd().encode()),
                 GeneratedFile("/etc/group", accounts.group().encode()),
                 GeneratedFile("/etc/shadow", accounts.shadow().encode(), 0o600)]
    generated += [GeneratedFile(p, d, info_mode(p)) for p, d in
                  dpkg_database(repo.store, troves, None, state="unpacked")]
    staged = stage_root(repo.store, troves, dest, accounts=accounts, source_date_epoch=SDE, generated=generated,
                        merged_usr=merged_usr)
    from appbuilder.capsule.rpmdb import build_rpm_database

    build_rpm_database(repo.store, troves, dest, source_date_epoch=SDE)
    _record_new_files(staged, SDE)
    return staged


def tree(staged) -> list[str]:
    """Every entry of the staged root with its content's digest: what two runs must share."""
    out = []
    for path, e in sorted(staged.entries.items()):
        host = staged.directory / path.lstrip("/")
        what = (hashlib.sha256(host.read_bytes()).hexdigest() if e.type == "file"
                else os.readlink(host) if e.type == "symlink" else "")
        out.append(f"{path} {e.type} {e.mode:o} {e.uid}:{e.gid} {e.mtime} {what}")
    return out


def test_debian_essential_dpkg_and_dbus_scripts_run_without_root(debian, tmp_path):
    settings, import_seconds = debian
    names = [*DEBIAN, "appbuild-chroot"]
    repo, troves = troves_of(settings, names)
    staged = stage(repo, troves, tmp_path / "root", merged_usr=True)
    logged: list[str] = []
    start = time.monotonic()
    cache = tmp_path / "cache"
    report = run_package_scripts(repo, troves, staged, hostname="debian", source_date_epoch=SDE, timeout=300,
                                 log=logged.append, cache=cache)
    seconds = time.monotonic() - start
    assert not report.cached and len(list(cache.iterdir())) == 1
    root = staged.directory
    # dbus-system-bus-common's postinst: adduser --system messagebus; dbus's: dpkg-statoverride
    passwd = (root / "etc/passwd").read_text()
    group = (root / "etc/group").read_text()
    user = next(line.split(":") for line in passwd.splitlines() if line.startswith("messagebus:"))
    gid = int(next(line.split(":") for line in group.splitlines() if line.startswith("messagebus:"))[2])
    assert user[6] == "/usr/sbin/nologin" and int(user[2]) < 1000
    helper = staged.entries["/usr/lib/dbus-1.0/dbus-daemon-launch-helper"]
    assert (helper.uid, helper.gid, oct(helper.mode & 0o7777)) == (0, gid, "0o4754")
    # base-passwd's numbering (seeded from its master files, kept by update-passwd)
    assert "shadow:x:42:" in group and "daemon:x:1:1:" in passwd
    shadow = staged.entries["/etc/shadow"]
    assert (shadow.uid, shadow.gid) == (0, 42)
    # dpkg finished every package; its database lists them as installed
    status = (root / "var/lib/dpkg/status").read_text()
    assert status.count("Status: install ok installed") == len(names)
    assert "unpacked" not in status and "newconffile" not in status
    # conffiles: unpacked as PATH.dpkg-new, put in place by dpkg --configure
    assert (root / "etc/default/dbus").is_file() and not (root / "etc/default/dbus.dpkg-new").exists()
    assert "/etc/default/dbus" in staged.entries and "/etc/default/dbus.dpkg-new" not in staged.entries
    assert " /etc/default/dbus 0d0f25a2f993509c857eb262f6e22015" in status or "/etc/default/dbus " in status
    # scripts ran in dependency order, one dpkg --configure each, all logged under headers
    ran = [(p, s) for p, s, _ in report.ran]
    assert ran.index(("libc6", "postinst configure")) < ran.index(("dbus", "postinst configure"))
    assert ran.index(("adduser", "postinst configure")) < ran.index(("dbus-system-bus-common", "postinst configure"))
    assert ("dbus", "preinst install") in ran and ran[-1] == ("dpkg", "triggers")
    assert "== dbus postinst configure ==\nSetting up dbus" in report.log
    assert "policy-rc.d denied execution of start" in report.log  # no service started
    # ischroot says "a chroot" (the scripts install into an image), so libc6's postinst asks no
    # init to re-execute and does not sleep a second after it
    assert "ischroot: a chroot" in report.log
    assert next(sec for p, s, sec in report.ran if (p, s) == ("libc6", "postinst configure")) < 1
    assert "== libc-bin" in report.log or "Processing triggers for libc-bin" in report.log
    assert "".join(f"{line}\n" for line in logged) == report.log
    # normalised, and nothing of the run left behind
    assert not (root / "var/log/dpkg.log").exists() and not (root / "usr/sbin/policy-rc.d").exists()
    assert os.readlink(root / "var/lib/dbus/machine-id") == "/etc/machine-id"
    assert not any(p.startswith("/.appbuild") for p in staged.entries) and not (root / ".appbuild-bin").exists()
    assert all(e.mtime <= SDE for e in staged.entries.values())
    # the second run gives the same tree
    again = stage(repo, troves, tmp_path / "again", merged_usr=True)
    run_package_scripts(repo, troves, again, hostname="debian", source_date_epoch=SDE, timeout=300)
    assert [line.split(" ", 1)[1] for line in tree(staged)] and tree(staged) == tree(again)
    # and so does the recorded result of the first, applied without running anything
    cached = stage(repo, troves, tmp_path / "cached", merged_usr=True)
    start = time.monotonic()
    hit = run_package_scripts(repo, troves, cached, hostname="debian", source_date_epoch=SDE, timeout=300, cache=cache)
    applied = time.monotonic() - start
    assert hit.cached and not hit.ran and tree(cached) == tree(staged)
    assert os.stat(cached.directory / "etc/passwd").st_uid == 0  # nothing ran in the namespace
    # another hostname is another run
    other = stage(repo, troves, tmp_path / "other", merged_usr=True)
    report = run_package_scripts(repo, troves, other, hostname="elsewhere", source_date_epoch=SDE, timeout=300,
                                 cache=cache)
    assert not report.cached and len(list(cache.iterdir())) == 2
    print(f"\nDebian Essential + dpkg + dbus ({len(troves)} packages): import {import_seconds:.1f} s, "
          f"{len(report.ran)} scripts in {seconds:.1f} s; the recorded result applied in {applied:.1f} s")


@pytest.mark.parametrize("name, limit, message", [
    ("appbuild-fail", 300, r"appbuild-fail postinst configure failed \(exit 3\)[\s\S]*about to fail"),
    ("appbuild-hang", 5, r"appbuild-hang postinst configure timed out after 5 s"),
])
def test_a_failing_or_hanging_maintainer_script_names_the_package(debian, tmp_path, name, limit, message):
    settings, _ = debian
    repo, troves = troves_of(settings, [*DEBIAN, name])
    staged = stage(repo, troves, tmp_path / "root", merged_usr=True)
    start = time.monotonic()
    with pytest.raises(ScriptError, match=message):
        run_package_scripts(repo, troves, staged, hostname="debian", source_date_epoch=SDE, timeout=limit)
    assert time.monotonic() - start < 120


def test_debian_packages_without_dpkg_keep_their_scripts_unrun(debian, tmp_path):
    """An EL system holding Debian's kernel: no dpkg to run the Debian scripts, which expect
    a Debian system; they are left out, and the log says which."""
    settings, _ = debian
    repo, troves = troves_of(settings, ["base-files"])
    staged = stage(repo, troves, tmp_path / "root", merged_usr=True)
    report = run_package_scripts(repo, troves, staged, hostname="debian", source_date_epoch=SDE, timeout=30)
    assert report.ran == []
    assert "1 Debian package(s) in a system without dpkg" in report.log and "base-files" in report.log


# ------------------------------------------------------------------ RPM

EL = ["el-setup", "el-glibc", "el-sh", "libhello", "el-daemon"]


@pytest.fixture(scope="session")
def el_capsules(el_repo, tmp_path_factory, shared_cache):
    """The EL packages above, el-fail, el-hang, and scripts-filetrig and scripts-lua (data/)."""
    root = tmp_path_factory.mktemp("el-scripts")
    settings = make_settings(root, workspace=new_workspace(root), cache=shared_cache)
    top = root / "rpmbuild"
    (top / "SOURCES").mkdir(parents=True)
    spec = shutil.copy(Path(__file__).parent / "data" / "scripts-filetrig.spec", top / "SOURCES")
    subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {top}", str(spec)], check=True, capture_output=True)
    ours = sorted((top / "RPMS" / "noarch").glob("scripts-*.rpm"))
    run_appbuild(settings, "import", "rpm", *(str(el_repo.packages[n]) for n in [*EL, "el-fail", "el-hang"]),
                 *map(str, ours))
    return settings


def test_rpm_scriptlets_make_users_chown_and_fire_triggers(el_capsules, tmp_path):
    repo, troves = troves_of(el_capsules, EL)
    staged = stage(repo, troves, tmp_path / "root", merged_usr=False)
    report = run_package_scripts(repo, troves, staged, hostname="el", source_date_epoch=SDE, timeout=60)
    root = staged.directory
    ran = [(p, s) for p, s, _ in report.ran]
    # librpm's order: what el-daemon needs comes before it
    assert ran.index(("el-glibc", "%post")) < ran.index(("el-daemon", "%pre"))
    assert ("el-daemon", "%triggerin -- libhello") in ran
    appd = next(line.split(":") for line in (root / "etc/passwd").read_text().splitlines()
                if line.startswith("appd:"))
    uid, gid = int(appd[2]), int(appd[3])
    assert 0 < uid < 1000
    state = staged.entries["/var/lib/appd/state"]
    assert (state.uid, state.gid, state.mode & 0o7777) == (uid, gid, 0o640)
    assert (staged.entries["/var/lib/appd"].mode & 0o7777) == 0o750
    assert (root / "var/lib/el-daemon/triggered").read_text() == "libhello trigger: el-daemon 1 libhello 1\n"
    assert "== el-daemon %post ==\nel-daemon post: appd:appd 640" in report.log
    assert (root / "etc/ld.so.cache").is_file()  # el-glibc's %post -p /sbin/ldconfig
    # the sandbox's mount points the root lacked are gone again
    assert not {"/run", "/proc", "/var/tmp"} & set(staged.entries)
    # the rpm database still lists them (registered as before)
    proc = subprocess.run(["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-qa", "--qf", "%{NAME}\n"],
                          capture_output=True, text=True)
    assert set(EL) <= set(proc.stdout.split()), proc.stderr
    time.sleep(1)  # librpm would record the clock's install time without SOURCE_DATE_EPOCH
    again = stage(repo, troves, tmp_path / "again", merged_usr=False)
    run_package_scripts(repo, troves, again, hostname="el", source_date_epoch=SDE, timeout=60)
    assert tree(staged) == tree(again)
    installed, tid = map(int, subprocess.run(
        ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-q", "el-daemon", "--qf", "%{INSTALLTIME} %{INSTALLTID}"],
        capture_output=True, text=True).stdout.split())
    assert tid == SDE and SDE <= installed <= SDE + len(EL)  # librpm numbers the installs from SOURCE_DATE_EPOCH


@pytest.mark.parametrize("name, limit, message", [
    ("el-fail", 60, r"el-fail %post failed \(exit 1\)[\s\S]*failing on purpose"),
    ("el-hang", 5, r"el-hang %post timed out after 5 s"),
])
def test_a_failing_or_hanging_scriptlet_names_the_package(el_capsules, tmp_path, name, limit, message):
    repo, troves = troves_of(el_capsules, [*EL, name])
    staged = stage(repo, troves, tmp_path / "root", merged_usr=False)
    with pytest.raises(ScriptError, match=message):
        run_package_scripts(repo, troves, staged, hostname="el", source_date_epoch=SDE, timeout=limit)


def test_rpm_file_triggers_get_the_matching_paths_and_lua_is_refused(el_capsules, tmp_path):
    repo, troves = troves_of(el_capsules, [*EL, "scripts-filetrig"])
    staged = stage(repo, troves, tmp_path / "root", merged_usr=False)
    report = run_package_scripts(repo, troves, staged, hostname="el", source_date_epoch=SDE, timeout=60)
    root = staged.directory
    ran = [s for p, s, _ in report.ran if p == "scripts-filetrig"]
    assert "%transfiletriggerin -- /etc" in ran and "%filetriggerin -- /usr/sbin" in ran
    # every /usr/sbin path of the transaction (el-sh's useradd, el-daemon's program), each once
    assert sorted((root / "var/lib/scripts-filetrig/sbin").read_text().split()) == \
        ["/usr/sbin/el-daemon", "/usr/sbin/useradd"]
    etc = (root / "var/lib/scripts-filetrig/etc").read_text().split()
    assert {"/etc/el-daemon.conf", "/etc/passwd", "/etc/ld.so.conf"} <= set(etc) and etc == sorted(etc)
    assert staged.entries["/var/lib/scripts-filetrig/etc"].uid == 0

    repo, troves = troves_of(el_capsules, [*EL, "scripts-lua"])
    staged = stage(repo, troves, tmp_path / "lua", merged_usr=False)
    with pytest.raises(ScriptError, match=r"scripts-lua %post is a Lua scriptlet \(<lua>\)"):
        run_package_scripts(repo, troves, staged, hostname="el", source_date_epoch=SDE, timeout=60)
    assert not (staged.directory / "var/lib/appd").exists()  # refused before anything ran


def test_the_configure_order_follows_pre_depends_depends_alternatives_and_provides():
    from appbuilder.assemble.scripts import _Deb, deb_order

    def deb(name, **fields):
        return _Deb(None, {"Package": name, **{k.replace("_", "-"): v for k, v in fields.items()}}, {})

    debs = [deb("app", Depends="libfoo (>= 1) | libbar, mail-transport-agent", Pre_Depends="dpkg"),
            deb("libbar"), deb("libfoo", Depends="libc6:any (>= 2.36)"), deb("libc6", Depends="libgcc-s1"),
            deb("libgcc-s1", Depends="libc6"),  # a cycle: broken where it closes
            deb("postfix", Provides="mail-transport-agent", Depends="libc6"), deb("dpkg", Pre_Depends="libc6")]
    order = [d.name for d in deb_order(debs)]
    assert sorted(order) == sorted(d.name for d in debs)
    before = lambda a, b: order.index(a) < order.index(b)  # noqa: E731
    assert before("libfoo", "app") and before("postfix", "app") and before("dpkg", "app")
    assert before("libc6", "libfoo") and before("libc6", "dpkg") and before("libc6", "postfix")
    assert order == [d.name for d in deb_order(list(reversed(debs)))]  # the same whatever the input order
