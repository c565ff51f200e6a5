"""Which system ``appbuild q`` asks: one group version's closure.

conary's ``q`` asked the troves installed on the machine it ran on. appbuild installs
nothing on its own machine; what it "installs" is a group version into an image. So
``q`` asks:

* ``--group group-NAME[=VERSION]``: that recorded group version (the newest for the
  architecture when no version is given), whether or not an image of it was built;
* otherwise the group version of the image built last in the image store (its
  manifest's ``updated`` time), the system the workspace made last.
"""

from __future__ import annotations

from dataclasses import dataclass

from appbuilder.core.errors import AppbuildError
from appbuilder.graph.groups import find_group
from appbuilder.repository.repo import Repository
from appbuilder.repository.versions import NVF, TroveSpec
from appbuilder.store.images import ImageStore


@dataclass(frozen=True)
class System:
    """The group version ``q`` asks, its members, and why it was chosen."""

    group: NVF
    members: list[NVF]
    why: str


def installed_system(repo: Repository, store: ImageStore, group: str | None, arch: str | None,
                     default_arch: str) -> System:
    """The system ``q`` asks (see the module's text)."""
    if group:
        spec = TroveSpec.parse(group)
        if spec.flavor is not None:
            raise AppbuildError(f"--group {group}: name the architecture with --arch, not a flavor")
        if not spec.name.startswith("group-"):
            raise AppbuildError(f"--group takes group-NAME[=VERSION], not {group!r}")
        nvf = find_group(repo, spec.name, arch or default_arch, spec.version)
        why = f"recorded group {'version' if spec.version else '(newest version)'} named by --group"
    else:
        built = [e for e in store.entries() if e.manifest is not None and e.manifest.trove
                 and (arch is None or e.arch.split("/")[0] == arch)]
        if not built:
            where = f" for {arch}" if arch else ""
            raise AppbuildError(f"no image has been built{where} in {store.root}, so there is no system to query: "
                                "name one with --group group-NAME[=VERSION] (`appbuild rq` asks the repository)")
        last = max(built, key=lambda e: (e.manifest.updated or e.manifest.built, e.manifest.revision))
        try:
            nvf = NVF.parse(last.manifest.trove)
        except AppbuildError:
            raise AppbuildError(f"the manifest in {last.directory} names no group trove ({last.manifest.trove!r}); "
                                "name one with --group group-NAME") from None
        why = f"the image built last ({last.directory})"
    trove = repo.get(nvf, with_files=False)
    return System(nvf, list(trove.members), why)
