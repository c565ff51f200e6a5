"""The proof in the guest: group-cernvm (plus the test's repository key) boots under QEMU
(TCG) with a config drive and a repository this test publishes and serves on
127.0.0.1, reached through -netdev user,restrict=on,guestfwd=... Contextualization
creates the user, sets the environment and the proxies (the first one dead), mounts
the repository and runs the check script from the drive as that user; the script
prints one line per check on the console, and this test asserts them. In the middle
the script asks to go offline: the test stops the server, and the cached file must
still read."""

from __future__ import annotations

import os
import re
import time

import pytest

from appbuilder.context.drive import make_config_drive
from appbuilder.fs.catalog import Catalog
from appbuilder.fs.manifest import MANIFEST_NAME, parse
from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectStore
from appbuilder.fs.publish import publish
from appbuilder.verify.boot import BOOT_MARKER, BootOptions
from tests.context.conftest import DEAD_PROXY_IP, PROXY_IP, SERVER_IP, TEST_REPO
from tests.fs.conftest import make_tree
from tests.fs.test_group import debugfs
from tests.imageroot import root_partition
from tests.guest import RunningGuest
from tests.servers import ForwardProxy, StaticServer, closed_port

pytestmark = pytest.mark.slow

USER_DATA = f"""# EC2-style user data, as CernVM took it
[cernvm]
organisations = ATLAS
repositories = atlas
users = alice:atlas:s3cret
this line is malformed
environment = ANALYSIS=higgs,RELEASE=24.0.1
proxy = http://{DEAD_PROXY_IP}:3128;http://{PROXY_IP}:3128
os_version = 1.0-1-2
os_server = http://{SERVER_IP}/cvmfs/@fqrn@
services = syslogd
contextualization_command = alice:/media/context/check.sh

[amiconfig]
plugins = cernvm
"""

R = f"/cvmfs/{TEST_REPO}"
CHECK_SCRIPT = f"""#!/bin/sh
# run by cernvm-context as the user named in contextualization_command
echo "CHECK user $(id -un) $(id -gn) $HOME"
echo "CHECK env ANALYSIS=$ANALYSIS RELEASE=$RELEASE ORG=$CERNVM_ORGANISATION"
echo "CHECK read $(cat {R}/release/hello.txt 2>&1)"
echo "CHECK ls $(ls {R}/release | tr '\\n' ' ')"
echo "CHECK symlink $(readlink {R}/release/latest) $(cat {R}/release/latest 2>&1)"
if out=$(cat {R}/release/tampered.txt 2>&1); then echo "CHECK tampered READ $out"; else echo "CHECK tampered refused: $out"; fi
echo "CHECK failover $(grep -c 'proxy http://{DEAD_PROXY_IP}:3128 failed' /var/log/cvmfs/{TEST_REPO}.log)"
echo "CHECK mismatch $(grep -c 'hash mismatch' /var/log/cvmfs/{TEST_REPO}.log)"
echo "CHECK service $(pidof syslogd >/dev/null && echo syslogd-running)"
echo "CHECK go-offline"
i=0
while wget -q -O /dev/null http://{SERVER_IP}/cvmfs/{TEST_REPO}/.cvmfspublished 2>/dev/null; do
    i=$((i + 1)); [ $i -ge 120 ] && break; sleep 1
done
echo "CHECK server-gone after $i s"
echo "CHECK offline-read $(cat {R}/release/hello.txt 2>&1)"
if out=$(cat {R}/release/never.txt 2>&1); then echo "CHECK offline-uncached READ $out"; else echo "CHECK offline-uncached refused: $out"; fi
echo "CHECK end"
exit 3  # a failing script: reported, and the boot goes on
"""


def publish_test_repository(tmp_path, keypair):
    src = make_tree(tmp_path / "src", {
        "release/hello.txt": "hello from the repository\n",
        "release/tampered.txt": "this object is damaged on the server\n",
        "release/never.txt": "read only after going offline\n",
    }, {"release/latest": "hello.txt"})
    out = tmp_path / "www"
    publish(src, TEST_REPO, out / "cvmfs", keypair.private_path)
    store = ObjectStore(out / "cvmfs" / TEST_REPO)
    manifest = parse((store.root / MANIFEST_NAME).read_bytes()).manifest
    catalog = Catalog(store.get(manifest.catalog, CATALOG_SUFFIX))
    victim = store.path(catalog.lookup("/release/tampered.txt").hash)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    return out, catalog.lookup("/release/hello.txt").hash


@pytest.mark.parametrize("arch, drive", [("x86_64", "ctx.iso"), ("x86", "ctx.img")])
def test_the_contextualized_appliance_reads_the_repository_and_goes_offline(context_images, tmp_path, arch, drive):
    www, hello_hash = publish_test_repository(tmp_path, context_images.keypair)
    server = StaticServer(www)
    proxy = ForwardProxy(server.url)
    (tmp_path / "user-data.ini").write_text(USER_DATA)
    (tmp_path / "check.sh").write_text(CHECK_SCRIPT)
    os.chmod(tmp_path / "check.sh", 0o755)
    ctx = make_config_drive(tmp_path / "user-data.ini", tmp_path / drive, extra=[tmp_path / "check.sh"])
    opts = BootOptions(arch=arch, drive_format="raw", timeout=120, extra_drives=[(ctx.path, "raw", "virtio")],
                       guestfwd=[(SERVER_IP, 80, server.port), (DEAD_PROXY_IP, 3128, closed_port()),
                                 (PROXY_IP, 3128, proxy.port)])
    start = time.monotonic()
    try:
        with RunningGuest(context_images.images[arch], opts) as guest:
            assert BOOT_MARKER in guest.wait_for(BOOT_MARKER)
            assert re.search(r"network: eth0 10\.0\.2\.15/24", guest.wait_for("network:"))
            guest.wait_for("cernvm-context: user data from the config drive")
            assert guest.wait_for("cernvm-context: line") == \
                "cernvm-context: line 6: expected 'key = value', got: this line is malformed"
            # the keys of a network-booted appliance's initramfs: recorded, not applied here
            assert guest.wait_for("cernvm-context: os_version") == (
                f"cernvm-context: os_version 1.0-1-2, os_server http://{SERVER_IP}/cvmfs/@fqrn@: ignored, this "
                "appliance boots from its disk (they choose the OS of a network-booted one)")
            guest.wait_for(f"cernvm-context: repository {TEST_REPO} mounted on {R}")

            def check(name: str) -> str:
                return guest.wait_for(f"CHECK {name}", timeout=60).split(f"CHECK {name}", 1)[1].strip()

            assert check("user") == "alice atlas /home/alice"
            assert check("env") == "ANALYSIS=higgs RELEASE=24.0.1 ORG=ATLAS"
            assert check("read") == "hello from the repository"
            assert check("ls") == "hello.txt latest never.txt tampered.txt"
            assert check("symlink") == "hello.txt hello from the repository"
            tampered = check("tampered")
            assert tampered.startswith("refused:") and "Input/output error" in tampered
            assert check("failover") == "1"  # the dead proxy, tried once and then skipped
            assert int(check("mismatch")) >= 1
            assert check("service") == "syslogd-running"
            check("go-offline")
            served = list(server.requests)
            server.stop()
            assert re.fullmatch(r"after \d+ s", check("server-gone"))
            assert check("offline-read") == "hello from the repository"
            uncached = check("offline-uncached")
            assert uncached.startswith("refused:") and "Input/output error" in uncached
            check("end")
            assert guest.wait_for("cernvm-context: contextualization command") == \
                "cernvm-context: contextualization command failed (exit status 3); the boot goes on"
            assert guest.wait_for("cernvm-context: done").startswith("cernvm-context: done (")
            assert "login:" in guest.wait_for("login:", timeout=60, partial=True)
            console = guest.console
    finally:
        server.stop()
        proxy.stop()
    # the guest reached the server through the live proxy only, and read the file's object once
    assert any(r.endswith(hello_hash[2:]) for r in proxy.requests)
    assert sum(r.endswith(hello_hash[2:]) for r in served) == 1
    assert not [r for r in served if "never" in r]
    assert "s3cret" not in console  # the password is not shown
    assert "unknown key" not in console
    print(f"{arch}: contextualized, checked and offline in {time.monotonic() - start:.1f} s")


def test_without_user_data_the_appliance_boots_as_before(appliance, tmp_path):
    """The production image with a network card (e1000) but no config drive, no OVF
    environment and no metadata service: DHCP brings the card up, contextualization finds
    nothing to do, the SSH server starts and the console says how to give a way in (root
    stays locked: its password in the image is '!'), the boot reaches the login prompt."""
    qcow2 = next(p for p in appliance.files[("x86_64", "qcow2")] if p.suffix == ".qcow2")
    opts = BootOptions(arch="x86_64", drive_format="qcow2", timeout=90, extra_args=[
        "-netdev", "user,id=net0,restrict=on", "-device", "e1000,netdev=net0"])
    with RunningGuest(qcow2, opts) as guest:
        assert guest.wait_for(BOOT_MARKER).endswith(f"group-cernvm cernvm@cvm:2/{appliance.version['x86_64']} x86_64")
        assert re.search(r"network: eth0 10\.0\.2\.15/24", guest.wait_for("network:"))
        assert guest.wait_for("cernvm-context:") == (
            "cernvm-context: no user data (no config drive labelled cidata, no OVF environment, no EC2 or OpenStack "
            "metadata): nothing to do")
        assert guest.wait_for("sshd: dropbear") == "sshd: dropbear listening on port 22"
        assert guest.wait_for("sshd: no SSH key") == (
            "sshd: no SSH key or password was given, so nobody can log in (root is locked): pass a key through "
            "EC2 or OpenStack metadata, an OVF environment (appliance.ssh_authorized_keys, "
            "appliance.login_password_hash), or user data ([cernvm] ssh_authorized_keys = ...)")
        assert "login:" in guest.wait_for("login:", timeout=60, partial=True)
    fs = root_partition(appliance.file("x86_64", "raw"), tmp_path / "root.ext4")
    shadow = dict(line.split(":", 2)[:2] for line in debugfs(fs, "cat /etc/shadow").splitlines() if ":" in line)
    assert shadow["root"] == "!" and all(h.startswith(("!", "*")) for h in shadow.values()), shadow
    assert "LOGIN_USER=cernvm" in debugfs(fs, "cat /etc/appliance-release").splitlines()
