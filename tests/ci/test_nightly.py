"""ci/nightly end to end, on a reduced matrix (x86_64; qcow2 and vmdk) with a deliberately
failing group: the appliance's repository (a copy) and images are reused, so the run imports
(a no-op), cooks the one new recipe, builds what the store lacks, boots every image under
QEMU (TCG), publishes what passed and reports. The next night the appliance itself breaks
(its init powers off before the boot marker): its new version is built but fails its boot
test, and the last good release stays current."""

from __future__ import annotations

import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT, appliance_sandbox, env_for

pytestmark = pytest.mark.slow

BROKEN_INIT = '''class BrokenInit(PackageRecipe):
    """An init that powers the machine off before the appliance is up: a boot that
    never reaches APPLIANCE-BOOT-OK."""

    name = 'broken-init'
    version = '1.0'

    def setup(r):
        r.Create('%(sysconfdir)s/inittab', contents='::sysinit:/etc/init.d/rcS\\n')
        r.Create('%(sysconfdir)s/init.d/rcS', mode=0o755,
                 contents='#!/bin/sh\\necho "broken-init: giving up"\\n/bin/busybox poweroff -f\\n')
        r.Requires('file: /sbin/init', '%(sysconfdir)s/init.d/rcS')
'''

GROUP_BROKEN = '''class GroupBroken(GroupRecipe):
    """The appliance with an init that never reaches the boot marker."""

    name = 'group-broken'
    version = '1.0'
    imageGroup = True
    hostname = 'broken'

    def setup(r):
        r.add('base-files')
        r.add('busybox')
        r.add('broken-init')
        r.add('linux-image-*-amd64' if r.arch == 'x86_64' else 'linux-image-*-686')
'''


class Rows(html.parser.HTMLParser):
    """The data-* attributes of the rows of report.html (what a person sees as table cells)."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self.status = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and any(k.startswith("data-") for k in a):
            self.rows.append(a)
        if a.get("id") == "status":
            self.status = a.get("data-status")


def nightly(settings, key, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**env_for(settings), **key.env(), "APPBUILD_PYTHON": sys.executable}
    return subprocess.run([str(PROJECT / "ci" / "nightly"), "--config", str(config), *args], env=env,
                          capture_output=True, text=True, timeout=1200)


def read_report(directory: Path) -> tuple[dict, Rows]:
    data = json.loads((directory / "report.json").read_text())
    rows = Rows()
    rows.feed((directory / "report.html").read_text())
    return data, rows


def test_nightly_publishes_what_boots_and_keeps_the_last_good_release(appliance, signing_key, tmp_path):
    s = appliance_sandbox(appliance, tmp_path / "sandbox")
    (s.recipes_dir / "broken-init").mkdir()
    (s.recipes_dir / "broken-init" / "recipe.py").write_text(BROKEN_INIT)
    (s.groups_dir / "group-broken.py").write_text(GROUP_BROKEN)
    dest = tmp_path / "www"
    config = tmp_path / "nightly.yaml"
    config.write_text(json.dumps({
        "groups": ["group-cernvm", "group-broken"], "arches": ["x86_64"], "formats": ["qcow2", "vmdk"],
        "to": str(dest), "keep": 3, "boot_timeout": 90, "import": True, "report": str(tmp_path / "night1")}))

    # ---- night 1: group-cernvm passes and is published; group-broken fails its boot test
    proc = nightly(s, signing_key, config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report, html = read_report(tmp_path / "night1")
    assert report["status"] == "failed" and html.status == "failed"
    stages = {st["name"]: st for st in report["stages"]}
    assert list(stages) == ["import", "cook", "build", "boot", "publish", "prune", "report"]
    assert all(st["seconds"] >= 0 for st in stages.values()) and stages["boot"]["seconds"] > 5
    assert {n: st["status"] for n, st in stages.items()} == {
        "import": "ok", "cook": "ok", "build": "ok", "boot": "failed", "publish": "ok", "prune": "ok", "report": "ok"}
    assert re.fullmatch(r"\d+ upstream packages, \d+ imported", stages["import"]["detail"])
    assert "broken-init=" in stages["cook"]["detail"]  # the one recipe the repository did not have
    assert stages["boot"]["detail"] == "2 passed, 2 failed, 0 already published"
    images = {(i["group"], i["format"]): i for i in report["images"]}
    # the appliance's version is in the image store already and is not rebuilt (unless this
    # checkout's group recipe or upstream packages moved on since the appliance was built)
    good = images[("group-cernvm", "qcow2")]["version"]
    expected_build = "reused" if good == appliance.version["x86_64"] else "built"
    assert set(images) == {("group-cernvm", "qcow2"), ("group-cernvm", "vmdk"),
                           ("group-broken", "qcow2"), ("group-broken", "vmdk")}
    for fmt in ("qcow2", "vmdk"):
        ok, bad = images[("group-cernvm", fmt)], images[("group-broken", fmt)]
        assert (ok["version"], ok["build"], ok["boot"], ok["publish"]) == (good, expected_build, "passed", "published")
        assert 0 < ok["boot_seconds"] < 90
        assert (bad["build"], bad["boot"], bad["publish"]) == ("built", "failed", "not published")
        assert "without printing 'APPLIANCE-BOOT-OK group-broken" in bad["error"]
        console = (tmp_path / "night1" / bad["console"]).read_text()
        assert "broken-init: giving up" in console
        assert "APPLIANCE-BOOT-OK group-cernvm" in (tmp_path / "night1" / ok["console"]).read_text()
    assert report["current"] == {"group-cernvm": {"x86_64": good}, "group-broken": {}}
    # the HTML report says the same in its rows
    rows = {(r.get("data-group"), r.get("data-format")): r for r in html.rows if r.get("class") == "image"}
    assert rows[("group-broken", "qcow2")]["data-boot"] == "failed"
    assert rows[("group-cernvm", "vmdk")]["data-publish"] == "published"
    assert {r["data-stage"]: r["data-status"] for r in html.rows if r.get("class") == "stage"}["boot"] == "failed"
    # the download server has the good one only
    feed = json.loads((dest / "group-cernvm" / "releases.json").read_text())
    assert feed["current"] == {"x86_64": good} and feed["releases"][0]["channel"] == "nightly"
    assert not (dest / "group-broken").exists()

    # ---- night 2: the appliance itself breaks (its init powers off where it used to print the
    # marker); the new version is cooked, built, fails its boot test and is not published
    shutil.copytree(PROJECT / "recipes" / "appliance-init", s.recipes_dir / "appliance-init")
    rcs = s.recipes_dir / "appliance-init" / "rcS"
    marker = 'echo "APPLIANCE-BOOT-OK $GROUP $VERSION $ARCH"'
    assert marker in rcs.read_text()
    rcs.write_text(rcs.read_text().replace(marker, 'echo "rcS: broken tonight"; /bin/busybox poweroff -f'))
    proc = nightly(s, signing_key, config, "--report", str(tmp_path / "night2"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report, html = read_report(tmp_path / "night2")
    images = [i for i in report["images"] if i["group"] == "group-cernvm"]
    assert {i["format"] for i in images} == {"qcow2", "vmdk"}
    bad_version = images[0]["version"]
    assert bad_version != good
    for image in images:
        assert (image["build"], image["boot"], image["publish"]) == ("built", "failed", "not published")
    for image in (i for i in report["images"] if i["group"] == "group-broken"):  # unchanged: not rebuilt
        assert (image["build"], image["boot"], image["publish"]) == ("reused", "failed", "not published")
    assert report["current"] == {"group-cernvm": {"x86_64": good}, "group-broken": {}}  # the last good stays
    feed = json.loads((dest / "group-cernvm" / "releases.json").read_text())
    assert feed["current"] == {"x86_64": good} and [r["version"] for r in feed["releases"]] == [good]
    assert not (dest / "group-cernvm" / bad_version).exists()
    stages = {st["name"]: st for st in report["stages"]}
    assert stages["cook"]["status"] == "ok" and "appliance-init=" in stages["cook"]["detail"]
    assert "rcS: broken tonight" in (tmp_path / "night2" / images[0]["console"]).read_text()

    # a configuration with a typo is refused before any work
    config.write_text("groups: [group-cernvm]\nformat: qcow2\n")
    typo = nightly(s, signing_key, config)
    assert typo.returncode == 1 and "unknown keys ['format']" in typo.stderr
    assert os.access(PROJECT / "ci" / "nightly", os.X_OK)
