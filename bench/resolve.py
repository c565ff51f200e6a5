"""Group resolution over synthetic repositories of 1,000 to 20,000 troves.

Target (from the issue): resolve a synthetic repository of 5,000 troves with realistic
soname/file dependencies (closure of ~500) in under 2 s and under 300 MB; report how
the time grows from 1,000 to 20,000 troves.

**Troves are counted as trove rows of the repository index**: packages plus their
components (``foo`` + ``foo:lib`` + ``foo:devel`` + ...), as conary counts troves. The
closure is counted the same way (``closure.members``: components and named packages);
its component count is reported too.

The repositories are made with the real API (``Repository.commit_package`` of
``PackageBuild``/``ComponentContents``) in a temporary directory, once per size (not
measured). Every size holds the same *core distribution* (about 1,000 troves):

* a libc-like package every ELF file needs (``soname: ELF64/libc.so.6(GLIBC_2.x
  x86_64)``, ``libm``, ``ld-linux-x86-64.so.2`` plus ``file: /lib64/ld-linux-x86-64.so.2``),
  ``libgcc_s``/``libstdc++`` for C++ libraries, zlib;
* five layers of libraries, each needing a few of the layers below with symbol-version
  flags, with ``:lib``/``:devel`` and sometimes ``:runtime``/``:config``/``:data``
  components and the ``trove:`` requirements the policy adds between components
  (``:lib`` → ``:config``/``:data``, ``:runtime`` → ``:lib``...);
* interpreters owning ``/bin/sh`` (bash), ``/usr/bin/perl``, ``/usr/bin/python3``,
  ``/usr/bin/env``; scripts requiring ``file:`` them; noarch perl and python module
  packages (``python:`` provides/requires);
* multiple providers: ``/usr/bin/awk`` (gawk, mawk), ``libjpeg.so.62`` (libjpeg-turbo,
  libjpeg6b), ``/usr/sbin/sendmail`` (postfix, exim);
* applications, 40 of which the group names (one as ``name:runtime``, one with
  ``components=[...]``).

Larger sizes add, up to the trove count: older builds of the core packages (committed
before the current ones, so resolution has to pick the newest), 32-bit (``is: x86``,
``ELF32``) builds of core libraries, and noise: other library stacks and applications
nobody in the group needs. Every component has 5-30 file entries (regular files whose
contents are in the store, symlinks, shared directories).

Measured, per size, through the real code path: a workspace with ``repo/config.yaml``
(label cernvm@cvm:2) and ``groups/group-bench.py``, then
``appbuilder.graph.groups.resolve_group(settings, repo, 'group-bench', 'x86_64')`` with a
fresh ``Repository`` each time, in fresh processes. Each run changes a comment in the
group recipe so that its source hash, hence the group's input hash, is new and the full
resolution (closure, path conflicts, commit of a new group trove) happens. The parts
(``ClosureResolver.resolve``, ``path_conflicts``, ``Repository.commit_group``, the rest:
loading the recipe, finding the named troves, hashing) are timed by wrapping those
functions inside the same call. Also: the same resolve again with the recipe unchanged.

Memory: peak RSS (VmHWM) of a fresh process after one resolve, against a process that
only imports the modules the resolve uses (same run).

    /tmp/v/bin/python bench/resolve.py        # BENCH_SIZES=1000,5000  BENCH_PROCS=N  BENCH_RUNS=N
    BENCH_PROFILE=1 /tmp/v/bin/python bench/resolve.py   # also profile one resolve at 5,000

Everything happens in one temporary directory (under $TMPDIR), removed at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, emit, med, r3, rmtree, table  # noqa: E402

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,2000,5000,10000,20000").split(",")]
PROCS = int(os.environ.get("BENCH_PROCS", "5"))  # fresh processes per size
RUNS = int(os.environ.get("BENCH_RUNS", "3"))  # resolves per process (the first one is the headline)
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
TARGET_SIZE, TARGET_S, TARGET_MB = 5000, 2.0, 300.0
LABEL = "cernvm@cvm:2"
ARCH = "x86_64"
SEED = 20240611
N_NAMED = 40
N_OTHER_APPS = 3  # core applications the group does not name

# ====================================================================== the generator

GLIBC_VERSIONS = ["GLIBC_2.2.5", "GLIBC_2.3", "GLIBC_2.3.2", "GLIBC_2.3.4", "GLIBC_2.4", "GLIBC_2.7",
                  "GLIBC_2.8", "GLIBC_2.9", "GLIBC_2.10", "GLIBC_2.11", "GLIBC_2.12", "GLIBC_2.14",
                  "GLIBC_2.15", "GLIBC_2.16", "GLIBC_2.17", "GLIBC_2.18", "GLIBC_2.22", "GLIBC_2.25",
                  "GLIBC_2.27", "GLIBC_2.28", "GLIBC_2.29", "GLIBC_2.30", "GLIBC_2.32", "GLIBC_2.33",
                  "GLIBC_2.34", "GLIBC_2.35", "GLIBC_2.36"]
GCC_VERSIONS = ["GCC_3.0", "GCC_3.3", "GCC_3.3.1", "GCC_4.2.0", "GCC_4.3.0", "GCC_7.0.0"]
CXX_VERSIONS = [f"GLIBCXX_3.4.{i}" for i in range(0, 31)] + [f"CXXABI_1.3.{i}" for i in range(0, 14)]
ZLIB_VERSIONS = ["ZLIB_1.2.0", "ZLIB_1.2.0.2", "ZLIB_1.2.2.3", "ZLIB_1.2.3.3", "ZLIB_1.2.5.1", "ZLIB_1.2.9"]

SYLLABLES = ["ar", "bel", "cor", "dra", "eth", "fin", "gal", "hex", "ion", "jot", "kar", "lum", "mor",
             "nex", "ost", "pix", "qua", "ras", "sol", "tor", "umb", "vel", "wex", "xan", "yor", "zed",
             "pango", "gio", "ssl", "xml", "cap", "usb", "pci", "acl", "attr", "ffi", "idn", "psl",
             "uv", "ev", "event", "sasl", "krb", "gss", "curl", "ssh", "nl", "mnl", "nft", "seccomp"]


@dataclass
class Comp:
    files: list = field(default_factory=list)  # (path, type, target) ; content chosen at commit
    provides: set = field(default_factory=set)
    requires: set = field(default_factory=set)


@dataclass
class Pkg:
    name: str
    upstream: str
    arch: str | None  # "x86_64", "x86", or None (noarch)
    comps: dict[str, Comp]
    source_tag: str = ""

    @property
    def rows(self) -> int:
        return 1 + len(self.comps)


@dataclass
class Lib:
    pkg: str
    soname: str  # "libfoo.so.3"
    symvers: list[str]
    needs: list[tuple["Lib", tuple[str, ...]]]
    cxx: bool
    has_config: bool
    has_data: bool
    has_runtime: bool
    nfiles: int
    layer: int


class Gen:
    """Deterministic description of one repository; ``build(rows)`` commits it."""

    def __init__(self, seed: int = SEED):
        self.rng = random.Random(seed)
        self.used_names: set[str] = set()

    # ------------------------------------------------------------ helpers

    def fresh_name(self, prefix: str = "lib", suffix: str = "") -> str:
        rng = self.rng
        while True:
            n = prefix + "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 2))) + suffix
            if n not in self.used_names:
                self.used_names.add(n)
                return n

    @staticmethod
    def elf(arch: str) -> tuple[str, str, str, str]:
        """(ELF class, machine flag, library dir, loader path)."""
        if arch == "x86":
            return "ELF32", "x86", "/usr/lib", "/lib/ld-linux.so.2"
        return "ELF64", "x86_64", "/usr/lib64", "/lib64/ld-linux-x86-64.so.2"

    def soname_dep(self, arch: str, soname: str, flags) -> str:
        e, machine, _, _ = self.elf(arch)
        return f"soname: {e}/{soname}({' '.join(sorted({machine, *flags}))})"

    def libc_needs(self, n: int | None = None) -> tuple[str, ...]:
        rng = self.rng
        k = n if n is not None else rng.randint(1, 4)
        return tuple(sorted(rng.sample(GLIBC_VERSIONS, k)))

    def elf_requires(self, arch: str, needs: list[tuple[Lib, tuple[str, ...]]], *, exe: bool,
                     cxx: bool = False) -> set[str]:
        """What an ELF file built against *needs* requires (libc always)."""
        rng = self.rng
        _, _, _, loader = self.elf(arch)
        req = {self.soname_dep(arch, "libc.so.6", self.libc_needs())}
        if rng.random() < 0.3:
            req.add(self.soname_dep(arch, "libm.so.6", (rng.choice(GLIBC_VERSIONS[:6]),)))
        if cxx:
            req.add(self.soname_dep(arch, "libstdc++.so.6", tuple(rng.sample(CXX_VERSIONS, 3))))
            req.add(self.soname_dep(arch, "libgcc_s.so.1", (rng.choice(GCC_VERSIONS),)))
        for lib, flags in needs:
            req.add(self.soname_dep(arch, lib.soname, flags))
        if exe:
            req.add(self.soname_dep(arch, loader.rsplit("/", 1)[1], ()))
            req.add(f"file: {loader}")
            e = "ELF32" if arch == "x86" else "ELF64"
            req.add(f"abi: {e}(SysV {'x86' if arch == 'x86' else 'x86_64'})")
        return req

    def pick_needs(self, pool: list[Lib], k: int) -> list[tuple[Lib, tuple[str, ...]]]:
        rng = self.rng
        if not pool or k <= 0:
            return []
        chosen = rng.sample(pool, min(k, len(pool)))
        return [(lib, tuple(rng.sample(lib.symvers, min(len(lib.symvers), rng.randint(1, 2)))))
                for lib in chosen]

    @staticmethod
    def dirs(*paths: str) -> list:
        return [(p, "dir", None) for p in paths]

    def filler(self, base: str, n: int, ext: str = "") -> list:
        return [(f"{base}/{self.rng.choice(SYLLABLES)}{i}{ext}", "file", None) for i in range(n)]

    # ------------------------------------------------------------ package shapes

    def new_lib(self, name: str, layer: int, pool: list[Lib], *, cxx: bool | None = None,
                soname: str | None = None) -> Lib:
        rng = self.rng
        major = rng.randint(0, 9)
        base = name[3:] if name.startswith("lib") else name
        tag = base.upper().replace("-", "_").replace("+", "X")
        nvers = rng.randint(1, 6)
        symvers = [f"{tag}_{major}.{i}" for i in range(nvers)]
        k = 0 if layer == 1 else rng.randint(1, min(5, 1 + layer))
        return Lib(
            pkg=name, soname=soname or f"{name if name.startswith('lib') else 'lib' + name}.so.{major}",
            symvers=symvers, needs=self.pick_needs(pool, k),
            cxx=(rng.random() < 0.2) if cxx is None else cxx,
            has_config=rng.random() < 0.4, has_data=rng.random() < 0.55, has_runtime=rng.random() < 0.15,
            nfiles=rng.randint(5, 30), layer=layer,
        )

    def lib_package(self, lib: Lib, arch: str, upstream: str) -> Pkg:
        rng = self.rng
        _, _, libdir, _ = self.elf(arch)
        symvers = lib.symvers
        stem = lib.soname.split(".so")[0]
        real = f"{libdir}/{lib.soname}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        comps: dict[str, Comp] = {}
        c = Comp()
        c.files = [(real, "file", None), (f"{libdir}/{lib.soname}", "symlink", real.rsplit("/", 1)[1])]
        c.files += self.dirs(f"{libdir}/{stem[3:] or stem}") + self.filler(f"{libdir}/{stem[3:] or stem}", max(0, lib.nfiles - 3), ".so")
        c.files += self.dirs("/usr/share/locale/de/LC_MESSAGES", "/usr/share/locale/fr/LC_MESSAGES")
        c.provides = {self.soname_dep(arch, lib.soname, symvers)}
        c.requires = self.elf_requires(arch, lib.needs, exe=False, cxx=lib.cxx)
        comps["lib"] = c
        d = Comp()
        d.files = [(f"{libdir}/{stem}.so", "symlink", lib.soname), (f"{libdir}/pkgconfig/{stem[3:]}.pc", "file", None)]
        d.files += self.dirs(f"/usr/include/{stem[3:]}", f"{libdir}/pkgconfig")
        d.files += self.filler(f"/usr/include/{stem[3:]}", rng.randint(3, 25), ".h")
        comps["devel"] = d
        if lib.has_config:
            comps["config"] = Comp(files=self.dirs(f"/etc/{stem[3:]}") + self.filler(f"/etc/{stem[3:]}", rng.randint(4, 10), ".conf"))
        if lib.has_data:
            comps["data"] = Comp(files=self.dirs(f"/usr/share/{stem[3:]}") + self.filler(f"/usr/share/{stem[3:]}", rng.randint(4, 29)))
        if lib.has_runtime:
            r = Comp()
            tools = [f"/usr/bin/{stem[3:]}-{w}" for w in rng.sample(SYLLABLES, rng.randint(2, 6))]
            r.files = [(t, "file", None) for t in tools] + self.dirs("/usr/bin")
            r.files += self.filler("/usr/share/man/man1", rng.randint(2, 8), f"-{stem[3:]}.1.gz")
            r.requires = self.elf_requires(arch, [(lib, (symvers[0],))], exe=True)
            if rng.random() < 0.4:
                r.files.append((f"/usr/bin/{stem[3:]}-config", "file", None))
                r.requires.add("file: /bin/sh")
            comps["runtime"] = r
        if rng.random() < 0.15:
            comps["doc"] = Comp(files=self.dirs(f"/usr/share/doc/{lib.pkg}") + self.filler(f"/usr/share/doc/{lib.pkg}", rng.randint(3, 15)))
        self.component_requires(lib.pkg, comps)
        return Pkg(lib.pkg, upstream, arch, comps)

    @staticmethod
    def component_requires(name: str, comps: dict[str, Comp]) -> None:
        """The trove: requirements the policy adds between components of one package."""
        for comp, others in (("runtime", ("lib", "config", "data")), ("lib", ("config", "data")),
                             ("devel", ("lib", "config", "data"))):
            if comp in comps:
                comps[comp].requires |= {f"trove: {name}:{o}" for o in others if o in comps}

    def app_package(self, name: str, arch: str, upstream: str, needs, *, interps=(), trove_reqs=(),
                    py_reqs=(), private_lib: bool = False, extra_runtime=()) -> Pkg:
        rng = self.rng
        comps: dict[str, Comp] = {}
        r = Comp()
        nbin = rng.randint(1, 6)
        r.files = [(f"/usr/bin/{name}" if i == 0 else f"/usr/bin/{name}-{SYLLABLES[i]}", "file", None) for i in range(nbin)]
        r.files += self.dirs("/usr/bin", f"/usr/libexec/{name}") + self.filler(f"/usr/libexec/{name}", rng.randint(2, 12))
        r.files += self.filler("/usr/share/man/man1", rng.randint(1, 6), f"-{name}.1.gz")
        r.files += list(extra_runtime)
        r.requires = self.elf_requires(arch, needs, exe=True, cxx=rng.random() < 0.2)
        for interp in interps:
            r.files.append((f"/usr/libexec/{name}/{interp.rsplit('/', 1)[1]}-helper", "file", None))
            r.requires.add(f"file: {interp}")
        r.requires |= {f"trove: {t}" for t in trove_reqs}
        r.requires |= {f"python: {m}" for m in py_reqs}
        comps["runtime"] = r
        if private_lib:
            _, _, libdir, _ = self.elf(arch)
            lib = Comp()
            so = f"lib{name}-private.so.0"
            lib.files = [(f"{libdir}/{name}/{so}", "file", None)] + self.dirs(f"{libdir}/{name}")
            lib.files += self.filler(f"{libdir}/{name}/plugins", rng.randint(3, 20), ".so")
            lib.provides = {self.soname_dep(arch, so, ())}
            lib.requires = self.elf_requires(arch, needs[:2], exe=False)
            comps["lib"] = lib
            r.requires.add(self.soname_dep(arch, so, ()))
            comps["devel"] = Comp(files=self.filler(f"/usr/include/{name}", rng.randint(3, 12), ".h") + self.dirs(f"/usr/include/{name}"))
        comps["config"] = Comp(files=self.dirs(f"/etc/{name}") + self.filler(f"/etc/{name}", rng.randint(2, 8), ".conf"))
        if rng.random() < 0.85:
            comps["data"] = Comp(files=self.dirs(f"/usr/share/{name}") + self.filler(f"/usr/share/{name}", rng.randint(4, 29)))
        if rng.random() < 0.6:
            comps["doc"] = Comp(files=self.dirs(f"/usr/share/doc/{name}") + self.filler(f"/usr/share/doc/{name}", rng.randint(3, 20)))
        self.component_requires(name, comps)
        return Pkg(name, upstream, arch, comps)

    def noarch_module(self, name: str, kind: str, module: str, needs_modules=()) -> Pkg:
        rng = self.rng
        c = Comp()
        if kind == "perl":
            base = f"/usr/share/perl5/vendor_perl/{module.replace('::', '/')}"
            c.files = self.dirs(base) + self.filler(base, rng.randint(4, 28), ".pm")
            c.requires = {"file: /usr/bin/perl"}
        else:
            base = f"/usr/lib/python3.11/site-packages/{module}"
            c.files = self.dirs(base) + self.filler(base, rng.randint(4, 28), ".py")
            c.provides = {f"python: {module}"}
            c.requires = {"file: /usr/bin/python3"} | {f"python: {m}" for m in needs_modules}
        comps = {"runtime": c,
                 "doc": Comp(files=self.dirs(f"/usr/share/doc/{name}") + self.filler(f"/usr/share/doc/{name}", rng.randint(2, 6)))}
        return Pkg(name, f"{rng.randint(0, 3)}.{rng.randint(0, 40)}", None, comps)

    # ------------------------------------------------------------ the core distribution

    def core(self) -> tuple[list[Pkg], list[Lib], list[str]]:
        """(current core packages in commit order, their libraries, the named apps)."""
        rng = self.rng
        pkgs: list[Pkg] = []
        libs: list[Lib] = []
        # -- glibc and the other libraries everything needs
        g = Comp()
        g.files = [("/lib64/ld-linux-x86-64.so.2", "file", None), ("/usr/lib64/libc.so.6", "file", None),
                   ("/usr/lib64/libm.so.6", "file", None), ("/usr/lib64/libpthread.so.0", "file", None),
                   ("/usr/lib64/libdl.so.2", "file", None), ("/usr/lib64/librt.so.1", "file", None)]
        g.files += self.dirs("/lib64", "/usr/lib64", "/usr/lib64/gconv") + self.filler("/usr/lib64/gconv", 20, ".so")
        g.provides = {self.soname_dep(ARCH, "libc.so.6", GLIBC_VERSIONS), self.soname_dep(ARCH, "libm.so.6", GLIBC_VERSIONS[:8]),
                      self.soname_dep(ARCH, "libpthread.so.0", GLIBC_VERSIONS[:10]), self.soname_dep(ARCH, "libdl.so.2", GLIBC_VERSIONS[:4]),
                      self.soname_dep(ARCH, "librt.so.1", GLIBC_VERSIONS[:6]), self.soname_dep(ARCH, "ld-linux-x86-64.so.2", ("GLIBC_2.2.5", "GLIBC_2.3", "GLIBC_PRIVATE"))}
        glibc = {"lib": g,
                 "runtime": Comp(files=[("/usr/bin/ldd", "file", None), ("/usr/bin/iconv", "file", None), ("/usr/bin/getent", "file", None),
                                        ("/sbin/ldconfig", "file", None)] + self.dirs("/usr/bin", "/sbin") + self.filler("/usr/share/man/man8", 6, ".8.gz"),
                                 requires={"file: /bin/bash", self.soname_dep(ARCH, "libc.so.6", ("GLIBC_2.34",)),
                                           self.soname_dep(ARCH, "ld-linux-x86-64.so.2", ()), "file: /lib64/ld-linux-x86-64.so.2"}),
                 "config": Comp(files=[("/etc/ld.so.conf", "file", None), ("/etc/nsswitch.conf", "file", None), ("/etc/rpc", "file", None),
                                       ("/etc/gai.conf", "file", None), ("/etc/ld.so.conf.d", "dir", None)]),
                 "data": Comp(files=self.dirs("/usr/share/i18n", "/usr/share/i18n/locales") + self.filler("/usr/share/i18n/locales", 28)),
                 "devel": Comp(files=self.dirs("/usr/include", "/usr/include/sys") + self.filler("/usr/include", 25, ".h") + [("/usr/lib64/libc.so", "file", None)])}
        self.component_requires("glibc", glibc)
        pkgs.append(Pkg("glibc", "2.36", ARCH, glibc))
        libc_like = [
            Lib("libgcc", "libgcc_s.so.1", GCC_VERSIONS, [], False, False, False, False, 6, 0),
            Lib("libstdc++", "libstdc++.so.6", CXX_VERSIONS, [], False, False, True, False, 12, 0),
            Lib("zlib", "libz.so.1", ZLIB_VERSIONS, [], False, False, False, False, 5, 0),
        ]
        for lib in libc_like:
            self.used_names.add(lib.pkg)
            pkgs.append(self.lib_package(lib, ARCH, "1." + str(rng.randint(0, 13))))
            libs.append(lib)
        # -- layered libraries
        layers = [18, 30, 38, 38, 26]
        pool: list[Lib] = [libc_like[2]]
        for layer, count in enumerate(layers, start=1):
            made = []
            for _ in range(count):
                lib = self.new_lib(self.fresh_name("lib"), layer, pool)
                made.append(lib)
            for lib in made:
                pkgs.append(self.lib_package(lib, ARCH, f"{rng.randint(0, 5)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"))
            libs += made
            pool = pool + made
        # -- ncurses/readline-ish base for the interpreters
        base = [lib for lib in libs if lib.layer == 1][:4]
        # -- interpreters
        bash = self.app_package("bash", ARCH, "5.2.15", [(base[0], (base[0].symvers[0],))],
                                extra_runtime=[("/bin/bash", "file", None), ("/bin/sh", "symlink", "bash")])
        bash.comps["runtime"].requires.discard("file: /bin/sh")
        dash = self.app_package("dash", ARCH, "0.5.12", [], extra_runtime=[("/bin/dash", "file", None)])
        coreutils = self.app_package("coreutils", ARCH, "9.1", self.pick_needs(base, 2),
                                     extra_runtime=[("/usr/bin/env", "file", None), ("/usr/bin/ls", "file", None),
                                                    ("/usr/bin/cp", "file", None)])
        perl = self.app_package("perl", ARCH, "5.36.0", self.pick_needs(base, 2), private_lib=True,
                                extra_runtime=[("/usr/bin/perl", "file", None), ("/usr/bin/perl5.36.0", "hardlink", "/usr/bin/perl")])
        python = self.app_package("python3", ARCH, "3.11.2", self.pick_needs(pool[:60], 5), private_lib=True,
                                  interps=("/bin/sh",),
                                  extra_runtime=[("/usr/bin/python3.11", "file", None), ("/usr/bin/python3", "symlink", "python3.11")])
        python.comps["runtime"].provides |= {f"python: {m}" for m in ("os", "json", "re", "subprocess", "socket", "ssl", "sqlite3")}
        gawk = self.app_package("gawk", ARCH, "5.2.1", self.pick_needs(base, 1),
                                extra_runtime=[("/usr/bin/gawk", "file", None), ("/usr/bin/awk", "symlink", "gawk")])
        mawk = self.app_package("mawk", ARCH, "1.3.4", [],
                                extra_runtime=[("/usr/bin/mawk", "file", None), ("/usr/bin/awk", "symlink", "mawk")])
        pkgs += [bash, dash, coreutils, perl, python, gawk, mawk]
        # -- two libjpeg.so.62 providers
        upper = [lib for lib in libs if lib.layer >= 2]
        jpeg_turbo = Lib("libjpeg-turbo", "libjpeg.so.62", ["LIBJPEG_6.2", "LIBJPEGTURBO_6.2"], self.pick_needs(libs[:20], 1),
                         False, False, False, True, 10, 2)
        jpeg6b = dataclasses.replace(jpeg_turbo, pkg="libjpeg6b", symvers=["LIBJPEG_6.2"], has_runtime=False)
        for lib in (jpeg6b, jpeg_turbo):
            self.used_names.add(lib.pkg)
            pkgs.append(self.lib_package(lib, ARCH, "2.1.5" if lib is jpeg_turbo else "6b2"))
        libs.append(jpeg_turbo)
        # -- noarch perl and python modules
        modules: list[str] = []
        perl_mods: list[str] = []
        for i in range(10):
            name = self.fresh_name("perl-", "")
            mod = self.noarch_module(name, "perl", name[5:].capitalize() + "::" + SYLLABLES[i].capitalize())
            if perl_mods and rng.random() < 0.5:
                mod.comps["runtime"].requires.add(f"trove: {rng.choice(perl_mods)}:runtime")
            pkgs.append(mod)
            perl_mods.append(name)
        for i in range(14):
            name = self.fresh_name("python3-")
            mod = name[8:]
            pkgs.append(self.noarch_module(name, "python", mod, rng.sample(modules, min(len(modules), rng.randint(0, 2))) or ["os"]))
            modules.append(mod)
        # -- mail transfer agents: two owners of /usr/sbin/sendmail
        for mta in ("postfix", "exim"):
            self.used_names.add(mta)
            pkgs.append(self.app_package(mta, ARCH, "3.7.5" if mta == "postfix" else "4.96", self.pick_needs(upper, 3),
                                         interps=("/bin/sh",), extra_runtime=[("/usr/sbin/sendmail", "file", None)]))
        # -- applications: N_NAMED named, N_OTHER_APPS not
        top = [lib for lib in libs if lib.layer >= 3]
        apps: list[str] = []
        interp_choices = ["/bin/sh", "/bin/sh", "/usr/bin/perl", "/usr/bin/python3", "/usr/bin/awk", "/usr/bin/env", "/bin/bash"]
        for i in range(N_NAMED + N_OTHER_APPS):
            name = self.fresh_name("", "d" if i % 3 == 0 else "")
            needs = self.pick_needs(top, rng.randint(2, 6)) + self.pick_needs(libs, rng.randint(0, 2))
            needs = list({lib.pkg: (lib, f) for lib, f in needs}.values())
            interps = tuple(sorted(set(rng.sample(interp_choices, rng.randint(0, 3)))))
            trove_reqs = tuple(sorted(rng.sample(apps, min(len(apps), rng.randint(0, 1))))) if rng.random() < 0.3 else ()
            trove_reqs = tuple(f"{a}:runtime" for a in trove_reqs)
            if rng.random() < 0.1:
                trove_reqs += ("coreutils:runtime",)
            py = tuple(rng.sample(modules, rng.randint(1, 3))) if "/usr/bin/python3" in interps else ()
            if "/usr/bin/perl" in interps:
                trove_reqs += tuple(f"{m}:runtime" for m in rng.sample(perl_mods, rng.randint(1, 3)))
            if i % 7 == 2:  # LIBJPEG_6.2 alone: both libjpeg packages qualify
                needs.append((jpeg_turbo, ("LIBJPEG_6.2",) if i % 2 == 0 else ("LIBJPEG_6.2", "LIBJPEGTURBO_6.2")))
            if rng.random() < 0.05:
                interps += ("/usr/sbin/sendmail",)
            apps.append(name)
            pkgs.append(self.app_package(name, ARCH, f"{rng.randint(1, 9)}.{rng.randint(0, 20)}", needs, interps=interps,
                                         trove_reqs=trove_reqs, py_reqs=py, private_lib=rng.random() < 0.5))
        named = apps[:N_NAMED]
        return pkgs, libs, named

    # ------------------------------------------------------------ filler

    def noise_stack(self, core_libs: list[Lib], n_libs: int, n_apps: int) -> list[Pkg]:
        """Another product's libraries and applications, built on the core's low layers."""
        rng = self.rng
        low = [lib for lib in core_libs if lib.layer <= 2]
        pool = list(low)
        out: list[Pkg] = []
        mine: list[Lib] = []
        for _ in range(n_libs):
            lib = self.new_lib(self.fresh_name("lib", "x"), 3, pool)
            mine.append(lib)
            pool.append(lib)
            out.append(self.lib_package(lib, ARCH, f"{rng.randint(0, 5)}.{rng.randint(0, 30)}"))
        for _ in range(n_apps):
            name = self.fresh_name("", "-x")
            needs = self.pick_needs(mine, rng.randint(1, 4)) + self.pick_needs(low, rng.randint(0, 2))
            needs = list({lib.pkg: (lib, f) for lib, f in needs}.values())
            out.append(self.app_package(name, ARCH, f"{rng.randint(1, 9)}.{rng.randint(0, 20)}", needs,
                                        interps=tuple(rng.sample(["/bin/sh", "/usr/bin/perl", "/usr/bin/python3"], rng.randint(0, 2)))))
        if rng.random() < 0.5:
            name = self.fresh_name("python3-", "x")
            out.append(self.noarch_module(name, "python", name[8:], ["os"]))
        return out


# ====================================================================== committing


def commit(repo, pkg: Pkg, blobs: list[str], source_tag: str = "") -> int:
    from appbuilder.repository.deps import Dependency
    from appbuilder.repository.repo import ComponentContents, PackageBuild
    from appbuilder.repository.trove import FileEntry
    from appbuilder.repository.versions import Flavor

    comps = []
    for cname, c in sorted(pkg.comps.items()):
        files = []
        for path, kind, target in c.files:
            if kind == "file":
                h = int(hashlib.blake2s(path.encode(), digest_size=4).hexdigest(), 16)
                files.append(FileEntry(path, "file", 0o755 if "/bin/" in path or path.endswith(".so") else 0o644,
                                       size=1000 + h % 200000, sha256=blobs[h % len(blobs)],
                                       config=path.startswith("/etc/")))
            elif kind == "dir":
                files.append(FileEntry(path, "dir", 0o755))
            elif kind == "symlink":
                files.append(FileEntry(path, "symlink", 0o777, target=target))
            else:
                files.append(FileEntry(path, "hardlink", 0o755, target=target, sha256=blobs[0]))
        files = list({f.path: f for f in files}.values())
        comps.append(ComponentContents(
            name=f"{pkg.name}:{cname}", files=files,
            provides={Dependency.parse(d) for d in c.provides},
            requires={Dependency.parse(d) for d in c.requires},
        ))
    src = hashlib.sha256(f"{pkg.name} {pkg.upstream} {source_tag}".encode()).hexdigest()  # one recipe, any flavor
    repo.commit_package(PackageBuild(name=pkg.name, upstream=pkg.upstream, flavor=Flavor(pkg.arch),
                                     source_hash=src, components=comps))
    return pkg.rows


def generate(path: Path, target_rows: int) -> dict:
    """Commit a repository of about *target_rows* troves into *path*."""
    from appbuilder.repository.repo import Repository

    t0 = time.perf_counter()
    gen = Gen()
    core, libs, named = gen.core()
    core_rows = sum(p.rows for p in core)
    budget = max(0, target_rows - core_rows)
    repo = Repository(path, LABEL)
    blobs = [repo.store.put_bytes(f"synthetic content {i}\n".encode() * 20) for i in range(64)]

    # plan the filler: older builds of core packages, 32-bit builds, noise stacks
    rng = random.Random(SEED + 1)
    old_budget, x86_budget = int(budget * 0.40), int(budget * 0.15)
    noise_budget = budget - old_budget - x86_budget
    olds: list[tuple[Pkg, str]] = []  # (package, source tag), committed before the core
    rounds = old_rows = 0
    while old_rows < old_budget:
        rounds += 1
        for p in core:
            if old_rows >= old_budget:
                break
            old_rows += p.rows
            old = Pkg(p.name, p.upstream if rng.random() < 0.5 else f"{p.upstream}~pre{rounds}", p.arch,
                      {k: Comp(list(c.files), set(c.provides), set(c.requires)) for k, c in p.comps.items()})
            olds.append((old, f"old{rounds}"))
    x86: list[Pkg] = []
    lib_by_pkg = {lib.pkg: lib for lib in libs}
    arch_libs = [p for p in core if p.name in lib_by_pkg and p.arch == ARCH]
    i = x86_rows = 0
    while arch_libs and x86_rows < x86_budget:
        lib = lib_by_pkg[arch_libs[i % len(arch_libs)].name]
        x86.append(gen.lib_package(lib, "x86", arch_libs[i % len(arch_libs)].upstream + ("" if i < len(arch_libs) else f".{i // len(arch_libs)}")))
        x86_rows += x86[-1].rows
        i += 1
    noise: list[Pkg] = []
    noise_rows = 0
    while noise_rows < noise_budget:
        for p in gen.noise_stack(libs, rng.randint(4, 12), rng.randint(2, 6)):
            if noise_rows >= noise_budget:
                break
            noise.append(p)
            noise_rows += p.rows
    # commit order: old builds interleaved with 32-bit builds and noise, then the current core
    early = olds + [(p, "") for p in x86] + [(p, "") for p in noise]
    rng.shuffle(early)
    early.sort(key=lambda pt: 0 if pt[1] else 1)  # every old build before any current core build
    rows = 0
    for p, tag in early:
        rows += commit(repo, p, blobs, tag)
    for p in core:
        rows += commit(repo, p, blobs)
    db_rows = repo.db.execute("SELECT COUNT(*) FROM troves").fetchone()[0]
    files = repo.db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    packages = repo.db.execute("SELECT COUNT(*) FROM troves WHERE kind='package'").fetchone()[0]
    repo.close()
    size = sum(f.stat().st_size for f in path.glob("index.sqlite*"))
    return {"troves": db_rows, "packages": packages, "files": files, "core_troves": core_rows,
            "named": named, "gen_s": time.perf_counter() - t0, "index_bytes": size}


GROUP_TEMPLATE = """\
# {comment}
class GroupBench(GroupRecipe):
    name = 'group-bench'
    version = '1.0'

    def setup(r):
{adds}
"""


def write_workspace(ws: Path, named: list[str]) -> None:
    (ws / "repo").mkdir(parents=True, exist_ok=True)
    (ws / "groups").mkdir(exist_ok=True)
    (ws / "repo" / "config.yaml").write_text(f"label: {LABEL}\n")
    write_group(ws, named, "initial")
    (ws / "named.json").write_text(json.dumps(named))


def write_group(ws: Path, named: list[str], comment: str) -> None:
    lines = []
    for i, n in enumerate(named):
        if i == 3:
            lines.append(f"        r.add('{n}', components=['runtime', 'config'])")
        elif i == 5:
            lines.append(f"        r.add('{n}:runtime')")
        else:
            lines.append(f"        r.add('{n}')")
    (ws / "groups" / "group-bench.py").write_text(GROUP_TEMPLATE.format(comment=comment, adds="\n".join(lines)))


# ====================================================================== workers (fresh processes)


def vm_hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def worker(mode: str, ws: str, repo_path: str, tag: str) -> None:
    os.environ.pop("APPBUILD_WORKSPACE", None)
    os.environ.pop("APPBUILD_REPOSITORY", None)
    from appbuilder.core.settings import load_settings
    from appbuilder.graph import groups
    from appbuilder.graph.closure import ClosureResolver
    from appbuilder.repository.repo import Repository

    if mode == "baseline":
        print(json.dumps({"hwm_kb": vm_hwm_kb()}))
        return
    ws_path = Path(ws)
    named = json.loads((ws_path / "named.json").read_text())
    settings = dataclasses.replace(load_settings(ws_path), repository=Path(repo_path))

    parts: dict[str, float] = {}

    def wrap(owner, attr, key):
        fn = getattr(owner, attr)

        def timed_call(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                parts[key] = parts.get(key, 0.0) + time.perf_counter() - t
        setattr(owner, attr, timed_call)

    wrap(ClosureResolver, "resolve", "closure")
    wrap(groups, "path_conflicts", "conflicts")
    wrap(Repository, "commit_group", "commit")

    def one(comment: str) -> dict:
        if comment:
            write_group(ws_path, named, comment)
        parts.clear()
        repo = Repository(settings.repository, settings.label)
        t = time.perf_counter()
        result = groups.resolve_group(settings, repo, "group-bench", ARCH)
        total = time.perf_counter() - t
        closure = result.closure
        out = {"total": total, **parts, "other": total - sum(parts.values()), "new": result.new,
               "members": len(closure.members),
               "components": sum(1 for n in closure.members if ":" in n.name),
               "choices": len(closure.choices), "unresolved": len(closure.unresolved)}
        repo.close()
        return out

    if mode == "profile":
        import cProfile
        import io
        import pstats

        write_group(ws_path, named, f"profile {tag}")
        prof = cProfile.Profile()
        repo = Repository(settings.repository, settings.label)
        prof.enable()
        groups.resolve_group(settings, repo, "group-bench", ARCH)
        prof.disable()
        s = io.StringIO()
        st = pstats.Stats(prof, stream=s)
        st.sort_stats("tottime").print_stats(18)
        st.sort_stats("cumulative").print_stats(22)
        print(s.getvalue())
        return

    runs = [one(f"run {tag} 0")]
    hwm = vm_hwm_kb()  # after exactly one resolve in this process
    for i in range(1, RUNS):
        runs.append(one(f"run {tag} {i}"))
    same = one("")  # recipe unchanged: same input hash, the existing group trove comes back
    print(json.dumps({"runs": runs, "hwm_kb": hwm, "same": same}))


def spawn(mode: str, ws: Path | str = "-", repo: Path | str = "-", tag: str = "") -> dict | str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPBUILD_")}
    p = subprocess.run([PYTHON, __file__, "--worker", mode, str(ws), str(repo), tag],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"worker {mode} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout if mode == "profile" else json.loads(p.stdout.strip().splitlines()[-1])


# ====================================================================== main


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="appbuild-bench-resolve-"))
    try:
        run_bench(root)
    finally:
        rmtree(root)


def run_bench(root: Path) -> None:
    print(f"# group resolution benchmark: sizes {SIZES}, {PROCS} fresh processes x {RUNS} resolves per size")
    print("# troves = trove rows of the index (packages + components); closure = closure.members "
          "(components + named packages)", flush=True)
    gens: dict[int, dict] = {}
    for size in SIZES:
        d = root / f"size-{size}"
        info = generate(d / "repo", size)
        write_workspace(d / "ws", info["named"])
        gens[size] = info
        print(f"# generated {size}: {info['troves']} troves ({info['packages']} packages, {info['files']} files, "
              f"index {info['index_bytes'] / 1e6:.1f} MB) in {info['gen_s']:.1f} s (not measured)", flush=True)

    baseline = [spawn("baseline")["hwm_kb"] for _ in range(3)]
    base_mb = med(baseline) / 1024

    results: dict[int, dict] = {}
    for size in SIZES:
        d = root / f"size-{size}"
        procs = [spawn("resolve", d / "ws", d / "repo", f"{size}-{p}") for p in range(PROCS)]
        first = [p["runs"][0] for p in procs]
        later = [r for p in procs for r in p["runs"][1:]]
        for r in first + later:
            if not r["new"] or r["unresolved"]:
                raise SystemExit(f"size {size}: a resolve did not do the full work: {r}")
        for p in procs:
            if p["same"]["new"]:
                raise SystemExit(f"size {size}: an unchanged recipe gave a new group trove: {p['same']}")
        results[size] = {
            "first": first, "later": later, "same": [p["same"] for p in procs],
            "hwm_mb": [p["hwm_kb"] / 1024 for p in procs],
        }
        print(f"# measured {size}: median {med([r['total'] for r in first]) * 1000:.0f} ms", flush=True)

    # ---------------------------------------------------------------- tables
    rows = []
    for size in SIZES:
        g, r = gens[size], results[size]
        f = r["first"]
        rows.append([
            f"{g['troves']:,}", f"{g['packages']:,}", f"{g['files']:,}",
            f"{f[0]['members']}/{f[0]['components']}",
            f"{med([x['total'] for x in f]) * 1000:.0f}", f"{min(x['total'] for x in f) * 1000:.0f}",
            f"{med([x['closure'] for x in f]) * 1000:.0f}", f"{med([x['conflicts'] for x in f]) * 1000:.1f}",
            f"{med([x['commit'] for x in f]) * 1000:.1f}", f"{med([x['other'] for x in f]) * 1000:.1f}",
            f"{med([x['total'] for x in r['later']]) * 1000:.0f}" if r["later"] else "-",
            f"{med([x['total'] for x in r['same']]) * 1000:.0f}",
            f"{max(r['hwm_mb']):.1f}", f"{max(r['hwm_mb']) - base_mb:.1f}",
        ])
    print()
    print(table(
        ["troves", "packages", "files", "closure/comps", "resolve ms", "min ms", "closure ms", "conflicts ms",
         "commit ms", "other ms", "warm ms", "same ms", "peak MB", "over base MB"],
        rows,
        title=(f"resolve_group('group-bench', x86_64): first resolve in each of {PROCS} fresh processes "
               f"(median, min; parts are medians); "
               + (f"warm = runs 2..{RUNS} in those processes; " if RUNS > 1 else "warm: not measured (BENCH_RUNS=1); ")
               + f"same = recipe unchanged (existing group trove); peak = max VmHWM after one resolve; "
               f"baseline (imports only) {base_mb:.1f} MB"),
    ))
    lo, hi = min(SIZES), max(SIZES)
    t = {s: med([x["total"] for x in results[s]["first"]]) for s in SIZES}
    growth = [[f"{gens[s]['troves']:,}", f"{t[s] * 1000:.0f}", f"{t[s] / t[lo]:.2f}x",
               f"{(gens[s]['troves'] / gens[lo]['troves']):.1f}x"] for s in SIZES]
    print()
    print(table(["troves", "resolve ms", f"time vs {lo:,}", f"troves vs {lo:,}"], growth, title="growth"))

    verdict = None
    if TARGET_SIZE in SIZES:
        tt, mm = t[TARGET_SIZE], max(results[TARGET_SIZE]["hwm_mb"])
        verdict = {"time_ok": tt < TARGET_S, "memory_ok": mm < TARGET_MB}
        print(f"\ntarget at {TARGET_SIZE:,} troves: resolve {tt:.3f} s (< {TARGET_S} s: "
              f"{'met' if verdict['time_ok'] else 'MISSED'}), peak RSS {mm:.1f} MB (< {TARGET_MB:.0f} MB: "
              f"{'met' if verdict['memory_ok'] else 'MISSED'})")
        if PROFILE or not all(verdict.values()):
            d = root / f"size-{TARGET_SIZE}"
            print(f"\nprofile of one resolve at {TARGET_SIZE:,} troves:")
            print(spawn("profile", d / "ws", d / "repo", "p"))

    emit("resolve", {
        "troves_counted_as": "trove rows (packages + components)",
        "procs": PROCS, "runs_per_proc": RUNS,
        "baseline_rss_mb": r3(base_mb),
        "sizes": [{
            "target": s, "troves": gens[s]["troves"], "packages": gens[s]["packages"], "files": gens[s]["files"],
            "closure_members": results[s]["first"][0]["members"], "closure_components": results[s]["first"][0]["components"],
            "choices": results[s]["first"][0]["choices"],
            "resolve_s": {"median": r3(t[s]), "min": r3(min(x["total"] for x in results[s]["first"]))},
            "parts_s": {k: r3(med([x[k] for x in results[s]["first"]])) for k in ("closure", "conflicts", "commit", "other")},
            "warm_s": r3(med([x["total"] for x in results[s]["later"]])) if results[s]["later"] else None,
            "same_recipe_s": r3(med([x["total"] for x in results[s]["same"]])),
            "peak_rss_mb": r3(max(results[s]["hwm_mb"])),
            "gen_s": r3(gens[s]["gen_s"]),
        } for s in SIZES],
        "growth_time_ratio": r3(t[hi] / t[lo]), "growth_troves_ratio": r3(gens[hi]["troves"] / gens[lo]["troves"]),
        "target": {"troves": TARGET_SIZE, "max_s": TARGET_S, "max_mb": TARGET_MB, **(verdict or {})},
    })


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:6])
    else:
        main()
