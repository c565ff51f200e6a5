"""``appbuild verify RELEASE_DIR|URL``: a published release checked as a downloader would, through
the real command line.

The session appliance's x86_64 images are published (qcow2 and vmdk, signed with the session's
release key) to a directory; ``verify`` must pass on it as a directory and over HTTP (a server
on 127.0.0.1), and fail, naming the file and what differs, on copies where one thing was
changed: an image byte, ``SHA256SUMS``, the provenance payload, an SBOM's version of a member.
The DSSE envelope is also checked without appbuild's code: its PAE is rebuilt here from the
DSSE specification and verified with plain gpg. ``--rebuild`` rebuilds the images from the
recorded pins and compares bytes.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from appbuilder.core.fileio import sha256_file
from appbuilder.release.dsse import pae
from tests.conftest import VENV_BIN, env_for, run_appbuild

pytestmark = pytest.mark.slow

GROUP = "group-cernvm"
FORMATS = "qcow2,vmdk"


def checks(proc) -> dict[str, tuple[str, str]]:
    """check name -> (status, message) from verify's one line per check."""
    found = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^  (ok|FAILED|skipped)\s+(\w+)\s+(.*)$", line)
        if m:
            found[m.group(2)] = (m.group(1), m.group(3))
    return found


def verify(settings, target, *extra, keyring=None, check=False, timeout=900):
    args = ["verify", str(target), *extra]
    if keyring is not None:
        args += ["--keyring", str(keyring)]
    return run_appbuild(settings, *args, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def release(appliance, signing_key, tmp_path_factory):
    """The appliance's x86_64 version published, signed, to a fresh directory: (root, arch dir)."""
    root = tmp_path_factory.mktemp("verify-www")
    version = appliance.version["x86_64"]
    proc = subprocess.run(
        [str(VENV_BIN / "appbuild"), "publish", f"{GROUP}={version}", "--arch", "x86_64", "--format", FORMATS,
         "--to", str(root)],
        env={**env_for(appliance.settings), **signing_key.env()}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, root / GROUP / version / "x86_64"


def tampered(release_dir: Path, tmp_path: Path) -> Path:
    """A real copy (no shared inodes) of the release, to change."""
    copy = tmp_path / "release"
    shutil.copytree(release_dir, copy)
    return copy


def release_manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


# ---------------------------------------------------------------- DSSE, independently


def test_pae_is_the_dsse_specifications_encoding():
    # the example of the DSSE protocol document
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("application/vnd.in-toto+json", b"") == b"DSSEv1 28 application/vnd.in-toto+json 0 "


def test_the_release_carries_a_dsse_envelope_plain_gpg_verifies(release, appliance, signing_key, tmp_path):
    _, directory = release
    m = release_manifest(directory)
    envelope_file = directory / m["provenance"]
    assert envelope_file.name.endswith(".intoto.jsonl")
    lines = envelope_file.read_text().splitlines()
    assert len(lines) == 1  # JSON Lines: one envelope
    envelope = json.loads(lines[0])
    assert set(envelope) == {"payloadType", "payload", "signatures"}
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"], validate=True)
    [signature] = envelope["signatures"]
    assert signature["keyid"] == signing_key.fingerprint
    # the PAE, built here from the specification, and gpg with a keyring holding only the public key
    kind = envelope["payloadType"].encode()
    (tmp_path / "pae").write_bytes(b"DSSEv1 " + str(len(kind)).encode() + b" " + kind + b" "
                                   + str(len(payload)).encode() + b" " + payload)
    (tmp_path / "sig").write_bytes(base64.b64decode(signature["sig"]))
    gpg = subprocess.run(["gpg", "--batch", "--no-tty", "--homedir", str(signing_key.verify_home), "--status-fd", "1",
                          "--verify", str(tmp_path / "sig"), str(tmp_path / "pae")], capture_output=True, text=True)
    assert gpg.returncode == 0, gpg.stderr
    assert f"VALIDSIG {signing_key.fingerprint} " in gpg.stdout
    # the payload is the store's statement with its subjects narrowed to the published files
    statement = json.loads(payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    images = sorted({n for names in m["formats"].values() for n in names})
    assert [s["name"] for s in statement["subject"]] == images
    for s in statement["subject"]:
        assert s["digest"]["sha256"] == sha256_file(directory / s["name"])
    stored = json.loads((appliance.settings.images / GROUP / appliance.version["x86_64"] / "x86_64" /
                         envelope_file.name.replace(".intoto.jsonl", ".provenance.json")).read_text())
    assert statement["predicate"] == stored["predicate"]
    assert {s["name"] for s in statement["subject"]} <= {s["name"] for s in stored["subject"]}  # of every format


# ---------------------------------------------------------------- a good release


def test_verify_a_good_release_as_a_directory_and_over_http(release, appliance, signing_key, tmp_path):
    from appbuilder.release.serve import make_server

    root, directory = release
    proc = verify(appliance.settings, directory, keyring=signing_key.verify_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = checks(proc)
    assert found["signature"] == ("ok", f"SHA256SUMS has a good signature by {signing_key.fingerprint}")
    assert found["checksums"][0] == "ok" and re.match(r"\d+ files match SHA256SUMS", found["checksums"][1])
    if (directory / f"{GROUP}-{appliance.version['x86_64']}-x86_64.spdx.json").exists():
        assert found["sbom"][0] == "ok" and "pinned packages with their versions" in found["sbom"][1]
    else:
        assert found["sbom"] == ("skipped", "no SBOM in this release")
    status, message = found["provenance"]
    pins = len(release_manifest(directory)["members"])
    assert status == "ok" and f"signed by {signing_key.fingerprint}" in message
    assert f"{pins} pinned troves match the manifest" in message and "subjects match the files" in message
    assert "rebuild" not in found
    assert f"{GROUP}={appliance.version['x86_64']} (x86_64): verified" in proc.stdout and proc.stderr == ""

    # over HTTP, the version's URL (its arches come from the group's releases.json), with the
    # key as a file: what a downloader has
    key_file = tmp_path / "release-key.asc"
    key_file.write_bytes(subprocess.run(["gpg", "--batch", "--homedir", str(signing_key.verify_home), "--armor",
                                         "--export"], capture_output=True, check=True).stdout)
    server = make_server(root, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        url = f"{base}/{GROUP}/{appliance.version['x86_64']}"
        proc = verify(appliance.settings, url, keyring=key_file)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"verifying {url}/x86_64/" in proc.stdout
        assert [s for s, _ in checks(proc).values()].count("FAILED") == 0
        assert checks(proc)["provenance"][0] == "ok" and checks(proc)["signature"][0] == "ok"
        # a tampered file on the server fails there too
        copy = root / GROUP / "tampered"
        shutil.copytree(directory, copy / "x86_64")
        sums = (copy / "x86_64" / "SHA256SUMS").read_text()
        (copy / "x86_64" / "SHA256SUMS").write_text(sums.replace(sums[:64], "0" * 64, 1))
        bad = verify(appliance.settings, f"{base}/{GROUP}/tampered/x86_64/", keyring=key_file)
        assert bad.returncode == 1 and checks(bad)["signature"][0] == "FAILED"
        assert "BAD signature of SHA256SUMS" in checks(bad)["signature"][1]
        # a URL that is no release
        none = verify(appliance.settings, f"{base}/{GROUP}/9.9-9-9", keyring=key_file)
        assert none.returncode == 1 and "no release at" in none.stderr and "Traceback" not in none.stderr
    finally:
        server.shutdown()
        server.server_close()

    # without a keyring nothing is taken on trust
    proc = verify(appliance.settings, directory)
    assert proc.returncode == 1
    assert checks(proc)["signature"][0] == "FAILED" and "no keyring" in checks(proc)["signature"][1]
    # a keyring that does not hold the release key
    other = tmp_path / "other-home"
    other.mkdir(mode=0o700)
    subprocess.run(["gpg", "--batch", "--homedir", str(other), "--passphrase", "", "--quick-gen-key",
                    "someone else <else@example.invalid>", "ed25519", "sign", "never"], check=True, capture_output=True)
    proc = verify(appliance.settings, directory, keyring=other)
    subprocess.run(["gpgconf", "--homedir", str(other), "--kill", "all"], capture_output=True)
    assert proc.returncode == 1
    assert "which is not in the keyring" in checks(proc)["signature"][1]
    assert "does not verify" in checks(proc)["provenance"][1]


# ---------------------------------------------------------------- tampered releases


def _flip_image_byte(d: Path, m: dict) -> str:
    name = m["formats"]["qcow2"][0]
    with open(d / name, "r+b") as f:
        f.seek(1 << 20)
        byte = f.read(1)
        f.seek(1 << 20)
        f.write(bytes([byte[0] ^ 0x01]))
    return name


def _rewrite_sums(d: Path, m: dict) -> str:
    """Change an image and write its new sha256 into SHA256SUMS (what an attacker without
    the key would do)."""
    name = _flip_image_byte(d, m)
    sums = d / "SHA256SUMS"
    sums.write_text(re.sub(rf"^[0-9a-f]{{64}}  {re.escape(name)}$", f"{sha256_file(d / name)}  {name}",
                           sums.read_text(), flags=re.M))
    return name


def _change_provenance(d: Path, m: dict) -> str:
    """Change a pin in the statement and put it back in the envelope, signature kept."""
    path = d / m["provenance"]
    envelope = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    pin = next(x for x in deps if x["annotations"]["appbuild"] == "trove" and x["name"].startswith("busybox"))
    pin["name"] = re.sub(r"-(\d+)\[", lambda g: f"-{int(g.group(1)) + 7}[", pin["name"])
    envelope["payload"] = base64.b64encode(json.dumps(statement, indent=2, sort_keys=True).encode()).decode()
    path.write_text(json.dumps(envelope) + "\n")
    return pin["name"]


def _change_sbom_version(d: Path, m: dict) -> str:
    spdx = next(d.glob("*.spdx.json"), None)
    if spdx is None:
        pytest.skip("no SBOM in this release (the inventory is not built yet)")
    doc = json.loads(spdx.read_text())
    package = next(p for p in doc["packages"] if p["name"] == "libsodium23")
    package["versionInfo"] = package["versionInfo"].replace("1.0.18", "1.0.19", 1)
    spdx.write_text(json.dumps(doc, indent=2))
    return package["versionInfo"]


@pytest.mark.parametrize("damage, expected", [
    (_flip_image_byte, {"checksums": r"{x} has sha256 [0-9a-f]{{64}}, SHA256SUMS says [0-9a-f]{{64}}",
                        "provenance": r"subject {x} has sha256 [0-9a-f]{{64}} in the statement, the file has"}),
    (_rewrite_sums, {"signature": r"SHA256SUMS\.asc: BAD signature of SHA256SUMS .*changed after signing",
                     "checksums": r"manifest\.json records sha256 [0-9a-f]{{64}} for {x}, SHA256SUMS says",
                     "provenance": r"subject {x} has sha256 [0-9a-f]{{64}} in the statement, the file has"}),
    (_change_provenance, {"provenance": r"the DSSE signature of \S+\.intoto\.jsonl does not verify: .*BAD signature"
                                        r".*the materials pin {x}, which the manifest does not",
                          "checksums": r"\S+\.intoto\.jsonl has sha256"}),
    (_change_sbom_version, {"sbom": r"\S+\.spdx\.json says libsodium23 has version {x} \(the manifest pins \S+: 1\.0\.18",
                            "checksums": r"\S+\.spdx\.json has sha256"}),
], ids=["image-byte", "sha256sums", "provenance-payload", "sbom-version"])
def test_a_tampered_release_fails_naming_what_is_wrong(release, appliance, signing_key, tmp_path, damage, expected):
    _, directory = release
    copy = tampered(directory, tmp_path)
    what = damage(copy, release_manifest(copy))
    proc = verify(appliance.settings, copy, keyring=signing_key.verify_home)
    assert proc.returncode == 1, proc.stdout
    assert "Traceback" not in proc.stderr
    found = checks(proc)
    for check, pattern in expected.items():
        status, message = found[check]
        assert status == "FAILED" and re.search(pattern.format(x=re.escape(what)), message), (check, message)
    failed = {c for c, (s, _) in found.items() if s == "FAILED"}
    assert failed == set(expected), found  # nothing else is blamed
    error = proc.stderr.strip()
    assert error.startswith(f"error: {GROUP}={appliance.version['x86_64']} (x86_64) at {copy} failed verification: ")
    assert len(error.splitlines()) == 1 and all(f"{c}: " in error for c in expected)


def test_an_unsigned_release(appliance, signing_key, tmp_path):
    version = appliance.version["x86_64"]
    root = tmp_path / "www"
    proc = run_appbuild(appliance.settings, "publish", f"{GROUP}={version}", "--arch", "x86_64", "--format", "qcow2",
                        "--to", str(root), "--unsigned")
    assert "the provenance (NAME.intoto.jsonl) goes out in an envelope without a signature" in proc.stdout
    directory = root / GROUP / version / "x86_64"
    envelope = json.loads((directory / release_manifest(directory)["provenance"]).read_text())
    assert envelope["signatures"] == []
    proc = verify(appliance.settings, directory, keyring=signing_key.verify_home)
    assert proc.returncode == 1
    assert checks(proc)["signature"] == ("FAILED", "SHA256SUMS is not signed: the release has no SHA256SUMS.asc "
                                                   "(--allow-unsigned accepts a release published --unsigned)")
    assert "has no signature (published --unsigned)" in checks(proc)["provenance"][1]
    proc = verify(appliance.settings, directory, "--allow-unsigned")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert checks(proc)["signature"][0] == "skipped" and checks(proc)["checksums"][0] == "ok"
    assert checks(proc)["provenance"][0] == "ok" and "unsigned (--allow-unsigned)" in checks(proc)["provenance"][1]


# ---------------------------------------------------------------- --rebuild


def test_rebuild_from_the_recorded_pins_gives_the_released_bytes(release, appliance, signing_key):
    _, directory = release
    store = appliance.settings.images / GROUP / appliance.version["x86_64"] / "x86_64"
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in store.iterdir()}
    proc = verify(appliance.settings, directory, "--rebuild", keyring=signing_key.verify_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status, message = checks(proc)["rebuild"]
    images = {n for names in release_manifest(directory)["formats"].values() for n in names}
    assert status == "ok" and message.startswith(f"{len(images)} files rebuilt from the pins bit for bit (qcow2, vmdk)")
    assert f"rebuilding {GROUP}=" in proc.stderr  # the build's own progress, on stderr
    # into a scratch directory: the image store is as it was, and no scratch is left behind
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in store.iterdir()} == before
    assert not list(appliance.settings.cache.glob("appbuild-rebuild-*"))
