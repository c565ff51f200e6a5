"""The instruction sets appbuild builds for, and everything that differs between them.

One table drives recipe macros, ELF dependency names, flavors, Debian/RPM architecture
names and the QEMU used to boot images, so that adding an architecture is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from appbuilder.core.errors import AppbuildError


@dataclass(frozen=True)
class Arch:
    """One target instruction set."""

    name: str  # appbuild's name, used in flavors: "x86_64" or "x86"
    processor: str  # what uname -m and RPM call the CPU we build for
    elf_class: int  # 32 or 64
    elf_machine: str  # pyelftools e_machine value
    lib: str  # lib directory name under prefix (EL convention: lib64 on x86_64)
    archflags: str  # compiler flags that select the instruction set
    gnu_triplet: str  # --build/--host triplet for configure
    loader: str  # path of the dynamic loader in the target root
    debian: str  # Debian architecture name
    rpm_arches: tuple[str, ...]  # RPM arch names mapped onto this flavor
    multiarch_libdirs: tuple[str, ...]  # Debian's library dirs for this arch
    qemu: str  # qemu-system binary that boots it

    @property
    def elf(self) -> str:
        """The ELF class prefix of soname dependencies, ``ELF64`` or ``ELF32``."""
        return f"ELF{self.elf_class}"

    @property
    def multiarch(self) -> str:
        """Debian's multiarch triplet directory name (``x86_64-linux-gnu``, ``i386-linux-gnu``)."""
        return self.multiarch_libdirs[0].rsplit("/", 1)[1]

    @property
    def loader_soname(self) -> str:
        return self.loader.rsplit("/", 1)[-1]


ARCHES: dict[str, Arch] = {
    "x86_64": Arch(
        name="x86_64",
        processor="x86_64",
        elf_class=64,
        elf_machine="EM_X86_64",
        lib="lib64",
        archflags="-m64",
        gnu_triplet="x86_64-pc-linux-gnu",
        loader="/lib64/ld-linux-x86-64.so.2",
        debian="amd64",
        rpm_arches=("x86_64", "amd64"),
        multiarch_libdirs=("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"),
        qemu="qemu-system-x86_64",
    ),
    "x86": Arch(
        name="x86",
        processor="i686",
        elf_class=32,
        elf_machine="EM_386",
        lib="lib",
        archflags="-m32 -march=i686",
        gnu_triplet="i686-pc-linux-gnu",
        loader="/lib/ld-linux.so.2",
        debian="i386",
        rpm_arches=("i386", "i486", "i586", "i686", "athlon"),
        multiarch_libdirs=("/lib/i386-linux-gnu", "/usr/lib/i386-linux-gnu"),
        qemu="qemu-system-i386",
    ),
}

DEFAULT_ARCH = "x86_64"
# what build roots run on: this machine's instruction set (x86 is built with gcc -m32)
BUILD_ARCH = "x86_64"


def get_arch(name: str) -> Arch:
    """Look up an architecture by appbuild, Debian or RPM name (``x86``, ``i386``, ``amd64``...)."""
    if name in ARCHES:
        return ARCHES[name]
    for arch in ARCHES.values():
        if name == arch.debian or name in arch.rpm_arches or name == arch.processor:
            return arch
    raise AppbuildError(f"unknown architecture {name!r}; valid ones: {', '.join(ARCHES)}")


def arch_for_elf_machine(machine: str) -> Arch | None:
    for arch in ARCHES.values():
        if arch.elf_machine == machine:
            return arch
    return None
