"""Committing capsules: versions that follow upstream, no-ops, labels, all or nothing.

* **Versions.** A capsule's trove version is ``label/UPSTREAM-S-B`` where UPSTREAM is
  ``[epoch:]version-release`` (RPM) or the Debian version. The source count S follows
  the upstream *source build* (the source RPM, or the Debian ``Source`` and version),
  so the x86_64 and i686 builds of one upstream release share it; the build count B
  counts different package files of that same source build and flavor (an upstream
  rebuild or re-signing without a version bump). A newer upstream version is a new
  version on the same label, starting again at ``-1-1``.
* **No-ops.** Importing a package file that is already in the repository on that label
  (same sha256) does nothing and says so; for rpm-md repositories and apt this is
  decided from the metadata's checksums, without a download.
* **Labels.** ``--label`` chooses the label; otherwise ``rpm.label`` / ``deb.label`` of
  ``repo/config.yaml``, otherwise the repository's label.
* **All or nothing.** Every package of one command is read, verified and stored before
  the first is committed: a bad package, a checksum mismatch or a missing dependency
  leaves the index as it was (stored contents nobody references are removed by
  ``appbuild gc``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from appbuilder.capsule import CAPSULE_FORMAT
from appbuilder.capsule.model import Capsule, CapsuleError
from appbuilder.capsule.parallel import WRITE_THREADS, read_packages
from appbuilder.capsule.payload import ContentWriter
from appbuilder.core.arch import ARCHES, Arch
from appbuilder.core.fileio import sha256_file
from appbuilder.core.settings import Settings
from appbuilder.core.ui import human_size
from appbuilder.repository.deps import Dependency
from appbuilder.repository import sha1s
from appbuilder.repository.repo import ComponentContents, PackageBuild, Repository
from appbuilder.repository.versions import NVF, check_label
from appbuilder.upstream.lookaside import Lookaside

IMPORTED, UNCHANGED = "imported", "already imported"


@dataclass
class ImportResult:
    source: str  # the package file name
    nvf: NVF
    status: str  # IMPORTED or UNCHANGED
    files: int = 0
    size: int = 0

    def __str__(self) -> str:
        if self.status == UNCHANGED:
            return f"{self.source}: already imported as {self.nvf}"
        return f"imported {self.nvf}  ({self.source}, {self.files} files, {human_size(self.size)})"


class Importer:
    """Imports upstream packages of one kind into one repository."""

    def __init__(self, settings: Settings, repo: Repository, kind: str, *, label: str | None = None,
                 warn: Callable[[str], None] | None = None):
        self.settings = settings
        self.repo = repo
        self.kind = kind
        self.label = check_label(label or settings.get(f"{kind}.label") or repo.label)
        self.warn = warn or (lambda text: None)
        self.lookaside = Lookaside(settings.lookaside, settings.mirrors, warn=warn)

    @contextlib.contextmanager
    def writing(self):
        """A content writer shared by the packages of one command; all written on exit (and
        the contents' SHA-1s kept for the inventories of images: :mod:`appbuilder.repository.sha1s`)."""
        writer = ContentWriter(self.repo.store, threads=WRITE_THREADS, sha1=True)
        try:
            yield writer
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            raise
        writer.close()
        self.keep_sha1s(writer.sha1s)

    def keep_sha1s(self, found: dict[str, str]) -> None:
        sha1s.keep(sha1s.cache_file(self.settings.cache), found)

    def input_hash(self, file_sha256: str) -> str:
        key = {"capsule_format": CAPSULE_FORMAT, "kind": self.kind, "file": file_sha256, "label": self.label}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def existing(self, file_sha256: str) -> NVF | None:
        return self.repo.by_input(self.input_hash(file_sha256))

    def commit(self, capsules: list[Capsule], unchanged: list[ImportResult]) -> list[ImportResult]:
        """Commit read capsules (all were read without error); returns one result per package."""
        results = list(unchanged)
        seen: set[str] = set()
        todo, builds = [], []
        for c in capsules:
            if c.file_sha256 in seen:
                continue
            seen.add(c.file_sha256)
            todo.append((c, self.existing(c.file_sha256)))
            builds.append(PackageBuild(
                name=c.name, upstream=c.upstream, flavor=c.flavor, source_hash=c.source_id,
                components=[ComponentContents(c.component, c.files, c.provides, c.requires, c.info)],
                input_hash=self.input_hash(c.file_sha256),
                info={"capsule": c.kind, "upstream_name": c.upstream_name, "source": c.file_name,
                      "capsule_sha256": c.file_sha256},
                label=self.label,
            ))
        # one transaction: a package that fails to commit leaves none of the others committed
        for (c, before), trove in zip(todo, self.repo.commit_packages(builds)):
            status = UNCHANGED if before else IMPORTED
            results.append(ImportResult(c.file_name, trove.nvf, status, len(c.files), c.stored_bytes))
        return results

    def unchanged(self, name: str, nvf: NVF) -> ImportResult:
        return ImportResult(name, nvf, UNCHANGED)


# ------------------------------------------------------------------ RPM


class RpmImporter(Importer):
    def __init__(self, settings: Settings, repo: Repository, **kw):
        from appbuilder.capsule.rpmsig import TrustPolicy

        super().__init__(settings, repo, "rpm", **kw)
        self.policy = TrustPolicy.from_settings(settings)
        self.keyring = self.policy.keyring() if self.policy.keys else None

    def read(self, path: Path, writer: ContentWriter, expected_sha256: str | None = None) -> Capsule:
        from appbuilder.capsule.rpm import read_rpm

        return read_rpm(path, self.repo.store, self.policy, keyring=self.keyring,
                        expected_sha256=expected_sha256, writer=writer)

    def import_files(self, paths: list[Path]) -> list[ImportResult]:
        capsules, unchanged = [], []
        with self.writing() as writer:
            for path in paths:
                path = Path(path)
                if not path.is_file():
                    raise CapsuleError(f"{path}: no such file")
                nvf = self.existing(sha256_file(path))
                if nvf:
                    unchanged.append(self.unchanged(path.name, nvf))
                else:
                    capsules.append(self.read(path, writer))
        return self.commit(_rpm_order(capsules), unchanged)

    def import_repository(self, location: str, *, only: list[str] | None = None,
                          arches: list[Arch] | None = None, allow_missing: bool = False,
                          progress: Callable[[str], None] | None = None) -> list[ImportResult]:
        from appbuilder.upstream.rpmmd import RpmMdRepository
        from appbuilder.capsule.rpmselect import Selection

        md = RpmMdRepository(location, self.lookaside).load()
        wanted: set[str | None] = {a.name for a in (arches or ARCHES.values())} | {None}
        selection = Selection(md, wanted, external=self._provided_here)
        packages = selection.only(only) if only else selection.everything()
        if selection.missing:
            text = "\n  ".join(str(m) for m in selection.missing)
            if not allow_missing:
                raise CapsuleError(f"unresolved dependencies in the --only closure (nothing in {location} or in "
                                   f"appbuild's repository provides them); nothing was imported:\n  {text}")
            self.warn(f"importing with unresolved dependencies:\n  {text}")
        capsules, unchanged = [], []
        with self.writing() as writer:
            for pkg in packages:
                if pkg.checksum_type == "sha256" and (nvf := self.existing(pkg.checksum)):
                    unchanged.append(self.unchanged(pkg.file_name, nvf))
                    continue
                path, expected = md.package_file(pkg)
                # a sha256 checksum was looked up above: it is the file's hash
                if expected is None and pkg.checksum_type != "sha256" and (nvf := self.existing(sha256_file(path))):
                    unchanged.append(self.unchanged(pkg.file_name, nvf))
                    continue
                if progress:
                    progress(pkg.nevra)
                capsule = self.read(path, writer, expected)
                if (capsule.name, capsule.upstream_name) != (pkg.name, pkg.nevra):
                    raise CapsuleError(f"{pkg.location}: the repository metadata says {pkg.nevra}, "
                                       f"the package is {capsule.upstream_name}")
                capsules.append(capsule)
        return self.commit(capsules, unchanged)

    def _provided_here(self, dep: Dependency, arch: Arch | None) -> bool:
        """Whether appbuild's repository already has a trove meeting *dep* (for arch)."""
        return bool(dep.kind.candidates(self.repo, dep, arch.name if arch else None))


def _rpm_order(capsules: list[Capsule]) -> list[Capsule]:
    """Older versions of a name first, so the newest is committed last."""
    import functools

    import rpm

    def evr(c: Capsule) -> tuple[str, str, str]:
        info = c.info["rpm"]
        return (str(info["epoch"] or 0), info["version"], info["release"])

    def cmp(a: Capsule, b: Capsule) -> int:
        if a.name != b.name:
            return -1 if a.name < b.name else 1
        return rpm.labelCompare(evr(a), evr(b))

    return sorted(capsules, key=functools.cmp_to_key(cmp))


# ------------------------------------------------------------------ DEB


class DebImporter(Importer):
    def __init__(self, settings: Settings, repo: Repository, **kw):
        super().__init__(settings, repo, "deb", **kw)

    def import_args(self, args: list[str], *, with_depends: bool = False) -> list[ImportResult]:
        """Each argument a .deb file or a package name ``PKG[:ARCH][=VERSION]`` for apt.

        *with_depends* also imports the direct dependencies of the named packages (one
        level, first alternative): what a metapackage such as ``linux-image-amd64``
        stands for.
        """
        from appbuilder.capsule.debapt import DebianArchive, DebSpec

        files = [a for a in args if a.endswith(".deb") or "/" in a]
        specs = [DebSpec.parse(a) for a in args if a not in files]
        archive = DebianArchive(self.settings.cache, self.lookaside, warn=self.warn) if specs else None
        records = dict(zip(specs, archive.lookup(specs))) if specs else {}
        if with_depends and specs:
            extra = [d for r in records.values() for d in r.direct_depends() if d not in records]
            extra = list(dict.fromkeys(extra))
            records.update(zip(extra, archive.lookup(extra)))
            args = [*args, *(str(d) for d in extra)]
        todo, unchanged = [], []
        for arg in args:
            record = None
            if arg in files:
                path = Path(arg)
                if not path.is_file():
                    raise CapsuleError(f"{arg}: no such file")
                sha, name = sha256_file(path), path.name
            else:
                record = records[DebSpec.parse(arg)]
                sha, name = record.sha256, f"{record.spec.name}_{record.version}_{record.arch}.deb"
            if nvf := self.existing(sha):
                unchanged.append(self.unchanged(name, nvf))
                continue
            todo.append((archive.fetch(record) if record is not None else path, sha))
        return self._read_and_commit(todo, unchanged)

    def import_fetched(self, files: Iterable[tuple[Path, str]], count: int) -> list[ImportResult]:
        """Import *count* .deb files, each given with its sha256 (checked again as it is read)
        as soon as it is there: a download still under way hands them on one by one."""
        unchanged: list[ImportResult] = []

        def todo() -> Iterator[tuple[Path, str]]:
            for path, sha in files:
                if nvf := self.existing(sha):
                    unchanged.append(self.unchanged(Path(path).name, nvf))
                else:
                    yield path, sha
        return self._read_and_commit(todo(), unchanged, count=count)

    def _read_and_commit(self, todo: Iterable[tuple[Path, str]], unchanged: list[ImportResult], *,
                         count: int | None = None) -> list[ImportResult]:
        from appbuilder.capsule.deb import read_deb

        found: dict[str, str] = {}
        capsules = read_packages(read_deb, self.repo.store, todo, count=count, sha1s=found)
        self.keep_sha1s(found)
        return self.commit(capsules, unchanged)




# ------------------------------------------------------------------ command line


def import_upstream(settings: Settings, repo: Repository, *,
                    warn: Callable[[str], None] | None = None) -> list[ImportResult]:
    """Import everything ``repo/config.yaml`` lists under ``upstream:``.

    ``upstream: {deb: [{packages: [...], with_depends: bool, label: L}], rpm: [{repo: URL,
    only: [...], arch: A, label: L}]}``. A deb entry may name a group instead of
    packages (``group: group-toolchain``): the Debian packages that group recipe adds
    are imported, so the group is the one list of them. Packages already imported are
    no-ops, so this is what a nightly runs to pick up upstream updates.
    """
    upstream = settings.get("upstream")
    if not upstream:
        raise CapsuleError("repo/config.yaml lists no 'upstream:' packages to import")
    results: list[ImportResult] = []
    for entry in upstream.get("deb") or []:
        packages = [str(p) for p in entry.get("packages") or []]
        if entry.get("group"):
            packages += group_packages(settings, str(entry["group"]))
        importer = DebImporter(settings, repo, label=entry.get("label"), warn=warn)
        results += importer.import_args(packages, with_depends=bool(entry.get("with_depends")))
    for entry in upstream.get("rpm") or []:
        results += import_command(settings, repo, "rpm", [], repo_location=entry["repo"], only=entry.get("only"),
                                  arch=entry.get("arch"), label=entry.get("label"), warn=warn)
    unknown = set(upstream) - {"deb", "rpm"}
    if unknown:
        raise CapsuleError(f"repo/config.yaml upstream: unknown kind(s) {', '.join(sorted(unknown))} (deb, rpm)")
    return results


def group_packages(settings: Settings, name: str) -> list[str]:
    """The Debian packages a group recipe adds, as ``import deb`` takes them."""
    from appbuilder.core.arch import BUILD_ARCH, get_arch
    from appbuilder.recipe.loader import load_group

    recipe = load_group(settings.groups_dir, name).instantiate(get_arch(BUILD_ARCH))
    if recipe.contents.subgroups:
        raise CapsuleError(f"repo/config.yaml upstream: group {name} includes other groups; name their packages")
    names = []
    for item in recipe.contents.items:
        if any(c in item.spec.name for c in "*?["):
            raise CapsuleError(f"{item.where}: {item.spec.name}: a pattern cannot be imported by name")
        names.append(item.spec.name.split(":", 1)[0] + (f"={item.spec.version}" if item.spec.version else ""))
    return names


def import_command(settings: Settings, repo: Repository, kind: str, packages: list[str], *,
                   repo_location: str | None = None, only: list[str] | None = None, arch: str | None = None,
                   label: str | None = None, allow_missing: bool = False, with_depends: bool = False,
                   warn: Callable[[str], None] | None = None) -> list[ImportResult]:
    """What ``appbuild import rpm|deb ...`` does; returns one result per package."""
    from appbuilder.core.arch import get_arch

    if kind == "deb":
        if not packages:
            raise CapsuleError("appbuild import deb: name Debian packages (PKG[:i386]) or .deb files")
        return DebImporter(settings, repo, label=label, warn=warn).import_args(packages, with_depends=with_depends)
    if repo_location and packages:
        raise CapsuleError("appbuild import rpm: give package files or --repo, not both")
    if not repo_location and not packages:
        raise CapsuleError("appbuild import rpm: give package files, or --repo PATH-OR-URL")
    if (only or arch) and not repo_location:
        raise CapsuleError("appbuild import rpm: --only and --arch go with --repo")
    importer = RpmImporter(settings, repo, label=label, warn=warn)
    if not repo_location:
        return importer.import_files([Path(p) for p in packages])
    arches = None if arch in (None, "all") else [get_arch(a) for a in arch.split(",")]
    return importer.import_repository(repo_location, only=only, arches=arches, allow_missing=allow_missing)
