"""More file actions, as conary had them: documentation, copies, desktop entries.

Like the file actions of :mod:`appbuilder.recipe.build_actions`, they run in appbuild on
the trees the build wrote, beneath them (a symlink leading out fails the action). Paths
are absolute for the install root and relative for the build directory.
"""

from __future__ import annotations

import os
import stat

from appbuilder.core.beneath import copy
from appbuilder.core.errors import RecipeError
from appbuilder.recipe.actions import Action, ActionContext, Trees, image_path


class Doc(Action):
    """Install documentation from the build directory into ``%(thisdocdir)s``.

    Each argument is a file, a directory or a glob, relative to the build directory; a
    directory is copied with everything in it (``r.Doc('html/')`` makes
    ``%(thisdocdir)s/html``). ``dir=`` puts them in a subdirectory of
    ``%(thisdocdir)s``. Files get ``mode`` (0644) and directories ``dirmode`` (0755).
    The files land in the ``:supdoc`` component (conary's rule for ``%(docdir)s``).

    Example::

        r.Doc('README', 'NEWS', 'COPYING')
        r.Doc('doc/*.html', dir='html')
    """

    def __init__(self, *paths: str, dir: str = "", mode: int = 0o644, dirmode: int = 0o755):
        if not paths:
            raise RecipeError("Doc: name at least one file")
        self.paths, self.dir, self.mode, self.dirmode = paths, dir, mode, dirmode

    def do(self, ctx: ActionContext) -> None:
        base = ctx.macros.thisdocdir + (f"/{ctx.macros.expand(self.dir).strip('/')}" if self.dir else "")
        image_path(base)
        with Trees(ctx, self) as trees:
            build, root = trees.build(), trees.root
            for p in self.paths:
                pattern = ctx.macros.expand(p).rstrip("/")
                if pattern.startswith("/"):
                    raise RecipeError(f"Doc: {p!r} must be relative to the build directory")
                hits = build.glob(pattern)
                if not hits:
                    raise RecipeError(f"Doc: nothing matches {p!r} in the build directory")
                for hit in hits:
                    target = f"{base}/{os.path.basename(hit)}"
                    copy(build, hit, root, target)
                    _set_modes(root, target, self.mode, self.dirmode)


def _set_modes(root, path: str, mode: int, dirmode: int) -> None:
    """*mode* on every file and *dirmode* on every directory from *path* down."""
    st = root.lstat(path)
    if stat.S_ISREG(st.st_mode):
        root.chmod(path, mode, follow=False)
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    for dir_path, _fd, _st, entries in root.walk(path):
        root.chmod(dir_path, dirmode, follow=False)
        for e in entries:
            if stat.S_ISREG(e.st.st_mode):
                root.chmod(f"{dir_path}/{e.name}", mode, follow=False)


class Copy(Action):
    """Copy files, keeping their modes: ``r.Copy(source, [source, ...,] dest)``.

    Sources are relative to the build directory or absolute in the install root, and
    may be globs; ``dest`` likewise. A ``dest`` ending in ``/`` (or an existing
    directory) receives the sources under their own names; several sources need one.
    A directory is copied with everything in it; symlinks are copied as symlinks. A file
    keeps its permission bits unless ``mode=`` is given (conary's ``r.Copy``; use
    ``r.Install`` for 0755/0644 modes). Nothing matching is an error unless
    ``allowNoMatch=True``.

    Example::

        r.Copy('mm_cfg.py', 'Mailman/mm_cfg.py.dist')
        r.Copy('%(datadir)s/foo/defaults.conf', '%(sysconfdir)s/foo.conf')
        r.Copy('contrib/*.pl', '%(datadir)s/foo/contrib/')
    """

    def __init__(self, *args: str, mode: int | None = None, allowNoMatch: bool = False):
        if len(args) < 2:
            raise RecipeError("Copy: give the source(s) and then the destination")
        if not all(isinstance(a, str) and a for a in args):
            raise RecipeError(f"Copy: sources and destination must be non-empty strings, not {args!r}")
        self.sources, self.dest, self.mode, self.allowNoMatch = tuple(args[:-1]), args[-1], mode, allowNoMatch
        if len(self.sources) > 1 and not self.dest.endswith("/"):
            raise RecipeError(f"Copy: several sources need a directory to copy into (end {self.dest!r} with '/')")

    def do(self, ctx: ActionContext) -> None:
        dest_text = ctx.macros.expand(self.dest)
        with Trees(ctx, self) as trees:
            dest_tree, dest = trees.of(dest_text, create=True)
            found = []
            for s in self.sources:
                tree, pattern = trees.of(ctx.macros.expand(s))
                hits = tree.glob(pattern)
                if not hits and not self.allowNoMatch:
                    raise RecipeError(f"Copy: nothing matches {s!r} in the {tree.label}")
                found += [(tree, h) for h in hits]
            into_dir = dest_text.endswith("/") or _is_dir(dest_tree, dest)
            if len(found) > 1 and not into_dir:
                raise RecipeError(f"Copy: {len(found)} files match; end {self.dest!r} with '/' to copy them "
                                  f"into a directory")
            for tree, src in found:
                target = f"{dest.rstrip('/')}/{os.path.basename(src)}" if into_dir else dest
                copy(tree, src, dest_tree, target, mode=self.mode if _is_file(tree, src) else None)


def _is_dir(tree, path: str) -> bool:
    try:
        return stat.S_ISDIR(tree.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _is_file(tree, path: str) -> bool:
    return stat.S_ISREG(tree.lstat(path).st_mode)


class Desktopfile(Action):
    """Install desktop entry files (``.desktop``) into ``%(datadir)s/applications``.

    As conary's (which ran ``desktop-file-install``): each file, relative to the build
    directory, is checked (a ``[Desktop Entry]`` group first, with ``Type`` and ``Name``,
    and ``Exec`` for an application; a failed check names the file and what is
    wrong), ``category=`` is added to its ``Categories``, and it is installed as
    ``VENDOR-NAME.desktop`` (``vendor='net'``, as in conary; a name that already starts
    with the vendor is kept), mode 0644.

    Example::

        r.Desktopfile('thunderbird.desktop', category='Network')
    """

    def __init__(self, *files: str, category: str | None = None, vendor: str = "net"):
        if not files:
            raise RecipeError("Desktopfile: name at least one .desktop file")
        if not vendor or "/" in vendor:
            raise RecipeError(f"Desktopfile: bad vendor {vendor!r}")
        self.files, self.category, self.vendor = files, category, vendor

    def do(self, ctx: ActionContext) -> None:
        appdir = ctx.macros.expand("%(datadir)s/applications")
        with Trees(ctx, self) as trees:
            build = trees.build()
            for f in self.files:
                name = ctx.macros.expand(f)
                if name.startswith("/"):
                    raise RecipeError(f"Desktopfile: {f!r} must be relative to the build directory")
                hits = build.glob(name)
                if not hits:
                    raise RecipeError(f"Desktopfile: nothing matches {f!r} in the build directory")
                for hit in hits:
                    text = desktop_entry(build.read_bytes(hit), hit, self.category)
                    base = os.path.basename(hit)
                    if not base.startswith(f"{self.vendor}-"):
                        base = f"{self.vendor}-{base}"
                    trees.root.write_bytes(image_path(f"{appdir}/{base}"), text, 0o644)


def desktop_entry(data: bytes, shown: str, category: str | None) -> bytes:
    """The checked desktop entry *data*, with *category* added to its Categories."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise RecipeError(f"Desktopfile: {shown}: is not UTF-8 text") from None
    groups = [i for i, line in enumerate(lines) if line.startswith("[")]
    if not groups or lines[groups[0]].strip() != "[Desktop Entry]" or any(
            line.strip() and not line.lstrip().startswith("#") for line in lines[:groups[0]]):
        raise RecipeError(f"Desktopfile: {shown}: the first group must be [Desktop Entry]")
    end = groups[1] if len(groups) > 1 else len(lines)
    keys: dict[str, int] = {}
    for i in range(groups[0] + 1, end):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, _value = line.partition("=")
        if not sep:
            raise RecipeError(f"Desktopfile: {shown}:{i + 1}: not a key=value line: {line!r}")
        keys.setdefault(key.strip(), i)
    for required in ("Type", "Name"):
        if required not in keys:
            raise RecipeError(f"Desktopfile: {shown}: the [Desktop Entry] group has no {required}= key")
    entry_type = lines[keys["Type"]].partition("=")[2].strip()
    if entry_type == "Application" and "Exec" not in keys and "DBusActivatable" not in keys:
        raise RecipeError(f"Desktopfile: {shown}: an application entry needs an Exec= key")
    if category:
        if "Categories" in keys:
            i = keys["Categories"]
            value = lines[i].partition("=")[2].strip()
            cats = [c for c in value.split(";") if c]
            if category not in cats:
                cats.append(category)
            lines[i] = "Categories=" + ";".join(cats) + ";"
        else:
            lines.insert(end, f"Categories={category};")
    return ("\n".join(lines) + "\n").encode()
