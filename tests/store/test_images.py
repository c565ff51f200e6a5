"""The image store records every build: manifest.json + build.log beside the images, listed
by ``appbuild images``; a version rebuilt after newer packages were cooked is the very image
recorded (checked against the recorded sha256), and a rebuild that is not fails loudly."""

from __future__ import annotations

import json

import pytest

from appbuilder import __version__
from appbuilder.core.fileio import sha256_file
from appbuilder.store import manifest as mf
from appbuilder.store.images import ImageStore, revision_key
from tests.conftest import APPLIANCE_FORMATS, run_appbuild


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_every_build_is_recorded_with_a_manifest_and_log(appliance, arch):
    from appbuilder.repository.repo import Repository

    version = appliance.version[arch]
    directory = appliance.settings.images / "group-cernvm" / version / arch
    m = mf.load(directory)
    assert m is not None and m.arch == arch and m.revision == version
    repo = Repository(appliance.settings.repository, appliance.settings.label)
    try:
        from appbuilder.graph.groups import find_group

        group = repo.get(find_group(repo, "group-cernvm", arch, version), with_files=False)
    finally:
        repo.close()
    assert m.trove == str(group.nvf) and m.members == [str(n) for n in group.members]
    assert any(p.startswith("busybox=") for p in m.members) and any(p.startswith("linux-image-") for p in m.members)
    assert set(m.formats) == set(APPLIANCE_FORMATS.split(","))
    # every file the build printed is recorded with its real size and sha256
    printed = {p.name for fmt in APPLIANCE_FORMATS.split(",") for p in appliance.files[(arch, fmt)]}
    documents = {m.provenance, *getattr(m, "sboms", [])}  # what describes the images (store/provenance.py, SBOMs)
    assert set(m.files) - documents == printed and m.provenance in m.files
    for name in ("qcow2", "vmdk"):
        f = appliance.file(arch, name)
        assert m.files[f.name] == {"sha256": sha256_file(f), "size": f.stat().st_size}
    assert m.formats["ami"][0] == m.formats["raw"][0]  # one disk for both
    assert m.builder["version"] == __version__ and m.builder["name"] == "appbuild"
    assert m.kernel and m.installed_size > 0 and m.disk_size % (1 << 20) == 0
    assert m.built.endswith("Z") and m.updated >= m.built and m.builds
    log = (directory / mf.BUILD_LOG).read_text()
    assert log.startswith("== ") and "converting" in log and f"[{arch}] recorded" in log
    # the manifest was written last, atomically: no temporary files are left beside it
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]


def test_images_lists_shows_and_refuses_unknown_versions(appliance):
    s = appliance.settings
    listing = run_appbuild(s, "images").stdout
    for arch, version in appliance.version.items():
        assert any(line.split()[:3] == ["group-cernvm", version, arch] for line in listing.splitlines()), listing
    assert run_appbuild(s, "images", "group-cernvm").stdout == listing
    v = appliance.version["x86_64"]
    shown = run_appbuild(s, "images", "show", f"group-cernvm={v}", "--arch", "x86_64").stdout
    qcow2 = appliance.file("x86_64", "qcow2")
    recorded = mf.load(qcow2.parent)
    assert f"group-cernvm=cernvm@cvm:2/{v}[is: x86_64]" in shown
    assert f"sha256 {recorded.files[qcow2.name]['sha256']}" in shown and "build log:" in shown
    assert "busybox:runtime=cernvm@cvm:2/" in shown  # the pins
    as_json = json.loads(run_appbuild(s, "images", "show", f"group-cernvm={v}", "--json").stdout)
    assert {m["arch"] for m in as_json} == set(appliance.version)
    bad = run_appbuild(s, "images", "show", "group-cernvm=9.9-9-9", check=False)
    assert bad.returncode == 1 and "no recorded image group-cernvm=9.9-9-9" in bad.stderr and v in bad.stderr
    empty = run_appbuild(s, "images", "group-nothing")
    assert "no images of group-nothing" in empty.stdout


def test_revisions_sort_as_numbers():
    assert sorted(["1.0-1-10", "1.0-1-2", "1.0-2-1", "0.9-5-5", "1.10-1-1"], key=revision_key) == \
        ["0.9-5-5", "1.0-1-2", "1.0-1-10", "1.0-2-1", "1.10-1-1"]


@pytest.mark.slow
def test_diff_names_the_package_that_changed(two_versions):
    s = two_versions.settings
    out = run_appbuild(s, "images", "diff", two_versions.old, two_versions.new).stdout
    lines = out.splitlines()
    assert lines[0] == f"group-cernvm={two_versions.old} -> group-cernvm={two_versions.new} (x86_64)"
    store = ImageStore(s.images)
    old_pin = store.manifest("group-cernvm", two_versions.old, "x86_64").package_pins()["base-files"]
    new_pin = store.manifest("group-cernvm", two_versions.new, "x86_64").package_pins()["base-files"]
    assert old_pin != new_pin
    changed = [line.split() for line in lines if line.strip().startswith("changed")]
    assert changed == [["changed", "base-files", old_pin, "->", new_pin]]
    assert lines[-1].strip().startswith("1 changed, 0 added, 0 removed,")
    again = run_appbuild(s, "images", "diff", f"group-cernvm={two_versions.new}", f"group-cernvm={two_versions.old}")
    assert f"changed  base-files  {new_pin} -> {old_pin}" in again.stdout


@pytest.mark.slow
def test_an_old_version_rebuilt_after_newer_cooks_is_byte_identical(appliance, two_versions):
    """base-files was changed and cooked (two_versions.new uses it); the old version, rebuilt
    from its pins, still gives the recorded bytes: the build checks them, and so do we."""
    s = two_versions.settings
    old = two_versions.old
    store = ImageStore(s.images)
    recorded = store.manifest("group-cernvm", old, "x86_64")
    assert "cooked base-files=cernvm@cvm:2/" in two_versions.new_output
    before = {name: (store.directory("group-cernvm", old, "x86_64") / name).stat().st_ino for name in recorded.files}
    proc = run_appbuild(s, "group-cernvm", "--version", old, "--arch", "x86_64", "--format", "raw,qcow2,vmdk,ova",
                        "--force")
    assert "rebuilding group-cernvm=" in proc.stdout
    directory = store.directory("group-cernvm", old, "x86_64")
    rebuilt = [n for fmt in ("raw", "qcow2", "vmdk", "ova") for n in recorded.formats[fmt]]
    for name in rebuilt:
        assert (directory / name).stat().st_ino != before[name], f"{name} was not rebuilt"
        assert sha256_file(directory / name) == recorded.files[name]["sha256"], f"{name} differs from the recorded image"
        original = appliance.settings.images / "group-cernvm" / old / "x86_64" / name
        assert sha256_file(directory / name) == sha256_file(original)
    after = store.manifest("group-cernvm", old, "x86_64")
    assert after.files == recorded.files and len(after.builds) == len(recorded.builds) + 1
    assert after.built == recorded.built and after.updated >= recorded.updated
    assert (directory / mf.BUILD_LOG).read_text().count("\n== ") >= 1  # the second build's log was appended


@pytest.mark.slow
def test_a_rebuild_that_differs_from_the_record_fails_and_keeps_the_store(two_versions):
    s = two_versions.settings
    store = ImageStore(s.images)
    new = two_versions.new
    directory = store.directory("group-cernvm", new, "x86_64")
    m = store.manifest("group-cernvm", new, "x86_64")
    qcow2 = m.formats["qcow2"][0]
    true_sha = m.files[qcow2]["sha256"]
    # pretend the recorded image was different: what a changed builder would produce
    m.files[qcow2]["sha256"] = "0" * 64
    mf.save(directory, m)
    try:
        inode = (directory / qcow2).stat().st_ino
        proc = run_appbuild(s, "group-cernvm", "--version", new, "--arch", "x86_64", "--format", "qcow2", "--force",
                            check=False)
        assert proc.returncode == 1
        assert "did not rebuild to the bytes recorded" in proc.stderr and "nothing was written" in proc.stderr
        assert f"recorded sha256 {'0' * 64}" in proc.stderr and f"now {true_sha}" in proc.stderr
        assert (directory / qcow2).stat().st_ino == inode
        assert store.manifest("group-cernvm", new, "x86_64").files[qcow2]["sha256"] == "0" * 64
        assert not list(s.images.glob(".tmp-*"))
    finally:
        m.files[qcow2]["sha256"] = true_sha
        mf.save(directory, m)


@pytest.mark.slow
def test_a_forced_rebuild_reuses_the_kept_root_file_system_and_checks_it(appliance):
    """A rebuild of identical inputs writes the ext4 partition an earlier build kept (no staging,
    no mke2fs): the same bytes. A kept partition that was damaged is noticed and built again."""
    s, version = appliance.settings, appliance.version["x86_64"]
    store = ImageStore(s.images)
    recorded = store.manifest("group-cernvm", version, "x86_64")
    raw = store.directory("group-cernvm", version, "x86_64") / recorded.formats["raw"][0]
    args = ("group-cernvm", "--version", version, "--arch", "x86_64", "--format", "raw", "--force")
    run_appbuild(s, *args)  # keeps the partition again, should later builds have pushed it out
    again = run_appbuild(s, *args)
    assert "the partition of an identical earlier build reused" in again.stdout, again.stdout
    assert "staging" not in again.stdout and "mke2fs" not in again.stdout
    assert sha256_file(raw) == recorded.files[raw.name]["sha256"]
    kept = max((s.cache / "rootfs").glob("*.ext4"), key=lambda p: p.stat().st_mtime)
    with open(kept, "r+b") as f:  # one flipped byte in the superblock
        f.seek(1024 + 100)
        byte = f.read(1)
        f.seek(1024 + 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    damaged = run_appbuild(s, *args)
    assert "is damaged (its sha256 is not the recorded one)" in damaged.stdout, damaged.stdout
    assert "staging" in damaged.stdout and "reused" not in damaged.stdout
    assert sha256_file(raw) == recorded.files[raw.name]["sha256"]
