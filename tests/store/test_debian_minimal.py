"""group-debian-minimal (issue 15, point 3): a real Debian, top-down from the archive.

The group names only ``systemd-sysv`` and a kernel. Resolution follows Debian's own
Depends and Pre-Depends from the Essential set up, against the machine's apt sources;
what the repository lacks is imported as capsules; the maintainer scripts run at image
time in a user namespace; the raw image boots under QEMU/TCG to systemd's multi-user
target, where appbuild's marker unit prints the marker on the console. Built once (in a
copy of the session appliance's repository, so the kernel and the cooked busybox the
initramfs runs are there already) and checked several ways: the plan, the boot, the
dpkg database, accounts and owners the scripts made, merged /usr, and a rebuild from the
pins giving the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from appbuilder.verify.boot import BootOptions, boot_until
from tests.conftest import appliance_sandbox, run_appbuild
from tests.imageroot import ImageRoot, built_raw

pytestmark = pytest.mark.slow

GROUP = "group-debian-minimal"


@dataclass
class DebianImage:
    settings: object
    plan: str
    output: str
    raw: Path
    version: str
    root: ImageRoot


@pytest.fixture(scope="module")
def debian(appliance, tmp_path_factory) -> DebianImage:
    root = tmp_path_factory.mktemp("debian-minimal")
    s = appliance_sandbox(appliance, root)
    plan = run_appbuild(s, "resolve", GROUP, "--upstream", "--arch", "x86_64", timeout=900)
    proc = run_appbuild(s, GROUP, "--format", "raw", "--arch", "x86_64", timeout=2400)
    raw = built_raw(proc.stdout, GROUP)
    version = re.search(rf"^{GROUP}=\S+/(\S+)\[is: x86_64\]:", proc.stdout, re.M).group(1)
    return DebianImage(s, plan.stdout, proc.stdout + proc.stderr, raw, version, ImageRoot(raw, root))


def test_the_plan_names_what_would_be_imported_and_why(debian):
    """`appbuild resolve --upstream` lists the picks with the index they come from and the
    relation that brought each in, and imports nothing."""
    plan = debian.plan
    for name in ("systemd", "libsystemd0", "dpkg", "base-passwd", "usr-is-merged"):
        assert re.search(rf"^\s*{re.escape(name)}\s", plan, re.M), (name, plan)
    assert "Pre-Depends" in plan and "Depends" in plan, plan
    assert "bookworm" in plan, plan
    # the kernel's initramfs tool: Debian's first alternative wins over dracut
    assert re.search(r"^\s*initramfs-tools\s", plan, re.M), plan
    assert not re.search(r"^\s*dracut\s", plan, re.M), plan


def test_it_boots_to_systemds_multi_user_target(debian):
    result = boot_until(debian.raw, BootOptions(arch="x86_64", memory_mib=512, timeout=300))
    assert result.found, result.console[-4000:]
    assert f"APPLIANCE-BOOT-OK {GROUP}" in result.line and "multi-user" in result.line
    assert "emergency mode" not in result.console
    assert "Failed to start" not in result.console, result.console[-4000:]


def test_every_package_is_configured_in_the_dpkg_database(debian):
    status = debian.root.cat("/var/lib/dpkg/status")
    stanzas = [s for s in status.split("\n\n") if s.strip()]
    assert len(stanzas) > 80, status[:2000]
    states = {re.search(r"^Package: (\S+)", s, re.M).group(1): re.search(r"^Status: (.*)$", s, re.M).group(1)
              for s in stanzas}
    assert {p for p, state in states.items() if state != "install ok installed"} == set()
    for name in ("systemd", "systemd-sysv", "libc6", "dpkg", "base-passwd", "linux-image-amd64"):
        assert name in states, name


def test_maintainer_scripts_made_their_accounts_links_and_files(debian):
    passwd = debian.root.cat("/etc/passwd")
    group = debian.root.cat("/etc/group")
    # base-passwd's update-passwd: Debian's static ids
    assert re.search(r"^daemon:x:1:1:", passwd, re.M), passwd
    assert re.search(r"^shadow:x:42:", group, re.M), group
    # systemd's postinst (systemd-sysusers): its system users, in the dynamic range
    assert re.search(r"^systemd-network:x:\d+:", passwd, re.M), passwd
    # the alternatives dpkg's scripts set up, and shadow's group on its tools
    assert debian.root.link("/etc/alternatives/awk") == "/usr/bin/mawk"
    uid, gid, mode = debian.root.stat("/usr/bin/chage")
    assert gid == 42 and mode & 0o2000, (uid, gid, oct(mode))
    # nothing random or host-specific is left in the image
    assert debian.root.cat("/etc/machine-id") == ""
    assert debian.root.stat("/var/lib/systemd/random-seed") is None


def test_the_root_is_merged_usr(debian):
    for top in ("bin", "sbin", "lib"):
        assert debian.root.link(f"/{top}") == f"usr/{top}", top
    assert debian.root.stat("/usr/bin/sh") is not None
    assert debian.root.link("/sbin/init") in ("/lib/systemd/systemd", "../lib/systemd/systemd")


def test_a_rebuild_from_the_pins_gives_the_same_bytes(debian):
    before = hashlib.sha256(debian.raw.read_bytes()).hexdigest()
    proc = run_appbuild(debian.settings, GROUP, "--version", debian.version, "--format", "raw", "--arch", "x86_64",
                        "--force", timeout=1200)
    assert "did not rebuild" not in proc.stdout + proc.stderr
    assert hashlib.sha256(debian.raw.read_bytes()).hexdigest() == before
