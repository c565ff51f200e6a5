"""Publishing recorded images to a download server, and rolling back, through the real CLI.

The download page is served (``appbuild serve``, and the shipped nginx configuration when
nginx is installed) and read in headless Chromium: the test takes the current release
and its checksum from the rendered page, downloads the image over HTTP and checks the
checksum and the OpenPGP signature with a keyring that holds only the public key.
S3-compatible publishing runs against moto on 127.0.0.1. Bad input (unknown versions,
files that no longer match, a full or read-only destination, two publishes at once)
must leave the destination exactly as it was.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from appbuilder.core.fileio import sha256_file
from appbuilder.release.index import (
    ArchRelease,
    Release,
    ReleaseIndex,
    ReleaseIndexError,
)
from appbuilder.store import manifest as mf
from tests.conftest import VENV_BIN, env_for, free_port

pytestmark = pytest.mark.slow

GROUP = "group-cernvm"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def appbuild(settings, *args, env: dict | None = None, check: bool = True, timeout: float = 600):
    proc = subprocess.run([str(VENV_BIN / "appbuild"), *args], env={**env_for(settings), **(env or {})},
                          cwd=settings.workspace, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"appbuild {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def publish(v, version, dest, *extra, key=None, check=True):
    return appbuild(v.settings, "publish", f"{GROUP}={version}", "--to", str(dest), "--format", "qcow2,vmdk",
                    *extra, env=key.env() if key else None, check=check)


def snapshot(dest: Path) -> dict[str, tuple]:
    """Every path under *dest* with its size and content hash (the lock file's holder note aside)."""
    out = {}
    for p in sorted(dest.rglob("*")):
        rel = str(p.relative_to(dest))
        if p.name == ".appbuild-publish.lock":
            out[rel] = ("lock",)
        elif p.is_file():
            out[rel] = (p.stat().st_size, sha256_file(p))
        else:
            out[rel] = ("dir",)
    return out


def feed(dest: Path) -> dict:
    return json.loads((dest / GROUP / "releases.json").read_text())


# ---------------------------------------------------------------- serving and a real browser


@pytest.fixture
def served(two_versions):
    """``appbuild serve DIR --port 0``: yields a function starting it for a directory -> base URL."""
    procs = []

    def start(root: Path) -> str:
        proc = subprocess.Popen([str(VENV_BIN / "appbuild"), "serve", str(root), "--port", "0"],
                                env=env_for(two_versions.settings), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        procs.append(proc)
        line = proc.stdout.readline()
        m = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        assert m, f"appbuild serve said {line!r}"
        return m.group(1)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's chromium, headless, driven through chromedriver by selenium."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extras")
    from selenium.webdriver.chrome.service import Service

    chromium, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.skip("chromium and chromium-driver are not installed (ci/bootstrap.sh installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_bin), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def download(url: str, target: Path) -> Path:
    with urllib.request.urlopen(url, timeout=60) as r, open(target, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)
    return target


def gpg_verify(key, signature: Path, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--batch", "--no-tty", "--homedir", str(key.verify_home), "--status-fd", "1",
                           "--verify", str(signature), str(data)], capture_output=True, text=True)


def current_in_page(driver, arch="x86_64"):
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, f'#current .current-release[data-arch="{arch}"]')
    row = box.find_element(By.CSS_SELECTOR, 'tr.file[data-format="qcow2"]')
    return {
        "version": box.find_element(By.CSS_SELECTOR, ".version").text,
        "data_version": box.get_attribute("data-version"),
        "status": box.find_element(By.CSS_SELECTOR, ".status").text,
        "href": row.find_element(By.CSS_SELECTOR, "a.download").get_attribute("href"),
        "name": row.find_element(By.CSS_SELECTOR, "a.download").text,
        "sha256": row.find_element(By.CSS_SELECTOR, "code.sha256").text,
        "sums": box.find_element(By.CSS_SELECTOR, "a.sha256sums").get_attribute("href"),
        "signature": box.find_element(By.CSS_SELECTOR, "a.signature").get_attribute("href"),
    }


def test_download_page_in_a_browser_then_rollback(two_versions, signing_key, served, browser, tmp_path):
    from selenium.webdriver.common.by import By

    v = two_versions
    dest = tmp_path / "www"
    publish(v, v.old, dest, "--channel", "nightly", key=signing_key)
    out = publish(v, v.new, dest, "--channel", "nightly", key=signing_key).stdout
    assert f"published {GROUP}={v.new} (x86_64)" in out and f"current: x86_64 {v.new}" in out
    base = served(dest)

    browser.get(f"{base}/{GROUP}/index.html")
    assert browser.title == f"{GROUP} downloads"
    cur = current_in_page(browser)
    assert cur["version"] == cur["data_version"] == v.new and cur["status"] == "current"
    assert browser.find_element(By.ID, "signing-key-fingerprint").text == signing_key.fingerprint

    # download what the page offers and check it the way a user would
    image = download(cur["href"], tmp_path / cur["name"])
    assert sha256_file(image) == cur["sha256"]
    recorded = mf.load(v.settings.images / GROUP / v.new / "x86_64")
    assert cur["sha256"] == recorded.files[cur["name"]]["sha256"]
    sums = download(cur["sums"], tmp_path / "SHA256SUMS")
    sig = download(cur["signature"], tmp_path / "SHA256SUMS.asc")
    assert f"{cur['sha256']}  {cur['name']}\n" in sums.read_text()
    verified = gpg_verify(signing_key, sig, sums)
    assert verified.returncode == 0, verified.stderr
    assert f"VALIDSIG {signing_key.fingerprint}" in verified.stdout
    forged = tmp_path / "SHA256SUMS.forged"
    forged.write_text(sums.read_text().replace(cur["sha256"], "0" * 64))
    assert gpg_verify(signing_key, sig, forged).returncode != 0  # the signature covers the checksums
    check = subprocess.run(["sha256sum", "--ignore-missing", "-c", "SHA256SUMS"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert check.returncode == 0 and f"{cur['name']}: OK" in check.stdout

    # the release list shows times, formats, sizes and checksums of both
    releases = browser.find_elements(By.CSS_SELECTOR, "#releases article.release")
    assert [r.get_attribute("data-version") for r in releases] == [v.new, v.old]
    for r in releases:
        assert r.get_attribute("data-channel") == "nightly"
        times = {t.get_attribute("class"): t.get_attribute("datetime") for t in r.find_elements(By.CSS_SELECTOR, "dl.times time")}
        assert set(times) == {"created", "published", "updated"} and all(t.endswith("Z") for t in times.values())
        rows = r.find_elements(By.CSS_SELECTOR, "tr.file")
        assert {row.get_attribute("data-format") for row in rows} == {"qcow2", "vmdk"}
        m = mf.load(v.settings.images / GROUP / r.get_attribute("data-version") / "x86_64")
        for row in rows:
            name = row.get_attribute("data-name")
            assert int(row.find_element(By.CSS_SELECTOR, "td.size").get_attribute("data-bytes")) == m.files[name]["size"]
            assert row.find_element(By.CSS_SELECTOR, "code.sha256").text == m.files[name]["sha256"]

    # roll back: the old release is current again, the new one withdrawn; nothing is rebuilt
    before = snapshot(dest)
    rb = appbuild(v.settings, "rollback", GROUP, "--to", v.old, "--dest", str(dest), "--reason", "kernel oops on ESX")
    assert f"current is now {v.old}; {v.new} is withdrawn" in rb.stdout
    after = snapshot(dest)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed == {f"{GROUP}/releases.json", f"{GROUP}/index.html", "index.html"}, changed
    browser.refresh()
    cur = current_in_page(browser)
    assert cur["version"] == v.old
    withdrawn = browser.find_element(By.CSS_SELECTOR, f'article.release[data-version="{v.new}"] .arch[data-arch="x86_64"]')
    assert withdrawn.get_attribute("data-status") == "withdrawn"
    assert "kernel oops on ESX" in withdrawn.find_element(By.CSS_SELECTOR, ".withdrawn-note").text
    assert sha256_file(download(cur["href"], tmp_path / cur["name"])) == cur["sha256"]
    with urllib.request.urlopen(f"{base}/{GROUP}/releases.json", timeout=30) as r:
        assert r.headers["Cache-Control"] == "no-cache"
        data = json.load(r)
    assert data["current"] == {"x86_64": v.old}
    status = {rel["version"]: rel["arches"]["x86_64"]["status"] for rel in data["releases"]}
    assert status == {v.new: "withdrawn", v.old: "current"}
    # the front page names the group's current release
    browser.get(f"{base}/index.html")
    assert browser.find_element(By.CSS_SELECTOR, f'tr.group[data-group="{GROUP}"] .current').text == f"x86_64 {v.old}"

    # a withdrawn or unknown release cannot be made current; the index does not change
    before = snapshot(dest)
    bad = appbuild(v.settings, "rollback", GROUP, "--to", v.new, "--dest", str(dest), check=False)
    assert bad.returncode == 1 and "was withdrawn" in bad.stderr and "cannot be made current again" in bad.stderr
    unknown = appbuild(v.settings, "rollback", GROUP, "--to", "7.7-7-7", "--dest", str(dest), check=False)
    assert unknown.returncode == 1 and "never published here" in unknown.stderr and v.old in unknown.stderr
    again = publish(v, v.new, dest, key=signing_key, check=False)
    assert again.returncode == 1 and "withdrawn" in again.stderr
    assert snapshot(dest) == before


def test_publish_to_s3_then_rollback(two_versions, signing_key, moto_endpoint, tmp_path, monkeypatch):
    import boto3

    for k, val in CREDS.items():
        monkeypatch.setenv(k, val)
    v = two_versions
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="downloads")
    env = {**signing_key.env(), **CREDS}
    to = ["--to", "s3://downloads/appliances", "--endpoint-url", moto_endpoint]
    for version in (v.old, v.new):
        appbuild(v.settings, "publish", f"{GROUP}={version}", *to, "--format", "qcow2", "--channel", "nightly", env=env)
    keys = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket="downloads")["Contents"]}
    recorded = mf.load(v.settings.images / GROUP / v.new / "x86_64")
    qcow2 = recorded.formats["qcow2"][0]
    prefix = f"appliances/{GROUP}/{v.new}/x86_64"
    assert keys[f"{prefix}/{qcow2}"] == recorded.files[qcow2]["size"]
    assert {f"{prefix}/SHA256SUMS", f"{prefix}/SHA256SUMS.asc", f"{prefix}/manifest.json",
            f"appliances/{GROUP}/releases.json", f"appliances/{GROUP}/index.html", "appliances/index.html",
            "appliances/signing-key.asc"} <= set(keys)
    assert not any(k.endswith(".appbuild-publish.lock") for k in keys)  # released
    obj = s3.get_object(Bucket="downloads", Key=f"{prefix}/{qcow2}")
    assert obj["CacheControl"].endswith("immutable") and obj["Metadata"]["sha256"] == recorded.files[qcow2]["sha256"]
    body = tmp_path / qcow2
    body.write_bytes(obj["Body"].read())
    assert sha256_file(body) == recorded.files[qcow2]["sha256"]
    sums, sig = tmp_path / "SHA256SUMS", tmp_path / "SHA256SUMS.asc"
    sums.write_bytes(s3.get_object(Bucket="downloads", Key=f"{prefix}/SHA256SUMS")["Body"].read())
    sig.write_bytes(s3.get_object(Bucket="downloads", Key=f"{prefix}/SHA256SUMS.asc")["Body"].read())
    assert gpg_verify(signing_key, sig, sums).returncode == 0

    def s3_feed():
        return json.loads(s3.get_object(Bucket="downloads", Key=f"appliances/{GROUP}/releases.json")["Body"].read())

    assert s3_feed()["current"] == {"x86_64": v.new}
    appbuild(v.settings, "rollback", GROUP, "--to", v.old, "--dest", "s3://downloads/appliances",
             "--endpoint-url", moto_endpoint, env=CREDS)
    assert s3_feed()["current"] == {"x86_64": v.old}
    page = s3.get_object(Bucket="downloads", Key=f"appliances/{GROUP}/index.html")["Body"].read().decode()
    assert f'data-arch="x86_64" data-version="{v.old}"' in page

    # another publisher holds the lock object: a publish waits, then gives up, changing nothing
    s3.put_object(Bucket="downloads", Key="appliances/.appbuild-publish.lock", IfNoneMatch="*",
                  Body=json.dumps({"token": "x", "pid": 1, "host": "elsewhere", "since": "now",
                                   "epoch": time.time()}).encode())
    before = s3_feed()
    held = appbuild(v.settings, "publish", f"{GROUP}={v.old}", *to, "--format", "qcow2,vmdk", "--lock-timeout", "1",
                    env=env, check=False)
    assert held.returncode == 1 and "another publish to s3://downloads/appliances is running" in held.stderr
    assert "elsewhere" in held.stderr and s3_feed() == before
    s3.delete_object(Bucket="downloads", Key="appliances/.appbuild-publish.lock")
    # a bucket that does not exist: a clear error
    missing = appbuild(v.settings, "publish", f"{GROUP}={v.old}", "--to", "s3://no-such-bucket/x", "--endpoint-url",
                       moto_endpoint, env=env, check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


# ---------------------------------------------------------------- bad input


def test_unknown_versions_unsigned_and_missing_keys(two_versions, signing_key, tmp_path):
    v = two_versions
    dest = tmp_path / "www"
    unknown = publish(v, "9.9-9-9", dest, key=signing_key, check=False)
    assert unknown.returncode == 1 and "no recorded image group-cernvm=9.9-9-9" in unknown.stderr
    assert v.old in unknown.stderr and v.new in unknown.stderr and not dest.exists()
    nokey = publish(v, v.old, dest, check=False)
    assert nokey.returncode == 1 and "no signing key" in nokey.stderr and "--unsigned" in nokey.stderr
    wrong = publish(v, v.old, dest, "--key", "nobody@example.invalid", key=signing_key, check=False)
    assert wrong.returncode == 1 and "nobody@example.invalid" in wrong.stderr and not dest.exists()
    badformat = publish(v, v.new, dest, "--format", "ova", key=signing_key, check=False)
    assert badformat.returncode == 1 and "was not built in ova" in badformat.stderr
    publish(v, v.old, dest, "--unsigned")
    release = dest / GROUP / v.old / "x86_64"
    assert (release / "SHA256SUMS").is_file() and not (release / "SHA256SUMS.asc").exists()
    assert "not signed" in (dest / GROUP / "index.html").read_text()
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=release, capture_output=True).returncode == 0


def test_files_that_no_longer_match_their_checksums_are_not_published(two_versions, signing_key, tmp_path):
    v = two_versions
    dest = tmp_path / "www"
    publish(v, v.old, dest, key=signing_key)
    # a copy of the store in which one recorded image was damaged after it was built
    store = tmp_path / "store"
    src = v.settings.images / GROUP / v.new / "x86_64"
    (store / GROUP / v.new).mkdir(parents=True)
    shutil.copytree(src, store / GROUP / v.new / "x86_64")
    vmdk = next((store / GROUP / v.new / "x86_64").glob("*.vmdk"))
    with open(vmdk, "r+b") as f:
        f.seek(vmdk.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    damaged = dataclasses.replace(v.settings, images=store)
    before = snapshot(dest)
    proc = appbuild(damaged, "publish", f"{GROUP}={v.new}", "--to", str(dest), env=signing_key.env(), check=False)
    assert proc.returncode == 1
    assert f"{vmdk.name} no longer matches its recorded checksum" in proc.stderr
    assert snapshot(dest) == before and not list(dest.glob("*/.tmp-publish-*"))
    # a recorded file that is gone
    vmdk.unlink()
    gone = appbuild(damaged, "publish", f"{GROUP}={v.new}", "--to", str(dest), env=signing_key.env(), check=False)
    assert gone.returncode == 1 and "missing from the image store" in gone.stderr and snapshot(dest) == before


_NAMESPACE_HELPER = r'''
import hashlib, json, os, subprocess, sys
dest, size, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", dest], check=True)
def snap():
    out = {}
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, dest)
            if name == ".appbuild-publish.lock" or os.path.isdir(p):
                out[rel] = "-"
            else:
                out[rel] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out
def run(args):
    p = subprocess.run([plan["appbuild"], *args], capture_output=True, text=True, env=plan["env"])
    return {"rc": p.returncode, "stderr": p.stderr}
result = {"first": run(plan["first"])}
before = snap()
result["full"] = run(plan["full"])
result["full_unchanged"] = snap() == before
subprocess.run(["mount", "-o", "remount,ro", dest], check=True)
result["ro"] = run(plan["ro"])
result["ro_unchanged"] = snap() == before
result["files"] = sorted(before)
print(json.dumps(result))
'''


def test_a_full_or_read_only_destination_changes_nothing(two_versions, signing_key, tmp_path):
    """A 40 MiB tmpfs in a private mount namespace: the first release fits, the next does not
    (ENOSPC); then the file system is remounted read-only (EROFS)."""
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is needed for a private tmpfs")
    v = two_versions
    dest = tmp_path / "small"
    dest.mkdir()
    helper = tmp_path / "helper.py"
    helper.write_text(_NAMESPACE_HELPER)
    common = ["--to", str(dest)]
    plan = {
        "appbuild": str(VENV_BIN / "appbuild"),
        "env": {**env_for(v.settings), **signing_key.env()},
        "first": ["publish", f"{GROUP}={v.old}", *common, "--format", "qcow2"],  # ~15 MiB
        "full": ["publish", f"{GROUP}={v.new}", *common, "--format", "qcow2,vmdk"],  # ~41 MiB: too big
        "ro": ["publish", f"{GROUP}={v.new}", *common, "--format", "qcow2"],  # would fit, but read-only
    }
    userns = [] if os.geteuid() == 0 else ["--map-root-user"]
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", *userns, sys.executable, str(helper),
                           str(dest), "40m", json.dumps(plan)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip(f"no private mount namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["first"]["rc"] == 0, result["first"]["stderr"]
    assert f"{GROUP}/{v.old}/x86_64/SHA256SUMS.asc" in result["files"]
    assert result["full"]["rc"] == 1
    assert "is full (no space left on device); nothing was changed there" in result["full"]["stderr"]
    assert result["full_unchanged"], "a failed publish left something behind"
    assert result["ro"]["rc"] == 1 and "is read-only; nothing was changed there" in result["ro"]["stderr"]
    assert result["ro_unchanged"]
    assert not list(dest.iterdir())  # the tmpfs was private to the namespace


def test_two_publishes_at_once(two_versions, signing_key, tmp_path):
    v = two_versions
    dest = tmp_path / "www"
    # both at once: the lock serialises them, both land, the index names both and nothing else
    argv = lambda version: [str(VENV_BIN / "appbuild"), "publish", f"{GROUP}={version}", "--to", str(dest),  # noqa: E731
                            "--format", "qcow2,vmdk", "--channel", "nightly"]
    env = {**env_for(v.settings), **signing_key.env()}
    procs = [subprocess.Popen(argv(version), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for version in (v.old, v.new)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    data = feed(dest)
    assert sorted(r["version"] for r in data["releases"]) == sorted([v.old, v.new])
    assert data["current"]["x86_64"] in (v.old, v.new)
    for version in (v.old, v.new):
        check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dest / GROUP / version / "x86_64",
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
    assert not list(dest.glob("*/.tmp-publish-*"))

    # while someone holds the lock, a publish gives up after --lock-timeout and changes nothing
    before = snapshot(dest)
    with open(dest / ".appbuild-publish.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write("pid 4242 on the-other-publisher since 2000-01-01T00:00:00Z\n")
        lock.flush()
        start = time.monotonic()
        proc = appbuild(v.settings, "publish", f"{GROUP}={v.new}", "--to", str(dest), "--unsigned",
                        "--lock-timeout", "1.5", check=False)
        waited = time.monotonic() - start
    assert proc.returncode == 1 and "another publish to" in proc.stderr and "the-other-publisher" in proc.stderr
    assert waited >= 1.5 and snapshot(dest) == before


def test_keep_prunes_old_nightlies_but_never_the_current_or_a_release(two_versions, signing_key, tmp_path):
    from appbuilder.release.publish import prune

    v = two_versions
    dest = tmp_path / "www"
    publish(v, v.old, dest, "--channel", "nightly", key=signing_key)
    publish(v, v.new, dest, "--channel", "nightly", key=signing_key)
    out = publish(v, v.new, dest, "--channel", "nightly", "--keep", "1", key=signing_key).stdout
    assert f"pruned {GROUP}={v.old}" in out
    assert [r["version"] for r in feed(dest)["releases"]] == [v.new]
    assert not (dest / GROUP / v.old).exists() and (dest / GROUP / v.new / "x86_64" / "SHA256SUMS").is_file()

    # a current nightly survives any --keep; a release-channel one is never pruned
    dest2 = tmp_path / "www2"
    publish(v, v.old, dest2, "--channel", "release", key=signing_key)
    publish(v, v.new, dest2, "--channel", "nightly", key=signing_key)
    assert prune(str(dest2), GROUP, 0, say=lambda m: None) == []  # new is the current one
    appbuild(v.settings, "rollback", GROUP, "--to", v.old, "--dest", str(dest2))
    assert prune(str(dest2), GROUP, 0, say=lambda m: None) == [v.new]  # withdrawn, not current
    assert [r["version"] for r in feed(dest2)["releases"]] == [v.old] and not (dest2 / GROUP / v.new).exists()


def test_release_index_rules():
    """The index's rules on their own: per-arch current, withdrawal, pruning order."""
    def release(version, arches=("x86_64",), channel="nightly"):
        entry = dict(formats={"qcow2": ["a"]}, files={"a": {"size": 1, "sha256": "0" * 64, "path": "a"}},
                     manifest="m", sha256sums="s", signature=None, created="t", published="t")
        return Release(version, f"l@n:t/{version}", channel, "t", "t", "t", {a: ArchRelease(**entry) for a in arches})

    index = ReleaseIndex.empty("group-x")
    assert index.add(release("1.0-1-1", ("x86_64", "x86")), make_current=True, now="t1")
    assert index.add(release("1.0-1-2", ("x86_64",)), make_current=True, now="t2")
    assert index.current == {"x86_64": "1.0-1-2", "x86": "1.0-1-1"}  # versions count per arch
    assert not index.add(release("1.0-1-2", ("x86_64",)), make_current=True, now="t3")  # nothing new
    assert [r.version for r in index.releases] == ["1.0-1-2", "1.0-1-1"]
    before = index.rollback("1.0-1-1", ["x86_64"], reason="bad", now="t4")
    assert before == {"x86_64": "1.0-1-2"} and index.status("1.0-1-2", "x86_64") == "withdrawn"
    with pytest.raises(ReleaseIndexError, match="has no x86 release"):
        index.rollback("1.0-1-2", ["x86"], reason="", now="t5")
    with pytest.raises(ReleaseIndexError, match="withdrawn on t4: bad"):
        index.rollback("1.0-1-2", None, reason="", now="t5")
    parsed = ReleaseIndex.parse(index.feed(), "feed")
    assert parsed.to_dict() == index.to_dict()
    with pytest.raises(ReleaseIndexError, match="not a valid release index"):
        ReleaseIndex.parse(b'{"schema": 1, "group": "g"}', "feed")
    assert [r.version for r in index.prune(0, now="t6")] == ["1.0-1-2"]  # the only nightly that is not current


# ---------------------------------------------------------------- the shipped nginx configuration


def test_the_shipped_nginx_configuration_serves_a_release_tree(two_versions, signing_key, tmp_path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not nginx:
        pytest.skip("nginx is not installed (apt-get install nginx-light to check ci/nginx/appbuild.conf)")
    v = two_versions
    dest = tmp_path / "www"
    publish(v, v.new, dest, key=signing_key)
    port = free_port()
    site = (Path(__file__).resolve().parents[2] / "ci" / "nginx" / "appbuild.conf").read_text()
    assert "root /srv/appbuild/releases;" in site and "listen 80;" in site
    site = site.replace("root /srv/appbuild/releases;", f"root {dest};").replace(
        "listen 80;", f"listen 127.0.0.1:{port};").replace("listen [::]:80;", "")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    (prefix / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        f"{user}daemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  access_log off;\n"
        f"  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
        f"  fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n"
        f"  include {prefix}/site.conf;\n}}\n")
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{base}/", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None, (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.2)
        with urllib.request.urlopen(f"{base}/{GROUP}/index.html", timeout=10) as r:
            assert r.headers["Cache-Control"] == "no-cache" and f"data-version=\"{v.new}\"" in r.read().decode()
        recorded = mf.load(v.settings.images / GROUP / v.new / "x86_64")
        qcow2 = recorded.formats["qcow2"][0]
        url = f"{base}/{GROUP}/{v.new}/x86_64/{qcow2}"
        with urllib.request.urlopen(url, timeout=60) as r:
            assert "immutable" in r.headers["Cache-Control"]
            assert hashlib.sha256(r.read()).hexdigest() == recorded.files[qcow2]["sha256"]
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=0-3"}), timeout=10) as r:
            assert r.status == 206 and r.read() == b"QFI\xfb"  # resumable downloads
        with urllib.request.urlopen(f"{base}/{GROUP}/{v.new}/x86_64/SHA256SUMS", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
        with pytest.raises(urllib.error.HTTPError) as hidden:
            urllib.request.urlopen(f"{base}/.appbuild-publish.lock", timeout=10)
        assert hidden.value.code == 404
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_never_answers_304_for_index_files(tmp_path):
    """A page rewritten within the second it was published (a quick rollback) must not be
    taken from a browser's cache: index files are always sent in full, release files may be
    revalidated as usual."""
    import threading

    from appbuilder.release.serve import make_server

    (tmp_path / "index.html").write_text("<p>current: 1.0-1-2</p>")
    (tmp_path / "image.qcow2").write_bytes(b"QFI\xfb")
    server = make_server(tmp_path, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        later = "Sat, 01 Jan 2100 00:00:00 GMT"
        page = urllib.request.Request(f"{base}/index.html", headers={"If-Modified-Since": later})
        with urllib.request.urlopen(page, timeout=30) as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "no-cache" and b"1.0-1-2" in r.read()
        image = urllib.request.Request(f"{base}/image.qcow2", headers={"If-Modified-Since": later})
        with pytest.raises(urllib.error.HTTPError) as not_modified:
            urllib.request.urlopen(image, timeout=30)
        assert not_modified.value.code == 304
    finally:
        server.shutdown()
        server.server_close()
