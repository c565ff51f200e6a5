"""A group of cooked packages, RPM capsules and DEB capsules, resolved together.

The RPM program (greeter) needs libhello.so.1: the cooked libhello provides it. Both
need the C library: Debian's libc6, imported as a DEB capsule, provides it (the
package's declared and scanned sonames are one vocabulary). The test asserts the exact
closure, why each member is there, the pins, the stable group version, and that the
32-bit build of the same libraries never stands in for the 64-bit ones.
"""

from __future__ import annotations

import dataclasses
import shutil

from appbuilder.graph.groups import find_group
from appbuilder.repository.repo import Repository
from tests.conftest import run_appbuild


def test_cooked_rpm_and_deb_troves_resolve_into_one_group(hello_repo, rpms, tmp_path):
    ws = tmp_path / "ws"
    (ws / "repo").mkdir(parents=True)
    (ws / "groups").mkdir()
    (ws / "recipes").mkdir()
    (ws / "repo" / "config.yaml").write_text("label: cernvm@cvm:2\n")
    settings = dataclasses.replace(hello_repo, workspace=ws, repository=tmp_path / "repo")
    shutil.copytree(hello_repo.repository, settings.repository)
    run_appbuild(settings, "import", "rpm", str(rpms.greeter64), str(rpms.greeter32))
    run_appbuild(settings, "import", "deb", "libc6", "libc6:i386")
    (ws / "groups" / "group-greeter.py").write_text(
        "class GroupGreeter(GroupRecipe):\n"
        "    name = 'group-greeter'\n"
        "    version = '1.0'\n\n"
        "    def setup(r):\n"
        "        r.add('greeter')\n"
    )
    out = run_appbuild(settings, "resolve", "group-greeter", "--arch", "all").stdout
    tables = out.split("MEMBER")[1:]
    for table, arch, elf in ((tables[0], "x86_64", "ELF64"), (tables[1], "x86", "ELF32")):
        rows = {line.split()[0]: line for line in table.splitlines()[1:] if line and not line.startswith("group-")}
        # a requirement brings in the component that meets it, not its whole package
        assert set(rows) == {"greeter", "greeter:rpm", "libhello:lib", "libc6:deb"}, table
        assert "named" in rows["greeter"] and "component of greeter" in rows["greeter:rpm"]
        assert f"greeter:rpm requires soname: {elf}/libhello.so.1(" in rows["libhello:lib"]  # cooked
        assert f"is: {arch}" in rows["libhello:lib"] and f"is: {arch}" in rows["libc6:deb"]
        assert "requires" in rows["libc6:deb"] and ("libc.so.6" in rows["libc6:deb"] or "ld-linux" in rows["libc6:deb"])
    assert "group-greeter=cernvm@cvm:2/1.0-1-1[is: x86_64]" in out and "group-greeter=cernvm@cvm:2/1.0-1-1[is: x86]" in out

    repo = Repository(settings.repository, settings.label)
    group = repo.get(find_group(repo, "group-greeter", "x86_64"), with_files=False)
    pins = {m.name: m for m in group.members}
    assert pins["greeter:rpm"].version.upstream == "2.0-1"  # an RPM's version-release
    assert pins["libc6:deb"].version.upstream.startswith("2.36-")  # Debian's version
    assert pins["libhello:lib"].version.revision == "1.0-1-1"  # a cooked package's
    assert all(m.flavor.arch == "x86_64" for m in group.members)

    again = run_appbuild(settings, "resolve", "group-greeter").stdout
    assert "group-greeter=cernvm@cvm:2/1.0-1-1[is: x86_64]" in again and "unchanged" in again
