"""Publish a group version's OS as a tagged revision of an fs repository (``appbuild fs publish-group``).

What a network-booting image mounts as its root (``appbuild group-NAME --boot network``):
the group version's root file system staged exactly as its classic image holds it (the
same members, accounts, generated files, inventory and package databases, owners, modes
and devices; only fstab differs, since the initramfs sets up the root), published as the
next revision of the repository (``os.repository``, default ``{group}.{arch}``) and tagged
with the version's revision (``1.0-1-2``): the pin the image boots.

Publishing a version again is a no-op: nothing is written. A new version writes only the
objects that are new (a package that changed brings its files, plus the catalog). The tag
list keeps every version's revision, so any published version can be booted again years
later (``appliance update 1.0-1-2`` in the guest), and ``appbuild fs gc`` never drops one.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from appbuilder.assemble.image import stage_image
from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import Settings
from appbuilder.fs.publish import PublishReport, publish
from appbuilder.graph.groups import find_group, staged_troves
from appbuilder.repository.repo import Repository
from appbuilder.store.build import device_modules, os_key, os_repository


@dataclass
class GroupPublication:
    group: str  # name=version[flavor]
    repository: str
    tag: str
    report: PublishReport


def publish_group(settings: Settings, repo: Repository, group_name: str, arch: str, out: Path, *,
                  version: str | None = None, key: Path | None = None, repository: str | None = None,
                  valid_days: int = 30, progress: Callable[[str], None] = lambda msg: None) -> GroupPublication:
    """Stage *group_name* (at *version*, default the newest) for *arch* and publish it to
    ``out/REPOSITORY``, tagged with the version's revision."""
    group = repo.get(find_group(repo, group_name, arch, version), with_files=False)
    if not group.info.get("image_group"):
        raise AppbuildError(f"{group_name} is not an image group (set imageGroup = True in its recipe)")
    repository = repository or os_repository(settings, group_name, arch)
    key = key or os_key(settings, repository, ".key")
    if not key.is_file():
        raise AppbuildError(f"no private key for {repository} at {key}: make the pair with "
                            f"'appbuild fs keygen --repo {repository} -o {key.parent}'")
    troves = staged_troves(repo, group)
    tag = group.version.revision
    work = Path(tempfile.mkdtemp(prefix="appbuild-os-", dir=settings.cache))
    try:
        progress(f"[{arch}] staging {group.nvf} as a network-booted root")
        image = stage_image(repo, group, troves, {"group": group_name,
                                                  "source_date_epoch": settings.get("source_date_epoch")},
                            work, devices=device_modules(settings, arch), boot="network",
                            progress=lambda m: progress(f"[{arch}] {m}"))
        report = publish(image.staged.directory, repository, out, key, metadata=image.staged.entries, tag=tag,
                         valid_days=valid_days, progress=lambda m: progress(f"[{arch}] {m}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return GroupPublication(str(group.nvf), repository, tag, report)
