"""The closure over a repository, per dependency class: troves committed directly (no cooks),
so each class's rule is seen on its own. Group resolution over cooked packages is in
test_groups.py."""

from __future__ import annotations

import pytest

from appbuilder.graph.closure import (
    COMPONENT,
    NAMED,
    REQUIREMENT,
    ClosureResolver,
    Root,
)
from appbuilder.repository.deps import Dependency
from appbuilder.repository.repo import ComponentContents, PackageBuild, Repository
from appbuilder.repository.trove import FileEntry
from appbuilder.repository.versions import NVF, Flavor

D = Dependency.parse


@pytest.fixture
def repo(tmp_path):
    r = Repository(tmp_path / "repo", "cernvm@cvm:2")
    yield r
    r.close()


def commit(repo: Repository, name: str, *, arch: str | None = "x86_64", files=(), provides=(), requires=()) -> NVF:
    """A package with one component, NAME:runtime; returns the component."""
    entries = [FileEntry(path=p, type="file", mode=0o755, size=len(p), sha256=repo.store.put_bytes(p.encode()))
               for p in files]
    comp = ComponentContents(f"{name}:runtime", files=entries, provides={D(p) for p in provides},
                             requires={D(r) for r in requires})
    pkg = repo.commit_package(PackageBuild(name, "1.0", Flavor(arch), f"src-{name}", [comp]))
    return next(m for m in pkg.members if m.name == f"{name}:runtime")


def names(closure) -> set[str]:
    return {n.name for n in closure.members}


def test_installer_classes_are_never_unresolved_nor_resolved(repo):
    app = commit(repo, "app", requires=["rpmlib: PayloadIsZstd", "rpmlib: CompressedFileNames",
                                        "abi: ELF64(SysV x86_64)", "abi: ELF32(SysV x86)"])
    # something does provide one of them: the closure still never adds a trove for it
    commit(repo, "abi-provider", provides=["abi: ELF64(SysV x86_64)"])
    for auto in (True, False):
        closure = ClosureResolver(repo, "x86_64", auto_resolve=auto).resolve([app])
        assert closure.unresolved == []
        assert names(closure) == {"app:runtime"}
        assert closure.requirement_edges == [] and closure.choices == []


def test_file_requirement_met_by_an_owner_in_the_closure(repo):
    app = commit(repo, "app", files=["/usr/bin/app"], requires=["file: /usr/bin/interp"])
    interp = commit(repo, "interp", files=["/usr/bin/interp"])
    commit(repo, "other-interp", files=["/usr/bin/interp"])  # a second owner, newer: not needed
    closure = ClosureResolver(repo, "x86_64").resolve([app, interp])
    assert closure.unresolved == [] and closure.requirement_edges == [] and closure.choices == []
    assert names(closure) == {"app:runtime", "interp:runtime"}
    assert closure.members[interp].kind == NAMED


def test_file_requirement_resolved_by_an_owner_in_the_repository(repo):
    app = commit(repo, "app", requires=["file: /usr/bin/interp"])
    interp = commit(repo, "interp", files=["/usr/bin/interp"])
    commit(repo, "x86-interp", arch="x86", files=["/usr/bin/interp"])  # not for this architecture
    commit(repo, "provides-the-path", provides=["file: /usr/bin/interp"])  # a provision is not an owner
    closure = ClosureResolver(repo, "x86_64").resolve([app])
    assert closure.unresolved == []
    assert names(closure) == {"app:runtime", "interp:runtime"}
    reason = closure.members[interp]
    assert (reason.kind, reason.required_by, reason.requirement) == (REQUIREMENT, app, D("file: /usr/bin/interp"))
    assert closure.requirement_edges == [(app, interp, D("file: /usr/bin/interp"))]


def test_file_requirement_met_by_extra_provisions(repo):
    app = commit(repo, "app", requires=["file: /bin/sh", "soname: ELF64/libc.so.6(GLIBC_2.34 x86_64)"])
    commit(repo, "sh", files=["/bin/sh"])
    extra = {D("file: /bin/sh"), D("soname: ELF64/libc.so.6(GLIBC_2.2.5 GLIBC_2.34 x86_64)")}  # e.g. the toolchain
    closure = ClosureResolver(repo, "x86_64").resolve([app], extra_provides=extra)
    assert names(closure) == {"app:runtime"} and closure.unresolved == []


def test_trove_requirement_met_by_name_and_resolved_by_name_and_arch(repo):
    app = commit(repo, "app", requires=["trove: lib:runtime"])
    lib = commit(repo, "lib")
    commit(repo, "lib", arch="x86")
    closure = ClosureResolver(repo, "x86_64").resolve([app])
    assert closure.requirement_edges == [(app, lib, D("trove: lib:runtime"))]
    closure = ClosureResolver(repo, "x86_64").resolve([app, lib])
    assert closure.requirement_edges == [] and closure.unresolved == []


def test_soname_requirement_met_by_provision_flags(repo):
    app = commit(repo, "app", requires=["soname: ELF64/libz.so.1(ZLIB_1.2 x86_64)"])
    old = commit(repo, "zlib-old", provides=["soname: ELF64/libz.so.1(x86_64)"])  # lacks the symbol version
    new = commit(repo, "zlib", provides=["soname: ELF64/libz.so.1(ZLIB_1.2 ZLIB_1.3 x86_64)"])
    closure = ClosureResolver(repo, "x86_64").resolve([app])
    assert closure.requirement_edges == [(app, new, D("soname: ELF64/libz.so.1(ZLIB_1.2 x86_64)"))]
    # a named trove that does not meet the flags is not enough
    closure = ClosureResolver(repo, "x86_64").resolve([app, old])
    assert new in closure.members and closure.members[new].kind == REQUIREMENT


def test_rpm_capabilities_with_parentheses_resolve_by_their_whole_name(repo):
    app = commit(repo, "app", requires=["rpm: perl(Carp)"])
    commit(repo, "perl", provides=["rpm: perl"])
    carp = commit(repo, "perl-Carp", provides=["rpm: perl(Carp)"])
    closure = ClosureResolver(repo, "x86_64").resolve([app])
    assert names(closure) == {"app:runtime", "perl-Carp:runtime"}
    assert closure.requirement_edges == [(app, carp, D("rpm: perl(Carp)"))]


def test_unresolved_hints_per_class(repo):
    commit(repo, "lib32", arch="x86", provides=["soname: ELF32/libhello.so.1(HELLO_1 x86)"])
    commit(repo, "libold", provides=["soname: ELF64/libold.so.1(OLD_1 x86_64)"])
    commit(repo, "tool32", arch="x86", files=["/usr/bin/tool32"])
    app = commit(repo, "app", requires=["soname: ELF64/libhello.so.1(x86_64)", "soname: ELF64/libold.so.1(OLD_2 x86_64)",
                                        "file: /usr/bin/tool32", "trove: gone:runtime", "rpm: nowhere(1)"])
    resolver = ClosureResolver(repo, "x86_64", removed={"gone"})
    closure = resolver.resolve([app])
    hints = {str(u.requirement): u.hint for u in closure.unresolved}
    assert hints == {
        "soname: ELF64/libhello.so.1(x86_64)":
            "lib32:runtime provides ELF32/libhello.so.1 for is: x86: a library of the other ELF class cannot satisfy it",
        "soname: ELF64/libold.so.1(OLD_2 x86_64)":
            "libold:runtime provides ELF64/libold.so.1 but not every symbol version asked for",
        "file: /usr/bin/tool32": "tool32:runtime provides it, but only for is: x86",
        "trove: gone:runtime": "the group removes gone:runtime",
        "rpm: nowhere(1)": "",
    }
    assert all(u.chain == ("app:runtime",) for u in closure.unresolved)


def test_components_and_requirements_over_a_package(repo):
    commit(repo, "lib", files=["/usr/lib/libx"])
    app = commit(repo, "app", requires=["file: /usr/lib/libx"])
    package = next(n for n in repo.packages() if n.name == "app")
    closure = ClosureResolver(repo, "x86_64").resolve([Root(package)])
    assert closure.members[app].kind == COMPONENT
    assert names(closure) == {"app", "app:runtime", "lib:runtime"}
