"""Versions, flavors and trove specs: parse, format, match, and refuse bad input."""

from __future__ import annotations

import pytest

from appbuilder.core.errors import AppbuildError, RepositoryError
from appbuilder.repository.versions import NVF, Flavor, TroveSpec, Version


@pytest.mark.parametrize("text, label, upstream, source, build", [
    ("cernvm@cvm:2/1.35.0-1-3", "cernvm@cvm:2", "1.35.0", 1, 3),
    ("cernvm@cvm:2/1.0-12-7", "cernvm@cvm:2", "1.0", 12, 7),
    # a capsule's upstream may carry its own release: the last two dashes are ours
    ("a.b@c-d:e_f/1.35.0-4-2-1", "a.b@c-d:e_f", "1.35.0-4", 2, 1),
    ("x@y:z/1:2.3~rc1+dfsg-1-1", "x@y:z", "1:2.3~rc1+dfsg", 1, 1),
])
def test_version_parse_and_format_round_trip(text, label, upstream, source, build):
    v = Version.parse(text)
    assert (v.label, v.upstream, v.source_count, v.build_count) == (label, upstream, source, build)
    assert str(v) == text
    assert Version.parse(str(v)) == v
    assert v.revision == text.split("/", 1)[1]


@pytest.mark.parametrize("text", [
    "1.0-1-1",                      # no label
    "cernvm@cvm:2/1.0-1",           # one count only
    "cernvm@cvm:2/1.0",             # no counts
    "cernvm@cvm:2/1.0-a-1",         # non-numeric source count
    "cernvm@cvm:2/1.0-1-b",         # non-numeric build count
    "cernvm@cvm:2/1.0-0-1",         # counts start at 1
    "cernvm@cvm:2/1.0-1-0",
    "cernvm/1.0-1-1",               # label without @ and :
    "cern vm@cvm:2/1.0-1-1",        # space in the label
    "cernvm@cvm:2/1 0-1-1",         # space in the upstream version
    "cernvm@cvm:2/-1-1",            # empty upstream
])
def test_version_parse_refuses_bad_input(text):
    with pytest.raises(RepositoryError):
        Version.parse(text)


def test_version_constructor_checks_label_and_counts():
    with pytest.raises(RepositoryError, match="bad label"):
        Version("nolabel", "1.0", 1, 1)
    with pytest.raises(RepositoryError, match="bad upstream"):
        Version("a@b:c", "1/0", 1, 1)
    with pytest.raises(RepositoryError, match="counts"):
        Version("a@b:c", "1.0", 0, 1)


def test_version_ordering_by_counts():
    a = Version.parse("a@b:c/1.0-1-1")
    b = Version.parse("a@b:c/1.0-1-2")
    c = Version.parse("a@b:c/1.0-2-1")
    assert sorted([c, b, a]) == [a, b, c]
    assert a < b < c and not c < a


@pytest.mark.parametrize("partial, expected", [
    ("cernvm@cvm:2/1.0-2-3", True),
    ("1.0-2-3", True),
    ("1.0-2", True),
    ("1.0", True),
    ("1.0-2-4", False),
    ("1.0-3", False),
    ("1.1", False),
    ("1", False),                     # not a prefix match
    ("other@cvm:2/1.0-2-3", False),   # same revision, other label
    ("cernvm@cvm:2/1.0-2", False),    # a full version must be exact
])
def test_version_matches_what_users_type(partial, expected):
    assert Version.parse("cernvm@cvm:2/1.0-2-3").matches(partial) is expected


@pytest.mark.parametrize("text, arch, formatted", [
    ("is: x86_64", "x86_64", "is: x86_64"),
    ("[is: x86]", "x86", "is: x86"),
    ("is:x86", "x86", "is: x86"),
    ("i686", "x86", "is: x86"),       # RPM / uname names map onto the flavor
    ("is: amd64", "x86_64", "is: x86_64"),  # Debian name
    ("", None, ""),
    ("[]", None, ""),
])
def test_flavor_parse_normalises_arch_names(text, arch, formatted):
    f = Flavor.parse(text)
    assert f.arch == arch
    assert str(f) == formatted
    assert Flavor.parse(str(f)) == f


def test_flavor_refuses_unknown_arch():
    with pytest.raises(AppbuildError, match="unknown architecture 'sparc'"):
        Flavor.parse("is: sparc")


def test_flavor_installable_on():
    assert Flavor("x86_64").installable_on("x86_64")
    assert Flavor("x86_64").installable_on("amd64")
    assert not Flavor("x86_64").installable_on("x86")
    assert not Flavor("x86").installable_on("x86_64")
    assert Flavor(None).installable_on("x86") and Flavor(None).installable_on("x86_64")


@pytest.mark.parametrize("text, name, version, flavor", [
    ("hello", "hello", None, None),
    ("hello:runtime", "hello:runtime", None, None),
    ("hello=1.0", "hello", "1.0", None),
    ("hello=1.0-1-2", "hello", "1.0-1-2", None),
    ("hello=cernvm@cvm:2/1.0-1-2", "hello", "cernvm@cvm:2/1.0-1-2", None),
    ("hello[is: x86]", "hello", None, Flavor("x86")),
    ("hello=1.0[is: x86_64]", "hello", "1.0", Flavor("x86_64")),
    ("hello=1.0[]", "hello", "1.0", Flavor(None)),
])
def test_trove_spec_parse_and_format(text, name, version, flavor):
    spec = TroveSpec.parse(text)
    assert (spec.name, spec.version, spec.flavor) == (name, version, flavor)
    assert TroveSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("text", ["", "=1.0", "=1.0[is: x86]"])
def test_trove_spec_refuses_missing_name(text):
    with pytest.raises(RepositoryError, match="bad trove spec"):
        TroveSpec.parse(text)


def test_nvf_format_and_package():
    nvf = NVF("busybox:runtime", Version.parse("cernvm@cvm:2/1.35.0-1-3"), Flavor("x86_64"))
    assert str(nvf) == "busybox:runtime=cernvm@cvm:2/1.35.0-1-3[is: x86_64]"
    assert nvf.package == "busybox"
    spec = TroveSpec.parse(str(nvf))
    assert spec.name == nvf.name and spec.flavor == nvf.flavor
    assert nvf.version.matches(spec.version)
