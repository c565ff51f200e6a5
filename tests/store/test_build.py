"""How ``appbuild group-NAME`` splits its work: one raw disk for every classic format, and for a
network-booting image one disk per set of targets (the device table's ``formats:``)."""

from __future__ import annotations

from appbuilder.formats.specs import resolve_formats
from appbuilder.formats.targets import load_targets
from appbuilder.store.build import _by_targets


def test_network_images_are_made_per_set_of_targets_and_shared_files_stay_together():
    table = load_targets()
    formats = resolve_formats("all", "x86_64")
    batches = [[f.name for f in batch] for batch in _by_targets(table, formats, "x86_64", "g-1-x86_64-network")]
    assert sorted(n for b in batches for n in b) == sorted(f.name for f in formats)
    together = next(b for b in batches if "raw" in b)
    assert "ami" in together  # one disk file (BASENAME.raw) for both: one batch, their targets' union
    assert ["qcow2"] in batches  # KVM and QEMU only
    vmdk = next(b for b in batches if "vmdk" in b)
    assert "ova" in vmdk  # the same targets: VMware, VirtualBox, BusLogic
    qcow2 = next(b for b in _by_targets(table, formats, "x86_64", "x") if b[0].name == "qcow2")
    drivers = set(table.device_modules_for(qcow2, "x86_64").network)
    assert drivers == {"virtio_net", "e1000", "e1000e"}, drivers  # no Hyper-V, Xen, ENA or vmxnet3
