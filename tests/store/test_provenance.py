"""The provenance statement each build writes beside its images (``store/provenance.py``).

Checked against the in-toto attestation framework's own definitions (its Python bindings:
the Statement and SLSA Provenance v1 messages, parsed strictly, and the Statement's and
ResourceDescriptors' validation), against the SLSA v1 fields a consumer requires, against
the files and pins the manifest records, and for reproducibility: made again from the
repository it gives the very bytes the build wrote.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from appbuilder.core.fileio import sha256_file
from appbuilder.store import manifest as mf
from appbuilder.store import provenance
from tests.conftest import PROJECT

GROUP = "group-cernvm"


def validate_in_toto(doc: dict) -> None:
    """Parse and validate *doc* with the in-toto attestation framework's bindings (strict: a
    field its definitions do not have is an error)."""
    attestation = pytest.importorskip("in_toto_attestation", reason="in-toto-attestation is in the test extras")
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    assert attestation
    pb = json_format.ParseDict(doc, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    predicate = json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
    for rd in [*predicate.build_definition.resolved_dependencies, *pb.subject]:
        ResourceDescriptor.copy_from_pb(rd).validate()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["x86_64", "x86"])
def test_each_build_writes_a_valid_reproducible_statement(appliance, arch):
    from appbuilder.graph.groups import staged_troves
    from appbuilder.repository.repo import Repository
    from appbuilder.repository.versions import NVF

    directory = appliance.settings.images / GROUP / appliance.version[arch] / arch
    m = mf.load(directory)
    assert m.provenance == f"{GROUP}-{appliance.version[arch]}-{arch}.provenance.json"
    data = (directory / m.provenance).read_bytes()
    assert m.files[m.provenance] == {"sha256": sha256_file(directory / m.provenance), "size": len(data)}
    doc = json.loads(data)
    validate_in_toto(doc)

    # in-toto v1 Statement: every image file with its sha256 (not the manifest, the log, the SBOMs)
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    images = sorted({n for names in m.formats.values() for n in names})
    assert [s["name"] for s in doc["subject"]] == images and len(images) >= 8
    for s in doc["subject"]:
        assert s["digest"] == {"sha256": sha256_file(directory / s["name"])}

    # SLSA Provenance v1: the fields it requires, and what appbuild puts in them
    assert doc["predicateType"] == "https://slsa.dev/provenance/v1"
    build = doc["predicate"]["buildDefinition"]
    assert build["buildType"].startswith("https://") and "group-image" in build["buildType"]
    assert build["externalParameters"] == {"group": GROUP, "version": m.version, "arch": arch,
                                           "formats": sorted(m.formats)}
    assert build["internalParameters"] == {"sourceDateEpoch": m.source_date_epoch, "diskSize": m.disk_size,
                                           "kernel": m.kernel}
    builder = doc["predicate"]["runDetails"]["builder"]
    assert builder["version"]["appbuild"] == m.builder["version"]
    assert builder["id"].startswith(f"{provenance.BUILDER_ID}/appbuild@{m.builder['version']}")
    if (PROJECT / ".git").exists():
        head = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        assert builder["version"]["commit"] == head and builder["id"].endswith(f"+git.{head}")
    assert "metadata" not in doc["predicate"]["runDetails"]  # no wall-clock times

    # the materials: every pin of the manifest, the group recipe, recipe files, upstream packages, toolchain
    deps = build["resolvedDependencies"]
    kinds: dict[str, list[dict]] = {}
    for d in deps:
        kinds.setdefault(d["annotations"]["appbuild"], []).append(d)
        assert d.get("digest") or d.get("uri") or d["annotations"].get("note"), d
    assert {d["name"] for d in kinds["trove"]} == set(m.members)
    assert [d["name"] for d in kinds["group"]] == [m.trove]
    assert kinds["group-recipe"] == [{"name": f"groups/{GROUP}.py", "annotations": {"appbuild": "group-recipe"},
                                      "digest": {"sha256": sha256_file(PROJECT / "groups" / f"{GROUP}.py")}}]
    recipes = {d["name"]: d["digest"]["sha256"] for d in kinds["recipe"] if "digest" in d}
    assert "recipes/busybox/recipe.py" in recipes
    for name, digest in recipes.items():  # the workspace's recipes cooked this build
        assert sha256_file(appliance.settings.workspace / name) == digest, name
    upstream = kinds["upstream-package"]
    capsules = {member.split("=", 1)[0].split(":", 1)[0] for member in m.members if ":deb=" in member}
    assert {d["annotations"]["package"].split("=", 1)[0] for d in upstream} == capsules
    for d in upstream:
        assert d["name"].endswith(".deb") and d["uri"].startswith("pkg:deb/debian/") and len(d["digest"]["sha256"]) == 64
    assert any(d.get("uri", "").startswith("pkg:deb/debian/busybox@") and d["uri"].endswith("?arch=source")
               for d in kinds["source"])  # busybox is cooked from its Debian source package
    assert [d["name"].split("=", 1)[0] for d in kinds["toolchain"]] == ["group-toolchain"]

    # no clock in it: made again from the repository, the same bytes
    repo = Repository(appliance.settings.repository, appliance.settings.label)
    try:
        group = repo.get(NVF.parse(m.trove), with_files=False)
        again = provenance.render(provenance.statement(
            m, provenance.materials(appliance.settings, repo, group, staged_troves(repo, group))))
    finally:
        repo.close()
    assert again == data
    assert m.built.encode() not in data and m.built[:10].encode() not in data


def _manifest(**over) -> mf.Manifest:
    base = dict(group=GROUP, trove=f"{GROUP}=l@n:t/1.0-1-1[is: x86_64]", version="l@n:t/1.0-1-1", arch="x86_64",
                members=["a=l@n:t/1-1-1[is: x86_64]"], formats={"qcow2": ["g.qcow2"], "vmdk": ["g.vmdk", "g.vmx"]},
                files={n: {"sha256": f"{i}" * 64, "size": 1} for i, n in enumerate(["g.qcow2", "g.vmdk", "g.vmx"])},
                builder={"name": "appbuild", "version": "0.1.0"}, source_date_epoch=1700000000)
    return mf.Manifest(**{**base, **over})


def test_statement_rules_without_a_build():
    deps = [{"name": "a=l@n:t/1-1-1[is: x86_64]", "digest": {"sha256": "f" * 64}, "annotations": {"appbuild": "trove"}}]
    doc = provenance.statement(_manifest(), deps, size=2 << 30)
    validate_in_toto(doc)
    data = provenance.render(doc)
    assert data == provenance.render(provenance.statement(_manifest(), deps, size=2 << 30))
    assert doc["predicate"]["buildDefinition"]["externalParameters"]["size"] == 2 << 30
    assert doc["predicate"]["runDetails"]["builder"] == {"id": f"{provenance.BUILDER_ID}/appbuild@0.1.0",
                                                         "version": {"appbuild": "0.1.0"}}  # no commit: none given
    assert provenance.pinned(doc) == {"a=l@n:t/1-1-1[is: x86_64]"}
    # publishing some formats narrows the subjects, and only then changes the bytes
    assert provenance.restrict(data, {"g.qcow2", "g.vmdk", "g.vmx"}, "s") == data
    narrowed = json.loads(provenance.restrict(data, {"g.qcow2"}, "s"))
    assert [s["name"] for s in narrowed["subject"]] == ["g.qcow2"] and narrowed["predicate"] == doc["predicate"]
    with pytest.raises(provenance.ProvenanceError, match="does not name g.raw among its subjects"):
        provenance.restrict(data, {"g.raw"}, "s")
    # what is read back must be an in-toto v1 Statement with a SLSA v1 predicate
    with pytest.raises(provenance.ProvenanceError, match="not an in-toto v1 Statement"):
        provenance.load(b'{"_type": "https://in-toto.io/Statement/v0.1"}', "x")
    with pytest.raises(provenance.ProvenanceError, match="predicateType is 'https://slsa.dev/provenance/v0.2'"):
        provenance.load(json.dumps({**doc, "predicateType": "https://slsa.dev/provenance/v0.2"}).encode(), "x")
    with pytest.raises(provenance.ProvenanceError, match="not JSON"):
        provenance.load(b"{", "x")
    with pytest.raises(provenance.ProvenanceError, match="lists g.vmdk, g.vmx without a checksum"):
        provenance.statement(_manifest(files={"g.qcow2": {"sha256": "0" * 64, "size": 1}}), deps)
