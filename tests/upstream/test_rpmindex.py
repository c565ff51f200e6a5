"""An rpm-md repository built here with rpmbuild and createrepo_c, read as an upstream index:
rich, file and pre dependencies, sonames, merged /usr, signed repomd.xml, tampering refused."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from appbuilder.upstream.gpgv import SignatureError
from appbuilder.upstream.index import IndexVerificationError
from appbuilder.upstream.lookaside import Lookaside
from appbuilder.upstream.relations import Atom, Rich
from appbuilder.upstream.rpmindex import RpmMdIndex
from tests.capsule.conftest import rpmbuild
from tests.upstream.conftest import gpg

DAEMON_SPEC = """\
Name: toy-daemon
Version: 1.0
Release: 1
Summary: a daemon with rich, file and pre dependencies
License: MIT
BuildArch: noarch
Requires: /usr/bin/sh
Requires: (libhello.so.1()(64bit) and toy-setup)
Requires: (toy-extra if toy-plugins)
Requires(pre): /usr/sbin/useradd
Provides: webserver = 2.0
Conflicts: toy-old < 2
Obsoletes: toy-ancient
%description
x
%install
mkdir -p %{buildroot}/usr/bin
printf '#!/usr/bin/sh\\necho toy\\n' > %{buildroot}/usr/bin/toyd
chmod 755 %{buildroot}/usr/bin/toyd
%files
/usr/bin/toyd
"""

SETUP_SPEC = """\
Name: toy-setup
Epoch: 1
Version: 2.13.7
Release: 3
Summary: base files
License: MIT
BuildArch: noarch
%description
x
%install
mkdir -p %{buildroot}/etc %{buildroot}/usr/sbin %{buildroot}/usr/share/toy
echo 'root:x:0:0::/root:/usr/bin/sh' > %{buildroot}/etc/passwd
printf '#!/usr/bin/sh\\nexit 0\\n' > %{buildroot}/usr/sbin/useradd
chmod 755 %{buildroot}/usr/sbin/useradd
echo data > %{buildroot}/usr/share/toy/data
%files
%config /etc/passwd
/usr/sbin/useradd
/usr/share/toy/data
"""


def _build(top: Path, name: str, text: str) -> list[Path]:
    spec = top / f"{name}.spec"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(text)
    proc = subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {top}", str(spec)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return sorted((top / "RPMS").rglob(f"{name}-*.rpm"))


@pytest.fixture(scope="module")
def toy_repo(tmp_path_factory, test_keys) -> Path:
    """A signed rpm-md repository: toy-daemon, toy-setup (noarch), libhello (x86_64 and i686)."""
    work = tmp_path_factory.mktemp("toy-rpm-md")
    repo = work / "repo"
    (repo / "Packages").mkdir(parents=True)
    rpms = _build(work / "top", "toy-daemon", DAEMON_SPEC) + _build(work / "top", "toy-setup", SETUP_SPEC)
    rpms += list(rpmbuild(work / "lib64", "libhello.spec").values())
    rpms += list(rpmbuild(work / "lib32", "libhello.spec", target="i686").values())
    for rpm in rpms:
        shutil.copy(rpm, repo / "Packages" / rpm.name)
    subprocess.run(["createrepo_c", "--quiet", "--no-database", str(repo)], check=True, capture_output=True)
    sign(repo, test_keys.home, test_keys.uid)
    return repo


def sign(repo: Path, home: Path, uid: str) -> None:
    asc = repo / "repodata" / "repomd.xml.asc"
    asc.unlink(missing_ok=True)
    gpg(home, "--local-user", uid, "--armor", "--detach-sign", "--output", str(asc), str(repo / "repodata" / "repomd.xml"))


def open_index(repo: Path, tmp_path: Path, keys=(), arch="x86_64", cache_dir=None) -> RpmMdIndex:
    return RpmMdIndex("el", str(repo), arch=arch, priority=20, lookaside=Lookaside(tmp_path / "lookaside"),
                      keys=list(keys), cache_dir=cache_dir)


def test_packages_relations_and_lookups(toy_repo, tmp_path, test_keys):
    index = open_index(toy_repo, tmp_path, [test_keys.trusted])
    assert index.describe() == f"el ({toy_repo}/repodata primary+filelists)"
    daemon, = index.by_name("toy-daemon")
    assert (daemon.kind, daemon.version, daemon.arch, daemon.source) == ("rpm", "1.0-1", "noarch", "el")
    assert daemon.origin == f"{toy_repo}/repodata primary" and len(daemon.sha256) == 64 and daemon.size > 0
    deps = {str(d) for d in daemon.depends}
    assert {"/usr/bin/sh", "(libhello.so.1()(64bit) and toy-setup)", "(toy-extra if toy-plugins)"} <= deps
    assert Rich("if", (Atom("rpm", "toy-extra"), Atom("rpm", "toy-plugins"))) in daemon.depends
    assert [str(d) for d in daemon.pre_depends] == ["/usr/sbin/useradd"]
    assert {str(c) for c in daemon.conflicts} == {"toy-old < 2", "toy-ancient"}
    assert not any(str(d).startswith("rpmlib(") for d in daemon.depends + daemon.pre_depends)
    setup, = index.by_name("toy-setup")
    assert setup.version == "1:2.13.7-3"

    (provider, atom), = index.by_virtual("webserver")
    assert provider == daemon and atom == Atom("rpm", "webserver", "=", "2.0")
    assert atom.allows("2.0") and Atom("rpm", "webserver", ">=", "1.5").matches(atom)

    lib, = index.by_soname("ELF64", "libhello.so.1")
    assert (lib.name, lib.arch) == ("libhello", "x86_64")      # the x86_64 index keeps x86_64 and noarch only
    assert index.by_soname("ELF32", "libhello.so.1") == []
    assert open_index(toy_repo, tmp_path, arch="x86").by_soname("ELF32", "libhello.so.1")[0].arch == "i686"

    # files: primary's bin directories, merged /usr both ways, then filelists
    assert index.by_file("/usr/bin/toyd") == [daemon] == index.by_file("/bin/toyd")
    assert index.by_file("/sbin/useradd") == [setup]
    assert index.by_file("/usr/share/toy/data") == [setup]     # not in primary: read from filelists
    assert index.by_file("/usr/share/toy/none") == []
    assert index.essential() == []


def test_fetch_is_verified(toy_repo, tmp_path):
    index = open_index(toy_repo, tmp_path)
    daemon, = index.by_name("toy-daemon")
    setup, = index.by_name("toy-setup")
    paths = index.fetch([daemon, setup], tmp_path / "dest")
    assert [p.parent for p in paths] == [tmp_path / "dest"] * 2
    assert paths[0].name.startswith("toy-daemon-1.0-1") and paths[1].name.startswith("toy-setup-2.13.7-3")

    copy = tmp_path / "copy"
    shutil.copytree(toy_repo, copy)
    rpm = next((copy / "Packages").glob("toy-daemon-*.rpm"))
    with open(rpm, "ab") as f:
        f.write(b"\0")
    index = open_index(copy, tmp_path)
    with pytest.raises(IndexVerificationError, match=rf"{re.escape(rpm.name)}: sha256 \w+ does not match the primary"):
        index.fetch(index.by_name("toy-daemon"))


def test_signature_is_required_and_checked(toy_repo, tmp_path, test_keys):
    copy = tmp_path / "copy"
    shutil.copytree(toy_repo, copy)
    with pytest.raises(SignatureError, match=r"repomd\.xml\.asc: bad or untrusted signature"):
        open_index(copy, tmp_path, [test_keys.other])             # signed, but not by a key we trust

    sign(copy, test_keys.home, test_keys.other_uid)
    with pytest.raises(SignatureError, match=r"repomd\.xml\.asc: bad or untrusted"):
        open_index(copy, tmp_path, [test_keys.trusted])           # signed by the other key
    open_index(copy, tmp_path, [test_keys.other])

    sign(copy, test_keys.home, test_keys.uid)
    repomd = copy / "repodata" / "repomd.xml"
    repomd.write_bytes(repomd.read_bytes().replace(b"<revision>", b"<revision>1"))
    with pytest.raises(SignatureError) as err:
        open_index(copy, tmp_path, [test_keys.trusted])           # changed after signing
    assert "\n" not in str(err.value)

    (copy / "repodata" / "repomd.xml.asc").unlink()
    with pytest.raises(SignatureError, match=r"repomd\.xml\.asc: missing"):
        open_index(copy, tmp_path, [test_keys.trusted])
    open_index(copy, tmp_path)                                     # no keys: the checksums still hold


def test_tampered_primary_is_refused(toy_repo, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(toy_repo, copy)
    primary = next((copy / "repodata").glob("*-primary.xml.gz"))
    xml = gzip.decompress(primary.read_bytes()).replace(b'ver="1.0"', b'ver="9.0"', 1)
    primary.write_bytes(gzip.compress(xml))
    with pytest.raises(IndexVerificationError) as err:
        open_index(copy, tmp_path)
    message = str(err.value)
    assert primary.name in message and "primary metadata" in message and "checksum mismatch" in message
    assert "\n" not in message


def test_parsed_primary_is_cached_under_repomd(toy_repo, tmp_path, test_keys):
    cache = tmp_path / "upstream"
    first = open_index(toy_repo, tmp_path, [test_keys.trusted], cache_dir=cache)
    assert len(list(cache.glob("*.cache"))) == 1
    again = open_index(toy_repo, tmp_path, [test_keys.trusted], cache_dir=cache)
    assert again.by_name("toy-daemon") == first.by_name("toy-daemon")
    assert again.by_soname("ELF64", "libhello.so.1") == first.by_soname("ELF64", "libhello.so.1")
    # the signature is checked before the cache is read, and so is primary's checksum
    with pytest.raises(SignatureError):
        open_index(toy_repo, tmp_path, [test_keys.other], cache_dir=cache)
    copy = tmp_path / "copy"
    shutil.copytree(toy_repo, copy)
    primary = next((copy / "repodata").glob("*-primary.xml.gz"))
    primary.write_bytes(gzip.compress(gzip.decompress(primary.read_bytes()) + b"\n"))
    with pytest.raises(IndexVerificationError, match=f"{primary.name}.*checksum mismatch|checksum mismatch.*{primary.name}"):
        open_index(copy, tmp_path, [test_keys.trusted], cache_dir=cache)


def test_sources_setting_and_open_sources(toy_repo, tmp_path, test_keys):
    """The ``sources:`` setting names the indexes; open_sources opens them by priority."""
    from appbuilder.core.settings import BY_KEY, SettingsError
    from appbuilder.upstream.index import UnknownSource, open_sources
    from tests.conftest import make_settings

    default = BY_KEY["sources"].parse(BY_KEY["sources"].default)
    assert default == {"debian": {"kind": "deb", "priority": 10, "label": None, "repo": None, "keys": []}}
    base = make_settings(tmp_path)
    settings = base.with_overrides({"sources": {
        "el": {"kind": "rpm-md", "repo": str(toy_repo), "priority": 5, "keys": [str(test_keys.trusted)],
               "label": "el@cvm:9"},
        "el2": {"kind": "rpm-md", "repo": str(toy_repo), "priority": 30},
    }})
    indexes = open_sources(settings, "x86_64")
    assert [(i.source, i.priority, i.label) for i in indexes] == [("el", 5, "el@cvm:9"), ("el2", 30, None)]
    assert indexes[0].by_name("toy-daemon")[0].source == "el"
    assert (settings.cache / "upstream").is_dir()  # the parsed primary is cached there
    with pytest.raises(UnknownSource, match=r"no source 'debain' in the sources: setting.*configured: el, el2"):
        open_sources(settings, "x86_64", names=["debain"])

    for bad, why in ((({"el": {"kind": "rpm"}}), "unknown kind 'rpm'"),
                     ({"el": {"kind": "rpm-md"}}, "name the rpm-md repository"),
                     ({"el": {"kind": "deb", "repo": "x"}}, "unknown key 'repo'"),
                     ({"el": {"kind": "deb", "priority": "high"}}, "priority must be a whole number"),
                     ({"El!": {"kind": "deb"}}, "bad source name")):
        with pytest.raises(SettingsError, match=why):
            base.with_overrides({"sources": bad})
