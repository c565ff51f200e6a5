"""Real RPMs built once per session with rpmbuild, signed with keys made with gpg, and
an rpm-md repository made of them with createrepo_c.

The packages (specs and sources in ``data/``; the C sources are those of
``recipes/libhello`` and ``recipes/hello``, so the capsules hold what the recipes cook):

* ``libhello`` 1.0-1, x86_64 (gzip payload) and i686 (``--target i686``, -m32, xz
  payload): a shared library, soname ``libhello.so.1`` with symbol version
  LIBHELLO_1.0, ``-p /sbin/ldconfig`` scriptlets; and its ``libhello-devel``;
* ``greeter`` 2.0-1, x86_64 and i686: a program requiring ``libhello.so.1``;
  also rebuilt without a version change (``greeter64_rebuild``), as 2.1-1
  (``greeter64_new``), and as ``greeter-manual`` with wrong hand-written requirements;
* ``greeter-scripts`` 1.0-1 noarch (zstd payload): a shell script, a ``%config``
  file, a hard link, a ``%ghost`` file, ``%pre``/``%post`` scriptlets;
* ``evil-link``: a symlink climbing out of the root.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
RECIPES = Path(__file__).resolve().parents[2] / "recipes"
SOURCES = (*(RECIPES / "libhello" / name for name in ("hello.c", "hello.h", "libhello.map")),
           RECIPES / "hello" / "main.c", DATA / "greet-all.sh", DATA / "greeter.conf")


def rpmbuild(top: Path, spec: str, *, target: str | None = None, payload: str | None = None,
             defines: dict[str, str] | None = None) -> dict[str, Path]:
    """Build *spec* in the rpmbuild tree *top*; returns {file name: path} of what it wrote."""
    sources = top / "SOURCES"
    sources.mkdir(parents=True, exist_ok=True)
    for path in (*SOURCES, DATA / spec):
        shutil.copy(path, sources / path.name)
    argv = ["rpmbuild", "-bb", "--define", f"_topdir {top}"]
    if target:
        argv += ["--target", target]
    if payload:
        argv += ["--define", f"_binary_payload {payload}"]
    for key, value in (defines or {}).items():
        argv += ["--define", f"{key} {value}"]
    proc = subprocess.run([*argv, str(sources / spec)], capture_output=True, text=True)
    assert proc.returncode == 0, f"rpmbuild {spec} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    wrote = [Path(p) for p in re.findall(r"^Wrote: (\S+\.rpm)$", proc.stdout + proc.stderr, re.M)]
    return {p.name: p for p in wrote}


@dataclass
class RpmSet:
    lib64: Path
    lib32: Path
    devel64: Path
    devel32: Path
    greeter64: Path
    greeter32: Path
    scripts: Path
    greeter64_rebuild: Path
    greeter64_new: Path
    manual: Path
    evil: Path

    @property
    def repo_members(self) -> list[Path]:
        return [self.lib64, self.lib32, self.devel64, self.devel32, self.greeter64, self.greeter32, self.scripts]


@pytest.fixture(scope="session")
def rpms(tmp_path_factory) -> RpmSet:
    root = tmp_path_factory.mktemp("rpmbuild")
    lib64 = rpmbuild(root / "base64", "libhello.spec")
    lib32 = rpmbuild(root / "base32", "libhello.spec", target="i686", payload="w9.xzdio")
    g64 = rpmbuild(root / "base64", "greeter.spec")
    g32 = rpmbuild(root / "base32", "greeter.spec", target="i686")
    scripts = rpmbuild(root / "noarch", "greeter-scripts.spec", payload="w19.zstdio")
    rebuild = rpmbuild(root / "rebuild", "greeter.spec", defines={"tag": "rebuild"})
    new = rpmbuild(root / "new", "greeter.spec", defines={"ver": "2.1"})
    manual = rpmbuild(root / "manual", "greeter.spec", defines={"manual": "1"})
    evil = rpmbuild(root / "evil", "evil.spec")
    return RpmSet(
        lib64=lib64["libhello-1.0-1.x86_64.rpm"], lib32=lib32["libhello-1.0-1.i686.rpm"],
        devel64=lib64["libhello-devel-1.0-1.x86_64.rpm"], devel32=lib32["libhello-devel-1.0-1.i686.rpm"],
        greeter64=g64["greeter-2.0-1.x86_64.rpm"], greeter32=g32["greeter-2.0-1.i686.rpm"],
        scripts=scripts["greeter-scripts-1.0-1.noarch.rpm"],
        greeter64_rebuild=rebuild["greeter-2.0-1.x86_64.rpm"], greeter64_new=new["greeter-2.1-1.x86_64.rpm"],
        manual=manual["greeter-manual-2.0-1.x86_64.rpm"], evil=evil["evil-link-1.0-1.noarch.rpm"],
    )


def make_repo(dest: Path, packages: list[Path]) -> Path:
    """An rpm-md repository at *dest* holding *packages* (createrepo_c)."""
    for p in packages:
        arch = p.name.rsplit(".", 2)[-2]
        (dest / arch).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest / arch / p.name)
    subprocess.run(["createrepo_c", "-q", str(dest)], check=True)
    return dest


@pytest.fixture(scope="session")
def rpm_repo(rpms, tmp_path_factory) -> Path:
    """The rpm-md repository of libhello, libhello-devel, greeter (both arches), greeter-scripts."""
    return make_repo(tmp_path_factory.mktemp("rpm-md") / "repo", rpms.repo_members)


@dataclass
class Keys:
    trusted: Path  # armored public key the tests' config names
    other: Path  # a key nobody trusts
    signed_good: Path  # greeter x86_64 signed with the trusted key
    signed_other: Path  # the same, signed with the other key


def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--batch", "--homedir", str(home), *args], capture_output=True, check=True)


def _sign(rpm_path: Path, dest: Path, home: Path, uid: str) -> Path:
    shutil.copy(rpm_path, dest)
    subprocess.run(
        ["rpmsign", "--addsign", "--define", f"_gpg_name {uid}", "--define", f"_gpg_path {home}",
         "--define", "__gpg /usr/bin/gpg", str(dest)],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )
    return dest


@pytest.fixture(scope="session")
def keys(rpms, tmp_path_factory) -> Keys:
    root = tmp_path_factory.mktemp("keys")
    home = root / "gnupg"
    home.mkdir(mode=0o700)
    for uid in ("trusted@appbuild.invalid", "other@appbuild.invalid"):
        _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "rsa2048", "sign", "never")
    trusted, other = root / "trusted.asc", root / "other.asc"
    trusted.write_bytes(_gpg(home, "--armor", "--export", "trusted@appbuild.invalid").stdout)
    other.write_bytes(_gpg(home, "--armor", "--export", "other@appbuild.invalid").stdout)
    (root / "good").mkdir()
    (root / "bad").mkdir()
    good = _sign(rpms.greeter64, root / "good" / rpms.greeter64.name, home, "trusted@appbuild.invalid")
    bad = _sign(rpms.greeter64, root / "bad" / rpms.greeter64.name, home, "other@appbuild.invalid")
    return Keys(trusted, other, good, bad)


