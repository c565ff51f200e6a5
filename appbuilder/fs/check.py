"""Check a published repository end to end, as a client would (``appbuild fs check``).

The manifest must be signed by one of the given public keys, name the repository and
not have expired; so must the tag list. The catalog of the current revision and of
every tagged revision must be there, hash to the value the manifest or tag list
gives and be a valid catalog; every file's object must be there and hash to its name,
and unpack to the size the catalog records. Each problem is reported; nothing is
changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from appbuilder.fs import keys
from appbuilder.fs import manifest as manifest_mod
from appbuilder.fs import tags as tags_mod
from appbuilder.fs.catalog import Catalog, CatalogError
from appbuilder.fs.manifest import MANIFEST_NAME, Manifest, ManifestError
from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectError, ObjectStore
from appbuilder.fs.tags import TAGS_NAME, TagList, TagListError


@dataclass
class CheckReport:
    manifest: Manifest | None = None
    tags: TagList | None = None
    files: int = 0  # files of the current revision
    objects: int = 0  # distinct content objects of every checked revision
    revisions: list[int] = field(default_factory=list)  # checked: the current one, then tagged ones
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(repo_dir: Path, public_keys: list[Path], *, contents: bool = True, now: int | None = None) -> CheckReport:
    """Problems of the repository in *repo_dir* (``OUT/NAME``); *contents*: read every object;
    *now*: the time expiry is judged by (default: the current time)."""
    repo_dir = Path(repo_dir)
    report = CheckReport()
    trusted = [keys.load_public(p) for p in public_keys]
    try:
        data = (repo_dir / MANIFEST_NAME).read_bytes()
    except OSError as exc:
        report.problems.append(f"no manifest: {repo_dir / MANIFEST_NAME}: {exc.strerror}")
        return report
    try:
        report.manifest = manifest_mod.verify(data, trusted, repo_dir.name, now=now)
    except ManifestError as exc:
        report.problems.append(f"manifest: {exc}")
        return report
    store = ObjectStore(repo_dir)
    seen: set[str] = set()
    report.files = _check_revision(store, report.manifest.catalog, f"revision {report.manifest.revision}",
                                   report, seen, contents)
    report.revisions.append(report.manifest.revision)

    try:
        tag_data = (repo_dir / TAGS_NAME).read_bytes()
    except OSError as exc:
        report.problems.append(f"no tag list: {repo_dir / TAGS_NAME}: {exc.strerror} (publish and 'appbuild fs "
                               f"resign' write one)")
        return report
    try:
        report.tags = tags_mod.verify(tag_data, trusted, repo_dir.name, now=now)
    except TagListError as exc:
        report.problems.append(f"tag list: {exc}")
        return report
    if report.tags.revision < report.manifest.revision:
        report.problems.append(f"tag list: written with revision {report.tags.revision}, older than the manifest's "
                               f"{report.manifest.revision}")
    checked = {report.manifest.catalog}
    for tag in reversed(report.tags.tags):
        if tag.catalog in checked:
            continue
        checked.add(tag.catalog)
        _check_revision(store, tag.catalog, f"tag {tag.name} (revision {tag.revision})", report, seen, contents)
        report.revisions.append(tag.revision)
    return report


def _check_revision(store: ObjectStore, catalog: str, what: str, report: CheckReport, seen: set[str],
                    contents: bool) -> int:
    """Check one revision's catalog and the objects it names (once each over all revisions); its file count."""
    try:
        cat = Catalog(store.get(catalog, CATALOG_SUFFIX))
    except (ObjectError, CatalogError) as exc:
        report.problems.append(f"catalog of {what}: {exc}")
        return 0
    files = 0
    try:
        for path, entry in cat.walk().items():
            if not entry.is_file:
                continue
            files += 1
            if not entry.hash:
                report.problems.append(f"{path}: a file without a content hash ({what})")
                continue
            if entry.hash in seen:
                continue
            seen.add(entry.hash)
            report.objects += 1
            if not contents:
                if not store.exists(entry.hash):
                    report.problems.append(f"{path}: object {entry.hash} is missing ({what})")
                continue
            try:
                size = len(store.get(entry.hash))
            except ObjectError as exc:
                report.problems.append(f"{path}: {exc} ({what})")
                continue
            if size != entry.size:
                report.problems.append(f"{path}: the object unpacks to {size} bytes, the catalog says {entry.size} "
                                       f"({what})")
    finally:
        cat.close()
    return files
