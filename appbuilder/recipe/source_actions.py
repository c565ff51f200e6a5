"""Source actions: bring sources into the build directory before anything builds.

Sources are either files beside the recipe (``recipes/NAME/``), archives or files
fetched by URL and pinned by sha256, or Debian source packages fetched through apt.
Everything fetched is kept in the lookaside cache under its sha256, so a second cook
needs no network. Source actions run first, in the order the recipe gives them.

Files beside the recipe are read beneath the recipe directory, and sources are written
beneath the build directory: a symlink leading out of either is refused (see
:mod:`appbuilder.core.beneath`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath

from appbuilder.core.beneath import Beneath
from appbuilder.core.errors import RecipeError, SourceError
from appbuilder.core.fileio import verify_file
from appbuilder.recipe.actions import SOURCE, Action, ActionContext, Trees, in_build

_URL_SCHEMES = ("http://", "https://", "ftp://", "file://", "mirror://")


def is_url(text: str) -> bool:
    return text.startswith(_URL_SCHEMES)


def local_source(ctx: ActionContext, name: str) -> Path:
    """A file shipped beside the recipe; never outside the recipe directory, not even
    through a symlink."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts:
        raise RecipeError(f"source {name!r} must be a path inside the recipe directory")
    with Beneath(ctx.recipe_dir, label="recipe directory", error=lambda m: RecipeError(f"source {m}")) as tree:
        try:
            fd = tree.open(name, os.O_PATH)
        except (FileNotFoundError, NotADirectoryError):
            raise SourceError(f"missing source: {name} is not in {ctx.recipe_dir}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SourceError(f"missing source: {name} is not a file in {ctx.recipe_dir}")
        finally:
            os.close(fd)
    return ctx.recipe_dir / pure


def obtain(ctx: ActionContext, name: str, sha256: str | None, mirrors) -> Path:
    """A local source file or a fetched, verified one."""
    name = ctx.macros.expand(name)
    if is_url(name):
        if not sha256:
            raise RecipeError(f"source {name} is fetched by URL and must be pinned with sha256=")
        return ctx.fetch(name, sha256, [ctx.macros.expand(m) for m in mirrors])
    path = local_source(ctx, name)
    if sha256:
        verify_file(path, sha256, what=name)
    return path


def source_record(macros, recipe_dir: Path, name: str, sha256: str | None, kind: str) -> dict:
    """What a cooked package records of one of its sources (for its SBOM and provenance): a
    pinned URL with its sha256, or a file beside the recipe with the sha256 it had when cooked."""
    name = macros.expand(name)
    if is_url(name):
        return {"action": kind, "url": name, "sha256": sha256}
    with Beneath(recipe_dir, label="recipe directory", error=lambda m: RecipeError(f"source {m}")) as tree:
        fd = tree.open(name, os.O_RDONLY)
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return {"action": kind, "file": name, "sha256": h.hexdigest()}


class addSource(Action):
    """Add a single source file to the build directory.

    ``name`` is a file beside the recipe or a URL (then ``sha256=`` is required, and
    ``mirrors=`` lists other URLs to try). ``dest`` is where it goes, relative to the
    build directory (default: its own name at the top). ``mode`` sets its permissions;
    ``macros=True`` expands ``%(macros)s`` in its content.

    Example::

        r.addSource('init.sh', mode=0o755)
        r.addSource('https://example.org/fix.h', sha256='9f86d0...', dest='include/')
    """

    phase = SOURCE

    def __init__(self, name: str, sha256: str | None = None, dest: str = "", mode: int | None = None,
                 macros: bool = False, mirrors: tuple | list = ()):
        self.name, self.sha256, self.dest, self.mode, self.macros, self.mirrors = (
            name, sha256, dest, mode, macros, tuple(mirrors))

    def upstream_record(self, macros, recipe_dir: Path) -> dict:
        return source_record(macros, recipe_dir, self.name, self.sha256, "addSource")

    def do(self, ctx: ActionContext) -> None:
        src = obtain(ctx, self.name, self.sha256, self.mirrors)
        basename = ctx.macros.expand(self.name).rstrip("/").rsplit("/", 1)[-1]
        dest_text = ctx.macros.expand(self.dest)
        if not dest_text or dest_text.endswith("/"):
            dest_text += basename
        with Trees(ctx, self) as trees:
            tree, dest = trees.of(dest_text, create=True)
            if self.macros:
                tree.write_bytes(dest, ctx.macros.expand(src.read_text()).encode(), self.mode)
                return
            with open(src, "rb") as f:
                tree.write_from(dest, f.fileno(), self.mode)


class addArchive(Action):
    """Unpack an archive (tar, tar.gz/bz2/xz/zst, zip) into the source directory.

    ``name`` is a file beside the recipe or a URL pinned by ``sha256=``, with optional
    ``mirrors=`` (other full URLs, or ``mirror://NAME/path`` entries whose base URLs
    come from ``repo/config.yaml``). Archives unpack into the parent of the build
    directory, so a tarball holding ``foo-1.0/`` becomes the build directory of recipe
    ``foo`` version ``1.0``; use ``r.mainDir()`` when the top directory is named
    otherwise, or ``dir=`` to unpack into a subdirectory of the build directory.

    Members with absolute paths, ``..`` components, or links pointing outside are
    refused before anything is written.

    Example::

        r.addArchive('https://busybox.net/downloads/busybox-%(version)s.tar.bz2',
                     sha256='faeeb244...', mirrors=['mirror://busybox/busybox-%(version)s.tar.bz2'])
    """

    phase = SOURCE

    def __init__(self, name: str, sha256: str | None = None, dir: str | None = None,
                 mirrors: tuple | list = ()):
        self.name, self.sha256, self.dir, self.mirrors = name, sha256, dir, tuple(mirrors)

    def upstream_record(self, macros, recipe_dir: Path) -> dict:
        return source_record(macros, recipe_dir, self.name, self.sha256, "addArchive")

    def do(self, ctx: ActionContext) -> None:
        archive = obtain(ctx, self.name, self.sha256, self.mirrors)
        if self.dir is None:
            dest = ctx.srcdir
        else:
            dir_text = ctx.macros.expand(self.dir)
            with Trees(ctx, self) as trees:
                tree, path = trees.of(dir_text, create=True)
                tree.mkdirs(path)
            dest = in_build(ctx, dir_text)
        ctx.unpack(archive, dest)


class addPatch(Action):
    """Apply a patch (beside the recipe, or a pinned URL) to the build directory.

    ``level`` is patch's ``-p`` (default 1); ``dir`` is where to apply it, relative to
    the build directory. A patch that does not apply cleanly fails the build.

    Example::

        r.addPatch('fix-static-link.patch')
    """

    phase = SOURCE

    def __init__(self, name: str, level: int = 1, dir: str = "", sha256: str | None = None,
                 mirrors: tuple | list = ()):
        self.name, self.level, self.dir, self.sha256, self.mirrors = name, level, dir, sha256, tuple(mirrors)

    def upstream_record(self, macros, recipe_dir: Path) -> dict:
        return source_record(macros, recipe_dir, self.name, self.sha256, "addPatch")

    def do(self, ctx: ActionContext) -> None:
        patch = obtain(ctx, self.name, self.sha256, self.mirrors)
        cwd = in_build(ctx, ctx.macros.expand(self.dir)) if self.dir else ctx.builddir
        ctx.run(
            ["patch", f"-p{self.level}", "--batch", "--forward", "--no-backup-if-mismatch", "-i", ctx.inside(patch)],
            cwd=cwd,
        )


class addDebianSource(Action):
    """Unpack a Debian source package, fetched through the machine's apt.

    ``package`` and ``version`` name the source package exactly as Debian does
    (``busybox``, ``1:1.35.0-4``); ``sha256`` pins its ``.dsc``, which in turn pins
    every tarball it lists. appbuild adds ``deb-src`` entries derived at run time from
    the machine's own apt sources, in a private apt state under the cache directory
    (the system's apt configuration is not touched), and ``dpkg-source -x`` unpacks
    the package with its Debian patches applied into the build directory.

    Example::

        r.addDebianSource('busybox', '1:1.35.0-4', sha256='3a2b...')
    """

    phase = SOURCE

    def __init__(self, package: str, version: str, sha256: str):
        self.package, self.version, self.sha256 = package, version, sha256

    def upstream_record(self, macros, recipe_dir: Path) -> dict:
        return {"action": "addDebianSource", "debian_source": self.package, "version": self.version,
                "dsc_sha256": self.sha256}

    def do(self, ctx: ActionContext) -> None:
        dsc = ctx.debian_source(self.package, self.version, self.sha256)
        # dpkg-source wants to make the directory itself: clear it, in the sandbox
        ctx.run(["rm", "-rf", "--", ctx.inside(ctx.builddir)], cwd=ctx.srcdir)
        ctx.run(["dpkg-source", "-x", ctx.inside(dsc), ctx.inside(ctx.builddir)], cwd=ctx.srcdir)
