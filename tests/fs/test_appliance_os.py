"""The in-guest tools of a network-booted appliance: ``appliance status``, ``appliance update
[TAG|latest]`` and ``appliance rollback`` (recipes/appliance-init/appliance).

They run on this host as the guest runs them: the script as appliance-init cooked it, by the
appliance's own busybox sh (its applets on PATH), calling the real cvmfs2 (``--tags``,
``--diff``) cooked from recipes/cvmfs-client, against a data directory laid out as the
initramfs leaves /var/lib/appliance-os (state/boot.conf, state/cvmfs/, state/history, upper/,
work/; APPLIANCE_OS_DIR points the script at it), and a repository published in tagged
versions by ``appbuild fs publish --tag`` and served on 127.0.0.1. What the initramfs does
with the selection at the next boot is the network-boot tests' part."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from appbuilder.fs import keys
from tests.conftest import run_appbuild
from tests.fs.conftest import ClientRoot, make_tree
from tests.servers import StaticServer

pytestmark = pytest.mark.slow

OS_REPO = "group-test.x86_64"
V1, V2, V3 = "1.0-1-1", "1.0-1-2", "1.0-1-3"


@dataclass
class GuestTools:
    """busybox and appliance-init as the appliance's build cooked them, materialized, with a
    directory of busybox applets and a cvmfs2 that runs the cooked client."""

    bin: Path  # the applets and cvmfs2: the whole PATH
    script: Path  # /usr/bin/appliance

    def run(self, os_dir: Path, *args: str) -> subprocess.CompletedProcess:
        env = {"PATH": str(self.bin), "APPLIANCE_OS_DIR": str(os_dir), "TMPDIR": str(os_dir.parent), "LANG": "C"}
        return subprocess.run([str(self.bin / "sh"), str(self.script), *args], capture_output=True, text=True,
                              env=env, timeout=120, check=False)


def make_guest_tools(root: Path, client: ClientRoot) -> GuestTools:
    """The applets of *root*'s busybox as symlinks in root/PATH, and a cvmfs2 there that runs
    *client* through its own dynamic loader."""
    busybox = root / "bin" / "busybox"
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    path = root / "PATH"
    path.mkdir()
    for applet in applets:
        (path / applet).symlink_to(busybox)
    wrapper = path / "cvmfs2"
    wrapper.write_text(f"#!{path / 'sh'}\nexec {shlex.join(client.argv())} \"$@\"\n")
    wrapper.chmod(0o755)
    return GuestTools(path, root / "usr" / "bin" / "appliance")


@pytest.fixture(scope="session")
def guest_tools(appliance, cvmfs_client, tmp_path_factory) -> GuestTools:
    from appbuilder.graph.closure import ClosureResolver
    from appbuilder.repository.checkout import materialize
    from appbuilder.repository.repo import Repository
    from appbuilder.repository.versions import TroveSpec

    s = appliance.settings
    repo = Repository(s.repository, s.label)
    try:
        nvfs = [repo.find_one(TroveSpec(name), arch="x86_64") for name in ("appliance-init:runtime", "busybox:runtime")]
        closure = ClosureResolver(repo, "x86_64").resolve(nvfs)
        root = tmp_path_factory.mktemp("appliance-init-root")
        materialize(repo.store, [repo.get(n) for n in closure.members], root)
    finally:
        repo.close()
    return make_guest_tools(root, cvmfs_client)


# ------------------------------------------------------------------ the repository and the data partition

TREES = {  # tag: (files, symlinks)
    V1: ({"etc/motd": "version 1\n", "etc/app.conf": "threads = 1\n", "etc/issue": "an appliance\n",
          "etc/old.conf": "dropped in version 2\n", "etc/legacy.conf": "dropped in version 2\n",
          "usr/bin/tool": "#!/bin/sh\necho 1\n",
          "usr/share/doc/README": "read me\n"},
         {"etc/alternative": "/usr/bin/tool"}),
    V2: ({"etc/motd": "version 2\n", "etc/app.conf": "threads = 1\n", "etc/issue": "an appliance\n",
          "etc/new.conf": "new in version 2\n", "usr/bin/tool": "#!/bin/sh\necho 2\n",
          "usr/share/doc/README": "read me\n"},
         {"etc/alternative": "/usr/bin/tool2"}),
    V3: ({"etc/motd": "version 3\n", "etc/app.conf": "threads = 1\n", "etc/issue": "an appliance\n",
          "etc/new.conf": "new in version 2\n", "usr/bin/tool": "#!/bin/sh\necho 2\n",
          "usr/share/doc/README": "read me\n"},
         {"etc/alternative": "/usr/bin/tool2"}),
}


@dataclass
class Published:
    tmp: Path
    keypair: keys.KeyPair
    out: Path
    settings: object
    server: StaticServer | None = None

    def publish(self, tag: str) -> None:
        files, links = TREES[tag]
        tree = make_tree(self.tmp / f"tree-{tag}", files, links)
        os.chmod(tree / "usr/bin/tool", 0o755)
        run_appbuild(self.settings, "fs", "publish", str(tree), "--repo", OS_REPO, "--to", str(self.out),
                     "--key", str(self.keypair.private_path), "--tag", tag)


def lay_out(os_dir: Path, pub: Published, *, running: str, revision: int, pinned: str = V1, chosen_by: str = "pin",
            mode: str = "online") -> None:
    """/var/lib/appliance-os as the initramfs leaves it after booting *running*."""
    state = os_dir / "state"
    (state / "cvmfs" / "keys").mkdir(parents=True, exist_ok=True)
    for d in ("cache", "upper", "work", "os"):
        (os_dir / d).mkdir(exist_ok=True)
    (state / "cvmfs" / "default.conf").write_text(
        "# written at every boot by the initramfs\n"
        f"CVMFS_SERVER_URL={pub.server.url}/@fqrn@\nCVMFS_HTTP_PROXY=DIRECT\nCVMFS_CACHE_BASE={os_dir / 'cache'}\n"
        f"CVMFS_QUOTA_LIMIT=-1\nCVMFS_KEYS_DIR={state / 'cvmfs' / 'keys'}\nCVMFS_USYSLOG={state / 'cvmfs.log'}\n"
        "CVMFS_TIMEOUT=3\nCVMFS_TIMEOUT_DIRECT=3\nCVMFS_MAX_RETRIES=1\n")
    (state / "cvmfs" / "keys" / f"{OS_REPO}.pub").write_bytes(pub.keypair.public_path.read_bytes())
    source = "cache" if mode == "offline" else f"{pub.server.url}/{OS_REPO}"
    values = {"GROUP": "group-test", "ARCH": "x86_64", "REPOSITORY": OS_REPO, "PINNED": pinned, "RUNNING": running,
              "REVISION": str(revision), "CHOSEN_BY": chosen_by, "MODE": mode, "SOURCE": source,
              "SERVERS": f"{pub.server.url}/@fqrn@", "SERVERS_FROM": "image", "PROXY": "DIRECT", "PROXY_FROM": "image"}
    (state / "boot.conf").write_text("".join(f"{k}='{v}'\n" for k, v in values.items()))


def changes_of_the_user(os_dir: Path) -> None:
    """The writable layer: files, a symlink and whiteouts (character devices 0/0) the user made;
    the overlay's work directory beside it holds a stray copy that must not count."""
    upper = os_dir / "upper"
    make_tree(upper, {
        "etc/motd": "my message of the day\n",  # version 2 changes it too: a conflict
        "etc/app.conf": "threads = 8\n",  # version 2 leaves it: not a conflict
        "etc/new.conf": "mine, made before version 2 had one\n",  # version 2 adds it: a conflict
        "etc/old.conf": "my settings\n",  # version 2 removes it
        "home/alice/notes.txt": "not in any version\n",
    }, {"etc/alternative": "/opt/mine"})  # a symlink version 2 changes too
    (upper / "usr/bin").mkdir(parents=True)
    (upper / "usr/share/doc").mkdir(parents=True)
    for removed in ("usr/bin/tool",  # version 2 changes it: reported
                    "usr/share/doc/README",  # version 2 leaves it
                    "etc/legacy.conf"):  # version 2 removes it too: no conflict
        os.mknod(upper / removed, stat.S_IFCHR | 0o000, os.makedev(0, 0))
    make_tree(os_dir / "work" / "work", {"etc/motd": "the overlay's scratch copy\n"})


@pytest.fixture
def published(tmp_path, appliance):
    if os.geteuid() != 0:
        pytest.skip("whiteouts (character devices 0/0) need root to make")
    pair = keys.generate(OS_REPO, tmp_path / "keys")
    pub = Published(tmp_path, pair, tmp_path / "www", appliance.settings)
    pub.publish(V1)
    pub.server = StaticServer(pub.out)
    yield pub
    pub.server.stop()


def conflict(path: str, tag: str, os_dir: Path) -> str:
    return f"kept your {path}: {tag} changes it too (its copy: {os_dir}/os{path} after the switch)"


def state_files(os_dir: Path) -> dict[str, str]:
    state = os_dir / "state"
    return {p.name: p.read_text() for p in state.iterdir() if p.is_file() and p.name != "cvmfs.log"}


# ------------------------------------------------------------------ the tests


def test_status_update_and_rollback(guest_tools, published, tmp_path):
    os_dir = tmp_path / "appliance-os"
    lay_out(os_dir, published, running=V1, revision=1)
    # the first boot's line, as the initramfs writes it when it could not learn the revision
    (os_dir / "state" / "history").write_text(f"1700000000 {V1} \n")
    run = guest_tools.run

    # one version published: it runs, it is the pin, nothing to roll back to
    status = run(os_dir, "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[:8] == [
        f"appliance group-test x86_64: network-booted, its OS from repository {OS_REPO}",
        f"running:   {V1} (revision 1), chosen by the image's pin",
        f"pinned:    {V1} (the image's pin)",
        f"next boot: {V1} (the image's pin)",
        "           unless new user data names another os_version",
        f"rollback:  nothing to roll back to (no other version booted before {V1})",
        f"this boot: online from {published.server.url}/{OS_REPO}",
        f"servers:   {published.server.url}/@fqrn@ (from the image), proxy DIRECT (from the image)",
    ]
    assert lines[8].startswith("tags:      tag list revision 1 signed ") and \
        lines[8].endswith(f"(online from {published.server.url}/{OS_REPO})"), lines[8]
    assert lines[9].split()[:3] == [V1, "revision", "1"] and lines[9].endswith("  running, pinned, next boot, newest")
    assert len(lines) == 10

    # rollback: nothing booted before
    nothing = run(os_dir, "rollback")
    assert nothing.returncode == 1 and nothing.stdout == ""
    assert nothing.stderr == (f"appliance: nothing to roll back to: {os_dir}/state/history names no version booted "
                              f"before {V1}\n")

    # version 2 is published; the user changed files
    published.publish(V2)
    changes_of_the_user(os_dir)
    status = run(os_dir, "status")
    tags = status.stdout.splitlines()[9:]
    assert [t.split()[0] for t in tags] == [V1, V2]
    assert tags[0].endswith("  running, pinned, next boot") and tags[1].endswith("  newest")

    # an unknown tag, and something that is no tag name, are refused; nothing is selected
    unknown = run(os_dir, "update", "9.9")
    assert unknown.returncode == 1
    assert unknown.stderr == f"appliance: no tag 9.9 in {OS_REPO}; its tags: {V1} {V2}\n"
    bad = run(os_dir, "update", "../../etc")
    assert bad.returncode == 1 and bad.stderr == "appliance: '../../etc' is not a tag name\n"
    assert run(os_dir, "update", V1, V2).returncode == 2
    assert set(state_files(os_dir)) == {"boot.conf", "history"}

    # update (latest): the conflicts first, then the selection
    update = run(os_dir, "update")
    assert update.returncode == 0, update.stderr
    expected = [
        conflict("/etc/alternative", V2, os_dir),
        conflict("/etc/motd", V2, os_dir),
        conflict("/etc/new.conf", V2, os_dir),
        f"kept your /etc/old.conf: {V2} removes it",
        (f"kept your deletion of /usr/bin/tool: {V2} changes it too (its copy: {os_dir}/os/usr/bin/tool after the "
         "switch)"),
    ]
    assert update.stdout.splitlines() == [
        f"appliance: latest is {V2} (the newest tag of {OS_REPO})",
        (f"appliance: 5 of your changes (in {os_dir}/upper) are to paths {V2} changes too; yours are kept (the "
         "writable layer wins), nothing is deleted:"),
        *(f"appliance: {line}" for line in expected),
        f"appliance: (this report is in {os_dir}/state/conflicts)",
        f"appliance: the next boot runs {V2} (revision 2), selected by appliance update; {V1} runs until then",
    ], update.stdout
    files = state_files(os_dir)
    assert files["selected"] == f"{V2}\n" and files["chosen-by"] == "appliance update\n"
    report = files["conflicts"].splitlines()
    assert report[0].startswith(f"# appliance update: {V1} -> {V2}, ") and report[0].endswith(": 5 conflict(s)")
    assert report[1:] == expected
    assert sorted(p.name for p in (os_dir / "state").iterdir() if p.name.startswith(".")) == []  # no temporary left
    # nothing the user made was touched
    assert (os_dir / "upper/etc/motd").read_text() == "my message of the day\n"
    assert stat.S_ISCHR((os_dir / "upper/usr/bin/tool").lstat().st_mode)

    status = run(os_dir, "status").stdout.splitlines()
    assert status[3] == f"next boot: {V2} (selected by appliance update)"
    assert f"conflicts: 5 in the last report ({os_dir}/state/conflicts)" in status
    assert status[-2].endswith("  running, pinned") and status[-1].endswith("  next boot, newest")

    # the update to the running tag (the pin) clears the selection
    back = run(os_dir, "update", V1)
    assert back.returncode == 0, back.stderr
    assert back.stdout == (f"appliance: {V1} runs now and is the image's pin: the selection is cleared, the next boot "
                           f"runs {V1}\n")
    assert "selected" not in state_files(os_dir) and "chosen-by" not in state_files(os_dir)
    assert run(os_dir, "status").stdout.splitlines()[3] == f"next boot: {V1} (the image's pin)"

    # version 2 selected by name, booted (as the initramfs records it), then rolled back
    assert run(os_dir, "update", V2).returncode == 0
    lay_out(os_dir, published, running=V2, revision=2, chosen_by="appliance update")
    with open(os_dir / "state" / "history", "a") as f:
        f.write(f"1700000100 {V2} 2\n")
    status = run(os_dir, "status").stdout.splitlines()
    assert status[1] == f"running:   {V2} (revision 2), chosen by appliance update"
    assert status[3] == f"next boot: {V2} (selected by appliance update)"
    assert status[5] == f"rollback:  {V1} (booted before {V2})"
    rollback = run(os_dir, "rollback")
    assert rollback.returncode == 0, rollback.stderr
    back_expected = [
        conflict("/etc/alternative", V1, os_dir),
        (f"kept your deletion of /etc/legacy.conf: {V1} changes it too (its copy: {os_dir}/os/etc/legacy.conf after "
         "the switch)"),
        conflict("/etc/motd", V1, os_dir),
        f"kept your /etc/new.conf: {V1} removes it",
        conflict("/etc/old.conf", V1, os_dir),
        (f"kept your deletion of /usr/bin/tool: {V1} changes it too (its copy: {os_dir}/os/usr/bin/tool after the "
         "switch)"),
    ]
    assert rollback.stdout.splitlines() == [
        (f"appliance: 6 of your changes (in {os_dir}/upper) are to paths {V1} changes too; yours are kept (the "
         "writable layer wins), nothing is deleted:"),
        *(f"appliance: {line}" for line in back_expected),
        f"appliance: (this report is in {os_dir}/state/conflicts)",
        f"appliance: the next boot runs {V1} (revision 1), selected by appliance rollback; {V2} runs until then",
    ], rollback.stdout
    files = state_files(os_dir)
    assert files["selected"] == f"{V1}\n" and files["chosen-by"] == "appliance rollback\n"
    assert files["conflicts"].splitlines()[1:] == back_expected
    status = run(os_dir, "status").stdout.splitlines()
    assert status[3] == f"next boot: {V1} (selected by appliance rollback)"
    assert status[-2].endswith("  pinned, next boot") and status[-1].endswith("  running, newest")


def test_offline_the_cached_tag_list_and_catalogs_serve(guest_tools, published, tmp_path):
    os_dir, other = tmp_path / "appliance-os", tmp_path / "other-appliance-os"
    published.publish(V2)
    for d in (os_dir, other):
        lay_out(d, published, running=V1, revision=1)
    run_ok(guest_tools, os_dir, "update", V2)  # online: the tag list and both catalogs are cached
    run_ok(guest_tools, os_dir, "update", V1)
    run_ok(guest_tools, other, "status")  # online: only the tag list is cached
    published.publish(V3)  # published while the appliances are offline: they cannot know
    published.server.stop()
    for d in (os_dir, other):
        lay_out(d, published, running=V1, revision=1, mode="offline")
    lines = run_ok(guest_tools, os_dir, "status").splitlines()
    assert lines[6] == "this boot: offline (no server answered: the OS came from the cache)"
    assert lines[8].startswith("tags:      tag list revision 2 signed ") and lines[8].endswith(
        "(offline: cached copy)"), lines[8]
    assert [t.split()[0] for t in lines[9:]] == [V1, V2]
    # latest is the newest the appliance knows; the versions compare from the cache
    update = run_ok(guest_tools, os_dir, "update").splitlines()
    assert update == [
        f"appliance: latest is {V2} (the newest tag of {OS_REPO})",
        f"appliance: none of your changes (in {os_dir}/upper) is to a path {V2} changes",
        f"appliance: the next boot runs {V2} (revision 2), selected by appliance update; {V1} runs until then"]
    assert (os_dir / "state" / "conflicts").read_text().endswith(": 0 conflict(s)\n")
    assert not [line for line in run_ok(guest_tools, os_dir, "status").splitlines() if line.startswith("conflicts:")]
    unknown = guest_tools.run(os_dir, "update", V3)
    assert unknown.returncode == 1 and unknown.stderr == f"appliance: no tag {V3} in {OS_REPO}; its tags: {V1} {V2}\n"
    # without the catalogs the versions cannot be compared: said, and the selection is still made
    update = run_ok(guest_tools, other, "update", V2).splitlines()
    assert update[0] == (f"appliance: cannot compare {V1} with {V2} now, conflicts not checked (the boot that "
                         "switches reports them):")
    assert update[-2].startswith("  cvmfs2[") and "error:" in update[-2]  # cvmfs2's reason
    assert update[-1] == f"appliance: the next boot runs {V2} (revision 2), selected by appliance update; {V1} runs " \
                         "until then"
    assert (other / "state" / "selected").read_text() == f"{V2}\n"
    assert not (other / "state" / "conflicts").exists()


def run_ok(tools: GuestTools, os_dir: Path, *args: str) -> str:
    proc = tools.run(os_dir, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_without_a_tag_list_status_says_why_and_update_refuses(guest_tools, published, tmp_path):
    os_dir = tmp_path / "appliance-os"
    lay_out(os_dir, published, running=V1, revision=1)
    published.server.stop()  # never online, nothing cached
    status = guest_tools.run(os_dir, "status")
    assert status.returncode == 1
    lines = status.stdout.splitlines()
    assert lines[8] == "tags:      not available:" and len(lines) > 9
    update = guest_tools.run(os_dir, "update")
    assert update.returncode == 1 and update.stderr.startswith(f"appliance: cannot read the tag list of {OS_REPO}: ")
    assert not (os_dir / "state" / "selected").exists()


def test_an_appliance_that_boots_from_its_disk_is_updated_with_a_new_image(guest_tools, tmp_path):
    for command in (["status"], ["update"], ["update", V1], ["rollback"]):
        proc = guest_tools.run(tmp_path / "no-appliance-os", *command)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr == (f"appliance: this appliance boots from its disk, not from the network "
                               f"({tmp_path}/no-appliance-os/state/boot.conf is missing): it is updated with a new "
                               "image\n")
    assert guest_tools.run(tmp_path, "frobnicate").returncode == 2
