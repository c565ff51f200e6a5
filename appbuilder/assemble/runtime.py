"""A program and what it needs to run, taken out of a group's closure without staging it.

The network-booting image's initramfs holds the file system client and the shared
libraries it links, not the whole root. :class:`TreeView` answers "which file is at
this path" over the member troves, following symbolic links (a library's soname link,
``/lib64/ld-linux-x86-64.so.2``, a merged ``/lib``) the way the kernel and the dynamic
loader would, never past the tree's root; :func:`runtime_files` closes a program over
its interpreter and its ``DT_NEEDED`` libraries, searched in the program's own
``DT_RUNPATH`` and then the architecture's library directories.
"""

from __future__ import annotations

import io
import posixpath
from dataclasses import dataclass

from appbuilder.core.arch import get_arch
from appbuilder.core.errors import AppbuildError
from appbuilder.policy.elf import read_elf
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry, Trove

MAX_LINKS = 40  # as the kernel's ELOOP limit


class MissingRuntime(AppbuildError):
    """A program's runtime closure cannot be found in the group's closure."""


@dataclass(frozen=True)
class TreeItem:
    """One path of a runtime closure: a regular file (its entry) or a symbolic link (its target)."""

    path: str
    entry: FileEntry | None = None
    link: str | None = None


class TreeView:
    """The file tree the member *troves* make, by path (later members win, as staging does)."""

    def __init__(self, troves: list[Trove]):
        self.files: dict[str, FileEntry] = {}
        for f in sorted((f for t in troves for f in t.files), key=lambda f: f.path):
            self.files[f.path] = f

    def resolve(self, path: str, links: list[TreeItem] | None = None) -> str | None:
        """The real path *path* leads to (every symlink followed), or None after too many links.
        The symbolic links passed on the way are appended to *links*."""
        parts = [p for p in posixpath.normpath(path).split("/") if p]
        done = ""
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                done = posixpath.dirname(done) if done else ""
                continue
            here = f"{done}/{name}"
            entry = self.files.get(here)
            if entry is not None and entry.type == "symlink":
                hops += 1
                if hops > MAX_LINKS:
                    return None
                if links is not None:
                    links.append(TreeItem(here, link=entry.target))
                target = entry.target
                base = "" if target.startswith("/") else done
                parts = [p for p in target.split("/") if p and p != "."] + parts
                done = base
                continue
            done = here
        return done or "/"

    def regular(self, path: str, links: list[TreeItem] | None = None) -> FileEntry | None:
        real = self.resolve(path, links)
        entry = self.files.get(real) if real else None
        if entry is not None and entry.type == "hardlink":
            entry = self.files.get(entry.target)
        return entry if entry is not None and entry.type == "file" else None


def runtime_files(view: TreeView, store: ContentStore, program: str, arch: str) -> list[TreeItem]:
    """*program* (a path in the tree), its interpreter and every shared library it needs,
    transitively: regular files at their real paths and the symbolic links that lead to them."""
    search = [*get_arch(arch).multiarch_libdirs, "/lib", "/usr/lib"]
    if arch == "x86_64":
        search += ["/lib64", "/usr/lib64"]
    items: dict[str, TreeItem] = {}
    pending = [(program, program)]  # (path asked for, why it is needed)
    seen_sonames: set[str] = set()
    while pending:
        path, why = pending.pop(0)
        links: list[TreeItem] = []
        entry = view.regular(path, links)
        if entry is None:
            raise MissingRuntime(f"{why}: {path} is not a file in the group's closure")
        for link in links:
            items.setdefault(link.path, link)
        if entry.path in items:
            continue
        items[entry.path] = TreeItem(entry.path, entry=entry)
        data = store.read(entry.sha256)
        info = read_elf(io.BytesIO(data))
        if info is None:
            continue  # a script or data file: nothing more to follow
        if info.interp and info.interp not in items:
            pending.append((info.interp, f"the interpreter of {entry.path}"))
        origin = posixpath.dirname(entry.path)
        runpath = [d.replace("$ORIGIN", origin) for d in info.runpath]
        for soname in info.needed:
            if soname in seen_sonames:
                continue
            seen_sonames.add(soname)
            for directory in [*runpath, *search]:
                candidate = f"{directory}/{soname}"
                if view.regular(candidate) is not None:
                    pending.append((candidate, f"{soname} (needed by {entry.path})"))
                    break
            else:
                raise MissingRuntime(f"{entry.path} needs {soname}, which no member of the group's closure holds "
                                    f"in {', '.join(search)}")
    return [items[p] for p in sorted(items)]
