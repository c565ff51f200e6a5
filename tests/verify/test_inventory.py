"""The inventory of the session's group-cernvm (the ``appliance`` fixture, both
architectures): its SPDX 2.3 and CycloneDX 1.6 SBOMs beside the images in the store
pass the SPDX project's own validator and the CycloneDX schema, agree with the store's
manifest, name glibc 2.36 and OpenSSL 3.0 with their Debian sources and package URLs,
are the very files the image carries, and are the same bytes when the version is built
again; the image's dpkg database is read by the real dpkg (dpkg-query, dpkg --verify
against Debian's own md5sums); ``appbuild inspect --inventory`` and ``appliance query``
in the booted guest print the same lines."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from appbuilder.assemble.sbom import CDX_PATH, INVENTORY_PATH, SPDX_PATH
from appbuilder.context.drive import make_config_drive
from appbuilder.core.fileio import sha256_file
from appbuilder.store import manifest as mf
from appbuilder.verify.boot import BOOT_MARKER, BootOptions
from appbuilder.verify.inspect import ImageReport, mbr_partitions, report_lines
from tests.conftest import run_appbuild
from tests.guest import RunningGuest

DEB_ARCH = {"x86_64": "amd64", "x86": "i386"}
TRIPLET = {"x86_64": "x86_64-linux-gnu", "x86": "i386-linux-gnu"}


def stored(appliance, arch: str) -> tuple[Path, mf.Manifest]:
    directory = appliance.settings.images / "group-cernvm" / appliance.version[arch] / arch
    return directory, mf.load(directory)


def sboms(appliance, arch: str) -> tuple[Path, Path]:
    directory, manifest = stored(appliance, arch)
    base = f"group-cernvm-{appliance.version[arch]}-{arch}"
    assert manifest.sboms == [f"{base}.cdx.json", f"{base}.spdx.json"]
    for name in manifest.sboms:  # recorded files: publish carries them, rebuilds must match them
        path = directory / name
        assert manifest.files[name] == {"sha256": sha256_file(path), "size": path.stat().st_size}
    return directory / f"{base}.spdx.json", directory / f"{base}.cdx.json"


def purl(package: dict) -> str:
    return next(r["referenceLocator"] for r in package["externalRefs"] if r["referenceType"] == "purl")


def root_fs(appliance, arch: str, dest: Path) -> Path:
    """The root file system (partition 2) of the raw image, copied out."""
    raw = next(p for p in appliance.files[(arch, "raw")] if p.suffix == ".raw")
    with open(raw, "rb") as src:
        _, start, size, _, _ = mbr_partitions(src.read(512))[1]
        src.seek(start)
        with open(dest, "wb") as out:
            while size:
                chunk = src.read(min(size, 1 << 22))
                out.write(chunk)
                size -= len(chunk)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_the_sboms_validate_and_agree_with_the_manifest(appliance, arch):
    spdx_path, cdx_path = sboms(appliance, arch)
    messages = validate_full_spdx_document(parse_file(str(spdx_path)))
    assert [m.validation_message for m in messages] == []
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx_path.read_text()) is None

    _, manifest = stored(appliance, arch)
    spdx, cdx = json.loads(spdx_path.read_text()), json.loads(cdx_path.read_text())
    assert spdx["creationInfo"]["created"] == cdx["metadata"]["timestamp"] == \
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(manifest.source_date_epoch))
    # every package the manifest pins is named, with its trove version (and nothing else is)
    pinned = {f"{m.split('=', 1)[0].split(':', 1)[0]}={m.split('=', 1)[1].split('[', 1)[0]}" for m in manifest.members}
    named = {r["referenceLocator"] for p in spdx["packages"] if p["SPDXID"] != "SPDXRef-Image"
             for r in p.get("externalRefs", []) if r["referenceType"] == "appbuild-trove"}
    assert named == pinned
    image = next(p for p in spdx["packages"] if p["SPDXID"] == "SPDXRef-Image")
    assert (image["name"], image["versionInfo"]) == ("group-cernvm", manifest.version)
    troves = {p["value"] for c in cdx["components"] for p in c["properties"] if p["name"] == "appbuild:trove"}
    assert troves == {m for m in manifest.members if not m.startswith("group-")}
    # files: SPDX and CycloneDX list the same paths with the same hashes
    spdx_files = {f["fileName"][1:]: {c["algorithm"]: c["checksumValue"] for c in f["checksums"]}
                  for f in spdx["files"]}
    cdx_files = {f["name"]: {h["alg"].replace("-", ""): h["content"] for h in f["hashes"]}
                 for c in cdx["components"] for f in c.get("components", [])}
    assert spdx_files == cdx_files and f"/lib/{TRIPLET[arch]}/libc.so.6" in spdx_files
    assert "/bin/busybox" in spdx_files


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_glibc_and_openssl_with_their_debian_sources(appliance, arch):
    spdx_path, cdx_path = sboms(appliance, arch)
    spdx, cdx = json.loads(spdx_path.read_text()), json.loads(cdx_path.read_text())
    packages = {p["name"]: p for p in spdx["packages"] if p.get("primaryPackagePurpose") != "SOURCE"}
    by_id = {p["SPDXID"]: p for p in spdx["packages"]}
    components = {c["name"]: c for c in cdx["components"]}
    for name, version, source in (("libc6", "2.36-", "glibc"), ("libsodium23", "1.0.18-", "libsodium")):
        package = packages[name]
        assert package["versionInfo"].startswith(version), package
        assert purl(package).startswith(f"pkg:deb/debian/{name}@{version}") and \
            purl(package).endswith(f"?arch={DEB_ARCH[arch]}&upstream={source}"), purl(package)
        made_from = [by_id[r["relatedSpdxElement"]] for r in spdx["relationships"]
                     if r["spdxElementId"] == package["SPDXID"] and r["relationshipType"] == "GENERATED_FROM"]
        assert [(s["name"], s["versionInfo"], purl(s)) for s in made_from] == [
            (source, package["versionInfo"],
             f"pkg:deb/debian/{source}@{package['versionInfo'].replace('+', '%2B')}?arch=source")]
        assert package["packageFileName"] == f"{name}_{package['versionInfo']}_{DEB_ARCH[arch]}.deb"
        component = components[name]
        assert (component["version"], component["purl"]) == (package["versionInfo"], purl(package))
        assert component["pedigree"]["ancestors"][0]["name"] == source
        assert component["hashes"] == [{"alg": "SHA-256", "content": package["checksums"][0]["checksumValue"]}]
    assert packages["libsodium23"]["licenseDeclared"].startswith("ISC")  # from its DEP-5 copyright file
    assert packages["busybox"]["licenseDeclared"] == "GPL-2.0-only"  # the recipe's
    assert "Debian source busybox 1:1.35.0-4+deb12u1" in packages["busybox"]["sourceInfo"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_the_image_carries_its_sboms_and_a_dpkg_database(appliance, arch, tmp_path):
    fs = root_fs(appliance, arch, tmp_path / "root.ext4")
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["debugfs", "-R", f"rdump / {root}", str(fs)], check=True, capture_output=True)
    spdx_path, cdx_path = sboms(appliance, arch)
    assert (root / SPDX_PATH[1:]).read_bytes() == spdx_path.read_bytes()
    assert (root / CDX_PATH[1:]).read_bytes() == cdx_path.read_bytes()
    assert (root / INVENTORY_PATH[1:]).read_text().startswith(
        f"inventory of group-cernvm=cernvm@cvm:2/{appliance.version[arch]}[is: {arch}]: ")

    admin = root / "var/lib/dpkg"
    query = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f",
                            "${Package} ${Architecture} ${Version} ${db:Status-Abbrev} ${source:Package}\n"],
                           capture_output=True, text=True, check=True)
    rows = {line.split()[0]: line.split()[1:] for line in query.stdout.splitlines()}
    assert rows["libc6"][0] == DEB_ARCH[arch] and rows["libc6"][1].startswith("2.36-")
    assert rows["libc6"][2:] == ["ii", "glibc"]
    assert rows["libsodium23"][1].startswith("1.0.18-") and rows["libsodium23"][2:] == ["ii", "libsodium"]
    assert any(name.startswith("linux-image-") for name in rows)
    listed = subprocess.run(["dpkg-query", f"--admindir={admin}", "-L", "libc6"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    libc = f"/lib/{TRIPLET[arch]}/libc.so.6"
    assert libc in listed and (root / libc[1:]).is_file()
    # dpkg checks every listed file against the package's own md5sums: only the kernel and its
    # config, on the boot partition (not in this copy of the root file system), are missing
    verify = subprocess.run(["dpkg", f"--root={root}", "--verify"], capture_output=True, text=True)
    problems = verify.stdout.splitlines()
    assert verify.returncode == 0 and problems and all(re.match(r"^missing\s+/boot/", p) for p in problems), \
        verify.stdout + verify.stderr


@pytest.mark.slow
def test_building_the_version_again_gives_the_same_sboms(appliance, tmp_path):
    out = tmp_path / "again"
    run_appbuild(appliance.settings, "group-cernvm", "--version", appliance.version["x86"], "--arch", "x86",
                 "--format", "raw", "--no-cook", "--output", str(out))
    spdx_path, cdx_path = sboms(appliance, "x86")
    raw = next(p for p in appliance.files[("x86", "raw")] if p.suffix == ".raw")
    for original in (spdx_path, cdx_path, raw):
        assert hashlib.sha256((out / original.name).read_bytes()).digest() == \
            hashlib.sha256(original.read_bytes()).digest(), f"{original.name} differs between two builds"


def test_inspect_shows_the_inventory_after_the_troves():
    report = ImageReport("x.raw", "raw", "raw", 1 << 20, 1 << 20, root="/dev/sda2", troves=["a=l@n:t/1-1-1[]"],
                         inventory=["inventory of g: 1 packages", "PACKAGE  VERSION", "a        l@n:t/1-1-1"])
    lines = report_lines(report)
    at = lines.index(f"inventory:    from {INVENTORY_PATH} on /dev/sda2")
    assert lines[at + 1:] == [f"  {line}" for line in report.inventory]


USER_DATA = """[cernvm]
users = auditor:auditor:s3cret
contextualization_command = auditor:/media/context/query.sh
"""
QUERY_SCRIPT = """#!/bin/sh
# run by cernvm-context as an unprivileged user
echo "QUERY begin $(id -un)"
appliance query | sed 's/^/INVENTORY|/'
appliance query libsodium23 libc6 | sed 's/^/PICKED|/'
appliance query no-such-package 2>&1 | sed 's/^/MISSING|/'
echo "QUERY end"
"""


@pytest.mark.slow
def test_inspect_and_the_guest_print_the_same_inventory(appliance, tmp_path):
    qcow2 = next(p for p in appliance.files[("x86_64", "qcow2")] if p.suffix == ".qcow2")
    outside = run_appbuild(appliance.settings, "inspect", "--inventory", str(qcow2), timeout=900).stdout.splitlines()
    version = appliance.version["x86_64"]
    assert outside[0].startswith(f"inventory of group-cernvm=cernvm@cvm:2/{version}[is: x86_64]: ")
    assert outside[1].split() == ["PACKAGE", "VERSION", "ARCH", "KIND", "UPSTREAM", "SOURCE", "LICENSE"]
    rows = {line.split()[0]: line for line in outside[2:]}
    assert int(outside[0].rsplit(": ", 1)[1].split()[0]) == len(rows)
    assert re.match(r"libc6 +cernvm@cvm:2/2\.36-\S+ +x86_64 +deb +debian:glibc=2\.36-", rows["libc6"])
    assert re.match(r"libsodium23 +cernvm@cvm:2/1\.0\.18\S+ +x86_64 +deb +debian:libsodium=1\.0\.18\S+ +ISC",
                    rows["libsodium23"])

    (tmp_path / "user-data.ini").write_text(USER_DATA)
    (tmp_path / "query.sh").write_text(QUERY_SCRIPT)
    os.chmod(tmp_path / "query.sh", 0o755)
    ctx = make_config_drive(tmp_path / "user-data.ini", tmp_path / "ctx.iso", extra=[tmp_path / "query.sh"])
    opts = BootOptions(arch="x86_64", drive_format="qcow2", timeout=180, extra_drives=[(ctx.path, "raw", "virtio")])
    with RunningGuest(qcow2, opts) as guest:
        guest.wait_for(BOOT_MARKER)
        assert guest.wait_for("QUERY begin", timeout=180).endswith("QUERY begin auditor")
        guest.wait_for("QUERY end", timeout=60)
        console = guest.lines

    def tagged(tag: str) -> list[str]:
        return [line.split(f"{tag}|", 1)[1] for line in console if f"{tag}|" in line]

    assert tagged("INVENTORY") == outside
    assert tagged("PICKED") == [rows["libsodium23"], rows["libc6"]]
    assert tagged("MISSING") == ["appliance: no package no-such-package in the inventory"]


@pytest.mark.slow
def test_publish_carries_the_sboms(appliance, tmp_path):
    version = appliance.version["x86_64"]
    run_appbuild(appliance.settings, "publish", f"group-cernvm={version}", "--arch", "x86_64", "--format", "qcow2",
                 "--unsigned", "--to", str(tmp_path / "www"))
    release = tmp_path / "www" / "group-cernvm" / version / "x86_64"
    spdx_path, cdx_path = sboms(appliance, "x86_64")
    for sbom in (spdx_path, cdx_path):
        assert (release / sbom.name).read_bytes() == sbom.read_bytes()
        assert f"  {sbom.name}\n" in (release / "SHA256SUMS").read_text()
        assert sbom.name in json.loads((release / "manifest.json").read_text())["files"]
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=release, capture_output=True).returncode == 0
