"""The inventory of a closure mixing the three kinds of packages (here, beside the RPMs
this folder builds): a cooked libhello, the RPM capsule greeter (License: MIT, built
from greeter-2.0-1.src.rpm) and Debian's libc6. Its SBOMs pass the SPDX project's own
validator and the CycloneDX 1.6 schema, name each package with its upstream source,
license and package URL, and are the same bytes when made again; the dpkg database
made for the DEB capsules is read by the real dpkg-query.

(The group-cernvm image's inventory is checked in tests/verify/test_inventory.py.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from appbuilder.assemble.sbom import CDX_SUFFIX, SPDX_SUFFIX, make_inventory
from appbuilder.capsule.dpkgdb import dpkg_database
from appbuilder.graph.groups import find_group, staged_troves
from appbuilder.repository.repo import Repository
from tests.conftest import PROJECT, run_appbuild

EPOCH = 1700000000


@pytest.fixture(scope="module")
def greeter_group(hello_repo, rpms, tmp_path_factory):
    """group-greeter (x86_64): greeter (RPM) needs libhello.so.1 (cooked) and the C library (libc6)."""
    root = tmp_path_factory.mktemp("inventory")
    ws = root / "ws"
    for d in ("repo", "groups", "recipes"):
        (ws / d).mkdir(parents=True)
    (ws / "repo" / "config.yaml").write_text("label: cernvm@cvm:2\n")
    settings = dataclasses.replace(hello_repo, workspace=ws, repository=root / "repo")
    shutil.copytree(hello_repo.repository, settings.repository)
    run_appbuild(settings, "import", "rpm", str(rpms.greeter64))
    run_appbuild(settings, "import", "deb", "libc6")
    (ws / "groups" / "group-greeter.py").write_text(
        "class GroupGreeter(GroupRecipe):\n    name = 'group-greeter'\n    version = '1.0'\n\n"
        "    def setup(r):\n        r.add('greeter')\n")
    run_appbuild(settings, "resolve", "group-greeter", "--arch", "x86_64")
    repo = Repository(settings.repository, settings.label)
    group = repo.get(find_group(repo, "group-greeter", "x86_64"), with_files=False)
    return repo, group, staged_troves(repo, group)


def test_sboms_of_cooked_rpm_and_deb_members_validate_and_name_their_sources(greeter_group, rpms, tmp_path):
    repo, group, troves = greeter_group
    inventory = make_inventory(repo, group, troves, arch="x86_64", source_date_epoch=EPOCH)
    sboms = inventory.sbom_bytes()
    assert sboms == make_inventory(repo, group, troves, arch="x86_64", source_date_epoch=EPOCH).sbom_bytes()

    (tmp_path / "sbom.spdx.json").write_bytes(sboms[SPDX_SUFFIX])
    messages = validate_full_spdx_document(parse_file(str(tmp_path / "sbom.spdx.json")))
    assert [m.validation_message for m in messages] == []
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sboms[CDX_SUFFIX].decode()) is None

    spdx = json.loads(sboms[SPDX_SUFFIX])
    packages = {p["name"]: p for p in spdx["packages"]}
    assert {"greeter", "libhello", "libc6"} <= set(packages)

    def purl(p):
        return next(r["referenceLocator"] for r in p["externalRefs"] if r["referenceType"] == "purl")

    def generated_from(p):
        return [packages_by_id[r["relatedSpdxElement"]] for r in spdx["relationships"]
                if r["spdxElementId"] == p["SPDXID"] and r["relationshipType"] == "GENERATED_FROM"]

    packages_by_id = {p["SPDXID"]: p for p in spdx["packages"]}
    # the RPM: its License tag, its own version-release, its source RPM and the .rpm's sha256
    greeter = packages["greeter"]
    assert greeter["versionInfo"] == "2.0-1" and greeter["licenseDeclared"] == "MIT"
    assert purl(greeter) == "pkg:rpm/greeter@2.0-1?arch=x86_64&upstream=greeter-2.0-1.src.rpm"
    assert greeter["checksums"] == [{"algorithm": "SHA256",
                                     "checksumValue": hashlib.sha256(rpms.greeter64.read_bytes()).hexdigest()}]
    assert [s["name"] for s in generated_from(greeter)] == ["greeter-2.0-1.src.rpm"]
    assert "./usr/bin/greeter" in {f["fileName"] for f in spdx["files"]}
    # the cooked library: the files beside its recipe, with the sha256 they had when cooked
    libhello = packages["libhello"]
    assert purl(libhello) == "pkg:generic/libhello@1.0" and libhello["versionInfo"] == "1.0"
    hello_c = hashlib.sha256((PROJECT / "recipes" / "libhello" / "hello.c").read_bytes()).hexdigest()
    assert f"hello.c sha256:{hello_c}" in libhello["sourceInfo"]
    # the DEB: Debian's version, its source package, the trove version in an external reference
    libc6 = packages["libc6"]
    version = libc6["versionInfo"]
    assert version.startswith("2.36-") and purl(libc6).startswith("pkg:deb/debian/libc6@2.36-")
    assert purl(libc6).endswith("?arch=amd64&upstream=glibc")
    assert [(s["name"], s["versionInfo"]) for s in generated_from(libc6)] == [("glibc", version)]
    trove = next(r["referenceLocator"] for r in libc6["externalRefs"] if r["referenceType"] == "appbuild-trove")
    assert trove == f"libc6={next(str(m.version) for m in group.members if m.name == 'libc6:deb')}"
    # every file a member put in, with both checksums; the verification code is over their SHA-1s
    files = {f["SPDXID"]: f for f in spdx["files"]}
    contained = [files[r["relatedSpdxElement"]] for r in spdx["relationships"]
                 if r["spdxElementId"] == libc6["SPDXID"] and r["relationshipType"] == "CONTAINS"]
    libc = next(f for f in contained if f["fileName"] == "./lib/x86_64-linux-gnu/libc.so.6")
    entry = next(f for t in troves for f in t.files if f.path == "/lib/x86_64-linux-gnu/libc.so.6")
    data = repo.store.read(entry.sha256)
    assert {c["algorithm"]: c["checksumValue"] for c in libc["checksums"]} == {
        "SHA1": hashlib.sha1(data).hexdigest(), "SHA256": hashlib.sha256(data).hexdigest()}
    sha1s = sorted(next(c["checksumValue"] for c in f["checksums"] if c["algorithm"] == "SHA1") for f in contained)
    assert libc6["packageVerificationCode"]["packageVerificationCodeValue"] == \
        hashlib.sha1("".join(sha1s).encode()).hexdigest()

    cdx = json.loads(sboms[CDX_SUFFIX])
    components = {c["name"]: c for c in cdx["components"]}
    assert components["greeter"]["licenses"] == [{"expression": "MIT"}]
    assert components["libc6"]["pedigree"]["ancestors"][0]["purl"].startswith("pkg:deb/debian/glibc@2.36-")
    assert {p["value"] for p in components["libc6"]["properties"] if p["name"] == "appbuild:trove"} == \
        {str(m) for m in group.members if m.name == "libc6:deb"}
    assert cdx["serialNumber"] == f"urn:uuid:{inventory.uuid('cyclonedx')}"
    assert cdx["metadata"]["timestamp"] == spdx["creationInfo"]["created"] == "2023-11-14T22:13:20Z"

    # the validators are not blind: a file without its SHA-1, a component without a name
    spdx["files"][0]["checksums"] = [c for c in spdx["files"][0]["checksums"] if c["algorithm"] != "SHA1"]
    (tmp_path / "broken.spdx.json").write_text(json.dumps(spdx))
    assert validate_full_spdx_document(parse_file(str(tmp_path / "broken.spdx.json")))
    del cdx["components"][0]["name"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(cdx)) is not None


def test_the_dpkg_database_is_read_by_dpkg_query(greeter_group, tmp_path):
    repo, group, troves = greeter_group
    for path, data in dpkg_database(repo.store, troves):
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    admin = tmp_path / "var/lib/dpkg"
    (admin / "updates").mkdir()
    query = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f",
                            "${Package} ${Architecture} ${Version} ${db:Status-Status} ${source:Package}\n"],
                           capture_output=True, text=True, check=True)
    rows = [line.split() for line in query.stdout.splitlines()]
    assert len(rows) == 1 and rows[0][0:2] == ["libc6", "amd64"], query.stdout  # the RPM is not a dpkg package
    assert rows[0][2].startswith("2.36-") and rows[0][3:] == ["installed", "glibc"]
    listed = subprocess.run(["dpkg-query", f"--admindir={admin}", "-L", "libc6"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert "/lib/x86_64-linux-gnu/libc.so.6" in listed
