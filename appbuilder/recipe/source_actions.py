"""Source actions: bring sources into the build directory before anything builds.

Sources are either files beside the recipe (``recipes/NAME/``), archives or files
fetched by URL and pinned by sha256, or Debian source packages fetched through apt.
Everything fetched is kept in the lookaside cache under its sha256, so a second cook
needs no network. Source actions run first, in the order the recipe gives them.

As in conary:

* a URL ending in ``/`` names a directory: ``addArchive`` completes it with
  ``%(archive_name)s-%(archive_version)s`` (default ``NAME-VERSION``) and, in order,
  ``.tar.bz2``, ``.tar.gz``, ``.tbz2``, ``.tgz``, ``.zip`` (conary's list), then
  ``.tar.xz``, ``.txz``; the first one the server has with the pinned sha256 is used;
* ``rpm=`` names an RPM (beside the recipe, or a URL pinned by ``sha256=``) that holds
  the source, usually a source RPM: the file is taken out of it;
* ``keyid=`` checks the detached signature (``.sig``, ``.sign`` or ``.asc`` beside the
  source, or beside the RPM with ``rpm=``) against the OpenPGP keys kept in the
  workspace (``keys/upstream/``, ``cook: source_keys``); a missing or bad signature
  fails the cook;
* ``mirror://NAME/path`` expands to the base URLs of NAME (built in: gnu, sourceforge,
  kernel, gnome, xorg, kde, cpan, cran, debian, gentoo, fedora; ``mirrors:`` in
  ``repo/config.yaml`` adds names or replaces them);
* the first ``addArchive`` names the main build directory when the recipe did not call
  ``r.mainDir()``: if it adds exactly one new top-level directory (and nothing to the
  main directory), that directory is the main directory, ``%(maindir)s``;
* ``dir=`` of ``addArchive`` is relative to the directory holding the main directory
  (conary's ``%(builddir)s`` while sources unpack), of ``addSource`` and ``addPatch``
  relative to the main directory; an absolute ``dir=`` is inside ``%(destdir)s``.

Files beside the recipe are read beneath the recipe directory, and sources are written
beneath the build directory: a symlink leading out of either is refused (see
:mod:`appbuilder.core.beneath`).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import re
import stat
from pathlib import Path, PurePosixPath

from appbuilder.core.beneath import Beneath
from appbuilder.core.errors import BuildFailed, RecipeError, SourceError
from appbuilder.core.fileio import sha256_file, verify_file
from appbuilder.recipe.actions import SOURCE, Action, ActionContext, Trees, build_path, in_build
from appbuilder.upstream.lookaside import SIGNATURE_SUFFIXES

_URL_SCHEMES = ("http://", "https://", "ftp://", "file://", "mirror://")
PATCH_LEVELS = (1, 0, 2, 3)  # what addPatch tries, in order, when no level= is given (conary's order)
_KEYID_RE = re.compile(r"^(?:0x)?([0-9A-Fa-f]{8,40})$")
_DECOMPRESS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}


def is_url(text: str) -> bool:
    return text.startswith(_URL_SCHEMES)


def normal_keyid(keyid) -> str | None:
    """An OpenPGP key id as conary recipes give it (``'9BB19A22'``, ``'0x9BB19A22'``, a
    longer id or a fingerprint), upper case without ``0x``; None stays None."""
    if keyid is None:
        return None
    m = _KEYID_RE.match(str(keyid).replace(" ", ""))
    if not m:
        raise RecipeError(f"keyid {keyid!r} is not an OpenPGP key id (8 to 40 hex digits, e.g. '9BB19A22')")
    return m.group(1).upper()


def archive_stem(macros) -> str:
    """What a directory URL is completed with: ``%(archive_name)s-%(archive_version)s``,
    which default to the recipe's name and version."""
    name = macros["archive_name"] if "archive_name" in macros else macros["name"]
    version = macros["archive_version"] if "archive_version" in macros else macros["version"]
    return f"{name}-{version}"


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


def _fetched(ctx: ActionContext, name: str, sha256: str | None, mirrors: list[str], *, guess: bool) -> Path:
    """A local source file, or a fetched and verified one (*name* and *mirrors* expanded)."""
    if is_url(name):
        if not sha256:
            raise RecipeError(f"source {name} is fetched by URL and must be pinned with sha256=")
        if name.endswith("/"):
            if not guess:
                raise RecipeError(f"source {name} names a directory: only addArchive completes a URL ending "
                                  f"in '/' with the archive's name")
            return ctx.fetch(name, sha256, mirrors, guess=archive_stem(ctx.macros))
        return ctx.fetch(name, sha256, mirrors)
    path = local_source(ctx, name)
    if sha256:
        verify_file(path, sha256, what=name)
    return path


def _check_signature(ctx: ActionContext, path: Path, name: str, mirrors: list[str], keyid: str) -> None:
    """The detached signature of *path* (fetched as *name*) must be good and by *keyid*."""
    sha256 = sha256_file(path)
    if is_url(name):
        bases = [u + path.name if u.endswith("/") else u for u in (name, *mirrors)]
        urls = [f"{b}.{suffix}" for b in bases for suffix in SIGNATURE_SUFFIXES]
        ctx.signature(path, sha256, keyid, urls=urls)
        return
    beside = []
    for suffix in SIGNATURE_SUFFIXES:
        try:
            beside.append(local_source(ctx, f"{name}.{suffix}"))
        except SourceError:  # not there: try the next name
            continue
    ctx.signature(path, sha256, keyid, local=beside or [ctx.recipe_dir / f"{name}.{SIGNATURE_SUFFIXES[0]}"])


def obtain(ctx: ActionContext, name: str, sha256: str | None, mirrors, *, rpm: str = "",
           keyid: str | None = None, guess: bool = False) -> Path:
    """The source *name*: a local file or a fetched, verified one, or with *rpm* the
    file of that name taken out of that RPM; with *keyid*, its signature checked first."""
    name = ctx.macros.expand(name)
    mirrors = [ctx.macros.expand(m) for m in mirrors]
    if rpm:
        rpm_name = ctx.macros.expand(rpm)
        container = _fetched(ctx, rpm_name, sha256, mirrors, guess=False)
        if keyid:
            _check_signature(ctx, container, rpm_name, mirrors, keyid)
        return ctx.rpm_member(container, name)
    path = _fetched(ctx, name, sha256, mirrors, guess=guess)
    if keyid:
        _check_signature(ctx, path, name, mirrors, keyid)
    return path


def source_record(macros, recipe_dir: Path, name: str, sha256: str | None, kind: str, *, rpm: str = "",
                  keyid: str | None = None) -> dict:
    """What a cooked package records of one of its sources (for its SBOM and provenance): a
    pinned URL with its sha256, or a file beside the recipe with the sha256 it had when cooked
    (with ``rpm=``, the RPM, and the file taken out of it as ``member``)."""
    name = macros.expand(name)
    extra = {**({"member": name} if rpm else {}), **({"keyid": keyid} if keyid else {})}
    fetched = macros.expand(rpm) if rpm else name
    if is_url(fetched):
        return {"action": kind, "url": fetched, "sha256": sha256, **extra}
    with Beneath(recipe_dir, label="recipe directory", error=lambda m: RecipeError(f"source {m}")) as tree:
        fd = tree.open(fetched, os.O_RDONLY)
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return {"action": kind, "file": fetched, "sha256": h.hexdigest(), **extra}


class addSource(Action):
    """Add a single source file to the build directory.

    ``name`` is a file beside the recipe or a URL (then ``sha256=`` is required, and
    ``mirrors=`` lists other URLs to try). ``dir`` is the directory it goes to,
    relative to the main build directory (absolute: inside ``%(destdir)s``), as in
    conary; ``dest`` is its name there (default: its own name), or a path when no
    ``dir`` is given (relative to the build directory; ending in ``/``: a directory).
    ``mode`` sets its permissions; ``macros=True`` expands ``%(macros)s`` in its
    content. ``rpm=`` takes the file out of that RPM (then ``sha256=`` pins the RPM);
    ``keyid=`` checks its detached signature (see ``addArchive``).

    Example::

        r.addSource('init.sh', mode=0o755)
        r.addSource('https://example.org/fix.h', sha256='9f86d0...', dir='include')
    """

    phase = SOURCE

    def __init__(self, name: str, sha256: str | None = None, dest: str = "", mode: int | None = None,
                 macros: bool = False, mirrors: tuple | list = (), dir: str = "", rpm: str = "",
                 keyid: str | None = None):
        if dir and "/" in (dest or "").rstrip("/"):
            raise RecipeError("addSource: do not give a directory in both dir= and dest=")
        self.name, self.sha256, self.dest, self.mode, self.macros, self.mirrors = (
            name, sha256, dest, mode, macros, tuple(mirrors))
        self.dir, self.rpm, self.keyid = dir, rpm, normal_keyid(keyid)

    def upstream_record(self, macros, recipe_dir: Path) -> dict:
        return source_record(macros, recipe_dir, self.name, self.sha256, "addSource", rpm=self.rpm, keyid=self.keyid)

    def do(self, ctx: ActionContext) -> None:
        src = obtain(ctx, self.name, self.sha256, self.mirrors, rpm=self.rpm, keyid=self.keyid)
        basename = ctx.macros.expand(self.name).rstrip("/").rsplit("/", 1)[-1]
        dest_text = ctx.macros.expand(self.dest)
        if self.dir:
            dest_text = ctx.macros.expand(self.dir).rstrip("/") + "/" + (dest_text.rstrip("/") or basename)
        elif not dest_text or dest_text.endswith("/"):
            dest_text += basename
        with Trees(ctx, self) as trees:
            tree, dest = trees.of(dest_text, create=True)
            if self.macros:
                tree.write_bytes(dest, ctx.macros.expand(src.read_text()).encode(), self.mode)
                return
            with open(src, "rb") as f:
                tree.write_from(dest, f.fileno(), self.mode)


def _top_dirs(path: Path) -> set[str]:
    """The real directories (not links to one) at the top of *path*."""
    if not path.is_dir():
        return set()
    with os.scandir(path) as it:
        return {e.name for e in it if e.is_dir(follow_symlinks=False)}


class addArchive(Action):
    """Unpack an archive (tar, tar.gz/bz2/xz/zst, zip) into the source directory.

    ``name`` is a file beside the recipe or a URL pinned by ``sha256=``, with optional
    ``mirrors=`` (other full URLs, or ``mirror://NAME/path`` entries). As in conary:

    * a URL ending in ``/`` is completed with ``NAME-VERSION`` (the macros
      ``%(archive_name)s-%(archive_version)s``) and ``.tar.bz2``, ``.tar.gz``,
      ``.tbz2``, ``.tgz``, ``.zip``, ``.tar.xz``, ``.txz``, tried in that order;
    * ``mirror://NAME/path`` tries each base URL of NAME: gnu, sourceforge, kernel,
      gnome, xorg, kde, cpan, cran, debian, gentoo and fedora are built in, and
      ``mirrors:`` in ``repo/config.yaml`` adds or replaces names;
    * ``rpm='x.src.rpm'`` takes the archive out of that RPM (beside the recipe, or a
      URL: then ``sha256=`` pins the RPM);
    * ``keyid='9BB19A22'`` checks the detached signature ``.sig``, ``.sign`` or
      ``.asc`` beside the archive (beside the RPM with ``rpm=``) against the OpenPGP
      public keys in the workspace's ``keys/upstream/`` (``cook: source_keys``); a
      missing or bad signature, or one by another key, fails the cook;
    * archives unpack into the directory that holds the main build directory, so a
      tarball holding ``foo-1.0/`` becomes the build directory of recipe ``foo``
      version ``1.0``. Unless the recipe called ``r.mainDir()``, the first archive
      names the main directory: when it adds exactly one top-level directory, that
      directory is ``%(maindir)s`` and the build happens there;
    * ``dir=`` unpacks into that directory, relative to the one holding the main
      directory (``dir='%(maindir)s/extra'`` is inside the main directory); an
      absolute ``dir=`` is inside ``%(destdir)s``.

    Members with absolute paths, ``..`` components, or links pointing outside are
    refused before anything is written.

    Example::

        r.addArchive('mirror://gnu/hello/', sha256='31e066...', keyid='A9553245FDE9B739')
        r.addArchive('busybox-%(version)s.tar.bz2', rpm='busybox-%(version)s-1.src.rpm')
    """

    phase = SOURCE

    def __init__(self, name: str, sha256: str | None = None, dir: str | None = None,
                 mirrors: tuple | list = (), rpm: str = "", keyid: str | None = None):
        self.name, self.sha256, self.dir, self.mirrors = name, sha256, dir, tuple(mirrors)
        self.rpm, self.keyid = rpm, normal_keyid(keyid)

    def upstream_record(self, macros, recipe_dir: Path) -> dict:
        return source_record(macros, recipe_dir, self.name, self.sha256, "addArchive", rpm=self.rpm,
                             keyid=self.keyid)

    def do(self, ctx: ActionContext) -> None:
        archive = obtain(ctx, self.name, self.sha256, self.mirrors, rpm=self.rpm, keyid=self.keyid, guess=True)
        dir_text = ctx.macros.expand(self.dir) if self.dir else ""
        guess = not getattr(ctx, "main_dir_known", True) and not dir_text.startswith("/")
        before = _top_dirs(ctx.srcdir)
        main_before = set(os.listdir(ctx.builddir)) if guess and ctx.builddir.is_dir() else None
        if dir_text.startswith("/"):
            with Trees(ctx, self) as trees:
                tree, path = trees.of(dir_text, create=True)
                tree.mkdirs(path)
            dest = in_build(ctx, dir_text)
        elif dir_text:
            ctx.srcdir.mkdir(parents=True, exist_ok=True)
            with Beneath(ctx.srcdir, label="source directory",
                         error=lambda m: RecipeError(f"addArchive: {m}")) as tree:
                tree.mkdirs(build_path(dir_text, what="dir"))
            dest = ctx.srcdir / dir_text
        else:
            dest = ctx.srcdir
        ctx.unpack(archive, dest)
        if guess:
            self._name_main_dir(ctx, before, main_before)

    @staticmethod
    def _name_main_dir(ctx, before: set[str], main_before: set[str] | None) -> None:
        """Conary's rule: exactly one new top-level directory, and nothing new in the
        main directory, makes that directory the main directory; either way the main
        directory is settled after the first archive."""
        added = _top_dirs(ctx.srcdir) - before
        main_added = main_before is not None and bool(set(os.listdir(ctx.builddir)) - main_before)
        old = ctx.builddir
        if len(added) == 1 and not main_added:
            candidate = added.pop()
            if candidate != old.name and "%" not in candidate:
                if old.is_dir() and not old.is_symlink():
                    try:
                        old.rmdir()
                    except OSError:
                        raise SourceError(
                            f"sources do not agree on the main directory: files exist in {old.name} but the first "
                            f"archive unpacks into {candidate}; call addArchive() before other source actions "
                            f"such as addSource(), or name it with r.mainDir()") from None
                ctx.set_main_dir(candidate)
                ctx.log(f"main directory: {candidate} (the archive's top directory; %(maindir)s)")
        ctx.main_dir_known = True


class addPatch(Action):
    """Apply a patch (beside the recipe, or a pinned URL) to the build directory.

    As in conary, without ``level`` the patch is tried with ``-p1``, ``-p0``, ``-p2``
    and ``-p3`` in that order, each first as a dry run in the build sandbox, and
    applied at the first level that fits; ``level=N`` tries only that one. ``dir`` is
    where to apply it, relative to the main build directory (absolute: inside
    ``%(destdir)s``). ``macros=True`` expands ``%(macros)s`` in the patch first; a
    ``.gz``, ``.bz2`` or ``.xz`` patch is decompressed. ``backup`` keeps the original
    files with that suffix; ``extraArgs`` are more arguments for ``patch``. ``rpm=`` and
    ``keyid=`` work as for ``addArchive``. A patch that fits no level fails the build.

    Example::

        r.addPatch('fix-static-link.patch')
        r.addPatch('Makefile-paths.patch', level=0, dir='src', macros=True)
    """

    phase = SOURCE

    def __init__(self, name: str, level: int | None = None, dir: str = "", sha256: str | None = None,
                 mirrors: tuple | list = (), macros: bool = False, backup: str = "",
                 extraArgs: str | list | tuple = (), rpm: str = "", keyid: str | None = None):
        if level is not None and (isinstance(level, bool) or not isinstance(level, int) or level < 0):
            raise RecipeError(f"addPatch: level must be a whole number (patch's -p), not {level!r}")
        self.name, self.level, self.dir, self.sha256, self.mirrors = name, level, dir, sha256, tuple(mirrors)
        self.macros, self.backup, self.rpm, self.keyid = macros, backup, rpm, normal_keyid(keyid)
        self.extraArgs = tuple(extraArgs.split() if isinstance(extraArgs, str) else extraArgs)

    def upstream_record(self, macros, recipe_dir: Path) -> dict:
        return source_record(macros, recipe_dir, self.name, self.sha256, "addPatch", rpm=self.rpm, keyid=self.keyid)

    def _prepared(self, ctx: ActionContext, patch: Path) -> Path:
        """The patch as ``patch`` reads it: decompressed, macros expanded, if asked."""
        unpack = _DECOMPRESS.get(patch.suffix)
        if not unpack and not self.macros:
            return patch
        data = patch.read_bytes()
        try:
            data = unpack(data) if unpack else data
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise SourceError(f"{patch.name} cannot be decompressed ({exc})") from None
        if self.macros:
            data = ctx.macros.expand(data.decode(errors="surrogateescape")).encode(errors="surrogateescape")
        name = "patches/" + (patch.name.removesuffix(patch.suffix) if unpack else patch.name)
        with Beneath(ctx.srcdir.parent, label="work directory", error=lambda m: RecipeError(f"addPatch: {m}")) as tree:
            tree.write_bytes(name, data)  # never through a link a build left
        return ctx.srcdir.parent / name

    def do(self, ctx: ActionContext) -> None:
        patch = self._prepared(ctx, obtain(ctx, self.name, self.sha256, self.mirrors, rpm=self.rpm,
                                           keyid=self.keyid))
        dir_text = ctx.macros.expand(self.dir)
        with Trees(ctx, self) as trees:
            tree, path = trees.of(dir_text or ".", create=True)
            tree.mkdirs(path)
        cwd = in_build(ctx, dir_text) if dir_text else ctx.builddir
        backup = ["-b", "-z", self.backup] if self.backup else ["--no-backup-if-mismatch"]

        def argv(level: int, dry: bool) -> list[str]:
            return ["patch", f"-p{level}", "--batch", "--forward", *backup, *self.extraArgs,
                    *(["--dry-run"] if dry else []), "-i", ctx.inside(patch)]

        levels = (self.level,) if self.level is not None else PATCH_LEVELS
        for level in levels:
            try:
                ctx.run(argv(level, dry=True), cwd=cwd)
            except BuildFailed:
                continue  # not this level (patch's output is in the build log)
            ctx.run(argv(level, dry=False), cwd=cwd)
            ctx.log(f"{patch.name} applied at level {level}")
            return
        # conary's last try: a patch changing one file twice fails a dry run but may apply
        fallback = levels[0] if len(levels) == 1 else 1
        try:
            ctx.run(argv(fallback, dry=False), cwd=cwd)
        except BuildFailed:
            raise SourceError(f"could not apply patch {patch.name} at level {', '.join(map(str, levels))} "
                              f"(patch's output for each is in the build log)") from None
        ctx.log(f"{patch.name} applied at level {fallback}")


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
