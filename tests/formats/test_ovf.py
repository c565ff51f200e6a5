"""The OVF descriptor's ProductSection: the settings a vSphere or VirtualBox user fills in
at deployment (login user, SSH keys, password hash, proxy, repositories), delivered to
the guest as ``ovf-env.xml`` on a CD-ROM (``ovf:transport="iso"``).

The checks follow the content model of DSP8023 (the OVF 1.x envelope schema):
ProductSection's children in the schema's order, each Property with the required
``ovf:key`` and ``ovf:type`` (one of the OVF property types), booleans spelled as
``xs:boolean``, Label and Description before any Value; RASD items whose InstanceIDs are
unique and whose Parent names a controller. The guest side is cross-checked: the keys
the descriptor offers are exactly those the appliance's agent reads.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from appbuilder.formats.convert import convert_all
from appbuilder.formats.descriptors import FileInfo, render
from appbuilder.formats.specs import DATA_DIR
from tests.conftest import PROJECT

OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"
RASD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"
# DSP8023 ProductSection_Type: Info, then these (each optional, in this order), then any
# number of Category and Property in any order
PRODUCT_HEAD = ["Product", "Vendor", "Version", "FullVersion", "ProductUrl", "VendorUrl", "AppUrl", "Icon"]
PROPERTY_TYPES = {"uint8", "sint8", "uint16", "sint16", "uint32", "sint32", "uint64", "sint64", "string",
                  "boolean", "real32", "real64"}
XS_BOOLEAN = {"true", "false", "1", "0"}
EXPECTED_KEYS = {"appliance.login_user", "appliance.ssh_authorized_keys", "appliance.login_password_hash",
                 "appliance.proxy", "appliance.repositories"}


def descriptor(meta, tmp_path, controller: str) -> ET.Element:
    disk = tmp_path / "disk1.vmdk"
    disk.write_bytes(b"\0" * 512)
    text = render(DATA_DIR, "ovf-1.0.ovf.j2", meta=meta, disk=FileInfo(disk.name, disk), files=[],
                  vars={"disk_controller": controller, "virtual_system_type": "vmx-10", "nic": "E1000",
                        "os_id": 101, "os_description": "Linux 64-Bit", "vmw_os_type": "otherLinux64Guest"})
    return ET.fromstring(text.encode())


def local(tag: str) -> str:
    return tag.split("}", 1)[1]


def check_product_section(section: ET.Element) -> dict[str, ET.Element]:
    """The ProductSection's Properties by key, after checking its content model."""
    children = [local(c.tag) for c in section]
    assert children[0] == "Info"
    head = [c for c in children[1:] if c not in ("Category", "Property")]
    assert head == [name for name in PRODUCT_HEAD if name in head], f"out of schema order: {children}"
    first_tail = next(i for i, c in enumerate(children) if c in ("Category", "Property"))
    assert all(c in ("Category", "Property") for c in children[first_tail:]), children
    properties: dict[str, ET.Element] = {}
    for prop in section.findall(f"{OVF}Property"):
        key, kind = prop.get(f"{OVF}key"), prop.get(f"{OVF}type")
        assert key and kind in PROPERTY_TYPES, prop.attrib
        assert key not in properties, f"two properties named {key}"
        for flag in ("userConfigurable", "password"):
            assert prop.get(f"{OVF}{flag}", "false") in XS_BOOLEAN
        assert not (set(prop.attrib) - {f"{OVF}{a}" for a in ("key", "type", "qualifiers", "userConfigurable",
                                                              "value", "password")}), prop.attrib
        order = [local(c.tag) for c in prop]
        assert order == [n for n in ("Label", "Description") if n in order] + ["Value"] * order.count("Value")
        assert prop.findtext(f"{OVF}Label") and prop.findtext(f"{OVF}Description")
        properties[key] = prop
    return properties


@pytest.mark.parametrize("controller", ["lsilogic", "ide"])
def test_the_product_section_offers_the_boot_settings_to_fill_in(meta, tmp_path, controller):
    root = descriptor(meta, tmp_path, controller)
    system = root.find(f"{OVF}VirtualSystem")
    sections = system.findall(f"{OVF}ProductSection")
    assert len(sections) == 1
    properties = check_product_section(sections[0])
    assert set(properties) == EXPECTED_KEYS
    for key, prop in properties.items():
        assert prop.get(f"{OVF}userConfigurable") == "true", key
        assert prop.get(f"{OVF}type") == "string" and prop.get(f"{OVF}value") == "", key
    assert properties["appliance.login_password_hash"].get(f"{OVF}password") == "true"
    assert sections[0].findtext(f"{OVF}Product") == meta.group
    assert sections[0].findtext(f"{OVF}FullVersion") == meta.version
    # the environment comes on a CD-ROM: the iso transport, and a drive on an IDE controller for it
    hardware = system.find(f"{OVF}VirtualHardwareSection")
    assert hardware.get(f"{OVF}transport") == "iso"
    items = hardware.findall(f"{OVF}Item")
    ids = [i.findtext(f"{RASD}InstanceID") for i in items]
    assert len(ids) == len(set(ids)), ids
    by_id = {i.findtext(f"{RASD}InstanceID"): i for i in items}
    for item in items:
        names = [local(c.tag) for c in item if c.tag.startswith(RASD)]
        assert names == sorted(names), f"RASD elements out of schema (alphabetical) order: {names}"
        parent = item.findtext(f"{RASD}Parent")
        assert parent is None or by_id[parent].findtext(f"{RASD}ResourceType") in ("5", "6"), parent
    cdroms = [i for i in items if i.findtext(f"{RASD}ResourceType") == "15"]
    assert len(cdroms) == 1
    assert by_id[cdroms[0].findtext(f"{RASD}Parent")].findtext(f"{RASD}ResourceType") == "5"  # IDE
    disk = next(i for i in items if i.findtext(f"{RASD}ResourceType") == "17")
    assert by_id[disk.findtext(f"{RASD}Parent")].findtext(f"{RASD}ResourceType") == ("5" if controller == "ide" else "6")
    if controller == "ide":  # one controller: the disk and the drive on different addresses
        assert disk.findtext(f"{RASD}AddressOnParent") != cdroms[0].findtext(f"{RASD}AddressOnParent")


def test_the_appliance_reads_exactly_the_properties_the_descriptor_offers(meta, tmp_path):
    offered = set(check_product_section(descriptor(meta, tmp_path, "lsilogic").find(
        f"{OVF}VirtualSystem/{OVF}ProductSection")))
    agent = (PROJECT / "recipes" / "cernvm-context" / "cernvm-context").read_text()
    case = re.search(r"^\s*(appliance\.[a-z_]+(?:\|appliance\.[a-z_]+)*)\)", agent, re.M)
    assert case, "cernvm-context has no case for the OVF properties"
    assert set(case.group(1).split("|")) == offered


def test_the_ova_carries_the_product_section(test_disk, meta, tmp_path):
    """The OVA as made (not only the template): the same properties, the iso transport."""
    out = convert_all(test_disk, "vmdk-esx", tmp_path, meta)
    root = ET.parse(next(p for p in out["vmdk-esx"] if p.suffix == ".ovf")).getroot()
    properties = check_product_section(root.find(f"{OVF}VirtualSystem/{OVF}ProductSection"))
    assert set(properties) == EXPECTED_KEYS
    assert root.find(f"{OVF}VirtualSystem/{OVF}VirtualHardwareSection").get(f"{OVF}transport") == "iso"
