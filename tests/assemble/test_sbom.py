"""Licenses in the SBOMs: Debian copyright-format and RPM License names mapped to SPDX
expressions that the SPDX project's own license parser accepts (names SPDX has no
identifier for become LicenseRefs); non-machine-readable copyright files give none.
(The SBOMs themselves are checked in tests/capsule/test_inventory.py and
tests/verify/test_inventory.py.)"""

from __future__ import annotations

import pytest
from license_expression import get_spdx_licensing

from appbuilder.assemble.sbom import License, combine, dep5_license, map_license

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: example
Source: https://example.org

Files: *
Copyright: 2020 Someone
License: GPL-2+ or Artistic

Files: lib/*
Copyright: 2020 Someone
License: LGPL-2.1

Files: contrib/tables/*
Copyright: none
License: public-domain

Files: debian/*
Copyright: 2021 A Maintainer
License: BSD-3-clause

License: public-domain
 The tables are in the public domain.
"""


@pytest.mark.parametrize("text, expression, refs", [
    ("GPLv2+", "GPL-2.0-or-later", {}),
    ("GPLv2+ and LGPLv2+", "GPL-2.0-or-later AND LGPL-2.0-or-later", {}),
    ("(GPLv2+ or MIT) and ASL 2.0", "(GPL-2.0-or-later OR MIT) AND Apache-2.0", {}),
    ("MIT", "MIT", {}),
    ("Public Domain", "LicenseRef-Public-Domain", {"LicenseRef-Public-Domain": "Public Domain"}),
    ("GPL-2+ with OpenSSL exception", "LicenseRef-GPL-2-with-OpenSSL-exception",
     {"LicenseRef-GPL-2-with-OpenSSL-exception": "GPL-2+ with OpenSSL exception"}),
    ("BSD-3-clause, and Expat", "BSD-3-Clause AND MIT", {}),
    ("GPL-2 or (", "LicenseRef-GPL-2-or", {"LicenseRef-GPL-2-or": "GPL-2 or ("}),  # unbalanced: kept whole
    ("(MIT) (BSD)", "LicenseRef-MIT-BSD", {"LicenseRef-MIT-BSD": "(MIT) (BSD)"}),  # no operator: kept whole
    ("and MIT", "LicenseRef-and-MIT", {"LicenseRef-and-MIT": "and MIT"}),
])
def test_license_names_become_spdx_expressions(text, expression, refs):
    lic = map_license(text)
    assert lic == License(expression, tuple(sorted(refs.items())))
    # SPDX's own parser takes it, with the LicenseRefs as the only unknown keys
    licensing = get_spdx_licensing()
    assert set(licensing.unknown_license_keys(expression)) == set(refs)


def test_dep5_copyright_files_give_the_upstream_licenses():
    lic = dep5_license(DEP5)
    assert lic.expression == "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND LGPL-2.1-only AND LicenseRef-public-domain"
    assert lic.refs == (("LicenseRef-public-domain", "public-domain"),)
    assert dep5_license("This is the Debian prepackaged version of the GNU C Library.\n\nGPL, LGPL ...") is None
    assert combine([]) is None and combine([License("MIT"), License("MIT")]) == License("MIT")


def test_every_kind_of_source_makes_valid_sboms(tmp_path):
    """Members made directly (what make_inventory builds from a repository): a cooked package
    from a URL archive, a patch and a recipe file, one from a Debian source package, an RPM
    capsule whose license SPDX has no identifier for; both SBOMs validate."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    from appbuilder.assemble.sbom import CDX_SUFFIX, SPDX_SUFFIX, Inventory, Member, MemberFile, Source

    def f(path: str, n: int) -> MemberFile:
        return MemberFile(path, f"{n:064x}", f"{n:040x}", n)

    inv = Inventory("group-test", "cernvm@cvm:2/1.0-1-1", "x86_64", 1700000000, [
        Member("zlib", "cernvm@cvm:2/1.3-1-1", "1.3", "x86_64", "cooked", ["zlib=cernvm@cvm:2/1.3-1-1[is: x86_64]"],
               "pkg:generic/zlib@1.3?download_url=https://zlib.net/zlib-1.3.tar.gz", License("Zlib"), [
                   Source("url", "zlib-1.3.tar.gz", url="https://zlib.net/zlib-1.3.tar.gz", sha256="a" * 64),
                   Source("url", "fix.patch", url="mirror://gnu/fix.patch", sha256="b" * 64),
                   Source("file", "zlib.pc.in", sha256="c" * 64)],
               files=[f("/usr/lib/libz.so.1.3", 1), f("/usr/lib/libz.so.1", 1)]),
        Member("busybox", "cernvm@cvm:2/1.35.0-1-1", "1.35.0", "x86_64", "cooked", [], "pkg:generic/busybox@1.35.0",
               License("GPL-2.0-only"), [Source("debian-source", "busybox", "1:1.35.0-4", sha256="d" * 64,
                                                purl="pkg:deb/debian/busybox@1:1.35.0-4?arch=source")],
               files=[f("/bin/busybox", 2)]),
        Member("bash", "cernvm@cvm:2/4.2.46-34.el7-1-1", "4.2.46-34.el7", "x86_64", "rpm", [],
               "pkg:rpm/bash@4.2.46-34.el7?arch=x86_64", map_license("GPLv3+ and Public Domain"),
               [Source("rpm-source", "bash-4.2.46-34.el7.src.rpm", "4.2.46-34.el7",
                       purl="pkg:rpm/bash@4.2.46-34.el7?arch=src")],
               package_file="bash-4.2.46-34.el7.x86_64.rpm", package_sha256="e" * 64, homepage="not a url",
               supplier="Organization: Scientific Linux", files=[f("/bin/bash", 3)]),
        Member("empty", "cernvm@cvm:2/1-1-1", "1", None, "cooked", [], "pkg:generic/empty@1"),
    ])
    sboms = inv.sbom_bytes()
    (tmp_path / "t.spdx.json").write_bytes(sboms[SPDX_SUFFIX])
    assert [m.validation_message for m in validate_full_spdx_document(parse_file(str(tmp_path / "t.spdx.json")))] == []
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sboms[CDX_SUFFIX].decode()) is None
    text = inv.text().splitlines()
    assert text[0] == "inventory of group-test=cernvm@cvm:2/1.0-1-1[is: x86_64]: 4 packages"
    assert text[2].split() == ["zlib", "cernvm@cvm:2/1.3-1-1", "x86_64", "cooked", "https://zlib.net/zlib-1.3.tar.gz",
                               "(+2", "more)", "Zlib"]
    assert text[5].split()[2:] == ["noarch", "cooked", "not", "recorded", "-"]
