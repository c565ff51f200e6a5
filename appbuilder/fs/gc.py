"""Garbage collection of a repository (``appbuild fs gc``): delete what no kept revision needs.

Publishing never deletes: every revision's objects stay, so the ``data/`` tree only
grows. ``appbuild fs gc --repo NAME --to OUT`` keeps the current revision (the one the
manifest names) and every tagged revision (the tag list), with their catalogs and
every object those catalogs reference, and deletes every other object, and the
temporary files a killed publish left behind. Untagged older revisions go: a client
still mounting one of them loses the files it has not cached yet, so tag what clients
pin (``publish --tag``).

It holds the publish lock (no publish or resign runs meanwhile), refuses to start if
a kept catalog is missing or damaged (it could not tell what that revision needs),
and deletes only unreferenced objects, one ``unlink`` each: a kill at any point
leaves a valid repository, and running it again finishes the job. ``--dry-run``
reports what would go.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from appbuilder.fs.objects import (
    CATALOG_SUFFIX,
    FILE_SUFFIX,
    HASH_HEX_LENGTH,
    ObjectStore,
    is_hash,
)
from appbuilder.fs.publish import (
    PublishError,
    check_repository_name,
    read_manifest,
    read_taglist,
    repository_lock,
    revision_tree,
)


class GcError(PublishError):
    """Garbage collection cannot run safely."""


@dataclass
class KeptRevision:
    revision: int
    catalog: str
    tags: list[str] = field(default_factory=list)
    current: bool = False

    def describe(self) -> str:
        what = (["current"] if self.current else []) + [f"tag {t}" for t in self.tags]
        return f"revision {self.revision} ({', '.join(what)})"


@dataclass
class GcReport:
    repository: str
    dry_run: bool
    kept: list[KeptRevision] = field(default_factory=list)  # newest first
    objects_kept: int = 0
    bytes_kept: int = 0
    objects_deleted: int = 0
    bytes_deleted: int = 0
    temporaries_deleted: int = 0  # leftovers of killed publishes
    unknown: list[str] = field(default_factory=list)  # files in data/ that are not objects: left alone

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        temps = f" and {self.temporaries_deleted} temporary files of interrupted publishes" \
            if self.temporaries_deleted else ""
        return (f"{self.repository}: {verb} {self.objects_deleted} objects ({self.bytes_deleted} bytes){temps}; "
                f"kept {self.objects_kept} objects ({self.bytes_kept} bytes) of "
                f"{', '.join(k.describe() for k in self.kept)}")


def gc(repository: str, out: Path, *, dry_run: bool = False) -> GcReport:
    """Delete the objects of ``out/repository`` that neither the current revision nor a tagged one needs."""
    check_repository_name(repository)
    repo_dir = Path(out) / repository
    store = ObjectStore(repo_dir)
    report = GcReport(repository, dry_run)
    with repository_lock(repo_dir, repository):
        manifest = read_manifest(repo_dir)
        taglist = read_taglist(repo_dir, repository, refusal="nothing deleted, since which revisions are tagged "
                                                             "cannot be told")
        kept: dict[str, KeptRevision] = {manifest.catalog: KeptRevision(manifest.revision, manifest.catalog,
                                                                        current=True)}
        for t in taglist.tags if taglist else ():
            kept.setdefault(t.catalog, KeptRevision(t.revision, t.catalog)).tags.append(t.name)
        report.kept = sorted(kept.values(), key=lambda k: k.revision, reverse=True)

        referenced: set[tuple[str, str]] = set()
        for k in report.kept:
            tree = revision_tree(store, k.catalog, f"{repository} {k.describe()}", error=GcError,
                                 consequence=": nothing deleted, since what that revision needs cannot be told")
            referenced.add((k.catalog, CATALOG_SUFFIX))
            referenced.update((e.hash, FILE_SUFFIX) for e in tree.values() if e.hash)

        data = repo_dir / "data"
        for directory in sorted(data.iterdir()) if data.is_dir() else ():
            if directory.name == "txn" and directory.is_dir():
                for leftover in sorted(directory.iterdir()):  # compressing into these is done under the lock
                    if leftover.is_file():
                        _delete(leftover, report, temporary=True)
                continue
            if len(directory.name) != 2 or not directory.is_dir():
                report.unknown.append(str(directory.relative_to(repo_dir)))
                continue
            for path in sorted(directory.iterdir()):
                if path.name.startswith(".tmp-") and path.is_file():
                    _delete(path, report, temporary=True)
                    continue
                digest = directory.name + path.name[:HASH_HEX_LENGTH - 2]
                suffix = path.name[HASH_HEX_LENGTH - 2:]
                if not is_hash(digest) or suffix not in (FILE_SUFFIX, CATALOG_SUFFIX) or not path.is_file():
                    report.unknown.append(str(path.relative_to(repo_dir)))
                elif (digest, suffix) in referenced:
                    report.objects_kept += 1
                    report.bytes_kept += path.stat().st_size
                else:
                    _delete(path, report)
    return report


def _delete(path: Path, report: GcReport, *, temporary: bool = False) -> None:
    size = path.stat().st_size
    if not report.dry_run:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise GcError(f"cannot delete {path}: {exc.strerror}") from None
    if temporary:
        report.temporaries_deleted += 1
    else:
        report.objects_deleted += 1
        report.bytes_deleted += size
