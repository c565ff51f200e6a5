"""busybox cooked from Debian's source package (through the machine's apt, with a
derived deb-src entry), statically linked, for both architectures. The session's
``appliance`` fixture cooked it through the real command line; here we check what came
out and where it came from."""

from __future__ import annotations

import pytest

from appbuilder.repository.repo import Repository

DSC_SHA256 = "9c01fe128b0eeded371c70e37d474fdb5055f71b5d0a778db44c6b0c62d3a7fa"


@pytest.mark.slow
@pytest.mark.parametrize("arch, elf", [("x86_64", "ELF64 x86_64"), ("x86", "ELF32 x86")])
def test_busybox_from_the_debian_source_package_is_static(appliance, arch, elf):
    s = appliance.settings
    repo = Repository(s.repository, s.label)
    runtime = repo.get(repo.find_one("busybox:runtime", arch=arch))
    assert runtime.info["elf"] == [elf]
    # statically linked: no shared library, no dynamic loader
    assert not [d for d in runtime.requires if d.cls == "soname"]
    files = {f.path: f for f in runtime.files}
    assert files["/bin/busybox"].type == "file" and files["/bin/sh"].target == "/bin/busybox"
    assert len([f for f in runtime.files if f.type == "symlink"]) > 200  # one link per applet

    package = repo.get(repo.find_one("busybox", arch=arch), with_files=False)
    log = repo.store.read(repo.build_log(package.nvf)).decode(errors="replace")
    assert "debian source busybox=1:1.35.0-4+deb12u1" in log
    assert "dpkg-source: info: extracting busybox" in log and "applying" in log  # Debian's patches applied

    # the .dsc and the tarballs it lists are kept in the lookaside cache under the pinned hash
    entry = s.lookaside / DSC_SHA256[:2] / DSC_SHA256
    names = sorted(p.name for p in entry.iterdir())
    assert names[0].endswith(".debian.tar.xz") and any(n.endswith(".dsc") for n in names)
    assert any(n.endswith(".orig.tar.bz2") for n in names)
