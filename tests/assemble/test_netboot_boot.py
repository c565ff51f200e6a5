"""The network-booting appliance, end to end: its OS published by ``appbuild fs publish-group``
and served on 127.0.0.1 (reached through QEMU's ``guestfwd``), the small qcow2 made by
``appbuild group-cernvm --boot network`` booted under QEMU (TCG), for x86_64 and x86.

One disk per architecture lives through a sequence of boots, as a user's would: version 1
runs from its pin; version 2 is published; ``appliance update`` and a reboot run 2 (a file
the user changed that 2 changes too is reported and kept, the rest of the writable layer
survives); ``appliance rollback`` and a reboot run 1 again, with later versions published;
with the server stopped it still boots, offline. Then the trust checks: a replayed older
manifest and an expired one are refused, each saying why, and the client falls back to its
cache; a tampered catalog is refused on a fresh disk."""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appbuilder.core.settings import Settings
from appbuilder.verify.boot import BootOptions
from tests.conftest import appliance_sandbox, run_appbuild
from tests.guest import RunningGuest
from tests.servers import StaticServer

pytestmark = pytest.mark.slow

SERVER = "10.0.2.100"
SECOND_SERVER = "10.0.2.101"
BOOT_TIMEOUT = 240


@dataclass
class NetworkOS:
    """group-cernvm's OS published for both architectures, the network-booting qcow2 of
    version 1, and a version 2 (base-files changed) cooked and resolved but not yet published."""

    settings: Settings
    out: Path  # the static tree the server serves: OUT/group-cernvm.ARCH
    images: dict[str, Path]
    v1: dict[str, str]
    v2: dict[str, str] = field(default_factory=dict)
    build_output: str = ""

    def repository(self, arch: str) -> Path:
        return self.out / f"group-cernvm.{arch}"

    def publish(self, arch: str, version: str) -> str:
        return run_appbuild(self.settings, "fs", "publish-group", f"group-cernvm={version}", "--arch", arch,
                            "--to", str(self.out)).stdout


@pytest.fixture(scope="module")
def network_os(appliance, tmp_path_factory) -> NetworkOS:
    root = tmp_path_factory.mktemp("network-os")
    s = appliance_sandbox(appliance, root, ["base-files"])
    keys = s.workspace / "keys"
    for arch in ("x86_64", "x86"):
        run_appbuild(s, "fs", "keygen", "--repo", f"group-cernvm.{arch}", "-o", str(keys))
    out = root / "www"
    published = run_appbuild(s, "fs", "publish-group", "group-cernvm", "--arch", "all", "--to", str(out)).stdout
    built = run_appbuild(s, "group-cernvm", "--boot", "network", "--format", "qcow2", "--arch", "all", "--no-cook",
                         "--os-server", f"http://{SERVER}/@fqrn@").stdout
    images, versions = {}, {}
    for m in re.finditer(r"^group-cernvm=\S+/(\S+)\[is: (\S+)\]: (\S+)\n  qcow2\s+(\S+)", built, re.M):
        versions[m.group(2)] = m.group(1)
        images[m.group(2)] = Path(m.group(3)) / m.group(4)
    assert set(images) == {"x86_64", "x86"}, built
    for arch, version in versions.items():
        assert f"-> {out}/group-cernvm.{arch} tag {version}" in published, published
    # version 2: a change to base-files (the login banner, /etc/issue), cooked and resolved
    recipe = s.recipes_dir / "base-files" / "recipe.py"
    recipe.write_text(recipe.read_text().replace("CernVM appliance (built by appbuild)", "CernVM appliance (v2)"))
    run_appbuild(s, "cook", str(s.recipes_dir / "base-files"), "--arch", "all")
    resolved = run_appbuild(s, "resolve", "group-cernvm", "--arch", "all").stdout
    v2 = dict((arch, rev) for rev, arch in re.findall(r"group-cernvm=\S+/(\S+)\[is: (\S+)\]", resolved))
    assert set(v2) == {"x86_64", "x86"} and all(v2[a] != versions[a] for a in v2), resolved
    return NetworkOS(s, out, images, versions, v2, built)


def publish_later_versions(network_os: NetworkOS, arch: str, count: int) -> list[str]:
    """Publish *count* more versions after version 2 (its OS with one file changed each, tagged
    ``V2.1`` ...): what years of releases leave in the repository."""
    from appbuilder.assemble.image import stage_image
    from appbuilder.cli.common import open_repo
    from appbuilder.fs.publish import publish
    from appbuilder.graph.groups import find_group, staged_troves
    from appbuilder.store.build import device_modules

    s, v2 = network_os.settings, network_os.v2[arch]
    repo = open_repo(s)
    group = repo.get(find_group(repo, "group-cernvm", arch, v2), with_files=False)
    work = network_os.out.parent / f"later-{arch}"
    image = stage_image(repo, group, staged_troves(repo, group), {"group": "group-cernvm", "source_date_epoch":
                        s.get("source_date_epoch")}, work, devices=device_modules(s, arch), boot="network")
    tags = []
    for i in range(1, count + 1):
        (image.staged.directory / "etc" / "later-release").write_text(f"published after {v2}: {i}\n")
        tag = f"{v2}.{i}"
        publish(image.staged.directory, f"group-cernvm.{arch}", network_os.out,
                s.workspace / "keys" / f"group-cernvm.{arch}.key", metadata=image.staged.entries, tag=tag)
        tags.append(tag)
    shutil.rmtree(work)
    return tags


class Disk:
    """One appliance's disk (a copy of the image) booted again and again, as a user would."""

    def __init__(self, network_os: NetworkOS, arch: str, path: Path):
        self.net, self.arch, self.path = network_os, arch, path
        shutil.copy(network_os.images[arch], path)
        self.boots = 0

    def boot(self, step: str | None = None, *, then: str = "poweroff", served: dict[str, Path] | None = None,
             until: str | None = None, user_data: str = "", clean: bool = True) -> str:
        """Boot once, serving *served* (guest address -> directory; default: the published tree at
        SERVER), running *step* (shell, as root, through the config drive's contextualization
        command) if given and *then* (poweroff or reboot) after it; the console once the guest has
        powered off (or rebooted: QEMU runs with -no-reboot), or *until* appeared. *clean*: no
        program failed to read its files from the OS (an I/O error on the console)."""
        until = until or ("STEP-DONE" if step is not None else "APPLIANCE-BOOT-OK")
        self.boots += 1
        served = {SERVER: self.net.out} if served is None else served
        servers = {ip: StaticServer(directory) for ip, directory in served.items()}
        forwards = [(ip, 80, server.port) for ip, server in servers.items()]
        if not forwards:  # every server down: a port nobody listens on
            stopped = StaticServer(self.net.out)
            forwards = [(SERVER, 80, stopped.port)]
            stopped.stop()
        extra = []
        if step is not None or user_data:
            work = self.path.parent / f"context-{self.boots}"
            work.mkdir()
            text = "[cernvm]\n" + user_data
            if step is not None:
                # init acts on poweroff and reboot once the boot scripts are done: in the background
                (work / "step.sh").write_text(f"#!/bin/sh\n{step}\necho STEP-DONE\n(sleep 1; {then}) &\n")
                text += "contextualization_command = root:/media/context/step.sh\n"
            (work / "user-data").write_text(text)
            iso = work / "context.iso"
            run_appbuild(self.net.settings, "context", "make", str(work / "user-data"), "-o", str(iso),
                         *(["--add", str(work / "step.sh")] if step is not None else []))
            extra = ["-cdrom", str(iso)]
        opts = BootOptions(arch=self.arch, drive_format="qcow2", guestfwd=forwards, snapshot=False,
                           timeout=BOOT_TIMEOUT, extra_args=extra)
        try:
            with RunningGuest(self.path, opts) as guest:
                guest.wait_for(until)
                deadline = time.monotonic() + 60
                while guest.running and time.monotonic() < deadline:  # let it power off, or reboot
                    guest._read(0.5)
                assert not clean or "Input/output error" not in guest.console, guest.console
                return guest.console
        finally:
            for server in servers.values():
                server.stop()


def running(console: str) -> str:
    """The version the marker names."""
    return re.search(r"APPLIANCE-BOOT-OK group-cernvm \S+/(\S+) ", console).group(1)


def stepped(console: str) -> list[str]:
    return [line.split("STEP|", 1)[1] for line in console.splitlines() if "STEP|" in line]


SAY = "sed 's/^/STEP|/'"


def test_the_appliance_updates_rolls_back_and_boots_offline(network_os, tmp_path):
    arch = "x86_64"
    v1, v2 = network_os.v1[arch], network_os.v2[arch]
    disk = Disk(network_os, arch, tmp_path / "appliance.qcow2")

    # version 1 runs from the image's pin; the user makes a file of their own and edits /etc/issue
    console = disk.boot(f"echo mine > /root/notes.txt; echo 'my banner' > /etc/issue\n"
                        f"appliance status 2>&1 | {SAY}")
    assert running(console) == v1, console
    assert re.search(rf"appliance-os: running group-cernvm {re.escape(v1)} \(revision 1; chosen by the image's pin\) "
                     rf"from http://{SERVER}[:/]", console), console
    status = "\n".join(stepped(console))
    assert re.search(rf"running:?\s+{re.escape(v1)}", status) and v2 not in status, status

    # version 2 is published; the pinned appliance still runs 1 and says 2 is there; update
    assert "revision 2" in network_os.publish(arch, v2)
    console = disk.boot(f"appliance update 2>&1 | {SAY}", then="reboot")
    assert running(console) == v1, console
    assert f"appliance-os: {v2} is the newest version" in console, console
    update = "\n".join(stepped(console))
    assert v2 in update and "next boot" in update, update
    assert re.search(r"kept your /etc/issue: \S*" + re.escape(v2), update), update

    # the reboot runs 2: the user's /etc/issue is kept and reported, their other file is there
    console = disk.boot(f"cat /root/notes.txt /etc/issue | {SAY}\nappliance rollback 2>&1 | {SAY}", then="reboot")
    assert running(console) == v2, console
    assert re.search(rf"appliance-os: kept your /etc/issue: {re.escape(v2)} changes it too", console), console
    lines = stepped(console)
    assert lines[:2] == ["mine", "my banner"], lines
    assert any(v1 in line and "next boot" in line for line in lines[2:]), lines

    # four more versions are published (five after the pin); rollback ran 1 again; any published
    # version can be selected, and selecting the running one again clears the selection
    later = publish_later_versions(network_os, arch, 4)
    console = disk.boot(f"appliance status 2>&1 | {SAY}\nappliance update {later[1]} 2>&1 | {SAY}\n"
                        f"appliance update {v1} 2>&1 | {SAY}")
    assert running(console) == v1, console
    assert re.search(rf"running group-cernvm {re.escape(v1)} \(revision 1; chosen by appliance rollback\)", console)
    lines = stepped(console)
    assert all(tag in "\n".join(lines) for tag in [v1, v2, *later]), lines  # status lists every version
    assert any(later[1] in line and "next boot" in line for line in lines), lines

    # every server down: it boots from its cache, and says so
    console = disk.boot(f"appliance status 2>&1 | {SAY}", served={})
    assert running(console) == v1, console
    assert re.search(rf"running group-cernvm {re.escape(v1)} .*offline", console), console
    assert any("offline" in line for line in stepped(console)), console


def test_user_data_chooses_the_version_once_and_rollback_wins_after(network_os, tmp_path):
    """x86: user data's os_version = latest switches at the boot it first appears; the same user
    data at later boots does not undo an 'appliance rollback'."""
    arch = "x86"
    v1, v2 = network_os.v1[arch], network_os.v2[arch]
    disk = Disk(network_os, arch, tmp_path / "appliance.qcow2")
    console = disk.boot("true")
    assert running(console) == v1, console

    assert "revision 2" in network_os.publish(arch, v2)
    latest = "os_version = latest\n"
    console = disk.boot(f"appliance rollback 2>&1 | {SAY}", user_data=latest)
    assert running(console) == v2, console
    assert re.search(rf"running group-cernvm {re.escape(v2)} \(revision 2; chosen by user data\)", console), console
    assert any(v1 in line and "next boot" in line for line in stepped(console)), console

    console = disk.boot(f"appliance status 2>&1 | {SAY}", user_data=latest)
    assert running(console) == v1, console
    assert re.search(rf"running group-cernvm {re.escape(v1)} \(revision 1; chosen by appliance rollback\)", console)

    console = disk.boot("true", served={})
    assert running(console) == v1 and re.search(r"running group-cernvm \S+ .*offline", console), console


def _signed_copy(network_os: NetworkOS, arch: str, target: Path, *, revision_of=None, expires: int) -> Path:
    """A copy of the served tree whose manifest and tag list are re-signed with the repository's
    own key: of the tag *revision_of* (a replay of an older state) or of the current revision,
    expiring at *expires*."""
    from appbuilder.fs import keys as keys_mod
    from appbuilder.fs import manifest as manifest_mod
    from appbuilder.fs import tags as tags_mod

    repo = network_os.repository(arch)
    shutil.copytree(repo.parent, target, symlinks=True)
    private = keys_mod.load_private(network_os.settings.workspace / "keys" / f"group-cernvm.{arch}.key")
    current = manifest_mod.parse((repo / manifest_mod.MANIFEST_NAME).read_bytes()).manifest
    tag_list = tags_mod.parse((repo / tags_mod.TAGS_NAME).read_bytes())
    if revision_of is None:
        catalog, size, revision, stamp, tags = (current.catalog, current.catalog_size, current.revision,
                                                int(time.time()) - 7200, tag_list.tags)
    else:
        old = tag_list.get(revision_of)
        catalog, size, revision, stamp, tags = old.catalog, old.catalog_size, old.revision, old.timestamp, (old,)
    (target / repo.name / manifest_mod.MANIFEST_NAME).write_bytes(manifest_mod.render(manifest_mod.Manifest(
        catalog, size, revision, current.repository, stamp, current.ttl, expires=expires), private))
    (target / repo.name / tags_mod.TAGS_NAME).write_bytes(tags_mod.render(tags_mod.TagList(
        tag_list.repository, revision, stamp, expires, tuple(tags)), private))
    return target


def test_replayed_expired_and_tampered_repositories_are_refused(network_os, tmp_path):
    arch = "x86_64"
    network_os.publish(arch, network_os.v2[arch])  # a no-op when the update test published it
    disk = Disk(network_os, arch, tmp_path / "appliance.qcow2")
    # an online boot: the client keeps the current manifest and tag list (revision 2 or later)
    console = disk.boot("true")
    assert running(console) == network_os.v1[arch], console

    # a stale mirror replays revision 1's manifest and tag list; another serves the current ones
    # signed to expire an hour ago: both are refused, each saying why, and the cache is used
    now = int(time.time())
    replayed = _signed_copy(network_os, arch, tmp_path / "replayed", revision_of=network_os.v1[arch],
                            expires=now + 86400)
    expired = _signed_copy(network_os, arch, tmp_path / "expired", expires=now - 3600)
    console = disk.boot(user_data=f"os_server = http://{SERVER}/@fqrn@;http://{SECOND_SERVER}/@fqrn@\n",
                        served={SERVER: replayed, SECOND_SERVER: expired}, until="APPLIANCE-BOOT-OK")
    assert re.search(r"appliance-os: cvmfs2: .*revision 1\b.*older", console), console
    assert re.search(r"appliance-os: cvmfs2: .*expired", console), console
    assert running(console) == network_os.v1[arch], console
    assert re.search(r"running group-cernvm \S+ .*offline", console), console

    # a tampered catalog, on a fresh disk (nothing cached): refused, nothing mounted, said why
    fresh = Disk(network_os, arch, tmp_path / "fresh.qcow2")
    tampered = tmp_path / "tampered"
    shutil.copytree(network_os.out, tampered, symlinks=True)
    from appbuilder.fs import tags as tags_mod

    repo = tampered / f"group-cernvm.{arch}"
    pinned = tags_mod.parse((repo / tags_mod.TAGS_NAME).read_bytes()).get(network_os.v1[arch])
    catalog = repo / "data" / pinned.catalog[:2] / (pinned.catalog[2:] + "C")
    data = bytearray(catalog.read_bytes())
    data[len(data) // 2] ^= 0xFF
    catalog.write_bytes(bytes(data))
    console = fresh.boot(served={SERVER: tampered}, until="emergency shell", clean=False)
    assert "APPLIANCE-BOOT-OK" not in console
    assert re.search(r"appliance-os: cvmfs2: .*(hash|sha256|checksum)", console, re.I), console
    assert f"no tag of group-cernvm.{arch} could be mounted" in console, console
