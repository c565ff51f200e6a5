"""The file system client's cache on a small disk, in the guest: the context test's image
(group-cernvm plus the test repository's key) booted from its own raw disk, so the root
has nothing to grow and keeps the few tens of MB its build leaves free. The default quota
(1000 MB) cannot be honoured there: cvmfs2 says at mount what its effective limit is,
df on the mount point shows it, and a 100 MB file is refused before any download with the
disk, not the quota, named as full."""

from __future__ import annotations

import re

import pytest

from appbuilder.context.drive import make_config_drive
from appbuilder.fs.catalog import Catalog
from appbuilder.fs.manifest import MANIFEST_NAME, parse
from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectStore
from appbuilder.fs.publish import publish
from appbuilder.verify.boot import BOOT_MARKER, BootOptions
from tests.context.conftest import SERVER_IP, TEST_REPO
from tests.fs.conftest import make_tree
from tests.guest import RunningGuest
from tests.servers import StaticServer

pytestmark = pytest.mark.slow

BIG_MB = 100
R = f"/cvmfs/{TEST_REPO}"
LOG = f"/var/log/cvmfs/{TEST_REPO}.log"
CHECK_SCRIPT = f"""#!/bin/sh
# run as root by cernvm-context once the repository is mounted
echo "CHECK small $(cat {R}/release/small.txt 2>&1)"
if out=$(cat {R}/release/big.bin 2>&1 >/dev/null); then echo "CHECK big READ"; else echo "CHECK big refused: $out"; fi
echo "CHECK mount $(grep -o 'the quota (CVMFS_QUOTA_LIMIT) is .*' {LOG} | head -n 1)"
echo "CHECK full $(grep -o 'the disk is full: .*' {LOG} | head -n 1)"
echo "CHECK quota-blamed $(grep -c 'the cache is full (quota)' {LOG})"
echo "CHECK df $(df -Pk {R} | tail -n 1)"
echo "CHECK end"
"""


def test_on_a_small_disk_the_cache_says_the_disk_not_the_quota_is_full(context_images, tmp_path):
    src = make_tree(tmp_path / "src", {"release/small.txt": "fits\n", "release/big.bin": bytes(BIG_MB << 20)})
    www = tmp_path / "www"
    publish(src, TEST_REPO, www / "cvmfs", context_images.keypair.private_path)
    store = ObjectStore(www / "cvmfs" / TEST_REPO)
    catalog = Catalog(store.get(parse((store.root / MANIFEST_NAME).read_bytes()).manifest.catalog, CATALOG_SUFFIX))
    big_hash = catalog.lookup("/release/big.bin").hash
    (tmp_path / "user-data").write_text(
        "[cernvm]\nrepositories = atlas\ncontextualization_command = root:/media/context/check.sh\n")
    (tmp_path / "check.sh").write_text(CHECK_SCRIPT)
    (tmp_path / "check.sh").chmod(0o755)
    drive = make_config_drive(tmp_path / "user-data", tmp_path / "ctx.iso", extra=[tmp_path / "check.sh"])
    server = StaticServer(www)
    opts = BootOptions(arch="x86_64", drive_format="raw", timeout=120, extra_drives=[(drive.path, "raw", "virtio")],
                       guestfwd=[(SERVER_IP, 80, server.port)])
    try:
        with RunningGuest(context_images.images["x86_64"], opts) as guest:
            grow = guest.wait_for("grow: ")
            guest.wait_for(BOOT_MARKER)
            guest.wait_for(f"cernvm-context: repository {TEST_REPO} mounted on {R}")
            checks = {name: guest.wait_for(f"CHECK {name}", timeout=60).split(f"CHECK {name}", 1)[1].strip()
                      for name in ("small", "big", "mount", "full", "quota-blamed", "df", "end")}
    finally:
        server.stop()

    # the image's own size: the first boot has nothing to grow and says why
    m = re.fullmatch(r"grow: nothing to grow: root partition /dev/vda2 (\d+) MiB \(already at the end of the disk\), "
                     r"file system \1 MiB \(fills the partition\); df: \d+ MiB, (\d+) MiB available, in \d+\.\d\d s", grow)
    assert m, grow
    assert int(m.group(2)) < BIG_MB  # so the default quota of 1000 MB cannot be honoured

    assert checks["small"] == "fits"
    assert checks["big"].startswith("refused:") and "No space left on device" in checks["big"], checks["big"]
    mount = re.fullmatch(r"the quota \(CVMFS_QUOTA_LIMIT\) is 1000 MB, but the file system has only (\d+) MB free: "
                         r"the effective limit is (\d+) MB until the disk has room", checks["mount"])
    assert mount, checks["mount"]
    free, effective = int(mount.group(1)), int(mount.group(2))
    assert free < BIG_MB and 0 < effective <= free + 1
    full = re.fullmatch(rf"the disk is full: {BIG_MB} MB do not fit on the file system of /var/lib/cvmfs/{TEST_REPO}: "
                        r"it has (\d+) MB free and the cache holds (\d+) MB \(quota 1000 MB\)", checks["full"])
    assert full, checks["full"]
    assert int(full.group(1)) + int(full.group(2)) < BIG_MB
    assert checks["quota-blamed"] == "0"
    fields = checks["df"].split()  # Filesystem 1024-blocks Used Available Capacity Mounted-on
    assert fields[5] == R and abs(int(fields[1]) // 1024 - effective) <= 2  # df shows the effective limit
    assert not [r for r in server.requests if r.endswith(big_hash[2:])]  # refused before downloading
