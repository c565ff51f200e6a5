"""An EL-like rpm-md repository, built once per session with rpmbuild and createrepo_c, its
``repodata/repomd.xml`` signed (detached, armored ``repomd.xml.asc``) with an OpenPGP key made
for the session; served over HTTP from 127.0.0.1 by :func:`el_http`.

The packages (specs in ``tests/data/el/``; libhello is ``tests/capsule/data/libhello.spec``):

* ``el-setup`` 2.13.7-1 noarch (``Provides: setup``): ``%config`` ``/etc/passwd``, ``/etc/group``
  (root, bin, daemon, adm, nobody; wheel), ``/etc/shells`` and ``/etc/profile``, like EL's ``setup``;
* ``el-filesystem`` 3.16-1 noarch (``Provides: filesystem``, ``Requires: el-setup``): the directory
  tree (``/proc`` 0555, ``/tmp`` 1777, ...) and ``/etc/mtab``, like EL's ``filesystem``;
* ``el-glibc`` 2.36-1 x86_64: Debian's ``libc6`` (``/lib/x86_64-linux-gnu/*.so*``,
  ``/lib64/ld-linux-x86-64.so.2``) and ``libc-bin``'s static ``/sbin/ldconfig``, repackaged;
  rpmbuild's ELF scan gives it ``libc.so.6()(64bit)``, ``libc.so.6(GLIBC_2.34)(64bit)``, ...;
  ``Provides: rtld(GNU_HASH)`` (as glibc.spec); ``Requires: el-setup, el-filesystem`` (as glibc ->
  basesystem -> setup, filesystem); ``%post -p /sbin/ldconfig``;
* ``el-sh`` 1.35.0-1 x86_64: Debian's static busybox as ``/usr/bin/sh`` (its shell runs the
  applets itself: chown, awk, grep, stat, sleep) and ``/usr/sbin/useradd``, a busybox script
  (``-r``: the highest free id at or below 999, and a group of the same name);
* ``libhello`` 1.0-1 x86_64 (and ``libhello-devel``): ``libhello.so.1()(64bit)``,
  ``-p /sbin/ldconfig`` scriptlets;
* ``el-daemon`` 1.0-1 noarch: ``Requires: /usr/bin/sh``, ``(libhello and el-setup)``,
  ``(el-extra if el-daemon-plugins)``, ``Requires(pre): /usr/sbin/useradd``; ``%pre`` makes the
  system user ``appd``, ``%post`` makes ``/var/lib/appd/state`` owned by it (0640, directory
  0750), ``%triggerin -- libhello`` appends a line to ``/var/lib/el-daemon/triggered``; all
  its scriptlets run ``/usr/bin/sh``;
* ``el-extra`` and ``el-daemon-plugins`` (``Requires: el-daemon = 1.0-1``) noarch: el-extra comes
  in only with el-daemon-plugins, through el-daemon's ``if``;
* ``el-fail`` (``%post`` prints to stderr and exits 1) and ``el-hang`` (``%post`` sleeps 600 s);
* ``el-pick`` (``Requires: el-backend``), ``el-backend-a`` and ``el-backend-b`` (both
  ``Provides: el-backend = 1.0``): two providers with equal claims;
* ``el-needy`` (``Requires: el-orphan``) and ``el-orphan`` (``Requires:
  libmissing.so.3()(64bit)``, which nothing provides);
* ``el-rival`` (``Conflicts: el-extra``).

Builds are reproducible (SOURCE_DATE_EPOCH, clamped mtimes, fixed build host), so the
packages have the same sha256 in every session on one machine. Everything takes a few
seconds once the three Debian packages are in the session's lookaside cache.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
EL_DATA = TESTS / "data" / "el"
LIBHELLO_SOURCES = (*(TESTS.parent / "recipes" / "libhello" / n for n in ("hello.c", "hello.h", "libhello.map")),
                    TESTS / "capsule" / "data" / "libhello.spec")
SPECS = ("el-setup.spec", "el-filesystem.spec", "el-glibc.spec", "el-sh.spec", "libhello.spec", "el-daemon.spec",
         "el-broken.spec", "el-cases.spec")
EPOCH = 1700000000
KEY_UID = "appbuild EL test repository <el-repo@example.invalid>"
OTHER_UID = "someone else <other@example.invalid>"
DEBIAN = ("libc6", "libc-bin", "busybox-static")  # amd64, through the machine's apt


@dataclass
class ElRepo:
    """The repository (``root``: ``repodata/``, ``x86_64/``, ``noarch/``) and its keys."""

    root: Path
    key: Path  # the signing key, armored public (what a source's `keys:` names)
    keyring: Path  # the same, binary (a gpgv --keyring)
    other_key: Path  # a key nobody trusts, armored public
    gnupg: Path  # GNUPGHOME with both secret keys (to sign copies)
    packages: dict[str, Path] = field(default_factory=dict)  # package name -> .rpm in root
    versions: dict[str, str] = field(default_factory=dict)  # package name -> version-release
    build_seconds: float = 0.0  # all of build_el_repo
    fetch_seconds: float = 0.0  # of which getting the Debian packages (apt's lists, downloads)

    def source(self, repo: str | Path | None = None, *, priority: int = 20, keys: bool = True, **extra) -> dict:
        """The ``sources:`` entry of this repository (or of *repo*, a URL or a copy's path)."""
        entry = {"kind": "rpm-md", "repo": str(repo or self.root), "priority": priority}
        if keys:
            entry["keys"] = [str(self.key)]
        entry.update(extra)
        return entry

    def copy(self, dest: Path) -> Path:
        """A private copy of the repository (to tamper with); returns its root."""
        shutil.copytree(self.root, dest, symlinks=True)
        return dest

    def sign(self, root: Path, *, uid: str = KEY_UID) -> Path:
        """(Re)sign ``root/repodata/repomd.xml`` with the key of *uid*; returns the .asc."""
        repomd = root / "repodata" / "repomd.xml"
        asc = repomd.with_name("repomd.xml.asc")
        asc.unlink(missing_ok=True)
        _gpg(self.gnupg, "--local-user", uid, "--armor", "--detach-sign", "--output", str(asc), str(repomd))
        return asc

    def metadata(self, root: Path, kind: str) -> Path:
        """The file repomd.xml names for *kind* (``primary``, ``filelists``, ``other``)."""
        text = (root / "repodata" / "repomd.xml").read_text()
        m = re.search(rf'<data type="{kind}">.*?<location href="([^"]+)"', text, re.S)
        assert m, f"repomd.xml has no {kind}"
        return root / m.group(1)

    def tamper_primary(self, root: Path) -> Path:
        """Change the primary metadata of the copy at *root* (one package's summary) and
        re-sign repomd.xml: the signature verifies, the primary's checksum does not."""
        primary = self.metadata(root, "primary")
        text = gzip.decompress(primary.read_bytes()).decode()
        changed = text.replace("A small daemon with its own user", "A small daemon with someone else's user", 1)
        assert changed != text
        primary.write_bytes(gzip.compress(changed.encode(), mtime=0))
        self.sign(root)
        return primary


def _gpg(home: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--batch", "--no-tty", "--quiet", "--homedir", str(home), *args],
                          check=True, capture_output=True, **kw)


def _debian_files(cache: Path, dest: Path) -> dict[str, str]:
    """The three Debian packages, through the machine's apt (DebianArchive, verified against its
    signed index, kept in the session's lookaside cache), unpacked under *dest*/NAME; returns
    {name: Debian version}."""
    from appbuilder.capsule.debapt import DebianArchive, DebSpec
    from appbuilder.upstream.lookaside import Lookaside

    archive = DebianArchive(cache, Lookaside(cache / "lookaside"))
    versions = {}
    for record in archive.lookup([DebSpec(name, "amd64") for name in DEBIAN]):
        deb = archive.fetch(record)
        (dest / record.spec.name).mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest / record.spec.name)], check=True, capture_output=True)
        versions[record.spec.name] = record.version
    return versions


def _upstream(version: str) -> str:
    """An RPM Version from a Debian one: no epoch, no revision."""
    return version.split(":", 1)[-1].rsplit("-", 1)[0]


def build_el_repo(work: Path, cache: Path) -> ElRepo:
    """Build the repository under *work* (see the module's docstring)."""
    start = time.monotonic()
    top, sources = work / "rpmbuild", work / "rpmbuild" / "SOURCES"
    for d in ("SOURCES", "BUILD", "BUILDROOT", "SRPMS", "RPMS/noarch", "RPMS/x86_64"):  # three rpmbuilds share it
        (top / d).mkdir(parents=True)
    for path in (*EL_DATA.iterdir(), *LIBHELLO_SOURCES):
        shutil.copy(path, sources / path.name)
    debs = work / "debs"
    versions = _debian_files(cache, debs)
    fetched = time.monotonic()
    shutil.copy(debs / "busybox-static" / "bin" / "busybox", sources / "busybox")
    glibc = sources / "el-glibc-root"
    for part in ("lib", "lib64", "sbin", "etc"):
        (glibc / part).mkdir(parents=True)
    libc6, libc_bin = debs / "libc6", debs / "libc-bin"
    shutil.copytree(libc6 / "lib" / "x86_64-linux-gnu", glibc / "lib" / "x86_64-linux-gnu", symlinks=True)
    shutil.copy(libc6 / "lib64" / "ld-linux-x86-64.so.2", glibc / "lib64", follow_symlinks=False)
    shutil.copy(libc_bin / "sbin" / "ldconfig", glibc / "sbin")
    shutil.copy(libc_bin / "etc" / "ld.so.conf", glibc / "etc")
    shutil.copytree(libc_bin / "etc" / "ld.so.conf.d", glibc / "etc" / "ld.so.conf.d")
    shutil.copytree(libc6 / "etc" / "ld.so.conf.d", glibc / "etc" / "ld.so.conf.d", dirs_exist_ok=True)

    defines = {
        "_topdir": str(top), "_buildhost": "el-repo.example.invalid",
        "use_source_date_epoch_as_buildtime": "1", "clamp_mtime_to_source_date_epoch": "1",
        "_binary_payload": "w2.gzdio",
    }
    argv = ["rpmbuild", "-bb"]
    for key, value in defines.items():
        argv += ["--define", f"{key} {value}"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH), "TZ": "UTC", "LC_ALL": "C"}
    jobs = [(["--define", f"ver {_upstream(versions['libc6'])}"], ["el-glibc.spec"]),
            (["--define", f"ver {_upstream(versions['busybox-static'])}"], ["el-sh.spec"]),
            ([], [s for s in SPECS if s not in ("el-glibc.spec", "el-sh.spec")])]
    procs = [subprocess.Popen([*argv, *extra, *(str(sources / s) for s in specs)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for extra, specs in jobs]
    wrote: list[Path] = []
    for proc, (_, specs) in zip(procs, jobs):
        out = proc.communicate()[0]
        assert proc.returncode == 0, f"rpmbuild {' '.join(specs)} failed:\n{out[-4000:]}"
        wrote += [Path(p) for p in re.findall(r"^Wrote: (\S+\.rpm)$", out, re.M)]

    root = work / "repo"
    packages, pkg_versions = {}, {}
    for rpm in wrote:
        m = re.match(r"^(.+)-([^-]+-[^-]+)\.([^.]+)\.rpm$", rpm.name)
        name, verrel, arch = m.groups()
        (root / arch).mkdir(parents=True, exist_ok=True)
        packages[name] = shutil.copy(rpm, root / arch / rpm.name)
        pkg_versions[name] = verrel
    subprocess.run(["createrepo_c", "--quiet", "--no-database", "--set-timestamp-to-revision", "--revision",
                    str(EPOCH), str(root)], check=True, capture_output=True)

    home = work / "gnupg"
    home.mkdir(mode=0o700)
    for uid in (KEY_UID, OTHER_UID):
        _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    keys = work / "keys"
    keys.mkdir()
    key, keyring, other = keys / "RPM-GPG-KEY-el-test", keys / "el-test.gpg", keys / "RPM-GPG-KEY-other"
    key.write_bytes(_gpg(home, "--armor", "--export", KEY_UID).stdout)
    keyring.write_bytes(_gpg(home, "--export", KEY_UID).stdout)
    other.write_bytes(_gpg(home, "--armor", "--export", OTHER_UID).stdout)
    el = ElRepo(root, key, keyring, other, home, packages, pkg_versions)
    el.sign(root)
    el.build_seconds = time.monotonic() - start
    el.fetch_seconds = fetched - start
    return el


@pytest.fixture(scope="session")
def el_repo(tmp_path_factory, shared_cache) -> ElRepo:
    """The EL-like rpm-md repository of the session (see the module's docstring). Read only:
    tests that change it work on :meth:`ElRepo.copy`."""
    work = tmp_path_factory.mktemp("el-repo")
    el = build_el_repo(work, shared_cache)
    yield el
    subprocess.run(["gpgconf", "--homedir", str(el.gnupg), "--kill", "all"], capture_output=True)


@pytest.fixture(scope="session")
def el_http(el_repo):
    """The EL repository served over HTTP from 127.0.0.1 (a "remote" mirror): its URL (the
    server's ``requests`` list is at ``el_http.server``)."""
    from tests.servers import StaticServer

    server = StaticServer(el_repo.root)
    yield ElMirror(server.url, server)
    server.stop()


@dataclass
class ElMirror:
    url: str
    server: object

    def __str__(self) -> str:
        return self.url
