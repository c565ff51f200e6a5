"""The network-booting image's parts that need no boot: a program's runtime closure found in a
group's troves (assemble/runtime.py, over real ELF files of this machine), the initramfs's
configuration, and the refusals of bad settings (assemble/netboot.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from appbuilder.assemble.netboot import NetbootConfig, boot_config
from appbuilder.assemble.runtime import MissingRuntime, TreeView, runtime_files
from appbuilder.core.errors import AppbuildError
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry
from tests.assemble.helpers import VERSION, trove


def f(path: str, store: ContentStore | None = None, host: str | None = None) -> FileEntry:
    digest = store.put_file(host) if store and host else None
    return FileEntry(path, "file", 0o755, size=Path(host).stat().st_size if host else 0, sha256=digest)


def link(path: str, target: str) -> FileEntry:
    return FileEntry(path, "symlink", 0o777, target=target)


def test_paths_resolve_through_file_and_directory_links_as_the_kernel_would():
    view = TreeView([trove("t", f("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"),
                           link("/usr/lib/x86_64-linux-gnu/libz.so.1", "libz.so.1.2.13"),
                           link("/lib", "usr/lib"), link("/lib64", "/lib"),
                           link("/loop/a", "b"), link("/loop/b", "a"),
                           link("/escape", "../../../../usr/lib/x86_64-linux-gnu/libz.so.1"))])
    passed = []
    assert view.resolve("/lib64/x86_64-linux-gnu/libz.so.1", passed) == "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"
    assert [p.path for p in passed] == ["/lib64", "/lib", "/usr/lib/x86_64-linux-gnu/libz.so.1"]
    assert view.resolve("/loop/a") is None  # too many links, as ELOOP
    assert view.regular("/escape").path == "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"  # '..' stops at the root
    assert view.regular("/lib/x86_64-linux-gnu/missing.so") is None


def _host_runtime(program: str) -> list[str]:
    """What this machine's dynamic loader maps for *program* (ldd), real paths."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    paths = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            paths.append(str(Path(path).resolve()))
    return paths


def test_a_program_brings_its_interpreter_and_every_library_it_links(tmp_path):
    program = shutil.which("gzip") or "/usr/bin/gzip"
    store = ContentStore(tmp_path / "store")
    files = [f("/usr/bin/prog", store, program)]
    for host in _host_runtime(program):
        files.append(f(host, store, host))
    # a merged /usr, as this machine has: the loader is reached through two links
    files += [link("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
              link("/lib", "usr/lib")]
    view = TreeView([trove("closure", *files)])
    items = runtime_files(view, store, "/usr/bin/prog", "x86_64")
    regular = {i.path for i in items if i.entry is not None}
    assert "/usr/bin/prog" in regular and any(p.endswith("/libc.so.6") for p in regular), regular
    assert any(p.endswith("ld-linux-x86-64.so.2") for p in regular)
    assert {i.path: i.link for i in items if i.link} == {
        "/lib64/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib": "usr/lib"}


def test_a_library_no_member_holds_is_named(tmp_path):
    program = shutil.which("gzip") or "/usr/bin/gzip"
    store = ContentStore(tmp_path / "store")
    view = TreeView([trove("t", f("/usr/bin/prog", store, program))])
    with pytest.raises(MissingRuntime, match=r"/usr/bin/prog needs libc\.so\.6, which no member"):
        runtime_files(view, store, "/usr/bin/prog", "x86_64")


def test_the_initramfs_configuration_quotes_every_value(tmp_path):
    config = NetbootConfig("group-cernvm.x86_64", "http://a.example/cvmfs/@fqrn@;http://b.example/@fqrn@",
                           tmp_path / "k.pub")
    text = boot_config(trove("group-cernvm"), "x86_64", config).decode()
    assert f"PINNED='{VERSION.revision}'\n" in text
    assert "SERVERS='http://a.example/cvmfs/@fqrn@;http://b.example/@fqrn@'\n" in text
    out = subprocess.run(["sh", "-c", ". /dev/stdin; echo \"$SERVERS|$PINNED|$REPOSITORY\""], input=text,
                         capture_output=True, text=True).stdout
    assert out.strip() == f"http://a.example/cvmfs/@fqrn@;http://b.example/@fqrn@|{VERSION.revision}|group-cernvm.x86_64"


@pytest.mark.parametrize("servers, proxy, key, message", [
    ("ftp://x/@fqrn@", "DIRECT", True, r"servers must be http:// URLs"),
    ("http://x/$(reboot)", "DIRECT", True, r"bad servers"),
    ("http://x/@fqrn@", "http://p:3128 ;DIRECT", True, r"bad proxy"),
    ("http://x/@fqrn@", "DIRECT", False, r"public key of r\.x86_64 .*appbuild fs keygen --repo r\.x86_64"),
])
def test_bad_network_boot_settings_are_refused_naming_what(tmp_path, servers, proxy, key, message):
    pub = tmp_path / "r.pub"
    if key:
        pub.write_text("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(AppbuildError, match=message):
        NetbootConfig("r.x86_64", servers, pub, proxy=proxy).check()


def test_a_merged_usr_closure_keeps_the_loader_reachable_in_the_initramfs(tmp_path):
    from appbuilder.assemble.netboot import initramfs_entries

    program = shutil.which("gzip") or "/usr/bin/gzip"

    class Repo:  # what initramfs_entries reads: the content store
        store = ContentStore(tmp_path / "store")

    files = [f("/usr/bin/cvmfs2", Repo.store, program), link("/lib", "usr/lib"),
             link("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")]
    files += [f(host, Repo.store, host) for host in _host_runtime(program)]
    pub = tmp_path / "r.pub"
    pub.write_text("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n")
    entries = {e.path: e for e in initramfs_entries(Repo, trove("group-x"), [trove("closure", *files)], "x86_64",
                                                    NetbootConfig("r", "http://x/@fqrn@", pub))}
    assert "lib" not in entries  # the initramfs's own /lib stays a directory
    loader = entries["lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"]
    assert loader.data == b"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert entries["lib64/ld-linux-x86-64.so.2"].data == b"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert entries["usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"].data.startswith(b"\x7fELF")
