"""DEB capsules: real Debian packages through the machine's apt (amd64 and i386), and
.deb files, including hand-made bad ones."""

from __future__ import annotations

import io
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

from appbuilder.cli.common import open_repo
from appbuilder.repository.checkout import materialize
from appbuilder.repository.deps import Dependency
from tests.conftest import component, make_settings, new_workspace, run_appbuild

D = Dependency.parse
FROM_APT = ["busybox-static", "busybox-static:i386", "zlib1g", "zlib1g:i386", "base-files"]


@pytest.fixture(scope="session")
def deb_repo(tmp_path_factory, shared_cache):
    """busybox-static and zlib1g for amd64 and i386, and base-files, imported once."""
    root = tmp_path_factory.mktemp("deb-repo")
    settings = make_settings(root, workspace=new_workspace(root), cache=shared_cache)
    proc = run_appbuild(settings, "import", "deb", *FROM_APT, timeout=600)
    return settings, proc


def test_debian_packages_for_both_architectures(deb_repo):
    settings, proc = deb_repo
    assert len([line for line in proc.stdout.splitlines() if line.startswith("imported ")]) == 5
    repo = open_repo(settings)
    for arch, elf in (("x86_64", "ELF64"), ("x86", "ELF32")):
        busybox = component(repo, "busybox-static:deb", arch)
        assert busybox.flavor.arch == arch
        assert busybox.version.upstream.startswith("1:1.35.0-")  # the Debian version, epoch and all
        assert {D("deb: busybox-static"), D("deb: busybox")} <= busybox.provides  # Provides: busybox
        assert busybox.info["elf"] == [f"{elf} {arch}"]
        assert not any(d.cls == "soname" for d in busybox.requires)  # static: needs no library
        binary = next(f for f in busybox.files if f.path == "/bin/busybox")
        assert binary.mode == 0o755 and binary.mtime > 0 and binary.owner == "root"

        zlib = component(repo, "zlib1g:deb", arch)
        sonames = [d for d in zlib.provides if d.cls == "soname"]
        assert len(sonames) == 1 and sonames[0].name == f"{elf}/libz.so.1"
        assert {arch, "ZLIB_1.2.9"} <= sonames[0].flags  # found by appbuild's ELF scan
        libc = [d for d in zlib.requires if d.name == f"{elf}/libc.so.6"]
        assert libc and arch in libc[0].flags
        assert D("deb: libz1") in zlib.provides
        # Depends are recorded, not resolved
        assert any(r.startswith("libc6") for r in zlib.info["upstream_requires"])
        assert not any(d.cls == "deb" for d in zlib.requires)

    base = component(repo, "base-files:deb", "x86_64")
    assert "/etc/debian_version" in base.info["conffiles"]
    files = {f.path: f for f in base.files}
    assert files["/etc/debian_version"].config and not files["/usr/share/common-licenses/GPL-3"].config
    assert base.info["scripts"]["postinst"].startswith("#!/bin/sh")
    assert "awk" in base.info["upstream_pre_depends"]
    assert repo.store.read(base.info["deb_control_blob"])  # the whole control archive is kept

    show = run_appbuild(settings, "show", "zlib1g", "--deps", "--arch", "x86").stdout
    assert "zlib1g:deb" in show and "upstream requires (deb):" in show and "libc6 (>= " in show
    assert "not resolved: appbuild's ELF scan decides" in show


def test_reimport_through_apt_is_a_no_op_without_download(deb_repo):
    import shutil

    from appbuilder.upstream.lookaside import Lookaside

    settings, _ = deb_repo
    repo = open_repo(settings)
    lookaside = Lookaside(settings.lookaside)
    shas = [repo.get(repo.find_one(n, arch=a)).info["capsule_sha256"]
            for n, a in (("zlib1g", "x86"), ("busybox-static", "x86_64"))]
    for sha in shas:  # forget the downloads: a no-op must not fetch them again
        assert lookaside.cached(sha) is not None
        shutil.rmtree(lookaside.entry_dir(sha))
    again = run_appbuild(settings, "import", "deb", "zlib1g:i386", "busybox-static")
    lines = again.stdout.splitlines()
    assert len(lines) == 2 and all("already imported" in line for line in lines)
    assert all(lookaside.cached(sha) is None for sha in shas)


def test_staged_debian_busybox_runs(deb_repo, tmp_path):
    settings, _ = deb_repo
    repo = open_repo(settings)
    materialize(repo.store, [component(repo, "busybox-static:deb", "x86")], tmp_path)
    out = subprocess.run([str(tmp_path / "bin/busybox"), "echo", "capsule"], capture_output=True, text=True)
    assert out.stdout == "capsule\n"


def test_unknown_debian_package(workspace):
    proc = run_appbuild(workspace, "import", "deb", "no-such-package-anywhere", check=False, timeout=600)
    assert proc.returncode == 1 and "not in the machine's apt archives" in proc.stderr


# ----------------------------------------------------------------- .deb files, good and bad


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _member(name: str, *, data: bytes | None = None, kind=tarfile.REGTYPE, link: str = "", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 1700000000
    info.uname = info.gname = "root"
    if data is not None:
        info.size = len(data)
    return info, data


def hand_made_deb(dest: Path, data_members, *, arch: str = "all", name: str = "handmade") -> Path:
    """A .deb assembled with ar from tar archives written here (so members can be anything)."""
    work = dest.parent / f"{dest.stem}-parts"
    work.mkdir()
    control = f"Package: {name}\nVersion: 1.0-1\nArchitecture: {arch}\nMaintainer: t <t@example.invalid>\n" \
              "Description: hand made\n"
    (work / "debian-binary").write_text("2.0\n")
    (work / "control.tar.gz").write_bytes(_tar([_member("./control", data=control.encode())]))
    (work / "data.tar.gz").write_bytes(_tar(data_members))
    subprocess.run(["ar", "rcD", str(dest), "debian-binary", "control.tar.gz", "data.tar.gz"], cwd=work, check=True)
    return dest


def test_deb_file_with_conffiles_and_maintainer_scripts(workspace, tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "etc").mkdir()
    (pkg / "usr/bin").mkdir(parents=True)
    (pkg / "etc/demo.conf").write_text("setting = 1\n")
    (pkg / "usr/bin/demo").write_text("#!/bin/bash\necho demo\n")
    (pkg / "usr/bin/demo").chmod(0o755)
    (pkg / "DEBIAN/control").write_text(textwrap.dedent("""\
        Package: appbuild-demo
        Version: 2:1.0~rc1+dfsg-3
        Architecture: i386
        Maintainer: Test <test@example.invalid>
        Depends: bash (>= 5), libc6
        Provides: demo-tool
        Description: a hand-built package with a conffile and maintainer scripts
        """))
    (pkg / "DEBIAN/conffiles").write_text("/etc/demo.conf\n")
    for script in ("postinst", "prerm"):
        (pkg / "DEBIAN" / script).write_text(f"#!/bin/sh\necho {script}\n")
        (pkg / "DEBIAN" / script).chmod(0o755)
    deb = tmp_path / "appbuild-demo_1.0_i386.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(deb)], check=True, capture_output=True)
    out = run_appbuild(workspace, "import", "deb", str(deb)).stdout
    assert "imported appbuild-demo=cernvm@cvm:2/2:1.0~rc1+dfsg-3-1-1[is: x86]" in out
    trove = component(open_repo(workspace), "appbuild-demo:deb")
    assert trove.info["conffiles"] == ["/etc/demo.conf"]
    assert trove.info["scripts"] == {"postinst": "#!/bin/sh\necho postinst\n", "prerm": "#!/bin/sh\necho prerm\n"}
    assert trove.info["upstream_requires"] == ["bash (>= 5)", "libc6"]
    assert trove.requires == {D("file: /bin/bash")}  # what the files need, from the scan
    assert D("deb: demo-tool") in trove.provides
    assert "already imported" in run_appbuild(workspace, "import", "deb", str(deb), "--label", "cernvm@cvm:2").stdout
    assert "imported appbuild-demo=deb@debian:12/" in run_appbuild(
        workspace, "import", "deb", str(deb), "--label", "deb@debian:12").stdout


def test_bad_debs_are_refused(workspace, tmp_path):
    def refused(path: Path) -> str:
        proc = run_appbuild(workspace, "import", "deb", str(path), check=False)
        assert proc.returncode == 1, proc.stdout
        assert "Traceback" not in proc.stderr
        return proc.stderr

    good = hand_made_deb(tmp_path / "good.deb", [_member("./usr/share/x", data=b"x\n")])
    escape = hand_made_deb(tmp_path / "escape.deb", [_member("./usr/../../escape", data=b"x\n")])
    assert "escapes the root" in refused(escape)
    link_out = hand_made_deb(tmp_path / "link.deb", [
        _member("./usr/share/l", kind=tarfile.SYMTYPE, link="../../../../etc/shadow")])
    assert "points outside the root" in refused(link_out)
    through = hand_made_deb(tmp_path / "through.deb", [
        _member("./opt/etc", kind=tarfile.SYMTYPE, link="/etc"), _member("./opt/etc/passwd", data=b"root::0:0\n")])
    assert "lies below the symbolic link /opt/etc" in refused(through)
    hard = hand_made_deb(tmp_path / "hard.deb", [_member("./x", kind=tarfile.LNKTYPE, link="../../etc/passwd")])
    assert "escapes the root" in refused(hard)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.deb"
    truncated.write_bytes(data[: len(data) - 40])
    assert "truncated or corrupted" in refused(truncated)
    wrong = tmp_path / "wrong.deb"
    wrong.write_bytes(b"PK\x03\x04" + data[4:])
    assert "not a Debian package (wrong magic)" in refused(wrong)
    arch = hand_made_deb(tmp_path / "arm.deb", [_member("./x", data=b"x")], arch="arm64", name="armthing")
    assert "architecture 'arm64'" in refused(arch)
    assert open_repo(workspace).packages() == []
    assert "imported handmade=" in run_appbuild(workspace, "import", "deb", str(good)).stdout
