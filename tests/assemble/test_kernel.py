"""The kernel of a closure and the modules an image keeps (appbuilder.assemble.kernel), with
this machine's real module files: dependencies from ``.modinfo`` or from the index files,
checked against what kmod's own tools (modinfo, modprobe, depmod) say."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appbuilder.assemble import kernel as kernel_mod
from appbuilder.core.errors import AppbuildError
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry
from appbuilder.formats.targets import load_targets
from tests.assemble.helpers import kernel_troves, run, trove

WANTED = ["ext4", "virtio_blk"]
DECOYS = ["fuse", "isofs"]  # in the package, never asked for
CRC32C = ["crc32c_generic", "crc32c_intel"]  # what ext4's and jbd2's "softdep pre: crypto-crc32c" names


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "store")


def package(store, host, *, index: bool):
    names = sorted(host.hard_closure(WANTED)) + DECOYS + (CRC32C if index else [])
    return kernel_troves(store, host, names, index=index)


def assert_load_order(order: list[str], host) -> None:
    for i, name in enumerate(order):
        for dep in host.depends(name):
            assert dep in order[:i], f"{name} is loaded before its dependency {dep}: {order}"


def test_modinfo_reads_what_kmod_reads(host_modules):
    for name in ("ext4", "jbd2", "virtio_blk", "sd_mod", "mbcache"):
        fields = kernel_mod.modinfo(Path(host_modules.path(name)).read_bytes())
        for field in ("depends", "softdep", "name", "license"):
            assert fields.get(field, "") == host_modules.field(name, field), (name, field)
    assert kernel_mod.modinfo(b"not an ELF file") == {}


def test_the_closure_from_modinfo_when_the_package_has_no_index(store, host_modules):
    kern = kernel_mod.find_kernel(package(store, host_modules, index=False), store)
    assert not kern.has_index and kern.version == host_modules.version
    order = kern.closure(WANTED)
    assert set(order) == host_modules.hard_closure(WANTED)
    assert not set(order) & set(DECOYS)
    assert_load_order(order, host_modules)
    assert kern.closure(["virtio-blk"]) == kern.closure(["virtio_blk"])  # either spelling


def test_the_closure_with_the_index_adds_the_soft_dependencies(store, host_modules):
    kern = kernel_mod.find_kernel(package(store, host_modules, index=True), store)
    assert kern.has_index
    order = kern.closure(["ext4"])
    assert_load_order(order, host_modules)
    crc = [m for m in order if m in CRC32C]
    assert len(crc) == 1 and order.index(crc[0]) < order.index("ext4")  # "pre:" loads first
    assert set(order) - set(crc) == host_modules.hard_closure(["ext4"])
    shown = run("modprobe", "-S", host_modules.version, "--show-depends", "ext4").stdout
    by_modprobe = {kernel_mod._module_name(line.split()[1]) for line in shown.splitlines() if line.startswith("insmod")}
    assert set(order) <= by_modprobe
    assert kern.closure(["iso9660"]) == ["isofs"]  # an alias, from modules.alias


def test_a_module_the_kernel_lacks_is_named_with_a_suggestion(store, host_modules):
    kern = kernel_mod.find_kernel(package(store, host_modules, index=False), store)
    with pytest.raises(AppbuildError, match=r"has no module 'ext5' .*did you mean ext4"):
        kern.closure(["ext5"])
    with pytest.raises(AppbuildError, match=r"has no module 'iso9660' \(give module names, not aliases"):
        kern.closure(["iso9660"])
    assert kern.closure(["ext5", "ext4"], strict=False) == kern.closure(["ext4"])


def test_every_module_the_device_table_names_exists_in_a_real_kernel(host_modules):
    """A misspelt name would only be reported as missing from every kernel; modinfo knows
    each one (Debian's amd64 kernel has them all, Xen's and Hyper-V's included) as a module
    or as built in."""
    table = load_targets()
    names = {m for t in [table.common, *table.targets.values()] for m in t.modules} | set(kernel_mod.ROOT_FS_MODULES)
    assert {"BusLogic", "sym53c8xx", "mptsas", "ena", "hv_netvsc", "xen_netfront", "vmxnet3", "e1000e"} <= names
    for name in sorted(names):
        proc = run("modinfo", "-k", host_modules.version, "-F", "name", name, check=False)
        assert proc.returncode == 0, f"{name}: {proc.stderr.strip()}"


DEVICES = kernel_mod.DeviceModules((
    kernel_mod.TargetModules("kvm", ("virtio_blk",), ("virtio_net",)),
    kernel_mod.TargetModules("fancy", ("virtio-blk", "no_such_hba"), ("no_such_nic",)),
    kernel_mod.TargetModules("box", ("crc32c",), ()),  # built into the kernel, as the test says below
))


def test_device_modules_go_where_they_are_needed_and_missing_ones_are_named(store, host_modules):
    names = sorted(host_modules.hard_closure(["ext4", "virtio_blk", "virtio_net", "fuse"]))
    kern = kernel_mod.find_kernel(kernel_troves(store, host_modules, names), store)
    assert DEVICES.disk == ("virtio_blk", "virtio-blk", "no_such_hba", "crc32c") and DEVICES.network == (
        "virtio_net", "no_such_nic")
    choice = kernel_mod.choose_modules(kern, DEVICES, ["fuse"], builtin={"crc32c"})
    assert_load_order(choice.initramfs, host_modules)
    assert_load_order(choice.root, host_modules)
    assert set(choice.initramfs) == host_modules.hard_closure(["virtio_blk", "ext4"])  # disks and the root's ext4
    assert set(choice.root) == host_modules.hard_closure(["virtio_net", "fuse"])  # network and the group's own
    assert [str(m) for m in choice.missing] == [
        f"target fancy: no module no_such_hba in kernel {host_modules.version}",
        f"target fancy: no module no_such_nic in kernel {host_modules.version}"]
    assert "crc32c" in choice.drivers and {"virtio_net", "ext4", "fuse"} <= set(choice.drivers)
    assert "no_such_nic" not in choice.drivers
    # what the group asks for must exist: a misspelt kernelModules entry is an error
    with pytest.raises(AppbuildError, match=r"has no module 'fusee' .*did you mean fuse"):
        kernel_mod.choose_modules(kern, DEVICES, ["fusee"], builtin=set())


def test_find_kernel_wants_exactly_one(store, host_modules):
    troves = package(store, host_modules, index=False)
    with pytest.raises(kernel_mod.NoKernel, match="no member holds /boot/vmlinuz-"):
        kernel_mod.find_kernel([trove("hello:runtime")], store)
    other = trove("linux-image-rt:runtime", FileEntry("/boot/vmlinuz-6.1.0-rt", "file", 0o644, size=1,
                                                       sha256=store.put_bytes(b"x")))
    with pytest.raises(AppbuildError, match=r"several kernels: .*linux-image:runtime \(/boot/vmlinuz-.*"
                                            r"linux-image-rt:runtime \(/boot/vmlinuz-6.1.0-rt\)"):
        kernel_mod.find_kernel(troves + [other], store)
    kern = kernel_mod.find_kernel(troves, store)
    assert kern.moddir == f"/lib/modules/{host_modules.version}"
    assert kern.image.path == f"/boot/vmlinuz-{host_modules.version}"
    assert kernel_mod.kept_module_files(kern, ["ext4"]) == {host_modules.path("ext4")}


def test_the_module_index_regenerated_for_what_the_root_keeps(tmp_path, store, host_modules):
    kern = kernel_mod.find_kernel(package(store, host_modules, index=False), store)
    kept = kern.closure(WANTED)
    root = tmp_path / "root"
    for path in kernel_mod.kept_module_files(kern, kept):
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / path.lstrip("/"))
    kernel_mod.regenerate_module_index(root, host_modules.version)

    def deps(text: str) -> dict[str, set[str]]:
        out = {}
        for line in text.splitlines():
            target, _, rest = line.partition(":")
            out[kernel_mod._module_name(target)] = {kernel_mod._module_name(d) for d in rest.split()}
        return out

    ours = deps((root / "lib/modules" / host_modules.version / "modules.dep").read_text())
    assert set(ours) == set(kept)
    host = deps((host_modules.root / "modules.dep").read_text())
    assert all(ours[m] == host[m] for m in kept)
