"""Debian relation fields and RPM (rich) dependencies: parsed, compared, and written back as upstream wrote them."""

from __future__ import annotations

import pytest

from appbuilder.upstream.relations import (
    AnyOf,
    Atom,
    RelationError,
    Rich,
    atoms,
    compare,
    parse_deb,
    parse_rpm,
    rpm_atom,
    satisfied,
)

# bookworm's own fields (systemd 252, init-system-helpers 1.65, python3-apt 2.6)
SYSTEMD_DEPENDS = ("libacl1 (>= 2.2.23), libapparmor1 (>= 2.13), libaudit1 (>= 1:2.2.1), libblkid1 (>= 2.24.2), "
                   "libcap2 (>= 1:2.10), libcrypt1 (>= 1:4.4.0), libcryptsetup12 (>= 2:2.4), libfdisk1 (>= 2.33), "
                   "libgcrypt20 (>= 1.10.0), libkmod2 (>= 5~), liblz4-1 (>= 0.0~r130), liblzma5 (>= 5.1.1alpha+20120614), "
                   "libmount1 (>= 2.30), libpam0g (>= 0.99.7.1), libseccomp2 (>= 2.4.1), libselinux1 (>= 3.1~), "
                   "libssl3 (>= 3.0.0), libsystemd-shared (= 252.39-1~deb12u1), libsystemd0 (= 252.39-1~deb12u1), "
                   "libzstd1 (>= 1.5.2), mount")
ISH_DEPENDS = "perl-base (>= 5.20.1-3), usrmerge | usr-is-merged"
PYAPT_DEPENDS = "python3 (<< 3.12), python3 (>= 3.11~), python3:any, libapt-pkg6.0 (>= 2.6.0), distro-info-data"
LIBC_BREAKS = "hurd (<< 1:0.9.git20220301-2), nscd (<< 2.36), openssh-server (<< 1:8.1p1-5)"


@pytest.mark.parametrize("text", [SYSTEMD_DEPENDS, ISH_DEPENDS, PYAPT_DEPENDS, LIBC_BREAKS])
def test_debian_fields_round_trip(text):
    assert ", ".join(str(r) for r in parse_deb(text)) == text


def test_debian_alternatives_and_qualifiers():
    rels = parse_deb(ISH_DEPENDS + ", " + PYAPT_DEPENDS)
    assert rels[0] == Atom("deb", "perl-base", ">=", "5.20.1-3")
    assert rels[1] == AnyOf((Atom("deb", "usrmerge"), Atom("deb", "usr-is-merged")))
    assert rels[2] == Atom("deb", "python3", "<<", "3.12")  # apt_pkg's "<" is "<<"
    assert rels[4] == Atom("deb", "python3", arch="any")
    assert [a.name for a in atoms(rels[1])] == ["usrmerge", "usr-is-merged"]
    assert parse_deb("") == [] and parse_deb("  ") == []


def test_debian_versions_compare_as_dpkg_does():
    assert compare("deb", "1.0~rc1", "1.0") == -1
    assert compare("deb", "1:0.9", "2.0") == 1
    assert compare("deb", "252.39-1~deb12u1", "252.39-1") == -1
    systemd = parse_deb(SYSTEMD_DEPENDS)
    libsystemd0 = next(r for r in systemd if r.name == "libsystemd0")
    assert libsystemd0.allows("252.39-1~deb12u1") and not libsystemd0.allows("252.38-1~deb12u1")
    kmod = next(r for r in systemd if r.name == "libkmod2")
    assert kmod.allows("30+20221128-1") and not kmod.allows("4")
    # an unversioned Provides never meets a versioned Debian relation
    assert not kmod.allows(None)
    assert kmod.matches(Atom("deb", "libkmod2", "=", "30")) and not kmod.matches(Atom("deb", "libkmod2"))


@pytest.mark.parametrize("text", ["libc6 (>= ", "a b", "a,,b", "a (>= 1", ","])
def test_bad_debian_field_is_one_line_error(text):
    with pytest.raises(RelationError) as err:
        parse_deb(text)
    assert repr(text.strip()) in str(err.value) and "\n" not in str(err.value)


# the forms EL spec files use (rich deps as in Fedora/EL9 packaging guidelines)
EL_RICH = [
    "(libhello.so.1()(64bit) and el-setup)",
    "(el-extra if el-daemon-plugins)",
    "(el-extra if el-daemon-plugins else el-minimal)",
    "(pam >= 1.1.3-7 with pam < 2)",
    "(python3-foo unless python3-bar else (baz or qux >= 1:2.0))",
    "(sendmail or (postfix and postfix-sendmail))",
    "(kernel-core without kernel-debug)",
    "(glibc-langpack-en or glibc-all-langpacks)",
    "(a or b or c)",
]


@pytest.mark.parametrize("text", EL_RICH)
def test_rpm_rich_round_trip(text):
    rel = parse_rpm(text)
    assert isinstance(rel, Rich) and str(rel) == text


def test_rpm_rich_structure_and_evaluation():
    rel = parse_rpm("(python3-foo unless python3-bar else (baz or qux >= 1:2.0))")
    assert rel.op == "unless" and len(rel.args) == 3
    assert rel.args[2] == Rich("or", (Atom("rpm", "baz"), Atom("rpm", "qux", ">=", "1:2.0")))

    def have(names):
        return lambda atom: atom.name in names

    cond = parse_rpm("(el-extra if el-daemon-plugins)")
    assert satisfied(cond, have(set()))                              # no plugins: nothing needed
    assert not satisfied(cond, have({"el-daemon-plugins"}))           # plugins: el-extra needed
    assert satisfied(cond, have({"el-daemon-plugins", "el-extra"}))
    both = parse_rpm("(libhello.so.1()(64bit) and el-setup)")
    assert [a.name for a in atoms(both)] == ["libhello.so.1()(64bit)", "el-setup"]
    assert not satisfied(parse_rpm("(kernel-core without kernel-debug)"), have({"kernel-core", "kernel-debug"}))


@pytest.mark.parametrize("text,atom", [
    ("/usr/bin/sh", Atom("rpm", "/usr/bin/sh")),
    ("libc.so.6(GLIBC_2.14)(64bit)", Atom("rpm", "libc.so.6(GLIBC_2.14)(64bit)")),
    ("perl(File::Temp) >= 0.23", Atom("rpm", "perl(File::Temp)", ">=", "0.23")),
    ("bash >= 4", Atom("rpm", "bash", ">=", "4")),
    ("config(setup) = 2.13.7-10.el9", Atom("rpm", "config(setup)", "=", "2.13.7-10.el9")),
])
def test_rpm_plain(text, atom):
    assert parse_rpm(text) == atom and str(atom) == text


@pytest.mark.parametrize("text,why", [
    ("(a and b or c)", "mixed"),
    ("(a if b if c)", "one right-hand"),
    ("(a or", "unexpected end"),
    ("(a or b) x", "trailing"),
    ("(a else b)", "else"),
    ("(a)", "no operator"),
    ("(a or >= 2)", "expected a name"),
])
def test_bad_rich_is_one_line_error(text, why):
    with pytest.raises(RelationError) as err:
        parse_rpm(text)
    assert why in str(err.value) and text in str(err.value) and "\n" not in str(err.value)


def test_rpm_versions_compare_as_rpm_does():
    assert compare("rpm", "1.2", "1.2-3") == 0          # no release on one side: not compared
    assert compare("rpm", "1:1.0", "2.0") == 1           # epoch first
    assert compare("rpm", "2.0-1.el9", "2.0-1.el9_1") == -1
    req = Atom("rpm", "bash", ">=", "4")
    assert req.allows("5.1.8-6.el9") and not req.allows("3.2-1")
    assert req.allows(None)  # rpm: an unversioned provide meets every version
    assert rpm_atom("glibc", "GE", "0", "2.34", "60.el9") == Atom("rpm", "glibc", ">=", "2.34-60.el9")
    assert rpm_atom("x", "EQ", "1", "2", None) == Atom("rpm", "x", "=", "1:2")
    assert str(rpm_atom("(a or b)")) == "(a or b)"
