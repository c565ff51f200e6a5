"""group-cernvm-el (issue 15, point 4): the appliance's own packages and kernel on an EL base,
resolved top-down against an rpm-md repository and built into raw images whose RPM scriptlets
ran at image time, rootless.

The `el` source is the EL-like repository of ``tests/el_repo.py``, served over HTTP from
127.0.0.1; the appliance's repository (the ``appliance`` session fixture) is copied, so the
cooked packages and the kernel are there already. Three images are built (a few seconds each
after the imports): group-cernvm-el itself; ``group-el-daemon`` (group-cernvm-el and
el-daemon, whose ``%pre`` makes the user appd, whose ``%post`` makes a file owned by it,
whose ``%triggerin -- libhello`` leaves a line); and ``group-el-plugins`` (the same and
el-daemon-plugins, which brings el-extra through el-daemon's ``(el-extra if
el-daemon-plugins)``). Then two builds that must fail: el-fail's ``%post`` exits 1, el-hang's
sleeps past ``scripts.timeout``. Each image is read back with debugfs and with ``rpm --root
T --dbpath /var/lib/rpm -qa`` over its RPM database; the one with el-daemon boots under QEMU.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from appbuilder.cli.common import open_repo
from appbuilder.graph.groups import find_group
from appbuilder.verify.boot import BootOptions, boot_until
from tests.conftest import appliance_sandbox, run_appbuild
from tests.imageroot import ImageRoot, built_raw

pytestmark = pytest.mark.slow

KERNEL_MODULES = "('vfat', 'nls_cp437', 'nls_ascii', 'nls_utf8', 'virtio_net', 'e1000', 'fuse', 'isofs')"
TEST_GROUP = '''\
class {cls}(GroupRecipe):
    """group-cernvm-el and {adds}."""

    name = '{name}'
    version = '1.0'
    imageGroup = True
    hostname = 'cernvm'
    kernelModules = {modules}
    resolveSources = ('el',)
    upstreamRelations = True
    packageScripts = True

    def setup(r):
        r.addNewGroup('group-cernvm-el')
{body}
'''
TEST_GROUPS = {"group-el-daemon": ["el-daemon"], "group-el-plugins": ["el-daemon", "el-daemon-plugins"],
               "group-el-fail": ["el-fail"], "group-el-hang": ["el-hang"]}
SCRIPT_TIMEOUT = 8


@dataclass
class ElImages:
    settings: object
    raw: dict[str, Path] = field(default_factory=dict)  # group -> its raw image
    output: dict[str, str] = field(default_factory=dict)  # group -> the build's stdout + stderr
    failed: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)


@pytest.fixture(scope="module")
def el_images(appliance, el_repo, el_http, tmp_path_factory) -> ElImages:
    root = tmp_path_factory.mktemp("cernvm-el")
    s = appliance_sandbox(appliance, root, ["appliance-init"])  # a build cooks what changed: nothing here
    config_file = s.workspace / "repo" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config.setdefault("sources", {})["el"] = el_repo.source(el_http.url, label="el@cvm:9")
    config["scripts"] = {"timeout": SCRIPT_TIMEOUT}
    config_file.write_text(yaml.safe_dump(config))
    for name, adds in TEST_GROUPS.items():
        cls = "".join(part.capitalize() for part in name.split("-"))
        body = "\n".join(f"        r.add({a!r})" for a in adds)
        (s.groups_dir / f"{name}.py").write_text(TEST_GROUP.format(cls=cls, name=name, adds=" and ".join(adds),
                                                                   modules=KERNEL_MODULES, body=body))
    images = ElImages(s)
    for group in ("group-cernvm-el", "group-el-daemon", "group-el-plugins"):
        proc = run_appbuild(s, group, "--format", "raw", "--arch", "x86_64", timeout=1800)
        images.raw[group] = built_raw(proc.stdout, group)
        images.output[group] = proc.stdout + proc.stderr
    for group in ("group-el-fail", "group-el-hang"):
        images.failed[group] = run_appbuild(s, group, "--format", "raw", "--arch", "x86_64", check=False,
                                            timeout=900)
    return images


# ------------------------------------------------------------------ reading an image back


class Root(ImageRoot):
    """An image's root file system, read with debugfs, and its RPM database with rpm."""

    def rpm_qa(self) -> set[str]:
        """``rpm --root T --dbpath /var/lib/rpm -qa`` over the image's RPM database."""
        top = self.work / f"{self.fs.stem}-rpmroot"
        (top / "var" / "lib").mkdir(parents=True, exist_ok=True)
        self.debugfs(f'rdump /var/lib/rpm "{top / "var" / "lib"}"')
        assert (top / "var" / "lib" / "rpm").is_dir(), "the image has no /var/lib/rpm"
        proc = subprocess.run(["rpm", "--root", str(top), "--dbpath", "/var/lib/rpm", "-qa", "--qf", "%{NAME}\\n"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return set(proc.stdout.split())


def users(passwd: str) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in passwd.splitlines() if line.count(":") == 6}


# ------------------------------------------------------------------ the tests


def test_the_el_base_comes_from_the_rpm_md_repository(el_images, el_http, tmp_path):
    repo = open_repo(el_images.settings)
    group = repo.get(find_group(repo, "group-cernvm-el", "x86_64"), with_files=False)
    reasons = {key.split("=", 1)[0]: reason for key, reason in group.info["reasons"].items()}
    # the C library is EL's, found by what the cooked packages need; Debian's is left out
    assert "libc6:deb" not in reasons and "base-files:config" not in reasons, sorted(reasons)
    assert {"cvmfs-client:runtime", "busybox:runtime", "el-setup:rpm", "el-filesystem:rpm"} <= set(reasons)
    assert any(k.startswith("linux-image-") for k in reasons)
    assert re.search(r"requires (file: /lib64/ld-linux-x86-64\.so\.2|soname: ELF64/libc\.so\.6)",
                     reasons["el-glibc:rpm"]), reasons["el-glibc:rpm"]
    # glibc -> setup, filesystem: through the RPM Requires of what came from the `el` source
    assert reasons["el-setup:rpm"] == "el-glibc:rpm requires rpm: el-setup", reasons["el-setup:rpm"]
    assert reasons["el-filesystem:rpm"] == "el-glibc:rpm requires rpm: el-filesystem"
    assert group.info["package_scripts"] is True and group.info["resolve_sources"] == ["el"]
    # every member from upstream says why and from which index
    upstream = group.info["upstream"]
    assert set(upstream) == {"el-glibc", "el-setup", "el-filesystem"}, upstream
    assert all(f"el {el_http.url}/repodata primary" in u["index"] for u in upstream.values()), upstream
    assert upstream["el-setup"]["reason"] == "el-glibc Requires: el-setup", upstream

    root = Root(el_images.raw["group-cernvm-el"], tmp_path)
    accounts = users(root.cat("/etc/passwd"))
    assert accounts["bin"][2:4] == ["1", "1"] and accounts["nobody"][2] == "65534", accounts  # setup's ids
    assert {"el-glibc", "el-setup", "el-filesystem"} == root.rpm_qa()  # the Debian capsules are not RPMs
    assert root.stat("/lib/x86_64-linux-gnu/libc.so.6") is not None and root.stat("/usr/bin/cvmfs2") is not None
    assert root.stat("/tmp") == (0, 0, 0o1777) and root.stat("/proc") == (0, 0, 0o555)  # EL's filesystem


def test_the_daemon_scriptlets_ran_in_the_image(el_images, tmp_path):
    root = Root(el_images.raw["group-el-daemon"], tmp_path)
    packages = root.rpm_qa()
    assert {"el-daemon", "el-sh", "libhello", "el-glibc", "el-setup"} <= packages, packages
    assert "el-extra" not in packages and "el-daemon-plugins" not in packages
    accounts = users(root.cat("/etc/passwd"))
    assert "appd" in accounts, accounts  # made by el-daemon's %pre (useradd -r)
    uid, gid = int(accounts["appd"][2]), int(accounts["appd"][3])
    assert 0 < uid < 1000 and accounts["appd"][5] == "/var/lib/appd"
    assert re.search(rf"^appd:x:{gid}:", root.cat("/etc/group"), re.M)
    # %post: a file and a directory owned by the user %pre made, modes as it set them
    assert root.stat("/var/lib/appd/state") == (uid, gid, 0o640)
    assert root.stat("/var/lib/appd") == (uid, gid, 0o750)
    assert root.cat("/var/lib/appd/state") == "el-daemon state (install 1)\n"
    # %triggerin -- libhello
    assert "libhello trigger: el-daemon 1 libhello 1" in root.cat("/var/lib/el-daemon/triggered")
    log = el_images.output["group-el-daemon"]
    assert "el-daemon" in log


def test_el_extra_comes_only_with_the_plugins(el_images, tmp_path):
    root = Root(el_images.raw["group-el-plugins"], tmp_path)
    packages = root.rpm_qa()
    assert {"el-daemon", "el-daemon-plugins", "el-extra"} <= packages, packages
    assert root.cat("/usr/share/el-extra/README") == "el-extra\n"
    without = Root(el_images.raw["group-el-daemon"], tmp_path)
    assert without.stat("/usr/share/el-extra/README") is None


@pytest.mark.parametrize("group, package, words", [
    ("group-el-fail", "el-fail", ("%post", "exit 1")),
    ("group-el-hang", "el-hang", ("%post", f"{SCRIPT_TIMEOUT} s")),
])
def test_a_failing_or_hanging_scriptlet_names_package_and_scriptlet(el_images, group, package, words):
    proc = el_images.failed[group]
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors, proc.stderr
    assert package in errors[0] and all(w in errors[0] for w in words), errors[0]


def test_the_el_image_boots(el_images):
    """The image with el-daemon boots under QEMU to appliance-init's marker: the cooked init,
    busybox and client run on EL's C library and accounts."""
    result = boot_until(el_images.raw["group-el-daemon"], BootOptions("x86_64", timeout=180), keep_running=2)
    assert result.found, result.console[-3000:]
    assert "APPLIANCE-BOOT-OK group-el-daemon " in result.line, result.line
