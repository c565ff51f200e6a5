"""What assembly writes into the root besides the members' files (appbuilder.assemble.image):
accounts, fstab naming both file systems by UUID, hostname, release files, the module list,
the manifest; and the identifiers every build of a group version shares (ImageMeta)."""

from __future__ import annotations

import json

from appbuilder import __version__
from appbuilder.assemble import bootloader
from appbuilder.assemble.accounts import Accounts
from appbuilder.assemble.image import generated_files
from appbuilder.assemble.meta import ImageMeta
from appbuilder.repository.trove import GROUP, Trove
from appbuilder.repository.versions import NVF, Flavor, Version
from tests.assemble.helpers import EPOCH, UUID, trove

GROUP_VERSION = "cernvm@cvm:2/1.0-1-3"


def group(**info):
    v = Version.parse("cernvm@cvm:2/2.0-1-1")
    members = [NVF("busybox", v, Flavor("x86_64")), NVF("busybox:runtime", v, Flavor("x86_64")),
               NVF("group-base", v, Flavor("x86_64")), NVF("hello", v, Flavor("x86_64"))]
    return Trove("group-test", Version.parse(GROUP_VERSION), Flavor("x86_64"), kind=GROUP, members=members, info=info)


def meta(version: str = GROUP_VERSION, arch: str = "x86_64") -> ImageMeta:
    return ImageMeta("group-test", version, arch, 64 << 20, EPOCH)


def files(g=None, modules=("fuse", "isofs")) -> dict[str, tuple[bytes, int]]:
    g = g or group()
    troves = [trove("hello:runtime"), trove("busybox:runtime")]
    made = generated_files(g, meta(), Accounts(["alice:1000:users:100:/home/alice:/bin/sh"], {"root"}, {"root"}),
                           troves, root_uuid=UUID, boot_uuid="A1B2-C3D4", modules=list(modules))
    return {f.path: (f.content, f.mode) for f in made}


def test_fstab_names_both_file_systems_by_uuid():
    fstab = files()["/etc/fstab"][0].decode().splitlines()
    assert fstab[:2] == [f"UUID={UUID}\t/\text4\tdefaults\t0 1", "UUID=A1B2-C3D4\t/boot\tvfat\tdefaults\t0 2"]
    assert {line.split("\t")[1] for line in fstab} == {"/", "/boot", "/proc", "/sys", "/dev/pts", "/run", "/tmp"}


def test_accounts_release_hostname_and_modules():
    made = files()
    assert made["/etc/passwd"] == (b"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:100:alice:/home/alice:/bin/sh\n", 0o644)
    assert made["/etc/group"][0] == b"root:x:0:\nusers:x:100:alice\n"
    assert made["/etc/shadow"][1] == 0o600
    assert made["/etc/hostname"] == (b"appliance\n", 0o644)
    assert files(group(hostname="cernvm"))["/etc/hostname"][0] == b"cernvm\n"
    assert made["/etc/modules"][0] == b"fuse\nisofs\n"
    assert made["/etc/appliance-release"][0].decode() == (
        f"GROUP=group-test\nVERSION={GROUP_VERSION}\nREVISION=1.0-1-3\nARCH=x86_64\nBUILT_BY=appbuild-{__version__}\n")
    # the login user a key or password given at boot is for, when the group names one
    assert files(group(login_user="cernvm"))["/etc/appliance-release"][0].decode().endswith(
        f"BUILT_BY=appbuild-{__version__}\nLOGIN_USER=cernvm\n")
    assert made["/etc/os-release"][0].decode() == (
        'NAME="group-test"\nID=appbuild\nVERSION_ID="1.0-1-3"\nPRETTY_NAME="group-test 1.0-1-3 (x86_64)"\n')


def test_the_manifest_lists_packages_and_troves():
    manifest = json.loads(files()["/var/lib/appbuild/manifest.json"][0])
    assert manifest["group"] == f"group-test={GROUP_VERSION}[is: x86_64]"
    assert manifest["packages"] == ["busybox=cernvm@cvm:2/2.0-1-1[is: x86_64]", "hello=cernvm@cvm:2/2.0-1-1[is: x86_64]"]
    assert manifest["troves"] == sorted(manifest["troves"]) and len(manifest["troves"]) == 2
    assert manifest["builder"] == f"appbuild {__version__}"


def test_the_same_group_version_gets_the_same_identifiers():
    a, b = meta(), meta()
    assert a.basename == "group-test-1.0-1-3-x86_64" and a.revision == "1.0-1-3"
    for purpose in ("rootfs", "bootfs", "mbr"):
        assert a.derived_u32(purpose) == b.derived_u32(purpose)
    assert a.derived_uuid("rootfs") == b.derived_uuid("rootfs") != a.derived_uuid("vhd")
    assert a.derived_uuid("rootfs").version == 4
    others = [meta("cernvm@cvm:2/1.0-1-4"), meta(arch="x86"), ImageMeta("group-other", GROUP_VERSION, "x86_64", 1, 1)]
    assert len({m.derived_uuid("rootfs") for m in [a, *others]}) == 4
    assert len({m.derived_u32("mbr") for m in [a, *others]}) == 4
    assert len(bootloader.fat_volume_uuid(a.derived_u32("bootfs"))) == 9
