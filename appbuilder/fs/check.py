"""Check a published repository end to end, as a client would (``appbuild fs check``).

The manifest must be signed by one of the given public keys and name the
repository; the catalog object must hash to the manifest's value and be a valid
catalog; every file's object must be there and hash to its name, and unpack to the
size the catalog records. Each problem is reported; nothing is changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from appbuilder.fs import keys
from appbuilder.fs import manifest as manifest_mod
from appbuilder.fs.catalog import Catalog, CatalogError
from appbuilder.fs.manifest import MANIFEST_NAME, Manifest, ManifestError
from appbuilder.fs.objects import CATALOG_SUFFIX, ObjectError, ObjectStore


@dataclass
class CheckReport:
    manifest: Manifest | None = None
    files: int = 0
    objects: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(repo_dir: Path, public_keys: list[Path], *, contents: bool = True) -> CheckReport:
    """Problems of the repository in *repo_dir* (``OUT/NAME``); *contents*: read every object."""
    repo_dir = Path(repo_dir)
    report = CheckReport()
    trusted = [keys.load_public(p) for p in public_keys]
    try:
        data = (repo_dir / MANIFEST_NAME).read_bytes()
    except OSError as exc:
        report.problems.append(f"no manifest: {repo_dir / MANIFEST_NAME}: {exc.strerror}")
        return report
    try:
        report.manifest = manifest_mod.verify(data, trusted, repo_dir.name)
    except ManifestError as exc:
        report.problems.append(f"manifest: {exc}")
        return report
    store = ObjectStore(repo_dir)
    try:
        cat = Catalog(store.get(report.manifest.catalog, CATALOG_SUFFIX))
    except (ObjectError, CatalogError) as exc:
        report.problems.append(f"catalog: {exc}")
        return report
    try:
        seen: set[str] = set()
        for path, entry in cat.walk().items():
            if not entry.is_file:
                continue
            report.files += 1
            if not entry.hash:
                report.problems.append(f"{path}: a file without a content hash")
                continue
            if entry.hash in seen:
                continue
            seen.add(entry.hash)
            report.objects += 1
            if not contents:
                if not store.exists(entry.hash):
                    report.problems.append(f"{path}: object {entry.hash} is missing")
                continue
            try:
                size = len(store.get(entry.hash))
            except ObjectError as exc:
                report.problems.append(f"{path}: {exc}")
                continue
            if size != entry.size:
                report.problems.append(f"{path}: the object unpacks to {size} bytes, the catalog says {entry.size}")
    finally:
        cat.close()
    return report
